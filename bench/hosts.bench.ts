// One build host with every target the fixture publishes, on the real engine against a loopback
// sshd: the first `pulumi up` and the no-change `up` of this project, against two baselines
// measured in the same run on the same host and files:
//   shell  — what a hand-written deploy does: `scp -r` of the upload folder, then `ssh` running
//            the very same register string (the floor: no engine at all);
//   per-file — the design before this one: a program of its own with one CopyToRemote (one SSH
//            connection) per emulator, then the same register Command.
// Cache state: warm (the emulators are extracted and the engine built before the first timing);
// each round starts from an unregistered host and a fresh stack. Needs root and binfmt_misc;
// restores the machine's entries when done. Prints medians in seconds and ratios to the shell.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { planBuildHost, stageUpload, writeRegisterScript } from '../lib/build-host.ts';
import { parseStackConfig } from '../lib/config.ts';
import { prepareStackEmulators } from '../lib/emulators.ts';
import { readEntries, restoreEntries } from '../test/helpers/binfmt.ts';
import { engineProject, hasEngine } from '../test/helpers/engine.ts';
import { fixtureLock } from '../test/helpers/program.ts';
import { scp, ssh, startSshd } from '../test/helpers/sshd.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cleanups: (() => unknown)[] = [];
/** The test helpers' TestContext, for a script: what they register runs at the end. */
const ctx = { after: (fn: () => unknown) => void cleanups.push(fn), diagnostic: () => {} } as unknown as TestContext;

async function seconds(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0 || hasEngine() !== undefined) {
    console.log('hosts bench: skipped (needs root, binfmt_misc and the engine)');
    return;
  }
  const entries = readEntries();
  cleanups.push(() => restoreEntries(entries));
  const sshd = await startSshd(ctx);
  const lock = await fixtureLock(['x86_64']);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-bench-hosts-'));
  cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
  const host = { name: 'bench', address: sshd.host, port: sshd.port, user: 'root', hostKey: sshd.hostKey, persist: false, emulatorDir: path.join(work, 'lib') };
  const hostEmulators = await prepareStackEmulators({ lockFile: lock.file, hosts: ['x86_64'], targets: ['all'], cacheDir: lock.cacheDir }, lock.lock);
  const buildHost = parseStackConfig({ buildHosts: JSON.stringify([host]) }, new Set(['sshPrivateKey'])).buildHosts[0]!;
  const plan = planBuildHost(buildHost, hostEmulators, await writeRegisterScript(path.join(work, 'scripts')));
  const upload = await stageUpload(plan, path.join(work, 'uploads'));
  const conn = { host: sshd.host, port: sshd.port, user: 'root', privateKey: sshd.privateKey, hostKey: sshd.hostKey };
  const check = (what: string, r: { code: number; stderr: string }) => {
    if (r.code !== 0) throw new Error(`${what}: ${r.stderr}`);
  };
  console.log(`one host, ${plan.targets.length} targets, ${plan.files.length} files (${(plan.files.reduce((n, f) => n + fs.statSync(f.local).size, 0) / 1e6).toFixed(1)} MB), ${ROUNDS} rounds, warm caches`);

  // The per-file program: one CopyToRemote per file into the same upload folder, then the same command.
  const perFile = {
    'Pulumi.yaml': 'name: per-file\nruntime: nodejs\n',
    'package.json': '{"name":"per-file","main":"index.js"}\n',
    'index.js': [
      "const pulumi = require('@pulumi/pulumi');",
      "const command = require('@pulumi/command');",
      `const plan = ${JSON.stringify({ files: plan.files, create: plan.create, delete: plan.delete })};`,
      `const connection = { host: '${sshd.host}', port: ${sshd.port}, user: 'root', hostKey: '${sshd.hostKey}', privateKey: new pulumi.Config().requireSecret('key') };`,
      'const copies = plan.files.map((f) => new command.remote.CopyToRemote(`copy-${f.name}`, { connection, source: new pulumi.asset.FileAsset(f.local), remotePath: f.remote }));',
      "new command.remote.Command('register', { connection, create: plan.create, delete: plan.delete, addPreviousOutputInEnv: false }, { dependsOn: copies });",
      '',
    ].join('\n'),
  };

  const times: Record<string, number[]> = { shell: [], 'per-file up': [], 'ours: first up': [], 'ours: no-change up': [] };
  for (let round = 0; round < ROUNDS; round++) {
    times.shell!.push(
      await seconds(() => {
        check('scp', scp(conn, upload, '.'));
        check('register', ssh(conn, plan.create));
      }),
    );
    check('unregister', ssh(conn, plan.delete));

    const old = await engineProject(ctx, `per-file-${round}`, { program: perFile, secrets: { 'per-file:key': sshd.privateKey } });
    times['per-file up']!.push(await seconds(() => old.ok(['up', '--yes'])));
    await old.ok(['destroy', '--yes']);

    const p = await engineProject(ctx, `ours-${round}`, {
      config: { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': lock.cacheDir, 'polyarch:hosts': ['x86_64'], 'polyarch:release': false, 'polyarch:buildHosts': [host] },
      secrets: { 'polyarch:sshPrivateKey': sshd.privateKey },
    });
    times['ours: first up']!.push(await seconds(() => p.ok(['up', '--yes'])));
    times['ours: no-change up']!.push(await seconds(() => p.ok(['up', '--yes', '--expect-no-changes'])));
    await p.ok(['destroy', '--yes']);
  }
  const shell = median(times.shell!);
  for (const [name, xs] of Object.entries(times)) console.log(`${name.padEnd(22)} ${median(xs).toFixed(2).padStart(7)} s   ${(median(xs) / shell).toFixed(2)}x shell`);
  console.log(`per-file / ours (first up): ${(median(times['per-file up']!) / median(times['ours: first up']!)).toFixed(2)}x`);
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
