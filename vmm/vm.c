/* The VM: KVM bring-up, vCPU threads and their exit dispatch, legacy devices. */
#include "vmm/vmm.h"
#include "vmm/snapshot_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <unistd.h>

#include "common/pages.h"
#include "uffd/uffd.h" /* struct uffd_vcpu_sample */

/* Addresses Intel VMX needs for real-mode emulation; placed in the MMIO hole's top
 * where no RAM or device lives. */
#define KVM_TSS_ADDR	  0xfffbd000ul
#define KVM_IDENTITY_ADDR 0xfffbc000ul

/* The signal used to kick a vCPU thread out of KVM_RUN; its handler does nothing. */
#define SIG_VCPU_KICK (SIGRTMIN + 0)

static int kvm_ioctl_err(const char *what)
{
	int e = errno;

	log_err("%s: %s", what, strerror(e));
	return -e;
}

int vm_open_kvm(struct vm *vm)
{
	static const struct {
		int cap;
		const char *name;
	} need[] = {
	    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
	};
	int ret, fd;

	if (vm->kvm_fd >= 0)
		return 0;
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("open /dev/kvm: %s", strerror(-ret));
		return ret;
	}
	ret = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (ret != KVM_API_VERSION) {
		log_err("KVM API version %d, thaw needs %d", ret, KVM_API_VERSION);
		close(fd);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			log_err("this KVM lacks %s, which thaw needs", need[i].name);
			close(fd);
			return -ENOTSUP;
		}
	}
	vm->kvm_fd = fd;
	return 0;
}

int vm_create(struct vm *vm, unsigned nr_vcpus)
{
	int ret, max_vcpus;

	/* Only the VM's own half is reset: the process half (vm_init, and what
	 * vm_open_kvm and vm_get_supported_cpuid learn of the host) outlives VMs that
	 * are built and discarded, e.g. a prepared VM a snapshot did not fit. */
	vm->vm_fd = -1;
	/* The slots the last VM used: the others were never written, and clearing all
	 * VMM_MAX_VCPUS would dirty 13 KiB of every clone. */
	memset(vm->vcpus, 0, vm->nr_vcpus * sizeof(vm->vcpus[0]));
	vm->nr_vcpus = 0;
	memset(&vm->mem, 0, sizeof(vm->mem));
	memset(&vm->pio, 0, sizeof(vm->pio));
	memset(&vm->mmio, 0, sizeof(vm->mmio));
	vm->prepared = vm->paused = vm->pause_requested = false;
	vm->pit_on_demand = vm->pit_deferred = false;
	vm->nr_paused = vm->nr_started = 0;

	ret = vm_open_kvm(vm);
	if (ret)
		return ret;
	max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_vcpus > VMM_MAX_VCPUS)
		max_vcpus = VMM_MAX_VCPUS;
	if (nr_vcpus == 0 || (int)nr_vcpus > max_vcpus) {
		log_err("%u vCPUs asked for; this host allows 1 to %d", nr_vcpus, max_vcpus);
		return -EINVAL;
	}
	vm->nr_vcpus = nr_vcpus;
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size < (int)sizeof(struct kvm_run))
		return kvm_ioctl_err("KVM_GET_VCPU_MMAP_SIZE");

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return kvm_ioctl_err("KVM_CREATE_VM");
	return 0;
}

int vm_init(struct vm *vm)
{
	/* No memset: `vm` comes zeroed (its contract), and writing all 22 KiB of it (32
	 * vCPU slots) would keep every page dirty in each clone. */
	vm->kvm_fd = vm->vm_fd = vm->exit_fd = vm->trigger_fd = vm->signal_fd = -1;
	vm->console_out_fd = STDOUT_FILENO;
	vm->console_out_max = VMM_CONSOLE_OUT_MAX_DEFAULT;
	vm->uffd_stall_ms = VMM_UFFD_STALL_DEFAULT_MS;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->run_lock, NULL);
	pthread_mutex_init(&vm->pit_lock, NULL);
	pthread_cond_init(&vm->run_cond, NULL);
	vm->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->trigger_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_fd < 0 || vm->trigger_fd < 0)
		return kvm_ioctl_err("eventfd");
	if (vm_restore_plan_alloc(vm)) {
		log_err("out of memory for the restore buffers");
		return -ENOMEM;
	}
	return vmm_loop_init(&vm->loop);
}

int vm_register_memory(struct vm *vm)
{
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		const struct vmm_mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
		    .slot = i,
		    .guest_phys_addr = r->gpa,
		    .memory_size = r->size,
		    .userspace_addr = (uint64_t)(uintptr_t)(vm->mem.host + r->offset),
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return kvm_ioctl_err("KVM_SET_USER_MEMORY_REGION");
	}
	return 0;
}

