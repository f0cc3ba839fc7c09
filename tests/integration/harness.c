#include <cpuid.h>
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

long long harness_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
}

const char *harness_env(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v) {
		fprintf(stderr, "harness: %s is not set (run through tests/run.sh)\n", name);
		exit(1);
	}
	return v;
}

bool harness_host_is_pvm(void)
{
	unsigned a, b, c1, c2, d;

	__cpuid(1, a, b, c1, d);
	__cpuid(0x80000001, a, b, c2, d);
	return !(c1 & (1u << 5)) && !(c2 & (1u << 2));
}

bool harness_have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr,
			"SKIPPED: /dev/kvm is not usable here (%s); run through "
			"tests/run.sh, which uses a nested KVM host\n",
			strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

/* Every child not yet reaped. A failed assertion leaves its test through longjmp,
 * past the harness_end that would have stopped the VM, so the children are also
 * killed when the test program ends or is told to stop: a VMM left running would hold
 * a jail id, a socket or a CPU and fail the next run. */
static pid_t live[64];

static void kill_live(void)
{
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] > 0)
			kill(live[i], SIGKILL);
}

static void on_stop_signal(int sig)
{
	kill_live();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void track(pid_t pid, pid_t was)
{
	static bool armed;

	if (!armed) {
		armed = true;
		atexit(kill_live);
		signal(SIGTERM, on_stop_signal);
		signal(SIGINT, on_stop_signal);
		signal(SIGHUP, on_stop_signal);
	}
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == was) {
			live[i] = pid;
			return;
		}
}

