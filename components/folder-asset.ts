// One release asset written into a local folder (the dev stack's stand-in for a GitHub
// release), as a Pulumi resource (a dynamic provider over lib/assets). Diffs are digest-based
// like ReleaseAsset's: new bytes rewrite the file, a new folder or name replaces it.
import * as pulumi from '@pulumi/pulumi';
import type * as Assets from '../lib/assets.ts';
import type * as Digest from '../lib/digest.ts';
import type * as OutDir from '../lib/out-dir.ts';
import { keyedDiff, loadProjectModule } from './provider-runtime.ts';

export interface FolderAssetInputs {
  /** Folder the asset is written into; relative to the project folder, or absolute. */
  dir: string;
  /** File name inside `dir`. */
  name: string;
  /** The bytes to write: a path relative to the project folder, or absolute. Exactly one of `file` and `text`. */
  file?: string;
  /** The bytes to write, given whole (a signature bundle, made during the update). */
  text?: string;
  /** Hex sha256 of the bytes; the diff compares this, and the copy is checked against it. */
  sha256: string;
  size: number;
  /** File mode, e.g. 0o755 for an emulator. */
  mode: number;
}

export interface FolderAssetOutputs extends FolderAssetInputs {
  /** Absolute path of the written file. */
  path: string;
}

export type FolderAssetArgs = { [K in keyof FolderAssetInputs]: pulumi.Input<FolderAssetInputs[K]> };

const LIB = 'lib/assets.ts';

async function place(i: FolderAssetInputs): Promise<FolderAssetOutputs> {
  const assets = await loadProjectModule<typeof Assets>(LIB);
  const { prepareOutDir, sweepTemps, writeWhole } = await loadProjectModule<typeof OutDir>('lib/out-dir.ts');
  const { resolve, join } = process.getBuiltinModule('node:path');
  const dir = resolve(i.dir);
  // The CLI's rules for --out: a symlinked folder or parent, or a file in the way, is refused, not followed.
  await prepareOutDir(dir);
  // A `pulumi up` killed mid-copy leaves a hidden temp beside the release files; sweep those of
  // gone runs (this host, pid gone, or a day old). This host process's own writes are kept.
  await sweepTemps(dir);
  const dest = join(dir, i.name);
  if (i.text === undefined) await assets.copyVerified(resolve(i.file ?? ''), i.sha256, dest, i.mode);
  else {
    const { sha256 } = await loadProjectModule<typeof Digest>('lib/digest.ts');
    if (sha256(i.text) !== i.sha256) throw new Error(`${i.name}: its text does not hash to ${i.sha256}`);
    await writeWhole(dest, i.text, { mode: i.mode });
  }
  return { ...i, path: dest };
}

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: pulumi.dynamic.ResourceProvider<FolderAssetInputs, FolderAssetOutputs> = {
  diff: keyedDiff(['dir', 'name'], ['sha256', 'mode']),
  async create(inputs) {
    const outs = await place(inputs);
    return { id: outs.path, outs };
  },
  async update(_id, _olds, news) {
    return { outs: await place(news) };
  },
  // Refresh reads the folder, not the state: a file that was changed shows as drift (its
  // real digest and mode), a file that is gone as deleted, so the next `up` puts it back.
  async read(id, props) {
    if (!props) return { id, props };
    const { sha256 } = await loadProjectModule<typeof Digest>('lib/digest.ts');
    const { readFile, stat } = process.getBuiltinModule('node:fs/promises');
    try {
      const [data, st] = await Promise.all([readFile(props.path), stat(props.path)]);
      return { id, props: { ...props, sha256: sha256(data), size: data.length, mode: st.mode & 0o7777 } };
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return { id: '', props: {} as FolderAssetOutputs };
      throw e;
    }
  },
  async delete(_id, props) {
    const { checkOutDir } = await loadProjectModule<typeof OutDir>('lib/out-dir.ts');
    const { rm } = process.getBuiltinModule('node:fs/promises');
    const { resolve } = process.getBuiltinModule('node:path');
    // A folder replaced by a symlink since: removing through it would delete a file elsewhere.
    if (await checkOutDir(resolve(props.dir))) await rm(props.path, { force: true });
  },
};

/** One file of the release in a local folder: written, rewritten when its digest changes, read back on refresh, removed on destroy. */
export class FolderAsset extends pulumi.dynamic.Resource {
  declare public readonly sha256: pulumi.Output<string>;
  declare public readonly path: pulumi.Output<string>;

  constructor(name: string, args: FolderAssetArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, path: undefined }, opts, 'polyarch', 'FolderAsset');
  }
}
