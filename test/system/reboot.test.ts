// Issue 22, "Reboots for image users": `register -p yes --persist-dir /etc/binfmt.d` run from
// the image writes binfmt.d lines naming /usr/bin/qemu-*-static, a path inside the container.
// At boot systemd-binfmt registers those lines on the host, where no such file exists, and
// nothing is registered. With --install-dir the emulators are copied into a host folder that
// is mounted at the same path in the container, and the lines name that path.
//
// The image is the program's own :latest build context (lib/contexts.ts) for this machine's
// arch, holding Debian's emulators, on a busybox base made from Debian's busybox-static; podman
// builds and runs it with two test-owned host folders mounted at identical paths. The reboot is
// simulated: the qemu-* entries are cleared and systemd-binfmt (Debian's systemd) loads the
// persist folder in a mount namespace whose /usr/bin is an empty tmpfs, so the host's own
// emulators (Debian's qemu-user-static, installed for the other tests) cannot stand in.
//
// binfmt_misc is global: run this file under `flock /tmp/polyarch-binfmt.lock`.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { formatLine, parseProcEntry, registerLine } from '../../lib/binfmt.ts';
import { writeContexts } from '../../lib/contexts.ts';
import { DEFAULT_IMAGE_SOURCE } from '../../lib/image-refs.ts';
import { CPUS, findCpu, hostFamily, isHostArch, type Cpu } from '../../lib/cpus.ts';
import type { HostEmulators } from '../../lib/emulators.ts';
import { hostPlatform, planImages } from '../../lib/image-plan.ts';
import { BINFMT, entriesMatching, guardBinfmt, hasBinfmtMisc, readEntries, removeEntry } from '../helpers/binfmt.ts';
import { busyboxRoot, debianPackage } from '../helpers/debian.ts';
import { Podman } from '../helpers/podman.ts';
import { hasCommand, isRoot, requireSystem, type Probe } from '../helpers/system.ts';

const SYSTEMD_BINFMT = '/lib/systemd/systemd-binfmt';
const HOST = os.machine();
// This machine's Debian architecture: the busybox the image is based on.
const DEBIAN_ARCH: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', ppc64le: 'ppc64el', s390x: 's390x' };
const FAMILY = hostFamily(HOST);
// A foreign CPU whose Debian busybox proves the entries work, and what `uname -m` says there.
const PROOF = FAMILY === 'arm' ? { cpu: 's390x', arch: 's390x', machine: 's390x' } : { cpu: 'aarch64', arch: 'arm64', machine: 'aarch64' };
const cpu = (name: string): Cpu => findCpu(name) ?? assert.fail(`no CPU ${name}`);
// The emulators the image ships: a few, all outside this machine's family, in table order (the
// order the image's script registers them in).
const TARGETS = CPUS.filter((c) => ['aarch64', 'arm', 's390x', 'ppc64le'].includes(c.name) && c.family !== FAMILY).map((c) => c.name);

const hasFile =
  (file: string): Probe =>
  () =>
    fs.existsSync(file) ? undefined : `needs ${file}`;
const knownHost: Probe = () => (isHostArch(HOST) && DEBIAN_ARCH[HOST] ? undefined : `needs a host arch with a Debian busybox-static (not ${HOST})`);

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const lineOf = (name: string) => formatLine(parseProcEntry(name, fs.readFileSync(path.join(BINFMT, name), 'utf8')));
const qemuEntries = () => [...readEntries().keys()].filter((n) => n.startsWith('qemu-')).sort();
const clearQemuEntries = () => {
  for (const name of qemuEntries()) removeEntry(name);
};
const listing = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

/**
 * systemd-binfmt FILES as at boot on a host without the container's files: in a private mount
 * namespace whose /usr/bin is an empty tmpfs (binfmt_misc itself is shared with this machine).
 */
