/* Fixed physical layout of the probe guest. Shared by entry.S, the C code and probe.ld
 * (all run through cpp), so the assembler can compute descriptors from constants.
 * Everything the probe owns lies in [PROBE_BASE, PROBE_END) plus the AP trampoline page;
 * the rest of RAM is free for touch/sum. See PROTOCOL.md. */
#ifndef PROBE_LAYOUT_H
#define PROBE_LAYOUT_H

#define PROBE_BASE	0x100000 /* ELF image is linked and loaded here (1 MiB) */
#define PROBE_IMAGE_END 0x180000 /* the ELF (incl. .bss) must end below this */
#define PROBE_END	0x200000 /* first byte of RAM free for touch/sum (2 MiB) */

#define MAX_CPUS 16

#define TSS_BASE   0x180000 /* MAX_CPUS x TSS_STRIDE */
#define TSS_STRIDE 128
/* One I/O permission bitmap, shared by every CPU's TSS (each TSS's limit reaches it):
 * ports 0..IOBM_PORTS-1 allowed at CPL3, plus the all-ones byte the bitmap must end with.
 * IOPL 3 already allows port I/O at CPL3 on hardware; some PVM hosts do not carry the
 * guest's IOPL into user mode and check this bitmap instead (PROTOCOL.md). */
#define IOBM_BASE   (TSS_BASE + MAX_CPUS * TSS_STRIDE)
#define IOBM_PORTS  0x400
#define IOBM_BYTES  (IOBM_PORTS / 8 + 1)
#define KSTACK_BASE 0x181000 /* CPL0 stacks, MAX_CPUS x KSTACK_SIZE */
#define KSTACK_SIZE 0x1000
#define USTACK_BASE 0x1A0000 /* CPL3 stacks, MAX_CPUS x USTACK_SIZE */
#define USTACK_SIZE 0x4000

#define TRAMP_ADDR 0x8000 /* AP real-mode trampoline (SIPI vector 0x08) */

/* GDT selectors */
#define SEL_KCODE32 0x08
#define SEL_KDATA   0x10
#define SEL_KCODE64 0x18
#define SEL_UDATA   0x20 /* used as 0x23 */
#define SEL_UCODE64 0x28 /* used as 0x2b */
#define SEL_TSS0    0x30 /* 16-byte descriptors, one per CPU */
#define GDT_ENTRIES (6 + 2 * MAX_CPUS)

/* Interrupt vectors */
#define VEC_TIMER  0x30 /* LAPIC timer: idle fallback tick */
#define VEC_SERIAL 0x31 /* COM1 IRQ4 through the IOAPIC */
#define VEC_WAKE   0x32 /* IPI from the BSP: new work */
/* CPL3 reaches CPL0 through one DPL3 gate, #BP: `int3` with the service in %eax. Not
 * `int $n`: PVM hosts run our CPL3 natively but emulate `int $n` from it, and KVM's
 * emulator has no protected-mode `int $n` (the guest gets #UD); `int3` is delivered as
 * the exception it is. */
#define VEC_GATE     0x03
#define GATE_IDLE    0 /* sti; hlt; cli */
#define GATE_CREGS   1 /* store cr0/cr2/cr3/cr4/efer, GDTR, IDTR, TR to [rdi] */
#define GATE_TRIPLE  2 /* an empty IDT, then ud2: a triple fault (the VM's end) */
#define VEC_SPURIOUS 0xff

#define LAPIC_BASE  0xFEE00000
#define IOAPIC_BASE 0xFEC00000

#endif
