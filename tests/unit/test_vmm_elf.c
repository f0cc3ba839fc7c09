/* The ELF loader against crafted files: valid PVH and vmlinux-like images, and every
 * kind of corruption, each of which must fail with an error that names it. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/vmm.h"

#define MiB (1ull << 20)

/* The crafted image: ELF header, two program headers (PT_LOAD, PT_NOTE), the notes at
 * NOTE_OFF and the loaded bytes at SEG_OFF, which end the file. */
#define NOTE_OFF  0x100
#define SEG_OFF	  0x1000
#define SEG_FILE  0x100
#define SEG_MEM	  0x2000 /* the rest is bss */
#define SEG_PADDR 0x200000ull
#define IMG_LEN	  (SEG_OFF + SEG_FILE)
#define ELF_ENTRY (SEG_PADDR + 0x10)
#define PVH_ENTRY (SEG_PADDR + 0x40)
#define GUEST_MEM (16 * MiB)

enum note_kind {
	NOTE_NONE,    /* vmlinux-like: a GNU build-id note, no PVH entry */
	NOTE_PVH4,    /* Xen PHYS32_ENTRY with a 4-byte descriptor */
	NOTE_PVH8,    /* ... with an 8-byte one */
	NOTE_GNU_PVH, /* a GNU note first, then the PVH one */
};

struct img {
	_Alignas(16) uint8_t b[IMG_LEN];
	size_t len;
	Elf64_Ehdr *eh;
	Elf64_Phdr *load, *note;
};

/* Appends one note at `off`; returns the offset after it. */
static size_t put_note(uint8_t *b, size_t off, const char *name, uint32_t type, const void *desc,
		       uint32_t descsz)
{
	Elf64_Nhdr nh = {(uint32_t)strlen(name) + 1, descsz, type};

	memcpy(b + off, &nh, sizeof(nh));
	off += sizeof(nh);
	memcpy(b + off, name, nh.n_namesz);
	off += (nh.n_namesz + 3) & ~3u;
	memcpy(b + off, desc, descsz);
	return off + ((descsz + 3) & ~3u);
}

static void build(struct img *im, enum note_kind kind)
{
	uint64_t entry8 = PVH_ENTRY;
	uint32_t entry4 = (uint32_t)PVH_ENTRY;
	uint8_t build_id[20];
	size_t end = NOTE_OFF;

	memset(im, 0, sizeof(*im));
	im->len = IMG_LEN;
	im->eh = (Elf64_Ehdr *)im->b;
	im->load = (Elf64_Phdr *)(im->b + sizeof(Elf64_Ehdr));
	im->note = im->load + 1;

	memcpy(im->eh->e_ident, ELFMAG, SELFMAG);
	im->eh->e_ident[EI_CLASS] = ELFCLASS64;
	im->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh->e_ident[EI_VERSION] = EV_CURRENT;
	im->eh->e_type = ET_EXEC;
	im->eh->e_machine = EM_X86_64;
	im->eh->e_version = EV_CURRENT;
	im->eh->e_entry = ELF_ENTRY;
	im->eh->e_phoff = sizeof(Elf64_Ehdr);
	im->eh->e_ehsize = sizeof(Elf64_Ehdr);
	im->eh->e_phentsize = sizeof(Elf64_Phdr);
	im->eh->e_phnum = 2;

	*im->load = (Elf64_Phdr){.p_type = PT_LOAD,
				 .p_flags = PF_R | PF_X,
				 .p_offset = SEG_OFF,
				 .p_vaddr = 0xffffffff80000000ull + SEG_PADDR,
				 .p_paddr = SEG_PADDR,
				 .p_filesz = SEG_FILE,
				 .p_memsz = SEG_MEM,
				 .p_align = 0x1000};

	for (size_t i = 0; i < sizeof(build_id); i++)
		build_id[i] = (uint8_t)i;
	if (kind == NOTE_NONE || kind == NOTE_GNU_PVH)
		end = put_note(im->b, end, "GNU", NT_GNU_BUILD_ID, build_id, sizeof(build_id));
	if (kind == NOTE_PVH4 || kind == NOTE_GNU_PVH)
		end = put_note(im->b, end, "Xen", 18, &entry4, 4);
	if (kind == NOTE_PVH8)
		end = put_note(im->b, end, "Xen", 18, &entry8, 8);
	*im->note = (Elf64_Phdr){.p_type = PT_NOTE,
				 .p_flags = PF_R,
				 .p_offset = NOTE_OFF,
				 .p_filesz = end - NOTE_OFF,
				 .p_memsz = end - NOTE_OFF,
				 .p_align = 4};

	for (size_t i = 0; i < SEG_FILE; i++)
		im->b[SEG_OFF + i] = (uint8_t)(i * 7 + 1);
}

