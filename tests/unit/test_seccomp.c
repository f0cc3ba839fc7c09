/* The seccomp allowlists of vmm/seccomp.c, each installed for real in a forked child:
 * what a thread of that kind does must keep working, and what it must never do ends
 * the child by SIGSYS with the refused syscall named on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "uffd/uffd.h"
#include "vmm/virtio/virtio.h"
#include "vmm/seccomp_int.h"
#include "vmm/vmm.h"

/* What a child did: its wait status and what it wrote on stderr. */
struct outcome {
	int status;
	char err[4096];
};

/* Runs `fn` in a child that first installs the filters in `kinds` (in order, as
 * thread start-up stacks them; none when nr == 0) after vmm_seccomp_prepare. `fn`
 * returns the child's exit status (0 when everything it checked was right). */
static void run_child(const enum vmm_seccomp_thread *kinds, unsigned nr, int (*fn)(void),
		      struct outcome *o)
{
	int pfd[2];
	pid_t pid;
	size_t len = 0;
	ssize_t n;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[0]);
		if (nr && vmm_seccomp_prepare())
			_exit(100);
		for (unsigned i = 0; i < nr; i++)
			if (vmm_seccomp_install(kinds[i]))
				_exit(101);
		_exit(fn());
	}
	close(pfd[1]);
	while (len < sizeof(o->err) - 1 &&
	       (n = read(pfd[0], o->err + len, sizeof(o->err) - 1 - len)) > 0)
		len += (size_t)n;
	o->err[len] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &o->status, 0), pid);
}

static void expect_ok(const enum vmm_seccomp_thread *kinds, unsigned nr, int (*fn)(void))
{
	struct outcome o;

	run_child(kinds, nr, fn, &o);
	if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0)
		fprintf(stderr, "child status %#x, stderr:\n%s\n", o.status, o.err);
	assert_true(WIFEXITED(o.status));
	assert_int_equal(WEXITSTATUS(o.status), 0);
}

/* The child must die of SIGSYS with "refused syscall <nr> (<name>)" on stderr. */
static void expect_refused(const enum vmm_seccomp_thread *kinds, unsigned nr, int (*fn)(void),
			   long sysno, const char *name)
{
	struct outcome o;
	char want[96];

	run_child(kinds, nr, fn, &o);
	snprintf(want, sizeof(want), "thaw: seccomp: refused syscall %ld (%s) on a %s thread",
		 sysno, name, vmm_seccomp_kind_name(kinds[nr - 1]));
	if (!WIFSIGNALED(o.status) || !strstr(o.err, want))
		fprintf(stderr, "child status %#x, want '%s', stderr:\n%s\n", o.status, want,
			o.err);
	assert_true(WIFSIGNALED(o.status));
	assert_int_equal(WTERMSIG(o.status), SIGSYS);
	assert_non_null(strstr(o.err, want));
}

static const enum vmm_seccomp_thread MAIN[] = {VMM_SECCOMP_MAIN};
static const enum vmm_seccomp_thread VCPU[] = {VMM_SECCOMP_MAIN, VMM_SECCOMP_VCPU};
static const enum vmm_seccomp_thread VCPU_ALONE[] = {VMM_SECCOMP_VCPU};
static const enum vmm_seccomp_thread UFFD[] = {VMM_SECCOMP_MAIN, VMM_SECCOMP_UFFD};
static const enum vmm_seccomp_thread RELEASE[] = {VMM_SECCOMP_MAIN, VMM_SECCOMP_RELEASE};

/* ---------------------------------------------------------------- allowed */

static void *thread_fn(void *arg)
{
	return arg;
}

/* An ioctl that reached the kernel fails with EBADF on fd -1 instead of trapping. */
static int ioctl_reaches_kernel(unsigned long req)
{
	return ioctl(-1, req, 0) < 0 && errno == EBADF;
}

