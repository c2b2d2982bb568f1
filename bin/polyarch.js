#!/usr/bin/env node
// `npx polyarch` runs right after `npm ci` with no build step of its own: the compiled CLI that
// npm's `prepare` wrote to dist/ (one bundled file, scripts/compiled.mjs CLI_BUNDLE) when it
// matches the sources, else the TypeScript through tsx, which transpiles on every start.
import { fileURLToPath } from 'node:url';
import { compiledCliUrl } from '../scripts/compiled.mjs';

const built = compiledCliUrl(fileURLToPath(new URL('..', import.meta.url)));
if (built) {
  await import(built);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./polyarch.ts');
}
