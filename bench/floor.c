/*
 * floor: the kernel work a snapshot restore cannot avoid, timed.
 *
 * A restore has to open /dev/kvm, create a VM, map guest memory from the snapshot file
 * MAP_PRIVATE, register it as a memory slot, create the in-kernel irqchip and PIT,
 * create the vCPUs, set their CPUID and registers, and run the boot vCPU to its first
 * guest instruction. This program does exactly that and nothing else, so thaw's restore
 * latency can be stated as a ratio to it, measured in the same run on the same host.
 *
 * The guest is three instructions of real-mode code at 0x1000 (mov al,0x42; out 0x10,al;
 * hlt) written into a memory file of the requested size, so no snapshot is needed: the
 * `out` exit is "the first guest instruction ran".
 *
 * Two orders are measured (DESIGN/issue 4): "floor" registers the memory slot right after
 * KVM_CREATE_VM (cheap), "naive" registers it after the irqchip and PIT exist, which waits
 * for a kernel grace period. The VM is torn down after each run, outside the timing.
 *
 * The third, "prepared" (issue 21), is the floor of thaw's --prepare path: the VM, an
 * anonymous memory range registered as its slot, the irqchip, the PIT and the vCPUs (with
 * their kvm_run mappings) are built before the clock starts, as a prepared thaw builds
 * them before its request. The timed restore is then only: mmap the memory file
 * MAP_FIXED|MAP_PRIVATE over the registered range, set the saved state (CPUID, special
 * and general registers) and run the boot vCPU to its first instruction. Phases: mmap_us,
 * state_us, run_us.
 *
 * --no-pit leaves the PIT out (pit_us is then ~0), as thaw restores a guest that never
 * programmed its PIT (the probe; docs/vmm.md): the floor of that restore.
 *
 * usage: floor [--runs N] [--mem-mib M] [--vcpus N] [--order floor|naive|prepared] [--no-pit]
 *        floor --once [...]   (not with prepared) one run, then print "FLOOR first_instruction" on
 * stdout (for process-start-to-first-instruction by an outside clock) Output (one line per run):
 * "floor run=I total_us=.. open_us=.. vm_us=.. mmap_us=.. slot_us=.. irqchip_us=.. pit_us=..
 * vcpus_us=.. state_us=.. run_us=.." where each phase is the time since the previous one, in
 * microseconds with 0.1 µs resolution.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_VCPUS  16
#define MAX_CPUID  256
#define GUEST_CODE 0x1000
#define GUEST_PORT 0x10

enum phase { P_OPEN, P_VM, P_MMAP, P_SLOT, P_IRQCHIP, P_PIT, P_VCPUS, P_STATE, P_RUN, P_NR };
static const char *const phase_names[P_NR] = {"open", "vm",    "mmap",	"slot", "irqchip",
					      "pit",  "vcpus", "state", "run"};

struct cpuid_buf {
	struct kvm_cpuid2 hdr;
	struct kvm_cpuid_entry2 e[MAX_CPUID];
};

struct floor_cfg {
	uint64_t mem_bytes;
	unsigned vcpus;
	bool naive;
	bool prepared;
	bool no_pit; /* --no-pit: as thaw restores a guest that never programmed its PIT */
	int mem_fd;		 /* the "snapshot" memory file */
	struct cpuid_buf *cpuid; /* what a snapshot would carry, fetched once */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A memory file like a snapshot's memory section: the guest code in page 1. */
static int make_mem_file(uint64_t bytes)
{
	static const uint8_t code[] = {0xb0, 0x42, 0xe6, GUEST_PORT, 0xf4};
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR, 0600);

	if (fd < 0) {
		fprintf(stderr, "floor: open(%s, O_TMPFILE): %s\n", dir, strerror(errno));
		return -1;
	}
	if (ftruncate(fd, (off_t)bytes) ||
	    pwrite(fd, code, sizeof(code), GUEST_CODE) != (ssize_t)sizeof(code)) {
		fprintf(stderr, "floor: writing the memory file: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	/* Keep the code page cached as a snapshot's would be after the first restore. */
	return fd;
}

static int get_cpuid(struct cpuid_buf *c)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (kvm < 0) {
		fprintf(stderr, "floor: open /dev/kvm: %s\n", strerror(errno));
		return -1;
	}
	c->hdr.nent = MAX_CPUID;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		fprintf(stderr, "floor: KVM_GET_SUPPORTED_CPUID: %s\n", strerror(errno));
		close(kvm);
		return -1;
	}
	close(kvm);
	return 0;
}

