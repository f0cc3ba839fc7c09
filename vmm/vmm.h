/* thaw's VMM core: the public interface of vmm/.
 *
 * A `struct vm` is one microVM: its KVM fds, guest memory, the two buses (port I/O
 * and MMIO) that every device hangs off, and its vCPU threads. The pure parts (bus,
 * ELF loader, boot parameters, CPU templates, UART) need no /dev/kvm and are unit
 * tested on their own.
 */
#ifndef THAW_VMM_H
#define THAW_VMM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

/* Exit statuses of `thaw`, distinct so a runtime can tell what happened. */
enum vmm_exit_status {
	VMM_EXIT_OK = 0,	   /* guest reset or powered off, or normal end */
	VMM_EXIT_USAGE = 1,	   /* bad arguments or configuration */
	VMM_EXIT_INTERNAL = 2,	   /* a host-side failure (an ioctl, memory, a backend) */
	VMM_EXIT_GUEST_PANIC = 3,  /* the guest reported a panic on the panic port */
	VMM_EXIT_TRIPLE_FAULT = 4, /* KVM_EXIT_SHUTDOWN: the guest triple faulted */
	VMM_EXIT_EMULATION = 5,	   /* KVM could not emulate an instruction, or entry failed */
	VMM_EXIT_RESTORE = 6,	   /* a snapshot could not be restored */
};

/* ---------------------------------------------------------------- guest memory */

#define VMM_MAX_MEM_REGIONS 2
/* Guest RAM above this address moves above 4 GiB, leaving room for device MMIO. */
#define VMM_MMIO_HOLE_START 0xc0000000ull
#define VMM_MMIO_HOLE_END   0x100000000ull

struct vmm_mem_region {
	uint64_t gpa;	 /* guest physical base */
	uint64_t size;	 /* bytes */
	uint64_t offset; /* offset of this region inside the host mapping */
};

/* Guest RAM is one host mapping split into at most two guest regions (below the MMIO
 * hole and above 4 GiB). */
struct vmm_mem {
	uint8_t *host; /* the host mapping of all of guest RAM */
	uint64_t size; /* total RAM bytes */
	unsigned nr_regions;
	struct vmm_mem_region regions[VMM_MAX_MEM_REGIONS];
	bool owned; /* host mapping is ours to munmap */
};

/* Computes the region layout for `size` bytes of RAM (no allocation). */
void vmm_mem_layout(struct vmm_mem *mem, uint64_t size);

/* The one checked translator from guest physical addresses to host pointers:
 * returns a pointer to `len` bytes at `gpa`, or NULL when any byte of the range lies
 * outside guest RAM (or the range wraps). Every guest-controlled address goes
 * through here. */
void *vmm_gpa(const struct vmm_mem *mem, uint64_t gpa, uint64_t len);

/* Maps anonymous guest RAM of `size` bytes; fails with -ENOMEM naming the size. */
int vmm_mem_alloc(struct vmm_mem *mem, uint64_t size);
void vmm_mem_free(struct vmm_mem *mem);

/* Highest guest physical address + 1. */
uint64_t vmm_mem_end(const struct vmm_mem *mem);

/* ---------------------------------------------------------------- the bus */

/* A device's access handler: `offset` is relative to the registered base. Reads fill
 * `data`; `len` is 1, 2, 4 or 8. Called on a vCPU thread: devices lock themselves. */
typedef void (*vmm_bus_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write);

struct vmm_bus_range {
	uint64_t base;
	uint64_t len;
	vmm_bus_fn fn;
	void *opaque;
	const char *name;
};

#define VMM_BUS_MAX 32

/* Address ranges sorted by base; registration happens before vCPUs run, so lookups
 * need no lock. */
struct vmm_bus {
	unsigned nr;
	struct vmm_bus_range ranges[VMM_BUS_MAX];
};

/* Adds [base, base+len). Returns -EEXIST when it overlaps a registered range (the
 * log names both), -EINVAL for an empty or wrapping range, -ENOSPC when full. */
int vmm_bus_register(struct vmm_bus *bus, uint64_t base, uint64_t len, vmm_bus_fn fn, void *opaque,
		     const char *name);

/* The range holding `addr`, or NULL. */
const struct vmm_bus_range *vmm_bus_find(const struct vmm_bus *bus, uint64_t addr);

/* Dispatches one access; returns false when nothing is mapped there (reads then
 * return all ones, as on real hardware). An access straddling the end of a range
 * is refused the same way. */
bool vmm_bus_access(const struct vmm_bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		    bool is_write);

/* ---------------------------------------------------------------- ELF and boot */

struct vmm_elf_info {
	uint64_t entry;	    /* ELF entry (64-bit boot protocol entry for a vmlinux) */
	uint32_t pvh_entry; /* XEN_ELFNOTE_PHYS32_ENTRY, when has_pvh */
	bool has_pvh;
	uint64_t load_start; /* lowest loaded physical address */
	uint64_t load_end;   /* highest loaded physical address + 1 */
};

/* Parses the ELF image in `buf` (untrusted) and, when `mem` is non-NULL, copies its
 * PT_LOAD segments to their physical addresses in guest RAM. Returns 0, or -ENOEXEC
 * with `err` naming what is wrong (bad magic, wrong class or machine, a segment
 * outside the file or outside guest RAM, ...). */
int vmm_elf_load(const uint8_t *buf, size_t len, struct vmm_mem *mem, struct vmm_elf_info *info,
		 char *err, size_t errlen);

/* Fixed guest physical layout of the boot structures we write below 1 MiB. */
#define BOOT_GDT_ADDR	  0x500ull
#define BOOT_START_INFO	  0x6000ull /* PVH hvm_start_info, modules and memmap */
#define BOOT_ZERO_PAGE	  0x7000ull /* Linux boot_params */
#define BOOT_PML4_ADDR	  0x9000ull /* identity page tables for the 64-bit protocol */
#define BOOT_CMDLINE_ADDR 0x20000ull
#define BOOT_CMDLINE_MAX  2048	     /* Linux's COMMAND_LINE_SIZE on x86, with its NUL */
#define BOOT_MPTABLE_ADDR 0x9fc00ull /* last KiB of base memory, where Linux looks */
#define BOOT_HIMEM_START  0x100000ull

enum vmm_boot_protocol { VMM_BOOT_AUTO, VMM_BOOT_PVH, VMM_BOOT_LINUX64 };

struct vmm_boot_params {
	enum vmm_boot_protocol protocol; /* the one actually used after vmm_boot_setup */
	const char *cmdline;
	uint64_t initrd_gpa;
	uint64_t initrd_size;
	unsigned vcpus;
	const struct vmm_acpi_cfg *acpi; /* NULL: no ACPI tables (MP table only) */
	uint64_t rsdp_gpa;		 /* out: where the RSDP went, 0 without ACPI */
};

/* Writes everything the kernel finds in memory at entry: command line, e820/PVH
 * memory map, start_info or boot_params, MP table, ACPI tables when bp->acpi is set
 * (their RSDP in start_info.rsdp_paddr or boot_params.acpi_rsdp_addr), and for the
 * 64-bit protocol the GDT and identity page tables. `initrd` (if any) is copied high
 * in RAM. Returns -EINVAL with `err` set when something does not fit. */
int vmm_boot_setup(struct vmm_mem *mem, const struct vmm_elf_info *elf, struct vmm_boot_params *bp,
		   const uint8_t *initrd, size_t initrd_len, char *err, size_t errlen);

/* Writes an Intel MP 1.4 table for `vcpus` CPUs, one IOAPIC and the ISA IRQs. */
int vmm_mptable_write(struct vmm_mem *mem, unsigned vcpus);

