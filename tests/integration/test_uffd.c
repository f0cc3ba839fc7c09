/* Lazy restore through userfaultfd, with real VMs: every strategy gives the guest the
 * memory a MAP_PRIVATE restore gives it (the probe's checksums over all of its RAM), the
 * external handler works over the socket protocol, a recorded working set is replayed,
 * discarded pages read back as zeros, a handler that dies stops the VM quickly, and one
 * that is alive but stops serving stops it within the stall timeout. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/harness.h"
#include "uffd/uffd.h"

/* Every first touch is a round trip to the handler: slow in a nested TCG host. */
#define TMO 240000

static char dir[] = "/tmp/thaw-uffdtest-XXXXXX";
static char snap[256];	   /* probe after `touch 4 12 5`, 1 vCPU, 32 MiB */
static char ref_sum[128];  /* `sum` after a MAP_PRIVATE restore */
static char ref_scat[256]; /* `touchscatter 4 21 4 r` after a MAP_PRIVATE restore */

#define SCATTER "touchscatter 4 21 4 r"

static void ask(struct vmproc *p, const char *req, const char *prefix, char *ans, size_t len)
{
	if (vmproc_ask(p, req, prefix, TMO, ans, len)) {
		vmproc_dump(p, req);
		fail();
	}
}

static void path_in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Ends thaw the polite way (SIGTERM: uffd_stop writes the record and the counters). */
static void finish(struct vmproc *p)
{
	kill(p->pid, SIGTERM);
	if (vmproc_wait(p, TMO) != 0) {
		vmproc_dump(p, "exit after SIGTERM");
		fail();
	}
}

/* The counter `name=` from thaw's "uffd: faults=..." line (or thaw-uffd's). */
static unsigned long long counter(const char *text, const char *name)
{
	char key[64];
	const char *at = strstr(text, "faults=");

	assert_non_null(at);
	snprintf(key, sizeof(key), " %s=", name);
	if (!strcmp(name, "faults"))
		return strtoull(at + 7, NULL, 10);
	at = strstr(at, key);
	assert_non_null(at);
	return strtoull(at + strlen(key), NULL, 10);
}

static struct vmproc *restore_uffd(const char *strategy, const char *record)
{
	const char *argv[10] = {harness_env("THAW_BIN"), "--restore", snap, "--mem-backend",
				"uffd"};
	int n = 5;

	if (strategy) {
		argv[n++] = "--uffd-strategy";
		argv[n++] = strategy;
	}
	if (record) {
		argv[n++] = "--uffd-record";
		argv[n++] = record;
	}
	argv[n] = NULL;
	return harness_start(argv);
}

static struct vmproc *start_handler(const char *sock, const char *strategy, const char *count)
{
	char bin[512];
	const char *argv[] = {bin,
			      "--socket",
			      sock,
			      "--snapshot",
			      snap,
			      "--strategy",
			      strategy ? strategy : "ondemand",
			      "--count",
			      count,
			      NULL};
	struct vmproc *h;

	snprintf(bin, sizeof(bin), "%s/thaw-uffd", harness_env("THAW_BUILD"));
	h = harness_start(argv);
	if (vmproc_expect(h, "THAW_UFFD_READY", TMO, NULL, 0)) {
		vmproc_dump(h, "thaw-uffd start");
		fail();
	}
	return h;
}

static struct vmproc *restore_ext(const char *sock)
{
	const char *argv[] = {
	    harness_env("THAW_BIN"), "--restore", snap, "--mem-backend", "uffd-ext",
	    "--uffd-sock",	     sock,	  NULL};

	return harness_start(argv);
}

/* "PROBE sum start_mib=.. sum=0x..": everything from "sum=" on. */
static const char *sum_of(const char *ans)
{
	const char *s = strstr(ans, " sum=");

	assert_non_null(s);
	return s + 1;
}

static void every_strategy_restores_the_memory_map_private_gives(void **state)
{
	static const char *const strategies[] = {"ondemand:64k", "ondemand:2m", "ondemand,nozero",
						 "record", NULL};
	char ans[512];

	for (int i = 0; strategies[i]; i++) {
		struct vmproc *p = restore_uffd(strategies[i], NULL);

		ask(p, "sum", "PROBE sum", ans, sizeof(ans));
		if (strcmp(sum_of(ans), ref_sum)) {
			print_error("strategy %s: %s, MAP_PRIVATE %s\n", strategies[i], ans,
				    ref_sum);
			fail();
		}
		ask(p, SCATTER, "PROBE touchscatter", ans, sizeof(ans));
		assert_string_equal(sum_of(ans), ref_scat);
		finish(p);
		/* something was served, and zero pages only when allowed */
		assert_true(counter(p->err, "faults") > 0);
		if (strstr(strategies[i], "nozero"))
			assert_int_equal(counter(p->err, "zero"), 0);
		else
			assert_true(counter(p->err, "zero") > 0);
		harness_end(p);
	}
}

