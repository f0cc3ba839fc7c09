/* A snapshot and an API client are untrusted (docs/snapshot-format.md, "Trust"): a
 * snapshot never chooses the host files, taps or sockets its devices use; a client's
 * strings cannot turn into options; a refused snapshot costs nothing, not even a
 * prepared VM. The probe plays the guest; its devices are never used by it, only built
 * and restored by thaw. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"

#define TMO 60000

static char dir[] = "/tmp/thaw-untrusted-XXXXXX";
static char snap[PATH_MAX], disk[PATH_MAX], sock[PATH_MAX];

static void make_file(const char *path, const char *content, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(pwrite(fd, content, strlen(content), 0), (ssize_t)strlen(content));
	close(fd);
}

static void file_has(const char *path, const char *content)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) >= (ssize_t)strlen(content));
	close(fd);
	assert_memory_equal(buf, content, strlen(content));
}

/* Boots the probe with a drive and a vsock device and snapshots it. */
static int group_setup(void **state)
{
	char dspec[PATH_MAX + 64], vspec[PATH_MAX + 64];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--mem-mib",
			      "64",
			      "--drive",
			      dspec,
			      "--vsock",
			      vspec,
			      "--snapshot",
			      snap,
			      "--snapshot-after",
			      "THAW_PROBE_READY",
			      "--snapshot-then",
			      "exit",
			      NULL};
	struct vmproc p = {0};
	int st;

	if (!harness_have_kvm())
		return 0;
	if (!mkdtemp(dir))
		return -1;
	snprintf(snap, sizeof(snap), "%s/base.snap", dir);
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	snprintf(sock, sizeof(sock), "%s/v.sock", dir);
	make_file(disk, "THAWDISK", 1 << 20);
	snprintf(dspec, sizeof(dspec), "id=d0,path=%s,ro=off", disk);
	snprintf(vspec, sizeof(vspec), "cid=3,uds=%s", sock);
	if (vmproc_start(&p, argv))
		return -1;
	st = vmproc_wait(&p, TMO);
	if (st != 0)
		vmproc_dump(&p, "snapshot of the probe with devices");
	vmproc_stop(&p);
	return st == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	if (dir[strlen(dir) - 1] == 'X')
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

#define SKIP_WITHOUT_KVM()                                                                         \
	do {                                                                                       \
		if (!harness_have_kvm())                                                           \
			skip();                                                                    \
	} while (0)

/* Runs `thaw --restore snap ARGS...` and expects it to be refused with `needle` in what
 * it says. */
static void expect_refused(const char *needle, const char *a1, const char *a2, const char *a3,
			   const char *a4)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--restore", snap, a1, a2, a3, a4, NULL};
	struct vmproc *p = harness_start(argv);
	int st = vmproc_wait(p, TMO);

	if (st != 6 || !strstr(p->err, needle)) {
		print_error("want status 6 and '%s', got %d\n", needle, st);
		vmproc_dump(p, "restore");
		fail();
	}
	harness_end(p);
}

/* Restores with ARGS and checks the probe answers. */
static void expect_restored(const char *a1, const char *a2, const char *a3, const char *a4)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--restore", snap, a1, a2, a3, a4, NULL};
	struct vmproc *p = harness_start(argv);
	char ans[128];

	if (vmproc_ask(p, "ping", "PROBE pong", TMO, ans, sizeof(ans))) {
		vmproc_dump(p, "restore");
		fail();
	}
	harness_end(p);
}

/* Without an override or --snapshot-paths, the drive and socket the snapshot names are
 * not opened, created nor removed: the restore is refused naming the device. */
static void snapshot_backends_need_the_operators_consent(void **state)
{
	struct stat st;

	SKIP_WITHOUT_KVM();
	unlink(sock);
	make_file(disk, "THAWDISK", 1 << 20);
	expect_refused("drive 'd0'", NULL, NULL, NULL, NULL);
	/* overriding the drive alone is not enough: the vsock is named next */
	expect_refused("vsock: give its host socket", "--drive", "id=d0,path=/dev/null", NULL,
		       NULL);
	assert_int_equal(stat(sock, &st), -1);
	file_has(disk, "THAWDISK");
}