/* The e820 map thaw gives a guest of this memory layout. */
struct vmm_e820 {
	uint64_t addr, size;
	uint32_t type;
};
#define VMM_E820_RAM	  1
#define VMM_E820_RESERVED 2
/* Fills up to `max` entries, returns how many. */
unsigned vmm_e820_build(const struct vmm_mem *mem, struct vmm_e820 *out, unsigned max);

/* ---------------------------------------------------------------- ACPI (vmm/acpi/) */

/* Where the ACPI tables and the VMGenID generation ID live: below 1 MiB, inside the
 * range vmm_e820_build reports reserved, so the guest never uses them as RAM. */
#define BOOT_ACPI_ADDR	  0xe0000ull /* RSDP, then XSDT, FADT, MADT, DSDT */
#define BOOT_ACPI_SIZE	  0x10000ull
#define BOOT_VMGENID_ADDR 0xf0000ull /* the 16-byte generation ID, a page of its own */
#define VMM_VMGENID_LEN	  16
/* IOAPIC pin of the ACPI Generic Event Device (ACPI0013): above the virtio IRQs
 * (VIRTIO_IRQ_BASE .. +VIRTIO_MAX_DEVS-1 = 5..20) and the ISA ones, the IOAPIC's last. */
#define VMM_GED_IRQ 23

#define VMM_ACPI_MAX_MMIO 16 /* VIRTIO_MAX_DEVS */

struct vmm_acpi_mmio {
	uint64_t base, size;
	uint32_t irq; /* GSI, edge triggered, active high */
};

/* What the tables describe. Plain values: building them touches no VM state. */
struct vmm_acpi_cfg {
	unsigned vcpus; /* 1..255: one MADT local APIC each, ids 0..vcpus-1 */
	unsigned nr_virtio;
	struct vmm_acpi_mmio virtio[VMM_ACPI_MAX_MMIO]; /* virtio-mmio windows: LNRO0005 */
	/* Guest physical address of the 16-byte generation ID (8-byte aligned), or 0 for
	 * no VMGenID device and no GED. */
	uint64_t vmgenid_gpa;
};

/* Builds RSDP, XSDT, FADT (hardware-reduced), MADT and DSDT for `cfg` into guest
 * memory at BOOT_ACPI_ADDR and returns the RSDP's address in *rsdp_gpa. Pure apart
 * from the memory it writes. -EINVAL for a bad cfg (vCPU count, more than 16 virtio
 * windows, a misaligned generation-ID address), -ENOSPC when the tables do not fit in
 * BOOT_ACPI_SIZE, -EFAULT when that range is not guest RAM. */
int vmm_acpi_write(struct vmm_mem *mem, const struct vmm_acpi_cfg *cfg, uint64_t *rsdp_gpa);

/* A fresh generation ID from getrandom(2). 0 or -errno. */
int vmm_vmgenid_generate(uint8_t id[VMM_VMGENID_LEN]);
/* 0 when the 16 bytes at `gpa` are guest RAM inside a range vmm_e820_build reports
 * reserved and do not cross a page (what the guest's driver maps); -EINVAL otherwise.
 * For checking an address read from a snapshot before writing there: it reads only
 * mem's layout, so a layout without memory behind it (a restore's plan) will do. */
int vmm_vmgenid_check(const struct vmm_mem *mem, uint64_t gpa);
/* Writes `id` at `gpa` (checked as above). Call it while no vCPU runs: the guest
 * reads the 16 bytes without a lock, so a torn write is a torn ID. 0 or -EINVAL. */
int vmm_vmgenid_write(struct vmm_mem *mem, uint64_t gpa, const uint8_t id[VMM_VMGENID_LEN]);
/* Pulses the GED's interrupt (KVM_IRQ_LINE 1 then 0 on VMM_GED_IRQ): the guest's GED
 * driver runs _EVT, which sends Notify (0x80) to the VMGenID device; Linux's vmgenid
 * driver then re-reads the ID and, when it changed, reseeds its CRNG
 * (add_vmfork_randomness). Needs the in-kernel irqchip. On a restore, call it after the
 * irqchip and every LAPIC are restored (KVM_SET_IRQCHIP and KVM_SET_LAPIC overwrite
 * pending interrupts) and before the first KVM_RUN: the guest has the pin unmasked, so
 * the interrupt waits in the target LAPIC until that vCPU takes interrupts. 0 or
 * -errno (logged). */
int vmm_ged_notify(int vm_fd);

/* ---------------------------------------------------------------- CPU templates */

/* A named set of CPUID features hidden from the guest. `pvm` hides what PVM's
 * instruction emulator cannot execute in a guest kernel (xrstor, clac, popcnt, ...). */
struct vmm_cpu_template {
	const char *name;
	const char *why;
	/* bits cleared: [leaf-index][register] for the leaves below */
	uint32_t clear_1_ecx, clear_1_edx;
	uint32_t clear_7_ebx, clear_7_ecx, clear_7_edx;
	uint32_t clear_ext1_ecx, clear_ext1_edx; /* 0x80000001 */
	bool hide_xsave_leaf;			 /* drop leaf 0xD */
};

/* A custom CPU template (PUT /cpu-config, Firecracker's format): for CPUID registers
 * and MSRs, which bits the guest sees set, cleared or as the host's. A register becomes
 * (value & keep) | set. */
#define VMM_CPUID_MODS_MAX 64
#define VMM_MSR_MODS_MAX   32
struct vmm_cpuid_mod {
	uint32_t leaf, subleaf;
	bool subleaf_significant; /* else the leaf's entry whatever its index */
	uint8_t reg;		  /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t keep, set;
	bool optional; /* a leaf the host lacks is skipped, not refused (static templates) */
};
struct vmm_msr_mod {
	uint32_t addr;
	uint64_t keep, set;
};
struct vmm_cpu_config {
	unsigned nr_cpuid, nr_msr;
	struct vmm_cpuid_mod cpuid[VMM_CPUID_MODS_MAX];
	struct vmm_msr_mod msr[VMM_MSR_MODS_MAX];
};

/* Applies `c`'s CPUID modifiers to the entries in place (after vmm_cpuid_apply). A leaf
 * the entries lack is refused: -ENOENT with `err` naming it. Pure. */
int vmm_cpuid_apply_config(struct kvm_cpuid_entry2 *e, unsigned n, const struct vmm_cpu_config *c,
			   char *err, size_t errlen);

/* Firecracker's static CPU templates (vmm/cpu_template.c): "C3", "T2", "T2S", "T2CL"
 * (Intel) and "T2A" (AMD), each thaw's own definition of which CPUID bits (and, for T2S
 * and T2CL, which IA32_ARCH_CAPABILITIES bits) the guest sees, compiled into the custom
 * template format so they take PUT /cpu-config's path. */
/* Their names, NULL-terminated. */
const char *const *vmm_static_template_names(void);
/* The table's own copy of `name` (a pointer that lives as long as the process), or NULL
 * when `name` is not a static template. */
const char *vmm_static_template_name(const char *name);
/* Fills `out` with template `name`. -ENOENT when unknown. Pure. */
int vmm_static_template_config(const char *name, struct vmm_cpu_config *out);
/* Whether template `name` can be honoured on a host whose CPUID leaf 0 vendor string is
 * `vendor` ("GenuineIntel") and which is (`pvm`) a PVM guest: 0, or -ENOENT (unknown) /
 * -EOPNOTSUPP (other vendor, PVM) with `err` saying why. Pure. */
int vmm_static_template_check(const char *name, const char *vendor, bool pvm, char *err,
			      size_t errlen);
