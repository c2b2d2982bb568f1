// zstd's decoder as a Node-API module, for lib/zstd-worker.js: RPM payloads decode on a worker
// thread instead of in a `zstd` process, which costs a fork of a large process per RPM. Built by
// scripts/native.mjs from the zstd release pinned there. Decoding is exact, so any release gives
// the same bytes; the payload digests are checked afterwards all the same.
//
// exports.version: zstd's version string.
// exports.decompress(input: Uint8Array, size: number | undefined, max: number): Buffer
//   size known: exactly that many bytes, or an error. Unknown: streamed, an error past `max`.
#include <stdio.h>
#include <stdlib.h>

#include "glue.h"
#include "zstd.h"

static napi_value fail_zstd(napi_env env, size_t code) {
  char message[160];
  snprintf(message, sizeof message, "corrupt zstd stream (%s)", ZSTD_getErrorName(code));
  return fail(env, message);
}

static napi_value too_big(napi_env env, double max) {
  char message[80];
  snprintf(message, sizeof message, "decompresses past %.0f bytes", max);
  return fail(env, message);
}

/** Exactly `size` bytes straight into the result: one buffer, no copy. */
static napi_value decompress_sized(napi_env env, ZSTD_DCtx *d, const void *in, size_t length, size_t size) {
  void *out;
  napi_value result;
  if (napi_create_buffer(env, size, &out, &result) != napi_ok) return fail(env, "zstd: out of memory for the output");
  size_t n = ZSTD_decompressDCtx(d, out, size, in, length);
  if (ZSTD_isError(n)) return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? NULL : fail_zstd(env, n);
  if (n != size) return fail(env, "corrupt zstd stream or wrong declared size");
  return result;
}

/** Unknown size: grow as the stream decodes, never past `max`. */
static napi_value decompress_streamed(napi_env env, ZSTD_DCtx *d, const void *in, size_t length, size_t max) {
  size_t cap = length * 4 + 65536;
  if (cap > max + 1) cap = max + 1;
  char *out = malloc(cap);
  if (out == NULL) return fail(env, "zstd: out of memory for the output");
  ZSTD_inBuffer src = {in, length, 0};
  ZSTD_outBuffer dst = {out, cap, 0};
  for (;;) {
    size_t r = ZSTD_decompressStream(d, &dst, &src);
    if (ZSTD_isError(r)) {
      free(out);
      return fail_zstd(env, r);
    }
    if (dst.pos > max) {
      free(out);
      return too_big(env, (double)max);
    }
    if (src.pos == length && r == 0) break;
    if (src.pos == length && dst.pos < dst.size) {
      free(out);
      return fail(env, "corrupt zstd stream (truncated)");
    }
    if (dst.pos == dst.size) {
      size_t grown = cap * 2 > max + 1 ? max + 1 : cap * 2;
      char *bigger = realloc(out, grown);
      if (bigger == NULL) {
        free(out);
        return fail(env, "zstd: out of memory for the output");
      }
      out = bigger;
      cap = grown;
      dst.dst = out;
      dst.size = cap;
    }
  }
  napi_value result;
  napi_status status = napi_create_buffer_copy(env, dst.pos, out, NULL, &result);
  free(out);
  return status == napi_ok ? result : fail(env, "zstd: out of memory for the output");
}

static napi_value decompress(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t length;
  void *data;
  if (!get_args(env, info, 3, argv, "decompress(input, size, max) takes three arguments") ||
      !get_bytes(env, argv[0], &data, &length, "decompress: input must be a Uint8Array"))
    return NULL;
  double max;
  if (napi_get_value_double(env, argv[2], &max) != napi_ok || !(max >= 0) || max > 9007199254740991.0)
    return fail(env, "decompress: max must be a byte count");
  napi_valuetype size_type;
  napi_typeof(env, argv[1], &size_type);
  double size = -1;
  if (size_type != napi_undefined && (napi_get_value_double(env, argv[1], &size) != napi_ok || !(size >= 0) || size > 9007199254740991.0))
    return fail(env, "decompress: size must be a byte count or undefined");

  ZSTD_DCtx *d = ZSTD_createDCtx();
  if (d == NULL) return fail(env, "zstd: out of memory for the decoder");
  napi_value result;
  if (size >= 0 && size <= max) {
    result = decompress_sized(env, d, data, length, (size_t)size);
    // More than declared: say it as the bound it broke.
    if (result == NULL) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (!pending) result = too_big(env, size);
    }
  } else {
    result = decompress_streamed(env, d, data, length, (size_t)max);
  }
  ZSTD_freeDCtx(d);
  return result;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  return export_codec(env, exports, "decompress", decompress, ZSTD_versionString());
}