/* The loader gets its own exactly sized copy, so ASan sees any read past `len`. */
static int load(const uint8_t *b, size_t len, struct vmm_mem *mem, struct vmm_elf_info *info,
		char *err, size_t errlen)
{
	uint8_t *copy = malloc(len ? len : 1);
	int ret;

	assert_non_null(copy);
	memcpy(copy, b, len);
	ret = vmm_elf_load(copy, len, mem, info, err, errlen);
	free(copy);
	return ret;
}

static struct vmm_mem *guest(void **state)
{
	return *state;
}

/* Loading `im` fails with -ENOEXEC and an error containing `what`. */
static void expect_refused(struct img *im, struct vmm_mem *mem, const char *what)
{
	struct vmm_elf_info info;
	char err[256] = "";

	assert_int_equal(load(im->b, im->len, mem, &info, err, sizeof(err)), -ENOEXEC);
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not mention \"%s\"", err, what);
}

static int setup(void **state)
{
	static struct vmm_mem mem;

	if (vmm_mem_alloc(&mem, GUEST_MEM))
		return -1;
	*state = &mem;
	return 0;
}

static int teardown(void **state)
{
	vmm_mem_free(guest(state));
	return 0;
}

/* ---- valid images */

static void test_pvh_note_with_4_byte_entry_loads(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_PVH4);
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_true(info.has_pvh);
	assert_int_equal(info.pvh_entry, PVH_ENTRY);
	assert_int_equal(info.entry, ELF_ENTRY);
	assert_int_equal(info.load_start, SEG_PADDR);
	assert_int_equal(info.load_end, SEG_PADDR + SEG_MEM);
}

static void test_pvh_note_with_8_byte_entry_loads(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_PVH8);
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_true(info.has_pvh);
	assert_int_equal(info.pvh_entry, PVH_ENTRY);
}

static void test_pvh_note_found_after_other_notes(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_GNU_PVH);
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_true(info.has_pvh);
	assert_int_equal(info.pvh_entry, PVH_ENTRY);
}

static void test_vmlinux_without_pvh_note_uses_elf_entry(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_NONE);
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_false(info.has_pvh);
	assert_int_equal(info.pvh_entry, 0);
	assert_int_equal(info.entry, ELF_ENTRY);
	assert_int_equal(info.load_start, SEG_PADDR);
	assert_int_equal(info.load_end, SEG_PADDR + SEG_MEM);
}

static void test_xen_note_of_other_type_is_not_pvh(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";
	uint32_t v = 0x12345678;

	build(&im, NOTE_NONE);
	im.note->p_filesz =
	    put_note(im.b, NOTE_OFF, "Xen", 6 /* XEN_ELFNOTE_LOADER */, &v, 4) - NOTE_OFF;
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_false(info.has_pvh);
}

static void test_load_copies_file_bytes_and_zeroes_bss(void **state)
{
	struct vmm_mem *mem = guest(state);
	uint8_t *dst = vmm_gpa(mem, SEG_PADDR, SEG_MEM);
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	assert_non_null(dst);
	memset(dst - 16, 0xaa, SEG_MEM + 32);
	build(&im, NOTE_PVH4);
	assert_int_equal(load(im.b, im.len, mem, &info, err, sizeof(err)), 0);
	assert_memory_equal(dst, im.b + SEG_OFF, SEG_FILE);
	for (size_t i = SEG_FILE; i < SEG_MEM; i++)
		if (dst[i] != 0)
			fail_msg("bss byte %#zx is %#x, not zero", i, dst[i]);
	/* nothing outside the segment is written */
	assert_int_equal(dst[-1], 0xaa);
	assert_int_equal(dst[SEG_MEM], 0xaa);
}

