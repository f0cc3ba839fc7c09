/*
 * spawn: start a VMM process and time it from process start to the guest's first answer,
 * by one clock (CLOCK_MONOTONIC, read just before fork) for thaw, QEMU and the floor alike.
 *
 * usage: spawn [options] -- CMD [ARGS...]
 *   --expect STR      the answer: the first stdout line containing STR (required)
 *   --send LINE       write LINE\n to the child's stdin at start, and again every
 *                     --every µs until the answer (0: once; QEMU may drop bytes that
 *                     arrive before its incoming migration has loaded the UART)
 *   --every US        resend interval (default 0)
 *   --timeout MS      give up (exit 3) after MS milliseconds (default 20000)
 *   --qmp SOCK        connect to QEMU's QMP socket once it exists, negotiate, then send
 *   --qmp-cmd JSON    each of these in order, waiting for each reply (repeatable)
 *   --ready-file F    create F once the answer is seen
 *   --hold-file F     then wait (up to the timeout) until F exists, before measuring memory
 *   --mem             after the answer (and the hold), read /proc/PID/status and
 *                     smaps_rollup of the child
 *   --guest-mib M     with --mem: also sum the Rss of the child's M MiB mappings (guest RAM)
 *   --stderr F        the child's stderr goes to F (default /dev/null)
 *   --stdout F        copy every stdout line of the child to F
 *   --clock           also print start_ns= and answer_ns= (CLOCK_MONOTONIC), so the
 *                     wall time of restores started at once can be computed
 * Driving thaw through its API socket instead of its command line (issue 6):
 *   --api-sock SOCK   connect to SOCK once it accepts (api_ready_us), then send
 *   --api-pre REQ     each of these in order, each must answer 2xx (repeatable);
 *                     REQ is "METHOD PATH [JSON BODY]"
 *   --api-req REQ     the timed request, on its own thread while the console is watched:
 *                     api_req_us (request sent .. response read), api_status,
 *                     api_req_to_answer_us (request sent .. the answer line)
 *   --api-post REQ    after the answer, each must answer 2xx (repeatable)
 *   --api-metrics F   before the pre requests, PUT /metrics {"metrics_path": F}; after the
 *                     posts, FlushMetrics and print the integer fields of the last line's
 *                     latencies_us (as m_<key>_us=) and thaw.api.load_snapshot_request_us
 *                     (as m_api_load_request_us=)
 * The child runs in its own process group; at the end the group gets SIGINT (thaw prints
 * its timing lines and exits; perf stat prints its counts), then SIGKILL after 5 s.
 * Output, one line on stdout: "answer_us=N exit=S [vmrss_kb=.. rss_anon_kb=.. rss_file_kb=..
 * rss_shmem_kb=.. pss_kb=.. pss_anon_kb=.. pss_file_kb=.. pss_shmem_kb=.. io_rchar=..
 * io_read_bytes=.. minflt=.. majflt=..]" (io_*: bytes from /proc/PID/io; *flt: the
 * child's page faults, /proc/PID/stat), all read right after the answer.
 * Exit status: 0 answered, 2 setup error, 3 timeout or the child ended without answering,
 * 4 an API request failed or was refused.
 */
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_QMP	     16
#define MAX_API	     8
#define LINE_MAX_LEN 4096

struct spawn_opts {
	const char *expect, *send, *qmp, *qmp_cmd[MAX_QMP], *ready_file, *hold_file;
	const char *err_path, *out_path;
	const char *api_sock, *api_pre[MAX_API], *api_req, *api_post[MAX_API], *api_metrics;
	unsigned nr_qmp, nr_api_pre, nr_api_post;
	uint64_t every_us, timeout_ms, guest_kb;
	bool mem, clock;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Reads one '\n'-terminated line from a blocking socket; 0 or -1. */
static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return 0;
}

/* QMP: connect (QEMU creates the socket a little after it starts), read the greeting,
 * negotiate, then send each command and wait for its "return" or "error". */