int vm_create_irqchip(struct vm *vm)
{
	uint64_t identity = KVM_IDENTITY_ADDR;

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		return kvm_ioctl_err("KVM_SET_TSS_ADDR");
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return kvm_ioctl_err("KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return kvm_ioctl_err("KVM_CREATE_IRQCHIP");
	return 0;
}

int vm_create_pit(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return kvm_ioctl_err("KVM_CREATE_PIT2");
	return 0;
}

bool vm_pit_unused(const struct kvm_pit_state2 *s)
{
	return s->channels[0].mode == 0xff;
}

void vm_pit_defer(struct vm *vm, const struct kvm_pit_state2 *s)
{
	vm->pit_saved = *s;
	vm->pit_on_demand = vm->pit_deferred = true;
}

/* Makes the deferred PIT with its saved state, once, whichever vCPU asks first. */
static int vm_pit_make(struct vm *vm)
{
	int ret = 0;

	pthread_mutex_lock(&vm->pit_lock);
	if (vm->pit_deferred) {
		ret = vm_create_pit(vm);
		if (!ret && ioctl(vm->vm_fd, KVM_SET_PIT2, &vm->pit_saved) < 0)
			ret = kvm_ioctl_err("KVM_SET_PIT2");
		if (!ret)
			__atomic_store_n(&vm->pit_deferred, false, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vm->pit_lock);
	return ret;
}

int vm_get_supported_cpuid(struct vm *vm)
{
	if (vm->supported_cpuid)
		return 0;
	for (unsigned n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			size_t size = sizeof(*c) + c->nent * sizeof(c->entries[0]);

			vm->supported_cpuid = c;
			if (!vmm_host_is_pvm())
				return 0;
			vm->usable_cpuid = malloc(size);
			if (!vm->usable_cpuid)
				return -ENOMEM;
			memcpy(vm->usable_cpuid, c, size);
			vmm_cpuid_add_host_features(vm->usable_cpuid->entries,
						    vm->usable_cpuid->nent);
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return kvm_ioctl_err("KVM_GET_SUPPORTED_CPUID");
	}
	return -E2BIG;
}

/* LINT0 takes the 8259's interrupts (ExtINT), LINT1 NMIs: what firmware would set. */
static int setup_lapic(struct vcpu *v)
{
	struct kvm_lapic_state la;
	uint32_t lint0 = 0x700, lint1 = 0x400;

	if (ioctl(v->fd, KVM_GET_LAPIC, &la) < 0)
		return kvm_ioctl_err("KVM_GET_LAPIC");
	memcpy(&la.regs[0x350], &lint0, 4);
	memcpy(&la.regs[0x360], &lint1, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &la) < 0)
		return kvm_ioctl_err("KVM_SET_LAPIC");
	return 0;
}

int vm_create_vcpu_fds(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		v->vm = vm;
		v->index = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0)
			return kvm_ioctl_err("KVM_CREATE_VCPU");
		v->run = mmap(NULL, (size_t)vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			      v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			return kvm_ioctl_err("mmap kvm_run");
		}
	}
	return 0;
}

/* A template hides features by leaving them out of the CPUID thaw sets. Some PVM hosts
 * replace that CPUID with the host CPU's own (KVM_GET_CPUID2 shows it), so the guest
 * sees what the template hid: say so once, naming what a guest kernel must then leave
 * alone itself. Reads vCPU 0's CPUID back (c has room for csize bytes). */
static void warn_if_template_ignored(struct vm *vm, struct kvm_cpuid2 *c, size_t csize)
{
	const struct vmm_cpu_template *t = vm->tmpl;
	uint32_t back_1_ecx = 0, back_7_ebx = 0;

	if (!t || (!t->clear_1_ecx && !t->clear_7_ebx))
		return;
	c->nent = (uint32_t)((csize - sizeof(*c)) / sizeof(c->entries[0]));
	if (ioctl(vm->vcpus[0].fd, KVM_GET_CPUID2, c) < 0)
		return;
	for (unsigned i = 0; i < c->nent; i++) {
		if (c->entries[i].function == 1)
			back_1_ecx = c->entries[i].ecx & t->clear_1_ecx;
		if (c->entries[i].function == 7 && c->entries[i].index == 0)
			back_7_ebx = c->entries[i].ebx & t->clear_7_ebx;
	}
	if (back_1_ecx || back_7_ebx)
		log_warn("KVM replaces the CPUID thaw sets: the guest sees features the '%s' "
			 "template hides (leaf 1 ECX %#x, leaf 7 EBX %#x), so its kernel must "
			 "leave them alone itself (docs/vmm.md, PVM)",
			 t->name, back_1_ecx, back_7_ebx);
}

/* A custom template's CPUID must be what the guest sees: a KVM that replaces the CPUID a
 * VMM sets (PVM) cannot honour it, and booting anyway would give the fleet's snapshots
 * a CPU they do not describe. -EOPNOTSUPP, naming the first register that differs. */
static int check_config_kept(struct vm *vm, struct kvm_cpuid2 *c, size_t csize)
{
	static const char *const regs[] = {"eax", "ebx", "ecx", "edx"};
	const struct vmm_cpu_config *cc = vm->cpu_config;

	c->nent = (uint32_t)((csize - sizeof(*c)) / sizeof(c->entries[0]));
	if (ioctl(vm->vcpus[0].fd, KVM_GET_CPUID2, c) < 0)
		return kvm_ioctl_err("KVM_GET_CPUID2");
	for (unsigned m = 0; m < cc->nr_cpuid; m++) {
		const struct vmm_cpuid_mod *mod = &cc->cpuid[m];

		for (unsigned i = 0; i < c->nent; i++) {
			const struct kvm_cpuid_entry2 *e = &c->entries[i];
			uint32_t r[] = {e->eax, e->ebx, e->ecx, e->edx}, got = r[mod->reg & 3];

			if (e->function != mod->leaf ||
			    (mod->subleaf_significant && e->index != mod->subleaf))
				continue;
			if ((got & ~mod->keep) != mod->set) {
				log_err(
				    "cpu-config: this host's KVM does not keep the CPUID a VMM "
				    "sets (leaf %#x subleaf %#x %s reads %#x, the template sets "
				    "%#x under mask %#x)%s",
				    mod->leaf, mod->subleaf, regs[mod->reg & 3], got, mod->set,
				    ~mod->keep, vmm_host_is_pvm() ? ": PVM replaces it" : "");
				return -EOPNOTSUPP;
			}
		}
	}
	return 0;
}

/* A custom template's MSRs on every vCPU: each read, changed where the template says,
 * written back; an MSR KVM refuses is named. */
