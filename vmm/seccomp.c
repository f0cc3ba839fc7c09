/* Per-thread seccomp allowlists of thaw (issue 8).
 *
 * The filters are written with libseccomp in vmm/seccomp_rules.c and compiled to
 * classic BPF when thaw is built (vmm/seccomp_gen.c); vmm_seccomp_prepare, on the main
 * thread before any other thread exists, only copies each program and writes the pid
 * into it. A thread then installs its own with one seccomp(2) call
 * (vmm_seccomp_install): no TSYNC, so each thread keeps the filter of its kind.
 *
 * Filters stack: a thread inherits its creator's filter and adds its own, and a
 * syscall runs only when every filter in the stack allows it. All threads are
 * created by the main thread after the main filter is in place (the API may build a
 * VM and start vCPUs long after the main loop began), so the main allowlist is the
 * union of what any thread needs, and the other kinds narrow it. That is also why
 * the main filter allows seccomp(2) itself: the vCPU threads install theirs under it.
 * Once a VM is launched the main thread stacks one more, small filter that refuses
 * io_uring_setup and io_uring_register (vmm_seccomp_seal_rings): io_uring entries run
 * past seccomp, so rings are made restricted (common/uring.h) and no thread may make
 * or change one while the guest runs.
 *
 * A refused syscall traps (SECCOMP_RET_TRAP): the SIGSYS handler writes one line
 * naming the syscall, its arguments and the thread kind with async-signal-safe calls
 * only, and the process then dies of SIGSYS, as with SECCOMP_RET_KILL_PROCESS. The
 * syscall itself never runs, whatever the handler does.
 */
#include "vmm/seccomp_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <ucontext.h>
#include <unistd.h>

/* Written once by vmm_seccomp_prepare before any other thread exists, read-only
 * afterwards; static because threads started by vm.c and uffd/ and the signal
 * handler must reach them without a context. */
static struct {
	bool ready;
	/* each kind's, then the seal's (vmm_seccomp_seal_rings), with this pid in */
	struct sock_fprog prog[VMM_SECCOMP_NR_FILTERS];
	const char *selftest; /* THAW_SECCOMP_SELFTEST, test hook */
} sc;

/* The kind of filter the calling thread runs under, for the report. */
static __thread int thread_kind = -1;
/* vmm_seccomp_seal_rings ran on this thread. */
static __thread bool thread_sealed;

static const char *const kind_names[VMM_SECCOMP_NR_THREADS] = {
    [VMM_SECCOMP_MAIN] = "main",
    [VMM_SECCOMP_VCPU] = "vcpu",
    [VMM_SECCOMP_UFFD] = "uffd",
    [VMM_SECCOMP_RELEASE] = "release",
};

const char *vmm_seccomp_kind_name(enum vmm_seccomp_thread kind)
{
	return (unsigned)kind < VMM_SECCOMP_NR_THREADS ? kind_names[kind] : "?";
}

/* ---------------------------------------------------------------- the SIGSYS report */

static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	const ucontext_t *uc = uctx;
	const greg_t *r = uc->uc_mcontext.gregs;
	int saved = errno;
	int nr = si->si_syscall;
	char msg[256];
	size_t n = 0, cap = sizeof(msg) - 1;

	(void)sig;
	n = vmm_sigsafe_put_str(msg, n, cap, "thaw: seccomp: refused syscall ");
	n = vmm_sigsafe_put_num(msg, n, cap, (unsigned)nr, false);
	n = vmm_sigsafe_put_str(msg, n, cap, " (");
	n = vmm_sigsafe_put_str(msg, n, cap,
				nr >= 0 && nr < VMM_SECCOMP_NAMES_MAX &&
					vmm_seccomp_syscall_names[nr][0]
				    ? vmm_seccomp_syscall_names[nr]
				    : "unknown");
	if (thread_kind >= 0) {
		n = vmm_sigsafe_put_str(msg, n, cap, ") on a ");
		n = vmm_sigsafe_put_str(msg, n, cap, kind_names[thread_kind]);
		n = vmm_sigsafe_put_str(msg, n, cap, " thread, args ");
	} else {
		/* a thread that did not add its own filter: its creator's applies */
		n = vmm_sigsafe_put_str(msg, n, cap,
					") on a thread with inherited filters only, args ");
	}
	n = vmm_sigsafe_put_num(msg, n, cap, (unsigned long long)r[REG_RDI], true);
	n = vmm_sigsafe_put_str(msg, n, cap, " ");
	n = vmm_sigsafe_put_num(msg, n, cap, (unsigned long long)r[REG_RSI], true);
	n = vmm_sigsafe_put_str(msg, n, cap, " ");
	n = vmm_sigsafe_put_num(msg, n, cap, (unsigned long long)r[REG_RDX], true);
	n = vmm_sigsafe_put_str(msg, n, cap, "; see docs/jailer.md\n");
	if (write(STDERR_FILENO, msg, n) < 0)
		errno = saved; /* nowhere left to report to; die anyway */
	/* Firecracker's seccomp.num_faults, in a last metrics line: no later line comes. */
	vmm_signal_count(SIGSYS);
	vmm_signals_last_line();
	/* Die of SIGSYS: a syscall that traps while SIGSYS is blocked (as it is inside
	 * this handler) makes the kernel reset SIGSYS to its default action and deliver
	 * it, ending the process with a core dump like SECCOMP_RET_KILL_PROCESS. The
	 * handler stays in place meanwhile (no SA_RESETHAND), so another thread trapping
	 * at the same moment still reports its own syscall. No filter allows getppid
	 * (tests/unit/test_seccomp.c checks that every kind dies of SIGSYS); the sealed
	 * filter lets it through, but only ever sits on top of the main one. */
	syscall(SYS_getppid);
	_exit(VMM_EXIT_INTERNAL); /* only if getppid was allowed after all */
}