/* --snapshot-paths DIR lets the snapshot's own paths be used, strictly inside DIR: a
 * path outside it, or through a symlink, is refused. */
static void snapshot_paths_are_confined_to_the_directory(void **state)
{
	char sub[PATH_MAX], link[PATH_MAX], moved[PATH_MAX];

	SKIP_WITHOUT_KVM();
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	mkdir(sub, 0755);
	expect_refused("lies outside", "--snapshot-paths", sub, NULL, NULL);
	expect_restored("--snapshot-paths", dir, NULL, NULL);

	/* the drive's file replaced by a symlink to another file */
	snprintf(moved, sizeof(moved), "%s/sub/real.img", dir);
	snprintf(link, sizeof(link), "%s", disk);
	assert_int_equal(rename(disk, moved), 0);
	assert_int_equal(symlink(moved, link), 0);
	expect_refused("drive d0: open", "--snapshot-paths", dir, NULL, NULL);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(rename(moved, disk), 0);
}

/* The vsock device replaces a stale socket at its path, and nothing else: a regular
 * file there stays, and the restore says why it stopped. */
static void vsock_never_replaces_a_file_that_is_not_a_socket(void **state)
{
	char victim[PATH_MAX], dspec[PATH_MAX + 32], vspec[PATH_MAX + 32];

	SKIP_WITHOUT_KVM();
	snprintf(victim, sizeof(victim), "%s/precious.txt", dir);
	make_file(victim, "PRECIOUS", 4096);
	snprintf(dspec, sizeof(dspec), "id=d0,path=%s", disk);
	snprintf(vspec, sizeof(vspec), "uds=%s", victim);
	expect_refused("is not a socket", "--drive", dspec, "--vsock", vspec);
	file_has(victim, "PRECIOUS");
	/* through --snapshot-paths too: the snapshot's socket path holds a file now */
	unlink(sock);
	make_file(sock, "PRECIOUS", 4096);
	expect_refused("is not a socket", "--snapshot-paths", dir, NULL, NULL);
	file_has(sock, "PRECIOUS");
	unlink(sock);
}

/* A client's path is a path: "img,ro=off" with is_read_only stays read-only (the API
 * once pasted it into an option string where the first ro= won). */
static void api_drive_path_cannot_carry_options(void **state)
{
	char api[PATH_MAX], img[PATH_MAX], json[3 * PATH_MAX], fdpath[64], target[PATH_MAX],
	    body[4096], info[256];
	struct vmproc *p;
	bool found = false;

	SKIP_WITHOUT_KVM();
	snprintf(api, sizeof(api), "%s/api.sock", dir);
	snprintf(img, sizeof(img), "%s/img,ro=off", dir);
	make_file(img, "IMG", 1 << 20);
	{
		const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", api, NULL};

		unlink(api);
		p = harness_start(argv);
	}
	assert_int_equal(harness_wait_socket(api), 0);
	snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\"}", harness_env("THAW_PROBE"));
	assert_int_equal(harness_http(api, "PUT", "/boot-source", json, body, sizeof(body)), 204);
	snprintf(json, sizeof(json),
		 "{\"drive_id\": \"d0\", \"path_on_host\": \"%s\", \"is_root_device\": false, "
		 "\"is_read_only\": true}",
		 img);
	assert_int_equal(harness_http(api, "PUT", "/drives/d0", json, body, sizeof(body)), 204);
	assert_int_equal(harness_http(api, "PUT", "/actions",
				      "{\"action_type\": \"InstanceStart\"}", body, sizeof(body)),
			 204);
	if (vmproc_expect(p, "THAW_PROBE_READY", TMO, NULL, 0)) {
		vmproc_dump(p, "boot over the API");
		fail();
	}
	/* The file thaw holds open for the drive, and how. */
	for (int fd = 0; fd < 256 && !found; fd++) {
		ssize_t n;
		FILE *f;

		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", p->pid, fd);
		n = readlink(fdpath, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = 0;
		if (strcmp(target, img) != 0)
			continue;
		found = true;
		snprintf(fdpath, sizeof(fdpath), "/proc/%d/fdinfo/%d", p->pid, fd);
		f = fopen(fdpath, "r");
		assert_non_null(f);
		while (fgets(info, sizeof(info), f)) {
			unsigned long flags;

			if (sscanf(info, "flags: %lo", &flags) == 1)
				assert_int_equal(flags & O_ACCMODE, O_RDONLY);
		}
		fclose(f);
	}
	assert_true(found);
	harness_end(p);
}