static int apply_msr_config(struct vm *vm)
{
	const struct vmm_cpu_config *cc = vm->cpu_config;
	union {
		struct kvm_msrs h;
		uint8_t
		    raw[sizeof(struct kvm_msrs) + VMM_MSR_MODS_MAX * sizeof(struct kvm_msr_entry)];
	} m;

	for (unsigned v = 0; v < vm->nr_vcpus && cc->nr_msr; v++) {
		int got;

		memset(&m, 0, sizeof(m));
		m.h.nmsrs = cc->nr_msr;
		for (unsigned i = 0; i < cc->nr_msr; i++)
			m.h.entries[i].index = cc->msr[i].addr;
		got = ioctl(vm->vcpus[v].fd, KVM_GET_MSRS, &m);
		if (got >= 0 && (unsigned)got < cc->nr_msr) {
			log_err("cpu-config: MSR %#x is not one this host's KVM lets a guest have",
				cc->msr[got].addr);
			return -EOPNOTSUPP;
		}
		if (got < 0)
			return kvm_ioctl_err("KVM_GET_MSRS");
		for (unsigned i = 0; i < cc->nr_msr; i++)
			m.h.entries[i].data =
			    (m.h.entries[i].data & cc->msr[i].keep) | cc->msr[i].set;
		got = ioctl(vm->vcpus[v].fd, KVM_SET_MSRS, &m);
		if (got >= 0 && (unsigned)got < cc->nr_msr) {
			log_err("cpu-config: KVM refused the value %#llx for MSR %#x",
				(unsigned long long)m.h.entries[got].data, cc->msr[got].addr);
			return -EOPNOTSUPP;
		}
		if (got < 0)
			return kvm_ioctl_err("KVM_SET_MSRS");
	}
	return 0;
}

int vm_create_vcpus(struct vm *vm)
{
	struct kvm_cpuid2 *c = NULL;
	size_t csize;
	int ret;

	ret = vm_get_supported_cpuid(vm);
	if (!ret)
		ret = vm_create_vcpu_fds(vm);
	if (ret)
		return ret;
	csize = sizeof(*c) + vm->supported_cpuid->nent * sizeof(c->entries[0]);
	c = malloc(csize);
	if (!c)
		return -ENOMEM;

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		memcpy(c, vm->supported_cpuid, csize);
		c->nent = vmm_cpuid_apply(c->entries, c->nent, vm->tmpl, i, vm->nr_vcpus);
		if (vm->cpu_config) {
			char err[200];

			ret = vmm_cpuid_apply_config(c->entries, c->nent, vm->cpu_config, err,
						     sizeof(err));
			if (ret) {
				log_err("%s", err);
				goto out;
			}
		}
		if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
			ret = kvm_ioctl_err("KVM_SET_CPUID2");
			goto out;
		}
		ret = setup_lapic(v);
		if (ret)
			goto out;
	}
	warn_if_template_ignored(vm, c, csize);
	ret = vm->cpu_config ? check_config_kept(vm, c, csize) : 0;
	if (!ret && vm->cpu_config)
		ret = apply_msr_config(vm);
out:
	free(c);
	return ret;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	*s = (struct kvm_segment){
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = sel,
	    .type = type,
	    .present = 1,
	    .dpl = 0,
	    .db = code64 ? 0 : 1,
	    .s = 1,
	    .l = code64 ? 1 : 0,
	    .g = 1,
	};
}

int vm_setup_boot_regs(struct vm *vm, enum vmm_boot_protocol proto, uint64_t entry)
{
	struct vcpu *bsp = &vm->vcpus[0];
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rflags = 2, .rip = entry};
	bool lm = proto == VMM_BOOT_LINUX64;

	if (ioctl(bsp->fd, KVM_GET_SREGS, &sregs) < 0)
		return kvm_ioctl_err("KVM_GET_SREGS");
	set_seg(&sregs.cs, lm ? 0x10 : 0x08, 0xb, lm);
	set_seg(&sregs.ds, 0x18, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){.selector = 0x20, .limit = 0x67, .type = 0xb, .present = 1};
	sregs.ldt = (struct kvm_segment){.limit = 0xffff, .type = 0x2, .present = 1};
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x11; /* PE, ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (lm) {
		sregs.cr0 |= 0x80000000; /* PG */
		sregs.cr3 = BOOT_PML4_ADDR;
		sregs.cr4 = 0x20;   /* PAE */
		sregs.efer = 0x500; /* LME, LMA */
		regs.rsi = BOOT_ZERO_PAGE;
	} else {
		regs.rbx = BOOT_START_INFO;
	}
	if (ioctl(bsp->fd, KVM_SET_SREGS, &sregs) < 0)
		return kvm_ioctl_err("KVM_SET_SREGS");
	if (ioctl(bsp->fd, KVM_SET_REGS, &regs) < 0)
		return kvm_ioctl_err("KVM_SET_REGS");
	return 0;
}

/* ---------------------------------------------------------------- legacy devices */

/* Watches console lines for the --snapshot-after string; the main thread takes the
 * snapshot (a vCPU thread cannot pause the VM it runs in). */
static void watch_line(struct vm *vm, uint8_t byte)
{
	uint64_t one = 1;

	if (byte != '\n') {
		if (vm->line_len < sizeof(vm->line) - 1)
			vm->line[vm->line_len++] = (char)byte;
		return;
	}
	vm->line[vm->line_len] = 0;
	vm->line_len = 0;
	if (strstr(vm->line, vm->snapshot_after)) {
		vm->snapshot_after = NULL;
		if (write(vm->trigger_fd, &one, sizeof(one)) < 0)
			log_warn("snapshot trigger: %s", strerror(errno));
	}
}

static void com1_out(void *opaque, uint8_t byte)
{
	struct vm *vm = opaque;

	if (byte == '\n' && !vm->t_first_line_ns)
		vm->t_first_line_ns = now_ns();
	if (vm->snapshot_after)
		watch_line(vm, byte);
	vmm_console_out(vm, byte);
}

static void com1_irq(void *opaque, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = COM1_IRQ, .level = (uint32_t)level};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_ratelimited(LOG_WARN, "KVM_IRQ_LINE %d: %s", COM1_IRQ, strerror(errno));
}

/* The i8042's reset line: the guest asked to reboot, which for a microVM means the end. */
static void i8042_reset(void *opaque)
{
	vm_request_exit(opaque, VMM_EXIT_OK, "guest reset through the i8042");
}

