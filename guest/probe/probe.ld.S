/* Linker script (run through cpp with layout.h): one RWX load segment at PROBE_BASE with
 * vaddr == paddr, plus a PT_NOTE segment holding the PVH entry note (align 4, as QEMU's
 * note reader expects). */
#include "layout.h"
OUTPUT_FORMAT("elf64-x86-64")
ENTRY(entry32)
PHDRS {
	text PT_LOAD FLAGS(7);
	note PT_NOTE FLAGS(4);
}
SECTIONS {
	. = PROBE_BASE;
	_image_start = .;
	.text : { *(.text.entry) *(.text .text.*) } :text
	.note.pvh : { *(.note.pvh) } :text :note
	.rodata : { *(.rodata .rodata.*) } :text
	.data : { *(.data .data.*) } :text
	.bss : { *(.bss .bss.*) *(COMMON) } :text
	_image_end = .;
	/DISCARD/ : { *(.note.gnu.*) *(.comment) *(.eh_frame*) *(.note.GNU-stack) }
}
ASSERT(_image_end <= PROBE_IMAGE_END, "probe image overlaps its fixed area");
