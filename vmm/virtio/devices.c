/* Device placement: each virtio device gets a fixed 4 KiB MMIO window and IRQ from
 * its position on the command line, and is announced on the kernel command line
 * the way Linux's virtio_mmio.device= parameter expects. */
#include "vmm/vmm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int vmm_devices_attach(struct vm *vm, const struct vm_config *cfg, char *cmdline, size_t cap)
{
	unsigned wanted = cfg->nr_drives + cfg->nr_nets + (cfg->vsock ? 1 : 0) + (cfg->rng ? 1 : 0);

	if (wanted == 0)
		return 0;
	log_err("virtio devices are not available in this build yet");
	return -ENOTSUP;
}