/* A VM prepared ahead (memory slot over an anonymous range): uffd memory replaces the
 * range in place. */
static void prepared_vm_restores_through_uffd(void **state)
{
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--restore",
			      snap,
			      "--prepare",
			      "mem-mib=32,vcpus=1",
			      "--mem-backend",
			      "uffd",
			      "--uffd-strategy",
			      "ondemand:2m",
			      NULL};
	struct vmproc *p = harness_start(argv);
	char ans[512];

	ask(p, "sum", "PROBE sum", ans, sizeof(ans));
	assert_string_equal(sum_of(ans), ref_sum);
	finish(p);
	assert_true(counter(p->err, "faults") > 0);
	harness_end(p);
}

static void external_handler_serves_over_the_socket_protocol(void **state)
{
	char sock[256], ans[512];
	struct vmproc *h, *p;

	path_in_dir(sock, sizeof(sock), "h.sock");
	h = start_handler(sock, "ondemand:16k", "1");
	p = restore_ext(sock);
	ask(p, "sum", "PROBE sum", ans, sizeof(ans));
	assert_string_equal(sum_of(ans), ref_sum);
	ask(p, SCATTER, "PROBE touchscatter", ans, sizeof(ans));
	assert_string_equal(sum_of(ans), ref_scat);
	finish(p);
	harness_end(p);
	/* --count 1: the handler ends once its VM has gone, reporting what it served */
	if (vmproc_wait(h, TMO) != 0) {
		vmproc_dump(h, "thaw-uffd exit");
		fail();
	}
	assert_non_null(strstr(h->err, "done after"));
	assert_true(counter(h->err, "faults") > 0);
	harness_end(h);
}

static void recorded_working_set_is_replayed_by_prefetch(void **state)
{
	char ws[256], strat[400], ans[512], emb[256], cmd[1024];
	unsigned long long rec_faults, faults, prefetched;
	uint64_t *pages;
	size_t n;
	char err[256];
	struct vmproc *p;

	path_in_dir(ws, sizeof(ws), "ws.snap");
	p = restore_uffd("record", ws);
	ask(p, SCATTER, "PROBE touchscatter", ans, sizeof(ans));
	finish(p);
	rec_faults = counter(p->err, "faults");
	harness_end(p);
	assert_int_equal(uffd_ws_read(ws, NULL, 32 * 256, &pages, &n, err, sizeof(err)), 0);
	/* the scatter visits 4 MiB = 1024 pages, each touched first by it */
	assert_true(n >= 1024);
	free(pages);

	snprintf(strat, sizeof(strat), "prefetch,ws=%s", ws);
	p = restore_uffd(strat, NULL);
	ask(p, SCATTER, "PROBE touchscatter", ans, sizeof(ans));
	assert_string_equal(sum_of(ans), ref_scat);
	finish(p);
	faults = counter(p->err, "faults");
	prefetched = counter(p->err, "prefetched");
	print_message("record run: %llu faults; prefetch run: %llu faults, %llu pages "
		      "prefetched\n",
		      rec_faults, faults, prefetched);
	assert_true(prefetched >= 1024);
	/* most of the working set arrived before the guest asked for it */
	assert_true(faults * 2 < rec_faults);
	harness_end(p);
	/* and the rest of memory is still right */
	p = restore_uffd(strat, NULL);
	ask(p, "sum", "PROBE sum", ans, sizeof(ans));
	assert_string_equal(sum_of(ans), ref_sum);
	harness_end(p);

	/* the same working set embedded into the snapshot, served by thaw-uffd */
	path_in_dir(emb, sizeof(emb), "emb.snap");
	snprintf(cmd, sizeof(cmd), "%s/thaw-uffd embed --snapshot %s --workingset %s --out %s",
		 harness_env("THAW_BUILD"), snap, ws, emb);
	assert_int_equal(system(cmd), 0);
	{
		char sock[256];
		struct vmproc *h;
		const char *argv[] = {NULL,	    "--socket", sock,	   "--snapshot", emb,
				      "--strategy", "prefetch", "--count", "1",		 NULL};
		char bin[512];
		const char *targv[] = {
		    harness_env("THAW_BIN"), "--restore", emb, "--mem-backend", "uffd-ext",
		    "--uffd-sock",	     sock,	  NULL};

		path_in_dir(sock, sizeof(sock), "p.sock");
		snprintf(bin, sizeof(bin), "%s/thaw-uffd", harness_env("THAW_BUILD"));
		argv[0] = bin;
		h = harness_start(argv);
		assert_int_equal(vmproc_expect(h, "THAW_UFFD_READY", TMO, NULL, 0), 0);
		p = harness_start(targv);
		ask(p, SCATTER, "PROBE touchscatter", ans, sizeof(ans));
		assert_string_equal(sum_of(ans), ref_scat);
		finish(p);
		harness_end(p);
		assert_int_equal(vmproc_wait(h, TMO), 0);
		assert_true(counter(h->err, "prefetched") >= 1024);
		harness_end(h);
	}
}

