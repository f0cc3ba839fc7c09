/* The API driven by real clients: `curl --unix-socket` replaying the request sequence of
 * Firecracker's getting-started and snapshot documentation unchanged, and thawctl (found
 * next to this test program's build directory). Skipped when curl is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/test_api_harness.h"

#include <limits.h>
#include <sys/wait.h>

/* curl one request as the docs write it; returns the HTTP status curl saw. */
static int curl(struct harness *h, const char *method, const char *path, const char *json)
{
	if (json)
		run("curl -s --unix-socket %s -i -X %s 'http://localhost%s' "
		    "-H 'Accept: application/json' -H 'Content-Type: application/json' -d '%s' "
		    "-o /dev/null -w '%%{http_code}'",
		    h->sock, method, path, json);
	else
		run("curl -s --unix-socket %s -X %s 'http://localhost%s' "
		    "-H 'Accept: application/json' -w ' %%{http_code}'",
		    h->sock, method, path);
	if (json)
		return atoi(out);
	return strrchr(out, ' ') ? atoi(strrchr(out, ' ') + 1) : -1;
}

static int have_curl(void)
{
	return run("curl --version >/dev/null 2>&1") == 0;
}

static void curl_getting_started_then_snapshot_sequence(void **state)
{
	struct harness *h;
	char body[512];

	if (!have_curl())
		skip();
	h = h_start_ops(NULL, 0);
	/* Getting started: logger, boot source, rootfs, machine config, network, start. */
	snprintf(body, sizeof(body),
		 "{\"log_path\": \"%s/fc.log\", \"level\": \"Debug\", \"show_level\": true, "
		 "\"show_log_origin\": true}",
		 h->dir);
	assert_int_equal(curl(h, "PUT", "/logger", body), 204);
	assert_int_equal(curl(h, "PUT", "/boot-source",
			      "{\"kernel_image_path\": \"./vmlinux\", \"boot_args\": "
			      "\"console=ttyS0 reboot=k panic=1 pci=off\"}"),
			 204);
	assert_int_equal(curl(h, "PUT", "/drives/rootfs",
			      "{\"drive_id\": \"rootfs\", \"path_on_host\": \"./rootfs.ext4\", "
			      "\"is_root_device\": true, \"is_read_only\": false}"),
			 204);
	assert_int_equal(
	    curl(h, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 1024}"), 204);
	assert_int_equal(curl(h, "PUT", "/network-interfaces/net1",
			      "{\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\", "
			      "\"host_dev_name\": \"tap0\"}"),
			 204);
	assert_int_equal(curl(h, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	assert_int_equal(curl(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(out, "\"state\": \"Running\""));
	/* Snapshot docs: pause, create a full snapshot, resume. */
	assert_int_equal(curl(h, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
	assert_int_equal(
	    curl(h, "PUT", "/snapshot/create",
		 "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"./snapshot_file\", "
		 "\"mem_file_path\": \"./mem_file\"}"),
	    204);
	assert_string_equal(h->screate.mem_file_path, "./mem_file");
	assert_int_equal(curl(h, "PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);
	assert_int_equal(h->mcfg.vcpu_count, 2);
	assert_string_equal(h->drive.path_on_host, "./rootfs.ext4");
	h_stop(h);

	/* A new process loads the snapshot and resumes it. */
	h = h_start_ops(NULL, 0);
	assert_int_equal(curl(h, "PUT", "/snapshot/load",
			      "{\"snapshot_path\": \"./snapshot_file\", \"mem_backend\": "
			      "{\"backend_path\": \"./mem_file\", \"backend_type\": \"File\"}, "
			      "\"track_dirty_pages\": false, \"resume_vm\": false}"),
			 204);
	assert_int_equal(h->sload.backend_type, API_MEM_BACKEND_FILE);
	assert_int_equal(curl(h, "PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);
	assert_int_equal(curl(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(out, "\"state\": \"Running\""));
	/* An error shows curl the fault message. */
	assert_int_equal(curl(h, "GET", "/machine-config", NULL), 200);
	assert_int_equal(curl(h, "PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 400);
	h_stop(h);
}

static char thawctl[PATH_MAX + 16];

static int find_thawctl(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	/* build/tests/test_api_cli -> build/thawctl */
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	snprintf(thawctl, sizeof(thawctl), "%s/thawctl", exe);
	return access(thawctl, X_OK);
}

static void thawctl_commands(void **state)
{
	struct harness *h;
	char mpath[160];

	if (find_thawctl())
		skip();
	h = h_start_ops(NULL, 0);

	assert_int_equal(run("%s --sock %s info 2>&1", thawctl, h->sock), 0);
	assert_non_null(strstr(out, "id:       test-vm"));
	assert_non_null(strstr(out, "state:    Not started"));

	/* A refused request prints the fault_message and exits 1. */
	assert_int_equal(run("%s --sock %s pause 2>&1", thawctl, h->sock), 1);
	assert_non_null(strstr(out, "not supported before starting the microVM"));

	assert_int_equal(run("%s --sock %s snapshot load /snap/base --uffd /run/uffd.sock --resume "
			     "--net eth0=tap7 --vsock-uds /run/v.sock --clock-realtime 2>&1",
			     thawctl, h->sock),
			 0);
	assert_non_null(strstr(out, "snapshot loaded, VM running"));
	assert_string_equal(h->sload.snapshot_path, "/snap/base");
	assert_int_equal(h->sload.backend_type, API_MEM_BACKEND_UFFD);
	assert_string_equal(h->sload.backend_path, "/run/uffd.sock");
	assert_true(h->sload.resume_vm);
	assert_true(h->sload.clock_realtime);
	assert_int_equal(h->sload.n_net_overrides, 1);
	assert_string_equal(h->sload.net_overrides[0].host_dev_name, "tap7");
	assert_string_equal(h->sload.vsock_uds_path, "/run/v.sock");

	assert_int_equal(run("%s --sock %s pause", thawctl, h->sock), 0);
	assert_non_null(strstr(out, "paused"));
	assert_int_equal(run("%s --sock %s info", thawctl, h->sock), 0);
	assert_non_null(strstr(out, "state:    Paused"));
	assert_int_equal(
	    run("%s --sock %s snapshot create /snap/next --mem /snap/next.mem", thawctl, h->sock),
	    0);
	assert_string_equal(h->screate.snapshot_path, "/snap/next");
	assert_string_equal(h->screate.mem_file_path, "/snap/next.mem");
	assert_int_equal(run("%s --sock %s resume", thawctl, h->sock), 0);
	assert_int_equal(run("%s --sock %s config", thawctl, h->sock), 0);
	assert_non_null(strstr(out, "vcpus:"));

	/* metrics: not configured yet (exit 1), then configured through raw. */
	assert_int_equal(run("%s --sock %s metrics 2>&1", thawctl, h->sock), 1);
	assert_non_null(strstr(out, "PUT /metrics first"));
	snprintf(mpath, sizeof(mpath), "%s/m.json", h->dir);
	assert_int_equal(run("%s --sock %s raw PUT /metrics '{\"metrics_path\": \"%s\"}'", thawctl,
			     h->sock, mpath),
			 0);
	assert_non_null(strstr(out, "204"));
	assert_int_equal(run("%s --sock %s metrics", thawctl, h->sock), 0);
	assert_int_equal(access(mpath, R_OK), 0);
	unlink(mpath);

	assert_int_equal(run("%s --sock %s raw GET /nope 2>/dev/null", thawctl, h->sock), 1);
	assert_non_null(strstr(out, "400"));
	assert_non_null(strstr(out, "Invalid request method and/or path"));

	/* Usage errors exit 2, a missing socket 3. */
	assert_int_equal(run("%s --sock %s snapshot load 2>&1", thawctl, h->sock), 2);
	assert_int_equal(
	    run("%s --sock %s snapshot load /s --mem a --uffd b 2>&1", thawctl, h->sock), 2);
	assert_int_equal(run("%s --sock %s frobnicate 2>&1", thawctl, h->sock), 2);
	assert_int_equal(run("%s --sock %s/absent.sock info 2>&1", thawctl, h->dir), 3);
	assert_non_null(strstr(out, "cannot connect"));
	h_stop(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(curl_getting_started_then_snapshot_sequence),
	    cmocka_unit_test(thawctl_commands),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
