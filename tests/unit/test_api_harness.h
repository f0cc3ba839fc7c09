/* Shared by the test_api_*.c programs: a real api_server on a real unix socket, served by
 * its own thread through an outer epoll loop (as thaw's main loop does), and an ops table
 * that records every call and can be told to fail. Header-only so each test program stays a
 * single .c as tests/build.mk expects. */
#ifndef THAW_TEST_API_HARNESS_H
#define THAW_TEST_API_HARNESS_H

#include "api/api.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* Each test program uses a different subset of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

enum h_op {
	OP_DESCRIBE,
	OP_GET_MCFG,
	OP_PUT_MCFG,
	OP_BOOT,
	OP_DRIVE,
	OP_NET,
	OP_VSOCK,
	OP_ENTROPY,
	OP_LOGGER,
	OP_START,
	OP_CAD,
	OP_PAUSE,
	OP_RESUME,
	OP_SNAP_CREATE,
	OP_SNAP_LOAD,
	OP_METRICS,
	OP_PATCH_DRIVE,
	OP_PATCH_NET,
	OP_CPU_CONFIG,
	OP_COUNT,
};

struct harness {
	char dir[64];
	char sock[128];
	struct api_server *srv;
	pthread_t thread;
	int stop_fd;
	int fd; /* the default kept-alive client connection */

	/* What the ops saw. */
	int calls[OP_COUNT];
	struct api_machine_config mcfg;
	struct api_boot_source boot;
	struct api_drive drive;
	struct api_net net;
	struct api_vsock vsock;
	struct api_entropy entropy;
	struct api_logger logger;
	struct api_snapshot_create screate;
	struct api_snapshot_load sload;
	struct api_mmds *mmds; /* a real store: the router acts on it directly */
	struct api_drive_patch drive_patch;
	struct api_net_patch net_patch;
	struct api_cpu_config cpu_config;

	/* How the next call of op `fail_op` fails (-1: none). */
	int fail_op;
	int fail_status;
	bool fail_keep_state;
	char fail_msg[256];
	enum api_vm_state state;
};

static struct api_response h_resp_buf;

static int h_fail(struct harness *h, enum h_op op, struct api_error *err)
{
	h->calls[op]++;
	if (h->fail_op != (int)op)
		return 0;
	h->fail_op = -1;
	if (h->fail_status)
		err->status = h->fail_status;
	err->keep_state = h->fail_keep_state;
	if (h->fail_msg[0])
		api_error_set(err, "%s", h->fail_msg);
	return -EIO;
}

static void h_describe(void *ctx, struct api_instance_info *info)
{
	struct harness *h = ctx;

	h->calls[OP_DESCRIBE]++;
	snprintf(info->id, sizeof(info->id), "test-vm");
	info->state = h->state;
}

#define H_PUT_OP(fn, op, type, field)                                                              \
	static int fn(void *ctx, const type *arg, struct api_error *err)                           \
	{                                                                                          \
		struct harness *h = ctx;                                                           \
		h->field = *arg;                                                                   \
		return h_fail(h, op, err);                                                         \
	}
H_PUT_OP(h_put_mcfg, OP_PUT_MCFG, struct api_machine_config, mcfg)
H_PUT_OP(h_boot, OP_BOOT, struct api_boot_source, boot)
H_PUT_OP(h_drive, OP_DRIVE, struct api_drive, drive)
H_PUT_OP(h_net, OP_NET, struct api_net, net)
H_PUT_OP(h_vsock, OP_VSOCK, struct api_vsock, vsock)
H_PUT_OP(h_entropy, OP_ENTROPY, struct api_entropy, entropy)
H_PUT_OP(h_logger, OP_LOGGER, struct api_logger, logger)
H_PUT_OP(h_snap_create, OP_SNAP_CREATE, struct api_snapshot_create, screate)
H_PUT_OP(h_patch_drive, OP_PATCH_DRIVE, struct api_drive_patch, drive_patch)
H_PUT_OP(h_patch_net, OP_PATCH_NET, struct api_net_patch, net_patch)
H_PUT_OP(h_cpu_config, OP_CPU_CONFIG, struct api_cpu_config, cpu_config)

static int h_snap_load(void *ctx, const struct api_snapshot_load *arg, struct api_error *err)
{
	struct harness *h = ctx;
	int ret;

	h->sload = *arg;
	ret = h_fail(h, OP_SNAP_LOAD, err);
	if (!ret)
		h->state = arg->resume_vm ? API_VM_RUNNING : API_VM_PAUSED;
	return ret;
}

static int h_start(void *ctx, struct api_error *err)
{
	struct harness *h = ctx;
	int ret = h_fail(h, OP_START, err);

	if (!ret)
		h->state = API_VM_RUNNING;
	return ret;
}

static int h_cad(void *ctx, struct api_error *err)
{
	return h_fail(ctx, OP_CAD, err);
}

static int h_pause(void *ctx, struct api_error *err)
{
	struct harness *h = ctx;
	int ret = h_fail(h, OP_PAUSE, err);

	if (!ret)
		h->state = API_VM_PAUSED;
	return ret;
}

static int h_resume(void *ctx, struct api_error *err)
{
	struct harness *h = ctx;
	int ret = h_fail(h, OP_RESUME, err);

	if (!ret)
		h->state = API_VM_RUNNING;
	return ret;
}

