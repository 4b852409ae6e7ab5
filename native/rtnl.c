// A route netlink socket of vxnet's own, and its exchanges (net/nl-channel.ts): the requests
// in one buffer go out in one sendmsg and every acknowledgement is awaited, either on the
// calling thread or on libuv's threadpool. Off the main thread, the kernel's work for a
// request (creating a veth pair takes about half a millisecond of it) runs while JavaScript
// goes on with other work (an ADD's address allocation).
#define _GNU_SOURCE
#include <linux/netlink.h>
#include <linux/sockios.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "addon.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef SIOCGSKNS
#define SIOCGSKNS 0x894C
#endif

// Room kept free for each recv: a datagram larger than the buffer would be truncated.
#define RECV_ROOM 65536

// Sends req (whole netlink messages, each asking for an ACK) and receives until each has been
// acknowledged; *out gets everything received (malloc'd). 0, or a negative errno.
static int exchange(int fd, const char *req, size_t len, char **out, size_t *outlen) {
  unsigned pending = 0;
  __u32 first = 0, last = 0;
  int rem = (int)len;
  for (const struct nlmsghdr *h = (const struct nlmsghdr *)req; NLMSG_OK(h, rem); h = NLMSG_NEXT(h, rem)) {
    if (pending == 0 || h->nlmsg_seq < first) first = h->nlmsg_seq;
    if (pending == 0 || h->nlmsg_seq > last) last = h->nlmsg_seq;
    pending++;
  }
  if (pending == 0 || rem != 0) return -EINVAL;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  ssize_t n;
  do n = sendto(fd, req, len, 0, (struct sockaddr *)&kernel, sizeof kernel); while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  size_t cap = RECV_ROOM, used = 0;
  char *buf = malloc(cap);
  if (!buf) return -ENOMEM;
  while (pending > 0) {
    if (cap - used < RECV_ROOM) {
      char *grown = realloc(buf, used + RECV_ROOM);
      if (!grown) { free(buf); return -ENOMEM; }
      buf = grown;
      cap = used + RECV_ROOM;
    }
    do n = recv(fd, buf + used, cap - used, 0); while (n < 0 && errno == EINTR);
    if (n < 0) { int err = errno == EAGAIN ? ETIMEDOUT : errno; free(buf); return -err; }
    rem = (int)n;
    for (const struct nlmsghdr *h = (const struct nlmsghdr *)(buf + used); NLMSG_OK(h, rem); h = NLMSG_NEXT(h, rem)) {
      // Only this exchange's acknowledgements count (not a late one of an exchange that timed out).
      if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq >= first && h->nlmsg_seq <= last && pending > 0) pending--;
    }
    used += (size_t)n;
  }
  *out = buf;
  *outlen = used;
  return 0;
}

static void free_reply(napi_env env, void *data, void *hint) { (void)env; (void)hint; free(data); }

static napi_value reply_buffer(napi_env env, char *data, size_t len) {
  napi_value buffer;
  if (napi_create_external_buffer(env, len, data, free_reply, NULL, &buffer) != napi_ok) {
    napi_create_buffer_copy(env, len, data, NULL, &buffer);
    free(data);
  }
  return buffer;
}

// open(): a route netlink socket in the calling thread's network namespace; its fd.
static napi_value js_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return throw_errno(env, "socket(AF_NETLINK)", errno);
  int one = 1;
  // Errors then quote only the failed request's header, not all of it.
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // The kernel answers at once; the bound keeps a lost answer from holding a thread forever.
  struct timeval tv = { .tv_sec = 10 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  napi_value v;
  napi_create_int32(env, fd, &v);
  return v;
}

// namespaceOf(fd): an fd of the network namespace the socket belongs to (caller closes it).
static napi_value js_namespace_of(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "namespaceOf(fd): fd must be an integer");
    return NULL;
  }
  int ns = ioctl(fd, SIOCGSKNS);
  if (ns < 0) return throw_errno(env, "ioctl(SIOCGSKNS)", errno);
  napi_value v;
  napi_create_int32(env, ns, &v);
  return v;
}

static int request_args(napi_env env, napi_callback_info info, int32_t *fd, void **data, size_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  bool isBuffer = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_int32(env, argv[0], fd) != napi_ok
      || napi_is_buffer(env, argv[1], &isBuffer) != napi_ok || !isBuffer
      || napi_get_buffer_info(env, argv[1], data, len) != napi_ok) {
    napi_throw_type_error(env, NULL, "exchange(fd, request): fd must be an integer, request a Buffer");
    return -1;
  }
  return 0;
}

// exchangeSync(fd, request): the replies, on the calling thread.
static napi_value js_exchange_sync(napi_env env, napi_callback_info info) {
  int32_t fd;
  void *data;
  size_t len;
  if (request_args(env, info, &fd, &data, &len) != 0) return NULL;
  char *out = NULL;
  size_t outlen = 0;
  int err = exchange(fd, data, len, &out, &outlen);
  if (err != 0) return throw_errno(env, "netlink exchange", -err);
  return reply_buffer(env, out, outlen);
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  char *request;
  size_t length;
  char *reply;
  size_t replyLength;
  int err;
} job_t;

static void job_execute(napi_env env, void *data) {
  (void)env;
  job_t *job = data;
  job->err = exchange(job->fd, job->request, job->length, &job->reply, &job->replyLength);
}

static void job_complete(napi_env env, napi_status status, void *data) {
  job_t *job = data;
  if (status != napi_ok && job->err == 0) job->err = -ECANCELED;
  if (job->err == 0) {
    napi_resolve_deferred(env, job->deferred, reply_buffer(env, job->reply, job->replyLength));
  } else {
    napi_reject_deferred(env, job->deferred, errno_error(env, "netlink exchange", -job->err));
  }
  napi_delete_async_work(env, job->work);
  free(job->request);
  free(job);
}

// exchange(fd, request): a promise of the replies, exchanged on libuv's threadpool.
static napi_value js_exchange(napi_env env, napi_callback_info info) {
  int32_t fd;
  void *data;
  size_t len;
  if (request_args(env, info, &fd, &data, &len) != 0) return NULL;
  job_t *job = calloc(1, sizeof *job);
  if (!job || !(job->request = malloc(len ? len : 1))) { free(job); return throw_errno(env, "netlink exchange", ENOMEM); }
  memcpy(job->request, data, len);
  job->length = len;
  job->fd = fd;
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "vxnet:netlink", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, job_execute, job_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

napi_value rtnl_init(napi_env env, napi_value exports) {
  export_function(env, exports, "nlOpen", js_open);
  export_function(env, exports, "nlNamespaceOf", js_namespace_of);
  export_function(env, exports, "nlExchangeSync", js_exchange_sync);
  export_function(env, exports, "nlExchange", js_exchange);
  return exports;
}
