// lib/cosign.ts, against a stand-in cosign that records how it was run: the key and password
// in its environment, never its arguments, and what a failure says (one line, no secret).
// test/engine/cosign.test.ts runs the real cosign; test/engine/signing.test.ts signs through the engine.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { bundleName, missingIdentity, signBlob, signImage } from '../../lib/cosign.ts';
import { UserError } from '../../lib/user-error.ts';

const KEY = '-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nc2VjcmV0LWtleS1ib2R5LTQ0MTk=\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----';
const PASSWORD = 'cosign-unit-password-9182';

/** A folder of the test's own put first on PATH, holding a `cosign` made of `script`. */
function fakeCosign(t: TestContext, script: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-fake-cosign-'));
  fs.writeFileSync(path.join(dir, 'cosign'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved}`;
  t.after(() => {
    process.env.PATH = saved;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

test('the key and its password reach cosign in its environment, never its arguments', async (t) => {
  const dir = fakeCosign(t, 'printf "%s\\n" "$@" > "$(dirname "$0")/args"; printf "%s" "$POLYARCH_COSIGN_KEY|$COSIGN_PASSWORD" > "$(dirname "$0")/env"\nwhile [ $# -gt 0 ]; do [ "$1" = --bundle ] && printf "{}" > "$2"; shift; done');
  const file = path.join(dir, 'SHA256SUMS');
  fs.writeFileSync(file, 'sums\n');
  assert.equal(await signBlob(file, { mode: 'key', key: KEY, password: PASSWORD }), '{}');
  const args = fs.readFileSync(path.join(dir, 'args'), 'utf8');
  assert.ok(!args.includes('c2VjcmV0') && !args.includes(PASSWORD), 'a secret on the command line');
  assert.match(args, /^sign-blob\n--yes\n--key\nenv:\/\/POLYARCH_COSIGN_KEY\n--tlog-upload=false\n--bundle\n/);
  assert.equal(fs.readFileSync(path.join(dir, 'env'), 'utf8'), `${KEY}|${PASSWORD}`);
});

test('a failure is one line naming the file and cosign\'s complaint, with any secret cut out', async (t) => {
  fakeCosign(t, `echo "WARNING: could not reach the trust root" >&2; echo "Error: decrypt key with password ${PASSWORD}: wrong" >&2; exit 1`);
  const error = await signBlob('/nonexistent/SHA256SUMS', { mode: 'key', key: KEY, password: PASSWORD }).catch((e: unknown) => e as Error);
  assert.ok(error instanceof Error, 'signing failed');
  assert.equal(error.message, 'signing SHA256SUMS: cosign failed: decrypt key with password ***: wrong');
});

test('no cosign on PATH: one line saying where it comes from', async (t) => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.after(() => (process.env.PATH = saved));
  const error = await signBlob('/x/sbom.spdx.json', { mode: 'keyless' }).catch((e: unknown) => e as Error);
  assert.ok(error instanceof UserError, `a UserError, not ${String(error)}`);
  assert.match(error.message, /^signing sbom\.spdx\.json: cosign is not on PATH \(scripts\/engine\.sh builds it; in GitHub Actions, sigstore\/cosign-installer installs it\)$/);
});

test('images are signed by digest only; the registry password goes in a docker config of its own', async (t) => {
  await assert.rejects(signImage('localhost:5000/p/q:latest', { mode: 'keyless' }), /by digest \(name@sha256:…\), not by tag/);
  const dir = fakeCosign(t, 'cat "$DOCKER_CONFIG/config.json" > "$(dirname "$0")/docker"; printf "%s\\n" "$@" >> "$(dirname "$0")/args"');
  const ref = `localhost:5000/p/q@sha256:${'a'.repeat(64)}`;
  await signImage(ref, { mode: 'keyless' }, { login: { server: 'localhost:5000', username: 'ci', password: 'registry-pw-31' }, sbom: '/x/sbom.spdx.json' });
  const args = fs.readFileSync(path.join(dir, 'args'), 'utf8');
  assert.ok(!args.includes('registry-pw-31'), 'the password on the command line');
  assert.deepEqual(args.trim().split('\n'), ['sign', '--yes', ref, 'attest', '--yes', '--type', 'spdxjson', '--predicate', '/x/sbom.spdx.json', ref]);
  const auth = (JSON.parse(fs.readFileSync(path.join(dir, 'docker'), 'utf8')) as { auths: Record<string, { auth: string }> }).auths['localhost:5000']!.auth;
  assert.equal(Buffer.from(auth, 'base64').toString(), 'ci:registry-pw-31');
});

test('keyless needs an identity: GitHub Actions\' token request, or SIGSTORE_ID_TOKEN', () => {
  assert.match(missingIdentity({}) ?? '', /no OIDC identity .*id-token: write/);
  assert.equal(missingIdentity({ ACTIONS_ID_TOKEN_REQUEST_URL: 'http://x', ACTIONS_ID_TOKEN_REQUEST_TOKEN: 't' }), undefined);
  assert.equal(missingIdentity({ SIGSTORE_ID_TOKEN: 'jwt' }), undefined);
  assert.match(missingIdentity({ ACTIONS_ID_TOKEN_REQUEST_URL: 'http://x' }) ?? '', /no OIDC identity/, 'the URL alone is no token');
  assert.equal(bundleName('SHA256SUMS'), 'SHA256SUMS.cosign.bundle');
});