static int main_thread_work(void)
{
	int fd, ep, efd, sv;
	void *p;
	pthread_t t;
	void *ret = NULL;

	/* a snapshot file, an API socket, the loop's fds */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || write(fd, "x", 1) != 1 || fcntl(fd, F_GETFL) < 0 ||
	    fcntl(fd, F_DUPFD_CLOEXEC, 0) < 0)
		return 1;
	sv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	efd = eventfd(0, EFD_CLOEXEC);
	if (sv < 0 || ep < 0 || efd < 0)
		return 2;
	/* KVM, tap and userfaultfd requests thaw makes */
	if (!ioctl_reaches_kernel(KVM_CREATE_VM) || !ioctl_reaches_kernel(KVM_SET_REGS) ||
	    !ioctl_reaches_kernel(KVM_RUN) || !ioctl_reaches_kernel(UFFDIO_COPY) ||
	    !ioctl_reaches_kernel(TCGETS))
		return 3;
	/* memory read-write, threads */
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ) || munmap(p, 1 << 20))
		return 4;
	if (pthread_create(&t, NULL, thread_fn, &fd) || pthread_join(t, &ret) || ret != &fd)
		return 5;
	/* clone3 is answered with ENOSYS so glibc uses clone */
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 6;
	return 0;
}

static void main_filter_allows_the_main_threads_work(void **state)
{
	expect_ok(MAIN, 1, main_thread_work);
}

static int vcpu_thread_work(void)
{
	uint64_t one = 1;

	if (!ioctl_reaches_kernel(KVM_RUN) || !ioctl_reaches_kernel(KVM_IRQ_LINE))
		return 1;
	/* a PIT made when the guest first touches it (vm_pit_defer) */
	if (!ioctl_reaches_kernel(KVM_CREATE_PIT2) || !ioctl_reaches_kernel(KVM_SET_PIT2) ||
	    !ioctl_reaches_kernel(KVM_SET_REGS))
		return 5;
	if (write(STDERR_FILENO, "", 0) < 0)
		return 2;
	if (pthread_setname_np(pthread_self(), "vcpu0"))
		return 3;
	/* backends: eventfd, tap and socket reads and writes (here on a bad fd) */
	if (read(-1, &one, sizeof(one)) != -1 || errno != EBADF)
		return 4;
	free(malloc(1 << 20)); /* glibc maps and unmaps big blocks */
	return 0;
}

static void vcpu_filter_allows_kvm_run_and_device_handlers(void **state)
{
	expect_ok(VCPU, 2, vcpu_thread_work);
	expect_ok(VCPU_ALONE, 1, vcpu_thread_work);
}

static int uffd_thread_work(void)
{
	char buf[16];

	if (!ioctl_reaches_kernel(UFFDIO_COPY) || !ioctl_reaches_kernel(UFFDIO_ZEROPAGE) ||
	    !ioctl_reaches_kernel(UFFDIO_WAKE))
		return 1;
	if (pread(-1, buf, sizeof(buf), 0) != -1 || errno != EBADF)
		return 2;
	return 0;
}

static void uffd_filter_allows_fault_handling(void **state)
{
	expect_ok(UFFD, 2, uffd_thread_work);
}

static int release_thread_work(void)
{
	void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 1;
	if (munmap(p, 1 << 20) || close(-1) != -1 || errno != EBADF)
		return 2;
	return 0;
}

static void release_filter_allows_munmap_and_close(void **state)
{
	expect_ok(RELEASE, 2, release_thread_work);
}

static int anything(void)
{
	return syscall(SYS_getppid) > 0 ? 0 : 1;
}

static void without_prepare_install_is_a_no_op(void **state)
{
	struct outcome o;

	/* what thaw --no-seccomp does: install without prepare */
	run_child(NULL, 0, anything, &o);
	assert_true(WIFEXITED(o.status));
	assert_int_equal(WEXITSTATUS(o.status), 0);
	assert_false(vmm_seccomp_enabled());
	assert_int_equal(vmm_seccomp_install(VMM_SECCOMP_VCPU), 0);
}

