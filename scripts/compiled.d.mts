// Types of scripts/compiled.mjs, for the TypeScript that imports it (the benchmarks).
export const BUILD_DIR: string;
export const CLI_BUNDLE: string;
export const STAMP: string;
export const SOURCES: readonly string[];
export function sourceDigest(root: string): string;
export function buildIsFresh(root: string): boolean;
export function compiledUrl(root: string, rel: string): string | undefined;
export function compiledCliUrl(root: string): string | undefined;
