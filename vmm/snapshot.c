/* Snapshots, VMM side: the order in which a paused VM is written out, and in which a
 * snapshot becomes a VM again. A restore is plan -> build -> state -> devices: the plan
 * decodes and checks everything that needs no KVM (a bad file costs nothing, not even
 * a prepared VM); the later steps act. The restore path is the hot path: nothing is
 * read that need not be, guest memory is mapped, never copied, no buffer is allocated
 * (vm->plan is), and every phase is timed (USDT probe + vm->times). KVM's side of the
 * state is vmm/vstate.c; each device's section is in the device's own file. */
#include "vmm/snapshot_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sdt.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/pages.h"

#define PHASE(vm, name)                                                                            \
	do {                                                                                       \
		DTRACE_PROBE(thaw, name);                                                          \
		(vm)->times.name##_ns = now_ns();                                                  \
	} while (0)

/* ---------------------------------------------------------------- buffers */

/* Carves `len` bytes (kept 64-byte aligned) off the plan's scratch mapping. */
static void *scratch_take(uint8_t **at, size_t len)
{
	void *p = *at;

	*at += (len + 63) & ~(size_t)63;
	return p;
}

int vm_restore_plan_alloc(struct vm *vm)
{
	struct vm_restore_plan *p = calloc(1, sizeof(*p));
	size_t cpuid = sizeof(struct kvm_cpuid2) + SNAP_MAX_CPUID * sizeof(struct kvm_cpuid_entry2);
	size_t msrs = sizeof(struct kvm_msrs) + SNAP_MAX_MSRS * sizeof(struct kvm_msr_entry);
	size_t host_view = SNAP_MAX_CPUID * sizeof(struct kvm_cpuid_entry2);
	size_t vcpu = VMM_MAX_VCPUS * sizeof(struct snap_vcpu_state);
	uint8_t *at;

	if (!p)
		return -ENOMEM;
	vm->plan = p;
	p->paths_dirfd = -1;
	/* The buffers KVM's calls fill, in one mapping of their own: zero pages that cost
	 * nothing until a restore writes them, and given back whole after it
	 * (vm_restore_plan_trim). VMM_MAX_VCPUS states of ~10 KiB: pages nobody touches
	 * cost no memory. */
	p->scratch_len = (2 * ((cpuid + 63) & ~(size_t)63) + ((msrs + 63) & ~(size_t)63) +
			  ((host_view + 63) & ~(size_t)63) + vcpu + 4095) &
			 ~(size_t)4095;
	p->scratch =
	    mmap(NULL, p->scratch_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->scratch == MAP_FAILED) {
		p->scratch = NULL;
		vm_restore_plan_free(vm);
		return -ENOMEM;
	}
	at = p->scratch;
	p->vcpu = scratch_take(&at, vcpu);
	p->cpuid = scratch_take(&at, cpuid);
	p->vcpu_cpuid = scratch_take(&at, cpuid);
	p->host_view = scratch_take(&at, host_view);
	p->msrs = scratch_take(&at, msrs);
	/* The state area of a snapshot of a few vCPUs, and its sections; a larger file
	 * grows it once. */
	if (snap_store_reserve(&p->store, 256 << 10, 64 + 2 * VMM_MAX_VCPUS)) {
		vm_restore_plan_free(vm);
		return -ENOMEM;
	}
	return 0;
}

void vm_restore_plan_free(struct vm *vm)
{
	struct vm_restore_plan *p = vm->plan;

	if (!p)
		return;
	if (p->scratch)
		munmap(p->scratch, p->scratch_len);
	snap_store_free(&p->store);
	free(p);
	vm->plan = NULL;
}

void vm_restore_plan_trim(struct vm *vm)
{
	struct vm_restore_plan *p = vm->plan;

	if (!p)
		return;
	snap_store_trim(&p->store);
	pages_release(p->scratch, p->scratch_len);
	/* The saved machine and devices' states: decoded again by the next restore (a
	 * snapshot fills the machine itself), and adjacent at the plan's end. */
	pages_release(&p->machine, sizeof(*p) - offsetof(struct vm_restore_plan, machine));
}

