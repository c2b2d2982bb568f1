// `polyarch plan` and `polyarch contexts`: the images a stack publishes, and their build
// contexts, computed exactly as the program computes them (lib/image-plan.ts, lib/contexts.ts)
// from the stack's files (Pulumi.yaml defaults, then Pulumi.<stack>.yaml).
import path from 'node:path';
import type { Command } from 'commander';
import type { StackConfig } from '../../lib/config.ts';
import type { BuildContext } from '../../lib/contexts.ts';
import type { HostEmulators } from '../../lib/emulators.ts';
import type { ImagePlan } from '../../lib/image-plan.ts';
import type { RetryOptions } from '../../lib/fetch.ts';
import type { Lock } from '../../lib/lock.ts';
import { addFetchOptions, fetchOptions, type FetchFlags } from './fetch-options.ts';
import { printJson } from './output.ts';

interface StackImages {
  config: StackConfig;
  lock: Lock;
  hosts: HostEmulators[];
  plan: ImagePlan;
}

/** The stack's plan, over the emulators its lockfile pins (extracted into the cache once). */
async function stackImages(stack: string | undefined, fetching: RetryOptions): Promise<StackImages> {
  // Loaded when a command runs, not for `--help` (YAML, schemas, the emulator cache).
  const [{ readStackConfig }, { readLock }, { prepareStackEmulators }, { DEFAULT_REPOSITORY, DEFAULT_SERVER, imageTarget, planForStack }] = await Promise.all([
    import('../../lib/stack-file.ts'),
    import('../../lib/lock.ts'),
    import('../../lib/emulators.ts'),
    import('../../lib/image-plan.ts'),
  ]);
  const config = readStackConfig(process.cwd(), stack);
  const lock = await readLock(config.lockFile);
  const hosts = await prepareStackEmulators(config, lock, undefined, fetching);
  // A stack without a registry publishes no images; show where they would go by default.
  const target = imageTarget(config) ?? { server: DEFAULT_SERVER, repository: DEFAULT_REPOSITORY, push: false };
  return { config, lock, hosts, plan: planForStack(lock, hosts, target) };
}

const STACK_HELP = 'stack whose Pulumi.<name>.yaml to read over the Pulumi.yaml defaults';

export function imageCommands(program: Command): void {
  addFetchOptions(program
    .command('plan')
    .description('print every image of the stack as JSON: platforms and tags, and the indexes over per-host images')
    .option('--stack <name>', STACK_HELP))
    .action(async (o: { stack?: string } & FetchFlags) => {
      printJson((await stackImages(o.stack, fetchOptions(o))).plan);
    });

  addFetchOptions(program
    .command('contexts')
    .description('write every image\'s build context (Dockerfile and files, one content-addressed folder each) and plan.json into a folder')
    .requiredOption('--out <dir>', 'output folder')
    .option('--stack <name>', STACK_HELP))
    .action(async (o: { out: string; stack?: string } & FetchFlags) => {
      const { config, lock, hosts, plan } = await stackImages(o.stack, fetchOptions(o));
      const { imageLabels, writeContexts } = await import('../../lib/contexts.ts');
      const contexts: Record<string, BuildContext> = await writeContexts(plan, hosts, { outDir: o.out, baseImage: config.baseImage, labels: imageLabels(config, lock.qemu, plan.version) });
      // plan.json last, whole: its presence means every context it names is there. A temp a
      // killed run left is swept; this run's own is removed when the write fails.
      const { sweepTemps, writeWhole } = await import('../../lib/out-dir.ts');
      await sweepTemps(o.out);
      await writeWhole(path.join(o.out, 'plan.json'), `${JSON.stringify({ ...plan, contexts }, null, 2)}\n`);
      printJson({ plan: path.join(o.out, 'plan.json'), contexts });
    });
}
