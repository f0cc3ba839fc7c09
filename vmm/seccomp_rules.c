/* The allowlists of thaw's threads (issue 8), written with libseccomp.
 *
 * This file is not part of thaw: it runs when thaw is built. vmm/seccomp_gen.c links
 * it, builds every filter, exports each to classic BPF and writes the programs into a
 * C file that libvmm compiles (build/gen/vmm/seccomp_bpf.c). thaw itself then only
 * copies a program and calls seccomp(2) (vmm/seccomp.c): compiling five filters with
 * libseccomp at every process start cost ~2 ms of a clone's start on the project's PVM
 * host (issue 21), and it allocated and probed the kernel before the first filter was
 * in place. The unit tests link this file too, to check the compiled-in programs are
 * what these rules build.
 *
 * The one value that is not known at build time, thaw's pid (tgkill may signal only
 * this process), is built as VMM_SECCOMP_PID_SENTINEL; the generator finds the
 * instructions that hold it and thaw writes its pid there before installing.
 */
#include "vmm/seccomp_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <seccomp.h>
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
#include <unistd.h>

#include "common/log.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* Masks for 32-bit arguments: the kernel ignores the upper half of an int or
 * unsigned int argument, so the filter does too (a sign-extended value compares
 * equal instead of being refused by accident). */
#define LO32 0xffffffffull

struct rule_ctx {
	scmp_filter_ctx f;
	uint32_t pid; /* the process tgkill may signal */
	int err;
	const char *what;
};

/* Adds "allow `nr`" with up to two argument comparisons; the first error sticks. */
static void allow(struct rule_ctx *c, int nr, unsigned nargs, const struct scmp_arg_cmp *a)
{
	int ret;

	if (c->err)
		return;
	ret = seccomp_rule_add_array(c->f, SCMP_ACT_ALLOW, nr, nargs, a);
	if (ret) {
		c->err = ret;
		c->what = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	}
}

#define ALLOW(c, name) allow((c), SCMP_SYS(name), 0, NULL)
#define ALLOW_ARG(c, name, ...)                                                                    \
	allow((c), SCMP_SYS(name),                                                                 \
	      sizeof((struct scmp_arg_cmp[]){__VA_ARGS__}) / sizeof(struct scmp_arg_cmp),          \
	      (struct scmp_arg_cmp[]){__VA_ARGS__})

/* ioctl(fd, req): one rule per request. */
static void allow_ioctls(struct rule_ctx *c, const unsigned long *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ALLOW_ARG(c, ioctl, SCMP_A1(SCMP_CMP_MASKED_EQ, LO32, reqs[i] & LO32));
}

#define ALLOW_IOCTLS(c, ...)                                                                       \
	allow_ioctls((c), (const unsigned long[]){__VA_ARGS__},                                    \
		     sizeof((const unsigned long[]){__VA_ARGS__}) / sizeof(unsigned long))

/* What glibc and the libraries do on any thread of ours: memory without ever an
 * executable mapping, locks, time, the log line, thread exit, and the calls the SIGSYS
 * report itself makes. */
static void allow_common(struct rule_ctx *c)
{
	/* Logging (fprintf to stderr) and eventfd signalling are one write each. */
	ALLOW(c, write);
	/* malloc/free: heap growth, arenas of new threads, trimming. */
	ALLOW(c, brk);
	ALLOW_ARG(c, mmap, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)); /* never executable */
	ALLOW_ARG(c, mprotect, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	ALLOW(c, munmap);
	ALLOW(c, mremap);  /* realloc of large blocks */
	ALLOW(c, madvise); /* free() of arena memory, thread stacks at exit */
	/* pthread mutexes, condition variables, joins. */
	ALLOW(c, futex);
	/* Timestamps: the vDSO falls back to the syscall when the clocksource has no vDSO
	 * mode (nested hosts); rate limits and metrics read the clock. */
	ALLOW(c, clock_gettime);
	ALLOW(c, gettimeofday);
	ALLOW(c, clock_nanosleep);
	ALLOW(c, nanosleep);
	/* The kernel restarts an interrupted sleep or wait with this. */
	ALLOW(c, restart_syscall);
	/* Signal handlers (vCPU kick) return through it. */
	ALLOW(c, rt_sigreturn);
	/* pthread_sigmask (vCPU threads unblock their kick signal). */
	ALLOW(c, rt_sigprocmask);
	/* pthread_kill kicks vCPUs; abort(). Only signals to this process. */
	ALLOW(c, getpid);
	ALLOW(c, gettid);
	ALLOW_ARG(c, tgkill, SCMP_A0(SCMP_CMP_EQ, c->pid));
	/* Thread and process exit. */
	ALLOW(c, exit);
	ALLOW(c, exit_group);
	/* glibc's qsort asks for the RAM size before allocating (working-set sorting). */
	ALLOW(c, sysinfo);
	/* glibc's malloc and random seeds; harmless anywhere. */
	ALLOW(c, getrandom);
	ALLOW(c, sched_yield);
#ifdef __SANITIZE_ADDRESS__
	/* make SAN=1 only: ASan gives every thread an alternate signal stack and reads
	 * the CPU set when a thread starts. */
	ALLOW(c, sigaltstack);
	ALLOW(c, sched_getaffinity);
#endif
}

