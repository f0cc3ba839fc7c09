/* ELF64 kernel loader. The image is untrusted: every header field is checked before
 * it is used to index the file or guest memory. */
#include "vmm/vmm.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define ELF_MAX_PHDRS		 64

/* Every refusal here has one cause, reported to the caller. */
#define fail(err, errlen, ...) errf(err, errlen, -ENOEXEC, __VA_ARGS__)

/* True when [off, off+len) lies inside a buffer of `size` bytes. */
static bool in_file(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/* Scans one PT_NOTE segment for Xen's PVH entry note. */
static int find_pvh_note(const uint8_t *p, uint64_t len, struct vmm_elf_info *info, char *err,
			 size_t errlen)
{
	uint64_t off = 0;

	while (len - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name_off, desc_off, next;

		memcpy(&nh, p + off, sizeof(nh));
		name_off = off + sizeof(nh);
		desc_off = name_off + (((uint64_t)nh.n_namesz + 3) & ~3ull);
		next = desc_off + (((uint64_t)nh.n_descsz + 3) & ~3ull);
		if (desc_off > len || next > len)
			return fail(err, errlen, "ELF note runs past its segment");
		if (nh.n_namesz == 4 && memcmp(p + name_off, "Xen", 4) == 0 &&
		    nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY) {
			uint64_t entry = 0;

			if (nh.n_descsz != 4 && nh.n_descsz != 8)
				return fail(err, errlen, "PVH entry note has %u bytes, want 4 or 8",
					    nh.n_descsz);
			memcpy(&entry, p + desc_off, nh.n_descsz);
			if (entry >> 32)
				return fail(err, errlen, "PVH entry %#llx is above 4 GiB",
					    (unsigned long long)entry);
			info->pvh_entry = (uint32_t)entry;
			info->has_pvh = true;
		}
		off = next;
	}
	return 0;
}

/* True when `addr` lies inside one PT_LOAD segment (headers already validated). */
static bool entry_in_loads(const uint8_t *buf, const Elf64_Ehdr *eh, uint64_t addr)
{
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, buf + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD && addr >= ph.p_paddr && addr - ph.p_paddr < ph.p_memsz)
			return true;
	}
	return false;
}

int vmm_elf_load(const uint8_t *buf, size_t len, struct vmm_mem *mem, struct vmm_elf_info *info,
		 char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	unsigned i, loads = 0;
	int ret;

	memset(info, 0, sizeof(*info));
	info->load_start = UINT64_MAX;
	if (len < sizeof(eh))
		return fail(err, errlen, "file too short for an ELF header (%zu bytes)", len);
	memcpy(&eh, buf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return fail(err, errlen, "not an ELF file (bad magic)");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return fail(err, errlen, "not a little-endian ELF64 file");
	if (eh.e_machine != EM_X86_64)
		return fail(err, errlen, "ELF machine %u is not x86_64", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return fail(err, errlen, "ELF type %u is not an executable", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return fail(err, errlen, "ELF program header size %u, want %zu", eh.e_phentsize,
			    sizeof(Elf64_Phdr));
	if (eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS)
		return fail(err, errlen, "ELF has %u program headers (1..%d allowed)", eh.e_phnum,
			    ELF_MAX_PHDRS);
	if (!in_file(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), len))
		return fail(err, errlen, "ELF program headers lie outside the file");
	info->entry = eh.e_entry;

	for (i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, buf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_NOTE) {
			if (!in_file(ph.p_offset, ph.p_filesz, len))
				return fail(err, errlen,
					    "ELF note segment %u lies outside the file", i);
			ret = find_pvh_note(buf + ph.p_offset, ph.p_filesz, info, err, errlen);
			if (ret)
				return ret;
			continue;
		}
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return fail(err, errlen, "ELF segment %u: file size exceeds memory size",
				    i);
		if (!in_file(ph.p_offset, ph.p_filesz, len))
			return fail(err, errlen, "ELF segment %u lies outside the file (%zu bytes)",
				    i, len);
		if (ph.p_paddr + ph.p_memsz < ph.p_paddr)
			return fail(err, errlen, "ELF segment %u wraps the address space", i);
		if (mem) {
			uint8_t *dst = vmm_gpa(mem, ph.p_paddr, ph.p_memsz);

			if (!dst)
				return fail(
				    err, errlen,
				    "ELF segment %u at %#llx+%#llx does not fit in %llu MiB "
				    "of guest memory",
				    i, (unsigned long long)ph.p_paddr,
				    (unsigned long long)ph.p_memsz,
				    (unsigned long long)(mem->size >> 20));
			if (ph.p_paddr < BOOT_HIMEM_START)
				return fail(err, errlen,
					    "ELF segment %u at %#llx overlaps the boot area below "
					    "1 MiB",
					    i, (unsigned long long)ph.p_paddr);
			memcpy(dst, buf + ph.p_offset, ph.p_filesz);
			memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		}
		if (ph.p_paddr < info->load_start)
			info->load_start = ph.p_paddr;
		if (ph.p_paddr + ph.p_memsz > info->load_end)
			info->load_end = ph.p_paddr + ph.p_memsz;
		loads++;
	}
	if (loads == 0)
		return fail(err, errlen, "ELF has no loadable segment");
	/* Both entries must land in what was loaded: a corrupt kernel is refused here
	 * rather than triple faulting in the guest. */
	if (!entry_in_loads(buf, &eh, info->entry))
		return fail(err, errlen, "ELF entry %#llx is outside its loaded segments",
			    (unsigned long long)info->entry);
	if (info->has_pvh && !entry_in_loads(buf, &eh, info->pvh_entry))
		return fail(err, errlen, "PVH entry %#x is outside the loaded segments",
			    info->pvh_entry);
	return 0;
}