int vmproc_start(struct vmproc *p, const char *const argv[])
{
	int in[2], out[2], err[2];

	memset(p, 0, sizeof(*p));
	p->status = -1;
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		return -errno;
	p->pid = fork();
	if (p->pid < 0)
		return -errno;
	if (p->pid == 0) {
		/* killed with the test program even when that is SIGKILLed (a jailer that
		 * changes its user loses this; track() covers it) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	track(p->pid, 0);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in_fd = in[1];
	p->out_fd = out[0];
	p->err_fd = err[0];
	fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Reads whatever is available within `timeout_ms`; returns false once both pipes
 * are closed. */
struct vmproc *harness_start(const char *const argv[])
{
	struct vmproc *p = calloc(1, sizeof(*p));

	if (!p || vmproc_start(p, argv))
		fail_msg("could not start %s", argv[0]);
	return p;
}

void harness_end(struct vmproc *p)
{
	vmproc_stop(p);
	free(p);
}

static bool pump(struct vmproc *p, int timeout_ms)
{
	struct pollfd fds[2] = {{p->out_fd, POLLIN, 0}, {p->err_fd, POLLIN, 0}};
	bool open_any = false;

	if (p->out_fd < 0 && p->err_fd < 0)
		return false;
	if (poll(fds, 2, timeout_ms) <= 0)
		return true;
	if (fds[0].revents && p->out_fd >= 0) {
		ssize_t n = read(p->out_fd, p->out + p->out_len, sizeof(p->out) - 1 - p->out_len);

		if (n > 0)
			p->out_len += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			close(p->out_fd);
			p->out_fd = -1;
		}
		if (p->out_len == sizeof(p->out) - 1) { /* keep the last half */
			memmove(p->out, p->out + sizeof(p->out) / 2,
				p->out_len - sizeof(p->out) / 2);
			p->out_len -= sizeof(p->out) / 2;
			p->out_seen =
			    p->out_seen > sizeof(p->out) / 2 ? p->out_seen - sizeof(p->out) / 2 : 0;
		}
		p->out[p->out_len] = 0;
	}
	if (fds[1].revents && p->err_fd >= 0) {
		char tmp[4096];
		ssize_t n = read(p->err_fd, tmp, sizeof(tmp));

		if (n > 0) {
			size_t room = sizeof(p->err) - 1 - p->err_len;
			size_t k = (size_t)n < room ? (size_t)n : room;

			memcpy(p->err + p->err_len, tmp, k);
			p->err_len += k;
			p->err[p->err_len] = 0;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			close(p->err_fd);
			p->err_fd = -1;
		}
	}
	open_any = p->out_fd >= 0 || p->err_fd >= 0;
	return open_any;
}

int vmproc_expect(struct vmproc *p, const char *needle, int timeout_ms, char *line, size_t linelen)
{
	long long deadline = harness_ms() + timeout_ms;

	for (;;) {
		char *hit = strstr(p->out + p->out_seen, needle);

		if (hit) {
			char *eol = strchr(hit, '\n');
			char *bol = hit;

			while (bol > p->out + p->out_seen && bol[-1] != '\n')
				bol--;
			if (eol) {
				if (line) {
					size_t n = (size_t)(eol - bol);

					if (n && bol[n - 1] == '\r')
						n--;
					if (n >= linelen)
						n = linelen - 1;
					memcpy(line, bol, n);
					line[n] = 0;
				}
				p->out_seen = (size_t)(eol + 1 - p->out);
				return 0;
			}
		}
		long long left = deadline - harness_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (!pump(p, (int)(left < 100 ? left : 100)))
			return strstr(p->out + p->out_seen, needle) ? 0 : -EPIPE;
	}
}

int vmproc_send(struct vmproc *p, const char *line)
{
	size_t len = strlen(line);

	if (write(p->in_fd, line, len) != (ssize_t)len || write(p->in_fd, "\n", 1) != 1)
		return -errno;
	return 0;
}

int vmproc_ask(struct vmproc *p, const char *request, const char *prefix, int timeout_ms,
	       char *answer, size_t len)
{
	char line[4096];
	int ret = vmproc_send(p, request);

	if (ret)
		return ret;
	ret = vmproc_expect(p, prefix, timeout_ms, line, sizeof(line));
	if (ret)
		return ret;
	if (answer) {
		const char *rest = strstr(line, prefix) + strlen(prefix);

		while (*rest == ' ')
			rest++;
		snprintf(answer, len, "%s", rest);
	}
	return 0;
}

int vmproc_wait(struct vmproc *p, int timeout_ms)
{
	long long deadline = harness_ms() + timeout_ms;

	while (!p->exited) {
		int st;
		pid_t r = waitpid(p->pid, &st, WNOHANG);

		if (r == p->pid) {
			track(0, p->pid);
			p->exited = true;
			p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		if (harness_ms() >= deadline)
			return -ETIMEDOUT;
		if (!pump(p, 20))
			usleep(5000);
	}
	while (pump(p, 0) && (p->out_fd >= 0 || p->err_fd >= 0))
		;
	return p->status;
}

void vmproc_stop(struct vmproc *p)
{
	if (p->pid > 0 && !p->exited) {
		kill(p->pid, SIGKILL);
		vmproc_wait(p, 5000);
	}
	if (p->in_fd > 0)
		close(p->in_fd);
	if (p->out_fd > 0)
		close(p->out_fd);
	if (p->err_fd > 0)
		close(p->err_fd);
	p->in_fd = p->out_fd = p->err_fd = -1;
}

void vmproc_dump(struct vmproc *p, const char *why)
{
	fprintf(stderr,
		"---- %s: thaw pid %d console (last 3000 bytes):\n%s\n---- stderr:\n%s\n----\n",
		why, p->pid, p->out_len > 3000 ? p->out + p->out_len - 3000 : p->out, p->err);
}

static int udp_fail(struct vmproc *p, int s, const char *what)
{
	fprintf(stderr, "harness: udp: %s\n", what);
	vmproc_dump(p, what);
	if (s >= 0)
		close(s);
	return -1;
}

int harness_udp_both_ways(struct vmproc *p, const char *host_ip, const char *guest_ip,
			  int timeout_ms)
{
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(7001)};
	struct sockaddr_in guest = {.sin_family = AF_INET, .sin_port = htons(7000)};
	char req[128], ans[512], buf[64];
	struct pollfd pf;
	ssize_t n;
	int s;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || inet_pton(AF_INET, host_ip, &me.sin_addr) != 1 ||
	    inet_pton(AF_INET, guest_ip, &guest.sin_addr) != 1 ||
	    bind(s, (struct sockaddr *)&me, sizeof(me)))
		return udp_fail(p, s, "host socket");
	/* Host to guest; the first datagram may wait for ARP, the agent waits 20 s. */
	if (vmproc_send(p, "net recv 20000"))
		return udp_fail(p, s, "net recv not sent");
	usleep(200 * 1000);
	if (sendto(s, "from-host", 9, 0, (struct sockaddr *)&guest, sizeof(guest)) != 9)
		return udp_fail(p, s, "sendto the guest");
	if (vmproc_expect(p, "THAW_AGENT net recv", timeout_ms, ans, sizeof(ans)) ||
	    !strstr(ans, "text=from-host"))
		return udp_fail(p, s, "the guest got no datagram from the host");

	/* Guest to host. */
	snprintf(req, sizeof(req), "net send %s 7001 from-guest", host_ip);
	if (vmproc_ask(p, req, "THAW_AGENT net sent", timeout_ms, ans, sizeof(ans)))
		return udp_fail(p, s, "the guest did not send");
	pf = (struct pollfd){.fd = s, .events = POLLIN};
	if (poll(&pf, 1, timeout_ms) != 1)
		return udp_fail(p, s, "no datagram from the guest");
	memset(buf, 0, sizeof(buf));
	n = recv(s, buf, sizeof(buf) - 1, 0);
	if (n != 10 || strcmp(buf, "from-guest"))
		return udp_fail(p, s, "wrong datagram from the guest");
	close(s);
	return 0;
}