static void i8042_irq(void *opaque)
{
	struct vm *vm = opaque;

	struct kvm_irq_level up = {.irq = I8042_IRQ, .level = 1};
	struct kvm_irq_level down = {.irq = I8042_IRQ, .level = 0};

	/* An edge, as Firecracker's irqfd gives. */
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &up) < 0 || ioctl(vm->vm_fd, KVM_IRQ_LINE, &down) < 0)
		log_ratelimited(LOG_WARN, "KVM_IRQ_LINE %d: %s", I8042_IRQ, strerror(errno));
}

static void panic_port_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			      bool is_write)
{
	struct vm *vm = opaque;

	if (!is_write) {
		data[0] = 1; /* pvpanic: "panicked" event supported */
		return;
	}
	vm_request_exit(vm, VMM_EXIT_GUEST_PANIC, "guest panicked");
}

static uint64_t cpu_time_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Firecracker's boot timer (--boot-timer): a guest init that writes 123 to its first byte
 * when it is up gets the boot time logged, from when the VM was being built. */
static void boot_timer_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			      bool is_write)
{
	struct vm *vm = opaque;
	uint64_t us, cpu_us;

	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (offset != 0 || len != 1 || data[0] != 123)
		return;
	us = (now_ns() - vm->boot_timer_start_ns) / 1000;
	cpu_us = (cpu_time_ns() - vm->boot_timer_start_cpu_ns) / 1000;
	log_info("Guest-boot-time = %6llu us %llu ms, %6llu CPU us %llu CPU ms",
		 (unsigned long long)us, (unsigned long long)us / 1000, (unsigned long long)cpu_us,
		 (unsigned long long)cpu_us / 1000);
}

int vm_setup_legacy_devices(struct vm *vm)
{
	int ret;

	uart_init(&vm->com1, com1_out, com1_irq, vm);
	i8042_init(&vm->i8042, i8042_reset, i8042_irq, vm);
	ret = vmm_bus_register(&vm->pio, COM1_BASE, 8, uart_access, &vm->com1, "com1");
	if (!ret)
		ret = vmm_bus_register(&vm->pio, I8042_BASE, 5, i8042_access, &vm->i8042, "i8042");
	if (!ret)
		ret = vmm_bus_register(&vm->pio, PANIC_PORT, 1, panic_port_access, vm, "panic");
	if (!ret && vm->boot_timer) {
		vm->boot_timer_start_ns = now_ns();
		vm->boot_timer_start_cpu_ns = cpu_time_ns();
		ret = vmm_bus_register(&vm->mmio, VMM_BOOT_TIMER_GPA, 0x1000, boot_timer_access, vm,
				       "boot-timer");
	}
	return ret;
}

/* ---------------------------------------------------------------- vCPU threads */

void vm_request_exit(struct vm *vm, int status, const char *why)
{
	uint64_t one = 1;

	pthread_mutex_lock(&vm->exit_lock);
	if (!vm->exiting) {
		__atomic_store_n(&vm->exiting, true, __ATOMIC_RELEASE);
		vm->exit_status = status;
		if (status == VMM_EXIT_OK)
			log_info("%s", why);
		else
			log_err("%s", why);
		if (write(vm->exit_fd, &one, sizeof(one)) < 0)
			abort(); /* an eventfd write cannot fail short of a bug */
	}
	pthread_mutex_unlock(&vm->exit_lock);
	/* A vm_pause waiting for this vCPU to park must not wait forever. */
	pthread_mutex_lock(&vm->run_lock);
	pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
}

/* Single writer (this vCPU's thread): a plain increment published atomically, no
 * locked instruction on the exit path. */
static inline void bump(uint64_t *counter)
{
	__atomic_store_n(counter, *counter + 1, __ATOMIC_RELEASE);
}

static bool pit_port(uint16_t port)
{
	return (port >= 0x40 && port <= 0x43) || port == 0x61;
}

/* The guest touched the PIT of a VM restored without one (vm_pit_defer): the PIT is
 * made, and the instruction runs again, now against it. KVM completes a port exit at
 * the next KVM_RUN (an IN's data into RAX, RIP past the instruction): an
 * immediate_exit run does just that and returns, and the registers from before put
 * RIP (and RAX, RSI, RDI, RCX of a string instruction) back. False when the VM must
 * end. */
static bool vcpu_pit_on_demand(struct vcpu *v)
{
	struct kvm_regs regs;
	char why[128];
	int ret;

	ret = vm_pit_make(v->vm);
	if (!ret && ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		ret = -errno;
	if (!ret) {
		v->run->immediate_exit = 1;
		if (ioctl(v->fd, KVM_RUN, 0) == 0)
			ret = -EPROTO; /* the guest ran: KVM ignored immediate_exit */
		else if (errno != EINTR && errno != EAGAIN)
			ret = -errno;
		v->run->immediate_exit = 0;
	}
	if (!ret && ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		ret = -errno;
	if (ret) {
		snprintf(why, sizeof(why),
			 "vcpu%u: making the PIT the guest touched (port %#x): %s", v->index,
			 v->run->io.port, strerror(-ret));
		vm_request_exit(v->vm, VMM_EXIT_INTERNAL, why);
		return false;
	}
	log_debug("vcpu%u: the guest touched port %#x: the PIT is made", v->index, v->run->io.port);
	return true;
}

static bool handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	bump(is_write ? &v->exit_io_out : &v->exit_io_in);
	if (v->vm->pit_on_demand && pit_port(run->io.port))
		return vcpu_pit_on_demand(v);
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (!vmm_bus_access(&v->vm->pio, run->io.port, data, run->io.size, is_write)) {
			bump(&v->unclaimed);
			log_ratelimited(LOG_DEBUG, "vcpu%u: unclaimed port %s %#x", v->index,
					is_write ? "write" : "read", run->io.port);
		}
	}
	return true;
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	bump(run->mmio.is_write ? &v->exit_mmio_write : &v->exit_mmio_read);
	if (!vmm_bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			    run->mmio.is_write)) {
		bump(&v->unclaimed);
		log_ratelimited(LOG_DEBUG, "vcpu%u: unclaimed MMIO %s %#llx", v->index,
				run->mmio.is_write ? "write" : "read",
				(unsigned long long)run->mmio.phys_addr);
	}
}

