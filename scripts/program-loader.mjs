// The program's loader (Pulumi.yaml: `nodeargs: --import ./scripts/program-loader.mjs`; the
// language host runs node in the project folder). With a fresh build, the engine's import of
// index.ts goes to dist/index.js, whose imports are JavaScript already; otherwise tsx loads the
// TypeScript, as `--import tsx` did. tsx's hooks also lex every CommonJS file @pulumi/pulumi
// requires, and its source maps slow each resource's stack capture: a fresh build skips both.
import { register } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUILD_DIR, buildIsFresh } from './compiled.mjs';

const root = path.resolve(import.meta.dirname, '..');

if (buildIsFresh(root)) {
  const project = pathToFileURL(`${root}/`).href;
  register('./program-hooks.mjs', import.meta.url, { data: { project, build: `${project}${BUILD_DIR}/` } });
} else {
  await import('tsx');
}