static void test_parse_without_memory_skips_ram_checks(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_NONE);
	/* parsing alone also skips the guest-RAM checks: a segment far above any RAM */
	im.load->p_paddr = 64ull << 30;
	im.eh->e_entry = im.load->p_paddr;
	assert_int_equal(load(im.b, im.len, NULL, &info, err, sizeof(err)), 0);
	assert_int_equal(info.load_start, 64ull << 30);
	assert_int_equal(info.load_end, (64ull << 30) + SEG_MEM);
}

static void test_two_segments_give_lowest_start_and_highest_end(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_NONE);
	/* the note's header becomes a second PT_LOAD below the first */
	*im.note = (Elf64_Phdr){.p_type = PT_LOAD,
				.p_offset = SEG_OFF,
				.p_paddr = 0x100000,
				.p_filesz = 0x10,
				.p_memsz = 0x1000};
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_int_equal(info.load_start, 0x100000);
	assert_int_equal(info.load_end, SEG_PADDR + SEG_MEM);
}

static void test_empty_load_segment_is_ignored(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_NONE);
	/* memsz 0 at an address that would not fit: skipped, not refused */
	*im.note = (Elf64_Phdr){.p_type = PT_LOAD, .p_paddr = 0x10, .p_memsz = 0};
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_int_equal(info.load_start, SEG_PADDR);
}

/* ---- corrupt images */

static void test_bad_magic_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.b[1] = 'X';
	expect_refused(&im, guest(state), "bad magic");
}

static void test_32_bit_class_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_ident[EI_CLASS] = ELFCLASS32;
	expect_refused(&im, guest(state), "ELF64");
}

static void test_big_endian_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_refused(&im, guest(state), "little-endian");
}

static void test_wrong_machine_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_machine = EM_AARCH64;
	expect_refused(&im, guest(state), "not x86_64");
}

static void test_shared_object_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_type = ET_DYN;
	expect_refused(&im, guest(state), "not an executable");
}

static void test_wrong_phentsize_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_phentsize = sizeof(Elf32_Phdr);
	expect_refused(&im, guest(state), "program header size 32");
}

static void test_no_program_headers_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_phnum = 0;
	expect_refused(&im, guest(state), "0 program headers");
}

static void test_huge_phnum_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_phnum = 0xffff;
	expect_refused(&im, guest(state), "65535 program headers");
}

/* The program header table moved to 0x200, where it can grow to 64 entries (the
 * extra ones PT_NULL) and end exactly where the segment's bytes start. */
static void move_phdrs_for(struct img *im, unsigned phnum)
{
	memcpy(im->b + 0x200, im->load, 2 * sizeof(Elf64_Phdr));
	memset(im->load, 0, 2 * sizeof(Elf64_Phdr));
	im->load = (Elf64_Phdr *)(im->b + 0x200);
	im->note = im->load + 1;
	im->eh->e_phoff = 0x200;
	im->eh->e_phnum = (uint16_t)phnum;
}

static void test_64_program_headers_accepted(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[256] = "";

	build(&im, NOTE_PVH4);
	move_phdrs_for(&im, 64);
	assert_int_equal(0x200 + 64 * sizeof(Elf64_Phdr), SEG_OFF);
	assert_int_equal(load(im.b, im.len, guest(state), &info, err, sizeof(err)), 0);
	assert_true(info.has_pvh);
}

static void test_65_program_headers_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	move_phdrs_for(&im, 65);
	expect_refused(&im, guest(state), "65 program headers");
}

static void test_program_headers_past_end_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.eh->e_phoff = IMG_LEN - sizeof(Elf64_Phdr); /* the second one runs off */
	expect_refused(&im, guest(state), "program headers lie outside the file");
	im.eh->e_phoff = UINT64_MAX - 8; /* offset + size wraps */
	expect_refused(&im, guest(state), "program headers lie outside the file");
}

static void test_no_load_segment_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_type = PT_NULL;
	expect_refused(&im, guest(state), "no loadable segment");
}

static void test_segment_offset_past_end_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_offset = IMG_LEN - SEG_FILE + 1;
	expect_refused(&im, guest(state), "segment 0 lies outside the file");
	im.load->p_offset = UINT64_MAX - 0x10; /* offset + filesz wraps */
	expect_refused(&im, guest(state), "segment 0 lies outside the file");
}

static void test_segment_filesz_past_end_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_filesz = SEG_FILE + 1;
	expect_refused(&im, guest(state), "segment 0 lies outside the file");
}

