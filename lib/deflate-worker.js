// Worker body for lib/deflate-pool.ts. Plain JavaScript so it starts under any loader
// (tsx, Pulumi's runtime, plain node) without TypeScript hooks in the worker.
// libdeflate runs here, natively when the pool hands over the Node-API module's path, else as
// WebAssembly: the same release either way, so the same input and level give the same DEFLATE
// bytes on every CPU and Node version, which Node's bundled zlib does not promise (its hash
// depends on the CPU's CRC32C instructions and on the zlib revision each Node release ships).
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const { deflate } = workerData?.addon ? createRequire(import.meta.url)(workerData.addon) : await import('libdeflate');

parentPort.on('message', ({ id, input, level }) => {
  try {
    const output = deflate(input, level);
    parentPort.postMessage({ id, output }, [output.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
