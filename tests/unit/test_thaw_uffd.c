/* thaw-uffd's socket, from the build directory's real binary: who can reach it and for
 * how long one client may hold it. The handler serves a small raw memory file; a "good
 * peer" is a child that registers anonymous memory with a userfaultfd, hands it over as
 * a VMM does, and reads one byte that only the handler can have put there. Needs no KVM;
 * skipped where this host refuses userfaultfd, the uid test also where we are not root. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "uffd/uffd.h"

#define NPAGES	   16
#define SIZE	   ((size_t)NPAGES * UFFD_PAGE)
#define NOBODY	   65534
#define PEER_WAIT  5000 /* ms a peer waits to be served, or to be hung up on */
#define SOCK_NAME  "s.sock"
#define PEER_SKIP  77 /* a good peer's exit status when userfaultfd is refused here */
#define PEER_ERROR 99 /* a peer's own set-up failed */

static char bin[PATH_MAX + 16];
static char dir[] = "/tmp/thaw-uffd-sock-XXXXXX";
static char sock[sizeof(dir) + 16], mem_file[sizeof(dir) + 16], log_file[sizeof(dir) + 16];

static uint8_t byte_at(size_t page, size_t i)
{
	return (uint8_t)(page * 7 + i * 13 + 1);
}

/* The running thaw-uffd, so that a failed test's teardown still ends it. */
static pid_t handler = -1;

/* Starts thaw-uffd on `sock` with `extra` arguments (NULL-terminated), its umask 0 so a
 * socket created without an explicit mode would be world-accessible, and waits for its
 * READY line. stderr goes to log_file. */
