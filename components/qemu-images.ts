// The images of one stack's registry: a docker-build Image per planned image (its tags and
// platforms, pushed with the stack's registry credentials) and an Index for every tag that
// joins two or more hosts' images (:T and :T-<version>; a target one host publishes is tagged
// on its image instead). The tag scheme lives in lib/image-plan.ts, the contexts in
// lib/contexts.ts; this file only turns them into resources.
import * as dockerBuild from '@pulumi/docker-build';
import * as pulumi from '@pulumi/pulumi';
import type { BuildContext } from '../lib/contexts.ts';
import type { ImagePlan } from '../lib/image-plan.ts';
import { ImageSignature } from './image-signature.ts';

export interface QemuImagesArgs {
  /** Every image with its platforms and tags, and the indexes over per-host images (lib/image-plan.ts). */
  plan: ImagePlan;
  /** The build context of every image in the plan, by image name (lib/contexts.ts). */
  contexts: Readonly<Record<string, BuildContext>>;
  /** Registry user for pushes; used together with `password`. */
  username?: string;
  /** Registry password; always handled as a secret. */
  password?: pulumi.Input<string>;
  /** The buildx builder to build with, by name; unset, the provider picks one. */
  builder?: string;
  /** Sign every pushed image and index by digest (lib/cosign.ts), attaching the SBOM when given; unset: unsigned. */
  signing?: { mode: 'key' | 'keyless'; sbom?: { file: string; sha256: string } };
}

export class QemuImages extends pulumi.ComponentResource {
  /** Image name (`emulators`, `register`, `<host>-<target>`) -> pushed tag with digest. */
  public readonly refs: pulumi.Output<Record<string, string>>;
  /** Index name (`<target>`, `<target>-<version>`, for targets two or more hosts publish) -> pushed tag with digest. */
  public readonly indexRefs: pulumi.Output<Record<string, string>>;
  /** Every tag this stack publishes (images and indexes), as full references. */
  public readonly tags: string[];

  constructor(name: string, args: QemuImagesArgs, opts?: pulumi.ComponentResourceOptions) {
    super('polyarch:index:QemuImages', name, {}, opts);
    const { plan } = args;
    const password = args.password === undefined ? undefined : pulumi.secret(args.password);
    const credentials = args.username && password ? { address: plan.server, username: args.username, password } : undefined;
    // Children wait for whatever the component waits for (e.g. the dev stack's registry).
    // Published tags are never deleted by Pulumi: users pin them, and a rolling tag and its
    // versioned twin share one manifest, so deleting one by digest would delete both.
    const childOpts: pulumi.CustomResourceOptions = { parent: this, dependsOn: opts?.dependsOn, retainOnDelete: true };

    const images: Record<string, dockerBuild.Image> = {};
    for (const image of plan.images) {
      const context = args.contexts[image.name];
      if (!context) throw new Error(`no build context for image ${image.name}`);
      images[image.name] = new dockerBuild.Image(
        `${name}-${image.name}`,
        {
          context: { location: context.dir },
          dockerfile: { location: context.dockerfile },
          platforms: image.platforms as dockerBuild.Platform[],
          tags: image.tags,
          push: plan.push,
          // Previews diff declared inputs; building every image on every pull request's
          // preview (the provider's default) would cost minutes and prove nothing more.
          buildOnPreview: false,
          ...(args.builder !== undefined && { builder: { name: args.builder } }),
          registries: credentials ? [credentials] : [],
        },
        childOpts,
      );
    }

    // An index lists pushed manifests, so there are none for a stack that only builds.
    const indexes: Record<string, dockerBuild.Index> = {};
    if (plan.push) {
      for (const index of plan.indexes) {
        const sources = index.sources.map((s) => {
          const image = images[s];
          if (!image) throw new Error(`index ${index.name} lists unknown image ${s}`);
          return image.ref;
        });
        indexes[index.name] = new dockerBuild.Index(`${name}-${index.name}`, { tag: index.tag, sources, push: true, ...(credentials ? { registry: credentials } : {}) }, childOpts);
      }
    }

    // Every pushed manifest signed by its digest: a tag pushed over later carries no signature.
    if (plan.push && args.signing) {
      const { mode, sbom } = args.signing;
      for (const [what, r] of [...Object.entries(images), ...Object.entries(indexes)]) {
        new ImageSignature(`${name}-sign-${what}`, { ref: r.ref, mode, server: plan.server, username: args.username, sbomFile: sbom?.file, sbomSha256: sbom?.sha256 }, childOpts);
      }
    }

    const refsOf = (rs: Record<string, { ref: pulumi.Output<string> }>) =>
      pulumi.all(Object.fromEntries(Object.entries(rs).map(([k, r]) => [k, r.ref]))) as pulumi.Output<Record<string, string>>;
    this.refs = refsOf(images);
    this.indexRefs = refsOf(indexes);
    this.tags = [...plan.images.flatMap((i) => i.tags), ...(plan.push ? plan.indexes.map((i) => i.tag) : [])];
    this.registerOutputs({ refs: this.refs, indexRefs: this.indexRefs, tags: this.tags });
  }
}