static void test_filesz_above_memsz_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_memsz = SEG_FILE - 1;
	expect_refused(&im, guest(state), "file size exceeds memory size");
}

static void test_segment_address_wrapping_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_paddr = UINT64_MAX - 0x100;
	expect_refused(&im, guest(state), "wraps");
	expect_refused(&im, NULL, "wraps"); /* caught when only parsing, too */
}

static void test_segment_outside_guest_ram_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_paddr = GUEST_MEM;
	im.eh->e_entry = GUEST_MEM;
	expect_refused(&im, guest(state), "does not fit");
}

static void test_segment_crossing_end_of_ram_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_paddr = GUEST_MEM - 0x1000; /* 8 KiB from 4 KiB below the end */
	expect_refused(&im, guest(state), "does not fit in 16 MiB");
}

static void test_segment_below_1mib_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.load->p_paddr = 0x8000; /* would cover the boot structures */
	expect_refused(&im, guest(state), "below 1 MiB");
}

static void test_note_name_past_segment_refused(void **state)
{
	struct img im;
	Elf64_Nhdr *nh;

	build(&im, NOTE_PVH4);
	nh = (Elf64_Nhdr *)(im.b + NOTE_OFF);
	nh->n_namesz = 0x1000;
	expect_refused(&im, guest(state), "note runs past its segment");
	nh->n_namesz = UINT32_MAX;
	expect_refused(&im, guest(state), "note runs past its segment");
}

static void test_note_desc_past_segment_refused(void **state)
{
	struct img im;
	Elf64_Nhdr *nh;

	build(&im, NOTE_PVH4);
	nh = (Elf64_Nhdr *)(im.b + NOTE_OFF);
	nh->n_descsz = 5; /* padded to 8: 4 bytes past the segment */
	expect_refused(&im, guest(state), "note runs past its segment");
	nh->n_descsz = UINT32_MAX;
	expect_refused(&im, guest(state), "note runs past its segment");
}

static void test_note_segment_outside_file_refused(void **state)
{
	struct img im;

	build(&im, NOTE_PVH4);
	im.note->p_offset = IMG_LEN - 4;
	expect_refused(&im, guest(state), "note segment 1 lies outside the file");
}

static void test_pvh_entry_of_wrong_size_refused(void **state)
{
	struct img im;
	uint16_t e = 0x1000;

	build(&im, NOTE_NONE);
	im.note->p_filesz = put_note(im.b, NOTE_OFF, "Xen", 18, &e, 2) - NOTE_OFF;
	expect_refused(&im, guest(state), "PVH entry note has 2 bytes");
}

static void test_pvh_entry_above_4g_refused(void **state)
{
	struct img im;
	uint64_t e = 0x100000000ull + PVH_ENTRY;

	build(&im, NOTE_NONE);
	im.note->p_filesz = put_note(im.b, NOTE_OFF, "Xen", 18, &e, 8) - NOTE_OFF;
	expect_refused(&im, guest(state), "above 4 GiB");
}

static void test_elf_entry_outside_segments_refused(void **state)
{
	struct img im;

	build(&im, NOTE_NONE);
	im.eh->e_entry = SEG_PADDR + SEG_MEM; /* one past the end */
	expect_refused(&im, guest(state), "outside its loaded segments");
	im.eh->e_entry = SEG_PADDR - 1;
	expect_refused(&im, guest(state), "outside its loaded segments");
	/* a vmlinux's virtual entry is not a physical address we loaded */
	im.eh->e_entry = 0xffffffff81000000ull;
	expect_refused(&im, guest(state), "outside its loaded segments");
}

/* The PVH entry is where the vCPU starts: pointing it at memory the image does not
 * load is as corrupt as a bad ELF entry, and must not become a triple fault. */
static void test_pvh_entry_outside_segments_refused(void **state)
{
	struct img im;
	uint32_t e = (uint32_t)(SEG_PADDR + SEG_MEM);

	build(&im, NOTE_NONE);
	im.note->p_filesz = put_note(im.b, NOTE_OFF, "Xen", 18, &e, 4) - NOTE_OFF;
	expect_refused(&im, guest(state), "outside");
}