void vm_restore_plan_warm(struct vm *vm, unsigned nr_vcpus)
{
	struct vm_restore_plan *p = vm->plan;

	snap_store_warm(&p->store);
	pages_touch(p->vcpu, nr_vcpus * sizeof(p->vcpu[0]));
	pages_touch(p->cpuid, sizeof(*p->cpuid) + SNAP_MAX_CPUID * sizeof(p->cpuid->entries[0]));
	pages_touch(p->vcpu_cpuid,
		    sizeof(*p->vcpu_cpuid) + SNAP_MAX_CPUID * sizeof(p->vcpu_cpuid->entries[0]));
	pages_touch(p->host_view, SNAP_MAX_CPUID * sizeof(p->host_view[0]));
	pages_touch(p->msrs, sizeof(*p->msrs) + SNAP_MAX_MSRS * sizeof(p->msrs->entries[0]));
	pages_touch(p, offsetof(struct vm_restore_plan, saved) + sizeof(p->saved[0]));
}

/* ---------------------------------------------------------------- save */

static void fill_machine(struct vm *vm, struct snap_machine *m)
{
	memset(m, 0, sizeof(*m));
	m->mem_size = vm->mem.size;
	m->nr_vcpus = vm->nr_vcpus;
	m->nr_regions = vm->mem.nr_regions;
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		m->regions[i].gpa = vm->mem.regions[i].gpa;
		m->regions[i].size = vm->mem.regions[i].size;
		m->regions[i].offset = vm->mem.regions[i].offset;
	}
	snprintf(m->cpu_template, sizeof(m->cpu_template), "%s", vm->tmpl ? vm->tmpl->name : "");
	snprintf(m->cmdline, sizeof(m->cmdline), "%s", vm->cmdline);
	if (vm->static_template)
		snprintf(m->static_template, sizeof(m->static_template), "%s", vm->static_template);
}

static int write_config(struct snap_writer *w, struct vm *vm)
{
	char json[BOOT_CMDLINE_MAX * 2 + 512], esc[BOOT_CMDLINE_MAX * 2];
	size_t k = 0;

	/* The command line is the only free text in it: escape it for JSON. */
	for (const char *c = vm->cmdline; *c && k + 7 < sizeof(esc); c++) {
		if (*c == '"' || *c == '\\')
			esc[k++] = '\\', esc[k++] = *c;
		else if ((unsigned char)*c < 0x20)
			k += (size_t)snprintf(esc + k, 7, "\\u%04x", *c);
		else
			esc[k++] = *c;
	}
	esc[k] = 0;
	snprintf(json, sizeof(json),
		 "{\"machine-config\":{\"vcpu_count\":%u,\"mem_size_mib\":%llu,"
		 "\"cpu_template\":\"%s\"},\"boot-source\":{\"boot_args\":\"%s\"}}",
		 vm->nr_vcpus, (unsigned long long)(vm->mem.size >> 20),
		 vm->tmpl ? vm->tmpl->name : "", esc);
	return snap_put_config(w, json, strlen(json));
}

/* Section `vmgenid` (optional, docs/snapshot-format.md): where the guest's generation
 * ID lives, so a restore can give each clone a new one. The ID itself is in guest
 * memory; its copy here is for people and tools. */
enum {
	GENID_TAG_ADDR = 1,    /* u64: guest physical address of the 16-byte ID */
	GENID_TAG_GED_IRQ = 2, /* u64: the GSI of the GED that notifies the guest */
	GENID_TAG_ID = 3,      /* bytes[16]: the ID when saved */
};
#define GENID_SECTION_MAJOR 1

static int save_vmgenid(struct vm *vm, struct snap_writer *w)
{
	const void *id = vmm_gpa(&vm->mem, vm->vmgenid_gpa, VMM_VMGENID_LEN);
	struct snap_sec *sec;
	int ret;

	if (!vm->vmgenid_gpa)
		return 0;
	if (!id)
		return -EFAULT;
	ret = snap_writer_section(w, "vmgenid", GENID_SECTION_MAJOR, 0, 0, &sec);
	if (ret)
		return ret;
	snap_put_u64(sec, GENID_TAG_ADDR, vm->vmgenid_gpa);
	snap_put_u64(sec, GENID_TAG_GED_IRQ, VMM_GED_IRQ);
	snap_put_bytes(sec, GENID_TAG_ID, id, VMM_VMGENID_LEN);
	return sec->err;
}

