// Runs @pulumi/pulumi's real dynamic-provider host (cmd/dynamic-provider) the way the engine
// does: a plain `node` process, no tsx loader, working folder = the project, and talks to it
// over its gRPC interface. A resource's serialized `__provider` goes in with its properties,
// exactly as the engine sends them, so a test proves the serialized provider runs as deployed.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { specialSecretSig, specialSigKey } from '@pulumi/pulumi/runtime/rpc.js';

const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-explicit-any -- generated protobuf and gRPC classes come untyped */
const grpc = require('@grpc/grpc-js') as any;
const provrpc = require('@pulumi/pulumi/proto/provider_grpc_pb.js') as any;
const provproto = require('@pulumi/pulumi/proto/provider_pb.js') as any;
const structproto = require('google-protobuf/google/protobuf/struct_pb.js') as any;
/* eslint-enable @typescript-eslint/no-explicit-any */

const ROOT = path.resolve(import.meta.dirname, '../..');
type Props = Record<string, unknown>;

export interface DynamicHost {
  configure(config: Record<string, string>, secretKeys?: readonly string[]): Promise<void>;
  check(urn: string, olds: Props, news: Props): Promise<Props>;
  diff(urn: string, id: string, olds: Props, news: Props): Promise<{ changes: 'none' | 'some' | 'unknown'; replaces: string[] }>;
  create(urn: string, props: Props): Promise<{ id: string; props: Props }>;
  read(urn: string, id: string, props: Props): Promise<{ id: string; props: Props }>;
  update(urn: string, id: string, olds: Props, news: Props): Promise<Props>;
  delete(urn: string, id: string, props: Props): Promise<void>;
  /** Everything the host printed on stderr so far. */
  stderr(): string;
  /** The host's process, for assertions on how it was started. */
  process: ChildProcess;
  close(): Promise<void>;
}

const struct = (o: Props) => structproto.Struct.fromJavaScript(o);

/** Starts the host; `env` adds to the environment it inherits, as the engine's would. */
export async function startDynamicHost(extraEnv: Record<string, string> = {}): Promise<DynamicHost> {
  // Plain node: no --import tsx, and no NODE_OPTIONS that could carry it.
  const env: NodeJS.ProcessEnv = { ...process.env, PULUMI_NODEJS_PROJECT: 'qemu-user-static', ...extraEnv };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [require.resolve('@pulumi/pulumi/cmd/dynamic-provider/index.js'), '127.0.0.1:0'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = /^(\d+)\n/.exec(out);
      if (line) resolve(Number(line[1]));
    });
    child.on('exit', (code) => reject(new Error(`dynamic-provider host exited ${code}: ${err}`)));
  });
  const client = new provrpc.ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const rpc = <T>(method: string, req: unknown) =>
    new Promise<T>((resolve, reject) => client[method](req, (e: Error | null, res: T) => (e ? reject(new Error(e.message.replace(/^\d+ [A-Z_]+: /, ''))) : resolve(res))));

  return {
    process: child,
    stderr: () => err,
    async configure(config, secretKeys = []) {
      const req = new provproto.ConfigureRequest();
      // Secret config arrives wrapped, as the engine sends it; the host unwraps it.
      const args = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, secretKeys.includes(k) ? { [specialSigKey]: specialSecretSig, value: v } : v]));
      req.setArgs(struct(args));
      req.setAcceptsecrets(true);
      await rpc('configure', req);
    },
    async check(urn, olds, news) {
      const req = new provproto.CheckRequest();
      req.setUrn(urn);
      req.setOlds(struct(olds));
      req.setNews(struct(news));
      const res = await rpc<{ getInputs(): { toJavaScript(): Props }; getFailuresList(): { getReason(): string }[] }>('check', req);
      const failures = res.getFailuresList().map((f) => f.getReason());
      if (failures.length > 0) throw new Error(failures.join('; '));
      return res.getInputs().toJavaScript();
    },
    async diff(urn, id, olds, news) {
      const req = new provproto.DiffRequest();
      req.setUrn(urn);
      req.setId(id);
      req.setOlds(struct(olds));
      req.setNews(struct(news));
      const res = await rpc<{ getChanges(): number; getReplacesList(): string[] }>('diff', req);
      const C = provproto.DiffResponse.DiffChanges;
      const changes = res.getChanges() === C.DIFF_NONE ? 'none' : res.getChanges() === C.DIFF_SOME ? 'some' : 'unknown';
      return { changes, replaces: res.getReplacesList() };
    },
    async create(urn, props) {
      const req = new provproto.CreateRequest();
      req.setUrn(urn);
      req.setProperties(struct(props));
      const res = await rpc<{ getId(): string; getProperties(): { toJavaScript(): Props } }>('create', req);
      return { id: res.getId(), props: res.getProperties().toJavaScript() };
    },
    async read(urn, id, props) {
      const req = new provproto.ReadRequest();
      req.setUrn(urn);
      req.setId(id);
      req.setProperties(struct(props));
      const res = await rpc<{ getId(): string; getProperties(): { toJavaScript(): Props } | undefined }>('read', req);
      return { id: res.getId(), props: res.getProperties()?.toJavaScript() ?? {} };
    },
    async update(urn, id, olds, news) {
      const req = new provproto.UpdateRequest();
      req.setUrn(urn);
      req.setId(id);
      req.setOlds(struct(olds));
      req.setNews(struct(news));
      const res = await rpc<{ getProperties(): { toJavaScript(): Props } }>('update', req);
      return res.getProperties().toJavaScript();
    },
    async delete(urn, id, props) {
      const req = new provproto.DeleteRequest();
      req.setUrn(urn);
      req.setId(id);
      req.setProperties(struct(props));
      await rpc('delete', req);
    },
    async close() {
      client.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill();
        await exited;
      }
    },
  };
}

/**
 * A host for a GitHub provider, as the engine starts one: plain node (no tsx, so the
 * serialized provider must stand alone), configured with `token` as the stack's secret.
 */
export async function startGitHubHost(token: string): Promise<DynamicHost> {
  const host = await startDynamicHost();
  assert.ok(!host.process.spawnargs.some((a) => /tsx/.test(a)), `plain node: ${host.process.spawnargs.join(' ')}`);
  await host.configure({ 'polyarch:githubToken': token }, ['polyarch:githubToken']);
  return host;
}

/**
 * What both GitHub providers promise about the token they read at run time: a wrong one fails
 * `create` with GitHub's 401 as one line (matching `rejected`) that never holds the token;
 * with none in the stack config, GITHUB_TOKEN from the environment is used, and `created`
 * checks what that create made.
 */
export async function checkGitHubToken(urn: string, news: () => Props, rejected: RegExp, envToken: string, created: (id: string) => void): Promise<void> {
  const bad = await startDynamicHost();
  try {
    const token = 'ghp_wrongwrongwrongwrongwrongwrong0000';
    await bad.configure({ 'polyarch:githubToken': token }, ['polyarch:githubToken']);
    await assert.rejects(bad.create(urn, news()), (e: Error) => {
      assert.match(e.message, rejected);
      assert.ok(!e.message.includes(token));
      return true;
    });
    assert.ok(!bad.stderr().includes(token));
  } finally {
    await bad.close();
  }
  const fromEnv = await startDynamicHost({ GITHUB_TOKEN: envToken });
  try {
    await fromEnv.configure({});
    created((await fromEnv.create(urn, news())).id);
  } finally {
    await fromEnv.close();
  }
}
