// Worker body for lib/zstd-pool.ts. Plain JavaScript so it starts under any loader
// (tsx, Pulumi's runtime, plain node) without TypeScript hooks in the worker.
import { parentPort } from 'node:worker_threads';
import { ZSTDDecoder } from 'zstddec/stream';

const decoder = new ZSTDDecoder();
const ready = decoder.init();

/** Exactly `size` bytes when the package declares a size, else streamed and stopped past `max`. */
function decode(input, size, max) {
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
  try {
    const output = decode(input, size, max);
    parentPort.postMessage({ id, output }, [output.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
