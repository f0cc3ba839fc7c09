/* libFuzzer target for the API's request parsing and routing: the input is a byte stream a
 * client sends on one connection (any number of pipelined requests), fed through the real
 * http_parser callbacks, router, validators and state machine into a test ops table. The
 * first input byte chooses how the stream is split into reads, so partial requests and
 * split headers are exercised too. Build and run: `make fuzz-api` (api/build.mk). */
#include "api/api_int.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail_next;

static int op_ok(void *ctx, struct api_error *err)
{
	(void)ctx;
	if (fail_next & 1) {
		api_error_set(err, "fuzz failure");
		return -EIO;
	}
	return 0;
}

#define OP(name, type)                                                                             \
	static int name(void *ctx, const type *arg, struct api_error *err)                         \
	{                                                                                          \
		(void)arg;                                                                         \
		return op_ok(ctx, err);                                                            \
	}
OP(put_mcfg, struct api_machine_config)
OP(put_boot, struct api_boot_source)
OP(put_drive, struct api_drive)
OP(put_net, struct api_net)
OP(put_vsock, struct api_vsock)
OP(put_entropy, struct api_entropy)
OP(put_logger, struct api_logger)
OP(snap_create, struct api_snapshot_create)
OP(snap_load, struct api_snapshot_load)

static struct json_object *metrics(void *ctx)
{
	(void)ctx;
	return json_object_new_object();
}

static const struct api_ops ops = {
    .put_machine_config = put_mcfg,
    .put_boot_source = put_boot,
    .put_drive = put_drive,
    .put_net = put_net,
    .put_vsock = put_vsock,
    .put_entropy = put_entropy,
    .put_logger = put_logger, /* never the default: it would redirect stderr */
    .instance_start = op_ok,
    .send_ctrl_alt_del = op_ok,
    .pause = op_ok,
    .resume = op_ok,
    .snapshot_create = snap_create,
    .snapshot_load = snap_load,
    .metrics = metrics,
};

static struct api_server *srv;

/* libFuzzer leaves through exit(): remove the socket file it made. */
static void cleanup(void)
{
	api_server_destroy(srv);
	srv = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_conn *c;
	size_t chunk, off = 0;

	if (!srv) {
		char path[64];

		snprintf(path, sizeof(path), "/tmp/thaw-api-fuzz-%d.sock", (int)getpid());
		if (api_server_create(path, &ops, NULL, &srv))
			abort();
		atexit(cleanup);
		/* Clients' faults are logged as warnings; millions of them hide real reports. */
		log_set_level(LOG_ERROR);
		/* Metrics go nowhere but must be "configured" for FlushMetrics to run. */
		srv->metrics_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	}
	if (size < 2)
		return 0;
	/* Byte 0: read size (1..256, or everything) and whether callbacks fail. */
	chunk = data[0] >= 128 ? size : (size_t)(data[0] & 0x7f) * 2 + 1;
	fail_next = data[1];
	data += 2;
	size -= 2;
	api_state_init(srv);
	c = api_conn_new(srv, -1);
	if (!c)
		return 0;
	while (off < size && !c->closing) {
		size_t n = size - off < chunk ? size - off : chunk;

		api_conn_feed(c, (const char *)data + off, n);
		off += n;
	}
	api_conn_free(c);
	return 0;
}
