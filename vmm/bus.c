/* One bus per address space (port I/O, MMIO): sorted ranges, overlap refused at
 * registration, binary search on every exit. */
#include "vmm/vmm.h"

#include <errno.h>
#include <string.h>

int vmm_bus_register(struct vmm_bus *bus, uint64_t base, uint64_t len, vmm_bus_fn fn, void *opaque,
		     const char *name)
{
	unsigned i;

	if (len == 0 || base + len < base) {
		log_err("bus: range %s at %#llx+%#llx is empty or wraps", name,
			(unsigned long long)base, (unsigned long long)len);
		return -EINVAL;
	}
	if (bus->nr == VMM_BUS_MAX) {
		log_err("bus: no room for %s (%d ranges)", name, VMM_BUS_MAX);
		return -ENOSPC;
	}
	for (i = 0; i < bus->nr; i++) {
		const struct vmm_bus_range *r = &bus->ranges[i];

		if (base < r->base + r->len && r->base < base + len) {
			log_err("bus: %s at %#llx+%#llx overlaps %s at %#llx+%#llx", name,
				(unsigned long long)base, (unsigned long long)len, r->name,
				(unsigned long long)r->base, (unsigned long long)r->len);
			return -EEXIST;
		}
	}
	for (i = bus->nr; i > 0 && bus->ranges[i - 1].base > base; i--)
		bus->ranges[i] = bus->ranges[i - 1];
	bus->ranges[i] = (struct vmm_bus_range){base, len, fn, opaque, name};
	bus->nr++;
	return 0;
}

const struct vmm_bus_range *vmm_bus_find(const struct vmm_bus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->nr;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct vmm_bus_range *r = &bus->ranges[mid];

		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool vmm_bus_access(const struct vmm_bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		    bool is_write)
{
	const struct vmm_bus_range *r = vmm_bus_find(bus, addr);

	if (!r || len > r->len - (addr - r->base)) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->fn(r->opaque, addr - r->base, data, len, is_write);
	return true;
}
