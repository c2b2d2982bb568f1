// The program in a repository that has pinned no QEMU build yet: `pulumi preview` and `up`
// stop with one line that says how to pin the first one, instead of a stack trace.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { lockCommand } from '../../components/stack-config.ts';
import { loadProgram } from '../helpers/program.ts';

test('without a lockfile the program stops with one line: the workflow to run by hand, or the command', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-nolock-')), 'qemu.lock.json');
  const error = await loadProgram({ 'polyarch:lockFile': file }).then(
    () => assert.fail('the program ran without a lockfile'),
    (e: unknown) => e as Error,
  );
  // The language host prints a RunError's message alone; any other error comes with its stack.
  assert.ok(pulumi.RunError.isInstance(error), `a RunError, not ${String(error)}`);
  assert.doesNotMatch(error.message, /\n/, 'one line');
  assert.ok(error.message.startsWith(`${file} is missing: no QEMU build is pinned yet.`), error.message);
  assert.match(error.message, /running the update-qemu workflow by hand/);
  assert.ok(error.message.includes(`\`${lockCommand(file)}\``), error.message);
  assert.equal(lockCommand('x.json'), 'npx polyarch lock --latest --hosts x86_64,aarch64,ppc64le,s390x --out x.json');
});
