// Node-API helpers shared by deflate.c and zstd.c: argument checks that throw one line, and the
// module's exports (its one function and the library's version string).
#ifndef POLYARCH_GLUE_H
#define POLYARCH_GLUE_H
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/** The call's `n` arguments into argv; false, with `usage` thrown, when there are not exactly `n`. */
static bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == n) return true;
  fail(env, usage);
  return false;
}

/** The bytes of a Uint8Array; false, with `message` thrown, for anything else. */
static bool get_bytes(napi_env env, napi_value value, void **data, size_t *length, const char *message) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_is_typedarray(env, value, &is_typed);
  if (is_typed && napi_get_typedarray_info(env, value, &type, length, data, NULL, NULL) == napi_ok && type == napi_uint8_array) return true;
  fail(env, message);
  return false;
}

/** exports[name] = fn and exports.version = version; NULL when either cannot be set. */
static napi_value export_codec(napi_env env, napi_value exports, const char *name, napi_callback fn, const char *version) {
  napi_value f, v;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f) != napi_ok ||
      napi_set_named_property(env, exports, name, f) != napi_ok ||
      napi_create_string_utf8(env, version, NAPI_AUTO_LENGTH, &v) != napi_ok ||
      napi_set_named_property(env, exports, "version", v) != napi_ok)
    return NULL;
  return exports;
}

#endif