int harness_http(const char *sock, const char *method, const char *path, const char *json,
		 char *body, size_t len)
{
	char cmd[8192], out[8192] = "", *nl;
	int status = -1;
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "curl -s --max-time 60 --unix-socket %s -X %s 'http://localhost%s' "
		 "-H 'Accept: application/json' -H 'Content-Type: application/json' %s%s%s "
		 "-w '\\n%%{http_code}'",
		 sock, method, path, json ? "-d '" : "", json ? json : "", json ? "'" : "");
	f = popen(cmd, "r");
	if (!f)
		return -1;
	n = fread(out, 1, sizeof(out) - 1, f);
	pclose(f);
	out[n] = 0;
	nl = strrchr(out, '\n');
	if (nl) {
		status = atoi(nl + 1);
		*nl = 0;
	}
	if (body)
		snprintf(body, len, "%s", out);
	return status;
}

int harness_wait_socket(const char *sock)
{
	for (int i = 0; i < 500; i++) {
		if (access(sock, F_OK) == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

int harness_tmpdir_make(char *tmpl)
{
	return mkdtemp(tmpl) ? 0 : -1;
}

int harness_tmpdir_remove(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

void harness_put(const char *sock, const char *path, const char *json)
{
	char body[8192];
	int st = harness_http(sock, "PUT", path, json, body, sizeof(body));

	if (st != 204)
		fail_msg("PUT %s: %d %s", path, st, body);
}

struct vmproc *harness_start_api(const char *sock)
{
	const char *argv[] = {harness_env("THAW_BIN"), "--api-sock", sock, NULL};
	struct vmproc *p;

	unlink(sock);
	p = harness_start(argv);
	if (harness_wait_socket(sock))
		fail_msg("thaw did not create its API socket %s", sock);
	return p;
}

void harness_boot_probe(const char *sock, struct vmproc *p, const char *why)
{
	char json[1024];

	snprintf(json, sizeof(json), "{\"kernel_image_path\": \"%s\"}", harness_env("THAW_PROBE"));
	harness_put(sock, "/boot-source", json);
	harness_put(sock, "/actions", "{\"action_type\": \"InstanceStart\"}");
	if (vmproc_expect(p, "THAW_PROBE_READY", 60000, NULL, 0)) {
		vmproc_dump(p, why);
		fail();
	}
}

int harness_probe_snapshot(const char *path, unsigned mem_mib, const char *const *extra)
{
	const char *argv[32] = {harness_env("THAW_BIN"),
				"--kernel",
				harness_env("THAW_PROBE"),
				"--vcpus",
				"1",
				"--mem-mib",
				NULL,
				"--snapshot",
				path,
				"--snapshot-after",
				"PROBE info",
				"--snapshot-then",
				"exit"};
	size_t n = 13;
	char mib[16];
	struct vmproc *p;

	snprintf(mib, sizeof(mib), "%u", mem_mib);
	argv[6] = mib;
	for (size_t i = 0; extra && extra[i] && n < sizeof(argv) / sizeof(argv[0]) - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	p = harness_start(argv);
	if (vmproc_expect(p, "THAW_PROBE_READY", 60000, NULL, 0) || vmproc_send(p, "info") ||
	    vmproc_wait(p, 60000) != 0) {
		vmproc_dump(p, "snapshot");
		harness_end(p);
		return -1;
	}
	harness_end(p);
	return chmod(path, 0644);
}

void harness_probe_cmd(struct vmproc *p, const char *fmt, ...)
{
	char req[256], ans[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	if (vmproc_ask(p, req, "PROBE ", 60000, ans, sizeof(ans)) || strncmp(ans, "ERR", 3) == 0 ||
	    strncmp(ans, "FAULT", 5) == 0) {
		vmproc_dump(p, req);
		fail_msg("probe request '%s' failed: %s", req, ans);
	}
}

uint64_t harness_probe_read(struct vmproc *p, unsigned bits, uint64_t addr)
{
	char req[64], prefix[16], ans[256];
	const char *v;

	snprintf(req, sizeof(req), "r%u %#llx", bits, (unsigned long long)addr);
	snprintf(prefix, sizeof(prefix), "PROBE r%u", bits);
	if (vmproc_ask(p, req, prefix, 60000, ans, sizeof(ans))) {
		vmproc_dump(p, req);
		fail_msg("probe request '%s' got no answer", req);
	}
	v = strstr(ans, "value=");
	assert_non_null(v);
	return strtoull(v + 6, NULL, 16);
}

void harness_probe_virtio_start(struct vmproc *p, uint64_t base)
{
	harness_probe_cmd(p, "w32 %#llx 0", (unsigned long long)base + 0x70);
	harness_probe_cmd(p, "w32 %#llx 1", (unsigned long long)base + 0x70);
	harness_probe_cmd(p, "w32 %#llx 3", (unsigned long long)base + 0x70);
	harness_probe_cmd(p, "w32 %#llx 1", (unsigned long long)base + 0x24);
	harness_probe_cmd(p, "w32 %#llx 1", (unsigned long long)base + 0x20);
	harness_probe_cmd(p, "w32 %#llx 0", (unsigned long long)base + 0x24);
	harness_probe_cmd(p, "w32 %#llx 0", (unsigned long long)base + 0x20);
	harness_probe_cmd(p, "w32 %#llx 11", (unsigned long long)base + 0x70);
	assert_true(harness_probe_read(p, 32, base + 0x70) & 8);
}

void harness_probe_queue(struct vmproc *p, uint64_t base, unsigned q, unsigned n, uint64_t ring)
{
	harness_probe_cmd(p, "w32 %#llx %u", (unsigned long long)base + 0x30, q);
	harness_probe_cmd(p, "w32 %#llx %u", (unsigned long long)base + 0x38, n);
	harness_probe_cmd(p, "w32 %#llx %#llx", (unsigned long long)base + 0x80,
			  (unsigned long long)ring);
	harness_probe_cmd(p, "w32 %#llx 0", (unsigned long long)base + 0x84);
	harness_probe_cmd(p, "w32 %#llx %#llx", (unsigned long long)base + 0x90,
			  (unsigned long long)ring + 0x1000);
	harness_probe_cmd(p, "w32 %#llx 0", (unsigned long long)base + 0x94);
	harness_probe_cmd(p, "w32 %#llx %#llx", (unsigned long long)base + 0xa0,
			  (unsigned long long)ring + 0x2000);
	harness_probe_cmd(p, "w32 %#llx 0", (unsigned long long)base + 0xa4);
	harness_probe_cmd(p, "w32 %#llx 1", (unsigned long long)base + 0x44);
}

void harness_probe_driver_ok(struct vmproc *p, uint64_t base)
{
	harness_probe_cmd(p, "w32 %#llx 15", (unsigned long long)base + 0x70);
}

void harness_probe_queue_up(struct vmproc *p, uint64_t base, unsigned n, uint64_t ring)
{
	harness_probe_virtio_start(p, base);
	harness_probe_queue(p, base, 0, n, ring);
	harness_probe_driver_ok(p, base);
}

void harness_probe_desc(struct vmproc *p, uint64_t ring, unsigned i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	char hex[33];
	uint8_t d[16];

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	for (int k = 0; k < 16; k++)
		snprintf(hex + 2 * k, 3, "%02x", d[k]);
	harness_probe_cmd(p, "wbytes %#llx %s", (unsigned long long)(ring + 16 * i), hex);
}

void harness_probe_kick(struct vmproc *p, unsigned q, uint64_t base, uint64_t ring, unsigned slot,
			unsigned head, unsigned idx)
{
	harness_probe_cmd(p, "w16 %#llx %u", (unsigned long long)(ring + 0x1000 + 4 + 2 * slot),
			  head);
	harness_probe_cmd(p, "w16 %#llx %u", (unsigned long long)(ring + 0x1002), idx);
	harness_probe_cmd(p, "w32 %#llx %u", (unsigned long long)base + 0x50, q);
}

/* THAW_TEST_FILTER=pit* (a glob of test names) runs a subset of any integration program,
 * e.g. while debugging: set before its main runs the group. */
__attribute__((constructor)) static void harness_test_filter(void)
{
	if (getenv("THAW_TEST_FILTER"))
		cmocka_set_test_filter(getenv("THAW_TEST_FILTER"));
}