function bootLoad(files: readonly string[]) {
  const script = [
    'mount -t tmpfs -o size=1m,mode=0755 polyarch-no-usr-bin /usr/bin',
    `test ! -e /usr/bin/qemu-${PROOF.cpu}-static || { echo "/usr/bin still has qemu-${PROOF.cpu}-static" >&2; exit 99; }`,
    'exec "$@"',
  ].join(' && ');
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', SYSTEMD_BINFMT, ...files], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  assert.notEqual(r.status, 99, r.stderr);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('reboot: the image installs its emulators into a mounted host folder; systemd-binfmt restores the entries from the persist folder alone', { timeout: 10 * 60_000 }, async (t) => {
  const probes = [isRoot, knownHost, hasBinfmtMisc, hasCommand('podman'), hasCommand('runc'), hasCommand('unshare'), hasCommand('mount'), hasCommand('tar'), hasCommand('apt-get'), hasCommand('dpkg-deb'), hasFile(SYSTEMD_BINFMT)];
  if (!requireSystem(t, ...probes, ...TARGETS.map((c) => hasFile(`/usr/bin/qemu-${c}-static`)))) return;
  if (!isHostArch(HOST)) return;
  const started = Date.now();
  guardBinfmt(t);
  const podman = new Podman(t);
  const work = path.join(podman.dir, 'work');
  fs.mkdirSync(work);
  const bin = path.join(debianPackage('busybox-static', PROOF.arch), 'bin', 'busybox');
  for (const name of entriesMatching(bin)) if (!name.startsWith('qemu-')) removeEntry(name);

  // The two host folders, test-owned (the README's are /usr/local/lib/qemu-static and /etc/binfmt.d).
  const host = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-reboot-'));
  t.after(() => fs.rmSync(host, { recursive: true, force: true }));
  const inst = path.join(host, 'usr/local/lib/qemu-static');
  const persist = path.join(host, 'etc/binfmt.d');
  const issue = path.join(host, 'issue-22/binfmt.d');
  for (const d of [inst, persist, issue]) fs.mkdirSync(d, { recursive: true });
  const etc = listing('/etc/binfmt.d');

  // The image: busybox base (pinned by digest, as the program requires) + the :latest context.
  const tar = path.join(work, 'busybox.tar');
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', busyboxRoot(work, DEBIAN_ARCH[HOST]!), '-cf', tar, '.']);
  podman.ok(['import', '--arch', DEBIAN_ARCH[HOST]!, '--os', 'linux', tar, 'localhost/polyarch-test/busybox:base']);
  const baseDigest = podman.ok(['image', 'inspect', '--format', '{{.Digest}}', 'localhost/polyarch-test/busybox:base']).trim();
  const emulators: HostEmulators = {
    host: HOST,
    dir: '/usr/bin',
    emulators: [...TARGETS].sort().map((c) => ({ cpu: c, file: `qemu-${c}-static`, size: fs.statSync(`/usr/bin/qemu-${c}-static`).size, sha256: sha256(`/usr/bin/qemu-${c}-static`), rpm: 'debian-qemu-user-static' })),
    // Debian's emulators, not from any RPM: nothing for an SBOM, which this test makes none of.
    rpms: [],
  };
  const plan = planImages({ server: 'localhost', repository: 'polyarch-test/qemu-user-static', push: false, version: '9.2.4-1', hosts: [{ host: HOST, targets: TARGETS }] });
  const latest = plan.images.find((i) => i.kind === 'emulators') ?? assert.fail('no :latest image in the plan');
  const contexts = await writeContexts({ ...plan, images: [latest] }, [emulators], {
    outDir: path.join(work, 'contexts'),
    baseImage: `localhost/polyarch-test/busybox@${baseDigest}`,
    labels: { source: DEFAULT_IMAGE_SOURCE, version: '9.2.4-1', revision: 'debian' },
  });
  const context = contexts[latest.name] ?? assert.fail('no context for :latest');
  const image = 'localhost/polyarch-test/qemu-user-static:latest';
  podman.ok(['build', '--pull=never', '--identity-label=false', '--platform', hostPlatform(HOST), '-f', context.dockerfile, '-t', image, context.dir]);
  const register = (...args: string[]) => {
    // The README's command: each host folder mounted at its own path, nothing else.
    const mounts = args.flatMap((a, i) => (args[i - 1] === '--install-dir' || args[i - 1] === '--persist-dir' ? ['-v', `${a}:${a}`] : []));
    const r = podman.run('podman', ['run', '--rm', '--privileged', ...mounts, image, ...args]);
    assert.equal(r.code, 0, `register ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  await t.test('issue 22 as reported: without --install-dir, the persisted lines name the container’s /usr/bin and a boot registers nothing', (st) => {
    clearQemuEntries();
    register('--reset', '-p', 'yes', '--persist-dir', issue);
    assert.deepEqual(listing(issue), TARGETS.map((c) => `qemu-${c}.conf`).sort());
    for (const c of TARGETS) assert.equal(fs.readFileSync(path.join(issue, `qemu-${c}.conf`), 'utf8'), `${registerLine(cpu(c))}\n`, c);
    clearQemuEntries(); // the reboot
    const boot = bootLoad(listing(issue).map((f) => path.join(issue, f)));
    st.diagnostic(`systemd-binfmt: ${boot.stderr.trim().split('\n')[0]}`);
    assert.notEqual(boot.code, 0, 'systemd-binfmt reports the failure');
    for (const c of TARGETS) assert.match(boot.stderr, new RegExp(`Failed to add binary format 'qemu-${c}': No such file or directory`), boot.stderr);
    assert.deepEqual(qemuEntries(), []);
  });

  await t.test('--install-dir: the emulators land in the mounted folder; /proc and the persisted lines name it; a rerun changes nothing', () => {
    const out = register('--reset', '-p', 'yes', '--install-dir', inst, '--persist-dir', persist);
    for (const c of TARGETS) {
      const copy = path.join(inst, `qemu-${c}-static`);
      assert.ok(out.includes(`installed ${copy}\nregistered qemu-${c}: ${copy} (flags F)\n`), `${c}:\n${out}`);
      assert.equal(sha256(copy), emulators.emulators.find((e) => e.cpu === c)?.sha256, `${c}: the image's emulator`);
      assert.equal(fs.statSync(copy).mode & 0o7777, 0o755, c);
      const line = registerLine(cpu(c), { path: inst });
      assert.equal(lineOf(`qemu-${c}`), line, `${c} in /proc`);
      assert.equal(fs.readFileSync(path.join(persist, `qemu-${c}.conf`), 'utf8'), `${line}\n`, `${c} persisted`);
    }
    assert.deepEqual(listing(inst), TARGETS.map((c) => `qemu-${c}-static`).sort());
    assert.deepEqual(listing(persist), TARGETS.map((c) => `qemu-${c}.conf`).sort());
    assert.deepEqual(qemuEntries(), TARGETS.map((c) => `qemu-${c}`).sort());
    assert.deepEqual(listing('/etc/binfmt.d'), etc, 'the machine’s own /etc/binfmt.d is untouched');

    const inodes = listing(inst).map((f) => fs.statSync(path.join(inst, f)).ino);
    const again = register('-p', 'yes', '--install-dir', inst, '--persist-dir', persist);
    assert.equal(again.replace(/^mounted binfmt_misc on .*\n/m, ''), TARGETS.map((c) => `unchanged qemu-${c}\n`).join(''));
    assert.deepEqual(listing(inst).map((f) => fs.statSync(path.join(inst, f)).ino), inodes, 'the copies were left alone');
  });

  await t.test('the reboot: systemd-binfmt loads the persist folder with no /usr/bin emulators; the foreign busybox runs', () => {
    clearQemuEntries();
    assert.deepEqual(qemuEntries(), []);
    const boot = bootLoad(listing(persist).map((f) => path.join(persist, f)));
    assert.equal(boot.code, 0, boot.stderr);
    assert.equal(boot.stderr, '');
    assert.deepEqual(qemuEntries(), TARGETS.map((c) => `qemu-${c}`).sort());
    for (const c of TARGETS) assert.equal(lineOf(`qemu-${c}`), registerLine(cpu(c), { path: inst }), c);
    assert.deepEqual(entriesMatching(bin), [`qemu-${PROOF.cpu}`]);
    const u = spawnSync(bin, ['uname', '-m'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(u.error, undefined, String(u.error));
    assert.equal(u.stdout, `${PROOF.machine}\n`, u.stderr);
  });

  await t.test('--uninstall with --install-dir from the image removes the entries, the persisted lines and the copies', () => {
    const out = register('--uninstall', '--install-dir', inst, '--persist-dir', persist);
    for (const c of TARGETS) assert.match(out, new RegExp(`^removed ${inst}/qemu-${c}-static$`, 'm'));
    assert.deepEqual(listing(inst), []);
    assert.deepEqual(listing(persist), []);
    assert.deepEqual(qemuEntries(), []);
  });

  t.diagnostic(`reboot system test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
