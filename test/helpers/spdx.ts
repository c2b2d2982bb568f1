// SPDX's own validator for the SBOM tests: `pyspdxtools` from PyPI's spdx-tools, installed once
// into a venv outside the repository by scripts/spdx-tools.sh (pinned versions and hashes).
// Where it cannot be had (no Python 3.11+, no venv module, no package index the first time),
// a test that needs it skips with the reason, or fails in CI (requireSystem(t, hasSpdxTools)).
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Probe } from './system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

let bin: string | undefined;
let failure: string | undefined;

/** The folder holding `pyspdxtools`, installed by scripts/spdx-tools.sh on first use (seconds) or taken from its cache. */
export function spdxToolsBin(): string {
  if (bin) return bin;
  if (failure) throw new Error(failure);
  try {
    const out = execFileSync('bash', [path.join(ROOT, 'scripts/spdx-tools.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10 * 60_000 });
    bin = out.trim().split('\n').pop()!;
    return bin;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    const lines = (err.stderr ?? '').trim().split('\n');
    failure = `scripts/spdx-tools.sh failed: ${[...lines].reverse().find((l) => l.startsWith('error: ')) ?? lines.pop() ?? err.message.split('\n')[0]}`;
    throw new Error(failure);
  }
}

export const hasSpdxTools: Probe = () => {
  try {
    spdxToolsBin();
    return undefined;
  } catch (e) {
    return `needs pyspdxtools: ${(e as Error).message}`;
  }
};

/**
 * Validates an SPDX 2.2/2.3 document with `pyspdxtools -i <file>` (the format comes from the
 * file's name: `.spdx.json`, `.json`, `.yaml`, `.spdx`, ...). Resolves when the tool finds it
 * valid; throws an Error carrying the tool's report when it does not.
 */
export async function validateSpdx(file: string): Promise<void> {
  const tool = path.join(spdxToolsBin(), 'pyspdxtools');
  try {
    await run(tool, ['-i', file], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as Error & { code?: unknown; stdout?: string; stderr?: string };
    if (typeof err.code !== 'number') throw e;
    const report = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim().replace(/^ERROR:root:/gm, '');
    throw new Error(`pyspdxtools finds ${file} invalid (exit ${err.code}):\n${report}`);
  }
}
