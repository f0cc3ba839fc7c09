/* Firecracker's clients against a real thaw with real VMs (the probe guest): the request
 * sequences of firecracker-go-sdk's Machine.Start (log and metrics FIFOs), CreateSnapshot,
 * its snapshot load and Shutdown, of firecracker-containerd's VM start, of its JailerCfg,
 * and the curl sequences of Firecracker's getting-started and snapshot documentation.
 * The sequences are written from those projects' public code and docs (which request,
 * in which order, with which members); each step checks the status code and the shape
 * of the body a client parses.
 *
 * MMDS: the SDK's ConfigMmdsHandler and SetMetadata are replayed on VMs without network
 * interfaces (the configuration is refused naming the interface, the data round-trips);
 * a guest reading MMDS over its network is test_linux's MMDS test. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tests/integration/harness.h"

#define TMO	  60000
#define BOOT_ARGS "console=ttyS0 reboot=k panic=1 pci=off"

static char dir[] = "/tmp/thaw-fcconf-XXXXXX";
static char docs_snap[300], docs_mem[300]; /* a device-less snapshot (test order matters) */
static char sdk_snap[300], sdk_mem[300];   /* one with a drive and a vsock */

static char body[8192];

/* One request; fails the test unless the status is `want`. The body is in `body`. */
static void req(const char *sock, const char *method, const char *path, const char *json, int want)
{
	int st = harness_http(sock, method, path, json, body, sizeof(body));

	if (st != want)
		fail_msg("%s %s: got %d, wanted %d: %s", method, path, st, want, body);
}

/* A 400 whose fault_message contains `needle`: Firecracker's error shape. */
static void req_fault(const char *sock, const char *method, const char *path, const char *json,
		      const char *needle)
{
	json_object *o, *m;

	req(sock, method, path, json, 400);
	o = json_tokener_parse(body);
	if (!o || !json_object_object_get_ex(o, "fault_message", &m) ||
	    !json_object_is_type(m, json_type_string))
		fail_msg("%s %s: not {\"fault_message\": string}: %s", method, path, body);
	if (!strstr(json_object_get_string(m), needle))
		fail_msg("%s %s: \"%s\" lacks \"%s\"", method, path, json_object_get_string(m),
			 needle);
	json_object_put(o);
}

/* The member at a dotted path ("drives.0.drive_id": arrays by index), or NULL. */
static json_object *jat(json_object *o, const char *path)
{
	char key[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)atoi(key));
		else if (!json_object_object_get_ex(o, key, &o))
			o = NULL;
		path += n + (path[n] == '.');
	}
	return o;
}

static void want_str(json_object *o, const char *path, const char *want)
{
	json_object *v = jat(o, path);

	if (!v || !json_object_is_type(v, json_type_string))
		fail_msg("%s: not a string in %s", path, json_object_to_json_string(o));
	if (want && strcmp(json_object_get_string(v), want))
		fail_msg("%s: \"%s\", wanted \"%s\"", path, json_object_get_string(v), want);
}

static void want_int(json_object *o, const char *path, int64_t want)
{
	json_object *v = jat(o, path);

	if (!v || !json_object_is_type(v, json_type_int))
		fail_msg("%s: not an integer in %s", path, json_object_to_json_string(o));
	if (want >= 0 && json_object_get_int64(v) != want)
		fail_msg("%s: %lld, wanted %lld", path, (long long)json_object_get_int64(v),
			 (long long)want);
}

/* The body of the last request as JSON (the caller puts it). */
static json_object *body_json(void)
{
	json_object *o = json_tokener_parse(body);

	if (!o)
		fail_msg("not JSON: %s", body);
	return o;
}

static struct vmproc *thaw_api(const char *sock, const char *id)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", sock, "--id", id, NULL};
	struct vmproc *p;

	unlink(sock);
	p = harness_start(argv);
	if (harness_wait_socket(sock)) {
		vmproc_dump(p, "no API socket");
		fail();
	}
	return p;
}

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* A file of `size` bytes for a drive. */
static void make_file(const char *path, off_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static void make_fifo(const char *path)
{
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
}

/* Everything a FIFO holds now (it is read non-blocking), NUL-terminated. */
static size_t drain_fifo(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return n;
}

/* A request that is not HTTP, so thaw logs a warning (into the log FIFO). */
static void send_garbage(const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[256];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, "BROKEN\r\n\r\n", 10), 10);
	(void)!read(fd, buf, sizeof(buf));
	close(fd);
}

