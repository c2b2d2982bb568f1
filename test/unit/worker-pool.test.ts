// The worker pool behind the compressor and the zstd decoder: answers come back to the job that
// asked, and a worker that dies fails the jobs it had (none waits forever) and is replaced.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { WorkerPool } from '../../lib/worker-pool.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-pool-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

/** A worker body from source text, as a module file. */
function body(name: string, source: string): URL {
  const file = path.join(dir, `${name}.mjs`);
  fs.writeFileSync(file, `import { parentPort, workerData } from 'node:worker_threads';\n${source}\n`);
  return pathToFileURL(file);
}

// Echoes the job's text upper-cased; `crash` ends the worker, `fail` answers with an error.
const echo = body(
  'echo',
  `parentPort.on('message', ({ id, text, crash, fail }) => {
    if (crash) process.exit(7);
    if (fail) return parentPort.postMessage({ id, error: 'no: ' + text });
    parentPort.postMessage({ id, output: Buffer.from(workerData.prefix + text.toUpperCase()), facts: { length: text.length } });
  });`,
);

test('each answer reaches its own job, and a job-level error is that job\'s alone', async () => {
  const pool = new WorkerPool('echo', echo, () => ({ prefix: '>' }));
  const words = Array.from({ length: 40 }, (_, i) => `word${i}`);
  const got = await Promise.all(words.map((text) => pool.run({ text })));
  assert.deepEqual(got.map((a) => a.output.toString()), words.map((w) => `>${w.toUpperCase()}`));
  // What the worker learnt of the job comes back with its own answer.
  assert.deepEqual(got.map((a) => a.facts.length), words.map((w) => w.length));
  await assert.rejects(pool.run({ text: 'x', fail: true }), { message: 'no: x' });
  assert.equal((await pool.run({ text: 'after' })).output.toString(), '>AFTER');
});

test('a worker that dies fails every job out with one line, and the next job gets a new pool', async () => {
  const pool = new WorkerPool('echo', echo, () => ({ prefix: '' }));
  const slow = Array.from({ length: 6 }, (_, i) => pool.run({ text: `w${i}` }).then((a) => a.output.toString(), (e: Error) => e.message));
  await assert.rejects(pool.run({ text: 'boom', crash: true }), { message: 'echo: worker exited with code 7' });
  // Jobs already answered keep their answer; the rest failed with the same line, none hangs.
  for (const r of await Promise.all(slow)) assert.match(r, /^(W\d|echo: worker exited with code 7)$/);
  assert.equal((await pool.run({ text: 'again' })).output.toString(), 'AGAIN');
});

test('a worker whose module fails to load fails the job instead of leaving it unanswered', async () => {
  const broken = body('broken', `throw new Error('cannot load the codec');`);
  const pool = new WorkerPool('codec', broken, () => ({}));
  await assert.rejects(pool.run({ text: 'x' }), { message: 'cannot load the codec' });
  await assert.rejects(pool.run({ text: 'y' }), { message: 'cannot load the codec' });
});
