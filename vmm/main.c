/* thaw: one process per microVM. Parses the command line, builds the VM, runs one
 * thread per vCPU and an epoll main loop for the console, signals and (later) the API. */
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct console_in {
	int listen_fd; /* unix socket we accept a console client on, or -1 */
	int fd;        /* where input comes from now, or -1 */
	uint8_t buf[256];
	size_t len, off; /* bytes read but not yet taken by the UART */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: thaw --kernel FILE [--initrd FILE] [--cmdline STR] [--vcpus N]\n"
		"            [--mem-mib M] [--cpu-template host|pvm] [--boot pvh|linux64]\n"
		"            [--console-out FILE] [--console-in stdin|none|SOCKET]\n"
		"            [--timing] [--log-level error|warn|info|debug]\n"
		"\n"
		"exit status: 0 guest reset/halted, 1 usage, 2 host failure, 3 guest panic,\n"
		"             4 triple fault, 5 emulation failure, 6 restore failure\n");
}

static int parse_uint(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max) {
		log_err("%s: '%s' is not a number between 0 and %llu", opt, s,
			(unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

static int open_console_in(struct console_in *ci, const char *spec)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	ci->listen_fd = ci->fd = -1;
	if (!spec || strcmp(spec, "stdin") == 0) {
		ci->fd = STDIN_FILENO;
		return 0;
	}
	if (strcmp(spec, "none") == 0)
		return 0;
	if (strlen(spec) >= sizeof(sa.sun_path)) {
		log_err("--console-in: socket path too long");
		return -1;
	}
	strcpy(sa.sun_path, spec);
	ci->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	unlink(spec);
	if (ci->listen_fd < 0 || bind(ci->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(ci->listen_fd, 1) < 0) {
		log_err("--console-in %s: %s", spec, strerror(errno));
		return -1;
	}
	return 0;
}

/* Moves buffered console input into the UART as far as its FIFO has room. */
static void console_feed(struct vm *vm, struct console_in *ci)
{
	if (ci->off < ci->len)
		ci->off += uart_input(&vm->com1, ci->buf + ci->off, ci->len - ci->off);
	if (ci->off == ci->len)
		ci->off = ci->len = 0;
}

static void console_read(struct vm *vm, struct console_in *ci, int epfd)
{
	ssize_t n = read(ci->fd, ci->buf, sizeof(ci->buf));

	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		/* End of input: keep running, the guest simply gets no more. */
		epoll_ctl(epfd, EPOLL_CTL_DEL, ci->fd, NULL);
		if (ci->fd != STDIN_FILENO)
			close(ci->fd);
		ci->fd = -1;
		return;
	}
	ci->len = (size_t)n;
	ci->off = 0;
	console_feed(vm, ci);
}

static int epoll_add(int epfd, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* The main loop: returns the process exit status. */
static int main_loop(struct vm *vm, struct console_in *ci)
{
	int epfd, sfd;
	sigset_t sigs;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || epfd < 0 || epoll_add(epfd, vm->exit_fd, EPOLLIN) ||
	    epoll_add(epfd, sfd, EPOLLIN)) {
		log_err("main loop setup: %s", strerror(errno));
		return VMM_EXIT_INTERNAL;
	}
	if (ci->fd >= 0 && epoll_add(epfd, ci->fd, EPOLLIN) < 0)
		ci->fd = -1; /* stdin that cannot be polled (/dev/null): no input */
	if (ci->listen_fd >= 0)
		epoll_add(epfd, ci->listen_fd, EPOLLIN);

	for (;;) {
		struct epoll_event evs[8];
		/* Input the FIFO could not take yet is retried every millisecond. */
		int timeout = ci->len ? 1 : -1;
		int n = epoll_wait(epfd, evs, 8, timeout);

		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait: %s", strerror(errno));
			return VMM_EXIT_INTERNAL;
		}
		if (ci->len)
			console_feed(vm, ci);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == vm->exit_fd) {
				close(epfd);
				close(sfd);
				return vm->exit_status;
			} else if (fd == sfd) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					log_info("signal %u: stopping the VM", si.ssi_signo);
					close(epfd);
					close(sfd);
					return VMM_EXIT_OK;
				}
			} else if (fd == ci->listen_fd) {
				int c = accept4(ci->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

				if (c < 0)
					continue;
				if (ci->fd >= 0) {
					/* one console client at a time */
					close(c);
					continue;
				}
				ci->fd = c;
				epoll_add(epfd, c, EPOLLIN);
			} else if (fd == ci->fd && !ci->len) {
				console_read(vm, ci, epfd);
			}
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"initrd", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'c'},
		{"vcpus", required_argument, NULL, 'n'},
		{"mem-mib", required_argument, NULL, 'm'},
		{"cpu-template", required_argument, NULL, 't'},
		{"boot", required_argument, NULL, 'b'},
		{"console-out", required_argument, NULL, 'o'},
		{"console-in", required_argument, NULL, 'I'},
		{"timing", no_argument, NULL, 'T'},
		{"log-level", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct vm_config cfg = {.vcpus = 1, .mem_mib = 128};
	struct console_in ci;
	static struct vm vm;
	uint64_t v, t0 = now_ns();
	bool timing = false;
	int c, status;
	sigset_t sigs;

	log_set_prefix("thaw");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg.kernel = optarg;
			break;
		case 'i':
			cfg.initrd = optarg;
			break;
		case 'c':
			cfg.cmdline = optarg;
			break;
		case 'n':
			if (parse_uint("--vcpus", optarg, VMM_MAX_VCPUS * 16, &v))
				return VMM_EXIT_USAGE;
			cfg.vcpus = (unsigned)v;
			break;
		case 'm':
			if (parse_uint("--mem-mib", optarg, 1ull << 30, &v))
				return VMM_EXIT_USAGE;
			cfg.mem_mib = v;
			break;
		case 't':
			cfg.cpu_template = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "pvh") == 0)
				cfg.protocol = VMM_BOOT_PVH;
			else if (strcmp(optarg, "linux64") == 0)
				cfg.protocol = VMM_BOOT_LINUX64;
			else {
				log_err("--boot: '%s' is not pvh or linux64", optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'o':
			cfg.console_out = optarg;
			break;
		case 'I':
			cfg.console_in = optarg;
			break;
		case 'T':
			timing = true;
			break;
		case 'L':
			if (strcmp(optarg, "error") == 0)
				log_set_level(LOG_ERROR);
			else if (strcmp(optarg, "warn") == 0)
				log_set_level(LOG_WARN);
			else if (strcmp(optarg, "info") == 0)
				log_set_level(LOG_INFO);
			else if (strcmp(optarg, "debug") == 0)
				log_set_level(LOG_DEBUG);
			else {
				log_err("--log-level: '%s' is not error, warn, info or debug",
					optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return VMM_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		log_err("unexpected argument '%s'", argv[optind]);
		return VMM_EXIT_USAGE;
	}
	if (!cfg.kernel) {
		log_err("--kernel is required");
		usage(stderr);
		return VMM_EXIT_USAGE;
	}

	/* The main thread takes these through a signalfd; block them before any thread
	 * exists so every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	status = vm_boot(&vm, &cfg);
	if (status != VMM_EXIT_OK)
		goto out;
	vm.t_process_start_ns = t0;
	if (cfg.console_out) {
		vm.console_out_fd =
			open(cfg.console_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (vm.console_out_fd < 0) {
			log_err("--console-out %s: %s", cfg.console_out, strerror(errno));
			status = VMM_EXIT_USAGE;
			goto out;
		}
	}
	if (open_console_in(&ci, cfg.console_in)) {
		status = VMM_EXIT_USAGE;
		goto out;
	}
	if (vm_start_vcpus(&vm)) {
		status = VMM_EXIT_INTERNAL;
		goto out;
	}
	status = main_loop(&vm, &ci);
	if (timing)
		fprintf(stderr, "thaw: timing: first_run_us=%llu first_line_us=%llu\n",
			vm.t_first_run_ns ? (unsigned long long)(vm.t_first_run_ns - t0) / 1000 : 0,
			vm.t_first_line_ns ? (unsigned long long)(vm.t_first_line_ns - t0) / 1000
					   : 0);
out:
	/* vCPU threads may still be inside KVM_RUN; the process exit ends them. Tearing
	 * the VM down first would only add milliseconds (closing a VM takes 1-16 ms). */
	_exit(status);
}