/* The vendor string of leaf 0 among `e` ("" when absent), NUL-terminated. */
void vmm_cpuid_vendor(const struct kvm_cpuid_entry2 *e, unsigned n, char vendor[13]);
/* This CPU's vendor string, from one CPUID instruction. */
void vmm_host_cpu_vendor(char vendor[13]);

/* Looks a template up by name ("host", "pvm"); NULL when unknown. */
const struct vmm_cpu_template *vmm_cpu_template_find(const char *name);
/* Names of all templates, NULL-terminated, for help and errors. */
const char *const *vmm_cpu_template_names(void);
/* The template named `name`, or when NULL the right one for this host ("pvm" on a
 * PVM host, else "host"). Logs and returns NULL for an unknown name. */
const struct vmm_cpu_template *vmm_pick_template(const char *name);
/* True on a PVM host (kvm_pvm is the KVM backend); the only place thaw asks. It asks
 * the CPU, not /sys, so the answer is the same inside a jail. */
bool vmm_host_is_pvm(void);
/* The rule behind it: a host CPU with neither VMX (leaf 1 ECX bit 5) nor SVM (leaf
 * 0x80000001 ECX bit 2) can only run KVM through PVM. */
#define CPUID_1_ECX_VMX	   (1u << 5)
#define CPUID_EXT1_ECX_SVM (1u << 2)
bool vmm_cpuid_means_pvm(uint32_t leaf1_ecx, uint32_t ext1_ecx);

/* Applies `tmpl` to the entries in place and makes them right for vCPU `index` of
 * `nr_vcpus` (APIC id, hypervisor bit, topology). Entries may be removed; returns the
 * new count. Pure: takes what KVM_GET_SUPPORTED_CPUID returned. */
unsigned vmm_cpuid_apply(struct kvm_cpuid_entry2 *e, unsigned n,
			 const struct vmm_cpu_template *tmpl, unsigned index, unsigned nr_vcpus);
/* PVM only: ORs the host CPU's own bits into the feature leaves among `e` (1, 7.*, 0xD.1,
 * 0x80000001). PVM runs guest user mode natively on the host CPU, so a guest there can
 * use the CPU's features whatever CPUID says, and what KVM reports understates them
 * (one PVM version offers no SSE3 in KVM_GET_SUPPORTED_CPUID, yet gives every vCPU the
 * host CPU's leaves in place of the CPUID it was set, which is then what a snapshot
 * holds). The result is for checking a snapshot's features, not for a vCPU. */
void vmm_cpuid_add_host_features(struct kvm_cpuid_entry2 *e, unsigned n);
/* The host CPU's own feature leaves, one for each of `like`'s n entries (same leaf and
 * subleaf; registers that are not features stay 0): what a guest on PVM can use. */
void vmm_cpuid_host_view(const struct kvm_cpuid_entry2 *like, unsigned n,
			 struct kvm_cpuid_entry2 *out);

/* CPU compatibility policy (vmm/cpu_compat.c). Decides whether a guest saved with `saved`
 * facts and `guest` CPUID can run on a host with `host` facts and `supported` CPUID (what
 * KVM_GET_SUPPORTED_CPUID returned). Pure when `host` is given; `host` NULL reads this
 * CPU's vendor with one CPUID instruction (use that on the restore path:
 * snap_host_facts_current costs ~175 us under PVM, where every CPUID traps).
 * Refuses another CPU vendor and any feature bit (CPUID 1 ECX/EDX, 7.0 EBX/ECX/EDX,
 * 0x80000001 ECX/EDX, 0xD.1 EAX) the guest saw that the host lacks, naming them
 * ("host lacks CPU features the snapshot's guest uses: avx512f, avx512bw"). Bits KVM
 * emulates or the VMM sets itself (hypervisor, tsc_deadline, osxsave, ospke, x2apic) are
 * not compared. Returns 0 or -ENOTSUP with the message in `err`. */
struct snap_host_facts;
int vmm_cpu_compat_check(const struct snap_host_facts *saved, const struct kvm_cpuid_entry2 *guest,
			 size_t nguest, const struct snap_host_facts *host,
			 const struct kvm_cpuid_entry2 *supported, size_t nsupported, char *err,
			 size_t errlen);
/* Name of a feature bit ("avx2"), or NULL when unnamed. reg: 0 eax, 1 ebx, 2 ecx, 3 edx. */
const char *vmm_cpu_feature_name(uint32_t leaf, uint32_t subleaf, unsigned reg, unsigned bit);

/* ------------------------------------------------ seccomp and signal metrics */

/* Firecracker's "seccomp" and "signals" groups (vmm/signals.c): totals since the start. */
struct vmm_signal_counts {
	uint64_t seccomp_faults; /* SIGSYS from a refused syscall */
	uint64_t sigbus, sigsegv, sigxfsz, sigxcpu, sigpipe, sighup, sigill;
};
void vmm_signal_counts(struct vmm_signal_counts *out);
/* Counts `sig` (SIGSYS counts as a seccomp fault); others are ignored. Async-signal-safe. */
void vmm_signal_count(int sig);
/* Before any thread exists: SIGPIPE counted and otherwise ignored; SIGBUS, SIGSEGV,
 * SIGILL, SIGXFSZ and SIGXCPU counted, the last line written, then their default action
 * (not the first two under ASan, whose handlers stay). 0 or -errno. */
int vmm_signals_install(void);
/* Where the last line goes, the metrics file (-1: nowhere). Any thread. */
void vmm_signals_set_metrics_fd(int fd);
/* Writes the last line: `{"utc_timestamp_ms": N, "seccomp": {...}, "signals": {...}}`
 * to the metrics fd. Async-signal-safe; for handlers of signals that end the process. */
void vmm_signals_last_line(void);
/* That line into `buf` (cap bytes); its length. Pure, async-signal-safe. */
size_t vmm_signals_format_last_line(char *buf, size_t cap, uint64_t utc_ms);
/* Async-signal-safe formatting: appends a string or a number at `off`, never past
 * `cap`; the new offset. */
size_t vmm_sigsafe_put_str(char *buf, size_t off, size_t cap, const char *s);
size_t vmm_sigsafe_put_num(char *buf, size_t off, size_t cap, unsigned long long v, bool hex);

/* ---------------------------------------------------------------- 8250 UART */

#define UART_FIFO 64

/* The 8250/16550A register model. State only: no fds, no locks, so it can be saved,
 * restored and unit tested. */
struct uart_state {
	uint8_t ier, iir, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	uint8_t rx[UART_FIFO];
	uint8_t rx_head, rx_len;
	bool thr_ipending; /* THR-empty interrupt is pending until IIR is read or THR written */
};

struct uart {
	struct uart_state s;
	pthread_mutex_t lock;
	/* where output goes; called with the lock held */
	void (*out)(void *opaque, uint8_t byte);
	/* raise or lower the IRQ line; called with the lock held */
	void (*irq)(void *opaque, int level);
	void *opaque;
	int irq_level;
	/* Firecracker's uart metrics, totals changed under `lock` (not snapshot state):
	 * bytes the guest wrote to THR for the output (loopback aside), bytes it read from
	 * RBR, and RBR reads that found the FIFO empty. */
	uint64_t n_write, n_read, n_missed_read;
};

struct uart_counts {
	uint64_t write_count, read_count, missed_read_count;
};
/* The counters above, read under the lock. */
struct uart_counts uart_counts(struct uart *u);

void uart_init(struct uart *u, void (*out)(void *, uint8_t), void (*irq)(void *, int),
	       void *opaque);
