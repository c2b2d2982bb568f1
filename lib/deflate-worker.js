// Worker body for lib/deflate-pool.ts. Plain JavaScript so it starts under any loader
// (tsx, Pulumi's runtime, plain node) without TypeScript hooks in the worker.
// libdeflate runs here, natively when the pool hands over the Node-API module's path, else as
// WebAssembly: the same release either way, so the same input and level give the same DEFLATE
// bytes on every CPU and Node version, which Node's bundled zlib does not promise (its hash
// depends on the CPU's CRC32C instructions and on the zlib revision each Node release ships).
// While the input is at hand, the worker also takes its CRC-32 (for the gzip trailer) and the
// SHA-1 of a range of it (the emulator inside a tarball, for the SBOM): the input is read here
// and nowhere else.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { parentPort, workerData } from 'node:worker_threads';
import { clock, tid } from './worker-clock.js';

const lib = workerData?.addon ? createRequire(import.meta.url)(workerData.addon) : await import('libdeflate');
// The WebAssembly package has no CRC-32; zlib's gives the same number.
const crc32 = lib.crc32 ?? zlibCrc32;

parentPort.on('message', ({ id, input, level, sha1Of }) => {
  const start = clock();
  try {
    const output = lib.deflate(input, level);
    const facts = { crc32: crc32(input) };
    if (sha1Of) facts.sha1 = createHash('sha1').update(input.subarray(sha1Of[0], sha1Of[1])).digest('hex');
    // The input's memory goes back too, for the next job's input (lib/deflate-pool.ts inputBuffer).
    parentPort.postMessage({ id, output, facts, input, start, end: clock(), tid }, [output.buffer, input.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
});