/* Asks the probe for `sum START LEN` and returns the sum part. */
static void range_sum(struct vmproc *p, const char *range, char *out, size_t len)
{
	char req[64], ans[512];

	snprintf(req, sizeof(req), "sum %s", range);
	ask(p, req, "PROBE sum", ans, sizeof(ans));
	snprintf(out, len, "%s", sum_of(ans));
}

static void discard_and_check_zeros(struct vmproc *p)
{
	char zeros[256], cmd[1024], want[128], before[128], after[128], ans[512];
	char probe[512];
	union sigval v = {.sival_int = 8 | 4 << 16}; /* [8 MiB, 12 MiB) */
	long long deadline;
	int fd;

	path_in_dir(zeros, sizeof(zeros), "zeros");
	fd = open(zeros, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 << 20), 0);
	close(fd);
	snprintf(probe, sizeof(probe), "%s", harness_env("THAW_PROBE"));
	*strrchr(probe, '/') = 0;
	snprintf(cmd, sizeof(cmd), "%s/probesum sum %s 0 8 4", probe, zeros);
	{
		FILE *f = popen(cmd, "r");

		assert_non_null(f);
		assert_non_null(fgets(want, sizeof(want), f));
		pclose(f);
		want[strcspn(want, "\n")] = 0;
	}
	ask(p, "touch 8 4 77", "PROBE touch", ans, sizeof(ans));
	range_sum(p, "12 4", before, sizeof(before));
	assert_int_equal(sigqueue(p->pid, SIGRTMIN + 1, v), 0);
	deadline = harness_ms() + TMO;
	while (!strstr(p->err, "uffd: discarded") && harness_ms() < deadline)
		ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	if (!strstr(p->err, "uffd: discarded")) {
		vmproc_dump(p, "discard");
		fail();
	}
	range_sum(p, "8 4", after, sizeof(after));
	/* "sum=0x..." against probesum's bare value */
	assert_non_null(strstr(after, want));
	range_sum(p, "12 4", after, sizeof(after));
	assert_string_equal(after, before);
}

static void discarded_pages_read_back_as_zeros(void **state)
{
	char sock[256];
	struct vmproc *p, *h;

	p = restore_uffd("ondemand:64k", NULL);
	discard_and_check_zeros(p);
	finish(p);
	assert_true(counter(p->err, "removes") >= 1);
	assert_true(counter(p->err, "removed_pages") >= 1024);
	harness_end(p);

	path_in_dir(sock, sizeof(sock), "d.sock");
	h = start_handler(sock, "ondemand", "1");
	p = restore_ext(sock);
	discard_and_check_zeros(p);
	finish(p);
	harness_end(p);
	assert_int_equal(vmproc_wait(h, TMO), 0);
	assert_true(counter(h->err, "removed_pages") >= 1024);
	harness_end(h);
}