int vm_snapshot_create(struct vm *vm, const struct vm_snapshot_opts *opts)
{
	struct snap_writer_opts wo = {.mem_file_path = opts->mem_file_path,
				      .no_fsync = opts->no_fsync};
	struct vm_restore_plan *p = vm->plan; /* its buffers; no restore runs meanwhile */
	struct snap_writer *w = NULL;
	struct snap_write_stats st;
	char err[256] = "";
	uint64_t t0 = now_ns();
	bool was_paused = vm->paused;
	/* external disk checkpoint: each drive's new overlay, made before the snapshot */
	char ckpt[VIRTIO_MAX_DEVS][VMM_DEV_PATH_MAX + 64];
	bool ckpt_made[VIRTIO_MAX_DEVS] = {false};
	int ret;

	if (!was_paused)
		vm_pause(vm);
	if (__atomic_load_n(&vm->exiting, __ATOMIC_ACQUIRE)) {
		ret = errf(err, sizeof(err), -ESHUTDOWN, "the VM is stopping");
		goto out;
	}
	ret = vm_devices_quiesce(vm);
	if (ret) {
		errf(err, sizeof(err), ret, "device I/O could not be drained (see the log)");
		goto out;
	}
	ret = vm_msr_list(vm, err, sizeof(err));
	if (ret)
		goto out;
	/* The overlays first, durable, so that a failure leaves the VM on its images and
	 * no snapshot; the drives move onto them only once the snapshot is written. */
	for (unsigned i = 0; opts->disk_checkpoint && i < virtio_count(vm); i++) {
		const char *name = strrchr(opts->path, '/');
		int r = opts->disk_checkpoint == VMM_CKPT_EXTERNAL
			    ? virtio_blk_checkpoint_prepare(virtio_get(vm, i), opts->path, ckpt[i],
							    sizeof(ckpt[i]))
			    : virtio_blk_checkpoint_internal(virtio_get(vm, i),
							     name ? name + 1 : opts->path);

		if (r < 0) {
			ret = errf(err, sizeof(err), r, "the disk checkpoint failed (see the log)");
			goto out;
		}
		ckpt_made[i] = r == 1;
	}
	ret = snap_writer_create(opts->path, &wo, &w);
	if (ret) {
		errf(err, sizeof(err), ret, "%s", strerror(-ret));
		goto out;
	}
	fill_machine(vm, &p->machine);
	ret = snap_put_machine(w, &p->machine);
	if (ret)
		goto write_failed;
	p->cpuid->nent = SNAP_MAX_CPUID;
	if (ioctl(vm->vcpus[0].fd, KVM_GET_CPUID2, p->cpuid) < 0) {
		ret = errf(err, sizeof(err), -errno, "vcpu0: KVM_GET_CPUID2: %s", strerror(errno));
		goto out;
	}
	ret = snap_put_cpuid(w, p->cpuid->entries, p->cpuid->nent);
	for (unsigned i = 0; !ret && i < vm->nr_vcpus; i++) {
		ret = vm_vcpu_get_state(vm, &vm->vcpus[i], &p->vcpu[0], err, sizeof(err));
		if (ret)
			goto out;
		ret = snap_put_vcpu(w, i, &p->vcpu[0]);
	}
	if (!ret) {
		ret = vm_get_vm_state(vm, &p->vms, err, sizeof(err));
		if (ret)
			goto out;
		ret = snap_put_vm(w, &p->vms);
	}
	if (!ret)
		ret = uart_save_section(&vm->com1, w);
	if (!ret)
		ret = i8042_save_section(&vm->i8042, w);
	if (!ret)
		ret = save_vmgenid(vm, w);
	for (unsigned i = 0; !ret && i < virtio_count(vm); i++)
		ret = virtio_save_section(virtio_get(vm, i), w);
	if (!ret)
		ret = write_config(w, vm);
	if (!ret)
		ret = snap_writer_set_memory(w, vm->mem.host, vm->mem.size);
	if (ret)
		goto write_failed;
	ret = snap_writer_commit(w, &st);
	w = NULL; /* commit frees the writer whatever the outcome */
	if (ret)
		goto write_failed;
	for (unsigned i = 0; opts->disk_checkpoint == VMM_CKPT_EXTERNAL && i < virtio_count(vm);
	     i++)
		if (ckpt_made[i]) {
			/* in use now, or the drive's error is logged: the snapshot stands */
			virtio_blk_checkpoint_switch(virtio_get(vm, i), ckpt[i]);
			ckpt_made[i] = false;
		}
	vm->last_create_us = (now_ns() - t0) / 1000;
	log_info("snapshot %s: %llu MiB, %llu pages written, %llu zero pages skipped, %llu us",
		 opts->path, (unsigned long long)(vm->mem.size >> 20),
		 (unsigned long long)st.data_pages, (unsigned long long)st.zero_pages,
		 (unsigned long long)vm->last_create_us);
	goto out;
write_failed:
	errf(err, sizeof(err), ret, "writing it failed: %s", strerror(-ret));
out:
	if (ret)
		log_err("snapshot %s: %s", opts->path, err);
	for (unsigned i = 0; opts->disk_checkpoint == VMM_CKPT_INTERNAL && i < virtio_count(vm);
	     i++)
		virtio_blk_checkpoint_internal_done(virtio_get(vm, i), ret == 0);
	for (unsigned i = 0; opts->disk_checkpoint == VMM_CKPT_EXTERNAL && i < VIRTIO_MAX_DEVS; i++)
		if (ckpt_made[i])
			unlink(ckpt[i]); /* no snapshot: the drive stays on its image */
	snap_writer_abort(w);
	if (!was_paused && !opts->stay_paused)
		vm_resume(vm);
	else
		vm->paused = true;
	return ret;
}

