#!/usr/bin/env node
// `npx polyarch` runs right after `npm ci` with no build step of its own: the compiled CLI that
// npm's `prepare` wrote to dist/ when it matches the sources (scripts/compiled.mjs), else the
// TypeScript through tsx, which transpiles on every start.
import { fileURLToPath } from 'node:url';
import { compiledUrl } from '../scripts/compiled.mjs';

const built = compiledUrl(fileURLToPath(new URL('..', import.meta.url)), 'bin/polyarch.ts');
if (built) {
  await import(built);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./polyarch.ts');
}
