// The dev stack's registry: a registry container on a loopback port, started by the program
// itself (no cloud account), with its storage in a named volume so images outlive the
// container. Nothing is exposed beyond 127.0.0.1, so it needs no credentials.
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';

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
  public readonly container: docker.Container;

  constructor(name: string, args: LocalRegistryArgs, opts?: pulumi.ComponentResourceOptions) {
    super('polyarch:index:LocalRegistry', name, {}, opts);
    const image = new docker.RemoteImage(`${name}-image`, { name: args.image ?? DEFAULT_REGISTRY_IMAGE, keepLocally: true }, { parent: this });
    const volume = new docker.Volume(`${name}-data`, { name: `polyarch-registry-${args.port}` }, { parent: this, retainOnDelete: true });
    this.container = new docker.Container(
      name,
      {
        name: `polyarch-registry-${args.port}`,
        image: image.imageId,
        ports: [{ internal: 5000, external: args.port, ip: '127.0.0.1' }],
        volumes: [{ volumeName: volume.name, containerPath: '/var/lib/registry' }],
        restart: 'unless-stopped',
        // The registry image ships busybox wget: healthy once the API answers, and `wait`
        // holds every push until then.
        healthcheck: { tests: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:5000/v2/'], interval: '2s', timeout: '2s', retries: 15 },
        wait: true,
        waitTimeout: 60,
      },
      { parent: this },
    );
    this.server = this.container.id.apply(() => `localhost:${args.port}`);
    this.registerOutputs({ server: this.server });
  }
}