int vm_devices_quiesce(struct vm *vm)
{
	return vm->devices ? virtio_quiesce(vm) : 0;
}

/* ---------------------------------------------------------------- restore: plan */

/* The saved layout must be one we would have made for that size: anything else is a
 * corrupt or foreign file, and its regions would steer KVM slots. */
static int check_layout(const struct snap_machine *m, struct vmm_mem *mem, char *err, size_t errlen)
{
	memset(mem, 0, sizeof(*mem));
	if (m->mem_size == 0 || m->mem_size % 4096 || m->mem_size > (1ull << 40))
		return errf(err, errlen, -EBADMSG, "machine: memory size %llu is invalid",
			    (unsigned long long)m->mem_size);
	vmm_mem_layout(mem, m->mem_size);
	if (m->nr_regions != mem->nr_regions)
		return errf(err, errlen, -EBADMSG,
			    "machine: %u memory regions, expected %u for %llu MiB", m->nr_regions,
			    mem->nr_regions, (unsigned long long)(m->mem_size >> 20));
	for (unsigned i = 0; i < m->nr_regions; i++) {
		if (m->regions[i].gpa != mem->regions[i].gpa ||
		    m->regions[i].size != mem->regions[i].size ||
		    m->regions[i].offset != mem->regions[i].offset)
			return errf(err, errlen, -EBADMSG,
				    "machine: memory region %u does not match the layout "
				    "for %llu MiB",
				    i, (unsigned long long)(m->mem_size >> 20));
	}
	if (m->nr_vcpus == 0 || m->nr_vcpus > VMM_MAX_VCPUS)
		return errf(err, errlen, -EBADMSG, "machine: %u vCPUs (1..%d)", m->nr_vcpus,
			    VMM_MAX_VCPUS);
	return 0;
}

/* The vmgenid section against the machine's layout `layout`: the address of an ID the
 * restore will write, so it must be in reserved guest memory. */
static int decode_vmgenid(const struct snap_section *sec, const struct vmm_mem *layout,
			  uint64_t *gpa, char *err, size_t errlen)
{
	uint64_t irq;
	int ret = snap_section_check_version(sec, GENID_SECTION_MAJOR, err, errlen);

	if (!ret)
		ret = snap_get_u64_max(sec, GENID_TAG_ADDR, UINT64_MAX, gpa, err, errlen);
	if (!ret)
		ret = snap_get_u64_max(sec, GENID_TAG_GED_IRQ, UINT32_MAX, &irq, err, errlen);
	if (ret == -ENOENT)
		return errf(err, errlen, -EBADMSG, "vmgenid: the address or GED IRQ is missing");
	if (ret)
		return ret;
	if (irq != VMM_GED_IRQ)
		return errf(err, errlen, -EBADMSG, "vmgenid: GED IRQ %llu, thaw's is %d",
			    (unsigned long long)irq, VMM_GED_IRQ);
	if (vmm_vmgenid_check(layout, *gpa))
		return errf(err, errlen, -EBADMSG,
			    "vmgenid: generation ID address %#llx is not in reserved guest memory",
			    (unsigned long long)*gpa);
	return 0;
}