/* Parks the calling vCPU while a pause is requested. */
/* Waits while a pause is requested. False when the thread is to end instead (a
 * prepared VM's parked threads, when the VM is discarded). */
static bool vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool quit;

	pthread_mutex_lock(&vm->run_lock);
	if (vm->pause_requested) {
		vm->nr_paused++;
		__atomic_store_n(&v->parked, true, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&vm->run_cond);
		while (vm->pause_requested && !vm->vcpus_quit)
			pthread_cond_wait(&vm->run_cond, &vm->run_lock);
		__atomic_store_n(&v->parked, false, __ATOMIC_RELEASE);
		vm->nr_paused--;
	}
	quit = vm->vcpus_quit;
	pthread_mutex_unlock(&vm->run_lock);
	return !quit;
}

/* FNV-1a over the general registers: equal at two kicks means not one instruction
 * retired in between (or the guest spins on the very same state). */
static uint64_t regs_hash(const struct kvm_regs *r)
{
	const uint8_t *p = (const uint8_t *)r;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < sizeof(*r); i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The stall detector's kick made KVM_RUN return: record where the guest is, so the
 * detector can tell a vCPU that only re-enters the same guest page fault (kernels
 * where KVM waits for the fault interruptibly) from one that runs or halts. */
static void vcpu_fingerprint(struct vcpu *v)
{
	struct kvm_regs regs;
	struct kvm_mp_state mp;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0) {
		/* No fingerprint: the detector sees a return without one and does not
		 * count it against the vCPU. */
		log_ratelimited(LOG_WARN, "vcpu%u: stall probe: %s", v->index, strerror(errno));
		return;
	}
	/* A seqlock: odd while the two fields change, so a reader never pairs a new hash
	 * with an old count. */
	bump(&v->fp_seq);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&v->fp, regs_hash(&regs), __ATOMIC_RELAXED);
	/* Halted, or an AP still waiting for INIT/SIPI: waiting for an event, not for
	 * memory. */
	__atomic_store_n(&v->fp_halted, mp.mp_state != KVM_MP_STATE_RUNNABLE, __ATOMIC_RELAXED);
	bump(&v->fp_seq);
}

/* Keeps this exit in the vCPU's ring of last exits (vcpu_report_end). */
static void exit_record(struct vcpu *v)
{
	const struct kvm_run *run = v->run;
	struct vcpu_exit_rec *e = &v->last_exits[v->nr_exits_seen % VCPU_EXIT_RING];

	e->ns = now_ns();
	e->reason = run->exit_reason;
	e->addr = 0;
	e->info = 0;
	if (run->exit_reason == KVM_EXIT_IO) {
		e->addr = run->io.port;
		e->info = run->io.size | (uint32_t)(run->io.direction == KVM_EXIT_IO_OUT) << 8;
	} else if (run->exit_reason == KVM_EXIT_MMIO) {
		e->addr = run->mmio.phys_addr;
		e->info = run->mmio.len | (uint32_t)run->mmio.is_write << 8;
	}
	v->nr_exits_seen++;
}

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_IO:
		return "io";
	case KVM_EXIT_MMIO:
		return "mmio";
	case KVM_EXIT_HLT:
		return "hlt";
	case KVM_EXIT_SHUTDOWN:
		return "shutdown";
	case KVM_EXIT_SYSTEM_EVENT:
		return "system-event";
	case KVM_EXIT_INTERNAL_ERROR:
		return "internal-error";
	case KVM_EXIT_FAIL_ENTRY:
		return "fail-entry";
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		return "irq-window";
	default:
		return "other";
	}
}

#define SEG_FMT	    "%#x/%#llx/%#x/dpl%u"
#define SEG_ARGS(s) (s).selector, (unsigned long long)(s).base, (s).limit, (unsigned)(s).dpl

/* The guest ended the VM by itself (a triple fault, a reset, ...): logs the vCPU's state
 * as KVM has it now and its last exits, so a rare end can be told apart from the log
 * alone. Runs on the vCPU's own thread (its ioctls need no other thread's state); the
 * VM ends right after, so one report per VM, and each line is rate-limited besides. */