static void start_handler(const char *const *extra)
{
	const char *argv[16] = {bin,	  "--socket",	 sock,	"--mem-file",
				mem_file, "--log-level", "info"};
	size_t n = 7;
	char line[256] = "";
	size_t len = 0;
	int out[2];

	for (; extra && *extra; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	handler = fork();
	assert_true(handler >= 0);
	if (handler == 0) {
		int lf = open(log_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		umask(0);
		if (lf < 0 || dup2(out[1], STDOUT_FILENO) < 0 || dup2(lf, STDERR_FILENO) < 0)
			_exit(PEER_ERROR);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	while (len < sizeof(line) - 1 && !strchr(line, '\n')) {
		struct pollfd p = {.fd = out[0], .events = POLLIN};
		ssize_t r;

		assert_int_equal(poll(&p, 1, PEER_WAIT), 1);
		r = read(out[0], line + len, sizeof(line) - 1 - len);
		assert_true(r > 0);
		len += (size_t)r;
		line[len] = 0;
	}
	close(out[0]);
	assert_non_null(strstr(line, "THAW_UFFD_READY"));
}

static int stop_handler(void **state)
{
	if (handler > 0) {
		kill(handler, SIGTERM);
		waitpid(handler, NULL, 0);
	}
	handler = -1;
	unlink(sock);
	return 0;
}

/* The handler's log so far (static buffer). */
static const char *handler_log(void)
{
	static char buf[16384];
	int fd = open(log_file, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

/* Waits up to `ms` for child `pid`: its exit status, or -1 (after killing it) when it
 * had not ended. */
static int wait_child(pid_t pid, int ms)
{
	int status;

	for (int waited = 0; waited < ms; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* A VMM: hands over a userfaultfd over anonymous memory and reads page 3; exits 0 when
 * the handler served it the file's bytes. Blocks in the fault when nobody serves it. */
static pid_t good_peer(void)
{
	pid_t pid = fork();
	struct uffd_region r = {.size = SIZE, .page_size = UFFD_PAGE};
	char err[256], json[512];
	volatile uint8_t *mem;
	int uffd, s, len;

	assert_true(pid >= 0);
	if (pid)
		return pid;
	uffd = uffd_open(err, sizeof(err));
	if (uffd < 0)
		_exit(PEER_SKIP);
	mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || uffd_register(uffd, (void *)mem, SIZE, err, sizeof(err)))
		_exit(PEER_ERROR);
	r.base = (uint64_t)(uintptr_t)mem;
	len = uffd_regions_encode(&r, 1, json, sizeof(json));
	s = uffd_handshake_send(sock, uffd, json, (size_t)len, err, sizeof(err));
	if (s < 0)
		_exit(PEER_ERROR);
	_exit(mem[3 * UFFD_PAGE + 5] == byte_at(3, 5) ? 0 : 1);
}

/* A peer of uid `uid` that sends a well-formed handshake (a pipe in place of a uffd: it
 * must never be looked at) and exits 0 when the handler hangs up on it within
 * PEER_WAIT (before or after its message went out), 1 when it is kept. */
static pid_t refused_peer(uid_t uid)
{
	pid_t pid = fork();
	struct uffd_region r = {.base = 1ull << 30, .size = SIZE, .page_size = UFFD_PAGE};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl = {0};
	char json[512], c;
	struct iovec iov = {.iov_base = json};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	struct pollfd p = {.events = POLLIN};
	int fds[2], len;

	assert_true(pid >= 0);
	if (pid)
		return pid;
	if (uid != geteuid() && (setgid(uid) || setuid(uid)))
		_exit(PEER_ERROR);
	strcpy(sa.sun_path, sock);
	p.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (pipe(fds) || p.fd < 0 || connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)))
		_exit(PEER_ERROR);
	len = uffd_regions_encode(&r, 1, json, sizeof(json));
	iov.iov_len = (size_t)len;
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fds[0], sizeof(int));
	if (sendmsg(p.fd, &mh, MSG_NOSIGNAL) != len)
		_exit(errno == EPIPE || errno == ECONNRESET ? 0 : PEER_ERROR);
	if (poll(&p, 1, PEER_WAIT) != 1)
		_exit(1);
	_exit(recv(p.fd, &c, 1, 0) == 0 || errno == ECONNRESET ? 0 : 1);
}

/* Connects as a VMM would and sends nothing: a handshake that never completes. */
static int stalled_peer(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	strcpy(sa.sun_path, sock);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return s;
}

/* Serves a good peer, or says the test is skipped because userfaultfd is refused. */
static bool serves_good_peer(void)
{
	int st = wait_child(good_peer(), PEER_WAIT);

	if (st == PEER_SKIP) {
		print_message("SKIPPED: userfaultfd is not available here\n");
		return false;
	}
	assert_int_equal(st, 0);
	return true;
}

/* ---------------------------------------------------------------- tests */

/* With umask 0, a socket bound before its mode was set would exist world-writable until
 * a chmod: the file must be 0600 when it appears, with no later attribute change. */
static void socket_is_0600_from_the_moment_it_exists(void **state)
{
	union {
		struct inotify_event ev;
		char buf[4096];
	} u;
	bool created = false, changed = false;
	struct stat sb;
	ssize_t n;
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, dir, IN_CREATE | IN_ATTRIB) >= 0);
	start_handler(NULL);
	while ((n = read(in, u.buf, sizeof(u.buf))) > 0) {
		for (char *p = u.buf; p < u.buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)(void *)p;

			if (e->len && !strcmp(e->name, SOCK_NAME)) {
				created |= (e->mask & IN_CREATE) != 0;
				changed |= (e->mask & IN_ATTRIB) != 0;
			}
			p += sizeof(*e) + e->len;
		}
	}
	close(in);
	assert_int_equal(lstat(sock, &sb), 0);
	stop_handler(NULL);
	assert_true(created);
	assert_false(changed);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
}

/* The socket's mode is the first fence; the peer's uid the second. Here the test opens
 * the first on purpose (0666) to reach the second: a peer of another uid is hung up on
 * and logged, and the handler goes on to serve the next VMM. */
static void peer_of_another_uid_is_refused_and_the_next_served(void **state)
{
	char want[64];

	if (geteuid() != 0) {
		print_message("SKIPPED: needs root to connect as another uid\n");
		return;
	}
	start_handler((const char *const[]){"--count", "1", NULL});
	assert_int_equal(chmod(sock, 0666), 0);
	assert_int_equal(wait_child(refused_peer(NOBODY), PEER_WAIT + 1000), 0);
	if (serves_good_peer()) {
		snprintf(want, sizeof(want), "uid %d: only uid %u may connect", NOBODY,
			 (unsigned)geteuid());
		assert_non_null(strstr(handler_log(), want));
		/* --count 1: the refused peer did not count, the good one did */
		assert_int_equal(wait_child(handler, PEER_WAIT), 0);
		handler = -1;
	}
	stop_handler(NULL);
}