/* Bus handler for the 8 registers. */
void uart_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Queues input bytes; returns how many fit (the rest must be offered again later). */
size_t uart_input(struct uart *u, const uint8_t *buf, size_t len);
/* Room left in the receive FIFO. */
size_t uart_rx_room(struct uart *u);

struct snap_writer;
struct snap_section;
/* The UART in a snapshot: section device.com1 (docs/snapshot-format.md). save locks
 * the UART; decode checks an untrusted section (version, place, lengths) into `st`
 * without touching a UART; restore takes a decoded state (before vCPUs run). */
int uart_save_section(struct uart *u, struct snap_writer *w);
int uart_decode_section(const struct snap_section *sec, struct uart_state *st, char *err,
			size_t errlen);
void uart_restore(struct uart *u, const struct uart_state *st);

/* ---------------------------------------------------------------- i8042 (vmm/i8042.c) */

#define I8042_BUF 16

/* The controller's state only, so it can be saved, restored and unit tested. */
struct i8042_state {
	uint8_t status, control, outp;
	uint8_t cmd; /* a command waiting for its data byte (0x60 or 0xd1), else 0 */
	uint8_t buf[I8042_BUF];
	uint8_t head, len;
};

/* Firecracker's i8042 metrics; under the lock. */
struct i8042_counts {
	uint64_t read_count, write_count, reset_count, missed_read_count, missed_write_count;
};

struct i8042 {
	struct i8042_state s;
	struct i8042_counts n;
	pthread_mutex_t lock;
	/* The guest pulsed the reset line (command 0xfe); called without the lock. */
	void (*reset)(void *opaque);
	/* Pulse IRQ 1: a byte is waiting; called without the lock. */
	void (*irq)(void *opaque);
	void *opaque;
};

void i8042_init(struct i8042 *k, void (*reset)(void *), void (*irq)(void *), void *opaque);
/* Bus handler for ports 0x60-0x64 (offsets 0 and 4; the others read 0xff). */
void i8042_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Queues Ctrl+Alt+Del as key presses (scan code set 2) and pulses IRQ 1 unless the guest
 * masked it, as Firecracker's SendCtrlAltDel does. -ENOSPC when the guest left too
 * little room in the output buffer (it is not reading it). Any thread. */
int i8042_send_ctrl_alt_del(struct i8042 *k);
/* A consistent copy of the counters (metrics). */
struct i8042_counts i8042_counts(struct i8042 *k);
/* Section i8042 (optional; docs/snapshot-format.md), as the UART's: save locks; decode
 * checks an untrusted section into `st`; restore takes a decoded state before vCPUs run. */
int i8042_save_section(struct i8042 *k, struct snap_writer *w);
int i8042_decode_section(const struct snap_section *sec, struct i8042_state *st, char *err,
			 size_t errlen);
void i8042_restore(struct i8042 *k, const struct i8042_state *st);

/* ---------------------------------------------------------------- main loop */

/* The main thread's epoll loop. Device backends (tap, vsock sockets, io_uring
 * completions), the console and the API server register fds with a callback; the
 * callbacks run on the main thread, one at a time. */
typedef void (*vmm_loop_fn)(void *opaque, uint32_t events);

#define VMM_LOOP_MAX 64

struct vmm_loop_entry {
	int fd;
	vmm_loop_fn fn;
	void *opaque;
	bool dead; /* removed during this round: not reused until it ends */
};

struct vmm_loop {
	int epfd;
	bool stop;
	bool dispatching; /* inside a round of callbacks */
	int status;
	/* Wait limit per round (-1: none) and what to do when it passes; a callback
	 * may change both, e.g. to retry input a device could not take yet. The idle
	 * callback also runs when timeout_ms passed since its last run while fds kept
	 * the loop busy, so a flood of events cannot starve it. */
	int timeout_ms;
	void (*idle)(void *opaque);
	void *idle_opaque;
	uint64_t idle_ran_ns; /* CLOCK_MONOTONIC of its last run */
	/* Runs once before the next wait, then is cleared: work that must not delay what
	 * the current round answers (vm_launch's seal comes after the API's reply). */
	void (*before_wait)(void *opaque);
	void *before_wait_opaque;
	struct vmm_loop_entry entries[VMM_LOOP_MAX];
};

int vmm_loop_init(struct vmm_loop *l);
/* Watches `fd` for `events` (EPOLLIN, ...). -ENOSPC when the table is full. */
int vmm_loop_add(struct vmm_loop *l, int fd, uint32_t events, vmm_loop_fn fn, void *opaque);
int vmm_loop_mod(struct vmm_loop *l, int fd, uint32_t events);
/* Stops watching `fd` (does not close it). Safe from inside a callback. */
void vmm_loop_del(struct vmm_loop *l, int fd);
/* Runs callbacks until vmm_loop_stop; returns the status given to it. */
int vmm_loop_run(struct vmm_loop *l);
void vmm_loop_stop(struct vmm_loop *l, int status);
void vmm_loop_destroy(struct vmm_loop *l);

/* ---------------------------------------------------------------- the VM */

#define VMM_MAX_VCPUS  32
#define VMM_MAX_DRIVES 8
#define VMM_MAX_NETS   4
/* virtio-mmio devices: 4 KiB windows from this base, IRQs from VIRTIO_IRQ_BASE up. */
#define VIRTIO_MMIO_BASE 0xd0000000ull
#define VIRTIO_MMIO_SIZE 0x1000ull
#define VIRTIO_IRQ_BASE	 5
#define VIRTIO_MAX_DEVS	 16
#define COM1_BASE	 0x3f8
#define COM1_IRQ	 4
#define I8042_BASE	 0x60
#define I8042_IRQ	 1
/* Firecracker's boot timer: the first page of the 32-bit MMIO hole, as on its x86. */
#define VMM_BOOT_TIMER_GPA 0xc0000000ull
#define PANIC_PORT	   0x505 /* pvpanic's ISA port: any write means the guest panicked */

struct vm;

/* How many of a vCPU's last exits it keeps for the report of a VM the guest ended. */
#define VCPU_EXIT_RING 12

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;

	/* What the uffd stall detector reads (vm_vcpu_sample): written by this vCPU's
	 * thread only, read with atomics from the detector's thread. */
	uint64_t run_seq;   /* +1 entering KVM_RUN, +1 back from it: odd while inside */
	uint64_t run_exits; /* returns with an exit to handle (not EINTR): progress */
	/* Firecracker's vcpu metrics: exits by kind, and port or MMIO accesses no device
	 * claimed (its `failures`); written by this vCPU's thread only. */
	uint64_t exit_io_in, exit_io_out, exit_mmio_read, exit_mmio_write, unclaimed;
	bool parked;	 /* waiting in vm_pause's park: stopped on purpose */
	bool done;	 /* the thread has ended */
	int probe;	 /* set with a detector's kick: fingerprint the next EINTR */
	uint64_t fp_seq; /* 2 per fingerprint taken, odd while one is written */
	uint64_t fp;	 /* hash of the registers at the last one */
	bool fp_halted;	 /* not KVM_MP_STATE_RUNNABLE at the last one (halted, ...) */
	/* The last exits, a ring written by this vCPU's thread only and read by it when the
	 * guest ends the VM by itself (a triple fault, ...): what the guest did last. */
	struct vcpu_exit_rec {
		uint64_t ns;   /* CLOCK_MONOTONIC when KVM_RUN returned */
		uint64_t addr; /* the port or MMIO address, else 0 */
		uint32_t reason;
		uint32_t info; /* io/mmio: size | is_write << 8; else 0 */
	} last_exits[VCPU_EXIT_RING];
	uint64_t nr_exits_seen; /* exits written into last_exits, all told */
};