/* clone(2) only for threads: the flags pthread_create uses, no new process, no
 * namespace. Optional bits (TLS, tid pointers) are left out of the comparison. */
static void allow_threads(struct rule_ctx *c)
{
	const uint64_t need =
	    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
	const uint64_t optional =
	    CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID;

	ALLOW_ARG(c, clone, SCMP_A0(SCMP_CMP_MASKED_EQ, ~optional, need));
	/* clone3 passes its flags in memory, out of a filter's reach: it fails with
	 * ENOSYS and glibc falls back to clone, whose flags are checked above. */
	if (!c->err)
		c->err = seccomp_rule_add(c->f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* New threads register their robust futex list and rseq area. */
	ALLOW(c, set_robust_list);
	ALLOW(c, rseq);
	/* pthread_setname_np on the calling thread ("vcpu0"). */
	ALLOW_ARG(c, prctl, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
}

/* The requests the vCPU threads make, also allowed on the main thread (filters stack). */
#define VCPU_IOCTLS                                                                                \
	KVM_RUN,	  /* the vCPU loop */                                                      \
	    KVM_IRQ_LINE, /* COM1 and legacy interrupts from device handlers */                    \
	    TUNSETOFFLOAD /* virtio-net: offloads follow the driver's features */

/* The io_uring_register requests of the main thread before vm_launch. */
static const unsigned uring_register_ops[] = {
    IORING_REGISTER_FILES,	  IORING_REGISTER_EVENTFD,	IORING_REGISTER_RESTRICTIONS,
    IORING_REGISTER_ENABLE_RINGS, IORING_REGISTER_FILES_UPDATE,
};

static void build_main(struct rule_ctx *c)
{
	allow_common(c);
	allow_threads(c);

	/* Files: the snapshot, its memory file, drives, the kernel and initrd, the
	 * console output, /dev/kvm, /dev/net/tun, /dev/userfaultfd, the API's logger and
	 * metrics files. Paths come from the command line and the API. */
	ALLOW(c, openat);
	ALLOW(c, openat2); /* a restore's --snapshot-paths: the snapshot's paths, inside DIR */
	ALLOW(c, close);
	ALLOW(c, read);
	ALLOW(c, readv);
	ALLOW(c, writev);
	ALLOW(c, pread64);  /* snapshot header, sections, working sets */
	ALLOW(c, pwrite64); /* snapshot creation */
	ALLOW(c, lseek);
	ALLOW(c, fstat);
	ALLOW(c, newfstatat); /* fstat and lstat of glibc */
	ALLOW(c, ftruncate);  /* snapshot files get their size before the memory goes in */
	ALLOW(c, fsync);      /* a snapshot is durable before it is renamed into place */
	ALLOW(c, fdatasync);
	ALLOW(c, rename);     /* the snapshot appears atomically */
	ALLOW(c, linkat);     /* ... after being written unnamed (O_TMPFILE) and linked in */
	ALLOW(c, getdents64); /* a create without O_TMPFILE removes an earlier one's leftovers */
	ALLOW(c, unlink);     /* stale sockets (API, console, vsock) and failed snapshots */
	/* The API's logger option puts the log file on stderr. */
	ALLOW(c, dup2);
	ALLOW_ARG(c, fcntl, SCMP_A1(SCMP_CMP_MASKED_EQ, LO32, F_DUPFD_CLOEXEC));
	ALLOW_ARG(c, fcntl, SCMP_A1(SCMP_CMP_MASKED_EQ, LO32, F_GETFL));
	ALLOW_ARG(c, fcntl, SCMP_A1(SCMP_CMP_MASKED_EQ, LO32, F_SETFL));
	ALLOW_ARG(c, fcntl, SCMP_A1(SCMP_CMP_MASKED_EQ, LO32, F_GETFD));
	ALLOW_ARG(c, fcntl, SCMP_A1(SCMP_CMP_MASKED_EQ, LO32, F_SETFD));

	/* The main loop and its fds. */
	ALLOW(c, epoll_create1);
	ALLOW(c, epoll_ctl);
	ALLOW(c, epoll_wait);
	ALLOW(c, poll);		  /* uffd handler's threads, started from here */
	ALLOW(c, eventfd2);	  /* exit, trigger, irqfd, ioeventfd, io_uring completions */
	ALLOW(c, signalfd4);	  /* SIGTERM/SIGUSR1/... and uffd discard requests */
	ALLOW(c, timerfd_create); /* API metrics period */
	ALLOW(c, timerfd_settime);
	ALLOW(c, timerfd_gettime);
	/* vCPU kick handler (SIGRTMIN, vm_start_vcpus), and glibc's own two real-time
	 * signals (cancellation, set*id), set up at the first pthread_create; nothing
	 * else may change a handler, SIGSYS's least of all. */
	for (int sig = __SIGRTMIN; sig <= SIGRTMIN; sig++)
		ALLOW_ARG(c, rt_sigaction, SCMP_A0(SCMP_CMP_EQ, (uint64_t)sig));

	/* Unix sockets only: the API, the console, vsock's host side, the external uffd
	 * handler. No network socket: tap devices come from /dev/net/tun. */
	ALLOW_ARG(c, socket, SCMP_A0(SCMP_CMP_MASKED_EQ, LO32, AF_UNIX));
	ALLOW(c, bind);
	ALLOW(c, listen);
	ALLOW(c, accept4);
	ALLOW(c, connect);
	ALLOW(c, shutdown);
	ALLOW(c, sendto); /* send(), API responses */
	ALLOW(c, recvfrom);
	ALLOW(c, sendmsg); /* uffd handshake with its fd */
	ALLOW(c, recvmsg);
	ALLOW_ARG(c, getsockopt, SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET),
		  SCMP_A2(SCMP_CMP_EQ, SO_PEERCRED)); /* who the uffd handler is */

	/* io_uring (block devices, uffd prefetch reads). Until vm_launch only: then
	 * vmm_seccomp_seal_rings stacks a filter refusing io_uring_setup and
	 * io_uring_register on this thread for good.
	 *
	 * io_uring_setup: a drive's ring is made when its device is (vm_boot, or
	 * vm_restore of a snapshot), the uffd handler's when a restore starts it; both
	 * come after this filter, because the devices are known only from what this
	 * filter must already guard (a snapshot, API requests). Every ring thaw makes is
	 * created IORING_SETUP_R_DISABLED and restricted before it is enabled
	 * (common/uring.h). The filter cannot insist on that: the flags are in the
	 * struct io_uring_params the second argument points to, out of a filter's
	 * reach. So until vm_launch, code run on this thread could make an unrestricted
	 * ring, whose entries do what this allowlist refuses (network sockets,
	 * mkdirat, ...); the guest runs no code before vm_launch, and the vCPU and uffd
	 * threads never get io_uring_setup. */
	ALLOW(c, io_uring_setup);
	/* io_uring_enter: blk submits and drains its requests here. Safe on thaw's
	 * rings: their entries are limited to the opcodes they use, on their
	 * registered files only, by the kernel. */
	ALLOW(c, io_uring_enter);
	/* io_uring_register: only what uring_init_restricted does before a ring is
	 * enabled (files, eventfd, restrictions, enable), and the file update of a
	 * reopened drive (vmm/virtio/blk.c ring_set_file), not the requests that would
	 * loosen a ring (personalities, io-wq workers, buffer rings, ...). The
	 * registered-ring flag (high bit) is refused with them. */
	for (unsigned i = 0; i < sizeof(uring_register_ops) / sizeof(uring_register_ops[0]); i++)
		ALLOW_ARG(c, io_uring_register,
			  SCMP_A1(SCMP_CMP_MASKED_EQ, LO32, uring_register_ops[i]));

	/* Guest memory through userfaultfd (restore with --mem-backend uffd*). */
	ALLOW(c, userfaultfd);
	ALLOW(c, pidfd_open); /* to notice the external handler's death */

	/* Host facts: kernel release in snapshot headers (RAM: sysinfo, common part). */
	ALLOW(c, uname);

	/* Threads started from here install their own (narrower) filter: one more
	 * filter, no flags (no TSYNC, no listener). */
	ALLOW_ARG(c, seccomp, SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER),
		  SCMP_A1(SCMP_CMP_EQ, 0));

	ALLOW_IOCTLS(c,
		     /* /dev/kvm: version, capabilities, sizes, CPUID, MSR list, a new VM */
		     KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
		     KVM_CREATE_VM, KVM_GET_SUPPORTED_CPUID, KVM_GET_MSR_INDEX_LIST,
		     /* the VM: memory, irqchip, PIT, clock, vCPUs, eventfds */
		     KVM_SET_USER_MEMORY_REGION, KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR,
		     KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2, KVM_GET_IRQCHIP, KVM_SET_IRQCHIP,
		     KVM_GET_PIT2, KVM_SET_PIT2, KVM_GET_CLOCK, KVM_SET_CLOCK, KVM_CREATE_VCPU,
		     KVM_IOEVENTFD, KVM_IRQFD,
		     /* vCPU state for boot, snapshot and restore */
		     KVM_SET_CPUID2, KVM_GET_CPUID2, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS,
		     KVM_SET_SREGS, KVM_GET_MSRS, KVM_SET_MSRS, KVM_GET_LAPIC, KVM_SET_LAPIC,
		     KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_GET_XSAVE, KVM_SET_XSAVE, KVM_GET_XCRS,
		     KVM_SET_XCRS, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, KVM_GET_VCPU_EVENTS,
		     KVM_SET_VCPU_EVENTS, KVM_KVMCLOCK_CTRL,
		     /* the guest's TSC rate, for --clock-realtime */
		     KVM_GET_TSC_KHZ,
		     /* tap devices */
		     TUNSETIFF, TUNSETVNETHDRSZ,
		     /* userfaultfd: a new one through /dev/userfaultfd, API handshake,
		      * registration, and what the handler thread does */
		     USERFAULTFD_IOC_NEW, UFFDIO_API, UFFDIO_REGISTER, UFFDIO_COPY, UFFDIO_ZEROPAGE,
		     UFFDIO_WAKE,
		     /* isatty(stdin) when the console reads stdin */
		     TCGETS, VCPU_IOCTLS);
}

