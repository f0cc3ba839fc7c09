// SPDX-License-Identifier: MIT
/*
 * kvmhost self-test: proves that the runner (tests/kvmhost/run.sh) offers a working KVM
 * and the other kernel interfaces thaw needs. Each check prints one line,
 * "PASS <name>: <detail>" or "FAIL <name>: <why>"; the exit status is the number of
 * failed checks (0 = all passed).
 *
 *   selftest            run every check
 *   selftest <check>    run one: kvm-io-hlt kvm-2vcpu kvm-loop-rate uffd tun
 *
 * The guest code is a few real-mode instructions at guest-physical 0x1000 in a 2 MiB
 * memory slot; see the byte listings below.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE    (2u << 20)
#define CODE_GPA    0x1000u
#define SERIAL_PORT 0x3f8

/* mov $0x3f8,%dx; mov $'A',%al; out %al,(%dx); hlt */
static const uint8_t code_out_hlt[] = {0xba, 0xf8, 0x03, 0xb0, 'A', 0xee, 0xf4};

/*
 * mov $N,%ecx; 1: dec %ecx; jnz 1b; mov $0x3f8,%dx; mov $'B',%al; out %al,(%dx); hlt
 * (16-bit code: the 0x66 prefixes select the 32-bit register). N is patched in at 2.
 */
static const uint8_t code_loop[] = {0x66, 0xb9, 0,    0,    0,	  0,   0x66, 0x49, 0x75,
				    0xfc, 0xba, 0xf8, 0x03, 0xb0, 'B', 0xee, 0xf4};

struct vm {
	int kvm;
	int fd;
	uint8_t *mem;
	int run_size;
};

struct vcpu {
	int fd;
	struct kvm_run *run;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *check, const char *what)
{
	printf("FAIL %s: %s: %s\n", check, what, strerror(errno));
	return -1;
}

static void vm_close(struct vm *vm)
{
	if (vm->mem && vm->mem != MAP_FAILED)
		munmap(vm->mem, MEM_SIZE);
	if (vm->fd >= 0)
		close(vm->fd);
	if (vm->kvm >= 0)
		close(vm->kvm);
}

static int vm_open(struct vm *vm, const char *check)
{
	struct kvm_userspace_memory_region region;
	int version;

	vm->fd = -1;
	vm->mem = NULL;
	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		return fail(check, "open /dev/kvm");
	version = ioctl(vm->kvm, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		printf("FAIL %s: KVM_GET_API_VERSION %d, want %d\n", check, version,
		       KVM_API_VERSION);
		return -1;
	}
	vm->run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size < (int)sizeof(struct kvm_run))
		return fail(check, "KVM_GET_VCPU_MMAP_SIZE");
	vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return fail(check, "KVM_CREATE_VM");
	vm->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		return fail(check, "mmap guest memory");
	region = (struct kvm_userspace_memory_region){
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = MEM_SIZE,
	    .userspace_addr = (uintptr_t)vm->mem,
	};
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail(check, "KVM_SET_USER_MEMORY_REGION");
	return 0;
}