static void killed_handler_stops_the_vm_within_a_second(void **state)
{
	char sock[256], ans[512];
	struct vmproc *h, *p;
	long long t0, dt;
	int st;

	path_in_dir(sock, sizeof(sock), "k.sock");
	h = start_handler(sock, "ondemand", "1");
	p = restore_ext(sock);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	/* the guest is busy faulting in fresh pages when the handler goes */
	assert_int_equal(vmproc_send(p, "touchscatter 20 9"), 0);
	kill(h->pid, SIGKILL);
	t0 = harness_ms();
	st = vmproc_wait(p, 10000);
	dt = harness_ms() - t0;
	print_message("thaw ended %lld ms after the handler was killed, status %d\n", dt, st);
	if (st != 2 || !strstr(p->err, "page-fault handler")) {
		vmproc_dump(p, "handler killed");
		fail();
	}
	assert_true(dt < 1000);
	harness_end(p);
	harness_end(h);
}

/* Lets a SIGSTOPped thaw-uffd go on: with its VM gone it ends by itself (--count 1). */
static void continue_handler(struct vmproc *h)
{
	assert_int_equal(kill(h->pid, SIGCONT), 0);
	if (vmproc_wait(h, TMO) != 0) {
		vmproc_dump(h, "thaw-uffd after SIGCONT");
		fail();
	}
	harness_end(h);
}

/* The stall detector's timeout in these tests, and what may come on top of it: up to
 * two check periods (a third of the timeout each) before the first kick and after the
 * limit, plus scheduling in a nested TCG host. */
#define STALL_MS	"1500"
#define STALL_MARGIN_MS 3000

static void stopped_handler_ends_the_vm_within_the_stall_timeout(void **state)
{
	char sock[256], ans[512], pid[32];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--restore",
			      snap,
			      "--mem-backend",
			      "uffd-ext",
			      "--uffd-sock",
			      sock,
			      "--uffd-stall-timeout-ms",
			      STALL_MS,
			      NULL};
	struct vmproc *h, *p;
	long long t0, dt;
	int st;

	path_in_dir(sock, sizeof(sock), "s.sock");
	h = start_handler(sock, "ondemand", "1");
	p = harness_start(argv);
	/* the guest answers once: the handler serves */
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	/* alive, but serves nothing from now on */
	assert_int_equal(kill(h->pid, SIGSTOP), 0);
	/* pages no one touched since the restore: the vCPU waits for the first of them */
	assert_int_equal(vmproc_send(p, "touchscatter 20 9"), 0);
	t0 = harness_ms();
	st = vmproc_wait(p, atoi(STALL_MS) + 60000);
	dt = harness_ms() - t0;
	print_message("thaw ended %lld ms after the handler stopped serving (limit %s ms), "
		      "status %d\n",
		      dt, STALL_MS, st);
	snprintf(pid, sizeof(pid), "pid %d", (int)h->pid);
	if (st != 2 || !strstr(p->err, "vcpu0 stuck in a guest memory fault") ||
	    !strstr(p->err, pid) || !strstr(p->err, sock)) {
		vmproc_dump(p, "handler stopped");
		kill(h->pid, SIGCONT);
		fail();
	}
	{
		const char *e = strstr(p->err, "uffd: vcpu0 stuck");
		int len = (int)strcspn(e, "\n");

		print_message("thaw said: %.*s\n", len, e);
	}
	assert_true(dt >= atoi(STALL_MS));
	assert_true(dt < atoi(STALL_MS) + STALL_MARGIN_MS);
	/* the dead-handler watch did not fire: the handler is alive */
	assert_null(strstr(p->err, "hung up its socket"));
	assert_null(strstr(p->err, ") exited"));
	harness_end(p);
	continue_handler(h);
}

/* A handler stopped before it served a single page: whatever touches guest memory first
 * (the restore setting vCPU state, or the vCPU's first instruction) waits from the
 * start, and thaw still ends within the timeout. */
