/* The API of a real thaw, driven with curl --unix-socket in the order of Firecracker's
 * getting-started and snapshot documentation: configure, boot, pause, snapshot; then
 * in a fresh process load and resume. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define TMO 60000

static char dir[] = "/tmp/thaw-apitest-XXXXXX";

static void put(const char *sock, const char *path, const char *json)
{
	char body[8192];
	int st = harness_http(sock, "PUT", path, json, body, sizeof(body));

	if (st != 204)
		fail_msg("PUT %s: %d %s", path, st, body);
}

static struct vmproc *thaw_api(const char *sock)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", sock, NULL};
	struct vmproc *p;

	unlink(sock);
	p = harness_start(argv);
	assert_int_equal(harness_wait_socket(sock), 0);
	return p;
}

static void firecracker_getting_started_then_snapshot_and_load(void **state)
{
	char s1[256], s2[256], snap[256], mem[256], json[2048], body[8192], ans[256];
	struct vmproc *a, *b;

	snprintf(s1, sizeof(s1), "%s/a.sock", dir);
	snprintf(s2, sizeof(s2), "%s/b.sock", dir);
	snprintf(snap, sizeof(snap), "%s/snapshot_file", dir);
	snprintf(mem, sizeof(mem), "%s/mem_file", dir);

	a = thaw_api(s1);
	put(s1, "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}");
	snprintf(json, sizeof(json),
		 "{\"kernel_image_path\": \"%s\", \"boot_args\": \"console=ttyS0 reboot=k "
		 "panic=1 pci=off\"}",
		 harness_env("THAW_PROBE"));
	put(s1, "/boot-source", json);
	put(s1, "/actions", "{\"action_type\": \"InstanceStart\"}");
	if (vmproc_expect(a, "THAW_PROBE_READY", TMO, NULL, 0)) {
		vmproc_dump(a, "boot over the API");
		fail();
	}
	assert_int_equal(vmproc_ask(a, "touch 8 8 5", "PROBE touch", TMO, ans, sizeof(ans)), 0);
	assert_int_equal(harness_http(s1, "GET", "/", NULL, body, sizeof(body)), 200);
	assert_non_null(strstr(body, "Running"));

	/* configuration after start is refused */
	assert_int_equal(harness_http(s1, "PUT", "/machine-config",
				      "{\"vcpu_count\": 1, \"mem_size_mib\": 64}", body,
				      sizeof(body)),
			 400);
	assert_non_null(strstr(body, "fault_message"));

	assert_int_equal(
	    harness_http(s1, "PATCH", "/vm", "{\"state\": \"Paused\"}", body, sizeof(body)), 204);
	snprintf(json, sizeof(json),
		 "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"%s\", \"mem_file_path\": "
		 "\"%s\"}",
		 snap, mem);
	put(s1, "/snapshot/create", json);
	assert_int_equal(harness_http(s1, "GET", "/", NULL, body, sizeof(body)), 200);
	assert_non_null(strstr(body, "Paused"));
	harness_end(a);

	b = thaw_api(s2);
	/* a load of a file that is not a snapshot is refused, and the process stays usable */
	assert_int_equal(harness_http(s2, "PUT", "/snapshot/load",
				      "{\"snapshot_path\": \"/etc/passwd\", \"resume_vm\": true}",
				      body, sizeof(body)),
			 400);
	assert_non_null(strstr(body, "fault_message"));
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_path\": \"%s\", "
		 "\"backend_type\": \"File\"}, \"enable_diff_snapshots\": false, \"resume_vm\": "
		 "false}",
		 snap, mem);
	put(s2, "/snapshot/load", json);
	assert_int_equal(harness_http(s2, "GET", "/", NULL, body, sizeof(body)), 200);
	assert_non_null(strstr(body, "Paused"));
	assert_int_equal(
	    harness_http(s2, "PATCH", "/vm", "{\"state\": \"Resumed\"}", body, sizeof(body)), 204);
	/* the guest kept what it wrote before the snapshot */
	if (vmproc_ask(b, "sum 8 8", "PROBE sum", TMO, ans, sizeof(ans))) {
		vmproc_dump(b, "after load");
		fail();
	}
	assert_int_equal(vmproc_ask(b, "info", "PROBE info", TMO, body, sizeof(body)), 0);
	assert_non_null(strstr(body, "online=2"));

	/* metrics carry the load latency */
	char metrics[300], cmd[400];
	snprintf(metrics, sizeof(metrics), "%s/metrics.json", dir);
	snprintf(json, sizeof(json), "{\"metrics_path\": \"%s\"}", metrics);
	put(s2, "/metrics", json);
	put(s2, "/actions", "{\"action_type\": \"FlushMetrics\"}");
	snprintf(cmd, sizeof(cmd), "grep -q '\"load_snapshot\":' %s", metrics);
	assert_int_equal(system(cmd), 0);
	/* and the console's counters: the probe has answered, nothing was dropped */
	snprintf(cmd, sizeof(cmd),
		 "grep -Eq '\"out_bytes\": ?[1-9].*\"out_dropped_bytes\": ?0\\b' %s", metrics);
	assert_int_equal(system(cmd), 0);
	/* a second load in the same process is refused */
	assert_int_equal(harness_http(s2, "PUT", "/snapshot/load", json, body, sizeof(body)), 400);
	harness_end(b);
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(firecracker_getting_started_then_snapshot_and_load),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests_name("api", tests, setup, teardown);
}