/* FlushMetrics, then the line it wrote to the metrics FIFO, in Firecracker's layout. */
static json_object *flush_and_read_metrics(const char *sock, int mfd)
{
	static char line[1 << 16];
	json_object *o;
	char *last, *nl;

	req(sock, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", 204);
	assert_true(drain_fifo(mfd, line, sizeof(line)) > 0);
	/* the last complete line */
	nl = strrchr(line, '\n');
	assert_non_null(nl);
	*nl = '\0';
	last = strrchr(line, '\n');
	last = last ? last + 1 : line;
	o = json_tokener_parse(last);
	assert_non_null(o);
	want_int(o, "utc_timestamp_ms", -1);
	want_int(o, "api_server.process_startup_time_us", -1);
	want_int(o, "api_server.process_startup_time_cpu_us", -1);
	want_int(o, "put_api_requests.actions_count", -1);
	want_int(o, "put_api_requests.drive_fails", -1);
	want_int(o, "get_api_requests.instance_info_count", -1);
	want_int(o, "patch_api_requests.machine_cfg_count", -1);
	want_int(o, "latencies_us.load_snapshot", -1);
	want_int(o, "vcpu.exit_io_out", -1);
	want_int(o, "logger.missed_metrics_count", -1);
	return o;
}

/* firecracker-go-sdk's Shutdown sends SendCtrlAltDel; a guest that honours it (the
 * probe's `kbd`, as Linux with an i8042 driver) resets, and thaw ends with status 0. */
static void shutdown_like_the_sdk(struct vmproc *p, const char *sock)
{
	char ans[128];
	int st;

	/* Keys pressed before the probe polls wait in the controller's buffer. */
	assert_int_equal(vmproc_send(p, "kbd"), 0);
	req(sock, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", 204);
	if (vmproc_expect(p, "PROBE kbd ctrl_alt_del", TMO, ans, sizeof(ans))) {
		vmproc_dump(p, "SendCtrlAltDel");
		fail();
	}
	st = vmproc_wait(p, TMO);
	if (st != 0) {
		vmproc_dump(p, "exit after the guest's reset");
		fail_msg("exit status %d, wanted 0", st);
	}
}

/* The SDK's BootstrapLoggingHandler: the logger to the log FIFO, the metrics to theirs. */
static void bootstrap_logging(const char *sock, const char *lfifo, const char *mfifo,
			      const char *level)
{
	char json[1024];

	snprintf(json, sizeof(json),
		 "{\"log_path\": \"%s\", \"level\": \"%s\", \"show_level\": true, "
		 "\"show_log_origin\": false}",
		 lfifo, level);
	req(sock, "PUT", "/logger", json, 204);
	snprintf(json, sizeof(json), "{\"metrics_path\": \"%s\"}", mfifo);
	req(sock, "PUT", "/metrics", json, 204);
}

/* InstanceStart, then the probe's first line. */
static void start_instance(struct vmproc *p, const char *sock)
{
	req(sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204);
	if (vmproc_expect(p, "THAW_PROBE_READY", TMO, NULL, 0)) {
		vmproc_dump(p, "boot");
		fail();
	}
}

static void put_boot_source(const char *sock, const char *extra_args)
{
	char json[1024];

	snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"%s%s\"}",
		 harness_env("THAW_PROBE"), BOOT_ARGS, extra_args);
	req(sock, "PUT", "/boot-source", json, 204);
}

/* The SDK's ConfigMmdsHandler and SetMetadata: PUT /mmds/config through the interfaces
 * that allow MMDS (these VMs have none: the configuration is refused naming the missing
 * interface, as Firecracker refuses it), then the data, PUT /mmds, read back by GET
 * /mmds. A guest fetching it over the network is test_linux's MMDS test. */
static void mmds_sdk_sequence(const char *sock)
{
	json_object *o;

	req_fault(sock, "PUT", "/mmds/config",
		  "{\"network_interfaces\": [\"1\"], \"version\": \"V2\"}", "not found: 1");
	req(sock, "PUT", "/mmds", "{\"latest\": {\"meta-data\": {\"instance-id\": \"i-sdk\"}}}",
	    204);
	req(sock, "GET", "/mmds", NULL, 200);
	o = body_json();
	want_str(o, "latest.meta-data.instance-id", "i-sdk");
	json_object_put(o);
}

/* ---- Firecracker's getting-started and snapshot docs, with curl ------------------------ */

static void firecracker_docs_getting_started_and_snapshots(void **state)
{
	char s1[256], s2[256], log[256], json[2048], rootfs[256], ans[256];
	struct vmproc *a, *b;
	json_object *o;

	path_in(s1, sizeof(s1), "docs1.sock");
	path_in(s2, sizeof(s2), "docs2.sock");
	path_in(log, sizeof(log), "firecracker.log");
	path_in(rootfs, sizeof(rootfs), "rootfs.ext4");
	path_in(docs_snap, sizeof(docs_snap), "snapshot_file");
	path_in(docs_mem, sizeof(docs_mem), "mem_file");
	make_file(rootfs, 1 << 20);

	a = thaw_api(s1, "anonymous-instance");
	/* getting started: the logger to a file that does not exist yet, then the VM */
	snprintf(json, sizeof(json),
		 "{\"log_path\": \"%s\", \"level\": \"Debug\", \"show_level\": true, "
		 "\"show_log_origin\": true}",
		 log);
	req(s1, "PUT", "/logger", json, 204);
	snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"%s\"}",
		 harness_env("THAW_PROBE"), BOOT_ARGS);
	req(s1, "PUT", "/boot-source", json, 204);
	req(s1, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}", 204);
	req(s1, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204);
	if (vmproc_expect(a, "THAW_PROBE_READY", TMO, NULL, 0)) {
		vmproc_dump(a, "boot");
		fail();
	}
	assert_int_equal(vmproc_ask(a, "touch 8 8 5", "PROBE touch", TMO, ans, sizeof(ans)), 0);
	/* the log file was created and written */
	{
		struct stat st;

		assert_int_equal(stat(log, &st), 0);
		assert_true(S_ISREG(st.st_mode));
	}
	/* life cycle: configuration after start is refused, as Firecracker refuses it */
	req_fault(s1, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}",
		  "not supported after starting");
	/* a GET with a body is refused, as Firecracker refuses it */
	req_fault(s1, "GET", "/machine-config", "{}", "takes no body");

	/* the snapshot doc: pause, create a Full snapshot with a memory file, resume */
	req(s1, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204);
	req(s1, "GET", "/", NULL, 200);
	o = body_json();
	want_str(o, "state", "Paused");
	json_object_put(o);
	snprintf(json, sizeof(json),
		 "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"%s\", \"mem_file_path\": "
		 "\"%s\"}",
		 docs_snap, docs_mem);
	req(s1, "PUT", "/snapshot/create", json, 204);
	req(s1, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204);
	assert_int_equal(vmproc_ask(a, "ping", "PROBE pong", TMO, NULL, 0), 0);
	harness_end(a);

	/* the snapshot doc's load: a new process, File backend, paused, then resumed */
	b = thaw_api(s2, "anonymous-instance");
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_path\": \"%s\", "
		 "\"backend_type\": \"File\"}, \"enable_diff_snapshots\": false, \"resume_vm\": "
		 "false}",
		 docs_snap, docs_mem);
	req(s2, "PUT", "/snapshot/load", json, 204);
	req(s2, "GET", "/", NULL, 200);
	o = body_json();
	want_str(o, "state", "Paused");
	json_object_put(o);
	req(s2, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204);
	if (vmproc_ask(b, "sum 8 8", "PROBE sum", TMO, ans, sizeof(ans))) {
		vmproc_dump(b, "after load");
		fail();
	}
	/* the configuration of a loaded VM is the snapshot's */
	req(s2, "GET", "/vm/config", NULL, 200);
	o = body_json();
	want_int(o, "machine-config.vcpu_count", 2);
	want_int(o, "machine-config.mem_size_mib", 64);
	want_str(o, "boot-source.boot_args", NULL);
	json_object_put(o);
	/* a second load in the same process is refused */
	req_fault(s2, "PUT", "/snapshot/load", json, "not allowed after starting");
	harness_end(b);
}