static int qmp_run(const struct spawn_opts *o, uint64_t deadline)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[LINE_MAX_LEN];
	int fd = -1;

	if (strlen(o->qmp) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "spawn: --qmp path too long\n");
		return -1;
	}
	strcpy(sa.sun_path, o->qmp);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(fd);
		if (now_ns() > deadline) {
			fprintf(stderr, "spawn: connect %s: %s\n", o->qmp, strerror(errno));
			return -1;
		}
		usleep(100);
	}
	if (read_line(fd, line, sizeof(line)))
		goto fail;
	for (unsigned i = 0; i <= o->nr_qmp; i++) {
		const char *cmd = i == 0 ? "{\"execute\":\"qmp_capabilities\"}" : o->qmp_cmd[i - 1];

		write_all(fd, cmd, strlen(cmd));
		write_all(fd, "\n", 1);
		do {
			if (read_line(fd, line, sizeof(line)))
				goto fail;
		} while (!strstr(line, "\"return\"") && !strstr(line, "\"error\""));
		if (strstr(line, "\"error\"")) {
			fprintf(stderr, "spawn: QMP %s: %s\n", cmd, line);
			goto fail;
		}
	}
	/* Kept open: closing QMP is harmless, but QEMU logs nothing either way. */
	return fd;
fail:
	close(fd);
	return -1;
}

/* "Key:   123 kB" lines of a /proc file, printed as key_kb=123 for the keys asked. */
static void print_proc_kb(pid_t pid, const char *file, const char *const keys[][2])
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		for (unsigned i = 0; keys[i][0]; i++) {
			size_t n = strlen(keys[i][0]);
			unsigned long long v;

			if (strncmp(line, keys[i][0], n) == 0 && line[n] == ':' &&
			    sscanf(line + n + 1, "%llu", &v) == 1)
				printf(" %s=%llu", keys[i][1], v);
		}
	}
	fclose(f);
}

/* The child's page faults so far (minor, major: its threads, live and ended) from
 * /proc/PID/stat, for the cold-restore series (issue 21). */
static void print_faults(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long minflt, majflt;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	/* After "pid (comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt */
	p = strrchr(buf, ')');
	if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %llu", &minflt, &majflt) == 2)
		printf(" minflt=%llu majflt=%llu", minflt, majflt);
}

/* The Rss of every mapping of exactly guest_kb: guest RAM, so RSS minus it is the VMM's. */
static void print_guest_rss(pid_t pid, uint64_t guest_kb)
{
	unsigned long long size = 0, v, rss = 0, anon = 0;
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Size: %llu kB", &v) == 1)
			size = v;
		else if (size == guest_kb && sscanf(line, "Rss: %llu kB", &v) == 1)
			rss += v;
		else if (size == guest_kb && sscanf(line, "Anonymous: %llu kB", &v) == 1)
			anon += v;
	}
	fclose(f);
	printf(" guest_rss_kb=%llu guest_anon_kb=%llu", rss, anon);
}

/* ---- the API socket ------------------------------------------------------------------- */

/* One response buffer (64 KiB body): the requests are made one at a time. */
static struct api_response api_resp;

/* "METHOD PATH [BODY]" into its parts, in buf; 0 or -1. */
static int api_split(const char *spec, char *buf, size_t len, char **method, char **path,
		     char **body)
{
	char *sp;

	if (strlen(spec) >= len)
		return -1;
	strcpy(buf, spec);
	*method = buf;
	sp = strchr(buf, ' ');
	if (!sp)
		return -1;
	*sp = 0;
	*path = sp + 1;
	sp = strchr(*path, ' ');
	*body = NULL;
	if (sp) {
		*sp = 0;
		*body = sp + 1;
	}
	return 0;
}

