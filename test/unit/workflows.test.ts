// The CI workflows: they parse, every job has what GitHub requires, and they agree with the
// repository (the stacks that exist, the hosts they publish, the README's test command and
// stack commands). They are also read against how GitHub runs them: the tests as root in a
// privileged Debian container, a bump pull request opened with a token that starts workflows,
// forks without secrets, and a repository that has pinned no QEMU build yet.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { lockCommand } from '../../components/stack-config.ts';
import { parseHostArch } from '../../lib/cpus.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, '.github/workflows');

interface Step { uses?: string; run?: string; if?: string; with?: Record<string, unknown>; env?: Record<string, string>; id?: string }
interface Container { image: string; options?: string; volumes?: string[] }
interface Job {
  'runs-on': string;
  env?: Record<string, string>;
  permissions?: Record<string, string>;
  if?: string;
  needs?: string | string[];
  container?: Container;
  defaults?: { run?: { shell?: string } };
  steps: Step[];
  strategy?: { matrix: Record<string, unknown[]>; 'max-parallel'?: number };
}
interface Workflow { name: string; on: Record<string, unknown>; permissions?: Record<string, string>; jobs: Record<string, Job> }

const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
const load = (file: string): Workflow => parse(read(path.join('.github/workflows', file))) as Workflow;
const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
// The step that runs a command; the test jobs' install-only step runs none.
const pulumiStep = (job: Job) => job.steps.find((s) => s.uses?.startsWith('pulumi/actions@') && s.with?.command !== undefined);

/** Where scripts/engine.sh keeps its builds, as the workflows' cache names it. */
const ENGINE_CACHE = '~/.cache/polyarch/engine';

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
    const caches = files.flatMap((f) => steps(load(f))).filter((s) => s.uses?.startsWith('actions/cache@') && s.with?.path !== ENGINE_CACHE);
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
    assert.equal(p.with?.['always-include-summary'], true, 'a comment cut at 64,000 characters keeps its summary');
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
  test('grants only what it uses, to the up job alone: contents for the release, id-token for keyless signing, attestations for provenance', () => {
    assert.deepEqual(w.permissions, { contents: 'read' });
    assert.deepEqual(w.jobs.up!.permissions, { contents: 'write', 'id-token': 'write', attestations: 'write' });
    assert.deepEqual(w.jobs.test!.permissions, { contents: 'read' });
  });
  test('signs keyless: every publishing stack, with the cosign release scripts/engine.sh builds, on the PATH before pulumi up', () => {
    for (const stack of publishingStacks) {
      const config = (parse(read(`Pulumi.${stack}.yaml`)) as { config: Record<string, unknown> }).config;
      assert.equal(config['polyarch:signing'], 'keyless', `stack ${stack} publishes unsigned`);
    }
    const job = w.jobs.up!;
    const installer = job.steps.findIndex((s) => s.uses?.startsWith('sigstore/cosign-installer@'));
    assert.ok(installer >= 0 && installer < job.steps.indexOf(pulumiStep(job)!), 'cosign is installed before pulumi up');
    const pinned = /github\.com\/sigstore\/cosign\/v2 (v\S+)/.exec(read('engine/cosign/go.mod'))?.[1];
    assert.equal(job.steps[installer]!.with?.['cosign-release'], pinned, 'the workflow signs with the cosign the tests verify with');
  });
  test('attests build provenance for every file and image the stack output lists, after pulumi up', () => {
    const job = w.jobs.up!;
    const attest = job.steps.findIndex((s) => s.uses?.startsWith('actions/attest-build-provenance@'));
    const subjects = job.steps.findIndex((s) => s.run?.includes('node scripts/attest-subjects.mjs'));
    assert.ok(subjects > job.steps.indexOf(pulumiStep(job)!) && attest > subjects, 'subjects from the stack output, then the attestation');
    assert.match(job.steps[subjects]!.run!, /pulumi stack output --json --stack polyarch\/\$\{\{ matrix\.stack \}\}/);
    assert.equal(job.steps[attest]!.with?.['subject-checksums'], '${{ runner.temp }}/subjects.txt');
    assert.match(job.steps[subjects]!.run!, /\$RUNNER_TEMP\/subjects\.txt/);
  });
});

test('the dev stack publishes unsigned (no identity, no key on a fresh machine)', () => {
  const config = (parse(read('Pulumi.dev.yaml')) as { config: Record<string, unknown> }).config;
  assert.equal(config['polyarch:signing'] ?? 'none', 'none');
});

