// The CI workflows: they parse, every job has what GitHub requires, and they agree with the
// repository (the stacks that exist, the hosts they publish, the README's test command).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { parseHostArch } from '../lib/cpus.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const DIR = path.join(ROOT, '.github/workflows');

interface Step { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string>; id?: string }
interface Job { 'runs-on': string; needs?: string | string[]; steps: Step[]; strategy?: { matrix: Record<string, unknown[]>; 'max-parallel'?: number } }
interface Workflow { name: string; on: Record<string, unknown>; permissions?: Record<string, string>; jobs: Record<string, Job> }

const load = (file: string): Workflow => parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as Workflow;
const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
const pulumiStep = (job: Job) => job.steps.find((s) => s.uses?.startsWith('pulumi/actions@'));

/** Stacks that publish: every Pulumi.<stack>.yaml but the embedded dev default. */
const publishingStacks = fs.readdirSync(ROOT).map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1]).filter((s): s is string => !!s && s !== 'dev').sort();
const stackHosts = (stack: string): string[] => {
  const config = (parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> }).config;
  return (config['polyarch:hosts'] as string[] | undefined) ?? ['x86_64'];
};

describe('workflows', () => {
  const files = fs.readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();

  test('there is one for pull requests, one for main, one weekly', () => {
    assert.deepEqual(files, ['preview.yml', 'up.yml', 'update-qemu.yml']);
  });

  for (const file of files) {
    test(`${file}: every job has a runner and steps, every step uses or runs, every script is valid bash`, () => {
      const w = load(file);
      assert.ok(w.name && w.on && Object.keys(w.jobs).length > 0, `${file}: name, on and jobs are required`);
      for (const [name, job] of Object.entries(w.jobs)) {
        assert.match(job['runs-on'], /^ubuntu-/, `${file}: job ${name} runs-on`);
        assert.ok(job.steps.length > 0, `${file}: job ${name} has steps`);
        for (const needed of [job.needs ?? []].flat()) assert.ok(w.jobs[needed], `${file}: job ${name} needs unknown job ${needed}`);
        for (const step of job.steps) {
          assert.ok(!!step.uses !== !!step.run, `${file}: job ${name}: a step has exactly one of uses and run`);
          if (step.uses) assert.match(step.uses, /^[\w.-]+\/[\w.-]+@v\d+$/, `${file}: actions are pinned to a major version`);
          // GitHub expressions are substituted before bash sees the script.
          if (step.run) execFileSync('bash', ['-n'], { input: step.run.replace(/\$\{\{[^}]*\}\}/g, 'x') });
        }
      }
    });
  }

  test('the RPM cache is keyed by the lockfile everywhere', () => {
    const caches = files.flatMap((f) => steps(load(f))).filter((s) => s.uses?.startsWith('actions/cache@'));
    assert.ok(caches.length >= 3);
    for (const c of caches) {
      assert.equal(c.with?.path, '.cache/rpms');
      assert.equal(c.with?.key, "rpms-${{ hashFiles('qemu.lock.json') }}");
    }
  });
});

describe('pull requests: tests, then one preview comment per stack', () => {
  const w = load('preview.yml');
  test('runs on pull requests with permission to comment', () => {
    assert.ok('pull_request' in w.on);
    assert.equal(w.permissions?.['pull-requests'], 'write');
  });
  test("the tests are the README's test command", () => {
    assert.ok(w.jobs.test!.steps.some((s) => s.run === 'bash .ci/run'));
    assert.match(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8'), /bash \.ci\/run/);
  });
  test('previews every publishing stack with a diff, one PR comment each', () => {
    const job = w.jobs.preview!;
    assert.deepEqual([...job.strategy!.matrix.stack!].sort(), publishingStacks);
    assert.deepEqual(publishingStacks, ['dockerhub', 'ghcr', 'quay']);
    const p = pulumiStep(job)!;
    assert.equal(p.with?.command, 'preview');
    assert.equal(p.with?.diff, true);
    assert.equal(p.with?.['comment-on-pr'], true);
    assert.equal(p.with?.['edit-pr-comment'], true, 'a new push edits the stack’s comment instead of adding one');
    assert.match(String(p.with?.['stack-name']), /\$\{\{ matrix\.stack \}\}$/);
    assert.equal(p.env?.PULUMI_ACCESS_TOKEN, '${{ secrets.PULUMI_ACCESS_TOKEN }}');
    assert.deepEqual(job.needs, 'test');
  });
});

describe('main: pulumi up for every stack', () => {
  const w = load('up.yml');
  test('runs on pushes to main, after the tests, one stack at a time', () => {
    assert.deepEqual((w.on.push as { branches: string[] }).branches, ['main']);
    const job = w.jobs.up!;
    assert.equal(job.needs, 'test');
    assert.equal(job.strategy?.['max-parallel'], 1);
    assert.deepEqual([...job.strategy!.matrix.stack!].sort(), publishingStacks);
    assert.equal(pulumiStep(job)?.with?.command, 'up');
  });
});

describe('weekly: a newer QEMU becomes a pull request', () => {
  const w = load('update-qemu.yml');
  const run = steps(w).find((s) => s.run?.includes('polyarch lock'))!.run!;
  test('is scheduled weekly', () => {
    const cron = (w.on.schedule as { cron: string }[])[0]!.cron.split(' ');
    assert.equal(cron.length, 5);
    assert.match(cron[4]!, /^[0-6]$/, 'one day of the week');
  });
  test('locks the newest build for every host any stack publishes', () => {
    assert.match(run, /polyarch lock --latest /);
    const hosts = /--hosts (\S+)/.exec(run)![1]!.split(',').map((h) => parseHostArch(h));
    for (const stack of [...publishingStacks, 'dev']) {
      for (const h of stackHosts(stack)) assert.ok(hosts.includes(parseHostArch(h)), `stack ${stack} publishes ${h}, which the weekly lock leaves out`);
    }
  });
  test('opens a pull request with the lockfile only', () => {
    const pr = steps(w).find((s) => s.uses?.startsWith('peter-evans/create-pull-request@'))!;
    assert.equal(pr.with?.['add-paths'], 'qemu.lock.json');
    assert.equal(w.permissions?.['pull-requests'], 'write');
  });
});

test('preview and up run the engine release that engine/go.mod pins', () => {
  const pinned = /github\.com\/pulumi\/pulumi\/pkg\/v3 v(\S+)/.exec(fs.readFileSync(path.join(ROOT, 'engine/go.mod'), 'utf8'))![1];
  for (const file of ['preview.yml', 'up.yml']) {
    const jobs = Object.values(load(file).jobs).filter((j) => pulumiStep(j));
    assert.ok(jobs.length > 0, file);
    for (const j of jobs) assert.equal(String(pulumiStep(j)!.with?.['pulumi-version']), pinned, file);
  }
});
