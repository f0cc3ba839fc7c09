/* Guest RAM: one host mapping, at most two guest regions, one checked translator. */
#include "vmm/vmm.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

void vmm_mem_layout(struct vmm_mem *mem, uint64_t size)
{
	mem->size = size;
	mem->regions[0].gpa = 0;
	mem->regions[0].offset = 0;
	if (size <= VMM_MMIO_HOLE_START) {
		mem->nr_regions = 1;
		mem->regions[0].size = size;
		return;
	}
	mem->nr_regions = 2;
	mem->regions[0].size = VMM_MMIO_HOLE_START;
	mem->regions[1].gpa = VMM_MMIO_HOLE_END;
	mem->regions[1].size = size - VMM_MMIO_HOLE_START;
	mem->regions[1].offset = VMM_MMIO_HOLE_START;
}

void *vmm_gpa(const struct vmm_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct vmm_mem_region *r = &mem->regions[i];

		/* Written so that no sum can wrap: gpa - r->gpa is only formed once
		 * gpa >= r->gpa, and len is compared against what is left. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return mem->host + r->offset + (gpa - r->gpa);
	}
	return NULL;
}

uint64_t vmm_mem_end(const struct vmm_mem *mem)
{
	const struct vmm_mem_region *last = &mem->regions[mem->nr_regions - 1];

	return last->gpa + last->size;
}

int vmm_mem_alloc(struct vmm_mem *mem, uint64_t size)
{
	void *p;

	vmm_mem_layout(mem, size);
	/* NORESERVE: a 512 MiB guest that touches 20 MiB should cost 20 MiB. */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		log_err("mmap of %llu MiB of guest memory: %s", (unsigned long long)(size >> 20),
			strerror(e));
		return -e;
	}
	mem->host = p;
	mem->owned = true;
	return 0;
}

void vmm_mem_free(struct vmm_mem *mem)
{
	if (mem->owned && mem->host)
		munmap(mem->host, mem->size);
	mem->host = NULL;
	mem->owned = false;
}