/* Devices, as typed configurations: the command line parses its strings once, the API
 * and restore fill these directly, and nothing downstream parses text again. */
#define VMM_DEV_ID_MAX	 32  /* a device's id, with its NUL */
#define VMM_DEV_PATH_MAX 256 /* a backend path (drive file, uds), with its NUL */
#define VMM_TAP_MAX	 16  /* IFNAMSIZ */

/* A token bucket as Firecracker's API gives it: `size` tokens (bytes or operations)
 * refilled evenly over `refill_ms`, plus `one_time_burst` tokens spent first and never
 * refilled. size or refill_ms 0: no bucket (no limit of this kind), as Firecracker. */
struct vmm_token_bucket {
	uint64_t size;
	uint64_t one_time_burst;
	uint64_t refill_ms;
};

/* A device's rate limiter: bandwidth in bytes, ops in requests (a drive's request, a
 * net frame, an entropy request). Both empty: no limiter. */
struct vmm_rate_limit {
	struct vmm_token_bucket bandwidth;
	struct vmm_token_bucket ops;
};

/* Buckets a run-time change leaves alone (virtio_set_rate_limit). */
#define VMM_RL_KEEP_BANDWIDTH 1u
#define VMM_RL_KEEP_OPS	      2u

/* True when `rl` limits anything. */
static inline bool vmm_rate_limit_on(const struct vmm_rate_limit *rl)
{
	return (rl->bandwidth.size && rl->bandwidth.refill_ms) ||
	       (rl->ops.size && rl->ops.refill_ms);
}

/* Where a device lives. A boot leaves it unset and the device is placed by its order
 * (drives, nets, vsock, rng); a restore sets it to the saved place, which is checked
 * and used, never recomputed. */
struct vmm_dev_place {
	bool set;
	unsigned index; /* k of the section name device.virtio<k>, the default MAC */
	uint64_t base;	/* MMIO window */
	uint32_t irq;	/* GSI */
};

struct vmm_drive_cfg {
	char id[VMM_DEV_ID_MAX];
	char path[VMM_DEV_PATH_MAX];
	bool read_only;
	bool root;    /* announce it as the kernel's root= (boot only) */
	bool beneath; /* path is looked up beneath vm_config.paths_dirfd */
	/* Restore only: `path` is made a new qcow2 overlay over this file first (a clone's
	 * own thin copy of the base's disk, made in constant time); "" for none. */
	char overlay_of[VMM_DEV_PATH_MAX];
	/* Restore only (from the snapshot): the qcow2 image is reverted to this internal
	 * snapshot before anything reads it (an internal disk checkpoint); "" for none. */
	char revert_to[VMM_DEV_ID_MAX * 2];
	struct vmm_rate_limit rl;
	struct vmm_dev_place place;
};

struct vmm_net_cfg {
	char id[VMM_DEV_ID_MAX];
	char tap[VMM_TAP_MAX];
	bool has_mac; /* else a locally administered MAC from the device's index */
	uint8_t mac[6];
	struct vmm_rate_limit rx_rl, tx_rl;
	struct vmm_dev_place place;
};

struct vmm_vsock_cfg {
	uint32_t guest_cid; /* 0: no vsock device; else 3 .. UINT32_MAX-1 */
	char uds[VMM_DEV_PATH_MAX];
	bool beneath; /* uds is checked beneath vm_config.paths_dirfd */
	struct vmm_dev_place place;
};

/* What the user asked for; owned by the caller. */
struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned vcpus;
	uint64_t mem_mib;
	const char *cpu_template; /* NULL: "pvm" on a PVM host, else "host" */
	/* A custom template on top (PUT /cpu-config), NULL for none; not owned. */
	const struct vmm_cpu_config *cpu_config;
	/* When cpu_config is a static template, its name (vmm_static_template_name's). */
	const char *static_template;
	enum vmm_boot_protocol protocol;
	const char *console_out; /* NULL: stdout */
	const char *console_in;	 /* NULL: stdin; "none"; else a unix socket path */
	struct vmm_drive_cfg drives[VMM_MAX_DRIVES];
	unsigned nr_drives;
	struct vmm_net_cfg nets[VMM_MAX_NETS];
	unsigned nr_nets;
	struct vmm_vsock_cfg vsock;
	bool rng;
	struct vmm_rate_limit rng_rl;
	struct vmm_dev_place rng_place;
	/* The directory a device marked `beneath` looks its path up in: a restore that
	 * takes the snapshot's own paths (--snapshot-paths DIR). See vmm_open_beneath. */
	int paths_dirfd;
	const char *paths_dir; /* the same directory by name, for sockets to bind */
	/* --no-acpi: no ACPI tables (no VMGenID); the MP table alone describes the CPUs
	 * and virtio devices are announced on the kernel command line. With ACPI (the
	 * default) the DSDT announces them instead, never both. */
	bool no_acpi;
};

/* Opens `path` with `flags` (O_CLOEXEC added): as given when `dirfd` < 0; else strictly
 * inside the directory `dirfd`, named `dir`: a relative path is taken from there, an
 * absolute one must lie inside `dir`, and the kernel resolves the rest with
 * RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS. Returns the fd or -errno
 * (-EXDEV: the path is or leads outside the directory; -ELOOP: it crosses a symlink). */
int vmm_open_beneath(int dirfd, const char *dir, const char *path, int flags);
/* For a path that must be a name (a unix socket to bind or connect): checks that
 * `path` resolves beneath `dirfd` (named `dir`) without symlinks, its last component
 * included, and writes "dir/path" to `out`. `dirfd` < 0: copies `path`. 0 or -errno. */
int vmm_path_beneath(int dirfd, const char *dir, const char *path, char *out, size_t cap);

/* Fills `cfg` from one command-line device spec ("id=NAME,path=FILE,ro=on|off,
 * root=on|off", "id=NAME,tap=TAP,mac=MAC", "cid=N,uds=PATH"). Keys not listed in
 * `allowed` (NULL: all of the kind's keys) are refused, so a restore's override takes
 * only what it may change. Returns 0, or -EINVAL with `err` naming the problem. The
 * functions parse each key once; a value cannot carry another key. */
int vmm_parse_drive(const char *spec, const char *const *allowed, struct vmm_drive_cfg *cfg,
		    unsigned *given, char *err, size_t errlen);
int vmm_parse_net(const char *spec, const char *const *allowed, struct vmm_net_cfg *cfg,
		  unsigned *given, char *err, size_t errlen);
int vmm_parse_vsock(const char *spec, const char *const *allowed, struct vmm_vsock_cfg *cfg,
		    unsigned *given, char *err, size_t errlen);
/* Bits of `given`: which keys the spec named. */
#define VMM_KEY_ID	   (1u << 0)
#define VMM_KEY_PATH	   (1u << 1) /* path=, tap=, uds= */
#define VMM_KEY_RO	   (1u << 2)
#define VMM_KEY_ROOT	   (1u << 3)
#define VMM_KEY_MAC	   (1u << 4)
#define VMM_KEY_CID	   (1u << 5)
#define VMM_KEY_OVERLAY_OF (1u << 6)

struct vmm_devices;

/* Creates the configured virtio devices at fixed places (MMIO base and IRQ by their
 * order on the command line), registers them on the bus, and appends to `cmdline`
 * (capacity `cap`) the root= of a root drive and, with cfg->no_acpi only, their
 * `virtio_mmio.device=` announcements (with ACPI the DSDT announces them). Implemented
 * in vmm/virtio/. Returns 0 or -errno, logging the device at fault. */