int vm_snapshot_check_section(const struct snap *s, const struct snap_section *sec, char *err,
			      size_t errlen)
{
	if (strcmp(sec->name, "vmgenid") == 0) {
		struct snap_machine m;
		struct vmm_mem layout;
		uint64_t gpa;
		int ret = snap_get_machine(s, &m, err, errlen);

		if (!ret)
			ret = check_layout(&m, &layout, err, errlen);
		return ret ? ret : decode_vmgenid(sec, &layout, &gpa, err, errlen);
	}
	if (strcmp(sec->name, "machine") == 0) {
		struct snap_machine m;
		struct vmm_mem layout;
		int ret = snap_get_machine(s, &m, err, errlen);

		if (!ret)
			ret = check_layout(&m, &layout, err, errlen);
		if (!ret && strnlen(m.cmdline, sizeof(m.cmdline)) >= BOOT_CMDLINE_MAX)
			ret = errf(err, errlen, -EBADMSG, "machine: command line longer than %d",
				   BOOT_CMDLINE_MAX - 1);
		return ret;
	}
	if (strcmp(sec->name, "device.com1") == 0) {
		struct uart_state st;

		return uart_decode_section(sec, &st, err, errlen);
	}
	if (strcmp(sec->name, "i8042") == 0) {
		struct i8042_state st;

		return i8042_decode_section(sec, &st, err, errlen);
	}
	if (strncmp(sec->name, "device.virtio", 13) == 0) {
		struct virtio_saved v;

		return virtio_decode_section(sec, &v, err, errlen);
	}
	if (strncmp(sec->name, "device.", 7) == 0)
		return errf(err, errlen, -ENOTSUP, "section '%s': this thaw has no such device",
			    sec->name);
	return 0;
}

/* Checks the snapshot's CPU vendor and features against what this host can give the
 * guest. On hardware KVM that is KVM_GET_SUPPORTED_CPUID (fetched once per process,
 * cheap there). On PVM that ioctl costs 0.9 ms, a third of a restore, and understates
 * the truth anyway: PVM runs guest user mode natively on the host CPU
 * (vmm_cpuid_add_host_features), so there the guest's own leaves are checked against
 * the host CPU's, read with ~10 cpuid instructions. */
static int check_host(struct vm *vm, struct vm_restore_plan *p, char *err, size_t errlen)
{
	const struct kvm_cpuid_entry2 *guest = p->cpuid->entries;
	size_t n = p->cpuid->nent;
	int ret;

	/* NULL host facts: only the vendor is read (one cpuid); the full facts would
	 * cost ~175 us here, every CPUID traps on PVM. */
	if (vm->supported_cpuid || !vmm_host_is_pvm()) {
		const struct kvm_cpuid2 *have;

		ret = vm_open_kvm(vm);
		if (!ret)
			ret = vm_get_supported_cpuid(vm);
		if (ret)
			return errf(err, errlen, ret, "KVM_GET_SUPPORTED_CPUID failed (%s)",
				    strerror(-ret));
		have = vm->usable_cpuid ? vm->usable_cpuid : vm->supported_cpuid;
		return vmm_cpu_compat_check(snap_host_facts(p->snap), guest, n, NULL, have->entries,
					    have->nent, err, errlen);
	}
	vmm_cpuid_host_view(guest, (unsigned)n, p->host_view);
	return vmm_cpu_compat_check(snap_host_facts(p->snap), guest, n, NULL, p->host_view, n, err,
				    errlen);
}

/* Decodes and checks everything a restore needs that KVM does not: the file, the
 * machine and its layout, the command line, the CPUID against this host, every vCPU
 * and the VM state, the devices with their placements and backends. */
static int plan_restore(struct vm *vm, const struct vm_restore_opts *opts,
			struct vm_restore_plan *p, char *err, size_t errlen)
{
	struct snap_machine *m = &p->machine;
	const struct snap_section *sec;
	size_t ncpuid;
	int ret;

