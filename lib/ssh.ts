// One command on a build host over OpenSSH's `ssh`, for the checks that read a host back
// (components/binfmt-check.ts). The command plugin does the writing; this only reads, so it
// runs as the SSH user, without sudo. The private key goes into a 0600 file in a 0700 temp
// folder that is removed before this returns: never on a command line, never in an error.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** How to reach a build host: what its remote.Command connection holds, less the key. */
export interface SshTarget {
  /** The build host's name in stack config, for messages. */
  name: string;
  address: string;
  port: number;
  user: string;
  /** `<type> <base64>`; without it the host key is not checked (as the command plugin does). */
  hostKey?: string;
}

/** Seconds to wait for the TCP connection and the SSH handshake; the command plugin's per-dial timeout. */
export const CONNECT_TIMEOUT_S = 10;

/** A build host that could not be reached or whose command failed; one line, naming the host. */
export class SshError extends Error {
  override name = 'SshError';
}

/**
 * OpenSSH client options (ssh and scp) for one key file: no user config, agent or other key, no
 * prompt, a bounded connect, and the host key checked against `knownHosts` when one is given.
 */
export function sshOptions(keyFile: string, knownHosts: string | undefined): string[] {
  // -F /dev/null: the user's ~/.ssh/config must not change where or how we connect.
  return [
    '-F', '/dev/null',
    '-i', keyFile,
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'IdentityAgent=none',
    '-o', `ConnectTimeout=${CONNECT_TIMEOUT_S}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', `UserKnownHostsFile=${knownHosts ?? '/dev/null'}`,
    '-o', `StrictHostKeyChecking=${knownHosts ? 'yes' : 'no'}`,
    '-o', 'LogLevel=ERROR',
  ];
}

/** Runs `command` (one SSH exec request) and returns its stdout; bounded by `timeoutMs` overall. */
export async function sshRun(target: SshTarget, privateKey: string, command: string, o: { timeoutMs?: number } = {}): Promise<string> {
  const where = `build host "${target.name}" (${target.user}@${target.address}:${target.port})`;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'polyarch-ssh-'));
  try {
    const key = path.join(dir, 'key');
    await fs.writeFile(key, privateKey.endsWith('\n') ? privateKey : `${privateKey}\n`, { mode: 0o600 });
    const known = path.join(dir, 'known_hosts');
    if (target.hostKey) await fs.writeFile(known, `[${target.address}]:${target.port} ${target.hostKey}\n`);
    const args = [
      ...sshOptions(key, target.hostKey ? known : undefined),
      '-o', 'ConnectionAttempts=1',
      '-o', 'ServerAliveInterval=10',
      '-o', 'ServerAliveCountMax=3',
      '-p', String(target.port),
      '-l', target.user,
      '--', target.address, command,
    ];
    return await new Promise<string>((resolve, reject) => {
      execFile('ssh', args, { encoding: 'utf8', timeout: o.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        if (e.code === 'ENOENT') return reject(new SshError(`${where}: no ssh client on this machine (install OpenSSH's client)`));
        if (e.killed) return reject(new SshError(`${where}: no answer within ${Math.round((o.timeoutMs ?? 120_000) / 1000)} s`));
        const last = stderr.trim().split('\n').filter(Boolean).pop() ?? `exit ${e.code}`;
        reject(new SshError(`${where}: ${last}`));
      });
    });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
