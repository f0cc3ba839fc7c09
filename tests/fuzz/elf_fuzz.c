/* libFuzzer target for the ELF loader (and the boot setup that follows a load): no
 * input may crash it, read outside the image or write outside guest RAM (ASan), and
 * whatever it accepts must satisfy the loader's contract (checked here, abort on
 * violation). Built and run by `make fuzz` (tests/build.mk).
 *
 * The first input byte picks the mode: bit 0 loads into guest RAM (else parse only),
 * bit 1 XORs the rest of the input onto a valid PVH image (so the fuzzer mutates
 * fields of a file that already passes most checks) instead of using it raw, bits 2-3
 * pick the vCPU count for the boot setup. */
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmm.h"

#define GUEST_MEM (4u << 20)
#define SEG_PADDR 0x100000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A minimal valid image: ELF header, PT_LOAD and PT_NOTE headers, a Xen PVH note, and
 * 64 bytes of segment that grow to 4 KiB in memory. */
struct tmpl {
	Elf64_Ehdr eh;
	Elf64_Phdr load, note;
	Elf64_Nhdr nh;
	char name[4];
	uint32_t pvh_entry;
	uint8_t pad[256 - sizeof(Elf64_Ehdr) - 2 * sizeof(Elf64_Phdr) - sizeof(Elf64_Nhdr) - 8];
	uint8_t seg[64];
};

static void make_template(struct tmpl *t)
{
	memset(t, 0, sizeof(*t));
	memcpy(t->eh.e_ident, ELFMAG, SELFMAG);
	t->eh.e_ident[EI_CLASS] = ELFCLASS64;
	t->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	t->eh.e_ident[EI_VERSION] = EV_CURRENT;
	t->eh.e_type = ET_EXEC;
	t->eh.e_machine = EM_X86_64;
	t->eh.e_version = EV_CURRENT;
	t->eh.e_entry = SEG_PADDR;
	t->eh.e_phoff = offsetof(struct tmpl, load);
	t->eh.e_ehsize = sizeof(Elf64_Ehdr);
	t->eh.e_phentsize = sizeof(Elf64_Phdr);
	t->eh.e_phnum = 2;
	t->load = (Elf64_Phdr){.p_type = PT_LOAD,
			       .p_offset = offsetof(struct tmpl, seg),
			       .p_paddr = SEG_PADDR,
			       .p_filesz = sizeof(t->seg),
			       .p_memsz = 0x1000};
	t->note = (Elf64_Phdr){.p_type = PT_NOTE,
			       .p_offset = offsetof(struct tmpl, nh),
			       .p_filesz = sizeof(Elf64_Nhdr) + 8,
			       .p_memsz = sizeof(Elf64_Nhdr) + 8};
	t->nh = (Elf64_Nhdr){4, 4, 18};
	memcpy(t->name, "Xen", 4);
	t->pvh_entry = SEG_PADDR + 0x10;
	for (size_t i = 0; i < sizeof(t->seg); i++)
		t->seg[i] = (uint8_t)(0x90 + i);
}

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "elf_fuzz: contract violated: %s\n", what);
		abort();
	}
}

static struct vmm_mem *guest(void)
{
	static struct vmm_mem mem;

	if (!mem.host && vmm_mem_alloc(&mem, GUEST_MEM))
		abort();
	return &mem;
}

/* After a successful load: the boot structures must fit or be refused cleanly. */
static void boot(struct vmm_mem *mem, const struct vmm_elf_info *info, uint8_t mode)
{
	static const uint8_t initrd[5000] = {1};
	struct vmm_boot_params bp = {
	    .protocol = VMM_BOOT_AUTO, .cmdline = "console=ttyS0", .vcpus = 1 + ((mode >> 2) & 3)};
	char err[256] = "";
	int ret = vmm_boot_setup(mem, info, &bp, initrd, sizeof(initrd), err, sizeof(err));

	check(ret == 0 || ret == -EINVAL, "vmm_boot_setup returns 0 or -EINVAL");
	if (ret) {
		check(err[0] != 0, "a refused boot says why");
		return;
	}
	check(bp.protocol == (info->has_pvh ? VMM_BOOT_PVH : VMM_BOOT_LINUX64),
	      "AUTO picks PVH exactly when the kernel has the note");
	check(bp.initrd_gpa >= info->load_end && bp.initrd_gpa >= BOOT_HIMEM_START,
	      "initrd lies above the kernel and the boot area");
	check(vmm_gpa(mem, bp.initrd_gpa, sizeof(initrd)) != NULL, "initrd lies in RAM");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmm_elf_info info;
	char err[256] = "";
	struct vmm_mem *mem;
	uint8_t *img, mode;
	size_t len;
	int ret;

	if (size == 0)
		return 0;
	mode = data[0];
	data++, size--;
	mem = mode & 1 ? guest() : NULL;

	if (mode & 2) {
		struct tmpl t;

		make_template(&t);
		len = size > sizeof(t) ? size : sizeof(t);
		img = malloc(len);
		if (!img)
			return 0;
		memset(img, 0, len);
		memcpy(img, &t, sizeof(t));
		for (size_t i = 0; i < size; i++)
			img[i] ^= data[i];
	} else {
		/* an exactly sized copy, so ASan sees any read past the end */
		len = size;
		img = malloc(len ? len : 1);
		if (!img)
			return 0;
		memcpy(img, data, len);
	}

	ret = vmm_elf_load(img, len, mem, &info, err, sizeof(err));
	free(img);
	check(ret == 0 || ret == -ENOEXEC, "vmm_elf_load returns 0 or -ENOEXEC");
	if (ret) {
		check(err[0] != 0, "a refused image says why");
		return 0;
	}
	check(info.load_start < info.load_end, "something was loaded");
	if (!info.has_pvh)
		check(info.entry >= info.load_start && info.entry < info.load_end,
		      "the ELF entry lies in a loaded segment");
	if (mem) {
		check(info.load_start >= BOOT_HIMEM_START, "nothing loaded below 1 MiB");
		check(info.load_end <= vmm_mem_end(mem), "nothing loaded past guest RAM");
		boot(mem, &info, mode);
	}
	return 0;
}