static void vcpu_report_end(struct vcpu *v, enum log_level level)
{
	struct kvm_regs r;
	struct kvm_sregs sr;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp = {.mp_state = ~0u};
	uint64_t now = now_ns(), n = v->nr_exits_seen;
	char line[1024];
	int len = 0;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sr) < 0 ||
	    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
		log_ratelimited(level, "vcpu%u: its state at the end is unreadable: %s", v->index,
				strerror(errno));
	} else {
		ioctl(v->fd, KVM_GET_MP_STATE, &mp);
		log_ratelimited(
		    level,
		    "vcpu%u at the end: rip=%#llx rsp=%#llx rflags=%#llx rax=%#llx "
		    "cs=" SEG_FMT " ss=" SEG_FMT " cr0=%#llx cr2=%#llx cr3=%#llx "
		    "cr4=%#llx efer=%#llx idt=%#llx/%#x gdt=%#llx/%#x tr=" SEG_FMT " mp_state=%u",
		    v->index, (unsigned long long)r.rip, (unsigned long long)r.rsp,
		    (unsigned long long)r.rflags, (unsigned long long)r.rax, SEG_ARGS(sr.cs),
		    SEG_ARGS(sr.ss), (unsigned long long)sr.cr0, (unsigned long long)sr.cr2,
		    (unsigned long long)sr.cr3, (unsigned long long)sr.cr4,
		    (unsigned long long)sr.efer, (unsigned long long)sr.idt.base, sr.idt.limit,
		    (unsigned long long)sr.gdt.base, sr.gdt.limit, SEG_ARGS(sr.tr), mp.mp_state);
		log_ratelimited(level,
				"vcpu%u events at the end: exception injected=%u pending=%u "
				"nr=%u error=%#x (has %u), interrupt injected=%u nr=%u "
				"shadow=%#x, nmi injected=%u pending=%u masked=%u",
				v->index, ev.exception.injected, ev.exception.pending,
				ev.exception.nr, ev.exception.error_code,
				ev.exception.has_error_code, ev.interrupt.injected, ev.interrupt.nr,
				ev.interrupt.shadow, ev.nmi.injected, ev.nmi.pending,
				ev.nmi.masked);
		/* AMD's KVM INITs a vCPU at a shutdown (the VMCB is undefined after it): its
		 * registers then show the reset vector, not the fault. */
		if (r.rip == 0xfff0 && sr.cs.base == 0xffff0000ull)
			log_ratelimited(
			    level,
			    "vcpu%u: that is the reset state: KVM reset the vCPU at "
			    "the shutdown (as on AMD), so the state of the fault is lost",
			    v->index);
	}
	for (uint64_t i = n > VCPU_EXIT_RING ? n - VCPU_EXIT_RING : 0; i < n; i++) {
		const struct vcpu_exit_rec *e = &v->last_exits[i % VCPU_EXIT_RING];
		int w = snprintf(line + len, sizeof(line) - (size_t)len, " [-%.3f ms %s",
				 (double)(now - e->ns) / 1e6, exit_name(e->reason));

		if (w < 0 || w >= (int)sizeof(line) - len)
			break;
		len += w;
		if (e->reason == KVM_EXIT_IO || e->reason == KVM_EXIT_MMIO)
			w = snprintf(line + len, sizeof(line) - (size_t)len, " %s %#llx/%u]",
				     e->info >> 8 ? "write" : "read", (unsigned long long)e->addr,
				     e->info & 0xff);
		else
			w = snprintf(line + len, sizeof(line) - (size_t)len, " %u]", e->reason);
		if (w < 0 || w >= (int)sizeof(line) - len)
			break;
		len += w;
	}
	log_ratelimited(level, "vcpu%u: %llu exits in all; the last, oldest first:%s", v->index,
			(unsigned long long)n, len ? line : " none");
}

/* Returns false when the vCPU must stop running. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char why[160];

	/* Any other exit ends the VM: reported before the VM is asked to end, since the
	 * main thread then exits the process without waiting for this thread. A fault or
	 * a failed entry is an error, a halt or a power-off a wish (the info level). */
	if (run->exit_reason != KVM_EXIT_IO && run->exit_reason != KVM_EXIT_MMIO)
		vcpu_report_end(v, run->exit_reason == KVM_EXIT_HLT ||
					   run->exit_reason == KVM_EXIT_SYSTEM_EVENT
				       ? LOG_INFO
				       : LOG_ERROR);
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(v);
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		return true;
	case KVM_EXIT_HLT:
		vm_request_exit(v->vm, VMM_EXIT_OK, "guest halted");
		return false;
	case KVM_EXIT_SHUTDOWN:
		snprintf(why, sizeof(why), "vcpu%u: triple fault (KVM_EXIT_SHUTDOWN)", v->index);
		vm_request_exit(v->vm, VMM_EXIT_TRIPLE_FAULT, why);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_CRASH) {
			vm_request_exit(v->vm, VMM_EXIT_GUEST_PANIC,
					"guest crashed (system event)");
		} else {
			vm_request_exit(v->vm, VMM_EXIT_OK, "guest shut down or reset");
		}
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(why, sizeof(why),
			 "vcpu%u: KVM could not emulate an instruction (internal error, "
			 "suberror %u)",
			 v->index, run->internal.suberror);
		vm_request_exit(v->vm, VMM_EXIT_EMULATION, why);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "vcpu%u: VM entry failed (hardware reason %#llx)",
			 v->index,
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vm_request_exit(v->vm, VMM_EXIT_EMULATION, why);
		return false;
	default:
		snprintf(why, sizeof(why), "vcpu%u: unexpected KVM exit reason %u", v->index,
			 run->exit_reason);
		vm_request_exit(v->vm, VMM_EXIT_INTERNAL, why);
		return false;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	char name[16];
	sigset_t set;
	int ret;

	/* Before the first KVM_RUN: from here on the guest drives this thread. */
	if (vmm_seccomp_install(VMM_SECCOMP_VCPU)) {
		vm_request_exit(vm, VMM_EXIT_INTERNAL, "vcpu: cannot install its seccomp filter");
		return NULL;
	}
	if (v->index == 0)
		vm->t_vcpu0_filtered_ns = now_ns();
	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	/* Only this thread takes the kick signal, and only while in KVM_RUN or here. */
	sigemptyset(&set);
	sigaddset(&set, SIG_VCPU_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		if (__atomic_load_n(&vm->pause_requested, __ATOMIC_ACQUIRE)) {
			v->run->immediate_exit = 0;
			if (!vcpu_park(v))
				break;
		}
		if (!v->vm->t_first_run_ns && v->index == 0)
			v->vm->t_first_run_ns = now_ns();
		bump(&v->run_seq);
		ret = ioctl(v->fd, KVM_RUN, 0);
		bump(&v->run_seq);
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				if (__atomic_exchange_n(&v->probe, 0, __ATOMIC_ACQ_REL))
					vcpu_fingerprint(v);
				continue;
			}
			char why[96];
			snprintf(why, sizeof(why), "vcpu%u: KVM_RUN: %s", v->index,
				 strerror(errno));
			vm_request_exit(vm, VMM_EXIT_INTERNAL, why);
			break;
		}
		bump(&v->run_exits);
		exit_record(v);
		if (!handle_exit(v))
			break;
	}
	__atomic_store_n(&v->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

int vm_start_vcpus(struct vm *vm)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	sigset_t set, old;
	int ret;

	/* No SA_RESTART: the point of the kick is that KVM_RUN returns EINTR. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_VCPU_KICK, &sa, NULL) < 0)
		return kvm_ioctl_err("sigaction");
	/* The main thread never takes a kick. */
	sigemptyset(&set);
	sigaddset(&set, SIG_VCPU_KICK);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* A vCPU thread takes no asynchronous signal but its kick (it unblocks that one
	 * itself): the main thread's signalfds (SIGTERM, the uffd discard request, ...)
	 * must find every other thread blocking their signals, whenever each was blocked.
	 * Faults stay deliverable, so that they are counted before they end the process. */
	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGTRAP);
	sigdelset(&set, SIGSYS);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	ret = 0;
	for (unsigned i = 0; i < vm->nr_vcpus && !ret; i++) {
		ret = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (ret) {
			log_err("pthread_create vcpu%u: %s", i, strerror(ret));
			ret = -ret;
			break;
		}
		/* Release: the detector's thread reads `thread` once it sees this. */
		__atomic_store_n(&vm->vcpus[i].started, true, __ATOMIC_RELEASE);
		vm->nr_started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

/* The one kick: immediate_exit covers the window between a vCPU's last check and
 * KVM_RUN (a signal taken there would be lost); the signal takes a vCPU out of a
 * KVM_RUN it is already in. */
static void vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(v->thread, SIG_VCPU_KICK);
}