/* A snapshot refused for what it holds is refused before anything is built: the VM
 * prepared ahead (of another shape here, which a restore would discard) stays, and the
 * next load is accepted and restores into it. */
static void refused_snapshot_keeps_the_prepared_vm(void **state)
{
	char api[PATH_MAX], other[PATH_MAX], json[4 * PATH_MAX], body[4096], ans[128];
	const char *mk[] = {harness_env("THAW_BIN"),
			    "--kernel",
			    harness_env("THAW_PROBE"),
			    "--mem-mib",
			    "32",
			    "--snapshot",
			    other,
			    "--snapshot-after",
			    "THAW_PROBE_READY",
			    "--snapshot-then",
			    "exit",
			    NULL};
	struct vmproc *p;

	SKIP_WITHOUT_KVM();
	/* a device-less 32 MiB snapshot: the prepared VM's shape */
	snprintf(other, sizeof(other), "%s/plain32.snap", dir);
	p = harness_start(mk);
	assert_int_equal(vmproc_wait(p, TMO), 0);
	harness_end(p);

	snprintf(api, sizeof(api), "%s/prep.sock", dir);
	{
		const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", api, "--prepare",
				      "mem-mib=32,vcpus=1",    NULL};

		unlink(api);
		p = harness_start(argv);
	}
	assert_int_equal(harness_wait_socket(api), 0);
	/* base.snap (64 MiB, devices without backends) is refused ... */
	snprintf(json, sizeof(json), "{\"snapshot_path\": \"%s\", \"resume_vm\": true}", snap);
	assert_int_equal(harness_http(api, "PUT", "/snapshot/load", json, body, sizeof(body)), 400);
	assert_non_null(strstr(body, "drive 'd0'"));
	/* ... before the prepared VM was discarded for it */
	assert_null(strstr(p->err, "differs from the prepared VM"));
	snprintf(json, sizeof(json), "{\"snapshot_path\": \"%s\", \"resume_vm\": true}", other);
	if (harness_http(api, "PUT", "/snapshot/load", json, body, sizeof(body)) != 204) {
		vmproc_dump(p, body);
		fail();
	}
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, ans, sizeof(ans)), 0);
	assert_null(strstr(p->err, "differs from the prepared VM"));
	harness_end(p);
}

/* The API's drive_overrides give a drive its new file, and a read-only flag that
 * contradicts what the guest was told is refused. */
