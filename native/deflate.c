// libdeflate's raw DEFLATE compressor as a Node-API module, for lib/deflate-worker.js.
// Built by scripts/native.mjs from the libdeflate release pinned there. The same release built
// to WebAssembly (npm `libdeflate`) gives the same bytes (test/unit/native.test.ts), so this
// only makes tarballs faster to build, never different.
//
// exports.version: libdeflate's version string, checked against the pin before use.
// exports.deflate(input: Uint8Array, level: number): Buffer, synchronous: it runs on a worker.
// exports.crc32(input: Uint8Array): number, the gzip trailer's CRC-32 (libdeflate's carryless-
// multiply one: many times zlib's on the same worker, so the tarball's input is read there once).
#include <stdlib.h>

#include "glue.h"
#include "libdeflate.h"

static napi_value deflate_raw(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t length;
  void *data;
  if (!get_args(env, info, 2, argv, "deflate(input, level) takes two arguments") ||
      !get_bytes(env, argv[0], &data, &length, "deflate: input must be a Uint8Array"))
    return NULL;

  int32_t level;
  if (napi_get_value_int32(env, argv[1], &level) != napi_ok || level < 0 || level > 12)
    return fail(env, "deflate: level must be an integer from 0 to 12");

  struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
  if (c == NULL) return fail(env, "deflate: out of memory for the compressor");
  size_t bound = libdeflate_deflate_compress_bound(c, length);
  void *out = malloc(bound > 0 ? bound : 1);
  if (out == NULL) {
    libdeflate_free_compressor(c);
    return fail(env, "deflate: out of memory for the output");
  }
  // Never 0 with a buffer of the bound's size: libdeflate guarantees the bound fits.
  size_t written = libdeflate_deflate_compress(c, data, length, out, bound);
  libdeflate_free_compressor(c);

  napi_value result = NULL;
  napi_status status = written == 0 ? napi_generic_failure : napi_create_buffer_copy(env, written, out, NULL, &result);
  free(out);
  if (status != napi_ok) return fail(env, "deflate: compression failed");
  return result;
}

static napi_value crc32_of(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t length;
  void *data;
  if (!get_args(env, info, 1, argv, "crc32(input) takes one argument") ||
      !get_bytes(env, argv[0], &data, &length, "crc32: input must be a Uint8Array"))
    return NULL;
  napi_value result;
  if (napi_create_uint32(env, libdeflate_crc32(0, data, length), &result) != napi_ok) return fail(env, "crc32: cannot return it");
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value crc;
  if (export_codec(env, exports, "deflate", deflate_raw, LIBDEFLATE_VERSION_STRING) == NULL ||
      napi_create_function(env, "crc32", NAPI_AUTO_LENGTH, crc32_of, NULL, &crc) != napi_ok ||
      napi_set_named_property(env, exports, "crc32", crc) != napi_ok)
    return NULL;
  return exports;
}