/* ---- firecracker-go-sdk ---------------------------------------------------------------- */

/* Machine.Start with LogFifo and MetricsFifo (the FIFOs exist, nobody reads them yet),
 * a root drive and a vsock; then CreateSnapshot (pause, create, resume), the
 * introspection calls, and Shutdown. */
static void go_sdk_machine_start_snapshot_and_shutdown(void **state)
{
	static const char id[] = "4e3f8a1c-0b6d-4c1e-9a57-2f0d6b8e1a33"; /* a UUID, as VMID */
	char sock[256], lfifo[256], mfifo[256], rootfs[256], vs[256], json[2048];
	char logbuf[8192];
	struct vmproc *p;
	json_object *o;
	int lfd, mfd;

	path_in(sock, sizeof(sock), "sdk.sock");
	path_in(lfifo, sizeof(lfifo), "fc-logs.fifo");
	path_in(mfifo, sizeof(mfifo), "fc-metrics.fifo");
	path_in(rootfs, sizeof(rootfs), "sdk-root.ext4");
	path_in(vs, sizeof(vs), "sdk.vsock");
	path_in(sdk_snap, sizeof(sdk_snap), "sdk.snap");
	path_in(sdk_mem, sizeof(sdk_mem), "sdk.mem");
	make_file(rootfs, 1 << 20);
	/* CreateLogFilesHandler: the FIFOs, before the VMM is told about them */
	make_fifo(lfifo);
	make_fifo(mfifo);

	/* StartVMMHandler: the process, then waitForSocket polls GET /machine-config */
	p = thaw_api(sock, id);
	req(sock, "GET", "/machine-config", NULL, 200);
	o = body_json();
	want_int(o, "vcpu_count", 1);
	want_int(o, "mem_size_mib", 128);
	json_object_put(o);
	/* BootstrapLoggingHandler */
	bootstrap_logging(sock, lfifo, mfifo, "Debug");
	/* CreateMachineHandler, CreateBootSourceHandler, AttachDrivesHandler,
	 * CreateNetworkInterfacesHandler (no interfaces here), AddVsocksHandler */
	req(sock, "PUT", "/machine-config",
	    "{\"vcpu_count\": 1, \"mem_size_mib\": 64, \"smt\": false}", 204);
	put_boot_source(sock, "");
	snprintf(json, sizeof(json),
		 "{\"drive_id\": \"1\", \"is_root_device\": true, \"is_read_only\": false, "
		 "\"path_on_host\": \"%s\"}",
		 rootfs);
	req(sock, "PUT", "/drives/1", json, 204);
	snprintf(json, sizeof(json),
		 "{\"guest_cid\": 3, \"uds_path\": \"%s\", \"vsock_id\": \"vsock0\"}", vs);
	req(sock, "PUT", "/vsock", json, 204);
	/* ConfigMmdsHandler, SetMetadata */
	mmds_sdk_sequence(sock);
	/* startInstance */
	start_instance(p, sock);

	/* DescribeInstanceInfo and GetFirecrackerVersion */
	req(sock, "GET", "/", NULL, 200);
	o = body_json();
	want_str(o, "id", id);
	want_str(o, "state", "Running");
	want_str(o, "vmm_version", NULL);
	want_str(o, "app_name", NULL);
	json_object_put(o);
	req(sock, "GET", "/version", NULL, 200);
	o = body_json();
	want_str(o, "firecracker_version", NULL);
	json_object_put(o);
	/* GetExportVMConfig */
	req(sock, "GET", "/vm/config", NULL, 200);
	o = body_json();
	want_str(o, "boot-source.kernel_image_path", harness_env("THAW_PROBE"));
	want_str(o, "drives.0.drive_id", "1");
	want_str(o, "drives.0.path_on_host", rootfs);
	want_int(o, "machine-config.mem_size_mib", 64);
	want_int(o, "vsock.guest_cid", 3);
	want_str(o, "logger.log_path", lfifo);
	want_str(o, "metrics.metrics_path", mfifo);
	assert_non_null(jat(o, "network-interfaces"));
	json_object_put(o);

	/* The readers come now (firecracker-containerd starts them after the PUTs): what
	 * was written waited in the pipes. */
	lfd = open(lfifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	mfd = open(mfifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(lfd >= 0 && mfd >= 0);
	send_garbage(sock);
	/* the warning about the bad request reaches the log FIFO */
	for (int i = 0; i < 100; i++) {
		drain_fifo(lfd, logbuf, sizeof(logbuf));
		if (strstr(logbuf, "Malformed HTTP request"))
			break;
		usleep(50 * 1000);
	}
	assert_non_null(strstr(logbuf, "Malformed HTTP request"));
	o = flush_and_read_metrics(sock, mfd);
	json_object_put(o);

	/* CreateSnapshot: PauseVM, CreateSnapshot(mem, snapshot), ResumeVM */
	req(sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204);
	snprintf(json, sizeof(json), "{\"mem_file_path\": \"%s\", \"snapshot_path\": \"%s\"}",
		 sdk_mem, sdk_snap);
	req(sock, "PUT", "/snapshot/create", json, 204);
	req(sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	o = flush_and_read_metrics(sock, mfd);
	/* the pause and resume were measured */
	want_int(o, "latencies_us.full_create_snapshot", -1);
	assert_true(json_object_get_int64(jat(o, "latencies_us.full_create_snapshot")) > 0);
	assert_int_equal(json_object_get_int64(jat(o, "put_api_requests.actions_count")), 1);
	json_object_put(o);

	/* Shutdown */
	shutdown_like_the_sdk(p, sock);
	harness_end(p);
	close(lfd);
	close(mfd);
}

/* Machine.Start WithSnapshot: the configuration handlers are skipped; logger and
 * metrics, then LoadSnapshotHandler (resume_vm true); then Shutdown. */
static void go_sdk_load_snapshot_then_shutdown(void **state)
{
	char sock[256], lfifo[256], mfifo[256], json[2048];
	struct vmproc *p;
	json_object *o;
	int mfd;

	if (!docs_snap[0])
		skip();
	path_in(sock, sizeof(sock), "sdkload.sock");
	path_in(lfifo, sizeof(lfifo), "load-logs.fifo");
	path_in(mfifo, sizeof(mfifo), "load-metrics.fifo");
	make_fifo(lfifo);
	make_fifo(mfifo);
	p = thaw_api(sock, "sdk-load-1");
	req(sock, "GET", "/machine-config", NULL, 200);
	bootstrap_logging(sock, lfifo, mfifo, "Info");
	snprintf(json, sizeof(json),
		 "{\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"%s\"}, "
		 "\"snapshot_path\": \"%s\", \"resume_vm\": true}",
		 docs_mem, docs_snap);
	req(sock, "PUT", "/snapshot/load", json, 204);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	req(sock, "GET", "/", NULL, 200);
	o = body_json();
	want_str(o, "state", "Running");
	want_str(o, "id", "sdk-load-1");
	json_object_put(o);
	mfd = open(mfifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(mfd >= 0);
	o = flush_and_read_metrics(sock, mfd);
	assert_true(json_object_get_int64(jat(o, "latencies_us.load_snapshot")) > 0);
	assert_true(json_object_get_int64(jat(o, "latencies_us.vmm_load_snapshot")) > 0);
	json_object_put(o);
	shutdown_like_the_sdk(p, sock);
	harness_end(p);
	close(mfd);
}

/* thaw's deliberate difference (docs/api.md): a snapshot's drive is not reopened at the
 * path the snapshot names. The SDK's load of a snapshot with a drive is refused, naming
 * the drive and the way to give it, and the process stays usable. */
static void go_sdk_load_of_a_snapshot_with_a_drive_names_the_drive(void **state)
{
	char sock[256], json[2048];
	struct vmproc *p;

	if (!sdk_snap[0])
		skip();
	path_in(sock, sizeof(sock), "sdkdrive.sock");
	p = thaw_api(sock, "sdk-load-2");
	snprintf(json, sizeof(json),
		 "{\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"%s\"}, "
		 "\"snapshot_path\": \"%s\", \"resume_vm\": true}",
		 sdk_mem, sdk_snap);
	req_fault(sock, "PUT", "/snapshot/load", json, "drive '1'");
	/* the same load with the drive given as thaw's override works */
	snprintf(json, sizeof(json),
		 "{\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"%s\"}, "
		 "\"snapshot_path\": \"%s\", \"resume_vm\": true, \"drive_overrides\": "
		 "[{\"drive_id\": \"1\", \"path_on_host\": \"%s/sdk-root.ext4\"}], "
		 "\"vsock_override\": {\"uds_path\": \"%s/sdk2.vsock\"}}",
		 sdk_mem, sdk_snap, dir, dir);
	req(sock, "PUT", "/snapshot/load", json, 204);
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
	/* GET /vm/config reports the snapshot's devices with the host sides given */
	req(sock, "GET", "/vm/config", NULL, 200);
	{
		char want[400];
		json_object *o = body_json();

		want_str(o, "drives.0.drive_id", "1");
		snprintf(want, sizeof(want), "%s/sdk-root.ext4", dir);
		want_str(o, "drives.0.path_on_host", want);
		snprintf(want, sizeof(want), "%s/sdk2.vsock", dir);
		want_str(o, "vsock.uds_path", want);
		want_int(o, "vsock.guest_cid", 3);
		want_int(o, "machine-config.mem_size_mib", 64);
		json_object_put(o);
	}
	harness_end(p);
}

/* ---- firecracker-containerd -------------------------------------------------------------- */

/* The shim's VM start: log and metrics FIFOs, a read-only root drive and stub drives
 * for the containers' block devices, the agent's vsock, then InstanceStart; StopVM
 * ends with the SDK's Shutdown. */
static void firecracker_containerd_vm_start(void **state)
{
	char sock[256], lfifo[256], mfifo[256], root[256], stub[256], vs[256], json[2048];
	struct vmproc *p;
	json_object *o;
	int mfd;

	path_in(sock, sizeof(sock), "firecracker.sock");
	path_in(lfifo, sizeof(lfifo), "fc-logs.fifo");
	path_in(mfifo, sizeof(mfifo), "fc-metrics.fifo");
	path_in(root, sizeof(root), "default-rootfs.img");
	path_in(vs, sizeof(vs), "firecracker.vsock");
	make_file(root, 1 << 20);
	make_fifo(lfifo);
	make_fifo(mfifo);
	p = thaw_api(sock, "ctrd-vm-7");
	req(sock, "GET", "/machine-config", NULL, 200);
	bootstrap_logging(sock, lfifo, mfifo, "Debug");
	req(sock, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 128}", 204);
	put_boot_source(sock, " ro systemd.unified_cgroup_hierarchy=0");
	snprintf(json, sizeof(json),
		 "{\"drive_id\": \"root_drive\", \"is_root_device\": true, \"is_read_only\": "
		 "true, \"path_on_host\": \"%s\"}",
		 root);
	req(sock, "PUT", "/drives/root_drive", json, 204);
	for (int i = 0; i < 2; i++) {
		char path[32];

		snprintf(stub, sizeof(stub), "%s/stub%d", dir, i);
		make_file(stub, 512);
		snprintf(path, sizeof(path), "/drives/stub%d", i);
		snprintf(json, sizeof(json),
			 "{\"drive_id\": \"stub%d\", \"is_root_device\": false, \"is_read_only\": "
			 "false, \"path_on_host\": \"%s\"}",
			 i, stub);
		req(sock, "PUT", path, json, 204);
	}
	snprintf(json, sizeof(json), "{\"guest_cid\": 3, \"uds_path\": \"%s\"}", vs);
	req(sock, "PUT", "/vsock", json, 204);
	mmds_sdk_sequence(sock);
	start_instance(p, sock);
	req(sock, "GET", "/vm/config", NULL, 200);
	o = body_json();
	want_str(o, "drives.2.drive_id", "stub1");
	want_int(o, "machine-config.vcpu_count", 2);
	json_object_put(o);
	mfd = open(mfifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(mfd >= 0);
	o = flush_and_read_metrics(sock, mfd);
	json_object_put(o);
	shutdown_like_the_sdk(p, sock);
	harness_end(p);
	close(mfd);
}

/* ---- firecracker-go-sdk's JailerCfg -------------------------------------------------------- */

/* The jailer command line the SDK builds (its flags, then `--` and the VMM's: seccomp and
 * the socket), with Firecracker's layout: the SDK finds the socket at
 * <base>/<exec file name>/<id>/root/run/firecracker.socket and links the kernel into the
 * root, naming it relative to it. */
static void go_sdk_jailer_cfg_runs_thaw(void **state)
{
	static const char id[] = "b7a0c2de-5f11-4b93-8d2e-0c9e6a4f7d21";
	char base[300], sock[600], kernel[600], cmd[2048], thaw[300];
	const char *b = harness_env("THAW_BUILD");
	struct vmproc *p;
	json_object *o;
	int st;

	if (geteuid() != 0) {
		print_message("SKIPPED: the jailer needs root\n");
		skip();
	}
	snprintf(thaw, sizeof(thaw), "%s/thaw-static", b);
	if (access(thaw, X_OK)) {
		print_message("SKIPPED: no %s (a sanitizer build)\n", thaw);
		skip();
	}
	snprintf(base, sizeof(base), "%s/jail", dir);
	assert_int_equal(mkdir(base, 0755), 0);
	{
		char jailer[300];
		const char *argv[] = {jailer,
				      "--id",
				      id,
				      "--uid",
				      "12345",
				      "--gid",
				      "23456",
				      "--exec-file",
				      thaw,
				      "--chroot-base-dir",
				      base,
				      "--",
				      "--no-seccomp",
				      "--api-sock",
				      "/run/firecracker.socket",
				      NULL};

		snprintf(jailer, sizeof(jailer), "%s/thaw-jailer", b);
		p = harness_start(argv);
	}
	snprintf(sock, sizeof(sock), "%s/thaw-static/%s/root/run/firecracker.socket", base, id);
	if (harness_wait_socket(sock)) {
		vmproc_dump(p, "jailed thaw's socket");
		fail_msg("no socket at %s", sock);
	}
	req(sock, "GET", "/machine-config", NULL, 200);
	/* LinkFilesHandler: the kernel hard-linked (here: copied) into the root */
	snprintf(kernel, sizeof(kernel), "%s/thaw-static/%s/root/vmlinux", base, id);
	snprintf(cmd, sizeof(cmd), "install -m 444 -o 12345 -g 23456 %s %s",
		 harness_env("THAW_PROBE"), kernel);
	assert_int_equal(system(cmd), 0);
	req(sock, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}", 204);
	req(sock, "PUT", "/boot-source",
	    "{\"kernel_image_path\": \"vmlinux\", \"boot_args\": \"" BOOT_ARGS "\"}", 204);
	req(sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204);
	if (vmproc_expect(p, "THAW_PROBE_READY", TMO, NULL, 0)) {
		vmproc_dump(p, "jailed boot");
		fail();
	}
	/* the jailer told thaw its id, as Firecracker's jailer tells firecracker */
	req(sock, "GET", "/", NULL, 200);
	o = body_json();
	want_str(o, "id", id);
	json_object_put(o);
	shutdown_like_the_sdk(p, sock);
	harness_end(p);
	snprintf(cmd, sizeof(cmd),
		 "%s/thaw-jailer --cleanup --id %s --chroot-base %s --exec-file %s", b, id, base,
		 thaw);
	st = system(cmd);
	assert_int_equal(st, 0);
}

/* ---- Firecracker's process flags ------------------------------------------------------------ */

/* `--config-file` with `--no-api`: the VM boots from Firecracker's JSON alone; with a
 * socket, it boots and the API serves what the file configured. */
static void config_file_boots_with_and_without_api(void **state)
{
	char cfg[256], sock[256], mpath[256], json[2048];
	const char *thaw = harness_env("THAW_BIN");
	struct vmproc *p;
	json_object *o;
	FILE *f;

	path_in(cfg, sizeof(cfg), "vm_config.json");
	path_in(sock, sizeof(sock), "cfg.sock");
	path_in(mpath, sizeof(mpath), "cfg.metrics");
	snprintf(json, sizeof(json),
		 "{\"boot-source\": {\"kernel_image_path\": \"%s\", \"boot_args\": \"%s\"},"
		 " \"drives\": [], \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64},"
		 " \"network-interfaces\": [], \"logger\": {\"level\": \"Info\"}}",
		 harness_env("THAW_PROBE"), BOOT_ARGS);
	f = fopen(cfg, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
	{
		const char *argv[] = {thaw,    "--no-api", "--config-file", cfg, "--id",
				      "cfg-1", NULL};

		p = harness_start(argv);
		if (vmproc_expect(p, "THAW_PROBE_READY", TMO, NULL, 0)) {
			vmproc_dump(p, "--no-api --config-file");
			fail();
		}
		assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, NULL, 0), 0);
		harness_end(p);
	}
	{
		const char *argv[] = {thaw,    "--api-sock",	  sock,	 "--config-file",
				      cfg,     "--metrics-path",  mpath, "--level",
				      "Debug", "--start-time-us", "1",	 NULL};

		unlink(sock);
		p = harness_start(argv);
		if (vmproc_expect(p, "THAW_PROBE_READY", TMO, NULL, 0)) {
			vmproc_dump(p, "--api-sock --config-file");
			fail();
		}
		assert_int_equal(harness_wait_socket(sock), 0);
		req(sock, "GET", "/", NULL, 200);
		o = body_json();
		want_str(o, "state", "Running");
		json_object_put(o);
		req(sock, "GET", "/vm/config", NULL, 200);
		o = body_json();
		want_int(o, "machine-config.mem_size_mib", 64);
		want_str(o, "metrics.metrics_path", mpath);
		/* the flags' logger first, then the file's, as Firecracker applies them */
		want_str(o, "logger.level", "Info");
		json_object_put(o);
		/* configuration after the file's boot is refused */
		req_fault(sock, "PUT", "/machine-config",
			  "{\"vcpu_count\": 1, \"mem_size_mib\": 32}",
			  "not supported after starting");
		harness_end(p);
	}
	/* what thaw cannot honour is refused, naming it */
	{
		char out[512];
		const char *argv[] = {thaw, "--seccomp-filter", cfg, "--api-sock", sock, NULL};
		int st;

		p = harness_start(argv);
		st = vmproc_wait(p, TMO);
		assert_int_equal(st, 1);
		snprintf(out, sizeof(out), "%.*s", (int)p->err_len, p->err);
		assert_non_null(strstr(out, "cannot honour a Firecracker seccomp filter"));
		harness_end(p);
	}
}

static int setup(void **state)
{
	return mkdtemp(dir) && chmod(dir, 0755) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

int main(void)
{
	/* In this order: the docs' test makes the device-less snapshot the SDK loads, the
	 * SDK's start makes the one with a drive. */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(firecracker_docs_getting_started_and_snapshots),
	    cmocka_unit_test(go_sdk_machine_start_snapshot_and_shutdown),
	    cmocka_unit_test(go_sdk_load_snapshot_then_shutdown),
	    cmocka_unit_test(go_sdk_load_of_a_snapshot_with_a_drive_names_the_drive),
	    cmocka_unit_test(firecracker_containerd_vm_start),
	    cmocka_unit_test(go_sdk_jailer_cfg_runs_thaw),
	    cmocka_unit_test(config_file_boots_with_and_without_api),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests(tests, setup, teardown);
}