int vmm_devices_attach(struct vm *vm, const struct vm_config *cfg, char *cmdline, size_t cap);

/* Console input: stdin (NULL or "stdin"), "none", or a unix socket path whose
 * clients (one at a time) type into COM1. */
struct vmm_console {
	struct vm *vm;
	int listen_fd, fd;
	uint8_t buf[256];
	size_t len, off; /* bytes read but not yet taken by the UART */
};

struct vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_mmap_size;
	struct vmm_mem mem;
	struct vmm_bus pio;
	struct vmm_bus mmio;
	unsigned nr_vcpus;
	struct vcpu vcpus[VMM_MAX_VCPUS];
	const struct vmm_cpu_template *tmpl;
	const struct vmm_cpu_config *cpu_config; /* the boot's custom template, or NULL */
	const char *static_template; /* Firecracker's static template the guest has, or NULL */
	/* What the host offers, learnt once per process (they outlive a discarded VM). */
	struct kvm_cpuid2 *supported_cpuid;
	/* PVM only (else NULL: supported_cpuid is what a restored guest may use): that
	 * plus the host CPU's own features (vmm_cpuid_add_host_features). */
	struct kvm_cpuid2 *usable_cpuid;
	struct vm_restore_plan *plan; /* a restore's buffers (vmm/snapshot_int.h) */

	struct uart com1;
	struct i8042 i8042;
	/* --boot-timer: Firecracker's boot timer at VMM_BOOT_TIMER_GPA logs the guest's
	 * boot time when the guest writes 123 to it. */
	bool boot_timer;
	uint64_t boot_timer_start_ns, boot_timer_start_cpu_ns;
	int console_out_fd;
	/* Guest output written to a regular file stops at console_out_max bytes (0: no
	 * cap; vm_init sets VMM_CONSOLE_OUT_MAX_DEFAULT, --console-out-max overrides it):
	 * what comes after is dropped and counted, so a guest cannot fill the host's disk.
	 * A pipe, terminal or socket is drained by its reader and never capped. The
	 * counters are written by vCPU threads (under the UART's lock) and read by the API:
	 * use __atomic loads. */
	uint64_t console_out_max;
	uint64_t console_out_bytes;   /* written to console_out_fd */
	uint64_t console_out_dropped; /* dropped at the cap */
	/* Device work the main loop did for the guest (a queue kick, a completion, a tap or
	 * vsock socket ready, a rate limiter's refill): Firecracker's vmm.device_events.
	 * Main loop only; read with atomics by the metrics. */
	uint64_t device_events;
	uint64_t console_out_failed; /* write(2) to console_out_fd failed */
	int console_out_kind;	     /* vmm_console_out_prepare: 1 a regular file, -1 not capped */

	struct vmm_loop loop;	    /* the main thread's event loop */
	struct vmm_console console; /* console input */
	const char *console_in_spec;
	bool timing;		     /* --timing: print phase times to stderr */
	struct vm_control *control;  /* the API, when --api-sock is given */
	struct vmm_devices *devices; /* owned by vmm/virtio/ */
	struct uffd_backend *uffd;   /* owned by uffd/, when memory comes through uffd */

	/* A vCPU that wants the process to end stores a status and signals `exit_fd`;
	 * the main loop picks it up. The first status wins. */
	int exit_fd;
	int exit_status;
	int signal_fd;
	/* A console line containing `snapshot_after` signals trigger_fd (once). */
	const char *snapshot_after;
	int trigger_fd;
	char line[256];
	size_t line_len;
	pthread_mutex_t exit_lock;
	bool exiting; /* written under exit_lock, read with __atomic_load_n anywhere */

	/* vCPU pause protocol (snapshots, PATCH /vm): see vm_pause */
	pthread_mutex_t run_lock;
	pthread_cond_t run_cond;
	bool pause_requested;
	bool vcpus_quit; /* parked vCPU threads end instead of running (vm_discard) */
	unsigned nr_paused;
	unsigned nr_started;

	/* The uffd stall detector's timeout (--uffd-stall-timeout-ms; 0: off). vm_init
	 * sets VMM_UFFD_STALL_DEFAULT_MS. */
	unsigned uffd_stall_ms;

	/* The last vm_restore got past its plan: a failure after that leaves a VM that
	 * must not run (a failure in the plan leaves everything as it was). */
	bool restore_acted;
	bool paused;   /* vCPUs parked by vm_pause, or restored with --paused */
	bool prepared; /* built by vm_prepare, never run */
	/* The in-kernel PIT, left out of a fresh restore whose snapshot never programmed
	 * timer 0 (vm_pit_defer): KVM forks a kernel thread for it, a third of a fresh
	 * VM's cost on PVM. pit_on_demand: this VM started without one, so an exit at a
	 * PIT port is an access made before it existed (vm_pit_on_demand). pit_deferred:
	 * not made yet; pit_saved is then its state. Written under pit_lock. */
	bool pit_on_demand;
	bool pit_deferred;
	pthread_mutex_t pit_lock;
	struct kvm_pit_state2 pit_saved;
	char cmdline[BOOT_CMDLINE_MAX]; /* as given to the guest, saved in snapshots */
	/* Guest physical address of the VMGenID generation ID; 0 when the guest has no
	 * VMGenID device (booted with --no-acpi). */
	uint64_t vmgenid_gpa;

	/* MSRs saved in snapshots: KVM's list minus what this host cannot read */
	uint32_t *msr_indices;
	unsigned nr_msr_indices;

	/* restore phases (CLOCK_MONOTONIC ns; 0 = not reached), for metrics */
	struct vm_restore_times {
		uint64_t restore_start_ns, opened_ns, vm_created_ns, vcpus_created_ns, state_set_ns,
		    generation_ns, devices_restored_ns, running_ns;
	} times;
	uint64_t last_create_us;

	/* start-up timing, for the benchmark and metrics */
	uint64_t t_process_start_ns;
	uint64_t t_first_run_ns;
	uint64_t t_first_line_ns;
	uint64_t t_vcpu0_filtered_ns; /* vCPU 0's thread had its seccomp filter in */
};

int vmm_console_open(struct vmm_console *c, struct vm *vm, const char *spec);

/* Looks at what vm->console_out_fd is (a regular file is capped). On the main thread,
 * after the fd is set and before any vCPU runs: vm_launch calls it. */
void vmm_console_out_prepare(struct vm *vm);

/* COM1's output callback: writes one guest byte to vm->console_out_fd, within the
 * console_out_max cap when that is a regular file (see struct vm). A failed write (a
 * reader that went away) is logged, rate-limited, and never stops the guest. Called
 * under the UART's lock, on vCPU threads: no syscall but the write. */
void vmm_console_out(struct vm *vm, uint8_t byte);

/* Logs, once at exit, how many bytes of guest output the cap dropped (nothing when
 * none were). */
void vmm_console_report(const struct vm *vm);

/* The process half of `vm`, once, on a zero-filled `vm` (calloc'd: pages of it no
 * field uses then stay untouched): creates the main loop and the exit and
 * snapshot-trigger eventfds. Everything below needs it first. */
int vm_init(struct vm *vm);

/* Opens /dev/kvm once per process and checks the API version and the capabilities
 * thaw needs; a no-op when it is open. */
int vm_open_kvm(struct vm *vm);

/* vm_open_kvm, then creates an empty VM. Resets the VM half of `vm` (not what vm_init
 * set up, nor what vm_open_kvm and vm_get_supported_cpuid learnt of the host). */
int vm_create(struct vm *vm, unsigned nr_vcpus);