/* One request on fd; 0 when answered 2xx, else -1 with a message naming it. */
static int api_do(int fd, const char *spec, int *status)
{
	char buf[8192], msg[256], *method, *path, *body;
	int ret;

	if (api_split(spec, buf, sizeof(buf), &method, &path, &body)) {
		fprintf(stderr, "spawn: bad API request '%.80s' (METHOD PATH [BODY])\n", spec);
		return -1;
	}
	ret = api_client_request(fd, method, path, body, &api_resp);
	if (status)
		*status = ret ? 0 : api_resp.status;
	if (ret) {
		fprintf(stderr, "spawn: API %s %s: %s\n", method, path, strerror(-ret));
		return -1;
	}
	if (api_resp.status / 100 != 2) {
		api_client_fault_message(&api_resp, msg, sizeof(msg));
		fprintf(stderr, "spawn: API %s %s answered %d: %s\n", method, path, api_resp.status,
			msg);
		return -1;
	}
	return 0;
}

/* Connects once thaw's socket accepts; the fd, or -1 at the deadline. */
static int api_connect(const char *sock, uint64_t deadline, pid_t child)
{
	for (;;) {
		int fd = api_client_connect(sock);
		siginfo_t si = {0};

		if (fd >= 0)
			return fd;
		/* WNOWAIT: the exit status is still reaped (and printed) at the end. */
		waitid(P_PID, (id_t)child, &si, WEXITED | WNOHANG | WNOWAIT);
		if (now_ns() > deadline || si.si_pid == child) {
			fprintf(stderr, "spawn: connect %s: %s\n", sock, strerror(-fd));
			return -1;
		}
		usleep(100);
	}
}

/* The timed request runs on its own thread so the console is read while it is in flight:
 * the guest may answer before the response arrives. */
struct api_timed {
	int fd, status, ret;
	const char *spec;
	uint64_t sent_ns, done_ns;
};

static void *api_timed_run(void *arg)
{
	struct api_timed *t = arg;

	t->sent_ns = now_ns();
	t->ret = api_do(t->fd, t->spec, &t->status);
	__atomic_store_n(&t->done_ns, now_ns(), __ATOMIC_RELEASE);
	return NULL;
}

/* The last line of thaw's metrics file: its latencies_us integers and the API's own view
 * of the load request, printed as key=value. */
static void api_print_metrics(const char *file)
{
	char line[16384], last[16384] = "";
	json_object *m, *lat, *api, *v;
	FILE *f = fopen(file, "r");

	if (!f) {
		fprintf(stderr, "spawn: metrics %s: %s\n", file, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f))
		if (line[0] == '{')
			strcpy(last, line);
	fclose(f);
	m = json_tokener_parse(last);
	if (!m) {
		fprintf(stderr, "spawn: metrics %s: no JSON line\n", file);
		return;
	}
	if (json_object_object_get_ex(m, "latencies_us", &lat) &&
	    json_object_is_type(lat, json_type_object)) {
		json_object_object_foreach(lat, key, val)
		{
			if (json_object_is_type(val, json_type_int))
				printf(" m_%s_us=%lld", key, (long long)json_object_get_int64(val));
		}
	}
	/* thaw's own figures sit under "thaw" (docs/api.md, metrics). */
	if (json_object_object_get_ex(m, "thaw", &api) &&
	    json_object_object_get_ex(api, "api", &api) &&
	    json_object_object_get_ex(api, "load_snapshot_request_us", &v))
		printf(" m_api_load_request_us=%lld", (long long)json_object_get_int64(v));
	json_object_put(m);
}