	ret = snap_open_in(&p->store, opts->path, 0, &p->snap, err, errlen);
	if (ret)
		return ret;
	DTRACE_PROBE(thaw, opened);
	vm->times.opened_ns = now_ns();
	ret = snap_get_machine(p->snap, m, err, errlen);
	if (!ret)
		ret = check_layout(m, &p->layout, err, errlen);
	if (ret)
		return ret;
	if (strnlen(m->cmdline, sizeof(m->cmdline)) >= sizeof(vm->cmdline))
		return errf(err, errlen, -EBADMSG, "machine: command line longer than %zu",
			    sizeof(vm->cmdline) - 1);
	ret = snap_get_cpuid(p->snap, p->cpuid->entries, SNAP_MAX_CPUID, &ncpuid, err, errlen);
	if (ret)
		return ret;
	p->cpuid->nent = (uint32_t)ncpuid;
	ret = check_host(vm, p, err, errlen);
	for (unsigned i = 0; !ret && i < m->nr_vcpus; i++)
		ret = snap_get_vcpu(p->snap, i, &p->vcpu[i], err, errlen);
	if (!ret)
		ret = snap_get_vm(p->snap, &p->vms, err, errlen);
	if (ret)
		return ret;
	p->has_uart = false;
	sec = snap_section_find(p->snap, "device.com1");
	if (sec) { /* older writers had none: a fresh UART */
		ret = uart_decode_section(sec, &p->uart, err, errlen);
		if (ret)
			return ret;
		p->has_uart = true;
	}
	p->has_i8042 = false;
	sec = snap_section_find(p->snap, "i8042");
	if (sec) {
		ret = i8042_decode_section(sec, &p->i8042, err, errlen);
		if (ret)
			return ret;
		p->has_i8042 = true;
	}
	p->vmgenid_gpa = 0;
	sec = snap_section_find(p->snap, "vmgenid");
	if (sec) {
		ret = decode_vmgenid(sec, &p->layout, &p->vmgenid_gpa, err, errlen);
		if (ret)
			return ret;
	}
	memset(&p->devices, 0, sizeof(p->devices));
	p->devices.paths_dirfd = -1;
	if (opts->snapshot_paths) {
		p->paths_dirfd = open(opts->snapshot_paths, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (p->paths_dirfd < 0)
			return errf(err, errlen, -errno, "--snapshot-paths %s: %s",
				    opts->snapshot_paths, strerror(errno));
		p->devices.paths_dirfd = p->paths_dirfd;
		p->devices.paths_dir = opts->snapshot_paths;
	}
	return virtio_plan_restore(p->snap, opts, &p->devices, p->saved, p->saved_at, err, errlen);
}

/* ---------------------------------------------------------------- restore: build */

/* Maps guest memory from the snapshot: MAP_PRIVATE, so every clone shares the page
 * cache and its writes stay its own; the file is never written. */
static int map_memory(struct vm *vm, const struct snap *s, const char *mem_file, bool fixed,
		      char *err, size_t errlen)
{
	struct snap_memory_loc loc;
	void *p;
	int fd, ret;

	ret = snap_memory(s, &loc);
	if (ret)
		return errf(err, errlen, ret, "memory section: %s", strerror(-ret));
	if (loc.size != vm->mem.size)
		return errf(err, errlen, -EBADMSG,
			    "memory section has %llu bytes, the machine %llu",
			    (unsigned long long)loc.size, (unsigned long long)vm->mem.size);
	if (mem_file) {
		struct stat st;

		fd = open(mem_file, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0)
			return errf(err, errlen, -errno, "memory file %s: %s", mem_file,
				    strerror(errno));
		if ((uint64_t)st.st_size < loc.size) {
			close(fd);
			return errf(err, errlen, -EINVAL,
				    "memory file %s has %lld bytes, the snapshot needs %llu",
				    mem_file, (long long)st.st_size, (unsigned long long)loc.size);
		}
		loc.offset = 0;
	} else {
		ret = snap_memory_open(s, &fd, err, errlen);
		if (ret)
			return ret;
	}
	p = mmap(fixed ? vm->mem.host : NULL, loc.size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_NORESERVE | (fixed ? MAP_FIXED : 0), fd, (off_t)loc.offset);
	ret = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (ret)
		return errf(err, errlen, ret, "mmap of guest memory: %s", strerror(-ret));
	vm->mem.host = p;
	vm->mem.owned = true;
	return 0;
}

/* The VM, its memory and its vCPUs with their CPUID: made now, or taken from the
 * prepared VM when the snapshot's shape fits it. */
static int build_vm(struct vm *vm, const struct vm_restore_opts *opts, struct vm_restore_plan *p,
		    char *err, size_t errlen)
{
	const struct snap_machine *m = &p->machine;
	bool fits = vm->prepared && vm->nr_vcpus == m->nr_vcpus && vm->mem.size == m->mem_size;
	int ret;

	if (vm->prepared && !fits) {
		log_info("snapshot shape (%u vCPUs, %llu MiB) differs from the prepared VM (%u, "
			 "%llu MiB): restoring into a new VM",
			 m->nr_vcpus, (unsigned long long)(m->mem_size >> 20), vm->nr_vcpus,
			 (unsigned long long)(vm->mem.size >> 20));
		vm_discard(vm);
	}
	if (!fits) {
		ret = vm_create(vm, m->nr_vcpus);
		if (ret)
			return errf(err, errlen, ret, "creating the VM failed (%s)",
				    strerror(-ret));
	}
	memcpy(vm->cmdline, m->cmdline, strlen(m->cmdline) + 1);
	vm->tmpl = vmm_cpu_template_find(m->cpu_template);
	/* A name this thaw does not know stays unreported: the CPUID and MSRs restored are
	 * what the guest has either way. */
	vm->static_template = vmm_static_template_name(m->static_template);
	if (fits) {
		/* The prepared slot already points at vm->mem.host: mapping the file over
		 * the whole range replaces every page KVM may have cached (its MMU
		 * notifier sees the unmap), so no slot update is needed. */
		ret = opts->backend == VM_MEM_FILE
			  ? map_memory(vm, p->snap, opts->mem_file, true, err, errlen)
			  : vm_uffd_restore(vm, p->snap, opts, err, errlen);
		if (ret)
			return ret;
	} else {
		vm->mem = p->layout;
		/* Memory first: registering the slot before the irqchip exists avoids an
		 * SRCU grace period wait (see vm_register_memory). */
		ret = opts->backend == VM_MEM_FILE
			  ? map_memory(vm, p->snap, opts->mem_file, false, err, errlen)
			  : vm_uffd_restore(vm, p->snap, opts, err, errlen);
		if (ret)
			return ret;
		ret = vm_register_memory(vm);
		if (!ret)
			ret = vm_create_irqchip(vm);
		if (ret)
			return errf(err, errlen, ret, "KVM setup failed (%s)", strerror(-ret));
	}
	PHASE(vm, vm_created);

	if (!fits) {
		/* The vCPU threads start parked now, so each installs its seccomp filter
		 * (a BPF JIT compile, ~0.3 ms on PVM) while this thread makes the PIT
		 * and sets the state; vm_launch wakes them. */
		ret = vm_create_vcpu_fds(vm);
		if (!ret)
			ret = vm_start_vcpus_parked(vm);
		if (ret)
			return errf(err, errlen, ret, "creating vCPUs failed (%s)", strerror(-ret));
	}
	/* A PIT the guest never programmed raises no interrupt: it is made when the guest
	 * first touches it, if ever (the probe and a hardware-reduced ACPI Linux do not).
	 * A prepared VM has none either (vm_prepare), so only a guest that uses its PIT
	 * pays for one here. */
	if (vm_pit_unused(&p->vms.pit))
		vm_pit_defer(vm, &p->vms.pit);
	else if ((ret = vm_create_pit(vm)))
		return errf(err, errlen, ret, "KVM setup failed (%s)", strerror(-ret));
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct kvm_cpuid2 *c = p->vcpu_cpuid;

		/* vCPU 0's CPUID, with each vCPU's own APIC id put back. */
		memcpy(c, p->cpuid, sizeof(*c) + p->cpuid->nent * sizeof(c->entries[0]));
		c->nent = vmm_cpuid_apply(c->entries, c->nent, vmm_cpu_template_find("host"), i,
					  vm->nr_vcpus);
		if (ioctl(vm->vcpus[i].fd, KVM_SET_CPUID2, c) < 0)
			return errf(err, errlen, -errno,
				    "vcpu%u: KVM_SET_CPUID2 refused the saved CPUID (%s)", i,
				    strerror(errno));
	}
	PHASE(vm, vcpus_created);
	return 0;
}

