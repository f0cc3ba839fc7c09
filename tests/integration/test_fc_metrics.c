/* Firecracker's uart, vsock, seccomp and signals metrics groups in the lines of a real
 * thaw running the probe: the probe's console traffic moves the uart counters; vsock,
 * seccomp and signals are there (0: no live vsock driver in the probe, nothing refused, no
 * signal). Each line counts the change since the previous. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/integration/harness.h"

#define TMO 60000

static char dir[] = "/tmp/thaw-fcmetrics-XXXXXX";

/* FlushMetrics, then the file's last line, parsed. */
static json_object *flush_and_read(const char *sock, const char *path)
{
	char buf[65536], *last;
	FILE *f;
	size_t n;

	harness_put(sock, "/actions", "{\"action_type\": \"FlushMetrics\"}");
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	assert_true(n > 1 && buf[n - 1] == '\n');
	buf[n - 1] = 0;
	last = strrchr(buf, '\n');
	return json_tokener_parse(last ? last + 1 : buf);
}

static int64_t member(json_object *root, const char *group, const char *name)
{
	json_object *g, *v;

	if (!json_object_object_get_ex(root, group, &g) || !json_object_object_get_ex(g, name, &v))
		fail_msg("no %s.%s in %s", group, name, json_object_to_json_string(root));
	return json_object_get_int64(v);
}

static void probe_traffic_and_a_vsock_client_move_their_groups(void **state)
{
	char sock[256], vs[100], metrics[256], json[1024];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vmproc *a;
	json_object *m;
	int fd;

	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	snprintf(vs, sizeof(vs), "%s/v.sock", dir);
	snprintf(metrics, sizeof(metrics), "%s/metrics.json", dir);
	a = harness_start_api(sock);
	snprintf(json, sizeof(json), "{\"metrics_path\": \"%s\"}", metrics);
	harness_put(sock, "/metrics", json);
	snprintf(json, sizeof(json), "{\"guest_cid\": 3, \"uds_path\": \"%s\"}", vs);
	harness_put(sock, "/vsock", json);
	harness_boot_probe(sock, a, "boot");
	assert_int_equal(vmproc_ask(a, "ping", "PROBE pong", TMO, NULL, 0), 0);

	/* A host client asks for guest port 52. The probe has no vsock driver, so the
	 * device is not live and thaw closes the client: no connection is added (the
	 * counting of live connections is test_virtio_vsock's), but the group is there. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", vs);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, "CONNECT 52\n", 11), 11);
	{
		char c;

		assert_int_equal(read(fd, &c, 1), 0); /* closed by thaw */
	}

	m = flush_and_read(sock, metrics);
	assert_non_null(m);
	/* the probe printed its banner and "PROBE pong", and read "ping\n" */
	assert_true(member(m, "uart", "write_count") >= 11);
	assert_true(member(m, "uart", "read_count") >= 5);
	assert_int_equal(member(m, "uart", "missed_write_count"), 0);
	assert_int_equal(member(m, "uart", "error_count"), 0);
	assert_int_equal(member(m, "vsock", "conns_added"), 0);
	assert_int_equal(member(m, "vsock", "rx_packets_count"), 0);
	/* the client's connection was device work of the main loop */
	assert_true(member(m, "vmm", "device_events") >= 1);
	assert_int_equal(member(m, "seccomp", "num_faults"), 0);
	assert_int_equal(member(m, "signals", "sigpipe"), 0);
	assert_int_equal(member(m, "signals", "sigsegv"), 0);
	json_object_put(m);

	/* the next line: only the second answer's bytes */
	assert_int_equal(vmproc_ask(a, "ping", "PROBE pong", TMO, NULL, 0), 0);
	m = flush_and_read(sock, metrics);
	assert_non_null(m);
	assert_true(member(m, "uart", "write_count") >= 11);
	assert_true(member(m, "uart", "write_count") < 1000);
	/* changes since the last line: no device work since */
	assert_int_equal(member(m, "vmm", "device_events"), 0);
	json_object_put(m);
	close(fd);
	harness_end(a);
}

static int setup(void **state)
{
	return harness_tmpdir_make(dir);
}

static int teardown(void **state)
{
	return harness_tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(probe_traffic_and_a_vsock_client_move_their_groups),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests_name("fc_metrics", tests, setup, teardown);
}