/* ---------------------------------------------------------------- refused */

static int do_socket_inet(void)
{
	return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 1;
}

static int do_socket_packet(void)
{
	return socket(AF_PACKET, SOCK_RAW, 0) >= 0 ? 0 : 1;
}

static int do_mmap_exec(void)
{
	return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
	       MAP_FAILED;
}

static int do_mprotect_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return mprotect(p, 4096, PROT_READ | PROT_EXEC);
}

static int do_ptrace(void)
{
	return (int)syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
}

/* The metrics file is stderr here: the SIGSYS handler's last line lands beside its
 * report. */
static int do_ptrace_with_metrics(void)
{
	vmm_signals_set_metrics_fd(STDERR_FILENO);
	return do_ptrace();
}

static int do_execve(void)
{
	char *const argv[] = {(char *)"/bin/true", NULL};

	return execve("/bin/true", argv, argv + 1);
}

static int do_fork(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return 1;
}

static int do_ioctl_tiocsti(void)
{
	char c = 'x';

	return ioctl(0, TIOCSTI, &c);
}

static int do_fcntl_setown(void)
{
	return fcntl(0, F_SETOWN, getpid());
}

static int do_sigaction_sigsys(void)
{
	return sigaction(SIGSYS, &(struct sigaction){.sa_handler = SIG_IGN}, NULL);
}

static int do_seccomp_tsync(void)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = {.len = 1, .filter = &allow};

	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
}

static int do_kill_other(void)
{
	return (int)syscall(SYS_tgkill, 1, 1, 0);
}

static void main_filter_refuses_what_thaw_never_does(void **state)
{
	expect_refused(MAIN, 1, do_socket_inet, SYS_socket, "socket");
	expect_refused(MAIN, 1, do_socket_packet, SYS_socket, "socket");
	expect_refused(MAIN, 1, do_mmap_exec, SYS_mmap, "mmap");
	expect_refused(MAIN, 1, do_mprotect_exec, SYS_mprotect, "mprotect");
	expect_refused(MAIN, 1, do_ptrace, SYS_ptrace, "ptrace");
	expect_refused(MAIN, 1, do_execve, SYS_execve, "execve");
	expect_refused(MAIN, 1, do_fork, SYS_clone, "clone");
	expect_refused(MAIN, 1, do_ioctl_tiocsti, SYS_ioctl, "ioctl");
	expect_refused(MAIN, 1, do_fcntl_setown, SYS_fcntl, "fcntl");
	expect_refused(MAIN, 1, do_sigaction_sigsys, SYS_rt_sigaction, "rt_sigaction");
	expect_refused(MAIN, 1, do_seccomp_tsync, SYS_seccomp, "seccomp");
	expect_refused(MAIN, 1, do_kill_other, SYS_tgkill, "tgkill");
}

static int do_open(void)
{
	return open("/dev/null", O_RDONLY) >= 0 ? 0 : 1;
}

static int do_socket_unix(void)
{
	return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 0 : 1;
}

static int do_create_vm(void)
{
	return ioctl(-1, KVM_CREATE_VM, 0);
}

static int do_set_memory(void)
{
	return ioctl(-1, KVM_SET_USER_MEMORY_REGION, 0);
}

static int do_set_sregs(void)
{
	return ioctl(-1, KVM_SET_SREGS, 0);
}

static int do_clone3(void)
{
	return (int)syscall(SYS_clone3, NULL, 0);
}

static int do_uffd_ioctl(void)
{
	return ioctl(-1, UFFDIO_COPY, 0);
}

