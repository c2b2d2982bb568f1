// The dev stack's registry container without a Docker engine: lib/local-registry against a
// fake `docker` first on PATH (test/fixtures/docker.ts) and a loopback HTTP server standing
// in for the registry's /v2/; then the RegistryContainer provider as the program serialized
// it under mocks, run by Pulumi's own dynamic-provider host in a plain node process.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import * as pulumi from '@pulumi/pulumi';
import { DEFAULT_REGISTRY_IMAGE } from '../../components/local-registry.ts';
import { ensureRegistry, inspectRegistry, removeRegistry } from '../../lib/local-registry.ts';
import { fakeDocker, type FakeDocker } from '../fixtures/docker.ts';
import { startDynamicHost } from '../helpers/dynamic-host.ts';
import { fixtureLock, loadProgram } from '../helpers/program.ts';
import { imageMocks } from '../helpers/registry.ts';
import { closedPort } from '../helpers/ports.ts';

const IMAGE = DEFAULT_REGISTRY_IMAGE;
const IMAGE_ID = `sha256:${'1'.repeat(64)}`;
const ORIGINAL_PATH = process.env.PATH;

/** A loopback server that answers GET /v2/ like an open registry, counting the calls. */
async function startFakeRegistry() {
  let hits = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/v2/') hits++;
    res.writeHead(req.url === '/v2/' ? 200 : 404, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, hits: () => hits, close: () => new Promise<void>((r) => server.close(() => r())) };
}


let docker: FakeDocker;
let registry: Awaited<ReturnType<typeof startFakeRegistry>>;
before(async () => {
  registry = await startFakeRegistry();
});
after(() => registry.close());
beforeEach(() => {
  docker = fakeDocker();
  docker.addImage(IMAGE, IMAGE_ID);
  process.env.PATH = `${docker.dir}${path.delimiter}${ORIGINAL_PATH}`;
});
afterEach(() => {
  process.env.PATH = ORIGINAL_PATH;
  docker.remove();
});

const oneLine = (re: RegExp) => (e: Error) => {
  assert.match(e.message, re);
  assert.ok(!e.message.includes('\n'), `one line: ${JSON.stringify(e.message)}`);
  return true;
};

test('fresh start: volume, then a loopback-published container from the pinned image, then /v2/ answers', async () => {
  const { port } = registry;
  const name = `polyarch-registry-${port}`;
  const hits = registry.hits();
  const state = await ensureRegistry({ port, image: IMAGE });
  assert.deepEqual(
    { name: state.name, running: state.running, image: state.image, imageId: state.imageId, port: state.port, published: state.published },
    { name, running: true, image: IMAGE, imageId: IMAGE_ID, port, published: [`127.0.0.1:${port}`] },
  );
  assert.deepEqual(docker.calls(), [
    `container inspect ${name}`,
    `image inspect --format {{.Id}} ${IMAGE}`,
    `volume create ${name}`,
    `run -d --name ${name} --restart unless-stopped -p 127.0.0.1:${port}:5000 -v ${name}:/var/lib/registry ${IMAGE}`,
    `container inspect ${name}`,
  ]);
  assert.ok(registry.hits() > hits, 'the registry API was asked');
  assert.deepEqual(docker.volumes(), [name]);
});

test('a given name and volume are used as given', async () => {
  const { port } = registry;
  await ensureRegistry({ port, image: IMAGE, name: 'my-registry', volume: 'my-data' });
  assert.ok(docker.calls().includes(`run -d --name my-registry --restart unless-stopped -p 127.0.0.1:${port}:5000 -v my-data:/var/lib/registry ${IMAGE}`));
  await assert.rejects(ensureRegistry({ port: 70000, image: IMAGE }), oneLine(/^registry port must be an integer in 1\.\.65535, got 70000$/));
});

test('an image not held locally is pulled first; one that cannot be pulled is named, and nothing is created', async () => {
  const { port } = registry;
  const other = 'docker.io/library/registry:2.8.2';
  await assert.rejects(
    ensureRegistry({ port, image: other }),
    oneLine(/^image docker\.io\/library\/registry:2\.8\.2 is not present locally and could not be pulled \(Error response from daemon: Get "https:\/\/registry\.invalid\/v2\/": dial tcp: lookup registry\.invalid: no such host\): pull it where a registry is reachable, or `docker load` it$/),
  );
  assert.ok(!docker.calls().some((c) => c.startsWith('run ') || c.startsWith('volume ')), docker.calls().join('\n'));
  docker.set('pullable', true);
  const state = await ensureRegistry({ port, image: other });
  assert.equal(state.image, other);
  assert.ok(docker.calls().includes(`pull ${other}`));
});