/* How long ago the snapshot's clock was read, by the host's real-time clock: 0 when the
 * snapshot has no real time (KVM without KVM_CLOCK_REALTIME) or the host's clock is
 * behind it (set back since; the guest then resumes where it stopped). */
static uint64_t snapshot_age_ns(const struct snap_vm_state *vms)
{
	struct timespec ts;
	uint64_t now;

	if (!(vms->clock.flags & KVM_CLOCK_REALTIME))
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return now > vms->clock.realtime ? now - vms->clock.realtime : 0;
}

/* vCPUs, then irqchip, PIT and clock. With --clock-realtime the guest's clock moves on by
 * the snapshot's age, both clocks a Linux guest may keep time by: kvmclock (KVM does it,
 * KVM_CLOCK_REALTIME in vm_set_vm_state) and the TSC (each vCPU's saved IA32_TSC plus the
 * age in its cycles; Linux prefers the TSC over kvmclock when CPUID says it is invariant).
 * Hosts that cannot rewind a guest's TSC (PVM: guest user mode reads the host's TSC
 * natively) move the TSC on regardless: docs/clones.md. The memory backend serves faults
 * by now: writing the kvmclock MSRs touches guest memory. */
static int set_state(struct vm *vm, const struct vm_restore_opts *opts,
		     const struct vm_restore_plan *p, char *err, size_t errlen)
{
	uint64_t age = 0;
	int ret = 0;

	if (opts->clock_realtime)
		age = snapshot_age_ns(&p->vms);
	for (unsigned i = 0; !ret && i < vm->nr_vcpus; i++) {
		int64_t advance = age ? vm_vcpu_tsc_cycles(&vm->vcpus[i], age) : 0;

		if (advance < 0)
			return errf(err, errlen, (int)advance,
				    "vcpu%u: --clock-realtime needs the guest's TSC rate, and "
				    "KVM_GET_TSC_KHZ failed (%s)",
				    i, strerror((int)-advance));
		ret = vm_vcpu_set_state(vm, &vm->vcpus[i], &p->vcpu[i], (uint64_t)advance, err,
					errlen);
	}
	if (!ret)
		ret = vm_set_vm_state(vm, &p->vms, opts->clock_realtime, err, errlen);
	if (ret)
		return ret;
	PHASE(vm, state_set);
	return 0;
}

