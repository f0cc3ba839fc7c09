/* Firecracker's seccomp and signals metrics (vmm/signals.c): the counting handlers, each
 * installed for real in a forked child, and the last line a fatal signal leaves in the
 * metrics file before the process dies of it as before. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "vmm/vmm.h"

static int64_t member(json_object *root, const char *group, const char *name)
{
	json_object *g, *v;

	if (!json_object_object_get_ex(root, group, &g) || !json_object_object_get_ex(g, name, &v))
		fail_msg("no %s.%s in %s", group, name, json_object_to_json_string(root));
	return json_object_get_int64(v);
}

static void test_last_line_is_one_json_object_with_both_groups(void **state)
{
	char line[400];
	size_t n;
	json_object *o;

	vmm_signal_count(SIGSYS);
	vmm_signal_count(SIGHUP);
	vmm_signal_count(SIGHUP);
	vmm_signal_count(SIGUSR1); /* not one of Firecracker's: ignored */
	n = vmm_signals_format_last_line(line, sizeof(line), 1795000000123ull);
	assert_true(n > 0 && n < sizeof(line));
	assert_int_equal(line[n - 1], '\n');
	assert_null(memchr(line, '\n', n - 1));
	line[n] = 0;
	o = json_tokener_parse(line);
	assert_non_null(o);
	assert_int_equal(member(o, "seccomp", "num_faults"), 1);
	assert_int_equal(member(o, "signals", "sighup"), 2);
	assert_int_equal(member(o, "signals", "sigsegv"), 0);
	assert_int_equal(member(o, "signals", "sigpipe"), 0);
	assert_true(json_object_object_get_ex(o, "utc_timestamp_ms", NULL));
	assert_int_equal(json_object_object_length(json_object_object_get(o, "signals")), 7);
	json_object_put(o);
}

static void test_cut_short_never_overflows(void **state)
{
	char line[24];

	memset(line, 'x', sizeof(line));
	assert_int_equal(vmm_signals_format_last_line(line, 20, 1), 20);
	assert_int_equal(line[20], 'x');
}

/* Runs `fn` in a child with the handlers installed and the metrics fd a pipe; returns
 * the wait status and what reached the pipe. */
static int in_child(int (*fn)(void), char *out, size_t cap)
{
	int pfd[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		if (vmm_signals_install())
			_exit(100);
		vmm_signals_set_metrics_fd(pfd[1]);
		_exit(fn());
	}
	close(pfd[1]);
	while (len < cap - 1 && (n = read(pfd[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* A write to a pipe nobody reads fails with EPIPE, as under SIG_IGN, and is counted. */
static int write_to_closed_pipe(void)
{
	struct vmm_signal_counts c;
	int p[2];

	if (pipe(p))
		return 1;
	close(p[0]);
	if (write(p[1], "x", 1) != -1 || errno != EPIPE)
		return 2;
	if (write(p[1], "x", 1) != -1 || errno != EPIPE)
		return 3;
	vmm_signal_counts(&c);
	return c.sigpipe == 2 ? 0 : 4;
}

static void test_sigpipe_is_counted_and_the_write_fails(void **state)
{
	char out[512];
	int st = in_child(write_to_closed_pipe, out, sizeof(out));

	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(out, ""); /* not fatal: no last line */
}

/* An address nothing is mapped at (a page just unmapped), written. */
static int segfault(void)
{
	volatile int *p =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || munmap((void *)p, 4096))
		return 1;
	*p = 1;
	return 2;
}

static void test_sigsegv_leaves_a_last_line_and_still_kills(void **state)
{
	char out[512];
	int st = in_child(segfault, out, sizeof(out));
	json_object *o;

	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSEGV);
	o = json_tokener_parse(out);
	if (!o)
		fail_msg("not one JSON line: '%s'", out);
	assert_int_equal(member(o, "signals", "sigsegv"), 1);
	assert_int_equal(member(o, "signals", "sigbus"), 0);
	json_object_put(o);
}

/* A file grown past RLIMIT_FSIZE: SIGXFSZ, counted, and the process dies of it. */
static int grow_past_the_limit(void)
{
	struct rlimit rl = {4096, RLIM_INFINITY};
	char path[] = "/tmp/thaw-test-xfsz-XXXXXX", buf[8192] = {0};
	int fd = mkstemp(path);

	if (fd < 0 || setrlimit(RLIMIT_FSIZE, &rl))
		return 1;
	unlink(path);
	/* the first write stops short at the limit, the next one is past it */
	for (int i = 0; i < 3; i++)
		if (write(fd, buf, sizeof(buf)) < 0)
			return 2;
	return 3;
}

static void test_sigxfsz_leaves_a_last_line_and_still_kills(void **state)
{
	char out[512];
	int st = in_child(grow_past_the_limit, out, sizeof(out));
	json_object *o;

	if (!WIFSIGNALED(st))
		fail_msg("child status %#x, out '%s'", st, out);
	assert_int_equal(WTERMSIG(st), SIGXFSZ);
	o = json_tokener_parse(out);
	assert_non_null(o);
	assert_int_equal(member(o, "signals", "sigxfsz"), 1);
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_last_line_is_one_json_object_with_both_groups),
	    cmocka_unit_test(test_cut_short_never_overflows),
	    cmocka_unit_test(test_sigpipe_is_counted_and_the_write_fails),
	    cmocka_unit_test(test_sigsegv_leaves_a_last_line_and_still_kills),
	    cmocka_unit_test(test_sigxfsz_leaves_a_last_line_and_still_kills),
	};

	return cmocka_run_group_tests_name("signals", tests, NULL, NULL);
}
