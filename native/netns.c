// setns(2) for Node: a netlink socket belongs to the network namespace of the thread that
// opened it, so entering a namespace on the main thread, opening the socket and returning
// gives a handle into that namespace for about a millisecond (see net/README.md).
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include "addon.h"

// setns(fd, nstype): enters the namespace behind fd on the calling (main) thread.
static napi_value js_setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1, nstype = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "setns(fd, nstype): fd must be an integer");
    return NULL;
  }
  if (argc > 1) napi_get_value_int32(env, argv[1], &nstype);
  if (setns(fd, nstype) != 0) return throw_errno(env, "setns", errno);
  return NULL;
}

// unshare(flags): used by tests to create namespaces without spawning ip(8).
static napi_value js_unshare(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t flags = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "unshare(flags): flags must be an integer");
    return NULL;
  }
  if (unshare(flags) != 0) return throw_errno(env, "unshare", errno);
  return NULL;
}

// exitNow(code): _exit(2). The hand-off client ends this way once its answer is written:
// Node's own exit (its platform's threads joined, the heap torn down) costs a CNI call about
// 0.6 ms more.
static napi_value js_exit_now(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t code = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc > 0) napi_get_value_int32(env, argv[0], &code);
  _exit(code);
  return NULL;
}

napi_value rtnl_init(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  export_function(env, exports, "setns", js_setns);
  export_function(env, exports, "unshare", js_unshare);
  export_function(env, exports, "exitNow", js_exit_now);
  napi_value v;
  napi_create_int32(env, CLONE_NEWNET, &v);
  napi_set_named_property(env, exports, "CLONE_NEWNET", v);
  return rtnl_init(env, exports);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