static void handler_stopped_before_serving_ends_the_vm(void **state)
{
	char sock[256], pid[32];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--restore",
			      snap,
			      "--mem-backend",
			      "uffd-ext",
			      "--uffd-sock",
			      sock,
			      "--uffd-stall-timeout-ms",
			      STALL_MS,
			      NULL};
	struct vmproc *h, *p;
	long long t0, dt;
	int st;

	path_in_dir(sock, sizeof(sock), "b.sock");
	h = start_handler(sock, "ondemand", "1");
	/* it listens, so thaw connects and hands the uffd over; nobody reads it */
	assert_int_equal(kill(h->pid, SIGSTOP), 0);
	t0 = harness_ms();
	p = harness_start(argv);
	st = vmproc_wait(p, atoi(STALL_MS) + 60000);
	dt = harness_ms() - t0;
	snprintf(pid, sizeof(pid), "pid %d", (int)h->pid);
	print_message("thaw ended %lld ms after it started (limit %s ms), status %d: %s\n", dt,
		      STALL_MS, st,
		      strstr(p->err, "the restore (main thread) stuck") ? "the restore was stuck"
									: "a vCPU was stuck");
	if (st != 2 || !strstr(p->err, "stuck in a guest memory fault") || !strstr(p->err, pid)) {
		vmproc_dump(p, "handler stopped before serving");
		kill(h->pid, SIGCONT);
		fail();
	}
	assert_true(dt >= atoi(STALL_MS));
	assert_true(dt < atoi(STALL_MS) + STALL_MARGIN_MS);
	/* the guest never printed an answer: it never ran a served instruction */
	assert_null(strstr(p->out, "PROBE"));
	harness_end(p);
	continue_handler(h);
}

/* A Linux guest's restore writes its kvmclock MSRs, which touches guest memory from the
 * main thread before any vCPU runs: with the handler stopped the restore itself waits,
 * there is no vCPU to kick, and thaw still ends within the timeout. */
static void restore_waiting_on_a_stopped_handler_ends_the_vm(void **state)
{
	char lsnap[256], sock[256], pid[32];
	const char *bargv[] = {harness_env("THAW_BIN"),
			       "--kernel",
			       harness_env("THAW_KERNEL"),
			       "--cmdline",
			       "console=ttyS0 thaw_agent.hold_init=1 quiet",
			       "--mem-mib",
			       "128",
			       "--snapshot",
			       lsnap,
			       "--snapshot-after",
			       "THAW_GUEST_READY",
			       "--snapshot-then",
			       "exit",
			       NULL};
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--restore",
			      lsnap,
			      "--mem-backend",
			      "uffd-ext",
			      "--uffd-sock",
			      sock,
			      "--uffd-stall-timeout-ms",
			      STALL_MS,
			      NULL};
	char bin[512];
	const char *hargv[] = {bin, "--socket", sock, "--snapshot", lsnap, "--count", "1", NULL};
	struct vmproc *h, *p;
	long long t0, dt;
	int st;

	path_in_dir(lsnap, sizeof(lsnap), "linux.snap");
	path_in_dir(sock, sizeof(sock), "l.sock");
	p = harness_start(bargv);
	if (vmproc_wait(p, TMO) != 0) {
		vmproc_dump(p, "Linux guest snapshot");
		fail();
	}
	harness_end(p);

	snprintf(bin, sizeof(bin), "%s/thaw-uffd", harness_env("THAW_BUILD"));
	h = harness_start(hargv);
	if (vmproc_expect(h, "THAW_UFFD_READY", TMO, NULL, 0)) {
		vmproc_dump(h, "thaw-uffd start");
		fail();
	}
	assert_int_equal(kill(h->pid, SIGSTOP), 0);
	t0 = harness_ms();
	p = harness_start(argv);
	st = vmproc_wait(p, atoi(STALL_MS) + 60000);
	dt = harness_ms() - t0;
	print_message("thaw ended %lld ms after it started (limit %s ms), status %d\n", dt,
		      STALL_MS, st);
	snprintf(pid, sizeof(pid), "pid %d", (int)h->pid);
	if (st != 2 || !strstr(p->err, "the restore (main thread) stuck in a guest memory fault") ||
	    !strstr(p->err, pid)) {
		vmproc_dump(p, "restore with a stopped handler");
		kill(h->pid, SIGCONT);
		fail();
	}
	assert_true(dt >= atoi(STALL_MS));
	assert_true(dt < atoi(STALL_MS) + STALL_MARGIN_MS);
	harness_end(p);
	continue_handler(h);
}

/* A halted guest without a timer tick never exits by itself: the detector kicks it out
 * of KVM_RUN every period, it comes back at once each time, and is never taken for
 * stuck. */
