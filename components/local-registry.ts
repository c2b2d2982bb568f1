// The dev stack's registry: a registry container on a loopback port, started by the program
// itself (no cloud account), with its storage in a named volume so images outlive the
// container. Nothing is exposed beyond 127.0.0.1, so it needs no credentials. The container
// is a dynamic resource over the docker CLI (components/registry-container.ts), so the dev
// stack needs no provider plugin beyond what the engine ships.
import * as pulumi from '@pulumi/pulumi';
import { RegistryContainer } from './registry-container.ts';

/** Distribution (registry) 2.8.3, pinned by digest. */
export const DEFAULT_REGISTRY_IMAGE = 'docker.io/library/registry:2.8.3@sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373';

export interface LocalRegistryArgs {
  /** Loopback port the registry listens on; images are pushed to localhost:<port>. */
  port: number;
  /** The registry image, pinned by digest (default: registry 2.8.3). */
  image?: string;
}

export class LocalRegistry extends pulumi.ComponentResource {
  /** Where to push: localhost:<port>, known once the registry answers. */
  public readonly server: pulumi.Output<string>;
  /** The running registry; resources that push should depend on it. */
  public readonly container: RegistryContainer;

  constructor(name: string, args: LocalRegistryArgs, opts?: pulumi.ComponentResourceOptions) {
    super('polyarch:index:LocalRegistry', name, {}, opts);
    const docker = `polyarch-registry-${args.port}`;
    // Created only once /v2/ answers, so everything that depends on it can push.
    this.container = new RegistryContainer(name, { port: args.port, image: args.image ?? DEFAULT_REGISTRY_IMAGE, name: docker, volume: docker }, { parent: this });
    this.server = this.container.id.apply(() => `localhost:${args.port}`);
    this.registerOutputs({ server: this.server });
  }
}
