// Worker body for lib/zstd-pool.ts. Plain JavaScript so it starts under any loader
// (tsx, Pulumi's runtime, plain node) without TypeScript hooks in the worker.
// zstd runs here natively when the pool hands over the Node-API module's path, else zstddec's
// WebAssembly; each gives exactly `size` bytes when the package declares a size, else streams
// and stops past `max`.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { clock, tid } from './worker-clock.js';

const native = workerData?.addon ? createRequire(import.meta.url)(workerData.addon) : undefined;
let decoder;
let ready;
if (!native) {
  const { ZSTDDecoder } = await import('zstddec/stream');
  decoder = new ZSTDDecoder();
  ready = decoder.init();
}

function decodeWasm(input, size, max) {
  if (size !== undefined && size <= max) {
    // One exact-size output buffer; the decoder yields nothing when the data does not fit it.
    const out = decoder.decode(input, size);
    if (out.length === 0 && size > 0) throw new Error('corrupt zstd stream or wrong declared size');
    return out;
  }
  const parts = [];
  let total = 0;
  for (const chunk of decoder.decodeStreaming([input])) {
    total += chunk.length;
    if (total > max) throw new Error(`decompresses past ${max} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts, total);
}

parentPort.on('message', async ({ id, input, size, max }) => {
  await ready;
  const start = clock();
  try {
    const output = native ? native.decompress(input, size, max) : decodeWasm(input, size, max);
    parentPort.postMessage({ id, output, start, end: clock(), tid }, [output.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
