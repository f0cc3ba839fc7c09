/* Probe guest: PVH entry, long-mode setup, the drop to CPL3, the AP trampoline and the
 * few CPL0 handlers. Everything here runs at CPL0, which PVM emulates one instruction at a
 * time (~2-3 us each), so this path is kept to a few dozen instructions: page tables and
 * the GDT are static data, the IDT is filled later at CPL3. */
#include "layout.h"

	.section .note.pvh, "a", @note
	.balign 4
	.long 4				/* namesz: "Xen\0" */
	.long 8				/* descsz: a 64-bit field, upper half 0 */
	.long 18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.quad entry32

	.section .text.entry, "ax"
	.code32
	.globl entry32
/* PVH: 32-bit flat protected mode, paging off, %ebx = hvm_start_info. */
entry32:
	cli
	movl %ebx, pvh_start_info
	xorl %esi, %esi			/* CPU index 0 */
common32:
	lgdt gdt_ptr32
	movl $0x620, %eax		/* PAE | OSFXSR | OSXMMEXCPT */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xC0000080, %ecx		/* EFER.LME */
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl $0x80000033, %eax		/* PG | NE | ET | MP | PE */
	movl %eax, %cr0
	ljmp $SEL_KCODE64, $entry64

/* APs arrive here from the trampoline, in protected mode with our GDT loaded. Their index
 * comes from a table the BSP filled (APIC ID -> index) so all APs can start at once. */
	.globl ap_entry32
ap_entry32:
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl LAPIC_BASE + 0x20, %eax	/* LAPIC ID register */
	shrl $24, %eax
	movzbl probe_apic_to_cpu(%eax), %esi
	jmp common32

	.code64
entry64:
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorl %eax, %eax
	movw %ax, %fs
	movw %ax, %gs
	movl %esi, %eax			/* CPL0 stack top: KSTACK_BASE + (i+1)*KSTACK_SIZE */
	incl %eax
	shll $12, %eax
	addl $KSTACK_BASE, %eax
	movq %rax, %rsp
	movl %esi, %edx			/* this CPU's TSS: rsp0, the shared I/O bitmap */
	shll $7, %edx
	movq %rax, TSS_BASE + 4(%rdx)
	movl $(IOBM_BASE - TSS_BASE), %ecx
	subl %edx, %ecx
	movw %cx, TSS_BASE + 102(%rdx)
	movb $0xFF, IOBM_BASE + IOBM_BYTES - 1	/* RAM may be reused: write, not assume */
	movq %rax, %r8
	xorl %eax, %eax
	movl $IOBM_BASE, %edi
	movl $((IOBM_BYTES - 1) / 8), %ecx
	rep stosq
	movq %r8, %rax
	movl %esi, %eax
	shll $4, %eax
	addl $SEL_TSS0, %eax
	ltr %ax
	lidt idt_ptr
	movl %esi, %eax			/* CPL3 stack top */
	incl %eax
	shll $14, %eax
	addl $USTACK_BASE, %eax
	pushq $(SEL_UDATA | 3)
	pushq %rax
	pushq $0x3002			/* IOPL 3, IF 0 */
	pushq $(SEL_UCODE64 | 3)
	pushq $user_entry
	movl %esi, %edi
	iretq

/* ---- CPL0 handlers ---- */

/* Wake-up interrupts (timer, serial, IPI): count by source (so a test can see whether
 * the VMM delivers COM1's interrupt), acknowledge and return. */
	.macro WAKE name, slot
	.globl isr_wake_\name
isr_wake_\name:
	pushq %rax
	lock incq probe_wakes + 8 * \slot(%rip)
	movl $LAPIC_BASE, %eax
	movl $0, 0xB0(%rax)		/* EOI */
	popq %rax
	iretq
	.endm
	WAKE timer, 0
	WAKE serial, 1
	WAKE ipi, 2

	.globl isr_spurious
isr_spurious:
	iretq

/* The gate from CPL3 (`int3`, layout.h): %eax names the service. */
	.globl isr_gate
isr_gate:
	cmpl $GATE_CREGS, %eax
	je isr_cregs
	cmpl $GATE_TRIPLE, %eax
	je isr_triple
	/* GATE_IDLE: halt until the next interrupt. Pending interrupts are not lost: CPL3
	 * runs with IF=0, so one that arrived since the caller's last check is delivered
	 * right after sti's shadow and ends the hlt. */
	sti
	hlt
	cli
	iretq

/* GATE_TRIPLE: with an IDT of limit 0, #UD cannot be delivered, nor the #GP nor the
 * #DF that follow: the CPU shuts down, which KVM reports as KVM_EXIT_SHUTDOWN. */
isr_triple:
	lidt empty_idt_ptr
	ud2

/* GATE_CREGS: store cr0, cr2, cr3, cr4, efer, then the GDTR, IDTR (limit,
 * base: 10 bytes each, 16 apart) and TR at [%rdi] (struct cregs). sgdt/sidt/str are done
 * here rather than at CPL3 because a host with UMIP on may refuse them to user mode, which
 * is where PVM runs our CPL3. Clobbers rax rcx rdx. */
isr_cregs:
	movq %cr0, %rax
	movq %rax, 0(%rdi)
	movq %cr2, %rax
	movq %rax, 8(%rdi)
	movq %cr3, %rax
	movq %rax, 16(%rdi)
	movq %cr4, %rax
	movq %rax, 24(%rdi)
	movl $0xC0000080, %ecx
	rdmsr
	shlq $32, %rdx
	orq %rdx, %rax
	movq %rax, 32(%rdi)
	sgdt 40(%rdi)
	sidt 56(%rdi)
	xorl %eax, %eax
	str %ax
	movq %rax, 72(%rdi)
	iretq

