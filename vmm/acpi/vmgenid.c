/* The VMGenID generation ID (Microsoft's "Virtual Machine Generation ID", as QEMU and
 * Linux's drivers/virt/vmgenid.c use it) and the GED interrupt that tells the guest it
 * changed. The DSDT (dsdt.c) declares the device and where the ID lives. */
#include "vmm/acpi/acpi_int.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>

int vmm_vmgenid_generate(uint8_t id[VMM_VMGENID_LEN])
{
	ssize_t n = getrandom(id, VMM_VMGENID_LEN, 0);

	if (n != VMM_VMGENID_LEN) {
		int e = n < 0 ? errno : EIO;

		log_err("getrandom for the generation ID: %s", strerror(e));
		return -e;
	}
	return 0;
}

int vmm_vmgenid_check(const struct vmm_mem *mem, uint64_t gpa)
{
	struct vmm_e820 e820[16];
	unsigned n = vmm_e820_build(mem, e820, 16);

	bool ram = false;

	/* The layout alone is checked (no host pointer is formed), so a restore can check
	 * a snapshot's address before any memory is mapped. */
	for (unsigned i = 0; i < mem->nr_regions; i++)
		ram |= gpa >= mem->regions[i].gpa &&
		       gpa - mem->regions[i].gpa <= mem->regions[i].size - VMM_VMGENID_LEN;
	if (gpa > UINT64_MAX - VMM_VMGENID_LEN || (gpa & 0xfff) > 0x1000 - VMM_VMGENID_LEN || !ram)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (e820[i].type == VMM_E820_RESERVED && gpa >= e820[i].addr &&
		    gpa + VMM_VMGENID_LEN <= e820[i].addr + e820[i].size)
			return 0;
	return -EINVAL;
}

int vmm_vmgenid_write(struct vmm_mem *mem, uint64_t gpa, const uint8_t id[VMM_VMGENID_LEN])
{
	uint8_t *p;

	if (vmm_vmgenid_check(mem, gpa))
		return -EINVAL;
	p = vmm_gpa(mem, gpa, VMM_VMGENID_LEN);
	memcpy(p, id, VMM_VMGENID_LEN);
	return 0;
}

/* Edge triggered (the DSDT says so): raising and lowering the line is one edge. */
int vmm_ged_notify(int vm_fd)
{
	struct kvm_irq_level irq = {.irq = VMM_GED_IRQ, .level = 1};
	int ret;

	if (ioctl(vm_fd, KVM_IRQ_LINE, &irq) < 0)
		goto fail;
	irq.level = 0;
	if (ioctl(vm_fd, KVM_IRQ_LINE, &irq) < 0)
		goto fail;
	return 0;
fail:
	ret = -errno;
	log_err("KVM_IRQ_LINE %d (GED): %s", VMM_GED_IRQ, strerror(-ret));
	return ret;
}