test('an existing container with the same image and port is adopted as is, or started when stopped', async () => {
  const { port } = registry;
  const name = `polyarch-registry-${port}`;
  docker.seedContainer({ name, image: IMAGE, publish: `127.0.0.1:${port}`, running: true });
  const state = await ensureRegistry({ port, image: IMAGE });
  assert.equal(state.running, true);
  assert.equal(state.id, `${'c'.repeat(60)}0000`, 'the existing container');
  assert.deepEqual(docker.calls(), [`container inspect ${name}`, `container inspect ${name}`]);

  docker.seedContainer({ name, image: IMAGE, publish: `127.0.0.1:${port}`, running: false });
  docker.clearCalls();
  assert.equal((await inspectRegistry(name))?.running, false);
  assert.equal((await ensureRegistry({ port, image: IMAGE })).running, true);
  assert.ok(docker.calls().includes(`start ${name}`));
  assert.ok(!docker.calls().some((c) => c.startsWith('run ')));

  // The same image under another spelling of its reference: the image id decides.
  docker.seedContainer({ name, image: 'registry:2.8.3', publish: `127.0.0.1:${port}`, running: true });
  assert.equal((await ensureRegistry({ port, image: IMAGE })).image, 'registry:2.8.3');
});

test('a container of that name with another port or image is refused in one line and left alone', async () => {
  const { port } = registry;
  const name = `polyarch-registry-${port}`;
  docker.seedContainer({ name, image: IMAGE, publish: `0.0.0.0:${port}`, running: true });
  await assert.rejects(
    ensureRegistry({ port, image: IMAGE }),
    oneLine(new RegExp(`^container ${name} already exists but publishes 0\\.0\\.0\\.0:${port}, not 127\\.0\\.0\\.1:${port}: remove it \\(docker rm -f ${name}\\) or choose another port$`)),
  );
  docker.seedContainer({ name, image: 'docker.io/library/nginx:1', imageId: `sha256:${'2'.repeat(64)}`, publish: `127.0.0.1:${port + 1}`, running: true });
  await assert.rejects(
    ensureRegistry({ port, image: IMAGE }),
    oneLine(new RegExp(`^container ${name} already exists but runs docker\\.io/library/nginx:1, not ${IMAGE.replace(/[.]/g, '\\.')} and publishes 127\\.0\\.0\\.1:${port + 1}, not 127\\.0\\.0\\.1:${port}: remove it`)),
  );
  assert.ok(!docker.calls().some((c) => /^(run|rm|start|volume) /.test(c)), docker.calls().join('\n'));
  assert.equal((docker.container(name)?.Config as { Image: string }).Image, 'docker.io/library/nginx:1');
});

test('no Docker engine, or no docker CLI: one line saying so and how to start one', async () => {
  docker.set('no-engine', true);
  const startIt = 'start dockerd \\(sudo systemctl start docker, or `dockerd &`\\)$';
  await assert.rejects(ensureRegistry({ port: registry.port, image: IMAGE }), oneLine(new RegExp(`^no Docker engine answers at unix:///var/run/docker\\.sock: ${startIt}`)));
  await assert.rejects(inspectRegistry('x'), oneLine(/^no Docker engine answers at/));
  await assert.rejects(removeRegistry('x'), oneLine(/^no Docker engine answers at/));
  process.env.PATH = fs.mkdtempSync(path.join(os.tmpdir(), 'polyarch-empty-path-'));
  await assert.rejects(ensureRegistry({ port: registry.port, image: IMAGE }), oneLine(new RegExp(`^the docker CLI is not on PATH: install Docker \\(e\\.g\\. apt-get install docker\\.io\\), then ${startIt}`)));
});

test('a registry that never answers: a bounded wait, then one line naming the port and its last log lines', async () => {
  const port = await closedPort();
  docker.setLogs(['time="…" level=info msg="one"', 'two', 'three', 'four', 'five', 'panic: six', ''].join('\n'));
  const started = Date.now();
  await assert.rejects(
    ensureRegistry({ port, image: IMAGE }, { timeoutMs: 400, intervalMs: 50 }),
    oneLine(new RegExp(`^registry container polyarch-registry-${port} did not answer at http://127\\.0\\.0\\.1:${port}/v2/ within 0\\.4 s; its last log lines: two \\| three \\| four \\| five \\| panic: six$`)),
  );
  assert.ok(Date.now() - started < 5000);
  assert.ok(docker.calls().includes(`logs --tail 5 polyarch-registry-${port}`));
});

