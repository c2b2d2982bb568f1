// A cosign signature of one release file (SHA256SUMS, the SBOM) as a Pulumi resource (a
// dynamic provider over lib/cosign). Signing is part of `pulumi up`, not a step beside it: the
// bundle lives in the state, keyed by the file's digest, so a no-change up signs nothing again
// (a second signing would make other bytes, and a published release's files never change),
// and new bytes are a new signature. The key and its password are read at run time from the
// stack's secret config, like the GitHub token: never inputs, never in state.
import * as pulumi from '@pulumi/pulumi';
import type * as Cosign from '../lib/cosign.ts';
import type * as Digest from '../lib/digest.ts';
import { configureSigning, keyedDiff, loadProjectModule, signerFor, type SigningProvider } from './provider-runtime.ts';

export interface BlobSignatureInputs {
  /** The file signed: a path relative to the project folder, or absolute. */
  file: string;
  /** Its hex sha256: what is signed, what the diff compares. */
  sha256: string;
  /** keyless or key (lib/cosign.ts). */
  mode: 'key' | 'keyless';
}

export interface BlobSignatureOutputs extends BlobSignatureInputs {
  /** cosign's bundle for the file (JSON text), published beside it. */
  bundle: string;
  bundleSha256: string;
  bundleSize: number;
}

export type BlobSignatureArgs = { [K in keyof BlobSignatureInputs]: pulumi.Input<BlobSignatureInputs[K]> };

async function sign(p: BlobSignatureInputs, signer: Cosign.Signer): Promise<BlobSignatureOutputs> {
  const cosign = await loadProjectModule<typeof Cosign>('lib/cosign.ts');
  const { sha256 } = await loadProjectModule<typeof Digest>('lib/digest.ts');
  const { readFile } = process.getBuiltinModule('node:fs/promises');
  const { resolve } = process.getBuiltinModule('node:path');
  // Only the bytes planned are signed: a file changed since is refused, not vouched for.
  const got = sha256(await readFile(resolve(p.file)));
  if (got !== p.sha256) throw new Error(`${p.file}: sha256 is ${got}, expected ${p.sha256} (the file changed since the assets were built; run again)`);
  const bundle = await cosign.signBlob(resolve(p.file), signer);
  return { ...p, bundle, bundleSha256: sha256(bundle), bundleSize: Buffer.byteLength(bundle) };
}

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: SigningProvider<BlobSignatureInputs, BlobSignatureOutputs> = {
  configure: configureSigning,
  diff: keyedDiff(['sha256', 'mode'], []),
  async create(inputs) {
    const outs = await sign(inputs, signerFor(inputs.mode, this.secrets));
    return { id: outs.bundleSha256, outs };
  },
  // Nothing outside the state holds the signature: what was recorded is what there is.
  async read(id, props) {
    return { id, props };
  },
  // A signature published stays valid for the file it signed.
  async delete() {},
};

/** One file's cosign signature, made once per digest and kept in the state. */
export class BlobSignature extends pulumi.dynamic.Resource {
  declare public readonly bundle: pulumi.Output<string>;
  declare public readonly bundleSha256: pulumi.Output<string>;
  declare public readonly bundleSize: pulumi.Output<number>;

  constructor(name: string, args: BlobSignatureArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args, bundle: undefined, bundleSha256: undefined, bundleSize: undefined }, opts, 'polyarch', 'BlobSignature');
  }
}