static void vcpu_filter_refuses_files_sockets_and_vm_ioctls(void **state)
{
	expect_refused(VCPU, 2, do_open, SYS_openat, "openat");
	expect_refused(VCPU, 2, do_socket_unix, SYS_socket, "socket");
	expect_refused(VCPU, 2, do_create_vm, SYS_ioctl, "ioctl");
	expect_refused(VCPU, 2, do_set_memory, SYS_ioctl, "ioctl");
	expect_refused(VCPU, 2, do_set_sregs, SYS_ioctl, "ioctl");
	expect_refused(VCPU, 2, do_uffd_ioctl, SYS_ioctl, "ioctl");
	/* the stacked main filter lets clone3 fail with ENOSYS, the vCPU's own traps */
	expect_refused(VCPU, 2, do_clone3, SYS_clone3, "clone3");
	expect_refused(VCPU, 2, do_mmap_exec, SYS_mmap, "mmap");
	expect_refused(VCPU_ALONE, 1, do_open, SYS_openat, "openat");
}

static int do_kvm_run(void)
{
	return ioctl(-1, KVM_RUN, 0);
}

static void uffd_filter_refuses_kvm_and_files(void **state)
{
	expect_refused(UFFD, 2, do_kvm_run, SYS_ioctl, "ioctl");
	expect_refused(UFFD, 2, do_open, SYS_openat, "openat");
	expect_refused(UFFD, 2, do_socket_unix, SYS_socket, "socket");
}

static int do_read(void)
{
	char c;

	return (int)read(-1, &c, 1);
}

static void release_filter_refuses_everything_else(void **state)
{
	expect_refused(RELEASE, 2, do_read, SYS_read, "read");
	expect_refused(RELEASE, 2, do_kvm_run, SYS_ioctl, "ioctl");
	expect_refused(RELEASE, 2, do_open, SYS_openat, "openat");
}

static pthread_barrier_t together;

static void *refuse_in_thread(void *arg)
{
	pthread_barrier_wait(&together);
	syscall(SYS_ptrace, 0, 0, 0, 0);
	return arg;
}

/* Two threads refused at the same moment: the first report is not lost to the
 * second (the handler stays installed), and the process still dies of SIGSYS. */
static int two_threads_refused_at_once(void)
{
	pthread_t t[2];

	pthread_barrier_init(&together, NULL, 2);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, refuse_in_thread, NULL);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	return 3;
}

static void concurrent_refusals_are_reported(void **state)
{
	for (int round = 0; round < 20; round++) {
		struct outcome o;

		run_child(MAIN, 1, two_threads_refused_at_once, &o);
		assert_true(WIFSIGNALED(o.status));
		assert_int_equal(WTERMSIG(o.status), SIGSYS);
		assert_non_null(strstr(o.err, "thaw: seccomp: refused syscall 101 (ptrace) on a "
					      "thread with inherited filters only"));
	}
}

/* ---------------------------------------------------------------- io_uring */

static int do_uring_setup(void)
{
	struct io_uring_params p = {0};

	return (int)syscall(SYS_io_uring_setup, 4, &p);
}

static int do_uring_register(void)
{
	return (int)syscall(SYS_io_uring_register, -1, IORING_REGISTER_FILES, NULL, 0);
}

/* A request the main thread never makes (it would widen a ring's workers). */
static int do_uring_register_workers(void)
{
	return (int)syscall(SYS_io_uring_register, -1, IORING_REGISTER_IOWQ_MAX_WORKERS, NULL, 2);
}

/* Neither a vCPU nor a uffd thread may make a ring or change one: io_uring_enter on
 * the restricted rings thaw made before they started is all they get. */
static void vcpu_and_uffd_filters_refuse_making_or_changing_rings(void **state)
{
	expect_refused(VCPU, 2, do_uring_setup, SYS_io_uring_setup, "io_uring_setup");
	expect_refused(VCPU, 2, do_uring_register, SYS_io_uring_register, "io_uring_register");
	expect_refused(UFFD, 2, do_uring_setup, SYS_io_uring_setup, "io_uring_setup");
	expect_refused(UFFD, 2, do_uring_register, SYS_io_uring_register, "io_uring_register");
}

