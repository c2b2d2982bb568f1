// On the real engine, every failure a user fixes at program evaluation (bad stack config, a
// truncated lockfile, a lockfile without a host the stack publishes, koji unreachable with a cold
// cache, no lockfile: test/helpers/evaluation-errors.ts) stops `pulumi preview` and `up` with one
// line naming the key, file or URL: no "unhandled exception", no stack frame, and within seconds,
// not the 25 to 40 s the SDK took to source-map a stack thrown at the module's top level. One
// stack serves every case: its config file is rewritten between previews.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import YAML from 'yaml';
import { engineProject, hasEngine, type EngineProject } from '../helpers/engine.ts';
import { evaluationErrors, SECRETS, type EvaluationError } from '../helpers/evaluation-errors.ts';
import { isRoot, requireSystem } from '../helpers/system.ts';

let cases: EvaluationError[] = [];
before(async () => {
  cases = await evaluationErrors();
});

/** The stack's plain config replaced by `config`; its secrets and the passphrase's salt kept. */
function useConfig(p: EngineProject, config: Record<string, unknown>): void {
  const file = path.join(p.dir, `Pulumi.${p.stack}.yaml`);
  const stack = YAML.parse(fs.readFileSync(file, 'utf8')) as { config: Record<string, unknown> };
  const secrets = Object.fromEntries(Object.entries(stack.config).filter(([k]) => k in SECRETS));
  fs.writeFileSync(file, YAML.stringify({ ...stack, config: { ...config, ...secrets } }));
}

/** Runs `pulumi <args>` to its end; `after` is how long the output took to hold a line matching `line`. */
async function timed(p: EngineProject, args: string[], line: RegExp): Promise<{ output: string; code: number; after: number }> {
  const start = performance.now();
  const run = p.start(args);
  let after = Infinity;
  const watch = setInterval(() => {
    if (after === Infinity && line.test(run.output())) after = performance.now() - start;
  }, 25);
  const { code, stdout, stderr } = await run.done;
  clearInterval(watch);
  const output = stdout + stderr;
  if (after === Infinity && line.test(output)) after = performance.now() - start;
  return { output, code, after };
}

/** The line the engine prints for the program's error: `error: <message>`, the message alone. */
const errorLine = (message: RegExp) => new RegExp(`^\\s*error: ${message.source.replace(/^\^/, '')}`, 'm');

function assertOneLine(c: EvaluationError, r: { output: string; code: number }): void {
  assert.notEqual(r.code, 0, `${c.name}: exits non-zero`);
  assert.match(r.output, errorLine(c.message), `${c.name}: the line, alone after "error: "\n${r.output}`);
  assert.doesNotMatch(r.output, /unhandled exception/, `${c.name}: no "unhandled exception"\n${r.output}`);
  assert.doesNotMatch(r.output, /^\s+at /m, `${c.name}: no stack frame\n${r.output}`);
  if (c.hidden) assert.ok(!r.output.includes(c.hidden), `${c.name}: the plain-text value is not echoed`);
}

test('every failure a user fixes at evaluation: one line, no trace, in seconds, on the real engine', { timeout: 15 * 60_000 }, async (t) => {
  if (!requireSystem(t, isRoot, hasEngine)) return;
  const p = await engineProject(t, 'evaluation-errors', { secrets: SECRETS });

  // `up`, the command the issue timed, on a bad config: the line within seconds.
  const [bad] = cases;
  useConfig(p, bad!.config);
  const up = await timed(p, ['up', '--yes'], errorLine(bad!.message));
  assertOneLine(bad!, up);
  t.diagnostic(`${bad!.name}: pulumi up printed the error line after ${(up.after / 1000).toFixed(1)} s`);
  assert.ok(up.after < 15_000, `pulumi up took ${up.after} ms to print the error line`);

  for (const c of cases) {
    useConfig(p, c.config);
    const preview = await timed(p, ['preview'], errorLine(c.message));
    assertOneLine(c, preview);
    t.diagnostic(`${c.name}: pulumi preview printed the error line after ${(preview.after / 1000).toFixed(1)} s`);
    // koji unreachable: an RPM's download is retried 4 times with backoff (7.5 to 15 s) first;
    // the host's other downloads stop with it, else their retries would double that.
    assert.ok(preview.after < (/koji/.test(c.name) ? 22_000 : 15_000), `${c.name}: ${preview.after} ms to the error line`);
  }
});
