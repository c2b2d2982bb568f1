// `node --import tsx scripts/dev-builder.ts [STACK_FILE]`: makes sure the buildx builder the
// dev stack names (polyarch:builder in Pulumi.dev.yaml) answers, as lib/dev-builder.ts
// chooses. scripts/up-dev.sh runs it before `pulumi up`.
import fs from 'node:fs';
import YAML from 'yaml';
import { ensureDevBuilder } from '../lib/dev-builder.ts';
import { UserError } from '../lib/user-error.ts';

const stackFile = process.argv[2] ?? 'Pulumi.dev.yaml';
try {
  const config = (YAML.parse(fs.readFileSync(stackFile, 'utf8')) as { config?: Record<string, unknown> } | null)?.config ?? {};
  const name = config['polyarch:builder'];
  // Unset, docker-build would make a builder of its own network, which cannot reach the dev registry.
  if (typeof name !== 'string' || !name) throw new UserError(`${stackFile} names no polyarch:builder: the dev stack needs a builder on the host's network (polyarch-dev, which up:dev makes, or your own)`);
  ensureDevBuilder(name);
} catch (e) {
  if (!(e instanceof UserError)) throw e;
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
}
