// What the program's own providers add to a resource's state on create, for mocks that must
// give the program the outputs it reads at preview (an output left unknown never resolves).
import type * as pulumi from '@pulumi/pulumi';
import { sha256 } from '../../lib/digest.ts';

/** A mock signature bundle, as BlobSignature's create returns one. */
export const MOCK_BUNDLE = '{"base64Signature":"bW9jaw=="}';

/** A new BinfmtCheck starts with no repairs; a BlobSignature holds its bundle and the bundle's digest. */
export function createdState(a: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  if (a.type.endsWith('polyarch:BinfmtCheck')) return { ...a.inputs, repairs: 0, reuploads: 0, drift: '' };
  if (a.type.endsWith('polyarch:BlobSignature')) return { ...a.inputs, bundle: MOCK_BUNDLE, bundleSha256: sha256(MOCK_BUNDLE), bundleSize: MOCK_BUNDLE.length };
  return a.inputs;
}