static void usage(void)
{
	fprintf(stderr, "usage: spawn --expect STR [--send LINE] [--every US] [--timeout MS] "
			"[--qmp SOCK --qmp-cmd JSON...] [--ready-file F] [--hold-file F] [--mem] "
			"[--guest-mib M] [--stderr F] [--stdout F] [--clock] [--api-sock SOCK "
			"[--api-pre REQ]... --api-req REQ [--api-post REQ]... [--api-metrics F]] "
			"-- CMD [ARGS...]\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"expect", required_argument, NULL, 'e'},
	    {"send", required_argument, NULL, 's'},
	    {"every", required_argument, NULL, 'v'},
	    {"timeout", required_argument, NULL, 't'},
	    {"qmp", required_argument, NULL, 'q'},
	    {"qmp-cmd", required_argument, NULL, 'Q'},
	    {"ready-file", required_argument, NULL, 'r'},
	    {"hold-file", required_argument, NULL, 'H'},
	    {"mem", no_argument, NULL, 'm'},
	    {"stderr", required_argument, NULL, 'E'},
	    {"stdout", required_argument, NULL, 'O'},
	    {"guest-mib", required_argument, NULL, 'g'},
	    {"clock", no_argument, NULL, 'c'},
	    {"api-sock", required_argument, NULL, 'A'},
	    {"api-pre", required_argument, NULL, 'P'},
	    {"api-req", required_argument, NULL, 'R'},
	    {"api-post", required_argument, NULL, 'p'},
	    {"api-metrics", required_argument, NULL, 'M'},
	    {NULL, 0, NULL, 0},
	};
	static const char *const status_keys[][2] = {{"VmRSS", "vmrss_kb"},
						     {"RssAnon", "rss_anon_kb"},
						     {"RssFile", "rss_file_kb"},
						     {"RssShmem", "rss_shmem_kb"},
						     {NULL, NULL}};
	static const char *const rollup_keys[][2] = {{"Pss", "pss_kb"},
						     {"Pss_Anon", "pss_anon_kb"},
						     {"Pss_File", "pss_file_kb"},
						     {"Pss_Shmem", "pss_shmem_kb"},
						     {NULL, NULL}};
	/* Bytes: what the child read through read calls, and what it had fetched from storage. */
	static const char *const io_keys[][2] = {
	    {"rchar", "io_rchar"}, {"read_bytes", "io_read_bytes"}, {NULL, NULL}};
	struct spawn_opts o = {.timeout_ms = 20000};
	int in[2], out[2], c, status = 0, qfd = -1, errfd, outcopy = -1;
	char buf[LINE_MAX_LEN];
	size_t have = 0;
	uint64_t t0, deadline, next_send, answer_ns = 0, api_ready_ns = 0;
	struct api_timed timed = {.fd = -1};
	bool child_done = false, api_failed = false, timed_started = false;
	pthread_t timed_thread;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "+", lopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			o.expect = optarg;
			break;
		case 's':
			o.send = optarg;
			break;
		case 'v':
			o.every_us = strtoull(optarg, NULL, 10);
			break;
		case 't':
			o.timeout_ms = strtoull(optarg, NULL, 10);
			break;
		case 'q':
			o.qmp = optarg;
			break;
		case 'Q':
			if (o.nr_qmp == MAX_QMP) {
				fprintf(stderr, "spawn: at most %d --qmp-cmd\n", MAX_QMP);
				return 2;
			}
			o.qmp_cmd[o.nr_qmp++] = optarg;
			break;
		case 'r':
			o.ready_file = optarg;
			break;
		case 'H':
			o.hold_file = optarg;
			break;
		case 'm':
			o.mem = true;
			break;
		case 'E':
			o.err_path = optarg;
			break;
		case 'O':
			o.out_path = optarg;
			break;
		case 'g':
			o.guest_kb = strtoull(optarg, NULL, 10) * 1024;
			break;
		case 'c':
			o.clock = true;
			break;
		case 'A':
			o.api_sock = optarg;
			break;
		case 'P':
		case 'p':
			if ((c == 'P' ? o.nr_api_pre : o.nr_api_post) == MAX_API) {
				fprintf(stderr, "spawn: at most %d --api-pre/--api-post\n",
					MAX_API);
				return 2;
			}
			if (c == 'P')
				o.api_pre[o.nr_api_pre++] = optarg;
			else
				o.api_post[o.nr_api_post++] = optarg;
			break;
		case 'R':
			o.api_req = optarg;
			break;
		case 'M':
			o.api_metrics = optarg;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!o.expect || optind >= argc || (!o.api_sock != !o.api_req) ||
	    (!o.api_sock && (o.nr_api_pre || o.nr_api_post || o.api_metrics))) {
		usage();
		return 2;
	}
	errfd = open(o.err_path ? o.err_path : "/dev/null",
		     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (o.out_path)
		outcopy = open(o.out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (errfd < 0 || (o.out_path && outcopy < 0) || pipe2(in, O_CLOEXEC) ||
	    pipe2(out, O_CLOEXEC)) {
		fprintf(stderr, "spawn: setup: %s\n", strerror(errno));
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	t0 = now_ns();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "spawn: fork: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0) {
		setpgid(0, 0);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(errfd, 2) < 0)
			_exit(127);
		execvp(argv[optind], argv + optind);
		_exit(127);
	}
	setpgid(pid, pid);
	close(in[0]);
	close(out[1]);
	/* A VMM that stops reading its console (QEMU while an incoming migration stalls)
	 * must not block the resends: they are dropped once the pipe is full. */
	fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
	deadline = t0 + o.timeout_ms * 1000000ull;
	next_send = t0;
	if (o.send) {
		/* Into the pipe before the child even execs: thaw reads it when it is ready. */
		write_all(in[1], o.send, strlen(o.send));
		write_all(in[1], "\n", 1);
		next_send = o.every_us ? t0 + o.every_us * 1000 : UINT64_MAX;
	}
	if (o.qmp) {
		qfd = qmp_run(&o, deadline);
		if (qfd < 0)
			goto end;
	}
	if (o.api_sock) {
		struct timeval tv = {.tv_sec = (time_t)(o.timeout_ms / 1000),
				     .tv_usec = (suseconds_t)(o.timeout_ms % 1000) * 1000};
		char mreq[API_PATH_LEN + 64];

		api_failed = true;
		timed.fd = api_connect(o.api_sock, deadline, pid);
		if (timed.fd < 0)
			goto end;
		api_ready_ns = now_ns();
		/* A thaw that stops answering must not hang us past the timeout. */
		setsockopt(timed.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (o.api_metrics) {
			if (strlen(o.api_metrics) >= API_PATH_LEN || strchr(o.api_metrics, '"')) {
				fprintf(stderr, "spawn: --api-metrics path unusable\n");
				goto end;
			}
			snprintf(mreq, sizeof(mreq), "PUT /metrics {\"metrics_path\": \"%s\"}",
				 o.api_metrics);
			if (api_do(timed.fd, mreq, NULL))
				goto end;
		}
		for (unsigned i = 0; i < o.nr_api_pre; i++)
			if (api_do(timed.fd, o.api_pre[i], NULL))
				goto end;
		timed.spec = o.api_req;
		if (pthread_create(&timed_thread, NULL, api_timed_run, &timed)) {
			fprintf(stderr, "spawn: pthread_create failed\n");
			goto end;
		}
		timed_started = true;
		api_failed = false;
	}
	while (!answer_ns) {
		struct pollfd p = {.fd = out[0], .events = POLLIN};
		uint64_t now = now_ns(), wake = next_send < deadline ? next_send : deadline;
		int ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		ssize_t r;

		if (o.every_us && ms > (int)(o.every_us / 1000))
			ms = (int)(o.every_us / 1000);
		/* A refused request is noticed within 5 ms (the answer itself wakes poll). */
		if (timed_started && ms > 5)
			ms = 5;
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			break;
		now = now_ns();
		if (p.revents & (POLLIN | POLLHUP)) {
			r = read(out[0], buf + have, sizeof(buf) - 1 - have);
			if (r <= 0) {
				child_done = true;
				break;
			}
			/* Scan the complete lines; keep a partial one for the next read. */
			have += (size_t)r;
			buf[have] = 0;
			for (char *nl; !answer_ns && (nl = memchr(buf, '\n', have));) {
				*nl = 0;
				if (strstr(buf, o.expect))
					answer_ns = now;
				if (outcopy >= 0) {
					write_all(outcopy, buf, (size_t)(nl - buf));
					write_all(outcopy, "\n", 1);
				}
				have -= (size_t)(nl + 1 - buf);
				memmove(buf, nl + 1, have);
			}
			if (have == sizeof(buf) - 1)
				have = 0; /* an over-long line: not the answer */
		}
		if (!answer_ns && now >= deadline)
			break;
		/* A refused load never brings an answer: no point waiting for it. */
		if (timed_started && __atomic_load_n(&timed.done_ns, __ATOMIC_ACQUIRE) && timed.ret)
			break;
		if (!answer_ns && o.send && now >= next_send) {
			write_all(in[1], o.send, strlen(o.send));
			write_all(in[1], "\n", 1);
			next_send = now + o.every_us * 1000;
		}
	}
	if (timed_started) {
		pthread_join(timed_thread, NULL);
		timed_started = false;
		if (timed.ret)
			api_failed = true;
	}
	for (unsigned i = 0; answer_ns && !api_failed && i < o.nr_api_post; i++)
		if (api_do(timed.fd, o.api_post[i], NULL))
			api_failed = true;
	if (answer_ns && !api_failed && o.api_metrics &&
	    api_do(timed.fd, "PUT /actions {\"action_type\": \"FlushMetrics\"}", NULL))
		api_failed = true;
	if (answer_ns && o.ready_file) {
		int fd = open(o.ready_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd >= 0)
			close(fd);
	}
	if (answer_ns && o.hold_file) {
		struct stat st;

		while (stat(o.hold_file, &st) && now_ns() < deadline)
			usleep(1000);
	}
end:
	printf("answer_us=%llu", answer_ns ? (unsigned long long)(answer_ns - t0) / 1000 : 0ull);
	if (o.clock)
		printf(" start_ns=%llu answer_ns=%llu", (unsigned long long)t0,
		       (unsigned long long)answer_ns);
	if (api_ready_ns)
		printf(" api_ready_us=%llu", (unsigned long long)(api_ready_ns - t0) / 1000);
	if (timed.done_ns) {
		printf(" api_status=%d api_req_us=%llu", timed.status,
		       (unsigned long long)(timed.done_ns - timed.sent_ns) / 1000);
		if (answer_ns)
			printf(" api_req_to_answer_us=%llu",
			       (unsigned long long)(answer_ns - timed.sent_ns) / 1000);
	}
	if (answer_ns && !api_failed && o.api_metrics)
		api_print_metrics(o.api_metrics);
	if (answer_ns && o.mem) {
		print_proc_kb(pid, "status", status_keys);
		print_proc_kb(pid, "smaps_rollup", rollup_keys);
		print_proc_kb(pid, "io", io_keys);
		print_faults(pid);
		if (o.guest_kb)
			print_guest_rss(pid, o.guest_kb);
	}
	/* SIGINT: thaw prints its timing line on the way out, perf stat its counts. */
	if (!child_done || waitpid(pid, &status, WNOHANG) == 0) {
		kill(-pid, SIGINT);
		for (int i = 0; i < 500; i++) {
			if (waitpid(pid, &status, WNOHANG) == pid)
				goto reaped;
			usleep(10000);
		}
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
reaped:
	/* QEMU's chardev may still hold our pipe's other copies in helper processes. */
	kill(-pid, SIGKILL);
	if (qfd >= 0)
		close(qfd);
	/* Only a request stuck when the child died is left: its socket is closed now. */
	if (timed_started)
		pthread_join(timed_thread, NULL);
	if (timed.fd >= 0)
		close(timed.fd);
	printf(" exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	if (!answer_ns)
		fprintf(stderr, "spawn: %s: no line containing '%s' within %llu ms%s\n",
			argv[optind], o.expect, (unsigned long long)o.timeout_ms,
			child_done ? " (the child closed its stdout)" : "");
	if (answer_ns && api_failed)
		return 4;
	return answer_ns ? 0 : 3;
}