/* A clone is a new machine: a fresh generation ID in guest memory, and the GED's
 * interrupt, pending before any vCPU runs, so the guest's vmgenid driver reseeds its
 * RNG (add_vmfork_randomness) as the first thing it does once it takes interrupts.
 * After set_state: restoring the irqchip and LAPICs would drop a pending interrupt. */
static int renew_generation(struct vm *vm, const struct vm_restore_opts *opts,
			    const struct vm_restore_plan *p, char *err, size_t errlen)
{
	uint8_t id[VMM_VMGENID_LEN];
	int ret;

	vm->vmgenid_gpa = p->vmgenid_gpa;
	if (!p->vmgenid_gpa) {
		log_warn("this snapshot has no VMGenID device (taken before thaw had one, or "
			 "booted with --no-acpi): the clone's entropy is not renewed");
		return 0;
	}
	if (opts->keep_generation)
		return 0;
	ret = vmm_vmgenid_generate(id);
	if (!ret)
		ret = vmm_vmgenid_write(&vm->mem, p->vmgenid_gpa, id);
	if (!ret)
		ret = vmm_ged_notify(vm->vm_fd);
	if (ret)
		return errf(err, errlen, ret, "a new generation ID could not be given (%s)",
			    strerror(-ret));
	PHASE(vm, generation);
	return 0;
}

/* The legacy devices, COM1's state, and the virtio devices at their saved places. */
static int restore_devices(struct vm *vm, struct vm_restore_plan *p, char *err, size_t errlen)
{
	int ret = vm_setup_legacy_devices(vm);

	if (ret)
		return errf(err, errlen, ret, "legacy devices: %s", strerror(-ret));
	if (p->has_uart)
		uart_restore(&vm->com1, &p->uart);
	if (p->has_i8042)
		i8042_restore(&vm->i8042, &p->i8042);
	ret = vmm_devices_attach(vm, &p->devices, NULL, 0);
	if (ret)
		return errf(err, errlen, ret,
			    "the snapshot's devices could not be rebuilt (%s; see the log)",
			    strerror(-ret));
	ret = virtio_restore_all(vm, p->saved, err, errlen);
	if (ret)
		return ret;
	PHASE(vm, devices_restored);
	return 0;
}

int vm_restore(struct vm *vm, const struct vm_restore_opts *opts, char *err, size_t errlen)
{
	struct vm_restore_plan *p = vm->plan;
	int ret;

	memset(&vm->times, 0, sizeof(vm->times));
	DTRACE_PROBE(thaw, restore_start);
	vm->times.restore_start_ns = now_ns();
	vm->restore_acted = false;
	ret = plan_restore(vm, opts, p, err, errlen);
	vm->restore_acted = ret == 0;
	if (!ret)
		ret = build_vm(vm, opts, p, err, errlen);
	if (!ret)
		ret = set_state(vm, opts, p, err, errlen);
	if (!ret)
		ret = renew_generation(vm, opts, p, err, errlen);
	if (!ret)
		ret = restore_devices(vm, p, err, errlen);
	if (!ret) {
		/* Tell the guest's kvmclock it was stopped, so its watchdogs do not fire. */
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0);
		vm->prepared = false;
	}
	if (p->paths_dirfd >= 0)
		close(p->paths_dirfd);
	p->paths_dirfd = -1;
	snap_close(p->snap);
	p->snap = NULL;
	return ret;
}
