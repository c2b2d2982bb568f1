// test/helpers/as-nobody.ts is what the tests that need another user rest on: nobody must reach
// this clone wherever it is, and must still be refused every write nobody may not make. If the
// helper ever let writes through, the read-only-folder tests would check nothing; this fails then.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { asNobody, canRunAsNobody, CLONE, cloneView, NOBODY } from '../helpers/as-nobody.ts';
import { requireSystem } from '../helpers/system.ts';

test('as nobody: the CLI runs from this clone, and no write nobody may not make gets through', (t) => {
  if (!requireSystem(t, canRunAsNobody)) return;
  const { version } = JSON.parse(fs.readFileSync(path.join(CLONE, 'package.json'), 'utf8')) as { version: string };
  const cli = asNobody([process.execPath, path.join(cloneView(), 'bin/polyarch.js'), '--version'], cloneView());
  const r = spawnSync(cli[0], cli.slice(1), { encoding: 'utf8' });
  assert.equal(r.stdout, `${version}\n`, r.stderr);

  // A folder only root may enter, as the one a clone may sit in, with a read-only folder inside.
  const closed = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-nobody-'));
  t.after(() => fs.rmSync(closed, { recursive: true, force: true }));
  fs.chmodSync(closed, 0o700);
  const open = path.join(cloneView(), '.polyarch-nobody-probe');
  const ro = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-ro-'));
  t.after(() => fs.rmSync(ro, { recursive: true, force: true }));
  fs.chmodSync(ro, 0o555);
  const run = (script: string) => {
    const [cmd, ...argv] = asNobody(['sh', '-c', script, 'sh']);
    return spawnSync(cmd, argv, { encoding: 'utf8' });
  };
  assert.equal(run('id -u').stdout, `${NOBODY}\n`);
  for (const [what, script] of [
    ['a file in a read-only folder', `: > ${ro}/x`],
    ['a folder in a read-only folder', `mkdir ${ro}/x`],
    ['a file in a folder only root may enter', `: > ${closed}/x`],
    ['a file in the clone, through its view', `: > ${open}`],
    ['a file of the clone, through its view', `echo changed >> ${path.join(cloneView(), 'package.json')}`],
  ] as const) {
    const w = run(script);
    assert.notEqual(w.status, 0, `${what}: written`);
    assert.match(w.stderr, /Permission denied/, what);
  }
  assert.deepEqual(fs.readdirSync(ro), []);
  assert.deepEqual(fs.readdirSync(closed), []);
  assert.ok(!fs.existsSync(path.join(CLONE, '.polyarch-nobody-probe')));
  assert.equal(JSON.parse(fs.readFileSync(path.join(CLONE, 'package.json'), 'utf8')).version, version);
  // The view is empty outside the command's own mount namespace: nothing was mounted here.
  assert.deepEqual(fs.readdirSync(cloneView()), []);
});
