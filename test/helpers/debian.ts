// Debian packages as test inputs: `apt-get download` into a cache under ~/.cache/polyarch/debs,
// unpacked with `dpkg-deb -x`, never committed. Foreign architectures must have been added
// with `dpkg --add-architecture` (.ci/run does it).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Outside the repository and the test run's own TMPDIR (removed after every run), so the
// downloads are made once per machine.
export const DEB_CACHE = process.env.POLYARCH_DEB_CACHE ?? path.join(os.homedir(), '.cache/polyarch/debs');

/** Unpacks `pkg:arch` (downloading it once) and returns the folder holding its files. */
export function debianPackage(pkg: string, arch: string): string {
  if (!/^[a-z0-9][a-z0-9.+-]*$/.test(pkg) || !/^[a-z0-9]+$/.test(arch)) throw new Error(`bad package ${pkg}:${arch}`);
  fs.mkdirSync(DEB_CACHE, { recursive: true });
  const root = path.join(DEB_CACHE, `${pkg}_${arch}`);
  const done = path.join(root, '.unpacked');
  if (fs.existsSync(done)) return root;
  const find = () => fs.readdirSync(DEB_CACHE).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(`_${arch}.deb`));
  if (!find()) {
    try {
      execFileSync('apt-get', ['download', '-q', `${pkg}:${arch}`], { cwd: DEB_CACHE, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim() ?? '';
      throw new Error(`apt-get download ${pkg}:${arch} failed (is the ${arch} architecture added and apt-get update run?): ${stderr}`);
    }
  }
  const deb = find();
  if (!deb) throw new Error(`apt-get download ${pkg}:${arch} left no .deb in ${DEB_CACHE}`);
  fs.rmSync(root, { recursive: true, force: true });
  execFileSync('dpkg-deb', ['-x', path.join(DEB_CACHE, deb), root]);
  fs.writeFileSync(done, '');
  return root;
}

/** A root filesystem under `dir`: Debian's static busybox for `arch` with a link per applet (the list is the same for every arch). */
export function busyboxRoot(dir: string, arch: string): string {
  const root = path.join(dir, `rootfs-${arch}`);
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  for (const d of ['usr/bin', 'tmp', 'proc', 'sys', 'dev', 'etc']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync(path.join(debianPackage('busybox-static', arch), 'bin', 'busybox'), path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(path.join(debianPackage('busybox-static', 'amd64'), 'bin', 'busybox'), ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  return root;
}