test('a container docker creates but cannot start (port taken) is removed, with docker\'s reason in one line', async () => {
  const { port } = registry;
  docker.set('port-taken', true);
  await assert.rejects(ensureRegistry({ port, image: IMAGE }), oneLine(new RegExp(`^could not start registry container polyarch-registry-${port}: Error response from daemon: .*Bind for 127\\.0\\.0\\.1:${port} failed: port is already allocated\\.$`)));
  assert.equal(docker.container(`polyarch-registry-${port}`), undefined, 'nothing left to adopt');
});

test('remove: the container goes, its volume stays; removing it again is fine', async () => {
  const { port } = registry;
  const name = `polyarch-registry-${port}`;
  await ensureRegistry({ port, image: IMAGE });
  await removeRegistry(name);
  assert.equal(await inspectRegistry(name), undefined);
  await removeRegistry(name);
  assert.deepEqual(docker.calls().filter((c) => c.startsWith('rm ')), [`rm -f ${name}`, `rm -f ${name}`]);
  assert.ok(!docker.calls().some((c) => c.startsWith('volume rm')));
  assert.deepEqual(docker.volumes(), [name]);
});

test("the provider as serialized under mocks runs in Pulumi's dynamic-provider host (plain node): create, diff, read, delete", async () => {
  const { file, cacheDir } = await fixtureLock(['x86_64']);
  pulumi.runtime.setMocks(imageMocks, 'qemu-user-static', 'dev', true);
  const { resources } = await loadProgram({ 'polyarch:lockFile': file, 'polyarch:cacheDir': cacheDir, 'polyarch:hosts': '["x86_64"]', 'polyarch:localRegistry': JSON.stringify({ port: registry.port }) });
  const declared = resources.find((r) => r.type === 'pulumi-nodejs:dynamic/polyarch:RegistryContainer')!;
  assert.equal(typeof declared.wire.__provider, 'string');
  const urn = `urn:pulumi:dev::qemu-user-static::polyarch:index:LocalRegistry$pulumi-nodejs:dynamic/polyarch:RegistryContainer::${declared.name}`;
  const name = `polyarch-registry-${registry.port}`;

  const host = await startDynamicHost({ PATH: process.env.PATH! });
  try {
    assert.ok(!host.process.spawnargs.some((a) => /tsx/.test(a)), `plain node: ${host.process.spawnargs.join(' ')}`);
    await host.configure({});
    const inputs = await host.check(urn, {}, declared.wire);
    const created = await host.create(urn, inputs);
    assert.equal(created.id, name);
    assert.equal(created.props.running, true);
    assert.equal(created.props.containerId, (docker.container(name) as { Id: string }).Id);
    assert.equal(created.props.__provider, declared.wire.__provider);
    assert.ok(docker.calls().includes(`run -d --name ${name} --restart unless-stopped -p 127.0.0.1:${registry.port}:5000 -v ${name}:/var/lib/registry ${IMAGE}`));

    assert.deepEqual(await host.diff(urn, created.id, created.props, inputs), { changes: 'none', replaces: [] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, port: registry.port + 1, name: `polyarch-registry-${registry.port + 1}` }), { changes: 'some', replaces: ['port', 'name'] });
    assert.deepEqual(await host.diff(urn, created.id, created.props, { ...inputs, image: 'docker.io/library/registry:3' }), { changes: 'some', replaces: ['image'] });

    const read = await host.read(urn, created.id, created.props);
    assert.equal(read.id, name);
    assert.deepEqual({ port: read.props.port, image: read.props.image, running: read.props.running }, { port: registry.port, image: IMAGE, running: true });
    // Stopped by hand: refresh reports it gone, so the next up creates it again (adopt and start).
    docker.seedContainer({ name, image: IMAGE, publish: `127.0.0.1:${registry.port}`, running: false, imageId: String((docker.container(name) as { Image: string }).Image) });
    assert.equal((await host.read(urn, created.id, created.props)).id, '', 'a stopped container reads as gone');
    const again = await host.create(urn, inputs);
    assert.equal((docker.container(name) as { State: { Running: boolean } }).State.Running, true, 'create starts it again');
    assert.equal(again.id, name);

    await host.delete(urn, created.id, created.props);
    assert.equal(docker.container(name), undefined);
    assert.deepEqual(docker.volumes(), [name], 'the volume stays');
    assert.equal((await host.read(urn, created.id, created.props)).id, '', 'a removed container reads as gone');
    await host.delete(urn, created.id, created.props);

    docker.set('no-engine', true);
    await assert.rejects(host.create(urn, inputs), oneLine(/no Docker engine answers at unix:\/\/\/var\/run\/docker\.sock: start dockerd/));
  } finally {
    await host.close();
  }
});