static void idle_guest_is_not_taken_for_stuck(void **state)
{
	char idle[256], ans[512];
	const char *bargv[] = {harness_env("THAW_BIN"),
			       "--kernel",
			       harness_env("THAW_PROBE"),
			       "--cmdline",
			       "probe.tick_us=0",
			       "--vcpus",
			       "1",
			       "--mem-mib",
			       "32",
			       "--snapshot",
			       idle,
			       "--snapshot-after",
			       "PROBE pong",
			       "--snapshot-then",
			       "exit",
			       NULL};
	const char *argv[] = {harness_env("THAW_BIN"),	 "--restore", idle, "--mem-backend", "uffd",
			      "--uffd-stall-timeout-ms", STALL_MS,    NULL};
	struct vmproc *p;
	const char *line;
	unsigned long long checks, kicks, returns;

	path_in_dir(idle, sizeof(idle), "idle.snap");
	p = harness_start(bargv);
	if (vmproc_expect(p, "THAW_PROBE_READY", TMO, NULL, 0) || vmproc_send(p, "ping") ||
	    vmproc_wait(p, TMO) != 0) {
		vmproc_dump(p, "idle snapshot");
		fail();
	}
	harness_end(p);

	p = harness_start(argv);
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	/* seven check periods of a halted guest (4 x 1500 ms / 500 ms per check) */
	usleep(4 * atoi(STALL_MS) * 1000);
	/* still there, and still answering */
	ask(p, "ping", "PROBE pong", ans, sizeof(ans));
	finish(p);
	if (strstr(p->err, "stuck")) {
		vmproc_dump(p, "idle guest");
		fail();
	}
	line = strstr(p->err, "stall detector: checks=");
	assert_non_null(line);
	assert_int_equal(sscanf(line, "stall detector: checks=%llu kicks=%llu returns=%llu",
				&checks, &kicks, &returns),
			 3);
	print_message("idle guest: %llu checks, %llu kicks, %llu returns from KVM_RUN\n", checks,
		      kicks, returns);
	assert_true(checks >= 10);
	/* halted without a tick it never exits by itself: kicked nearly every period, and
	 * back from each kick by the next check */
	assert_true(kicks >= checks / 2);
	assert_true(returns + 1 >= kicks);
	harness_end(p);
}

static int setup(void **state)
{
	char m[512], ans[512];
	const char *argv[] = {harness_env("THAW_BIN"),
			      "--kernel",
			      harness_env("THAW_PROBE"),
			      "--vcpus",
			      "1",
			      "--mem-mib",
			      "32",
			      "--snapshot",
			      snap,
			      "--snapshot-after",
			      "PROBE touch",
			      "--snapshot-then",
			      "exit",
			      NULL};
	const char *fargv[] = {harness_env("THAW_BIN"), "--restore", snap, NULL};
	struct vmproc p = {0}, *f;

	if (!mkdtemp(dir))
		return -1;
	path_in_dir(snap, sizeof(snap), "base.snap");
	if (vmproc_start(&p, argv) || vmproc_expect(&p, "THAW_PROBE_READY", TMO, NULL, 0) ||
	    vmproc_send(&p, "touch 4 12 5") || vmproc_wait(&p, TMO) != 0) {
		vmproc_dump(&p, "snapshot");
		return -1;
	}
	vmproc_stop(&p);
	f = calloc(1, sizeof(*f));
	if (!f || vmproc_start(f, fargv) ||
	    vmproc_ask(f, "sum", "PROBE sum", TMO, ans, sizeof(ans)) || !strstr(ans, " sum="))
		return -1;
	snprintf(ref_sum, sizeof(ref_sum), "%s", strstr(ans, " sum=") + 1);
	if (vmproc_ask(f, SCATTER, "PROBE touchscatter", TMO, m, sizeof(m)) || !strstr(m, " sum="))
		return -1;
	snprintf(ref_scat, sizeof(ref_scat), "%s", strstr(m, " sum=") + 1);
	vmproc_stop(f);
	free(f);
	return 0;
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
	    cmocka_unit_test(every_strategy_restores_the_memory_map_private_gives),
	    cmocka_unit_test(prepared_vm_restores_through_uffd),
	    cmocka_unit_test(external_handler_serves_over_the_socket_protocol),
	    cmocka_unit_test(recorded_working_set_is_replayed_by_prefetch),
	    cmocka_unit_test(discarded_pages_read_back_as_zeros),
	    cmocka_unit_test(killed_handler_stops_the_vm_within_a_second),
	    cmocka_unit_test(stopped_handler_ends_the_vm_within_the_stall_timeout),
	    cmocka_unit_test(handler_stopped_before_serving_ends_the_vm),
	    cmocka_unit_test(restore_waiting_on_a_stopped_handler_ends_the_vm),
	    cmocka_unit_test(idle_guest_is_not_taken_for_stuck),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests_name("uffd", tests, setup, teardown);
}
