// lib/cosign.ts with the real cosign scripts/engine.sh builds: a bundle made with a key pair
// verifies with cosign verify-blob, a changed file does not, and a wrong password fails in one
// line without the password.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { signBlob } from '../../lib/cosign.ts';
import { engineBin, hasEngine } from '../helpers/engine.ts';
import { requireSystem } from '../helpers/system.ts';

const PASSWORD = 'cosign-engine-password-6620';

test('the real cosign: a bundle made with a key verifies, and refuses a changed file', { timeout: 5 * 60_000 }, async (t) => {
  if (!requireSystem(t, hasEngine)) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-cosign-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cosign = path.join(engineBin(), 'cosign');
  const run = (...args: string[]) => spawnSync(cosign, args, { cwd: dir, env: { ...process.env, COSIGN_PASSWORD: PASSWORD }, encoding: 'utf8', timeout: 120_000 });
  assert.equal(run('generate-key-pair').status, 0, 'cosign generate-key-pair');
  const saved = process.env.PATH;
  process.env.PATH = `${engineBin()}:${saved}`;
  t.after(() => (process.env.PATH = saved));
  const file = path.join(dir, 'SHA256SUMS');
  fs.writeFileSync(file, `${'0'.repeat(64)}  qemu-aarch64-static\n`);
  const bundle = await signBlob(file, { mode: 'key', key: fs.readFileSync(path.join(dir, 'cosign.key'), 'utf8'), password: PASSWORD });
  fs.writeFileSync(path.join(dir, 'bundle'), bundle);
  const verify = () => run('verify-blob', '--key', 'cosign.pub', '--insecure-ignore-tlog', '--bundle', 'bundle', 'SHA256SUMS');
  assert.equal(verify().status, 0, `verify-blob: ${verify().stderr}`);
  fs.appendFileSync(file, `${'1'.repeat(64)}  qemu-s390x-static\n`);
  const changed = verify();
  assert.notEqual(changed.status, 0, 'a changed file verified');
  assert.match(changed.stderr, /invalid signature/);
  // A wrong password fails in one line, naming the file, without the password.
  const error = await signBlob(file, { mode: 'key', key: fs.readFileSync(path.join(dir, 'cosign.key'), 'utf8'), password: 'not-the-password' }).catch((e: unknown) => e as Error);
  assert.ok(error instanceof Error);
  assert.match(error.message, /^signing SHA256SUMS: cosign failed: .*(decrypt|password)/i);
  assert.doesNotMatch(error.message, /\n|not-the-password/);
});
