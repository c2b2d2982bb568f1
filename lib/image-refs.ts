// Image references and OCI label values, in one place for the two that need them: the stack
// config validates what users give against them (lib/config.ts), and the build contexts write
// them into Dockerfiles (lib/contexts.ts).

/** busybox 1.36.1 (the multi-platform index), the default base of `:latest` and `:register`. */
export const DEFAULT_BASE_IMAGE = 'docker.io/library/busybox:1.36.1@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662';
/** An image reference pinned by digest: name[:tag]@sha256:<64 hex>. */
export const PINNED_IMAGE = /^[a-z0-9]+([._-][a-z0-9]+)*(:\d{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$/;
/** Where the program that builds the images lives (label org.opencontainers.image.source). */
export const DEFAULT_IMAGE_SOURCE = 'https://github.com/polyarch/qemu-user-static';
/** Label values land in a Dockerfile: keep them to characters that need no quoting rules. */
export const LABEL_SOURCE = /^https?:\/\/[A-Za-z0-9._~:/@%+-]+$/;
export const LABEL_REVISION = /^[A-Za-z0-9._+-]{1,128}$/;