/* --allow-uid names the one uid admitted: our own is then refused. */
static void allow_uid_admits_only_that_uid(void **state)
{
	char arg[16];

	snprintf(arg, sizeof(arg), "%d", NOBODY);
	start_handler((const char *const[]){"--allow-uid", arg, NULL});
	assert_int_equal(wait_child(refused_peer(geteuid()), PEER_WAIT + 1000), 0);
	assert_non_null(strstr(handler_log(), "only uid 65534 may connect"));
	stop_handler(NULL);
}

static void bad_allow_uid_and_timeout_values_are_refused(void **state)
{
	static const char *const bad[][2] = {
	    {"--allow-uid", "nobody"},	      {"--allow-uid", "-1"},
	    {"--allow-uid", "4294967295"},    {"--handshake-timeout-ms", "0"},
	    {"--handshake-timeout-ms", "3s"}, {"--handshake-timeout-ms", "600001"}};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);

			dup2(null, STDERR_FILENO);
			execl(bin, bin, "--socket", sock, "--mem-file", mem_file, bad[i][0],
			      bad[i][1], (char *)NULL);
			_exit(127);
		}
		assert_int_equal(wait_child(pid, PEER_WAIT), 1);
	}
}

/* One client that connects and never completes its handshake must not keep the handler
 * from the VMM queued behind it: it is dropped after the timeout. */
static void stalled_handshake_is_dropped_and_the_next_served(void **state)
{
	struct pollfd p;
	char c;

	start_handler((const char *const[]){"--handshake-timeout-ms", "300", NULL});
	p = (struct pollfd){.fd = stalled_peer(), .events = POLLIN};
	if (serves_good_peer()) {
		/* hung up on by now: the good peer came after it */
		assert_int_equal(poll(&p, 1, 0), 1);
		assert_int_equal(recv(p.fd, &c, 1, MSG_DONTWAIT), 0);
		assert_non_null(strstr(handler_log(), "no handshake within 300 ms"));
	}
	close(p.fd);
	stop_handler(NULL);
}

static int setup(void **state)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	uint8_t *m;
	int fd;

	if (n <= 0)
		return -1;
	self[n] = 0;
	snprintf(bin, sizeof(bin), "%s/../thaw-uffd", dirname(self));
	if (!mkdtemp(dir) || chmod(dir, 0755)) /* nobody must reach the socket */
		return -1;
	snprintf(sock, sizeof(sock), "%s/" SOCK_NAME, dir);
	snprintf(mem_file, sizeof(mem_file), "%s/mem", dir);
	snprintf(log_file, sizeof(log_file), "%s/log", dir);
	fd = open(mem_file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, SIZE))
		return -1;
	m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -1;
	for (size_t p = 0; p < NPAGES; p++)
		for (size_t i = 0; i < UFFD_PAGE; i++)
			m[p * UFFD_PAGE + i] = byte_at(p, i);
	munmap(m, SIZE);
	return 0;
}

static int teardown(void **state)
{
	unlink(sock);
	unlink(mem_file);
	unlink(log_file);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(socket_is_0600_from_the_moment_it_exists, stop_handler),
	    cmocka_unit_test_teardown(peer_of_another_uid_is_refused_and_the_next_served,
				      stop_handler),
	    cmocka_unit_test_teardown(allow_uid_admits_only_that_uid, stop_handler),
	    cmocka_unit_test_teardown(bad_allow_uid_and_timeout_values_are_refused, stop_handler),
	    cmocka_unit_test_teardown(stalled_handshake_is_dropped_and_the_next_served,
				      stop_handler),
	};

	return cmocka_run_group_tests_name("thaw-uffd socket", tests, setup, teardown);
}
