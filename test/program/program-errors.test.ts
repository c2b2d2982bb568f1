// Under mocks, each failure a user fixes at program evaluation (test/helpers/evaluation-errors.ts)
// reaches the SDK as a pulumi.RunError, which the language host prints as its message alone:
// one line naming the key, file or URL. test/engine/evaluation-errors.test.ts runs the same on
// the real engine.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { evaluate } from '../../components/stack-config.ts';
import { evaluationErrors, SECRETS, type EvaluationError } from '../helpers/evaluation-errors.ts';
import { loadProgram } from '../helpers/program.ts';

let cases: EvaluationError[] = [];
before(async () => {
  cases = await evaluationErrors();
});

// Mocks take config as Pulumi hands it over: objects and arrays as JSON text.
const asText = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

test('every failure a user fixes at evaluation is a one-line RunError naming what to fix', async () => {
  assert.ok(cases.length >= 10);
  for (const c of cases) {
    const config = Object.fromEntries(Object.entries(c.config).map(([k, v]) => [k, asText(v)]));
    const error = await loadProgram(config, SECRETS).then(
      () => assert.fail(`${c.name}: the program ran`),
      (e: unknown) => e as Error,
    );
    assert.ok(pulumi.RunError.isInstance(error), `${c.name}: a RunError, not ${String(error)}`);
    assert.doesNotMatch(error.message, /\n/, `${c.name}: one line`);
    assert.match(error.message, c.message, c.name);
    if (c.hidden) assert.ok(!error.message.includes(c.hidden), `${c.name}: the value is not echoed`);
  }
});

test('a bug is no user error: evaluate() passes it on with its type and stack trace', async () => {
  const bug = await evaluate(() => {
    throw new TypeError('cannot read properties of undefined');
  }).catch((e: unknown) => e as Error);
  assert.ok(bug instanceof TypeError);
  assert.equal(pulumi.RunError.isInstance(bug), false);
  assert.match(bug.stack ?? '', /\n\s+at /);
});
