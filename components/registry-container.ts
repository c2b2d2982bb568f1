// The dev stack's registry container as a Pulumi resource: a dynamic provider over
// lib/local-registry, which drives the local Docker engine through the `docker` CLI. A
// dynamic provider rather than @pulumi/docker, whose plugin cannot be built everywhere the
// dev stack must run. Any change (port, image, name, volume) replaces the container; its
// volume outlives it, so pushed images survive a replacement and a destroy.
import * as pulumi from '@pulumi/pulumi';
import type * as LocalRegistry from '../lib/local-registry.ts';
import { keyedDiff, loadProjectModule } from './provider-runtime.ts';

export interface RegistryContainerInputs {
  /** Loopback port: the registry answers at 127.0.0.1:<port>. */
  port: number;
  /** The registry image, pinned by digest. */
  image: string;
  /** Container name. */
  name: string;
  /** Named volume holding the registry's storage. */
  volume: string;
}

export interface RegistryContainerOutputs extends RegistryContainerInputs {
  /** Docker's id of the container. */
  containerId: string;
  /** Whether it ran when last created or read. */
  running: boolean;
}

export type RegistryContainerArgs = { [K in keyof RegistryContainerInputs]: pulumi.Input<RegistryContainerInputs[K]> };

const LIB = 'lib/local-registry.ts';
const REPLACE_KEYS = ['port', 'image', 'name', 'volume'] as const;

// Method bodies run in the dynamic-provider host; see components/provider-runtime.ts.
const provider: pulumi.dynamic.ResourceProvider<RegistryContainerInputs, RegistryContainerOutputs> = {
  diff: keyedDiff(REPLACE_KEYS, []),

  async create(inputs) {
    const lib = await loadProjectModule<typeof LocalRegistry>(LIB);
    const state = await lib.ensureRegistry(inputs);
    return { id: inputs.name, outs: { ...inputs, containerId: state.id, running: state.running } };
  },

  async read(id, props) {
    if (!props) return { id, props };
    const lib = await loadProjectModule<typeof LocalRegistry>(LIB);
    const state = await lib.inspectRegistry(props.name);
    // An empty id tells the engine the container is gone. A stopped one counts as gone too:
    // pushes would be refused, and the next `up` creates it again, which adopts and starts it.
    if (!state || !state.running) return { id: '', props: {} as RegistryContainerOutputs };
    // Report drift in what the diff compares, so a refresh followed by `up` replaces a
    // container that now runs another image or port.
    const drift = (await lib.registryDifferences(props, state)).length > 0;
    const actual = drift ? { image: state.image || state.imageId, port: state.port ?? 0 } : {};
    return { id, props: { ...props, ...actual, containerId: state.id, running: state.running } };
  },

  async delete(_id, props) {
    const lib = await loadProjectModule<typeof LocalRegistry>(LIB);
    await lib.removeRegistry(props.name);
  },
};

/** The registry container: started (or adopted) and answering on create, removed on destroy, its volume kept. */
export class RegistryContainer extends pulumi.dynamic.Resource {
  declare public readonly port: pulumi.Output<number>;
  declare public readonly name: pulumi.Output<string>;
  declare public readonly containerId: pulumi.Output<string>;
  declare public readonly running: pulumi.Output<boolean>;

  constructor(name: string, args: RegistryContainerArgs, opts?: pulumi.CustomResourceOptions) {
    // The container's name is fixed by its inputs, so a replacement must remove the old one
    // before it creates the new one.
    super(provider, name, { ...args, containerId: undefined, running: undefined }, { deleteBeforeReplace: true, ...opts }, 'polyarch', 'RegistryContainer');
  }
}