static void build_vcpu(struct rule_ctx *c)
{
	allow_common(c);
	/* pthread_setname_np("vcpuN") at thread start. */
	ALLOW_ARG(c, prctl, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	/* Device MMIO/PIO handlers run here: virtio queues served without an ioeventfd,
	 * activation and reset of devices. They read and write their backends (tap,
	 * vsock sockets, eventfds), change what the main loop watches, submit and reap
	 * block requests, and close what a reset drops. */
	ALLOW(c, read);
	ALLOW(c, readv);
	ALLOW(c, writev);
	ALLOW(c, sendto);
	ALLOW(c, recvfrom);
	ALLOW(c, shutdown); /* vsock: the guest shut a connection */
	ALLOW(c, close);
	ALLOW(c, epoll_ctl);
	/* blk requests are submitted and drained from the notify and reset handlers.
	 * Only entering rings that exist: blk's, restricted to readv/writev/fsync of
	 * the drive's registered file; an OPENAT or SOCKET entry completes with
	 * -EACCES (tests/unit/test_seccomp.c). No io_uring_setup (it would make an
	 * unrestricted ring) and no io_uring_register (it could change one). */
	ALLOW(c, io_uring_enter);
	ALLOW_IOCTLS(c, VCPU_IOCTLS);
	/* The uffd stall detector's kick: a vCPU fingerprints the KVM_RUN it was kicked
	 * out of (registers, halted or not) to tell a halt from a fault it re-enters. */
	ALLOW_IOCTLS(c, KVM_GET_REGS, KVM_GET_MP_STATE);
	/* A restore without a PIT (vm_pit_defer): the first vCPU to touch its ports makes
	 * it and runs the instruction again (the registers read, put back). */
	ALLOW_IOCTLS(c, KVM_CREATE_PIT2, KVM_SET_PIT2, KVM_SET_REGS);
	/* A guest that ends its VM by itself (a triple fault): the vCPU reports its
	 * segments, control registers and pending events (vcpu_report_end). */
	ALLOW_IOCTLS(c, KVM_GET_SREGS, KVM_GET_VCPU_EVENTS);
}

static void build_uffd(struct rule_ctx *c)
{
	allow_common(c);
	allow_threads(c); /* the control thread starts a thread per discard request */
	/* Fault events from the userfaultfd, the stop eventfd, discard signals. */
	ALLOW(c, read);
	ALLOW(c, poll);
	/* Page contents from the snapshot's memory file, by pread or io_uring. */
	ALLOW(c, pread64);
	/* Prefetch submits and reaps on the handler's ring, made restricted to reads of
	 * the memory file before this thread started (uffd/server.c uffd_ring_init);
	 * no io_uring_setup, no io_uring_register, as on vCPU threads. */
	ALLOW(c, io_uring_enter);
	/* Watching the external handler's socket. */
	ALLOW(c, recvfrom);
	ALLOW(c, close);
	ALLOW_IOCTLS(c, UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_WAKE);
}

/* Stacked on the main thread by vm_launch: every ring exists (drives, the uffd
 * handler's) and the process never builds another VM, so nothing may make a ring or
 * change one any more, except to point a drive's ring at the new file of a PATCH
 * /drives (IORING_REGISTER_FILES_UPDATE, see ring_set_file in vmm/virtio/blk.c: a
 * restricted ring that can only read, write and fsync its registered file gets a file
 * this thread holds and can read and write itself). The whole second argument is
 * compared, so the registered-ring flag in its high bit is refused too. Everything
 * else is left to the main filter under it. */
static void build_sealed(struct rule_ctx *c)
{
	if (!c->err)
		c->err = seccomp_rule_add(c->f, SCMP_ACT_TRAP, SCMP_SYS(io_uring_setup), 0);
	if (!c->err)
		c->err = seccomp_rule_add(c->f, SCMP_ACT_TRAP, SCMP_SYS(io_uring_register), 1,
					  SCMP_A1(SCMP_CMP_NE, IORING_REGISTER_FILES_UPDATE));
	if (c->err)
		c->what = strdup("io_uring_setup/io_uring_register");
}

static void build_release(struct rule_ctx *c)
{
	/* A discarded VM: unmap its memory and kvm_run areas, close its fds. */
	allow_common(c);
	ALLOW(c, close);
}

static int export(scmp_filter_ctx f, struct sock_fprog *out)
{
	int fd = memfd_create("thaw-seccomp", MFD_CLOEXEC), ret;
	off_t len;
	void *buf = NULL;

	if (fd < 0)
		return -errno;
	ret = seccomp_export_bpf(f, fd);
	if (ret)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(struct sock_filter) ||
	    len / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		ret = -E2BIG;
		goto out;
	}
	buf = malloc((size_t)len);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, buf, (size_t)len, 0) != len) {
		ret = -EIO;
		free(buf);
		goto out;
	}
	out->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
	out->filter = buf;
