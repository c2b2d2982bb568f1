// Every committed stack loads and previews on the real engine, and declares exactly what the
// program declares under mocks (test/program/preview-story.test.ts and the program tests assert that
// graph in detail). The committed lockfile is stood in for by one pinned from the fixture
// koji for every host the stacks publish; secrets go in with `pulumi config set --secret`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import YAML from 'yaml';
import { engineProject, hasEngine, parseJson, stepResources, type Step } from '../helpers/engine.ts';
import { fixtureLock, loadProgram } from '../helpers/program.ts';
import { imageMocks } from '../helpers/registry.ts';
import { isRoot, requireSystem } from '../helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SECRETS: Record<string, string> = {
  'polyarch:registryPassword': 'engine-registry-pw-5772',
  'polyarch:githubToken': 'ghp_engineStacksToken1618',
};
const HOSTS = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;

let lock: { file: string; cacheDir: string };
before(async () => {
  lock = await fixtureLock([...HOSTS]);
});


const committed = fs.readdirSync(ROOT).map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1]).filter((s): s is string => !!s).sort();

test('the committed stacks are dev, dockerhub, ghcr and quay', () => {
  assert.deepEqual(committed, ['dev', 'dockerhub', 'ghcr', 'quay']);
});

for (const stack of committed) {
  test(`${stack}: loads and previews on the real engine, declaring what the mocks see`, async (t) => {
    if (!requireSystem(t, isRoot, hasEngine)) return;
    const file = YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> };
    const overrides = { 'polyarch:lockFile': lock.file, 'polyarch:cacheDir': lock.cacheDir };
    const project = await engineProject(t, stack, { from: stack, config: overrides, secrets: SECRETS });

    // With the engine's debug log on stderr, at the most verbose level that Pulumi keeps free
    // of secrets (from -v=7 on, the engine prints resource inputs with secret values itself).
    const preview = await project.ok(['preview', '--json', '-v=6', '--logtostderr', '--logflow']);
    assert.ok(preview.stderr.length > 10_000, 'the engine log was captured');
    const { steps, diagnostics = [] } = parseJson<{ steps: Step[]; diagnostics?: { severity: string; message: string }[] }>(preview.stdout);
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
    assert.ok(steps.every((s) => s.op === 'create'), 'a new stack only creates');

    // The same config under mocks, as Pulumi hands it to the program (objects as JSON text).
    const asText = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
    const config = Object.fromEntries(Object.entries({ ...file.config, ...overrides }).map(([k, v]) => [k, asText(v)]));
    pulumi.runtime.setMocks(imageMocks, 'qemu-user-static', stack, true);
    const { resources } = await loadProgram(config, SECRETS);
    const mocked = resources.map((r) => `${r.type} ${r.name}`).filter((r) => !r.startsWith('pulumi:providers:')).sort();
    assert.deepEqual(stepResources(steps), mocked);

    // What the program computes at evaluation shows in the preview as values, not unknowns; a
    // signature bundle is made during the update (keyless signing needs the job's identity).
    const assets = steps.filter((x) => /Asset$/.test(x.newState?.type ?? ''));
    for (const s of assets.filter((x) => !String(x.newState!.inputs.name).endsWith('.cosign.bundle'))) {
      assert.match(String(s.newState!.inputs.sha256), /^[0-9a-f]{64}$/, `${s.urn}: digest known at preview`);
    }
    const bundles = assets.map((x) => String(x.newState!.inputs.name)).filter((n) => n.endsWith('.cosign.bundle')).sort();
    assert.deepEqual(bundles, file.config['polyarch:signing'] === 'keyless' && file.config['polyarch:release'] !== false ? ['SHA256SUMS.cosign.bundle', 'sbom.spdx.json.cosign.bundle'] : [], `${stack}: the signed files' bundles`);
    for (const s of steps.filter((x) => x.newState?.type === 'docker-build:index:Image')) {
      const tags = s.newState!.inputs.tags as string[];
      assert.ok(tags.length > 0 && tags.every((tag) => /^[^<>]+:[A-Za-z0-9_.-]+$/.test(tag)), `${s.urn}: tags known at preview`);
      assert.equal(s.newState!.inputs.buildOnPreview, false, `${s.urn}: a preview builds nothing`);
    }
    const text = project.transcript.join('\n');
    for (const secret of Object.values(SECRETS)) assert.ok(!text.includes(secret), `${stack}: a secret in the preview's output`);
  });
}