/* Exceptions: record vector, error code, rip, cs, rflags, rsp, cr2 in probe_fault_rec[cpu]
 * and continue at CPL3 in probe_fault_main(cpu), which reports and parks the CPU. */
	.macro EXC n, has_err
exc\n:
	.if \has_err == 0
	pushq $0
	.endif
	pushq $\n
	jmp exc_common
	.endm
	EXC 0,0
	EXC 1,0
	EXC 2,0
	EXC 3,0
	EXC 4,0
	EXC 5,0
	EXC 6,0
	EXC 7,0
	EXC 8,1
	EXC 9,0
	EXC 10,1
	EXC 11,1
	EXC 12,1
	EXC 13,1
	EXC 14,1
	EXC 15,0
	EXC 16,0
	EXC 17,1
	EXC 18,0
	EXC 19,0
	EXC 20,0
	EXC 21,1
	EXC 22,0
	EXC 23,0
	EXC 24,0
	EXC 25,0
	EXC 26,0
	EXC 27,0
	EXC 28,0
	EXC 29,1
	EXC 30,1
	EXC 31,0

exc_common:
	xorl %eax, %eax
	strw %ax
	subl $SEL_TSS0, %eax
	shrl $4, %eax
	movl %eax, %esi
	shll $6, %eax
	leaq probe_fault_rec(%rip), %rdi
	addq %rax, %rdi
	popq %rax
	movq %rax, 0(%rdi)		/* vector */
	popq %rax
	movq %rax, 8(%rdi)		/* error code */
	popq %rax
	movq %rax, 16(%rdi)		/* rip */
	popq %rax
	movq %rax, 24(%rdi)		/* cs */
	popq %rax
	movq %rax, 32(%rdi)		/* rflags */
	popq %rax
	movq %rax, 40(%rdi)		/* rsp */
	popq %rax
	movq %cr2, %rax
	movq %rax, 48(%rdi)
	movl %esi, %eax
	incl %eax
	shll $14, %eax
	addl $USTACK_BASE, %eax
	pushq $(SEL_UDATA | 3)
	pushq %rax
	pushq $0x3002
	pushq $(SEL_UCODE64 | 3)
	pushq $fault_user_entry
	movl %esi, %edi
	iretq

	.section .rodata
	.balign 8
	.globl probe_exc_stubs
probe_exc_stubs:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad exc\n
	.endr

/* ---- CPL3 entry points ---- */
	.text
user_entry:
	call probe_cpu_main
1:	jmp 1b

fault_user_entry:
	call probe_fault_main
1:	jmp 1b

/* ---- AP real-mode trampoline, copied to TRAMP_ADDR by the BSP (position independent) ---- */
	.section .rodata
	.code16
	.globl probe_tramp_start, probe_tramp_end
probe_tramp_start:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl tramp_gdtptr - probe_tramp_start
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $ap_entry32
	.balign 8
tramp_gdtptr:
	.word gdt_end - gdt - 1
	.long gdt
probe_tramp_end:
	.code64

/* ---- static descriptor tables and page tables ---- */
	.data
	.balign 16
	.globl pvh_start_info
pvh_start_info:
	.long 0

	/* A TSS's limit covers the shared I/O bitmap behind the last TSS (layout.h). */
	.macro TSSDESC base
	.quad (IOBM_BASE + IOBM_BYTES - 1 - (\base)) | (((\base) & 0xFFFF) << 16) | ((((\base) >> 16) & 0xFF) << 32) | (0x89 << 40) | ((((\base) >> 24) & 0xFF) << 56)
	.quad 0
	.endm

	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00CF9A000000FFFF	/* 0x08 kernel code 32 */
	.quad 0x00CF92000000FFFF	/* 0x10 kernel data */
	.quad 0x00AF9A000000FFFF	/* 0x18 kernel code 64 */
	.quad 0x00CFF2000000FFFF	/* 0x20 user data */
	.quad 0x00AFFA000000FFFF	/* 0x28 user code 64 */
	.irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	TSSDESC (TSS_BASE + \i * TSS_STRIDE)
	.endr
gdt_end:
	.if (gdt_end - gdt) != GDT_ENTRIES * 8
	.error "GDT size does not match MAX_CPUS"
	.endif
	.if IOBM_BASE + IOBM_BYTES > KSTACK_BASE || IOBM_BASE + IOBM_BYTES - TSS_BASE > 0xFFFF
	.error "the I/O bitmap must fit between the TSSes and the stacks, in a 16-bit limit"
	.endif

	.balign 8
gdt_ptr32:
	.word gdt_end - gdt - 1
	.long gdt
	.balign 8
	.word 0, 0, 0
idt_ptr:
	.word 256 * 16 - 1
	.quad probe_idt
	.balign 8
	.word 0, 0, 0
empty_idt_ptr:
	.word 0
	.quad 0

/* Identity map of the first 4 GiB with 2 MiB pages, user-accessible (CPL3 does all the
 * work); the 3-4 GiB window (LAPIC, IOAPIC, virtio-mmio) is uncached. */
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
pdpt:
	.quad pd0 + 0x7
	.quad pd0 + 0x1000 + 0x7
	.quad pd0 + 0x2000 + 0x7
	.quad pd0 + 0x3000 + 0x7
	.fill 508, 8, 0
pd0:
	.set i, 0
	.rept 2048
	.if i < 1536
	.quad (i << 21) | 0x87
	.else
	.quad (i << 21) | 0x9F
	.endif
	.set i, i + 1
	.endr

	.section .note.GNU-stack, "", @progbits