/* A vCPU in real mode with CS base 0 starting at @rip. */
static int vcpu_open(struct vm *vm, struct vcpu *vcpu, int id, uint64_t rip, const char *check)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	vcpu->run = MAP_FAILED;
	vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (vcpu->fd < 0)
		return fail(check, "KVM_CREATE_VCPU");
	vcpu->run =
	    mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED)
		return fail(check, "mmap kvm_run");
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return fail(check, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return fail(check, "KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rflags = 0x2;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return fail(check, "KVM_SET_REGS");
	return 0;
}

static void vcpu_close(struct vm *vm, struct vcpu *vcpu)
{
	if (vcpu->run != MAP_FAILED)
		munmap(vcpu->run, (size_t)vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
}

/* Runs until the next exit; 0 when it is an 8-bit OUT of @byte to the serial port. */
static int expect_out(struct vcpu *vcpu, uint8_t byte, const char *check)
{
	struct kvm_run *run = vcpu->run;
	uint8_t got;

	if (ioctl(vcpu->fd, KVM_RUN, 0) < 0)
		return fail(check, "KVM_RUN");
	if (run->exit_reason != KVM_EXIT_IO) {
		printf("FAIL %s: exit reason %u, want KVM_EXIT_IO\n", check, run->exit_reason);
		return -1;
	}
	got = *((uint8_t *)run + run->io.data_offset);
	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != SERIAL_PORT ||
	    run->io.size != 1 || run->io.count != 1 || got != byte) {
		printf("FAIL %s: io dir %u port %#x size %u count %u byte %#x, want out %#x '%c'\n",
		       check, run->io.direction, run->io.port, run->io.size, run->io.count, got,
		       SERIAL_PORT, byte);
		return -1;
	}
	return 0;
}

static int expect_hlt(struct vcpu *vcpu, const char *check)
{
	if (ioctl(vcpu->fd, KVM_RUN, 0) < 0)
		return fail(check, "KVM_RUN");
	if (vcpu->run->exit_reason != KVM_EXIT_HLT) {
		printf("FAIL %s: exit reason %u, want KVM_EXIT_HLT\n", check,
		       vcpu->run->exit_reason);
		return -1;
	}
	return 0;
}

static int check_io_hlt(void)
{
	static const char check[] = "kvm-io-hlt";
	struct vcpu vcpu = {.fd = -1, .run = MAP_FAILED};
	struct vm vm;
	int ret = -1;

	if (vm_open(&vm, check) < 0)
		goto out;
	memcpy(vm.mem + CODE_GPA, code_out_hlt, sizeof(code_out_hlt));
	if (vcpu_open(&vm, &vcpu, 0, CODE_GPA, check) < 0)
		goto out;
	if (expect_out(&vcpu, 'A', check) < 0 || expect_hlt(&vcpu, check) < 0)
		goto out;
	printf("PASS %s: KVM_EXIT_IO out 'A' to %#x, then KVM_EXIT_HLT\n", check, SERIAL_PORT);
	ret = 0;
out:
	vcpu_close(&vm, &vcpu);
	vm_close(&vm);
	return ret;
}

struct loop_job {
	struct vcpu vcpu;
	const char *check;
	double start, end;
	int ret;
};

static void *loop_thread(void *arg)
{
	struct loop_job *job = arg;

	job->start = now();
	job->ret = expect_out(&job->vcpu, 'B', job->check);
	job->end = now();
	if (job->ret == 0)
		job->ret = expect_hlt(&job->vcpu, job->check);
	return NULL;
}

/*
 * Runs @nr vCPUs at once, each counting down @iters in its own copy of code_loop, and
 * stores each vCPU's KVM_RUN interval in @jobs. Returns 0 when all exit as expected.
 */
static int run_loops(struct vm *vm, struct loop_job *jobs, int nr, uint32_t iters,
		     const char *check)
{
	pthread_t threads[2];
	int i, started = 0, ret = 0;

	for (i = 0; i < nr; i++) {
		uint64_t gpa = CODE_GPA + (uint64_t)i * 0x1000;

		memcpy(vm->mem + gpa, code_loop, sizeof(code_loop));
		memcpy(vm->mem + gpa + 2, &iters, sizeof(iters));
		jobs[i].check = check;
		if (vcpu_open(vm, &jobs[i].vcpu, i, gpa, check) < 0)
			return -1;
	}
	for (i = 0; i < nr; i++) {
		errno = pthread_create(&threads[i], NULL, loop_thread, &jobs[i]);
		if (errno) {
			ret = fail(check, "pthread_create");
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		if (jobs[i].ret < 0)
			ret = -1;
	}
	return ret;
}

/* One vCPU counting down @iters; returns the seconds KVM_RUN took, or < 0. */
static double loop_seconds(uint32_t iters, const char *check)
{
	struct loop_job job = {.vcpu = {.fd = -1, .run = MAP_FAILED}};
	double secs = -1;
	struct vm vm;

	if (vm_open(&vm, check) == 0 && run_loops(&vm, &job, 1, iters, check) == 0)
		secs = job.end - job.start;
	vcpu_close(&vm, &job.vcpu);
	vm_close(&vm);
	return secs;
}

/* Picks a loop count that takes about @target seconds on one vCPU. */
static uint32_t calibrate(double target, const char *check, double *rate)
{
	uint32_t iters = 1u << 20;
	double secs;

	for (;;) {
		secs = loop_seconds(iters, check);
		if (secs < 0)
			return 0;
		if (secs >= target / 4 || iters >= (1u << 30))
			break;
		iters *= 4;
	}
	*rate = iters / secs;
	secs = target * *rate;
	return secs > 4e9 ? 4000000000u : (uint32_t)secs;
}

static int check_loop_rate(void)
{
	static const char check[] = "kvm-loop-rate";
	double rate, secs;
	uint32_t iters;

	iters = calibrate(1.0, check, &rate);
	if (!iters)
		return -1;
	secs = loop_seconds(iters, check);
	if (secs < 0)
		return -1;
	printf("PASS %s: %.1f M iterations/s of dec+jnz on one vCPU (%u in %.3f s)\n", check,
	       iters / secs / 1e6, iters, secs);
	return 0;
}

static int check_two_vcpus(void)
{
	static const char check[] = "kvm-2vcpu";
	struct loop_job jobs[2] = {
	    {.vcpu = {.fd = -1, .run = MAP_FAILED}},
	    {.vcpu = {.fd = -1, .run = MAP_FAILED}},
	};
	double rate, single, wall, overlap;
	struct vm vm;
	uint32_t iters;
	int ret = -1, i;

	iters = calibrate(0.5, check, &rate);
	if (!iters)
		return -1;
	single = iters / rate;
	if (vm_open(&vm, check) < 0)
		goto out;
	if (run_loops(&vm, jobs, 2, iters, check) < 0)
		goto out;
	wall = (jobs[0].end > jobs[1].end ? jobs[0].end : jobs[1].end) -
	       (jobs[0].start < jobs[1].start ? jobs[0].start : jobs[1].start);
	overlap = (jobs[0].end < jobs[1].end ? jobs[0].end : jobs[1].end) -
		  (jobs[0].start > jobs[1].start ? jobs[0].start : jobs[1].start);
	if (overlap <= 0) {
		printf("FAIL %s: the two vCPUs never ran at the same time\n", check);
		goto out;
	}
	/* Speedup over running both loops one after the other (2 x single). */
	printf("PASS %s: both vCPUs ran 'B' loops concurrently (overlap %.0f%% of %.3f s), "
	       "speedup %.2fx over serial\n",
	       check, 100 * overlap / wall, wall, 2 * single / wall);
	ret = 0;
out:
	for (i = 0; i < 2; i++)
		vcpu_close(&vm, &jobs[i].vcpu);
	vm_close(&vm);
	return ret;
}

struct uffd_job {
	int uffd;
	uint8_t *page;
	long page_size;
	int ret;
};

/* Serves one missing-page fault on job->page with a page full of 0x5a. */
static void *uffd_server(void *arg)
{
	struct uffd_job *job = arg;
	struct pollfd pfd = {.fd = job->uffd, .events = POLLIN};
	struct uffd_msg msg;
	struct uffdio_copy copy;
	uint8_t *src;

	job->ret = -1;
	if (poll(&pfd, 1, 10000) != 1 || read(job->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		return NULL;
	src = mmap(NULL, (size_t)job->page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		return NULL;
	memset(src, 0x5a, (size_t)job->page_size);
	copy = (struct uffdio_copy){
	    .dst = msg.arg.pagefault.address & ~(uint64_t)(job->page_size - 1),
	    .src = (uintptr_t)src,
	    .len = (uint64_t)job->page_size,
	};
	if (ioctl(job->uffd, UFFDIO_COPY, &copy) == 0)
		job->ret = 0;
	munmap(src, (size_t)job->page_size);
	return NULL;
}

static int check_uffd(void)
{
	static const char check[] = "uffd";
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg;
	struct uffd_job job = {.uffd = -1, .page = MAP_FAILED};
	const char *via = "userfaultfd(2)";
	pthread_t server;
	int ret = -1, devfd;
	uint8_t got;

	job.page_size = sysconf(_SC_PAGESIZE);
	job.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	devfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (devfd >= 0) {
		/* Prefer the device: it is what a jailed, unprivileged thaw would use. */
		int fd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);

		close(devfd);
		if (fd >= 0) {
			if (job.uffd >= 0)
				close(job.uffd);
			job.uffd = fd;
			via = "/dev/userfaultfd";
		}
	}
	if (job.uffd < 0)
		return fail(check, "userfaultfd");
	if (ioctl(job.uffd, UFFDIO_API, &api) < 0) {
		fail(check, "UFFDIO_API");
		goto out;
	}
	job.page = mmap(NULL, (size_t)job.page_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (job.page == MAP_FAILED) {
		fail(check, "mmap");
		goto out;
	}
	reg = (struct uffdio_register){
	    .range = {.start = (uintptr_t)job.page, .len = (uint64_t)job.page_size},
	    .mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(job.uffd, UFFDIO_REGISTER, &reg) < 0) {
		fail(check, "UFFDIO_REGISTER");
		goto out;
	}
	errno = pthread_create(&server, NULL, uffd_server, &job);
	if (errno) {
		fail(check, "pthread_create");
		goto out;
	}
	got = *(volatile uint8_t *)(job.page + 123);
	pthread_join(server, NULL);
	if (job.ret < 0 || got != 0x5a) {
		printf("FAIL %s: fault not served (byte %#x)\n", check, got);
		goto out;
	}
	printf("PASS %s: missing-page fault served with UFFDIO_COPY (fd from %s)\n", check, via);
	ret = 0;
out:
	if (job.page != MAP_FAILED)
		munmap(job.page, (size_t)job.page_size);
	close(job.uffd);
	return ret;
}

static int check_tun(void)
{
	static const char check[] = "tun";
	struct ifreq ifr;
	int fd;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail(check, "open /dev/net/tun");
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "kvmhost%%d");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fail(check, "TUNSETIFF");
		close(fd);
		return -1;
	}
	printf("PASS %s: created tap device %s\n", check, ifr.ifr_name);
	close(fd);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(void);
} checks[] = {
    {"kvm-io-hlt", check_io_hlt},
    {"kvm-2vcpu", check_two_vcpus},
    {"kvm-loop-rate", check_loop_rate},
    {"uffd", check_uffd},
    {"tun", check_tun},
};

int main(int argc, char **argv)
{
	size_t i;
	int failed = 0, ran = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A wedged KVM_RUN must not hang the caller: SIGALRM's default action ends us. */
	alarm(120);
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		if (argc > 1 && strcmp(argv[1], checks[i].name))
			continue;
		ran++;
		if (checks[i].fn() < 0)
			failed++;
	}
	if (!ran) {
		fprintf(stderr, "selftest: unknown check '%s'\n", argv[1]);
		return 2;
	}
	return failed;
}
