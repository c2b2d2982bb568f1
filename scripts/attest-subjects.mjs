// The subjects the up workflow attests build provenance for, in sha256sum's format (what
// actions/attest-build-provenance takes as subject-checksums): every release file with its
// digest and every pushed image or index by its manifest digest, read from
// `pulumi stack output --json` on stdin. A digest is attested once, however many tags it has.
//
//   pulumi stack output --json | node scripts/attest-subjects.mjs > subjects.txt
import { readFileSync } from 'node:fs';

const outputs = JSON.parse(readFileSync(0, 'utf8'));
const lines = new Map();
for (const [name, sha256] of Object.entries(outputs.releaseDigests ?? {})) {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`releaseDigests.${name}: not a sha256 (${sha256})`);
  lines.set(sha256, `${sha256}  ${name}`);
}
for (const [image, ref] of Object.entries(outputs.imageRefs ?? {})) {
  const m = /^(.+?)(?::[\w][\w.-]*)?@sha256:([0-9a-f]{64})$/.exec(ref);
  if (!m) throw new Error(`imageRefs.${image}: not a reference by digest (${ref})`);
  if (!lines.has(m[2])) lines.set(m[2], `${m[2]}  ${m[1]}`);
}
if (lines.size === 0) throw new Error('the stack published nothing to attest (no releaseDigests, no imageRefs)');
process.stdout.write([...lines.values()].map((l) => `${l}\n`).join(''));