static int main_ring_requests_reach_the_kernel(void)
{
	/* what uring_init_restricted asks, on fd -1: EBADF, or EINVAL from kernels
	 * (6.13+) that take fd -1 for requests not tied to a ring */
	static const unsigned ops[] = {IORING_REGISTER_FILES, IORING_REGISTER_EVENTFD,
				       IORING_REGISTER_RESTRICTIONS, IORING_REGISTER_ENABLE_RINGS,
				       IORING_REGISTER_FILES_UPDATE};

	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (syscall(SYS_io_uring_register, -1, ops[i], NULL, 0) != -1 ||
		    (errno != EBADF && errno != EINVAL))
			return 1 + (int)i;
	return 0;
}

static void main_filter_allows_only_the_register_requests_thaw_makes(void **state)
{
	expect_ok(MAIN, 1, main_ring_requests_reach_the_kernel);
	expect_refused(MAIN, 1, do_uring_register_workers, SYS_io_uring_register,
		       "io_uring_register");
}

static int sealed_then(int (*fn)(void))
{
	if (vmm_seccomp_seal_rings() || vmm_seccomp_seal_rings()) /* twice: a no-op */
		return 90;
	return fn();
}

static int sealed_setup(void)
{
	return sealed_then(do_uring_setup);
}

static int sealed_register(void)
{
	return sealed_then(do_uring_register);
}

static int sealed_main_work(void)
{
	return sealed_then(main_thread_work);
}

/* PATCH /drives of a running VM points the drive's ring at its new file. */
static int files_update_reaches_the_kernel(void)
{
	return syscall(SYS_io_uring_register, -1, IORING_REGISTER_FILES_UPDATE, NULL, 0) != -1 ||
		       (errno != EBADF && errno != EINVAL)
		   ? 1
		   : 0;
}

static int sealed_files_update(void)
{
	return sealed_then(files_update_reaches_the_kernel);
}

/* The same request with the registered-ring flag (bit 31) set. */
static int sealed_files_update_registered_ring(void)
{
	if (vmm_seccomp_seal_rings())
		return 99;
	return (int)syscall(SYS_io_uring_register, -1, IORING_REGISTER_FILES_UPDATE | (1u << 31),
			    NULL, 0);
}

/* After vm_launch the main thread makes no ring and changes none but a drive's file;
 * the rest of its allowlist stays. */
static void sealed_main_thread_refuses_io_uring_setup_and_register(void **state)
{
	expect_refused(MAIN, 1, sealed_setup, SYS_io_uring_setup, "io_uring_setup");
	expect_refused(MAIN, 1, sealed_register, SYS_io_uring_register, "io_uring_register");
	expect_refused(MAIN, 1, sealed_files_update_registered_ring, SYS_io_uring_register,
		       "io_uring_register");
	expect_ok(MAIN, 1, sealed_files_update);
	expect_ok(MAIN, 1, sealed_main_work);
}

/* The proof of issue 14 item 2, on thaw's own rings: made on the main thread as thaw
 * makes them (blk's, uffd's), then used from a thread of `ring_kind` under its real
 * filter stack. The ring's own work (a read of its file) goes through; an OPENAT with
 * O_CREAT and a SOCKET(AF_INET), each with and without IOSQE_FIXED_FILE, complete with
 * -EACCES, and no file appears. */
static enum vmm_seccomp_thread ring_kind;
static bool ring_uffd; /* uffd's ring (else blk's) */
static char ring_backing[64], ring_victim[80];

static struct io_uring_sqe *next_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe)
		_exit(14); /* one entry at a time on an empty ring: never */
	return sqe;
}

