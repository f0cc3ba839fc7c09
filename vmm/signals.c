/* Firecracker's "seccomp" and "signals" metrics groups, counted where the signals land.
 *
 * SIGPIPE gets a handler that only counts it (a write to a closed pipe still fails with
 * EPIPE, as under SIG_IGN); SIGHUP is counted by the main loop, which takes it through its
 * signalfd. The rest end the process, as they did before thaw counted them: a refused
 * syscall (SIGSYS from seccomp, vmm/seccomp.c), SIGBUS, SIGSEGV, SIGILL, SIGXFSZ,
 * SIGXCPU. Their handler counts the signal, writes one last metrics line with both groups
 * (a regular line could never show them), and lets the default action run. The counters
 * and the metrics fd are the process-wide state a signal handler must reach; everything a
 * handler calls here is async-signal-safe. */
#include "vmm/vmm.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { C_SECCOMP, C_SIGBUS, C_SIGSEGV, C_SIGXFSZ, C_SIGXCPU, C_SIGPIPE, C_SIGHUP, C_SIGILL, C_NR };

static uint64_t counts[C_NR];
static int last_line_fd = -1;

static int slot(int sig)
{
	switch (sig) {
	case SIGSYS:
		return C_SECCOMP;
	case SIGBUS:
		return C_SIGBUS;
	case SIGSEGV:
		return C_SIGSEGV;
	case SIGXFSZ:
		return C_SIGXFSZ;
	case SIGXCPU:
		return C_SIGXCPU;
	case SIGPIPE:
		return C_SIGPIPE;
	case SIGHUP:
		return C_SIGHUP;
	case SIGILL:
		return C_SIGILL;
	default:
		return -1;
	}
}

void vmm_signal_count(int sig)
{
	int i = slot(sig);

	if (i >= 0)
		__atomic_fetch_add(&counts[i], 1, __ATOMIC_RELAXED);
}

void vmm_signal_counts(struct vmm_signal_counts *out)
{
	uint64_t n[C_NR];

	for (unsigned i = 0; i < C_NR; i++)
		n[i] = __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
	*out = (struct vmm_signal_counts){
	    .seccomp_faults = n[C_SECCOMP],
	    .sigbus = n[C_SIGBUS],
	    .sigsegv = n[C_SIGSEGV],
	    .sigxfsz = n[C_SIGXFSZ],
	    .sigxcpu = n[C_SIGXCPU],
	    .sigpipe = n[C_SIGPIPE],
	    .sighup = n[C_SIGHUP],
	    .sigill = n[C_SIGILL],
	};
}

void vmm_signals_set_metrics_fd(int fd)
{
	__atomic_store_n(&last_line_fd, fd, __ATOMIC_RELAXED);
}

size_t vmm_sigsafe_put_str(char *buf, size_t off, size_t cap, const char *s)
{
	while (*s && off < cap)
		buf[off++] = *s++;
	return off;
}

size_t vmm_sigsafe_put_num(char *buf, size_t off, size_t cap, unsigned long long v, bool hex)
{
	char tmp[24];
	unsigned base = hex ? 16 : 10;
	int n = 0;

	if (hex)
		off = vmm_sigsafe_put_str(buf, off, cap, "0x");
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && off < cap)
		buf[off++] = tmp[--n];
	return off;
}

size_t vmm_signals_format_last_line(char *buf, size_t cap, uint64_t utc_ms)
{
	static const char *const names[C_NR] = {"num_faults", "sigbus",	 "sigsegv", "sigxfsz",
						"sigxcpu",    "sigpipe", "sighup",  "sigill"};
	size_t n = 0;

	n = vmm_sigsafe_put_str(buf, n, cap, "{\"utc_timestamp_ms\": ");
	n = vmm_sigsafe_put_num(buf, n, cap, utc_ms, false);
	n = vmm_sigsafe_put_str(buf, n, cap, ", \"seccomp\": {\"num_faults\": ");
	n = vmm_sigsafe_put_num(buf, n, cap, __atomic_load_n(&counts[C_SECCOMP], __ATOMIC_RELAXED),
				false);
	n = vmm_sigsafe_put_str(buf, n, cap, "}, \"signals\": {");
	for (unsigned i = C_SIGBUS; i < C_NR; i++) {
		n = vmm_sigsafe_put_str(buf, n, cap, i == C_SIGBUS ? "\"" : ", \"");
		n = vmm_sigsafe_put_str(buf, n, cap, names[i]);
		n = vmm_sigsafe_put_str(buf, n, cap, "\": ");
		n = vmm_sigsafe_put_num(buf, n, cap, __atomic_load_n(&counts[i], __ATOMIC_RELAXED),
					false);
	}
	n = vmm_sigsafe_put_str(buf, n, cap, "}}\n");
	return n;
}

void vmm_signals_last_line(void)
{
	int fd = __atomic_load_n(&last_line_fd, __ATOMIC_RELAXED), saved = errno;
	struct timespec ts;
	char line[320];
	size_t n;

	if (fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	n = vmm_signals_format_last_line(
	    line, sizeof(line), (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	if (write(fd, line, n) < 0) {
		/* nowhere to say so: the process is ending */
	}
	errno = saved;
}

static void on_sigpipe(int sig)
{
	vmm_signal_count(sig);
}

/* The handler is reset to the default on entry (SA_RESETHAND), so the signal raised
 * again here ends the process once the handler returns and unblocks it, as it would
 * have without the handler (a fault would also just recur). */
static void on_fatal(int sig)
{
	vmm_signal_count(sig);
	vmm_signals_last_line();
	raise(sig);
}

int vmm_signals_install(void)
{
	static const int fatal[] = {SIGBUS, SIGSEGV, SIGILL, SIGXFSZ, SIGXCPU};
	struct sigaction pipe_sa = {.sa_handler = on_sigpipe, .sa_flags = SA_RESTART};
	struct sigaction fatal_sa = {.sa_handler = on_fatal, .sa_flags = SA_RESETHAND};

	sigemptyset(&pipe_sa.sa_mask);
	sigemptyset(&fatal_sa.sa_mask);
	if (sigaction(SIGPIPE, &pipe_sa, NULL) < 0)
		return -errno;
#ifdef __SANITIZE_ADDRESS__
	/* make SAN=1: ASan's own SIGSEGV/SIGBUS handlers report the fault; keep them. */
	return 0;
#endif
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		if (sigaction(fatal[i], &fatal_sa, NULL) < 0)
			return -errno;
	return 0;
}
