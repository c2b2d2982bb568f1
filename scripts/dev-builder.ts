// `node --import tsx scripts/dev-builder.ts [PROJECT_DIR]`: makes sure the buildx builder the
// dev stack names (polyarch:builder in Pulumi.dev.yaml) answers, as lib/dev-builder.ts
// chooses. scripts/up-dev.sh runs it before `pulumi up`.
import path from 'node:path';
import { ensureDevBuilder } from '../lib/dev-builder.ts';
import { readStackConfig } from '../lib/stack-file.ts';
import { UserError } from '../lib/user-error.ts';

const projectDir = process.argv[2] ?? '.';
try {
  // The stack's config as the program reads it (Pulumi.yaml's defaults, then the stack file), validated.
  const { builder } = readStackConfig(projectDir, 'dev');
  // Unset, docker-build would make a builder of its own network, which cannot reach the dev registry.
  if (!builder) throw new UserError(`${path.join(projectDir, 'Pulumi.dev.yaml')} names no polyarch:builder: the dev stack needs a builder on the host's network (polyarch-dev, which up:dev makes, or your own)`);
  ensureDevBuilder(builder);
} catch (e) {
  if (!(e instanceof UserError)) throw e;
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(1);
}