static void api_drive_overrides_name_the_new_file(void **state)
{
	char api[PATH_MAX], copy[PATH_MAX], json[4 * PATH_MAX], body[4096], ans[128],
	    cmd[3 * PATH_MAX];
	const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", api, NULL};
	struct vmproc *p;

	SKIP_WITHOUT_KVM();
	snprintf(copy, sizeof(copy), "%s/copy.img", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", disk, copy);
	assert_int_equal(system(cmd), 0);
	snprintf(api, sizeof(api), "%s/ovr.sock", dir);
	unlink(api);
	p = harness_start(argv);
	assert_int_equal(harness_wait_socket(api), 0);
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"resume_vm\": true, \"drive_overrides\": "
		 "[{\"drive_id\": \"d0\", \"path_on_host\": \"%s\", \"is_read_only\": true}], "
		 "\"vsock_override\": {\"uds_path\": \"%s/ovr.vsock\"}}",
		 snap, copy, dir);
	assert_int_equal(harness_http(api, "PUT", "/snapshot/load", json, body, sizeof(body)), 400);
	assert_non_null(strstr(body, "the override asks for read-only"));
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"resume_vm\": true, \"drive_overrides\": "
		 "[{\"drive_id\": \"d0\", \"path_on_host\": \"%s\"}], "
		 "\"vsock_override\": {\"uds_path\": \"%s/ovr.vsock\"}}",
		 snap, copy, dir);
	if (harness_http(api, "PUT", "/snapshot/load", json, body, sizeof(body)) != 204) {
		vmproc_dump(p, body);
		fail();
	}
	assert_int_equal(vmproc_ask(p, "ping", "PROBE pong", TMO, ans, sizeof(ans)), 0);
	harness_end(p);
}

/* A guest that prints without end fills no disk: output to a file stops at its cap and
 * what was dropped is counted. */
static void console_output_to_a_file_stops_at_its_cap(void **state)
{
	char out[PATH_MAX];
	const char *argv[] = {
	    harness_env("THAW_BIN"), "--kernel", harness_env("THAW_PROBE"), "--mem-mib", "32",
	    "--console-out",	     out,	 "--console-out-max",	    "100",	 NULL};
	struct vmproc *p;
	struct stat st = {0};
	long long t0 = harness_ms();

	SKIP_WITHOUT_KVM();
	snprintf(out, sizeof(out), "%s/console.txt", dir);
	p = harness_start(argv);
	/* the probe's boot lines alone are more than 100 bytes */
	while (harness_ms() - t0 < TMO && !strstr(p->err, "dropped")) {
		vmproc_send(p, "info");
		usleep(100 * 1000);
		vmproc_expect(p, "never printed", 1, NULL, 0); /* collects stderr */
	}
	kill(p->pid, SIGTERM);
	assert_int_equal(vmproc_wait(p, TMO), 0);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_size, 100);
	if (!strstr(p->err, "bytes of guest output dropped")) {
		vmproc_dump(p, "console cap");
		fail();
	}
	harness_end(p);
}

/* thaw-snap verify decodes the device sections with the VMM's own decoders: "ok" means
 * a restore would take them. */
static void verify_checks_device_sections_as_a_restore_would(void **state)
{
	char cmd[2 * PATH_MAX], out[8192] = "";
	size_t n = 0;
	FILE *f;

	SKIP_WITHOUT_KVM();
	snprintf(cmd, sizeof(cmd), "%s/thaw-snap verify %s 2>&1", harness_env("THAW_BUILD"), snap);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (n < sizeof(out) - 1 && fgets(out + n, (int)(sizeof(out) - n), f))
		n = strlen(out);
	assert_int_equal(pclose(f), 0);
	if (!strstr(out, "decoded and checked as a restore would") || strstr(out, "note section"))
		fail_msg("%s", out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(snapshot_backends_need_the_operators_consent),
	    cmocka_unit_test(snapshot_paths_are_confined_to_the_directory),
	    cmocka_unit_test(vsock_never_replaces_a_file_that_is_not_a_socket),
	    cmocka_unit_test(api_drive_path_cannot_carry_options),
	    cmocka_unit_test(refused_snapshot_keeps_the_prepared_vm),
	    cmocka_unit_test(api_drive_overrides_name_the_new_file),
	    cmocka_unit_test(console_output_to_a_file_stops_at_its_cap),
	    cmocka_unit_test(verify_checks_device_sections_as_a_restore_would),
	};

	return cmocka_run_group_tests_name("untrusted input", tests, group_setup, group_teardown);
}