/* Registers guest RAM in `vm->mem` with KVM (one slot per region). Call it before
 * vm_create_irqchip: once the irqchip and PIT exist, registering a slot waits for an
 * SRCU grace period (up to a timer tick, ~7 ms measured), right after KVM_CREATE_VM
 * it does not. */
int vm_register_memory(struct vm *vm);

/* TSS and identity-map addresses, in-kernel PIC/IOAPIC/LAPIC. */
int vm_create_irqchip(struct vm *vm);

/* The in-kernel PIT, after vm_create_irqchip. KVM starts a kernel thread for it
 * (0.1-0.4 ms on PVM), so a restore makes it after its vCPU threads are started, which
 * then install their seccomp filters meanwhile. */
int vm_create_pit(struct vm *vm);

/* True when the saved PIT `s` cannot interrupt the guest: timer 0 still has the reset
 * mode KVM gives it (0xff, never programmed), and timers 1 and 2 raise no interrupt at
 * all. Such a PIT is observable only through its ports. */
bool vm_pit_unused(const struct kvm_pit_state2 *s);

/* Instead of vm_create_pit on a restore: the PIT is made, with state `s`, the first
 * time a vCPU touches ports 0x40-0x43 or 0x61; until then snapshots save `s`. */
void vm_pit_defer(struct vm *vm, const struct kvm_pit_state2 *s);

/* Creates the vCPU fds and maps their kvm_run. */
int vm_create_vcpu_fds(struct vm *vm);

/* Fetches what KVM offers (KVM_GET_SUPPORTED_CPUID) into vm->supported_cpuid and
 * vm->usable_cpuid, once per VM: a no-op when they are there. Touches nothing else of
 * `vm` but kvm_fd, so it may run on another thread while the VM is being built. */
int vm_get_supported_cpuid(struct vm *vm);

/* vm_get_supported_cpuid, vm_create_vcpu_fds, then CPUID through `vm->tmpl` and firmware-like LAPIC
 * LINTs. */
int vm_create_vcpus(struct vm *vm);

/* Sets the BSP's boot registers for the protocol in `bp`, entry at `entry`. */
int vm_setup_boot_regs(struct vm *vm, enum vmm_boot_protocol proto, uint64_t entry);

/* Registers COM1, the i8042 reset port and the panic port on the buses. */
int vm_setup_legacy_devices(struct vm *vm);

/* Starts one thread per vCPU running KVM_RUN. */
int vm_start_vcpus(struct vm *vm);

/* Starts them parked: each installs its seccomp filter and waits, before its first
 * KVM_RUN, for vm_launch (or vm_resume). Needs the vCPU fds (vm_create_vcpu_fds). */
int vm_start_vcpus_parked(struct vm *vm);

/* Opens the console input and starts the vCPUs (or leaves them parked when `paused`,
 * for vm_resume / PATCH /vm to start). Prints restore timing with --timing. */
int vm_launch(struct vm *vm, bool paused);

/* Firecracker's process flags for its API, as main.c parsed them. */
struct vm_control_opts {
	const char *sock; /* NULL: --no-api (then config_file is required) */
	const char *id;
	const char *config_file; /* --config-file: configure and boot before serving */
	/* --log-path, --level (enum api_log_level, -1: not given), --module,
	 * --show-level, --show-log-origin: the logger before any request */
	const char *log_path, *module;
	int log_level;
	bool show_level, show_log_origin;
	const char *metrics_path; /* --metrics-path */
	const char *metadata;	  /* --metadata: the MMDS store's first contents (JSON) */
	size_t mmds_size_limit;	  /* --mmds-size-limit, bytes; 0: Firecracker's 51200 */
	/* api_server.process_startup_time_us and _cpu_us (docs/api.md, metrics) */
	uint64_t startup_us, startup_cpu_us;
};

/* Serves Firecracker's API from the main loop (vmm/control.c): on o->sock, or with no
 * socket at all; applies the logger and metrics flags, then the configuration file
 * (which boots the VM when it has a boot source). 0, or -errno after logging why. */
int vm_control_start(struct vm *vm, const struct vm_control_opts *o);
/* Gives the API's per-request scratch pages back to the kernel (api_server_trim):
 * after a launch, between requests. A no-op without vm->control. */
/* Before a latency-critical load (a prepared VM): faults in the API pages it writes. */
void vm_control_warm(struct vm *vm);
void vm_control_trim(struct vm *vm);

/* Stops every vCPU out of KVM_RUN and waits until all are parked; vm_resume lets
 * them go. Called from the main thread only. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);

#define VMM_UFFD_STALL_DEFAULT_MS 3000u
/* Guest console output to a file beyond this is dropped: far more than a boot log or
 * a session of interactive use, far less than a disk. */
#define VMM_CONSOLE_OUT_MAX_DEFAULT (16ull << 20)
#define VMM_UFFD_STALL_MAX_MS	    3600000u

/* One vCPU as the uffd stall detector sees it (uffd/uffd.h). */
struct uffd_vcpu_sample;

/* Reads vCPU `i` (< vm->nr_vcpus) without a lock. Safe from any thread, at any time
 * after vm_create; a vCPU not started yet is inactive. */
void vm_vcpu_sample(struct vm *vm, unsigned i, struct uffd_vcpu_sample *s);

/* Kicks vCPU `i` out of KVM_RUN with the pause kick (immediate_exit and SIGRTMIN) and
 * asks it to fingerprint the return (registers, halted or not) for the stall detector.
 * A vCPU running guest code or halted returns at once and goes back in; one blocked
 * killably in the kernel (a guest page fault nobody serves) does not return. Safe from
 * any thread; does nothing for a vCPU that is not active. */
void vm_vcpu_probe(struct vm *vm, unsigned i);

/* Asks the main loop to end the process with `status` (first caller wins). Safe from
 * any thread. */
void vm_request_exit(struct vm *vm, int status, const char *why);

/* Prepares a VM ahead of a restore: VM, memory slot over an anonymous range of
 * `mem_mib`, irqchip (no PIT: see build_vm), vCPU fds, and the vCPU threads, parked before their
 * first KVM_RUN with their seccomp filters on. vm_restore of a snapshot of the same shape then maps
 * the snapshot over that range instead of building a VM (~0.5 ms instead of ~8 ms measured on PVM)
 * and vm_launch only wakes the threads; a snapshot of another shape has the VM discarded (its
 * threads end) and a new one built. */
int vm_prepare(struct vm *vm, unsigned nr_vcpus, uint64_t mem_mib);

/* Hands the VM's fds and mappings to a background thread that releases them, so the
 * caller can build another VM at once. Used when a prepared VM does not fit. */
void vm_discard(struct vm *vm);

/* Releases everything vm_create and later calls acquired. */
void vm_destroy(struct vm *vm);

/* Boots `cfg` (create, memory, kernel, boot structures, vCPUs): everything short of
 * starting the vCPU threads. Errors are logged; returns a vmm_exit_status. */
int vm_boot(struct vm *vm, const struct vm_config *cfg);

/* ---------------------------------------------------------------- snapshots */

struct vm_snapshot_opts {
	const char *path;	   /* the snapshot file; appears atomically */
	const char *mem_file_path; /* guest memory in this separate file, or NULL */
	bool stay_paused;	   /* leave the VM paused afterwards (else resume it) */
	bool no_fsync;		   /* tests and benchmarks only: not crash safe */
	/* Disk checkpoints of the writable qcow2 drives (docs/disk.md): external, each
	 * image becomes the snapshot's (it is not written again) and the VM goes on on a
	 * new overlay "<image>.after-<snapshot file name>"; internal, an internal snapshot
	 * named after the snapshot file in each image, reverted to at a load. */
	enum vmm_disk_checkpoint {
		VMM_CKPT_NONE,
		VMM_CKPT_EXTERNAL,
		VMM_CKPT_INTERNAL
	} disk_checkpoint;
};