out:
	close(fd);
	return ret;
}

/* Each filter: its builder, what it does with a syscall it has no rule for, its name. */
static const struct {
	void (*build)(struct rule_ctx *);
	uint32_t deflt;
	const char *name;
} filters[VMM_SECCOMP_NR_FILTERS] = {
    [VMM_SECCOMP_MAIN] = {build_main, SCMP_ACT_TRAP, "main"},
    [VMM_SECCOMP_VCPU] = {build_vcpu, SCMP_ACT_TRAP, "vcpu"},
    [VMM_SECCOMP_UFFD] = {build_uffd, SCMP_ACT_TRAP, "uffd"},
    [VMM_SECCOMP_RELEASE] = {build_release, SCMP_ACT_TRAP, "release"},
    [VMM_SECCOMP_SEALED] = {build_sealed, SCMP_ACT_ALLOW, "sealed main"},
};

int vmm_seccomp_rules_build(unsigned filter, uint32_t pid, struct sock_fprog *out)
{
	struct rule_ctx c = {.pid = pid};
	int ret;

	if (filter >= VMM_SECCOMP_NR_FILTERS)
		return -EINVAL;
	c.f = seccomp_init(filters[filter].deflt);
	if (!c.f) {
		log_err("seccomp: seccomp_init failed");
		return -ENOMEM;
	}
	/* A binary tree over the syscall numbers, not libseccomp's default linear chain:
	 * at install the kernel emulates the filter for every syscall number to build
	 * its action cache (with interrupts off), and a syscall the chain lists late, or
	 * not at all, walked all of it; so does every syscall at run time. */
	if (seccomp_attr_set(c.f, SCMP_FLTATR_CTL_OPTIMIZE, 2)) {
		log_err("seccomp: %s filter: the binary tree optimisation is unavailable",
			filters[filter].name);
		ret = -EOPNOTSUPP;
		goto out;
	}
	filters[filter].build(&c);
	if (c.err) {
		log_err("seccomp: %s filter: adding %s: %s", filters[filter].name,
			c.what ? c.what : "a rule", strerror(-c.err));
		ret = c.err;
		goto out;
	}
	ret = export(c.f, out);
	if (ret)
		log_err("seccomp: %s filter: exporting BPF: %s", filters[filter].name,
			strerror(-ret));
out:
	free((void *)c.what);
	seccomp_release(c.f);
	return ret;
}

const char *vmm_seccomp_rules_name(unsigned filter)
{
	return filter < VMM_SECCOMP_NR_FILTERS ? filters[filter].name : "?";
}