void vm_vcpu_sample(struct vm *vm, unsigned i, struct uffd_vcpu_sample *s)
{
	struct vcpu *v = &vm->vcpus[i];

	s->active = __atomic_load_n(&v->started, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&v->parked, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&v->done, __ATOMIC_ACQUIRE);
	s->seq = __atomic_load_n(&v->run_seq, __ATOMIC_ACQUIRE);
	s->exits = __atomic_load_n(&v->run_exits, __ATOMIC_ACQUIRE);
	/* The writer takes two stores: a few rounds always find it between
	 * fingerprints; if not, the last complete count stands, with no hash. */
	for (int tries = 0;; tries++) {
		uint64_t again;

		s->fp_seq = __atomic_load_n(&v->fp_seq, __ATOMIC_ACQUIRE);
		s->fp = __atomic_load_n(&v->fp, __ATOMIC_RELAXED);
		s->fp_halted = __atomic_load_n(&v->fp_halted, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		again = __atomic_load_n(&v->fp_seq, __ATOMIC_RELAXED);
		if (again == s->fp_seq && !(again & 1))
			break;
		if (tries == 100) {
			s->fp_seq = again & ~1ull;
			s->fp = 0;
			s->fp_halted = true; /* counts as not stuck */
			break;
		}
	}
}

void vm_vcpu_probe(struct vm *vm, unsigned i)
{
	struct vcpu *v = &vm->vcpus[i];

	if (!__atomic_load_n(&v->started, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&v->done, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&v->probe, 1, __ATOMIC_RELEASE);
	vcpu_kick(v);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	__atomic_store_n(&vm->pause_requested, true, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].started)
			vcpu_kick(&vm->vcpus[i]);
	}
	while (vm->nr_paused < vm->nr_started && !__atomic_load_n(&vm->exiting, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&vm->run_cond, &vm->run_lock);
	vm->paused = true;
	pthread_mutex_unlock(&vm->run_lock);
}

void vm_resume(struct vm *vm)
{
	/* A VM launched paused has no vCPU threads yet. */
	if (vm->nr_started == 0 && vm->nr_vcpus) {
		vm->paused = false;
		if (vm_start_vcpus(vm))
			vm_request_exit(vm, VMM_EXIT_INTERNAL, "could not start the vCPUs");
		return;
	}
	pthread_mutex_lock(&vm->run_lock);
	__atomic_store_n(&vm->pause_requested, false, __ATOMIC_RELEASE);
	vm->paused = false;
	pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->run)
			munmap(v->run, (size_t)vm->vcpu_mmap_size);
		if (v->fd > 0)
			close(v->fd);
	}
	free(vm->supported_cpuid);
	free(vm->usable_cpuid);
	free(vm->msr_indices);
	vm_restore_plan_free(vm);
	vmm_mem_free(&vm->mem);
	vmm_loop_destroy(&vm->loop);
	if (vm->exit_fd >= 0)
		close(vm->exit_fd);
	if (vm->trigger_fd >= 0)
		close(vm->trigger_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}

/* ---------------------------------------------------------------- prepared VMs */

int vm_start_vcpus_parked(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	vm->pause_requested = true;
	pthread_mutex_unlock(&vm->run_lock);
	return vm_start_vcpus(vm);
}

/* Faults in `len` bytes of the main thread's stack below the caller's frame, the depth a
 * restore's decoders will run at. */
static __attribute__((noinline)) void touch_stack(size_t len)
{
	pages_touch(__builtin_alloca(len), len);
}

int vm_prepare(struct vm *vm, unsigned nr_vcpus, uint64_t mem_mib)
{
	int ret = vm_create(vm, nr_vcpus);

	if (!ret)
		ret = vmm_mem_alloc(&vm->mem, mem_mib << 20);
	if (!ret)
		ret = vm_register_memory(vm);
	if (!ret)
		ret = vm_create_irqchip(vm);
	/* No PIT: the restore makes one only for a guest that programmed it (build_vm). */
	if (!ret)
		ret = vm_create_vcpu_fds(vm);
	if (!ret)
		ret = vm_get_supported_cpuid(vm);
	if (ret)
		return ret;
	/* The vCPU threads start now and park before their first KVM_RUN: creating a
	 * thread and installing its seccomp filter (~0.3 ms a vCPU on PVM) is then done
	 * before the restore request arrives, and vm_launch only wakes them. */
	ret = vm_start_vcpus_parked(vm);
	if (ret)
		return ret;
	/* What the load will write, faulted in now rather than on its path (each first
	 * touch is a page fault; a load took 45, 8 with this): the plan's buffers, the
	 * API's request, reply and connection, the main thread's stack the decoders run
	 * on (~35 KiB deep). The launch gives them back, as it did before. */
	vm_restore_plan_warm(vm, nr_vcpus);
	vm_control_warm(vm);
	touch_stack(64u << 10);
	vm->prepared = true;
	return 0;
}

