// Types of scripts/compiled.mjs, for the TypeScript that imports it (bench/startup.bench.ts).
export const BUILD_DIR: string;
export const STAMP: string;
export const SOURCES: readonly string[];
export function sourceDigest(root: string): string;
export function buildIsFresh(root: string): boolean;
export function compiledUrl(root: string, rel: string): string | undefined;