test('scripts/attest-subjects.mjs: release files and images by digest, each digest once; a ref without a digest is refused', () => {
  const run = (outputs: unknown) => execFileSync('node', [path.join(ROOT, 'scripts/attest-subjects.mjs')], { input: JSON.stringify(outputs), encoding: 'utf8', stdio: 'pipe' });
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  const c = 'c'.repeat(64);
  assert.equal(
    run({ releaseDigests: { SHA256SUMS: a, 'sbom.spdx.json': b }, imageRefs: { emulators: `localhost:5000/p/q:latest@sha256:${c}`, register: `localhost:5000/p/q:9.2.4-1@sha256:${c}` } }),
    `${a}  SHA256SUMS\n${b}  sbom.spdx.json\n${c}  localhost:5000/p/q\n`,
  );
  assert.throws(() => run({ imageRefs: { emulators: 'localhost:5000/p/q:latest' } }), /imageRefs\.emulators: not a reference by digest/);
  assert.throws(() => run({}), /published nothing to attest/);
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

describe('the tests run where they were made to run: as root in a privileged Debian container', () => {
  const testJobs = ['preview.yml', 'up.yml'].map((file) => [file, load(file).jobs.test!] as const);

  test('preview and up run the same test job', () => {
    assert.deepEqual(testJobs[0]![1], testJobs[1]![1]);
  });

  for (const [file, job] of testJobs) {
    test(`${file}: Debian bookworm, privileged, root; overlay-holding folders on volumes; bash`, () => {
      assert.match(job.container?.image ?? '', /^debian:(bookworm|12)(-slim)?$/, 'Debian, whose archive carries arm64, armel, mipsel ...');
      const options = (job.container?.options ?? '').split(/\s+/);
      assert.ok(options.includes('--privileged'), 'binfmt_misc, dockerd, podman and mounts need a privileged container');
      // Root: the image's default user, never changed, and nothing asks for sudo.
      assert.ok(!options.some((o) => /^(--user|-u)\b/.test(o)), 'the container runs as root');
      for (const step of job.steps) assert.doesNotMatch(step.run ?? '', /\bsudo\b/, 'root needs no sudo');
      assert.deepEqual(job.container?.volumes?.map((v) => v.split(':')[1]).sort(), ['/tmp', '/var/lib/docker'], 'the tests mount overlays there');
      assert.equal(job.defaults?.run?.shell, 'bash', 'the default shell in a job container is sh');
      assert.ok(job.steps.some((s) => s.run === 'bash .ci/run'));
      // A bare Debian image has no git: the checkout would then be a tarball without history.
      const gitAt = job.steps.findIndex((s) => /apt-get install .*\bgit\b/.test(s.run ?? ''));
      const checkoutAt = job.steps.findIndex((s) => s.uses?.startsWith('actions/checkout@'));
      assert.ok(gitAt >= 0 && gitAt < checkoutAt, 'git is installed before the checkout');
      // The runner's Docker socket is taken out so the tests start a dockerd in this container.
      const socketAt = job.steps.findIndex((s) => /umount \/var\/run\/docker\.sock/.test(s.run ?? ''));
      assert.ok(socketAt >= 0 && socketAt < job.steps.findIndex((s) => s.run === 'bash .ci/run'));
      assert.ok(!JSON.stringify(job).includes('secrets.'), 'the tests need no secret, so pull requests from forks run them too');
      // npm packages and the whole suite run here: the token they could read only reads.
      assert.deepEqual(job.permissions, { contents: 'read' });
    });

    test(`${file}: Node 20, the Go that engine/go.mod asks for and cargo; the engine cached by its pins`, () => {
      const node = job.steps.find((s) => s.uses?.startsWith('actions/setup-node@'));
      assert.equal(node?.with?.['node-version'], 20);
      const go = job.steps.find((s) => s.uses?.startsWith('actions/setup-go@'));
      assert.equal(go?.with?.['go-version-file'], 'engine/go.mod');
      assert.ok(go?.id);
      const cache = job.steps.find((s) => s.uses?.startsWith('actions/cache@') && s.with?.path === ENGINE_CACHE);
      assert.ok(cache, `${file}: the engine build is cached`);
      // Every input scripts/engine.sh hashes into its own key: the engine's files, the script, Go.
      assert.equal(cache.with?.key, `engine-\${{ steps.${go.id}.outputs.go-version }}-\${{ hashFiles('engine/**', 'scripts/engine.sh') }}`);
      const idx = (pred: (s: Step) => boolean) => job.steps.findIndex(pred);
      assert.ok(idx((s) => s === cache) < idx((s) => s.run === 'bash .ci/run'), 'restored before .ci/run builds or reuses it');
      // actions/cache keys an entry by its compressor: zstd must be there at restore as at save.
      const zstdAt = idx((s) => /apt-get install .*\bzstd\b/.test(s.run ?? ''));
      assert.ok(zstdAt >= 0 && zstdAt < idx((s) => s.uses?.startsWith('actions/setup-node@') ?? false) && zstdAt < idx((s) => s === cache), 'zstd is installed before the first cache restore');
      // .ci/run requires the native compressor, whose libdeflate source cargo fetches.
      const rustAt = idx((s) => s.uses?.startsWith('actions-rust-lang/setup-rust-toolchain@') ?? false);
      assert.ok(rustAt >= 0 && rustAt < idx((s) => s.run === 'bash .ci/run'), `${file}: cargo is set up before .ci/run`);
      // Without Pulumi's sources beside the checkout, the official language host comes from the
      // pinned release, installed before .ci/run builds the rest of the engine.
      const pulumiAt = idx((s) => s.uses?.startsWith('pulumi/actions@') ?? false);
      assert.ok(pulumiAt >= 0 && pulumiAt < idx((s) => s.run === 'bash .ci/run'), `${file}: Pulumi is installed before .ci/run`);
      assert.equal(job.steps[pulumiAt]!.with?.['pulumi-version'], /github\.com\/pulumi\/pulumi\/pkg\/v3 v(\S+)/.exec(read('engine/go.mod'))![1]);
      assert.equal(job.steps[pulumiAt]!.with?.command, undefined, 'installs only');
      // A bare Debian image has no curl, which the action's rustup installer needs.
      const curlAt = idx((s) => /apt-get install .*\bcurl\b/.test(s.run ?? ''));
      assert.ok(curlAt >= 0 && curlAt < rustAt, `${file}: curl is installed before the Rust toolchain`);
    });
  }

  test('the cached folder is the one scripts/engine.sh builds into', () => {
    assert.match(read('scripts/engine.sh'), /\$\{XDG_CACHE_HOME:-\$HOME\/\.cache\}\/polyarch\/engine/);
  });

  test('.ci/run refuses a system other than Debian, and uses sudo only when not root', () => {
    const run = read('.ci/run');
    assert.match(run, /\[ "\$os_id" != debian \]/);
    assert.match(run, /\[ "\$\(id -u\)" -eq 0 \] \|\| SUDO="sudo"/);
    assert.match(run, /POLYARCH_REQUIRE_SYSTEM=1 npm test$/m);
  });
});

describe('the bump pull request starts workflows', () => {
  const w = load('update-qemu.yml');
  const pr = steps(w).find((s) => s.uses?.startsWith('peter-evans/create-pull-request@'))!;
  const app = steps(w).find((s) => s.uses?.startsWith('actions/create-github-app-token@'));

  test('it is opened with a GitHub App token or a token secret, never GITHUB_TOKEN', () => {
    const token = String(pr.with?.token ?? '');
    assert.ok(token, 'without a token input the action uses GITHUB_TOKEN, whose pull requests start no workflow');
    assert.doesNotMatch(token, /GITHUB_TOKEN|github\.token/i);
    assert.ok(app?.id, 'a GitHub App token step');
    assert.equal(token, `\${{ steps.${app.id}.outputs.token || secrets.QEMU_UPDATE_TOKEN }}`);
    assert.equal(app.with?.['app-id'], '${{ vars.QEMU_UPDATE_APP_ID }}');
    assert.equal(app.with?.['private-key'], '${{ secrets.QEMU_UPDATE_APP_KEY }}');
    // Only with both halves of the App: an ID whose key is missing falls back to the token secret.
    assert.equal(w.jobs.lock!.env?.HAS_APP_KEY, "${{ secrets.QEMU_UPDATE_APP_KEY != '' }}");
    assert.equal(app.if, "vars.QEMU_UPDATE_APP_ID != '' && env.HAS_APP_KEY == 'true'");
    // The workflow's own GITHUB_TOKEN only reads.
    assert.deepEqual(w.permissions, { contents: 'read' });
  });

  test('a missing token fails first, naming what to set', () => {
    const check = w.jobs.lock!.steps[0]!;
    const env = JSON.stringify({ ...w.jobs.lock!.env, ...check.env });
    for (const name of ['QEMU_UPDATE_APP_ID', 'QEMU_UPDATE_APP_KEY', 'QEMU_UPDATE_TOKEN']) assert.ok(check.run?.includes(name) && env.includes(name), name);
    assert.match(check.run!, /::error/);
  });

  test('the README names the secrets and the repository setting', () => {
    const readme = read('README.md');
    for (const name of ['QEMU_UPDATE_APP_ID', 'QEMU_UPDATE_APP_KEY', 'QEMU_UPDATE_TOKEN', 'PULUMI_ACCESS_TOKEN']) assert.ok(readme.includes(`\`${name}\``), name);
    assert.match(readme, /"Allow\s+GitHub\s+Actions\s+to\s+create\s+and\s+approve\s+pull\s+requests"/);
  });
});

describe('a new repository pins its first build by hand', () => {
  const w = load('update-qemu.yml');
  test('the weekly workflow can be started by hand', () => {
    assert.ok('workflow_dispatch' in w.on);
  });
  test('without a lockfile, preview and up name that workflow and the same lock command', () => {
    const run = steps(w).find((s) => s.run?.includes('polyarch lock'))!.run!;
    assert.ok(run.includes(`${lockCommand('qemu.lock.json')} `), `the program's advice is the workflow's command: ${lockCommand('qemu.lock.json')}`);
    assert.equal(w.name, 'update-qemu', 'the name the advice gives');
  });
});

describe('pull requests from forks: the preview is skipped, with the reason', () => {
  const w = load('preview.yml');
  const same = 'github.event.pull_request.head.repo.full_name == github.repository';
  const fork = 'github.event.pull_request.head.repo.full_name != github.repository';
  test('the preview runs only for branches of this repository', () => {
    assert.equal(w.jobs.preview!.if, same);
  });
  test('for a fork, a job says why in the summary and as a notice, and does not fail', () => {
    const skipped = Object.values(w.jobs).find((j) => j.if === fork);
    assert.ok(skipped, 'a job for forks');
    const script = skipped.steps.map((s) => s.run ?? '').join('\n');
    assert.match(script, />> "\$GITHUB_STEP_SUMMARY"/);
    assert.match(script, /::notice /);
    assert.doesNotMatch(script, /exit [1-9]/);
    // The fork's name reaches the script through env, never spliced into it.
    assert.doesNotMatch(script, /\$\{\{/);
  });
});

describe('stack names: the workflows, the README and the stack files agree', () => {
  const readme = read('README.md');
  test('every pulumi step names polyarch/<stack> and creates a missing stack', () => {
    for (const file of ['preview.yml', 'up.yml']) {
      for (const job of Object.values(load(file).jobs).filter((j) => pulumiStep(j))) {
        const p = pulumiStep(job)!;
        assert.equal(p.with?.['stack-name'], 'polyarch/${{ matrix.stack }}', file);
        assert.equal(p.with?.upsert, true, `${file}: upsert creates a stack on first use`);
        assert.deepEqual([...job.strategy!.matrix.stack!].sort(), publishingStacks, file);
      }
    }
  });
  test("the README's stack init and config commands use the same fully qualified names", () => {
    const commands = readme.split('\n').filter((l) => /^\s*pulumi (stack|config) /.test(l));
    const named = commands.flatMap((l) => [...l.matchAll(/(?:--stack|-s|stack init|stack select) (\S+)/g)].map((m) => m[1]!));
    assert.ok(named.length >= publishingStacks.length * 2, `stack commands in the README: ${commands.join(' | ')}`);
    for (const name of named) {
      const m = /^polyarch\/(.+)$/.exec(name);
      assert.ok(m && publishingStacks.includes(m[1]!), `README names stack ${name}; the workflows use polyarch/<one of ${publishingStacks.join(', ')}>`);
    }
    for (const stack of publishingStacks) assert.ok(commands.some((l) => l.includes(`pulumi stack init polyarch/${stack}`)), `README: the one-time pulumi stack init polyarch/${stack}`);
  });
  test('the stack files\' own comments name their stack in full', () => {
    for (const stack of publishingStacks) {
      const names = [...read(`Pulumi.${stack}.yaml`).matchAll(/--stack (\S+?)`/g)].map((m) => m[1]);
      assert.ok(names.length > 0, stack);
      for (const name of names) assert.equal(name, `polyarch/${stack}`, `Pulumi.${stack}.yaml`);
    }
  });
  test('the dev stack file carries no encryptionsalt, and the README says why', () => {
    for (const stack of [...publishingStacks, 'dev']) assert.doesNotMatch(read(`Pulumi.${stack}.yaml`), /^encryptionsalt:/m, stack);
    assert.match(readme, /`encryptionsalt`/);
  });
});
