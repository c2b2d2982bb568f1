// A cosign signature of one pushed image or index, by digest, as a Pulumi resource (a dynamic
// provider over lib/cosign), with the release's SBOM attached as a signed SPDX attestation.
// Keyed by the digest: a no-change up signs nothing, a rebuilt image (a new digest) is signed
// anew. The signing key, its password and the registry password are read at run time from
// the stack's secret config: never inputs, never in state.
import * as pulumi from '@pulumi/pulumi';
import type * as Cosign from '../lib/cosign.ts';
import { configureSigning, keyedDiff, loadProjectModule, signerFor, type SigningProvider } from './provider-runtime.ts';

export interface ImageSignatureInputs {
  /** The pushed image or index, `name@sha256:…` (a tag may carry it: `name:tag@sha256:…`). */
  ref: string;
  /** keyless or key (lib/cosign.ts). */
  mode: 'key' | 'keyless';
  /** Registry host and user for pushing the signature; the password is the stack's polyarch:registryPassword. */
  server: string;
  username?: string;
  /** The SBOM attached to the image: a path relative to the project folder, or absolute. */
  sbomFile?: string;
  /** Its sha256: a new SBOM is attached anew. */
  sbomSha256?: string;
}

export type ImageSignatureArgs = { [K in keyof ImageSignatureInputs]: pulumi.Input<ImageSignatureInputs[K]> };

/** `name[:tag]@sha256:…` -> `name@sha256:…`: cosign signs the digest, and a tag beside it only confuses. */
const byDigest = (ref: string) => ref.replace(/^(.*?)(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[0-9a-f]{64})$/, '$1$3');

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: SigningProvider<ImageSignatureInputs, ImageSignatureInputs> & { registryPassword?: string } = {
  async configure(req) {
    await configureSigning.call(this, req);
    this.registryPassword = req.config.get('polyarch:registryPassword');
  },
  diff: keyedDiff(['ref', 'mode', 'sbomSha256'], []),
  async create(inputs) {
    const cosign = await loadProjectModule<typeof Cosign>('lib/cosign.ts');
    const { resolve } = process.getBuiltinModule('node:path');
    const ref = byDigest(inputs.ref);
    await cosign.signImage(ref, signerFor(inputs.mode, this.secrets), {
      login: { server: inputs.server, username: inputs.username, password: this.registryPassword },
      ...(inputs.sbomFile && { sbom: resolve(inputs.sbomFile) }),
    });
    return { id: ref, outs: inputs };
  },
  async read(id, props) {
    return { id, props };
  },
  // A signature stays with its image, which is never deleted either (QemuImages retains tags).
  async delete() {},
};

/** One pushed image's cosign signature (and SBOM attestation), made once per digest. */
export class ImageSignature extends pulumi.dynamic.Resource {
  declare public readonly ref: pulumi.Output<string>;

  constructor(name: string, args: ImageSignatureArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, args, opts, 'polyarch', 'ImageSignature');
  }
}
