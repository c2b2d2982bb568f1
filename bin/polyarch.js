#!/usr/bin/env node
// `npx polyarch` runs right after `npm ci` with no build step: load the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./polyarch.ts');