static void test_file_shorter_than_header_refused(void **state)
{
	struct vmm_elf_info info;
	char err[256] = "";

	assert_int_equal(load((const uint8_t *)"\x7f"
					       "ELF",
			      4, NULL, &info, err, sizeof(err)),
			 -ENOEXEC);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(load((const uint8_t *)"", 0, NULL, &info, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "0 bytes"));
}

/* Every proper prefix of a valid image is refused with an error, never a crash or a
 * read past the end (the copy is exactly `len` bytes, so ASan would see it). */
static void test_every_truncation_refused(void **state)
{
	static const enum note_kind kinds[] = {NOTE_PVH4, NOTE_PVH8, NOTE_NONE};
	struct vmm_mem *mem = guest(state);

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		struct img im;

		build(&im, kinds[k]);
		for (size_t len = 0; len < im.len; len++) {
			struct vmm_elf_info info;
			char err[256] = "";

			if (load(im.b, len, len & 1 ? mem : NULL, &info, err, sizeof(err)) !=
			    -ENOEXEC)
				fail_msg("prefix of %zu bytes was accepted", len);
			if (!err[0])
				fail_msg("prefix of %zu bytes refused without a reason", len);
		}
	}
}

static void test_error_text_is_truncated_to_buffer(void **state)
{
	struct img im;
	struct vmm_elf_info info;
	char err[8];

	memset(err, 'x', sizeof(err));
	build(&im, NOTE_PVH4);
	im.b[0] = 0;
	assert_int_equal(load(im.b, im.len, NULL, &info, err, 4), -ENOEXEC);
	assert_int_equal(strlen(err), 3);
	assert_int_equal(err[4], 'x');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pvh_note_with_4_byte_entry_loads),
	    cmocka_unit_test(test_pvh_note_with_8_byte_entry_loads),
	    cmocka_unit_test(test_pvh_note_found_after_other_notes),
	    cmocka_unit_test(test_vmlinux_without_pvh_note_uses_elf_entry),
	    cmocka_unit_test(test_xen_note_of_other_type_is_not_pvh),
	    cmocka_unit_test(test_load_copies_file_bytes_and_zeroes_bss),
	    cmocka_unit_test(test_parse_without_memory_skips_ram_checks),
	    cmocka_unit_test(test_two_segments_give_lowest_start_and_highest_end),
	    cmocka_unit_test(test_empty_load_segment_is_ignored),
	    cmocka_unit_test(test_bad_magic_refused),
	    cmocka_unit_test(test_32_bit_class_refused),
	    cmocka_unit_test(test_big_endian_refused),
	    cmocka_unit_test(test_wrong_machine_refused),
	    cmocka_unit_test(test_shared_object_refused),
	    cmocka_unit_test(test_wrong_phentsize_refused),
	    cmocka_unit_test(test_no_program_headers_refused),
	    cmocka_unit_test(test_huge_phnum_refused),
	    cmocka_unit_test(test_64_program_headers_accepted),
	    cmocka_unit_test(test_65_program_headers_refused),
	    cmocka_unit_test(test_program_headers_past_end_refused),
	    cmocka_unit_test(test_no_load_segment_refused),
	    cmocka_unit_test(test_segment_offset_past_end_refused),
	    cmocka_unit_test(test_segment_filesz_past_end_refused),
	    cmocka_unit_test(test_filesz_above_memsz_refused),
	    cmocka_unit_test(test_segment_address_wrapping_refused),
	    cmocka_unit_test(test_segment_outside_guest_ram_refused),
	    cmocka_unit_test(test_segment_crossing_end_of_ram_refused),
	    cmocka_unit_test(test_segment_below_1mib_refused),
	    cmocka_unit_test(test_note_name_past_segment_refused),
	    cmocka_unit_test(test_note_desc_past_segment_refused),
	    cmocka_unit_test(test_note_segment_outside_file_refused),
	    cmocka_unit_test(test_pvh_entry_of_wrong_size_refused),
	    cmocka_unit_test(test_pvh_entry_above_4g_refused),
	    cmocka_unit_test(test_elf_entry_outside_segments_refused),
	    cmocka_unit_test(test_pvh_entry_outside_segments_refused),
	    cmocka_unit_test(test_file_shorter_than_header_refused),
	    cmocka_unit_test(test_every_truncation_refused),
	    cmocka_unit_test(test_error_text_is_truncated_to_buffer),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
