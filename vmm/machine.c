/* Cold boot: from a vm_config to a VM whose vCPUs are ready to run. */
#include "vmm/vmm.h"
#include "vmm/virtio/virtio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define MIN_MEM_MIB 4
#define MAX_FILE    (1ull << 30) /* a kernel or initrd larger than this is refused */

/* Maps a whole file read-only; untrusted content, trusted size. */
static int map_file(const char *what, const char *path, const uint8_t **buf, size_t *len)
{
	struct stat st;
	void *p;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("%s %s: %s", what, path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_err("%s %s: not a regular file", what, path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_size == 0 || (uint64_t)st.st_size > MAX_FILE) {
		log_err("%s %s: size %lld is empty or too large", what, path,
			(long long)st.st_size);
		close(fd);
		return -EINVAL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	ret = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (ret) {
		log_err("mmap %s %s: %s", what, path, strerror(-ret));
		return ret;
	}
	*buf = p;
	*len = (size_t)st.st_size;
	return 0;
}

/* Host RAM + swap: a guest larger than this could never be backed. sysinfo(2)
 * works inside a jail, where /proc is absent. */
static uint64_t host_mem_bytes(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return UINT64_MAX;
	return ((uint64_t)si.totalram + si.totalswap) * si.mem_unit;
}

const struct vmm_cpu_template *vmm_pick_template(const char *name)
{
	const struct vmm_cpu_template *t;

	if (name) {
		t = vmm_cpu_template_find(name);
		if (!t)
			log_err("unknown CPU template '%s' (known: host, pvm)", name);
		return t;
	}
	/* PVM's emulator cannot run parts of a normal guest kernel; hide them here so
	 * guests need no clearcpuid= on their command line. */
	if (vmm_host_is_pvm()) {
		log_debug("PVM host detected: CPU template 'pvm'");
		return vmm_cpu_template_find("pvm");
	}
	return vmm_cpu_template_find("host");
}

int vm_boot(struct vm *vm, const struct vm_config *cfg)
{
	const uint8_t *kernel = NULL, *initrd = NULL;
	size_t kernel_len = 0, initrd_len = 0;
	struct vmm_elf_info elf;
	const struct vmm_cpu_template *tmpl;
	struct vmm_boot_params bp = {
	    .protocol = cfg->protocol, .cmdline = cfg->cmdline, .vcpus = cfg->vcpus};
	struct vmm_acpi_cfg acpi = {.vcpus = cfg->vcpus};
	uint8_t genid[VMM_VMGENID_LEN];
	uint64_t mem_bytes;
	char err[256], cmdline[BOOT_CMDLINE_MAX + 1];
	int status = VMM_EXIT_USAGE, ret;

	if (cfg->mem_mib < MIN_MEM_MIB) {
		log_err("--mem-mib %llu is too small: at least %d MiB",
			(unsigned long long)cfg->mem_mib, MIN_MEM_MIB);
		return VMM_EXIT_USAGE;
	}
	if (cfg->mem_mib > (host_mem_bytes() >> 20)) {
		log_err("--mem-mib %llu is more than this host has (%llu MiB of RAM and swap)",
			(unsigned long long)cfg->mem_mib,
			(unsigned long long)(host_mem_bytes() >> 20));
		return VMM_EXIT_USAGE;
	}
	if (cfg->cmdline && strlen(cfg->cmdline) >= BOOT_CMDLINE_MAX) {
		log_err("--cmdline is %zu bytes, at most %d allowed", strlen(cfg->cmdline),
			BOOT_CMDLINE_MAX - 1);
		return VMM_EXIT_USAGE;
	}
	mem_bytes = cfg->mem_mib << 20;

	/* Parse the kernel before touching KVM: a bad file is the user's error. */
	if (map_file("kernel", cfg->kernel, &kernel, &kernel_len))
		return VMM_EXIT_USAGE;
	if (vmm_elf_load(kernel, kernel_len, NULL, &elf, err, sizeof(err))) {
		log_err("kernel %s: %s", cfg->kernel, err);
		goto out;
	}
	if (cfg->initrd && map_file("initrd", cfg->initrd, &initrd, &initrd_len))
		goto out;

	tmpl = vmm_pick_template(cfg->cpu_template);
	if (!tmpl)
		goto out;
	ret = vm_create(vm, cfg->vcpus);
	if (ret) {
		status = ret == -EINVAL ? VMM_EXIT_USAGE : VMM_EXIT_INTERNAL;
		goto out;
	}
	vm->tmpl = tmpl;
	vm->cpu_config = cfg->cpu_config;
	vm->static_template = cfg->cpu_config ? cfg->static_template : NULL;
	status = VMM_EXIT_INTERNAL;
	if (vmm_mem_alloc(&vm->mem, mem_bytes) || vm_register_memory(vm) || vm_create_irqchip(vm) ||
	    vm_create_pit(vm))
		goto out;
	status = VMM_EXIT_USAGE;
	if (vmm_elf_load(kernel, kernel_len, &vm->mem, &elf, err, sizeof(err))) {
		log_err("kernel %s: %s", cfg->kernel, err);
		goto out;
	}
	/* Devices announce themselves on the kernel command line, or with ACPI in the
	 * DSDT (vmm_devices_attach leaves their virtio_mmio.device= out then). */
	snprintf(cmdline, sizeof(cmdline), "%s", cfg->cmdline ? cfg->cmdline : "");
	if (vmm_devices_attach(vm, cfg, cmdline, sizeof(cmdline)))
		goto out;
	bp.cmdline = cmdline;
	if (strlen(cmdline) >= sizeof(vm->cmdline)) {
		log_err("kernel command line with devices is %zu bytes, at most %zu allowed",
			strlen(cmdline), sizeof(vm->cmdline) - 1);
		goto out;
	}
	memcpy(vm->cmdline, cmdline, strlen(cmdline) + 1);
	if (!cfg->no_acpi) {
		/* Device k's window and GSI follow from its place (vmm.h, VIRTIO_MMIO_BASE). */
		acpi.nr_virtio = virtio_count(vm);
		for (unsigned k = 0; k < acpi.nr_virtio; k++)
			acpi.virtio[k] =
			    (struct vmm_acpi_mmio){VIRTIO_MMIO_BASE + k * VIRTIO_MMIO_SIZE,
						   VIRTIO_MMIO_SIZE, VIRTIO_IRQ_BASE + k};
		acpi.vmgenid_gpa = BOOT_VMGENID_ADDR;
		bp.acpi = &acpi;
	}
	if (vmm_boot_setup(&vm->mem, &elf, &bp, initrd, initrd_len, err, sizeof(err))) {
		log_err("%s", err);
		goto out;
	}
	status = VMM_EXIT_INTERNAL;
	if (bp.acpi) {
		if (vmm_vmgenid_generate(genid))
			goto out;
		if (vmm_vmgenid_write(&vm->mem, acpi.vmgenid_gpa, genid)) {
			log_err("generation ID at %#llx: not in reserved guest memory",
				(unsigned long long)acpi.vmgenid_gpa);
			goto out;
		}
		vm->vmgenid_gpa = acpi.vmgenid_gpa;
	}
	if (vm_create_vcpus(vm) ||
	    vm_setup_boot_regs(vm, bp.protocol,
			       bp.protocol == VMM_BOOT_PVH ? elf.pvh_entry : elf.entry) ||
	    vm_setup_legacy_devices(vm))
		goto out;
	status = VMM_EXIT_OK;
out:
	if (kernel)
		munmap((void *)kernel, kernel_len);
	if (initrd)
		munmap((void *)initrd, initrd_len);
	return status;
}
