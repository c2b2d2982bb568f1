// A private OpenSSH server on loopback for system tests: test-generated host and client keys,
// an ephemeral port, root login by key, and optionally a non-root user with passwordless
// sudo (created if missing, with a sudoers.d drop-in; both removed afterwards). The ssh and
// scp clients run the exact strings a test hands them, the way the Pulumi command provider
// runs a command (one SSH exec request) and copies a file (SFTP, relative to the home folder).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { sshOptions } from '../../lib/ssh.ts';
import { hasCommand, isRoot, type Probe } from './system.ts';

export const SSHD = '/usr/sbin/sshd';

export const sshdProbes: Probe[] = [
  isRoot,
  () => (fs.existsSync(SSHD) ? undefined : `needs ${SSHD} (openssh-server)`),
  hasCommand('ssh'),
  hasCommand('scp'),
  hasCommand('ssh-keygen'),
  hasCommand('sudo'),
  hasCommand('useradd'),
];

/** How to reach the server as one user: what a remote.Command connection holds. */
export interface Connection {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey?: string;
}

export interface SshUser {
  name: string;
  home: string;
}

export interface Sshd {
  host: string;
  port: number;
  /** The server's public key, `<type> <base64>`. */
  hostKey: string;
  /** A client key the server accepts for every user, and one it does not. */
  privateKey: string;
  wrongKey: string;
  root: SshUser;
  /** A non-root user with passwordless sudo. */
  sudoUser: SshUser;
  /** Everything sshd logged so far. */
  log(): string;
  /** Stops the server (a host that went away); the test's end does the same. */
  stop(): void;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const SUDO_USER = 'polyarch-ci';

export type KeyType = 'ed25519' | 'rsa';

function keygen(file: string, type: KeyType = 'ed25519'): void {
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '3072'] : []), '-N', '', '-C', 'polyarch-test', '-f', file]);
}

export interface SshdOptions {
  /** The server's only host key type (default ed25519). */
  hostKeyType?: KeyType;
  /** The client key type (default ed25519). */
  clientKeyType?: KeyType;
  /** Accept the client key of another server of this test instead of a new one (one stack key, many hosts). */
  sameClientKeyAs?: Sshd;
}

/** The port the kernel hands out for a listener on 0, free again once this returns. */
async function ephemeralPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

function userHome(name: string): string | undefined {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(':')[5] : undefined;
}

/** The sudo user: created (with a home in `dir`) when missing, removed again when the test ends. */
function ensureSudoUser(t: TestContext, dir: string): SshUser {
  let home = userHome(SUDO_USER);
  if (home === undefined) {
    home = path.join(dir, SUDO_USER);
    // '*' rather than useradd's locked '!': sshd without PAM refuses locked accounts even for keys.
    execFileSync('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/sh', '--password', '*', SUDO_USER]);
    t.after(() => {
      execFileSync('userdel', [SUDO_USER]);
    });
  }
  const dropIn = `/etc/sudoers.d/polyarch-test-${process.pid}`;
  fs.writeFileSync(dropIn, `${SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
  t.after(() => fs.rmSync(dropIn, { force: true }));
  execFileSync('visudo', ['-c', '-q', '-f', dropIn]);
  return { name: SUDO_USER, home };
}

/** Starts sshd for this test; it is stopped (and everything it needed removed) when the test ends. */
export async function startSshd(t: TestContext, o: SshdOptions = {}): Promise<Sshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-sshd-'));
  fs.chmodSync(dir, 0o755); // the sudo user's home may live here
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  keygen(path.join(dir, 'host'), o.hostKeyType);
  if (o.sameClientKeyAs) {
    fs.writeFileSync(path.join(dir, 'client'), o.sameClientKeyAs.privateKey, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'client.pub'), execFileSync('ssh-keygen', ['-y', '-f', path.join(dir, 'client')]));
  } else {
    keygen(path.join(dir, 'client'), o.clientKeyType);
  }
  keygen(path.join(dir, 'wrong'));
  fs.copyFileSync(path.join(dir, 'client.pub'), path.join(dir, 'authorized_keys'));
  const sudoUser = ensureSudoUser(t, dir);
  // sshd refuses to start without its privilege separation folder (normally made by systemd).
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  let logText = '';
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await ephemeralPort();
    const config = path.join(dir, 'sshd_config');
    fs.writeFileSync(
      config,
      [
        'ListenAddress 127.0.0.1',
        `Port ${port}`,
        `HostKey ${path.join(dir, 'host')}`,
        'PidFile none',
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        `AllowUsers root ${SUDO_USER}`,
        'Subsystem sftp internal-sftp',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    const p = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr?.on('data', (d: Buffer) => (logText += d.toString()));
    let exited = false;
    p.once('exit', () => (exited = true));
    for (let i = 0; i < 100 && !exited; i++) {
      if (await accepting(port)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (exited) {
      if (!/Address already in use/.test(logText)) throw new Error(`sshd did not start: ${logText.trim()}`);
      continue; // someone took the port between our probe and sshd's bind
    }
    child = p;
  }
  if (!child) throw new Error(`sshd did not start: ${logText.trim()}`);
  const started = child;
  t.after(() => {
    started.kill();
  });

  const [type, key] = fs.readFileSync(path.join(dir, 'host.pub'), 'utf8').trim().split(' ');
  return {
    host: '127.0.0.1',
    port,
    hostKey: `${type} ${key}`,
    privateKey: fs.readFileSync(path.join(dir, 'client'), 'utf8'),
    wrongKey: fs.readFileSync(path.join(dir, 'wrong'), 'utf8'),
    root: { name: 'root', home: userHome('root') ?? '/root' },
    sudoUser,
    log: () => logText,
    stop: () => void started.kill(),
  };
}

/** ssh/scp options for a connection: its key (in a 0600 temp file) and its host key, if any. */
function clientOptions(c: Connection, dir: string): string[] {
  const keyFile = path.join(dir, 'key');
  fs.writeFileSync(keyFile, c.privateKey, { mode: 0o600 });
  const known = path.join(dir, 'known_hosts');
  // Like the provider: a given host key is checked, a missing one is not.
  if (c.hostKey) fs.writeFileSync(known, `[${c.host}]:${c.port} ${c.hostKey}\n`);
  return sshOptions(keyFile, c.hostKey ? known : undefined);
}

function withClient(c: Connection, run: (options: string[]) => RunResult): RunResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-ssh-'));
  try {
    return run(clientOptions(c, dir));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function result(r: ReturnType<typeof spawnSync>): RunResult {
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Runs `command` as one SSH exec request: the login shell gets exactly this string. */
export function ssh(c: Connection, command: string): RunResult {
  return withClient(c, (o) => result(spawnSync('ssh', [...o, '-p', String(c.port), `${c.user}@${c.host}`, command], { encoding: 'utf8', timeout: 120_000 })));
}

/** Copies a local file, or a folder with everything in it, to `remote` over SFTP (relative paths start in the user's home). */
export function scp(c: Connection, local: string, remote: string): RunResult {
  const recursive = fs.statSync(local).isDirectory() ? ['-r'] : [];
  return withClient(c, (o) => result(spawnSync('scp', [...o, ...recursive, '-P', String(c.port), local, `${c.user}@${c.host}:${remote}`], { encoding: 'utf8', timeout: 120_000 })));
}