static struct json_object *h_metrics(void *ctx)
{
	struct harness *h = ctx;
	json_object *o = json_object_new_object(), *lat = json_object_new_object();

	h->calls[OP_METRICS]++;
	json_object_object_add(lat, "load_snapshot", json_object_new_int(640));
	json_object_object_add(o, "latencies_us", lat);
	return o;
}

static struct api_mmds *h_mmds(void *ctx)
{
	return ((struct harness *)ctx)->mmds;
}

static const struct api_ops h_ops = {
    .mmds = h_mmds,
    .describe = h_describe,
    .put_machine_config = h_put_mcfg,
    .put_boot_source = h_boot,
    .put_drive = h_drive,
    .put_net = h_net,
    .patch_drive = h_patch_drive,
    .patch_net = h_patch_net,
    .put_cpu_config = h_cpu_config,
    .put_vsock = h_vsock,
    .put_entropy = h_entropy,
    .put_logger = h_logger,
    .instance_start = h_start,
    .send_ctrl_alt_del = h_cad,
    .pause = h_pause,
    .resume = h_resume,
    .snapshot_create = h_snap_create,
    .snapshot_load = h_snap_load,
    .metrics = h_metrics,
};

static void *h_serve(void *arg)
{
	struct harness *h = arg;
	struct epoll_event e;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	e.events = EPOLLIN;
	e.data.u32 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, api_server_fd(h->srv), &e);
	e.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, h->stop_fd, &e);
	for (;;) {
		int n = epoll_wait(ep, &e, 1, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || e.data.u32 == 2)
			break;
		if (api_server_dispatch(h->srv) < 0)
			break;
	}
	close(ep);
	return NULL;
}

/* Starts a server with `ops` (h_ops when NULL), a request timeout and an idle timeout
 * (0: the defaults), and connects h->fd. */
static struct harness *h_start_idle(const struct api_ops *ops, unsigned int timeout_ms,
				    unsigned int idle_ms)
{
	struct harness *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->fail_op = -1;
	if (api_mmds_create(1024, &h->mmds))
		goto err;
	snprintf(h->dir, sizeof(h->dir), "/tmp/thaw-test-api-XXXXXX");
	if (!mkdtemp(h->dir))
		goto err;
	snprintf(h->sock, sizeof(h->sock), "%s/api.sock", h->dir);
	if (api_server_create(h->sock, ops ? ops : &h_ops, h, &h->srv))
		goto err;
	if (timeout_ms)
		api_server_set_request_timeout(h->srv, timeout_ms);
	if (idle_ms)
		api_server_set_idle_timeout(h->srv, idle_ms);
	h->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (h->stop_fd < 0 || pthread_create(&h->thread, NULL, h_serve, h))
		goto err;
	h->fd = api_client_connect(h->sock);
	if (h->fd < 0)
		goto err;
	return h;
err:
	fprintf(stderr, "harness setup failed: %s\n", strerror(errno));
	abort();
}

static struct harness *h_start_ops(const struct api_ops *ops, unsigned int timeout_ms)
{
	return h_start_idle(ops, timeout_ms, 0);
}

static void h_stop(struct harness *h)
{
	uint64_t one = 1;

	if (h->fd >= 0)
		close(h->fd);
	if (write(h->stop_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	pthread_join(h->thread, NULL);
	close(h->stop_fd);
	api_server_destroy(h->srv);
	api_mmds_destroy(h->mmds);
	rmdir(h->dir);
	free(h);
}

/* One request on the kept-alive connection; returns the status (-errno on I/O failure). */
static int h_req(struct harness *h, const char *method, const char *path, const char *body)
{
	int ret = api_client_request(h->fd, method, path, body, &h_resp_buf);

	return ret < 0 ? ret : h_resp_buf.status;
}

static const char *h_body(void)
{
	return h_resp_buf.body;
}

/* The fault_message of the last response (static buffer). */
static const char *h_fault(void)
{
	static char msg[1024];

	api_client_fault_message(&h_resp_buf, msg, sizeof(msg));
	return msg;
}

/* A fresh connection with a receive timeout, so a test never hangs on a server bug. */
static int h_connect(struct harness *h)
{
	struct timeval tv = {.tv_sec = 5};
	int fd = api_client_connect(h->sock);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int h_send(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends raw bytes on a new connection and reads one response: its status (or -errno). If
 * closed is given, also reports whether the server closed the connection afterwards. */
static int h_raw(struct harness *h, const char *data, size_t len, bool *closed)
{
	int fd = h_connect(h), ret;

	if (fd < 0)
		return fd;
	ret = h_send(fd, data, len);
	if (!ret)
		ret = api_client_read_response(fd, &h_resp_buf);
	if (!ret)
		ret = h_resp_buf.status;
	if (closed) {
		char c;

		*closed = recv(fd, &c, 1, 0) == 0;
	}
	close(fd);
	return ret;
}

#define H_RAW(h, s, closed) h_raw(h, s, sizeof(s) - 1, closed)

/* What the last run() printed (its stdout; a command adds 2>&1 for stderr). */
static char out[8192];

/* Runs a shell command (printf-style), captures its output into `out`, returns its exit
 * status (-1 when it did not exit). */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	size_t n = 0;
	FILE *f;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (n < sizeof(out) - 1) {
		size_t r = fread(out + n, 1, sizeof(out) - 1 - n, f);

		if (!r)
			break;
		n += r;
	}
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
