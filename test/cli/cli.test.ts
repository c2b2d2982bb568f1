// The command line as a whole: what every CLI of this ecosystem answers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '../..');
const polyarch = (...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/polyarch.js'), ...args], { cwd: ROOT, encoding: 'utf8' });

test('--version and -V print the package version and exit 0', () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const flag of ['--version', '-V']) {
    const r = polyarch(flag);
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, `${version}\n`, ''], flag);
  }
  assert.match(polyarch('--help').stdout, /-V, --version +print the version of polyarch/);
});
