// The sweep of killed runs' stages and temps: a pid is judged only in our own host and pid
// namespace, since a container sharing our hostname and folder has pids we cannot see.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { checkOutDir, copyNew, makeStage, prepareOutDir, removeStage, sweepStages, sweepTemps } from '../../lib/out-dir.ts';

const HOST_TAG = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
const OUR_NS = /^pid:\[(\d+)\]$/.exec(fs.readlinkSync('/proc/self/ns/pid'))![1]!;
// Another namespace's id: namespace inodes are unique while the namespace lives.
const OTHER_NS = String(Number(OUR_NS) + 1);
const PREFIX = '.polyarch-assets-';

function tmp(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-out-dir-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A pid no process has now: a child that already exited (and was reaped). */
const gonePid = () => spawnSync('true').pid!;

test('copyNew: a file of its own with the same bytes; a file already there is refused and left as it was', async (t) => {
  const dir = tmp(t);
  const src = path.join(dir, 'qemu-aarch64-static');
  const bytes = Buffer.alloc(3 << 20, 'emulator');
  fs.writeFileSync(src, bytes);
  const dest = path.join(dir, 'copy');
  await copyNew(src, dest);
  assert.deepEqual(fs.readFileSync(dest), bytes);
  assert.notEqual(fs.statSync(dest).ino, fs.statSync(src).ino);
  fs.writeFileSync(dest, 'kept');
  await assert.rejects(copyNew(src, dest), { code: 'EEXIST' });
  assert.equal(fs.readFileSync(dest, 'utf8'), 'kept');
});

test('our stages name our pid namespace', async (t) => {
  const dir = tmp(t);
  const stage = await makeStage(dir, PREFIX);
  assert.ok(path.basename(stage).startsWith(`${PREFIX}${HOST_TAG}-${process.pid}-ns${OUR_NS}-`), stage);
  await removeStage(stage);
});

test('sweepStages: a dead pid counts only in our host and pid namespace; elsewhere only a day\'s age does', async (t) => {
  const dir = tmp(t);
  const dead = gonePid();
  const mk = (owner: string) => {
    const stage = path.join(dir, `${PREFIX}${owner}-0123456789ab`);
    fs.mkdirSync(stage);
    return stage;
  };
  const ourNs = mk(`${HOST_TAG}-${dead}-ns${OUR_NS}`);
  const otherNs = mk(`${HOST_TAG}-${dead}-ns${OTHER_NS}`);
  const otherNsLive = mk(`${HOST_TAG}-${process.pid}-ns${OTHER_NS}`);
  const otherHost = mk(`0badc0de-${dead}-ns${OUR_NS}`);
  const live = mk(`${HOST_TAG}-${process.pid}-ns${OUR_NS}`);
  // Earlier versions' names have no namespace: judged by host and pid, as before.
  const oldFormat = mk(`${HOST_TAG}-${dead}`);
  const oldFormatLive = mk(`${HOST_TAG}-${process.pid}`);

  assert.deepEqual((await sweepStages(dir, PREFIX)).sort(), [ourNs, oldFormat].sort());
  assert.deepEqual(fs.readdirSync(dir).map((n) => path.join(dir, n)).sort(), [otherNs, otherNsLive, otherHost, live, oldFormatLive].sort());

  // A day later, whoever made them: gone.
  const old = new Date(Date.now() - 25 * 3600_000);
  for (const s of [otherNs, otherHost]) fs.utimesSync(s, old, old);
  assert.deepEqual((await sweepStages(dir, PREFIX)).sort(), [otherNs, otherHost].sort());
});

test('sweepTemps: a dead pid counts only in our host and pid namespace; elsewhere only a day\'s age does', async (t) => {
  const dir = tmp(t);
  const dead = gonePid();
  const mk = (owner: string) => {
    const file = path.join(dir, `.plan.json.polyarch-tmp-${owner}-0123abcd`);
    fs.writeFileSync(file, 'half');
    return file;
  };
  const ourNs = mk(`${HOST_TAG}-${dead}-ns${OUR_NS}`);
  const otherNs = mk(`${HOST_TAG}-${dead}-ns${OTHER_NS}`);
  const live = mk(`${HOST_TAG}-${process.pid}-ns${OUR_NS}`);
  const oldFormat = mk(`${HOST_TAG}-${dead}`);

  assert.deepEqual((await sweepTemps(dir)).sort(), [ourNs, oldFormat].sort());
  assert.deepEqual(fs.readdirSync(dir).map((n) => path.join(dir, n)).sort(), [otherNs, live].sort());

  const old = new Date(Date.now() - 25 * 3600_000);
  fs.utimesSync(otherNs, old, old);
  assert.deepEqual(await sweepTemps(dir), [otherNs]);
});

test('output folders: a symlinked folder or parent, or a file on the way, is refused naming it; nothing is created', async (t) => {
  const dir = tmp(t);
  const elsewhere = path.join(dir, 'elsewhere');
  fs.mkdirSync(elsewhere);
  fs.symlinkSync(elsewhere, path.join(dir, 'link'));
  fs.writeFileSync(path.join(dir, 'file'), 'x');
  const refused: [string, string][] = [
    [path.join(dir, 'link'), `${path.join(dir, 'link')} is a symlink to ${elsewhere}; give the folder itself as the output folder`],
    [path.join(dir, 'link', 'a', 'b'), `${path.join(dir, 'link', 'a', 'b')}: ${path.join(dir, 'link')} is a symlink to ${elsewhere}; give a path without symlinks as the output folder`],
    [path.join(dir, 'file'), `${path.join(dir, 'file')} exists and is not a folder`],
    [path.join(dir, 'file', 'a'), `${path.join(dir, 'file', 'a')}: ${path.join(dir, 'file')} is not a folder`],
  ];
  for (const [out, message] of refused) {
    await assert.rejects(prepareOutDir(out), { message });
    await assert.rejects(checkOutDir(out), { message });
  }
  assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing was created through the link');
  // A relative folder names its parts as given, relative to the working folder.
  const rel = path.relative(process.cwd(), path.join(dir, 'link', 'a'));
  await assert.rejects(prepareOutDir(rel), { message: `${rel}: ${path.relative(process.cwd(), path.join(dir, 'link'))} is a symlink to ${elsewhere}; give a path without symlinks as the output folder` });
  // A real path is created, and then found.
  assert.equal(await checkOutDir(path.join(dir, 'real', 'a')), false);
  await prepareOutDir(path.join(dir, 'real', 'a'));
  assert.equal(await checkOutDir(path.join(dir, 'real', 'a')), true);
});
