// libdeflate's raw DEFLATE compressor as a Node-API module, for lib/deflate-worker.js.
// Built by scripts/native.mjs from the libdeflate release pinned there. The same release built
// to WebAssembly (npm `libdeflate`) gives the same bytes (test/deflate-native.test.ts), so this
// only makes tarballs faster to build, never different.
//
// exports.version: libdeflate's version string, checked against the pin before use.
// exports.deflate(input: Uint8Array, level: number): Buffer, synchronous: it runs on a worker.
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdlib.h>

#include "libdeflate.h"

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value deflate_raw(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2)
    return fail(env, "deflate(input, level) takes two arguments");

  napi_typedarray_type type;
  size_t length;
  void *data;
  bool is_typed = false;
  napi_is_typedarray(env, argv[0], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return fail(env, "deflate: input must be a Uint8Array");

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

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value fn, version;
  if (napi_create_function(env, "deflate", NAPI_AUTO_LENGTH, deflate_raw, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "deflate", fn) != napi_ok ||
      napi_create_string_utf8(env, LIBDEFLATE_VERSION_STRING, NAPI_AUTO_LENGTH, &version) != napi_ok ||
      napi_set_named_property(env, exports, "version", version) != napi_ok)
    return NULL;
  return exports;
}