/* Filter `f` as compiled into thaw, with this process's pid written in. */
static int load_program(unsigned f, uint32_t pid, struct sock_fprog *out)
{
	const struct vmm_seccomp_bpf *b = &vmm_seccomp_bpf[f];
	struct sock_filter *insns = malloc(b->len * sizeof(*insns));

	if (!insns)
		return -ENOMEM;
	memcpy(insns, b->insns, b->len * sizeof(*insns));
	for (unsigned i = 0; i < b->nr_pid_sites; i++)
		insns[b->pid_sites[i]].k = pid;
	*out = (struct sock_fprog){.len = b->len, .filter = insns};
	return 0;
}

int vmm_seccomp_program(unsigned filter, struct sock_fprog *out)
{
	if (filter >= VMM_SECCOMP_NR_FILTERS)
		return -EINVAL;
	return load_program(filter, (uint32_t)getpid(), out);
}

int vmm_seccomp_prepare(void)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
	int ret;

	if (sc.ready)
		return 0;
	for (unsigned f = 0; f < VMM_SECCOMP_NR_FILTERS; f++) {
		ret = vmm_seccomp_program(f, &sc.prog[f]);
		if (ret) {
			log_err("seccomp: out of memory for the filters");
			goto fail;
		}
	}
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		ret = -errno;
		log_err("seccomp: sigaction(SIGSYS): %s", strerror(-ret));
		goto fail;
	}
	/* Needed to install a filter without CAP_SYS_ADMIN (the jailer sets it too);
	 * inherited by every thread created later. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		log_err("seccomp: prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(-ret));
		goto fail;
	}
	sc.selftest = getenv("THAW_SECCOMP_SELFTEST");
	sc.ready = true;
	return 0;
fail:
	for (unsigned f = 0; f < VMM_SECCOMP_NR_FILTERS; f++) {
		free(sc.prog[f].filter);
		sc.prog[f] = (struct sock_fprog){0};
	}
	return ret;
}

bool vmm_seccomp_enabled(void)
{
	return sc.ready;
}

/* TEST HOOK (THAW_SECCOMP_SELFTEST=<kind>): right after a thread of that kind has
 * installed its filter, make a syscall no filter allows, so tests can see that a
 * violation ends the process with the syscall named. Not a debugging aid. */
static void selftest_hook(enum vmm_seccomp_thread kind)
{
	int fd;

	if (!sc.selftest || strcmp(sc.selftest, kind_names[kind]) != 0)
		return;
	fprintf(stderr, "thaw: seccomp: selftest: calling socket(AF_PACKET) on the %s thread\n",
		kind_names[kind]);
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	/* Only reached when the filter let it through (or it failed anyway). */
	log_err("seccomp: selftest: socket(AF_PACKET) was not refused (returned %d)", fd);
	_exit(VMM_EXIT_INTERNAL);
}

int vmm_seccomp_install(enum vmm_seccomp_thread kind)
{
	if (!sc.ready)
		return 0;
	if ((unsigned)kind >= VMM_SECCOMP_NR_THREADS)
		return -EINVAL;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sc.prog[kind]) < 0) {
		int e = errno;

		log_err("seccomp: installing the %s thread's filter: %s", kind_names[kind],
			strerror(e));
		return -e;
	}
	thread_kind = (int)kind;
	selftest_hook(kind);
	return 0;
}

int vmm_seccomp_seal_rings(void)
{
	if (!sc.ready || thread_sealed)
		return 0;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sc.prog[VMM_SECCOMP_SEALED]) < 0) {
		int e = errno;

		log_err("seccomp: sealing io_uring on the main thread: %s", strerror(e));
		return -e;
	}
	thread_sealed = true;
	return 0;
}