#define CHECK(call, what)                                                                          \
	do {                                                                                       \
		if ((call) < 0) {                                                                  \
			fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));                 \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* One restore-shaped VM creation; fills t[] with phase end times. Returns 0 or -1. */
static int floor_once(const struct floor_cfg *cfg, uint64_t t[P_NR + 1])
{
	int kvm = -1, vm = -1, vcpu[MAX_VCPUS], ret = -1;
	struct kvm_run *run[MAX_VCPUS] = {0};
	long run_size = 0;
	void *mem = MAP_FAILED;
	struct kvm_userspace_memory_region region;
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	unsigned i;

	for (i = 0; i < MAX_VCPUS; i++)
		vcpu[i] = -1;
	t[0] = now_ns();
	CHECK(kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), "open /dev/kvm");
	t[1 + P_OPEN] = now_ns();
	CHECK(vm = ioctl(kvm, KVM_CREATE_VM, 0), "KVM_CREATE_VM");
	t[1 + P_VM] = now_ns();
	mem = mmap(NULL, cfg->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
		   cfg->mem_fd, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "floor: mmap guest memory: %s\n", strerror(errno));
		goto out;
	}
	t[1 + P_MMAP] = now_ns();
	region = (struct kvm_userspace_memory_region){
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = cfg->mem_bytes,
	    .userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	if (!cfg->naive) {
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
		t[1 + P_SLOT] = now_ns();
	}
	CHECK(ioctl(vm, KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
	t[1 + P_IRQCHIP] = now_ns();
	if (!cfg->no_pit)
		CHECK(ioctl(vm, KVM_CREATE_PIT2, &pit), "KVM_CREATE_PIT2");
	t[1 + P_PIT] = now_ns();
	if (cfg->naive) {
		CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
		t[1 + P_SLOT] = now_ns();
	}
	CHECK(run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
	for (i = 0; i < cfg->vcpus; i++) {
		CHECK(vcpu[i] = ioctl(vm, KVM_CREATE_VCPU, i), "KVM_CREATE_VCPU");
		run[i] =
		    mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu[i], 0);
		if (run[i] == MAP_FAILED) {
			run[i] = NULL;
			fprintf(stderr, "floor: mmap kvm_run: %s\n", strerror(errno));
			goto out;
		}
	}
	t[1 + P_VCPUS] = now_ns();
	for (i = 0; i < cfg->vcpus; i++) {
		struct kvm_sregs sregs;
		struct kvm_regs regs = {.rip = GUEST_CODE, .rflags = 0x2};

		CHECK(ioctl(vcpu[i], KVM_SET_CPUID2, cfg->cpuid), "KVM_SET_CPUID2");
		CHECK(ioctl(vcpu[i], KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
		sregs.cs.base = 0;
		sregs.cs.selector = 0;
		CHECK(ioctl(vcpu[i], KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
		CHECK(ioctl(vcpu[i], KVM_SET_REGS, &regs), "KVM_SET_REGS");
	}
	t[1 + P_STATE] = now_ns();
	CHECK(ioctl(vcpu[0], KVM_RUN, 0), "KVM_RUN");
	t[1 + P_RUN] = now_ns();
	if (run[0]->exit_reason != KVM_EXIT_IO || run[0]->io.port != GUEST_PORT) {
		fprintf(stderr, "floor: unexpected exit %u (port 0x%x)\n", run[0]->exit_reason,
			run[0]->exit_reason == KVM_EXIT_IO ? run[0]->io.port : 0);
		goto out;
	}
	ret = 0;
out:
	for (i = 0; i < MAX_VCPUS; i++) {
		if (run[i])
			munmap(run[i], (size_t)run_size);
		if (vcpu[i] >= 0)
			close(vcpu[i]);
	}
	if (vm >= 0)
		close(vm);
	if (mem != MAP_FAILED)
		munmap(mem, cfg->mem_bytes);
	if (kvm >= 0)
		close(kvm);
	return ret;
}

/* What a prepared VM holds before its restore request. */
struct prepared_vm {
	int kvm, vm, vcpu[MAX_VCPUS];
	struct kvm_run *run[MAX_VCPUS];
	long run_size;
	void *mem;
};

static void prepared_release(const struct floor_cfg *cfg, struct prepared_vm *p)
{
	for (unsigned i = 0; i < MAX_VCPUS; i++) {
		if (p->run[i])
			munmap(p->run[i], (size_t)p->run_size);
		if (p->vcpu[i] >= 0)
			close(p->vcpu[i]);
	}
	if (p->vm >= 0)
		close(p->vm);
	if (p->mem != MAP_FAILED)
		munmap(p->mem, cfg->mem_bytes);
	if (p->kvm >= 0)
		close(p->kvm);
}

/* Builds the VM as thaw --prepare does, outside the timing. Returns 0 or -1. */
static int prepared_build(const struct floor_cfg *cfg, struct prepared_vm *p)
{
	struct kvm_userspace_memory_region region;
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	int ret = -1;

	*p = (struct prepared_vm){.kvm = -1, .vm = -1, .mem = MAP_FAILED};
	for (unsigned i = 0; i < MAX_VCPUS; i++)
		p->vcpu[i] = -1;
	CHECK(p->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), "open /dev/kvm");
	CHECK(p->vm = ioctl(p->kvm, KVM_CREATE_VM, 0), "KVM_CREATE_VM");
	p->mem = mmap(NULL, cfg->mem_bytes, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->mem == MAP_FAILED) {
		fprintf(stderr, "floor: mmap the prepared range: %s\n", strerror(errno));
		goto out;
	}
	region = (struct kvm_userspace_memory_region){
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = cfg->mem_bytes,
	    .userspace_addr = (uint64_t)(uintptr_t)p->mem,
	};
	CHECK(ioctl(p->vm, KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
	CHECK(ioctl(p->vm, KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
	if (!cfg->no_pit)
		CHECK(ioctl(p->vm, KVM_CREATE_PIT2, &pit), "KVM_CREATE_PIT2");
	CHECK(p->run_size = ioctl(p->kvm, KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
	for (unsigned i = 0; i < cfg->vcpus; i++) {
		CHECK(p->vcpu[i] = ioctl(p->vm, KVM_CREATE_VCPU, i), "KVM_CREATE_VCPU");
		p->run[i] = mmap(NULL, (size_t)p->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
				 p->vcpu[i], 0);
		if (p->run[i] == MAP_FAILED) {
			p->run[i] = NULL;
			fprintf(stderr, "floor: mmap kvm_run: %s\n", strerror(errno));
			goto out;
		}
	}
	ret = 0;
out:
	return ret;
}

/* The restore into a prepared VM; t[0] start, then the mmap, state and run phases. */
static int prepared_once(const struct floor_cfg *cfg, uint64_t t[P_NR + 1])
{
	struct prepared_vm p;
	int ret = -1;
	void *mem;

	if (prepared_build(cfg, &p))
		goto out;
	t[0] = now_ns();
	mem = mmap(p.mem, cfg->mem_bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_NORESERVE | MAP_FIXED, cfg->mem_fd, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "floor: mmap MAP_FIXED over the slot: %s\n", strerror(errno));
		goto out;
	}
	t[1 + P_MMAP] = now_ns();
	for (unsigned i = 0; i < cfg->vcpus; i++) {
		struct kvm_sregs sregs;
		struct kvm_regs regs = {.rip = GUEST_CODE, .rflags = 0x2};

		CHECK(ioctl(p.vcpu[i], KVM_SET_CPUID2, cfg->cpuid), "KVM_SET_CPUID2");
		CHECK(ioctl(p.vcpu[i], KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
		sregs.cs.base = 0;
		sregs.cs.selector = 0;
		CHECK(ioctl(p.vcpu[i], KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
		CHECK(ioctl(p.vcpu[i], KVM_SET_REGS, &regs), "KVM_SET_REGS");
	}
	t[1 + P_STATE] = now_ns();
	CHECK(ioctl(p.vcpu[0], KVM_RUN, 0), "KVM_RUN");
	t[1 + P_RUN] = now_ns();
	if (p.run[0]->exit_reason != KVM_EXIT_IO || p.run[0]->io.port != GUEST_PORT) {
		fprintf(stderr, "floor: unexpected exit %u (port 0x%x)\n", p.run[0]->exit_reason,
			p.run[0]->exit_reason == KVM_EXIT_IO ? p.run[0]->io.port : 0);
		goto out;
	}
	ret = 0;
out:
	prepared_release(cfg, &p);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: floor [--runs N] [--mem-mib M] [--vcpus N] "
		   "[--order floor|naive|prepared] "
		   "[--no-pit] [--once]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"runs", required_argument, NULL, 'r'},
	    {"mem-mib", required_argument, NULL, 'm'},
	    {"vcpus", required_argument, NULL, 'c'},
	    {"order", required_argument, NULL, 'o'},
	    {"once", no_argument, NULL, '1'},
	    {"no-pit", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct floor_cfg cfg = {.mem_bytes = 128ull << 20, .vcpus = 1};
	unsigned long runs = 30, mib = 128;
	int rc = 0;
	bool once = false;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			runs = strtoul(optarg, NULL, 10);
			break;
		case 'm':
			mib = strtoul(optarg, NULL, 10);
			break;
		case 'c':
			cfg.vcpus = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			cfg.no_pit = true;
			break;
		case 'o':
			cfg.naive = strcmp(optarg, "naive") == 0;
			cfg.prepared = strcmp(optarg, "prepared") == 0;
			if (!cfg.naive && !cfg.prepared && strcmp(optarg, "floor") != 0) {
				usage(stderr);
				return 1;
			}
			break;
		case '1':
			once = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if ((once && cfg.prepared) || runs < 1 || runs > 100000 || mib < 1 || mib > (1ul << 20) ||
	    cfg.vcpus < 1 || cfg.vcpus > MAX_VCPUS) {
		usage(stderr);
		return 1;
	}
	cfg.mem_bytes = (uint64_t)mib << 20;
	cfg.cpuid = calloc(1, sizeof(*cfg.cpuid));
	if (!cfg.cpuid)
		return 2;
	cfg.mem_fd = make_mem_file(cfg.mem_bytes);
	if (cfg.mem_fd < 0 || get_cpuid(cfg.cpuid)) {
		rc = 2;
		goto out;
	}
	if (once) {
		uint64_t t[P_NR + 1];

		/* Everything inside the measured process: no warm-up, as a fresh restore. */
		if (floor_once(&cfg, t)) {
			rc = 2;
			goto out;
		}
		printf("FLOOR first_instruction\n");
		fflush(stdout);
		goto out;
	}
	for (unsigned long r = 0; r < runs; r++) {
		uint64_t t[P_NR + 1] = {0};
		uint64_t prev;

		if (cfg.prepared ? prepared_once(&cfg, t) : floor_once(&cfg, t)) {
			rc = 2;
			goto out;
		}
		printf("floor run=%lu order=%s vcpus=%u mem_mib=%lu total_us=%.1f", r,
		       cfg.prepared ? "prepared"
		       : cfg.naive  ? "naive"
				    : "floor",
		       cfg.vcpus, mib, (t[1 + P_RUN] - t[0]) / 1e3);
		prev = t[0];
		if (cfg.prepared) {
			printf(" mmap_us=%.1f state_us=%.1f run_us=%.1f\n",
			       (t[1 + P_MMAP] - t[0]) / 1e3, (t[1 + P_STATE] - t[1 + P_MMAP]) / 1e3,
			       (t[1 + P_RUN] - t[1 + P_STATE]) / 1e3);
			fflush(stdout);
			continue;
		}
		for (int p = 0; p < P_NR; p++) {
			/* The slot comes after the PIT in the naive order. */
			int q = p;

			if (cfg.naive && p >= P_SLOT && p <= P_PIT)
				q = p == P_PIT ? P_SLOT : p + 1;
			printf(" %s_us=%.1f", phase_names[q], (t[1 + q] - prev) / 1e3);
			prev = t[1 + q];
		}
		printf("\n");
		fflush(stdout);
	}
out:
	if (cfg.mem_fd >= 0)
		close(cfg.mem_fd);
	free(cfg.cpuid);
	return rc;
}