/* Pauses the VM (if running), drains device I/O, saves every vCPU, the irqchip, PIT,
 * clock, devices and memory into opts->path, then resumes unless asked not to.
 * Called on the main thread. Returns 0 or -errno (logged); on failure no file
 * appears under the path. */
int vm_snapshot_create(struct vm *vm, const struct vm_snapshot_opts *opts);

struct snap_writer;
struct snap;
struct uffd_backend;

enum vm_mem_backend {
	VM_MEM_FILE,	 /* mmap MAP_PRIVATE of the snapshot's memory (the default) */
	VM_MEM_UFFD,	 /* anonymous memory filled by a userfaultfd handler thread */
	VM_MEM_UFFD_EXT, /* ... by an external handler (thaw-uffd or Firecracker's) */
};

struct vm_restore_opts {
	const char *path;
	bool clock_realtime; /* advance the guest clock by the time since the snapshot */
	enum vm_mem_backend backend;
	const char *uffd_sock;	   /* VM_MEM_UFFD_EXT: the handler's unix socket */
	const char *uffd_strategy; /* VM_MEM_UFFD: "ondemand", "prefetch", ... (uffd/) */
	const char *uffd_record;   /* record the faulted working set into this file */
	/* guest memory from this file instead of the one the snapshot names (NULL: as
	 * saved); Firecracker's mem_backend File with its own path */
	const char *mem_file;
	/* The host side of the snapshot's devices. A snapshot never chooses host paths
	 * or taps by itself: each of its drives, interfaces and its vsock takes its
	 * backend from the override with its id here, or, only when `snapshot_paths`
	 * names a directory, the one the snapshot names, looked up beneath that
	 * directory (vmm_open_beneath). A device with neither is refused by name, and so
	 * is an override naming no device of the snapshot. */
	struct vmm_drive_cfg drives[VMM_MAX_DRIVES]; /* id and path; read_only if given */
	bool drive_ro_given[VMM_MAX_DRIVES];
	unsigned nr_drives;
	struct vmm_net_cfg nets[VMM_MAX_NETS]; /* id and tap */
	unsigned nr_nets;
	bool has_vsock;
	char vsock_uds[VMM_DEV_PATH_MAX];
	const char *snapshot_paths;
	/* Resume the same machine rather than clone it: the generation ID stays the
	 * snapshot's (see vm_restore). */
	bool keep_generation;
};

/* What a restore checks of a section, offline (thaw-snap verify): the machine and its
 * memory layout, device.com1, device.virtio<k>, i8042; any other device.* is refused as a
 * device this thaw lacks; other sections are restore/'s and pass here. Fits
 * struct snap_checker. 0 or -errno with `err` naming the section and field. */
int vm_snapshot_check_section(const struct snap *s, const struct snap_section *sec, char *err,
			      size_t errlen);

/* Builds a VM from a snapshot: validates the file (untrusted), checks CPU
 * compatibility, maps memory MAP_PRIVATE, creates the VM and vCPUs (or uses the one
 * vm_prepare made, when it fits), sets all state and restores devices. A snapshot of a
 * guest with a VMGenID device gets a fresh generation ID from getrandom, written
 * before any vCPU runs, and the GED interrupt that makes the guest reseed its RNG
 * first (unless opts->keep_generation); one without says once that the clone's
 * entropy is not renewed. The vCPUs are not started. Needs vm_init. On failure `err`
 * names the cause; the caller must not run the VM. */
int vm_restore(struct vm *vm, const struct vm_restore_opts *opts, char *err, size_t errlen);

/* Memory through userfaultfd (vmm/uffd_glue.c, over uffd/'s uffd_restore_memory): maps
 * anonymous guest memory of the snapshot's size at vm->mem.host (MAP_FIXED over it when
 * vm->mem.host is set, as for a prepared VM; otherwise a new mapping, which vm->mem then
 * owns, also on failure), registers it with a userfaultfd and starts serving faults from
 * the snapshot's memory (own thread, or hands the uffd to the external handler at
 * opts->uffd_sock); vm->uffd holds the backend. vm->mem's layout and vm->nr_vcpus must
 * be set. Serving has started when it returns 0: vCPU state may be set (the kvmclock
 * MSR writes fault guest memory). A handler that dies later ends the VM
 * (vm_request_exit) with a clear error. */
int vm_uffd_restore(struct vm *vm, const struct snap *s, const struct vm_restore_opts *opts,
		    char *err, size_t errlen);
/* Stops the uffd backend (if any): its threads, counters and recorded working set. */
void vm_uffd_stop(struct vm *vm);

/* Waits until no device I/O is in flight (vCPUs paused); a no-op without virtio
 * devices. */
int vm_devices_quiesce(struct vm *vm);

/* ---------------------------------------------------------------- seccomp (vmm/seccomp.c) */

/* The kinds of thread thaw runs, each with its own seccomp allowlist. */
enum vmm_seccomp_thread {
	VMM_SECCOMP_MAIN,    /* main loop: API, console, backends, VM build, snapshots */
	VMM_SECCOMP_VCPU,    /* KVM_RUN and the device handlers it calls */
	VMM_SECCOMP_UFFD,    /* uffd/ handler and control threads */
	VMM_SECCOMP_RELEASE, /* vm_discard's thread: munmap and close */
	VMM_SECCOMP_NR_THREADS,
};

struct sock_fprog;

/* Readies every kind's filter (compiled to BPF when thaw was built: vmm/seccomp_rules.c),
 * installs the SIGSYS reporter and sets no_new_privs. Call once on the main thread before any other
 * thread exists; not calling it (thaw --no-seccomp) makes vmm_seccomp_install a
 * no-op. Returns 0 or -errno (logged). */
int vmm_seccomp_prepare(void);
/* Installs the filter of `kind` on the calling thread only (no TSYNC); threads it
 * creates afterwards inherit it. Call at the start of each thread, before it reads
 * anything a guest or client controls. 0 when installed or seccomp is off; -errno
 * (logged) otherwise, and the thread must not go on. A refused syscall prints
 * "thaw: seccomp: refused syscall NR (NAME) ..." and the process dies of SIGSYS. */
int vmm_seccomp_install(enum vmm_seccomp_thread kind);
/* Stacks on the calling thread a filter refusing io_uring_setup and io_uring_register:
 * no ring may be made or changed any more. vm_launch has the main loop call it on the main thread
 * once the VM's rings exist (drives, uffd handler), before its next wait, so after the
 * vCPUs go and after the reply to the API request that launched (the vCPU threads' own
 * filters refuse both calls); threads made later inherit it. Again on the same
 * thread, or with seccomp off: a no-op. 0, or -errno (logged): the VM must end. */
int vmm_seccomp_seal_rings(void);
/* True once vmm_seccomp_prepare succeeded. */
bool vmm_seccomp_enabled(void);
/* The program of filter `filter` (a kind, or VMM_SECCOMP_NR_THREADS for the seal) as
 * thaw installs it, with the calling process's pid, into `out` (out->filter is
 * malloc'ed), for tests. 0, -EINVAL or -ENOMEM. */
int vmm_seccomp_program(unsigned filter, struct sock_fprog *out);
/* "main", "vcpu", "uffd", "release". */
const char *vmm_seccomp_kind_name(enum vmm_seccomp_thread kind);

#endif