/* Submits `sqe` alone and returns its completion's result in `res`. */
static int one(struct io_uring *ring, struct io_uring_sqe *sqe, bool fixed, int *res)
{
	struct io_uring_cqe *cqe;
	int ret;

	if (fixed)
		io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
	ret = io_uring_submit_and_wait(ring, 1);
	if (ret < 0)
		return ret;
	ret = io_uring_peek_cqe(ring, &cqe);
	if (ret)
		return ret;
	*res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

static int abuse_thaws_ring(void)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	char err[160], buf[512];
	struct iovec iov = {buf, sizeof(buf)};
	int fd, efd, res = 0, ret, bad = 0;

	fd = open(ring_backing, O_RDWR | O_CLOEXEC);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0 || efd < 0)
		return 10;
	ret = ring_uffd ? uffd_ring_init(&ring, 8, fd, efd, err, sizeof(err))
			: virtio_blk_ring_init(&ring, fd, false, efd, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "ring: %s\n", err);
		return 11;
	}
	if (vmm_seccomp_install(ring_kind))
		return 12;

	/* what the thread does with it: its file, by registered index */
	sqe = next_sqe(&ring);
	if (ring_uffd)
		io_uring_prep_read(sqe, 0, buf, sizeof(buf), 0);
	else
		io_uring_prep_readv(sqe, 0, &iov, 1, 0);
	if (one(&ring, sqe, true, &res) || res != (int)sizeof(buf) || buf[0] != 'b') {
		fprintf(stderr, "read through the ring: %d\n", res);
		return 13;
	}
	/* every attempt is made and reported, so a failure shows all that got through */
	for (int fixed = 0; fixed < 2; fixed++) {
		sqe = next_sqe(&ring);
		io_uring_prep_openat(sqe, AT_FDCWD, ring_victim, O_CREAT | O_WRONLY | O_CLOEXEC,
				     0600);
		if (one(&ring, sqe, fixed, &res) || res != -EACCES) {
			fprintf(stderr, "OPENAT (fixed %d) completed with %d\n", fixed, res);
			bad |= 1 << fixed;
		}
		sqe = next_sqe(&ring);
		io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 0);
		if (one(&ring, sqe, fixed, &res) || res != -EACCES) {
			fprintf(stderr, "SOCKET(AF_INET) (fixed %d) completed with %d\n", fixed,
				res);
			bad |= 4 << fixed;
		}
	}
	return bad ? 20 + bad : 0;
}

static void abuse(enum vmm_seccomp_thread kind, bool uffd)
{
	struct outcome o;
	char buf[4096];
	bool created;
	int fd;

	snprintf(ring_backing, sizeof(ring_backing), "/tmp/thaw-test-ring-XXXXXX");
	fd = mkstemp(ring_backing);
	assert_true(fd >= 0);
	memset(buf, 'b', sizeof(buf));
	assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(fd);
	snprintf(ring_victim, sizeof(ring_victim), "%s.created", ring_backing);
	unlink(ring_victim);
	ring_kind = kind;
	ring_uffd = uffd;

	run_child(MAIN, 1, abuse_thaws_ring, &o);
	/* the file is checked here: the child's word is not the proof */
	created = access(ring_victim, F_OK) == 0;
	unlink(ring_victim);
	unlink(ring_backing);
	if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0 || created)
		fprintf(stderr, "child status %#x, %s %s, stderr:\n%s\n", o.status, ring_victim,
			created ? "was created" : "was not created", o.err);
	assert_false(created);
	assert_true(WIFEXITED(o.status));
	assert_int_equal(WEXITSTATUS(o.status), 0);
}

static void blk_ring_refuses_openat_and_socket_from_a_vcpu_thread(void **state)
{
	abuse(VMM_SECCOMP_VCPU, false);
}

static void uffd_ring_refuses_openat_and_socket_from_the_uffd_thread(void **state)
{
	abuse(VMM_SECCOMP_UFFD, true);
}

/* ---------------------------------------------------------------- the filters */

