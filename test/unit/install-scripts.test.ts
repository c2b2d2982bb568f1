// npm 11's allowScripts (package.json): every dependency with an install script is decided, so
// `npm ci` prints no "not yet covered by allowScripts" list for a user to judge, and npm 12,
// which skips undecided scripts, runs the same ones. Entries are by name: the lockfile holds no
// `resolved` URLs, and npm matches a pinned `pkg@1.2.3` entry only through one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => JSON.parse(fs.readFileSync(path.join(ROOT, file), 'utf8')) as Record<string, unknown>;

test('allowScripts decides every locked dependency with an install script, and nothing else', () => {
  const lock = read('package-lock.json') as { packages: Record<string, { hasInstallScript?: boolean }> };
  const withScripts = new Set<string>();
  for (const [where, p] of Object.entries(lock.packages)) {
    // The package's name is what follows its last node_modules/ (scoped names keep their slash).
    if (p.hasInstallScript && where !== '') withScripts.add(where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length));
  }
  const allow = read('package.json').allowScripts as Record<string, boolean>;
  assert.deepEqual(Object.keys(allow).sort(), [...withScripts].sort());
  // esbuild's postinstall checks its platform binary, which the build (npm's prepare) and tsx run.
  // The Pulumi packages' install runs `pulumi plugin install`, a download scripts/engine.sh or
  // Pulumi itself at the first preview does instead; protobufjs's only checks a version prefix.
  assert.deepEqual(allow, { esbuild: true, '@pulumi/command': false, '@pulumi/docker-build': false, protobufjs: false });
});