/* Ends the parked threads of a prepared VM that is not going to run. */
static void vm_end_parked_vcpus(struct vm *vm)
{
	if (!vm->nr_started)
		return;
	pthread_mutex_lock(&vm->run_lock);
	vm->vcpus_quit = true;
	pthread_cond_broadcast(&vm->run_cond);
	pthread_mutex_unlock(&vm->run_lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (!vm->vcpus[i].started)
			continue;
		pthread_join(vm->vcpus[i].thread, NULL);
		__atomic_store_n(&vm->vcpus[i].started, false, __ATOMIC_RELEASE);
	}
	vm->nr_started = vm->nr_paused = 0;
	vm->pause_requested = vm->vcpus_quit = false;
}

/* What a discarded VM still holds, handed to a thread that releases it. */
struct vm_remains {
	int fds[VMM_MAX_VCPUS + 4];
	unsigned nr_fds;
	void *maps[VMM_MAX_VCPUS + 1];
	size_t map_len[VMM_MAX_VCPUS + 1];
	unsigned nr_maps;
};

static void *release_remains(void *arg)
{
	struct vm_remains *r = arg;

	/* Failing leaves the (inherited) main filter, which allows all this too. */
	vmm_seccomp_install(VMM_SECCOMP_RELEASE);
	for (unsigned i = 0; i < r->nr_maps; i++)
		munmap(r->maps[i], r->map_len[i]);
	for (unsigned i = 0; i < r->nr_fds; i++)
		close(r->fds[i]);
	free(r);
	return NULL;
}

void vm_discard(struct vm *vm)
{
	struct vm_remains *r = calloc(1, sizeof(*r));
	pthread_t t;

	vm_end_parked_vcpus(vm);
	if (!r) {
		vm_destroy(vm);
		return;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run) {
			r->maps[r->nr_maps] = vm->vcpus[i].run;
			r->map_len[r->nr_maps++] = (size_t)vm->vcpu_mmap_size;
		}
		if (vm->vcpus[i].fd > 0)
			r->fds[r->nr_fds++] = vm->vcpus[i].fd;
	}
	if (vm->mem.owned && vm->mem.host) {
		r->maps[r->nr_maps] = vm->mem.host;
		r->map_len[r->nr_maps++] = vm->mem.size;
	}
	if (vm->vm_fd >= 0)
		r->fds[r->nr_fds++] = vm->vm_fd;
	vm->vm_fd = -1;
	vm->mem.host = NULL;
	/* Closing a VM fd takes 1-16 ms (measured): not on the caller's path. */
	if (pthread_create(&t, NULL, release_remains, r) == 0)
		pthread_detach(t);
	else
		release_remains(r);
}

/* ---------------------------------------------------------------- launching */

static void print_restore_timing(const struct vm *vm)
{
	const struct vm_restore_times *t = &vm->times;
	uint64_t r = t->restore_start_ns;

#define US(x) (unsigned long long)((x) ? ((x)-r) / 1000 : 0)
	fprintf(stderr,
		"thaw: restore: process_to_restore_us=%llu opened_us=%llu vm_created_us=%llu "
		"vcpus_created_us=%llu state_set_us=%llu generation_us=%llu devices_us=%llu "
		"running_us=%llu\n",
		(unsigned long long)(r - vm->t_process_start_ns) / 1000, US(t->opened_ns),
		US(t->vm_created_ns), US(t->vcpus_created_ns), US(t->state_set_ns),
		US(t->generation_ns), US(t->devices_restored_ns), US(t->running_ns));
#undef US
}

/* What vm_launch leaves to the main loop, run before its next wait: after the API's
 * reply to the load that launched, so neither delays it. Every ring of this VM exists
 * and the process builds no other VM: from here the main thread makes and changes no
 * io_uring (vmm/seccomp.c). Installing a filter is a BPF JIT compile (0.05-0.2 ms on
 * PVM) the guest and the client need not wait for; until then the main thread only
 * sends that reply and finishes its round, and no request can build a ring after the
 * launch (the API refuses boots and loads once one ran). The vCPU threads are not
 * sealed by it and need not be: their own filter allows neither call. Then the
 * restore's scratch and the API's go back to the kernel. */
static void launch_finish(void *opaque)
{
	struct vm *vm = opaque;

	if (vmm_seccomp_seal_rings()) {
		vm_request_exit(vm, VMM_EXIT_INTERNAL, "the main thread could not be sealed");
		return;
	}
	if (vm->times.restore_start_ns)
		vm_restore_plan_trim(vm);
	vm_control_trim(vm);
	pages_release_stack(); /* the restore's decoders ran ~35 KiB deep */
}

int vm_launch(struct vm *vm, bool paused)
{
	if (vmm_console_open(&vm->console, vm, vm->console_in_spec))
		return -EINVAL;
	vmm_console_out_prepare(vm);
	if (paused) {
		vm->paused = true;
	} else if (vm->nr_started) {
		/* a prepared or restored VM's threads wait parked: wake them */
		vm_resume(vm);
	} else {
		int ret = vm_start_vcpus(vm);

		if (ret)
			return ret;
	}
	/* The uffd stall detector reads it from its own thread. */
	__atomic_store_n(&vm->times.running_ns, now_ns(), __ATOMIC_RELEASE);
	DTRACE_PROBE(thaw, running);
	vm->loop.before_wait = launch_finish;
	vm->loop.before_wait_opaque = vm;
	if (vm->timing && vm->times.restore_start_ns)
		print_restore_timing(vm);
	return 0;
}
