// What the addon's files share: errors from errno values, and exporting functions.
#ifndef VXNET_ADDON_H
#define VXNET_ADDON_H
// Each file defines _GNU_SOURCE before its first include (strerrorname_np, setns).
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <node_api.h>

// An Error for errno value err (positive): "what: strerror", code "ENOENT" etc., errno -err (as
// Node's own system errors carry them).
static napi_value errno_error(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *name = strerrorname_np(err);
  napi_value code, message, error, errnoValue;
  napi_create_string_utf8(env, name ? name : "ERRNO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errnoValue);
  napi_set_named_property(env, error, "errno", errnoValue);
  return error;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  napi_throw(env, errno_error(env, what, err));
  return NULL;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

#endif
