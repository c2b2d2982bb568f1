// Worker body for lib/deflate-pool.ts. Plain JavaScript so it starts under any loader
// (tsx, Pulumi's runtime, plain node) without TypeScript hooks in the worker.
// fflate is pure JavaScript: the same input and level give the same DEFLATE bytes on every
// CPU and Node version, which Node's bundled zlib does not promise (its hash depends on
// the CPU's CRC32C instructions and on the zlib revision each Node release ships).
import { parentPort } from 'node:worker_threads';
import { deflateSync } from 'fflate';

parentPort.on('message', ({ id, input, level, mem }) => {
  try {
    const output = deflateSync(input, mem === undefined ? { level } : { level, mem });
    parentPort.postMessage({ id, output }, [output.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