static void every_filter_builds_within_the_bpf_limit(void **state)
{
	for (unsigned f = 0; f < VMM_SECCOMP_NR_FILTERS; f++) {
		struct sock_fprog prog = {0};

		assert_int_equal(vmm_seccomp_rules_build(f, (uint32_t)getpid(), &prog), 0);
		assert_true(prog.len > 0 && prog.len <= BPF_MAXINSNS);
		/* the last instruction of libseccomp's program is a return */
		assert_int_equal(BPF_CLASS(prog.filter[prog.len - 1].code), BPF_RET);
		free(prog.filter);
	}
	assert_int_equal(
	    vmm_seccomp_rules_build(VMM_SECCOMP_NR_FILTERS, 1, &(struct sock_fprog){0}), -EINVAL);
}

/* What thaw installs (compiled when it was built, the pid written in at start) is what
 * the rules build for this process now: the generated programs are not stale, and the
 * pid lands where libseccomp would have put it. */
static void compiled_in_filters_are_what_the_rules_build(void **state)
{
	for (unsigned f = 0; f < VMM_SECCOMP_NR_FILTERS; f++) {
		struct sock_fprog built = {0}, shipped = {0};

		assert_int_equal(vmm_seccomp_rules_build(f, (uint32_t)getpid(), &built), 0);
		assert_int_equal(vmm_seccomp_program(f, &shipped), 0);
		assert_int_equal(built.len, shipped.len);
		assert_memory_equal(built.filter, shipped.filter,
				    built.len * sizeof(struct sock_filter));
		free(built.filter);
		free(shipped.filter);
	}
	/* the pid is in every filter that lets tgkill through, the seal has none */
	assert_true(vmm_seccomp_bpf[VMM_SECCOMP_VCPU].nr_pid_sites > 0);
	assert_int_equal(vmm_seccomp_bpf[VMM_SECCOMP_SEALED].nr_pid_sites, 0);
	assert_int_equal(vmm_seccomp_program(VMM_SECCOMP_NR_FILTERS, &(struct sock_fprog){0}),
			 -EINVAL);
}

/* Firecracker's seccomp.num_faults: a refused syscall still kills, and the handler first
 * writes the last metrics line counting it. */
static void refused_syscall_leaves_a_last_metrics_line(void **state)
{
	struct outcome o;

	run_child(MAIN, 1, do_ptrace_with_metrics, &o);
	assert_true(WIFSIGNALED(o.status));
	assert_int_equal(WTERMSIG(o.status), SIGSYS);
	if (!strstr(o.err, "\"seccomp\": {\"num_faults\": 1}"))
		fail_msg("no last line counting the fault in: %s", o.err);
	assert_non_null(strstr(o.err, "refused syscall"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_filter_builds_within_the_bpf_limit),
	    cmocka_unit_test(compiled_in_filters_are_what_the_rules_build),
	    cmocka_unit_test(main_filter_allows_the_main_threads_work),
	    cmocka_unit_test(vcpu_filter_allows_kvm_run_and_device_handlers),
	    cmocka_unit_test(uffd_filter_allows_fault_handling),
	    cmocka_unit_test(release_filter_allows_munmap_and_close),
	    cmocka_unit_test(without_prepare_install_is_a_no_op),
	    cmocka_unit_test(main_filter_refuses_what_thaw_never_does),
	    cmocka_unit_test(vcpu_filter_refuses_files_sockets_and_vm_ioctls),
	    cmocka_unit_test(uffd_filter_refuses_kvm_and_files),
	    cmocka_unit_test(release_filter_refuses_everything_else),
	    cmocka_unit_test(concurrent_refusals_are_reported),
	    cmocka_unit_test(vcpu_and_uffd_filters_refuse_making_or_changing_rings),
	    cmocka_unit_test(main_filter_allows_only_the_register_requests_thaw_makes),
	    cmocka_unit_test(sealed_main_thread_refuses_io_uring_setup_and_register),
	    cmocka_unit_test(blk_ring_refuses_openat_and_socket_from_a_vcpu_thread),
	    cmocka_unit_test(uffd_ring_refuses_openat_and_socket_from_the_uffd_thread),
	    cmocka_unit_test(refused_syscall_leaves_a_last_metrics_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
