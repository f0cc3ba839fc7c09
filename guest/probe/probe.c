/* Probe guest: everything after the drop to CPL3. The BSP parses the PVH start info and the
 * MP table (or ACPI MADT), prints THAW_PROBE_READY, starts the APs and then serves one-line
 * requests on COM1; APs wait for work posted in shared memory. All state lives in memory
 * or registers, so a snapshot may be taken and restored at any instruction. The request and
 * checksum definitions are in PROTOCOL.md; keep the two in step. */
#include "hw.h"

#define MIB	   (1UL << 20)
#define PAGE	   4096UL
#define MAPPED_TOP (4UL << 30) /* the static identity map covers [0, 4 GiB) */

/* ---- checksum and pattern (PROTOCOL.md "Checksums") ---- */
#define K1 0x9E3779B97F4A7C15UL
#define K2 0xD6E8FEB86659FD93UL

static inline u64 word_hash(u64 addr, u64 w)
{
	u64 x = (w ^ addr) * K1;
	return x ^ (x >> 32);
}

static inline u64 pattern(u64 seedk, u64 addr)
{
	u64 z = addr ^ seedk; /* seedk = seed * K2 */
	z = (z ^ (z >> 32)) * K2;
	return z ^ (z >> 32);
}

/* ---- boot information ---- */
struct hvm_start_info {
	u32 magic;
	u32 version;
	u32 flags;
	u32 nr_modules;
	u64 modlist_paddr;
	u64 cmdline_paddr;
	u64 rsdp_paddr;
	u64 memmap_paddr;
	u32 memmap_entries;
	u32 reserved;
};

struct hvm_memmap_entry {
	u64 addr;
	u64 size;
	u32 type;
	u32 reserved;
};

#define MAX_MEMMAP  32
#define CMDLINE_MAX 512

extern u32 pvh_start_info;
extern const u64 probe_exc_stubs[32];
extern const char probe_tramp_start[], probe_tramp_end[];
extern char isr_wake_timer[], isr_wake_serial[], isr_wake_ipi[];
extern char isr_spurious[], isr_gate[];
/* Interrupts taken, by source (timer, serial, IPI), counted by the CPL0 handlers. */
volatile u64 probe_wakes[3];

struct idt_entry {
	u16 off0;
	u16 sel;
	u8 ist;
	u8 attr;
	u16 off1;
	u32 off2;
	u32 zero;
};
struct idt_entry probe_idt[256] __attribute__((aligned(4096)));
u8 probe_apic_to_cpu[256];

struct fault_rec {
	u64 vec, err, rip, cs, rflags, rsp, cr2, pad;
};
struct fault_rec probe_fault_rec[MAX_CPUS];

struct dtr {
	u16 limit;
	u64 base;
} __attribute__((packed));

struct cregs { /* filled by isr_cregs in entry.S: keep the offsets */
	u64 cr0, cr2, cr3, cr4, efer;
	struct dtr gdtr;
	u8 pad0[6];
	struct dtr idtr;
	u8 pad1[6];
	u64 tr;
};
_Static_assert(__builtin_offsetof(struct cregs, gdtr) == 40, "isr_cregs layout");
_Static_assert(__builtin_offsetof(struct cregs, idtr) == 56, "isr_cregs layout");
_Static_assert(__builtin_offsetof(struct cregs, tr) == 72, "isr_cregs layout");

struct regs_rec {
	struct cregs c;
	u64 rflags, tsc, xmm8;
	u16 cs, ss, ds, tr;
	u64 gdt_base, idt_base;
	u16 gdt_limit, idt_limit;
	u32 apic_id, apic_svr, apic_tpr, apic_lvtt, apic_tdcr, apic_ticr, apic_lint0;
};

struct cpu {
	u32 apic_id;
	s64 rank; /* position among working CPUs, -1 if not working */
	volatile u32 online;
	volatile u32 faulted;
	volatile u64 done_gen;
	volatile u64 jobs;
	u64 result;
	struct regs_rec regs;
} __attribute__((aligned(64)));

enum { OP_NONE, OP_TOUCH, OP_SUM, OP_COMPUTE, OP_REGS };

struct work {
	u32 op;
	u64 start, len, seedk, n, nworkers;
};

static struct {
	u32 ncpus; /* CPUs described by the firmware table (capped) */
	u32 nworkers;
	const char *table; /* "mptable", "madt" or "none" */
	u64 table_addr;	   /* MP floating pointer or MADT */
	int have_start_info;
	u32 nmem;
	struct hvm_memmap_entry mem[MAX_MEMMAP];
	char cmdline[CMDLINE_MAX];
	u64 mem_bytes;
	u64 free_start, free_end; /* default touch/sum range */
	int idle_hlt;
	u64 tick_us;
	int uart_fifo;
	u64 boot_tsc;
	u64 requests;
	int aps_settled;
	struct cpu cpu[MAX_CPUS];
	struct work work;
	volatile u64 work_gen;
	char line[256];
	u32 line_len;
	int line_overflow;
} g;

/* ---- small string helpers (no libc) ---- */
static u64 str_len(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

static int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static int str_prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

static void mem_copy(void *d, const void *s, u64 n)
{
	u8 *dd = d;
	const u8 *ss = s;
	while (n--)
		*dd++ = *ss++;
}

/* Parses decimal or 0x-prefixed hex; 0 on success. */
static int parse_u64(const char *s, u64 *out)
{
	u64 v = 0;
	int digits = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		for (; *s; s++, digits++) {
			u64 d;
			if (*s >= '0' && *s <= '9')
				d = (u64)(*s - '0');
			else if (*s >= 'a' && *s <= 'f')
				d = (u64)(*s - 'a' + 10);
			else if (*s >= 'A' && *s <= 'F')
				d = (u64)(*s - 'A' + 10);
			else
				return -1;
			if (digits >= 16)
				return -1;
			v = (v << 4) | d;
		}
	} else {
		for (; *s; s++, digits++) {
			if (*s < '0' || *s > '9')
				return -1;
			u64 d = (u64)(*s - '0');
			if (v > (~0UL - d) / 10)
				return -1;
			v = v * 10 + d;
		}
	}
	if (!digits)
		return -1;
	*out = v;
	return 0;
}

/* ---- output line buffer ---- */
static char obuf[2048];
static u32 olen;

static void put_c(char c)
{
	if (olen < sizeof(obuf) - 2)
		obuf[olen++] = c;
}

static void put_s(const char *s)
{
	while (*s)
		put_c(*s++);
}

static void put_u(u64 v)
{
	char t[24];
	int n = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		put_c(t[--n]);
}

/* 0x-prefixed, minimal digits */
static void put_x(u64 v)
{
	int shift = 60;
	put_s("0x");
	while (shift > 0 && !((v >> shift) & 0xF))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		put_c("0123456789abcdef"[(v >> shift) & 0xF]);
}

/* 0x-prefixed, always 16 digits (checksums) */
static void put_x16(u64 v)
{
	put_s("0x");
	for (int shift = 60; shift >= 0; shift -= 4)
		put_c("0123456789abcdef"[(v >> shift) & 0xF]);
}

static void put_kv(const char *k, u64 v)
{
	put_c(' ');
	put_s(k);
	put_c('=');
	put_u(v);
}

static void put_kx(const char *k, u64 v)
{
	put_c(' ');
	put_s(k);
	put_c('=');
	put_x(v);
}

/* ---- COM1, polled ---- */
static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* IER: no interrupts until idle mode is set up */
	outb(COM1 + 3, 0x03); /* LCR: 8N1 */
	outb(COM1 + 2, 0x07); /* FCR: enable and clear FIFOs */
	outb(COM1 + 4, 0x0B); /* MCR: DTR RTS OUT2 (OUT2 gates the IRQ on a PC) */
	/* A 16550 reports FIFOs enabled in IIR[7:6]; then one THRE lets us send 16 bytes,
	 * halving the port exits per line. A plain 8250 gets one byte per THRE. */
	g.uart_fifo = (inb(COM1 + 2) & 0xC0) == 0xC0;
}

static void serial_write(const char *s, u64 n)
{
	u64 i = 0;
	while (i < n) {
		while (!(inb(COM1 + 5) & 0x20))
			cpu_relax();
		u64 burst = g.uart_fifo ? 16 : 1;
		for (u64 k = 0; k < burst && i < n; k++)
			outb(COM1, (u8)s[i++]);
	}
}

static void out_begin(void)
{
	olen = 0;
}

static void out_end(void)
{
	obuf[olen++] = '\n';
	serial_write(obuf, olen);
	olen = 0;
}

static int serial_getc(void)
{
	if (inb(COM1 + 5) & 0x01)
		return inb(COM1);
	return -1;
}

/* ---- boot info: PVH start info, memory map, command line ---- */
static void parse_start_info(void)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)(u64)pvh_start_info;
	if (!pvh_start_info || si->magic != 0x336ec578)
		return;
	g.have_start_info = 1;
	if (si->cmdline_paddr && si->cmdline_paddr < MAPPED_TOP) {
		const char *c = (const char *)si->cmdline_paddr;
		u32 i;
		for (i = 0; i < CMDLINE_MAX - 1 && c[i]; i++)
			g.cmdline[i] = c[i];
		g.cmdline[i] = 0;
	}
	if (si->version >= 1 && si->memmap_paddr && si->memmap_paddr < MAPPED_TOP) {
		const struct hvm_memmap_entry *m =
		    (const struct hvm_memmap_entry *)si->memmap_paddr;
		u32 n = si->memmap_entries;
		if (n > MAX_MEMMAP)
			n = MAX_MEMMAP;
		mem_copy(g.mem, m, n * sizeof(*m));
		g.nmem = n;
	}
}

/* Value of "key=" on the command line, or 0 if absent. */
static const char *cmdline_get(const char *key)
{
	static char val[64];
	u64 kl = str_len(key);
	const char *c = g.cmdline;
	while (*c) {
		while (*c == ' ')
			c++;
		if (str_prefix(c, key) && c[kl] == '=') {
			c += kl + 1;
			u32 i = 0;
			while (*c && *c != ' ' && i < sizeof(val) - 1)
				val[i++] = *c++;
			val[i] = 0;
			return val;
		}
		while (*c && *c != ' ')
			c++;
	}
	return 0;
}

static int range_is_ram(u64 start, u64 end)
{
	u64 pos = start;
	if (end <= start || end > MAPPED_TOP)
		return 0;
	while (pos < end) {
		u32 i;
		for (i = 0; i < g.nmem; i++) {
			const struct hvm_memmap_entry *e = &g.mem[i];
			if (e->type == 1 && e->addr <= pos && pos < e->addr + e->size) {
				pos = e->addr + e->size;
				break;
			}
		}
		if (i == g.nmem)
			return 0;
	}
	return 1;
}

static void setup_memory(void)
{
	u64 total = 0;
	const char *v = cmdline_get("probe.mem_mib");
	u64 mib;
	/* Without a PVH memory map (start info version 0) a command-line size stands in. */
	if (!g.nmem && v && !parse_u64(v, &mib) && mib > 2) {
		g.mem[0] = (struct hvm_memmap_entry){0, 0x9F000, 1, 0};
		g.mem[1] = (struct hvm_memmap_entry){MIB, mib * MIB - MIB, 1, 0};
		g.nmem = 2;
	}
	for (u32 i = 0; i < g.nmem; i++)
		if (g.mem[i].type == 1)
			total += g.mem[i].size;
	g.mem_bytes = total;
	g.free_start = PROBE_END;
	g.free_end = PROBE_END;
	for (u32 i = 0; i < g.nmem; i++) {
		const struct hvm_memmap_entry *e = &g.mem[i];
		if (e->type == 1 && e->addr <= PROBE_END && PROBE_END < e->addr + e->size) {
			u64 end = e->addr + e->size;
			g.free_end = end > MAPPED_TOP ? MAPPED_TOP : end;
		}
	}
	g.free_end &= ~(MIB - 1);
}

/* ---- CPU discovery: MP table, else ACPI MADT ---- */
static u8 byte_sum(const u8 *p, u64 n)
{
	u8 s = 0;
	while (n--)
		s = (u8)(s + *p++);
	return s;
}

static void add_cpu(u32 apic_id)
{
	if (apic_id > 255 || g.ncpus >= MAX_CPUS)
		return;
	for (u32 i = 0; i < g.ncpus; i++)
		if (g.cpu[i].apic_id == apic_id)
			return;
	g.cpu[g.ncpus++].apic_id = apic_id;
}

static const u8 *scan(u64 start, u64 len, const char *sig, u64 siglen)
{
	for (u64 a = start; a + 16 <= start + len; a += 16) {
		const u8 *p = (const u8 *)a;
		u64 i;
		for (i = 0; i < siglen && p[i] == (u8)sig[i]; i++)
			;
		if (i == siglen)
			return p;
	}
	return 0;
}

static int find_mptable(void)
{
	u64 areas[4][2] = {{0, 1024}, {0, 1024}, {0x9FC00, 1024}, {0xF0000, 0x10000}};
	u64 ebda = (u64)(*(volatile u16 *)0x40E) << 4;
	u64 basemem = (u64)(*(volatile u16 *)0x413) * 1024;
	areas[0][0] = ebda;
	areas[1][0] = basemem >= 1024 ? basemem - 1024 : 0;
	for (int i = 0; i < 4; i++) {
		u64 a = areas[i][0];
		if (!a || a + areas[i][1] > 0x100000)
			continue;
		for (u64 off = 0; off + 16 <= areas[i][1]; off += 16) {
			const u8 *fp = scan(a + off, areas[i][1] - off, "_MP_", 4);
			if (!fp)
				break;
			off = (u64)fp - a;
			u64 fplen = (u64)fp[8] * 16;
			if (!fplen || fplen > 64 || byte_sum(fp, fplen))
				continue;
			u32 cfg = *(const u32 *)(fp + 4);
			g.table_addr = (u64)fp;
			if (!cfg)
				continue;
			const u8 *ct = (const u8 *)(u64)cfg;
			if (ct[0] != 'P' || ct[1] != 'C' || ct[2] != 'M' || ct[3] != 'P')
				continue;
			u16 len = *(const u16 *)(ct + 4);
			if (len < 44 || byte_sum(ct, len))
				continue;
			/* Walk by the base table length: qboot (QEMU microvm) leaves the entry
			 * count at 0. */
			const u8 *e = ct + 44, *end = ct + len;
			while (e < end) {
				if (e[0] == 0) {
					if (e + 20 > end)
						break;
					if (e[3] & 1)
						add_cpu(e[1]);
					e += 20;
				} else if (e[0] <= 4) {
					e += 8;
				} else {
					break;
				}
			}
			return g.ncpus > 0;
		}
	}
	return 0;
}

static int madt_scan(const u8 *madt)
{
	u32 len = *(const u32 *)(madt + 4);
	if (len < 44 || len > 65536 || byte_sum(madt, len))
		return 0;
	for (const u8 *e = madt + 44; e + 2 <= madt + len && e[1] >= 2; e += e[1]) {
		if (e[0] == 0 && e[1] >= 8) {
			u32 flags = *(const u32 *)(e + 4);
			if (flags & 3)
				add_cpu(e[3]);
		}
	}
	return g.ncpus > 0;
}

static int find_madt(void)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)(u64)pvh_start_info;
	const u8 *rsdp = 0;
	if (g.have_start_info && si->rsdp_paddr && si->rsdp_paddr < MAPPED_TOP)
		rsdp = (const u8 *)si->rsdp_paddr;
	if (!rsdp) {
		u64 ebda = (u64)(*(volatile u16 *)0x40E) << 4;
		if (ebda && ebda < 0xA0000)
			rsdp = scan(ebda, 1024, "RSD PTR ", 8);
	}
	if (!rsdp)
		rsdp = scan(0xE0000, 0x20000, "RSD PTR ", 8);
	if (!rsdp || byte_sum(rsdp, 20))
		return 0;
	u64 xsdt = rsdp[15] >= 2 ? *(const u64 *)(rsdp + 24) : 0;
	u64 rsdt = *(const u32 *)(rsdp + 16);
	u64 sdt = xsdt && xsdt < MAPPED_TOP ? xsdt : rsdt;
	u64 esz = sdt == xsdt ? 8 : 4;
	if (!sdt || sdt >= MAPPED_TOP)
		return 0;
	const u8 *t = (const u8 *)sdt;
	u32 len = *(const u32 *)(t + 4);
	if (len < 36 || len > 65536)
		return 0;
	for (u64 off = 36; off + esz <= len; off += esz) {
		u64 p = esz == 8 ? *(const u64 *)(t + off) : *(const u32 *)(t + off);
		if (!p || p >= MAPPED_TOP)
			continue;
		const u8 *h = (const u8 *)p;
		if (h[0] == 'A' && h[1] == 'P' && h[2] == 'I' && h[3] == 'C') {
			g.table_addr = p;
			return madt_scan(h);
		}
	}
	return 0;
}

static void discover_cpus(void)
{
	u32 bsp = lapic_read(LAPIC_ID) >> 24;
	u64 limit;
	const char *v;
	g.ncpus = 0;
	add_cpu(bsp);			/* the BSP is always index 0 */
	v = cmdline_get("probe.table"); /* tests force one source to cover both parsers */
	if ((!v || str_eq(v, "mptable")) && find_mptable())
		g.table = "mptable";
	else if ((!v || str_eq(v, "madt")) && find_madt())
		g.table = "madt";
	else
		g.table = "none";
	v = cmdline_get("probe.cpus");
	if (v && !parse_u64(v, &limit) && limit >= 1 && limit < g.ncpus)
		g.ncpus = (u32)limit;
}

/* ---- interrupts ---- */
static void idt_set(u32 vec, u64 handler, u8 attr)
{
	struct idt_entry *e = &probe_idt[vec];
	e->off0 = (u16)handler;
	e->sel = SEL_KCODE64;
	e->ist = 0;
	e->attr = attr;
	e->off1 = (u16)(handler >> 16);
	e->off2 = (u32)(handler >> 32);
	e->zero = 0;
}

static void idt_fill(void)
{
	for (u32 v = 0; v < 32; v++)
		idt_set(v, probe_exc_stubs[v], 0x8E);
	for (u32 v = 32; v < 256; v++)
		idt_set(v, (u64)isr_spurious, 0x8E);
	idt_set(VEC_TIMER, (u64)isr_wake_timer, 0x8E);
	idt_set(VEC_SERIAL, (u64)isr_wake_serial, 0x8E);
	idt_set(VEC_WAKE, (u64)isr_wake_ipi, 0x8E);
	idt_set(VEC_GATE, (u64)isr_gate, 0xEE); /* DPL3 */
}

static void lapic_init_local(void)
{
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	lapic_write(LAPIC_TPR, 0);
	/* Our interrupts come through the IOAPIC; the 8259 stays out (masked below). */
	lapic_write(LAPIC_LVT_LINT0, 0x10000);
}

static void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

/* hlt idle: COM1 receive interrupts go to the BSP through IOAPIC pin 4, and a periodic
 * LAPIC timer tick bounds the wait should a serial interrupt ever be lost. */
static void idle_setup_bsp(void)
{
	outb(0x21, 0xFF); /* mask both 8259s */
	outb(0xA1, 0xFF);
	ioapic_write(0x10 + 2 * 4 + 1, g.cpu[0].apic_id << 24);
	ioapic_write(0x10 + 2 * 4, VEC_SERIAL); /* fixed, physical, edge, high, unmasked */
	outb(COM1 + 1, 0x01);			/* IER: received data available */
	if (g.tick_us) {
		lapic_write(LAPIC_TDCR, 0x3); /* divide by 16: 62.5 MHz on a 1 GHz APIC bus */
		lapic_write(LAPIC_LVT_TIMER, 0x20000 | VEC_TIMER);
		lapic_write(LAPIC_TICR, (u32)(g.tick_us * 1000 / 16));
	}
}

/* ---- per-CPU work ---- */
static void set_xmm_marker(u32 cpu)
{
	u64 m = 0x5EED000000000000UL | ((u64)cpu << 32) | 0xA5A5A5A5UL;
	__asm__ volatile("movq %0, %%xmm8" : : "r"(m));
}

static void collect_regs(struct regs_rec *r)
{
	u32 service = GATE_CREGS;
	__asm__ volatile("int3" : "+a"(service) : "D"(&r->c) : "rcx", "rdx", "memory");
	__asm__ volatile("pushfq; popq %0" : "=r"(r->rflags));
	__asm__ volatile("movq %%xmm8, %0" : "=r"(r->xmm8));
	__asm__ volatile("mov %%cs, %0" : "=r"(r->cs));
	__asm__ volatile("mov %%ss, %0" : "=r"(r->ss));
	__asm__ volatile("mov %%ds, %0" : "=r"(r->ds));
	r->tr = (u16)r->c.tr;
	r->gdt_base = r->c.gdtr.base;
	r->gdt_limit = r->c.gdtr.limit;
	r->idt_base = r->c.idtr.base;
	r->idt_limit = r->c.idtr.limit;
	r->apic_id = lapic_read(LAPIC_ID) >> 24;
	r->apic_svr = lapic_read(LAPIC_SVR);
	r->apic_tpr = lapic_read(LAPIC_TPR);
	r->apic_lvtt = lapic_read(LAPIC_LVT_TIMER);
	r->apic_tdcr = lapic_read(LAPIC_TDCR);
	r->apic_ticr = lapic_read(LAPIC_TICR);
	r->apic_lint0 = lapic_read(LAPIC_LVT_LINT0);
	r->tsc = rdtsc();
}

static u64 compute_chain(u32 cpu, u64 n)
{
	u64 x = 0x243F6A8885A308D3UL ^ cpu;
	for (u64 i = 0; i < n; i++)
		x = (x ^ (x >> 29)) * K1 + i;
	return x;
}

static void run_part(u32 cpu)
{
	const struct work *w = &g.work;
	struct cpu *c = &g.cpu[cpu];
	u64 pages = w->len / PAGE, r = (u64)c->rank, m = w->nworkers;
	u64 a = w->start + pages * r / m * PAGE;
	u64 end = w->start + pages * (r + 1) / m * PAGE;
	u64 s = 0;
	switch (w->op) {
	case OP_TOUCH:
		for (; a < end; a += 8) {
			u64 v = pattern(w->seedk, a);
			*(volatile u64 *)a = v;
			s += word_hash(a, v);
		}
		break;
	case OP_SUM:
		for (; a < end; a += 8)
			s += word_hash(a, *(volatile u64 *)a);
		break;
	case OP_COMPUTE:
		s = compute_chain(cpu, w->n);
		break;
	case OP_REGS:
		collect_regs(&c->regs);
		break;
	default:
		break;
	}
	c->result = s;
	c->jobs++;
}

static void settle_aps(void);

/* Posts work to every working CPU, does the BSP's share, waits for the rest. */
static void dispatch(u32 op, u64 start, u64 len, u64 seed, u64 n)
{
	settle_aps();
	g.work = (struct work){op, start, len, seed * K2, n, g.nworkers};
	u64 gen = g.work_gen + 1;
	__atomic_store_n(&g.work_gen, gen, __ATOMIC_RELEASE);
	if (g.idle_hlt && g.nworkers > 1) {
		lapic_write(LAPIC_ICR_HI, 0);
		lapic_write(LAPIC_ICR_LO, 0xC4000 | VEC_WAKE); /* all excluding self */
	}
	run_part(0);
	g.cpu[0].done_gen = gen;
	for (u32 i = 1; i < g.ncpus; i++) {
		if (g.cpu[i].rank < 0)
			continue;
		while (__atomic_load_n(&g.cpu[i].done_gen, __ATOMIC_ACQUIRE) != gen &&
		       !g.cpu[i].faulted)
			cpu_relax();
	}
}

/* Reads the current work generation before announcing itself online: the BSP posts work
 * only after it has seen every AP online, so no generation can slip by unnoticed. */
static void ap_loop(u32 cpu)
{
	struct cpu *c = &g.cpu[cpu];
	u64 seen = __atomic_load_n(&g.work_gen, __ATOMIC_ACQUIRE);
	__atomic_store_n(&c->online, 1, __ATOMIC_RELEASE);
	for (;;) {
		u64 gen = __atomic_load_n(&g.work_gen, __ATOMIC_ACQUIRE);
		if (gen != seen && c->rank >= 0) {
			run_part(cpu);
			seen = gen;
			__atomic_store_n(&c->done_gen, gen, __ATOMIC_RELEASE);
		} else if (g.idle_hlt) {
			idle_halt();
		} else {
			cpu_relax();
		}
	}
}

/* ---- SMP start ---- */
static void start_aps(void)
{
	u32 n = g.ncpus;
	g.cpu[0].online = 1;
	g.cpu[0].rank = 0;
	g.nworkers = 1;
	if (n < 2)
		return;
	mem_copy((void *)TRAMP_ADDR, probe_tramp_start, (u64)(probe_tramp_end - probe_tramp_start));
	for (u32 i = 0; i < 256; i++)
		probe_apic_to_cpu[i] = 0;
	for (u32 i = 1; i < n; i++) {
		probe_apic_to_cpu[g.cpu[i].apic_id] = (u8)i;
		g.cpu[i].rank = -1;
	}
	/* INIT, then two SIPIs; KVM and QEMU ignore a SIPI to a CPU that already started, and
	 * need none of the delays real hardware wants. */
	for (u32 i = 1; i < n; i++) {
		lapic_write(LAPIC_ICR_HI, g.cpu[i].apic_id << 24);
		lapic_write(LAPIC_ICR_LO, 0x4500);
	}
	for (int k = 0; k < 2; k++)
		for (u32 i = 1; i < n; i++) {
			lapic_write(LAPIC_ICR_HI, g.cpu[i].apic_id << 24);
			lapic_write(LAPIC_ICR_LO, 0x4600 | (TRAMP_ADDR >> 12));
		}
}

/* Waits (bounded, once) for the APs and fixes the working set of CPUs. Called lazily by
 * the first request that needs the CPUs, so `ping` is answered while APs still start and
 * an AP that never starts delays only that one request. */
static void settle_aps(void)
{
	if (g.aps_settled)
		return;
	g.aps_settled = 1;
	u64 t0 = rdtsc();
	for (u32 i = 1; i < g.ncpus; i++) {
		while (!__atomic_load_n(&g.cpu[i].online, __ATOMIC_ACQUIRE) &&
		       rdtsc() - t0 < 5000000000UL)
			cpu_relax();
	}
	u32 r = 1;
	for (u32 i = 1; i < g.ncpus; i++)
		if (g.cpu[i].online)
			g.cpu[i].rank = r++;
	g.nworkers = r;
}

/* ---- requests ---- */
#define MAX_ARGS 8

static void answer_err(const char *req, const char *why)
{
	out_begin();
	put_s("PROBE ERR ");
	put_s(req);
	put_c(' ');
	put_s(why);
	out_end();
}

static int get_mib_range(int argc, char **argv, int first, u64 *start, u64 *len)
{
	u64 s, l;
	if (argc <= first) {
		*start = g.free_start;
		*len = g.free_end - g.free_start;
		return 0;
	}
	if (argc < first + 2 || parse_u64(argv[first], &s) || parse_u64(argv[first + 1], &l))
		return -1;
	if (s >= MAPPED_TOP / MIB || l > MAPPED_TOP / MIB)
		return -1;
	*start = s * MIB;
	*len = l * MIB;
	return 0;
}

static void req_info(void)
{
	settle_aps();
	out_begin();
	put_s("PROBE info");
	put_kv("cpus", g.ncpus);
	put_kv("online", g.nworkers);
	put_kv("mem_mib", (g.mem_bytes + MIB - 1) / MIB);
	put_kv("free_start_mib", g.free_start / MIB);
	put_kv("free_end_mib", g.free_end / MIB);
	put_kv("requests", g.requests);
	put_s(" idle=");
	put_s(g.idle_hlt ? "hlt" : "poll");
	put_s(" table=");
	put_s(g.table);
	put_kx("table_addr", g.table_addr);
	put_s(" apic=");
	for (u32 i = 0; i < g.ncpus; i++) {
		if (i)
			put_c(',');
		put_u(g.cpu[i].apic_id);
	}
	put_s(" jobs=");
	for (u32 i = 0; i < g.ncpus; i++) {
		if (i)
			put_c(',');
		put_u(g.cpu[i].jobs);
	}
	put_kv("irq_timer", probe_wakes[0]);
	put_kv("irq_serial", probe_wakes[1]);
	put_kv("irq_ipi", probe_wakes[2]);
	put_kv("memmap", g.nmem);
	put_kv("uart_fifo", (u64)g.uart_fifo);
	out_end();
}

static void req_touch_sum(int argc, char **argv, int touch)
{
	const char *name = touch ? "touch" : "sum";
	u64 start, len, seed = 0;
	if (touch) {
		if (argc != 4 || get_mib_range(argc, argv, 1, &start, &len) ||
		    parse_u64(argv[3], &seed))
			return answer_err(name, "usage: touch <start_mib> <len_mib> <seed>");
		if (start < PROBE_END)
			return answer_err(name, "range overlaps the probe (start_mib < 2)");
	} else {
		if ((argc != 1 && argc != 3) || get_mib_range(argc, argv, 1, &start, &len))
			return answer_err(name, "usage: sum [<start_mib> <len_mib>]");
	}
	if (!len || !range_is_ram(start, start + len))
		return answer_err(name, "range is not RAM below 4 GiB");
	dispatch(touch ? OP_TOUCH : OP_SUM, start, len, seed, 0);
	u64 s = 0;
	for (u32 i = 0; i < g.ncpus; i++)
		if (g.cpu[i].rank >= 0)
			s += g.cpu[i].result;
	out_begin();
	put_s("PROBE ");
	put_s(name);
	put_kv("start_mib", start / MIB);
	put_kv("len_mib", len / MIB);
	if (touch)
		put_kv("seed", seed);
	put_kv("cpus", g.nworkers);
	put_s(" sum=");
	put_x16(s);
	out_end();
}

static void req_compute(int argc, char **argv)
{
	u64 n;
	if (argc != 2 || parse_u64(argv[1], &n))
		return answer_err("compute", "usage: compute <n>");
	dispatch(OP_COMPUTE, 0, 0, 0, n);
	u64 x = 0;
	for (u32 i = 0; i < g.ncpus; i++)
		if (g.cpu[i].rank >= 0)
			x ^= g.cpu[i].result;
	out_begin();
	put_s("PROBE compute");
	put_kv("n", n);
	put_kv("cpus", g.nworkers);
	put_s(" result=");
	put_x16(x);
	for (u32 i = 0; i < g.ncpus; i++) {
		if (g.cpu[i].rank < 0)
			continue;
		put_s(" cpu");
		put_u(i);
		put_c('=');
		put_x16(g.cpu[i].result);
	}
	out_end();
}

static u64 gcd(u64 a, u64 b)
{
	while (b) {
		u64 t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* touchscatter <len_mib> <seed> [<start_mib> [r|w]]: visits every 4 KiB page of the
 * working set once, in the order page(i) = (i * step + offset) mod pages, touching the
 * first word of each (read, or write of the pattern). */
static void req_touchscatter(int argc, char **argv)
{
	u64 len, seed, start = g.free_start, smib;
	int write = 1;
	if (argc < 3 || argc > 5 || parse_u64(argv[1], &len) || parse_u64(argv[2], &seed))
		return answer_err("touchscatter",
				  "usage: touchscatter <len_mib> <seed> [<start_mib> [r|w]]");
	if (argc >= 4) {
		if (parse_u64(argv[3], &smib) || smib >= MAPPED_TOP / MIB)
			return answer_err("touchscatter", "bad start_mib");
		start = smib * MIB;
	}
	if (argc == 5) {
		if (str_eq(argv[4], "r"))
			write = 0;
		else if (!str_eq(argv[4], "w"))
			return answer_err("touchscatter", "mode must be r or w");
	}
	if (len > MAPPED_TOP / MIB)
		return answer_err("touchscatter", "range is not RAM below 4 GiB");
	len *= MIB;
	if (!len || !range_is_ram(start, start + len))
		return answer_err("touchscatter", "range is not RAM below 4 GiB");
	if (write && start < PROBE_END)
		return answer_err("touchscatter", "range overlaps the probe (start_mib < 2)");
	u64 pages = len / PAGE, seedk = seed * K2;
	u64 step = (pattern(seedk, 1) % pages) | 1, off = pattern(seedk, 2) % pages;
	while (gcd(step, pages) != 1)
		step += 2;
	u64 s = 0, idx = off;
	for (u64 i = 0; i < pages; i++) {
		u64 a = start + idx * PAGE, v;
		if (write) {
			v = pattern(seedk, a);
			*(volatile u64 *)a = v;
		} else {
			v = *(volatile u64 *)a;
		}
		s += word_hash(a, v);
		idx += step;
		if (idx >= pages)
			idx -= pages;
	}
	out_begin();
	put_s("PROBE touchscatter");
	put_kv("start_mib", start / MIB);
	put_kv("len_mib", len / MIB);
	put_kv("seed", seed);
	put_s(write ? " mode=w" : " mode=r");
	put_kv("pages", pages);
	put_s(" sum=");
	put_x16(s);
	out_end();
}

static void req_regs(int argc, char **argv)
{
	u64 cpu = 0;
	if (argc > 2 || (argc == 2 && parse_u64(argv[1], &cpu)))
		return answer_err("regs", "usage: regs [<cpu>]");
	settle_aps();
	if (cpu >= g.ncpus || g.cpu[cpu].rank < 0)
		return answer_err("regs", "no such working cpu");
	dispatch(OP_REGS, 0, 0, 0, 0);
	const struct regs_rec *r = &g.cpu[cpu].regs;
	out_begin();
	put_s("PROBE regs");
	put_kv("cpu", cpu);
	put_kx("cr0", r->c.cr0);
	put_kx("cr2", r->c.cr2);
	put_kx("cr3", r->c.cr3);
	put_kx("cr4", r->c.cr4);
	put_kx("efer", r->c.efer);
	put_kx("rflags", r->rflags);
	put_kx("cs", r->cs);
	put_kx("ss", r->ss);
	put_kx("ds", r->ds);
	put_kx("tr", r->tr);
	put_kx("gdt_base", r->gdt_base);
	put_kx("gdt_limit", r->gdt_limit);
	put_kx("idt_base", r->idt_base);
	put_kx("idt_limit", r->idt_limit);
	put_kv("apic_id", r->apic_id);
	put_kx("apic_svr", r->apic_svr);
	put_kx("apic_tpr", r->apic_tpr);
	put_kx("apic_lvtt", r->apic_lvtt);
	put_kx("apic_tdcr", r->apic_tdcr);
	put_kx("apic_ticr", r->apic_ticr);
	put_kx("apic_lint0", r->apic_lint0);
	put_kx("xmm8", r->xmm8);
	put_kx("tsc", r->tsc);
	out_end();
}

/* Raw guest-physical access for crafted-device tests (virtio rings, MMIO registers).
 * r8|r16|r32|r64 <addr>; w8|w16|w32|w64 <addr> <value>; wbytes <addr> <hex>. The probe's
 * own region is refused for writes so a test cannot knock the probe over by accident. */
static int mem_ok(u64 a, u64 n, int write)
{
	if (a % (n > 8 ? 1 : n) || a >= MAPPED_TOP || n > MAPPED_TOP - a)
		return 0;
	if (write && a < PROBE_END && a + n > PROBE_BASE)
		return 0;
	return 1;
}

static void req_mem(int argc, char **argv)
{
	const char *op = argv[0];
	u64 size = op[1] == '8' ? 1 : op[1] == '1' ? 2 : op[1] == '3' ? 4 : 8;
	u64 a, v = 0;
	int write = op[0] == 'w';
	if (argc != (write ? 3 : 2) || parse_u64(argv[1], &a) || (write && parse_u64(argv[2], &v)))
		return answer_err(op, "usage: r<bits> <addr> | w<bits> <addr> <value>");
	if (!mem_ok(a, size, write))
		return answer_err(op, "address unaligned, above 4 GiB or inside the probe");
	if (write) {
		switch (size) {
		case 1:
			*(volatile u8 *)a = (u8)v;
			break;
		case 2:
			*(volatile u16 *)a = (u16)v;
			break;
		case 4:
			*(volatile u32 *)a = (u32)v;
			break;
		default:
			*(volatile u64 *)a = v;
			break;
		}
	} else {
		switch (size) {
		case 1:
			v = *(volatile u8 *)a;
			break;
		case 2:
			v = *(volatile u16 *)a;
			break;
		case 4:
			v = *(volatile u32 *)a;
			break;
		default:
			v = *(volatile u64 *)a;
			break;
		}
	}
	out_begin();
	put_s("PROBE ");
	put_s(op);
	put_kx("addr", a);
	put_kx("value", v);
	out_end();
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void req_wbytes(int argc, char **argv)
{
	u64 a, n;
	if (argc != 3 || parse_u64(argv[1], &a))
		return answer_err("wbytes", "usage: wbytes <addr> <hexbytes>");
	n = str_len(argv[2]);
	if (!n || n % 2)
		return answer_err("wbytes", "hex string must have an even, non-zero length");
	for (u64 i = 0; i < n; i++)
		if (hexval(argv[2][i]) < 0)
			return answer_err("wbytes", "not a hex string");
	n /= 2;
	if (!mem_ok(a, n, 1))
		return answer_err("wbytes", "address above 4 GiB or inside the probe");
	for (u64 i = 0; i < n; i++)
		*(volatile u8 *)(a + i) =
		    (u8)(hexval(argv[2][2 * i]) << 4 | hexval(argv[2][2 * i + 1]));
	out_begin();
	put_s("PROBE wbytes");
	put_kx("addr", a);
	put_kv("len", n);
	out_end();
}

/* flood <base> <queue> <ring> <size> <head>: a guest that starves a device's host side
 * (issue 14). On a queue the host set up by hand (section 4 of PROTOCOL.md: descriptors
 * at ring, avail at ring+0x1000, used at ring+0x2000, `size` entries), it republishes
 * chain `head` whenever the device has used one, so the avail ring never empties, until
 * any byte arrives on COM1 (consumed). It fills all the room there is at once and
 * notifies only when the device had caught up (the ring was empty: the device may have
 * stopped): a notify is an exit, and the attack is a device that never runs dry, not a
 * vCPU busy exiting.
 * Answers `PROBE flood published=<n> used=<used idx>`. */
static void req_flood(int argc, char **argv)
{
	u64 base, q, ring, size, head, published = 0, looked = rdtsc();
	if (argc != 6 || parse_u64(argv[1], &base) || parse_u64(argv[2], &q) ||
	    parse_u64(argv[3], &ring) || parse_u64(argv[4], &size) || parse_u64(argv[5], &head))
		return answer_err("flood", "usage: flood <base> <queue> <ring> <size> <head>");
	if (!size || size > 1024 || (size & (size - 1)) || head >= size)
		return answer_err("flood", "size not a power of two up to 1024, or head past it");
	if (!mem_ok(base + 0x50, 4, 1) || !mem_ok(ring, 0x2000 + 6 + 8 * size, 1))
		return answer_err("flood", "register or rings above 4 GiB or inside the probe");
	volatile u16 *avail_idx = (volatile u16 *)(ring + 0x1002);
	volatile u16 *avail_ring = (volatile u16 *)(ring + 0x1004);
	volatile u16 *used_idx = (volatile u16 *)(ring + 0x2002);
	volatile u32 *notify = (volatile u32 *)(base + 0x50);
	u16 idx = *avail_idx;
	for (;;) {
		/* A port read is an exit, during which the device could catch up: look for
		 * the stop byte only every ~10 ms (2^25 TSC cycles at 3 GHz). */
		if (rdtsc() - looked > (1ull << 25)) {
			if (inb(COM1 + 5) & 0x01) {
				(void)inb(COM1);
				break;
			}
			looked = rdtsc();
		}
		u16 used = *used_idx, pending = (u16)(idx - used);
		u16 room = pending < size ? (u16)(size - pending) : 0; /* a used idx past ours */
		if (!room) {
			cpu_relax();
			continue;
		}
		for (u16 i = 0; i < room; i++)
			avail_ring[(u16)(idx + i) & (size - 1)] = (u16)head;
		/* x86 keeps stores in order; the compiler must too (the entries before the
		 * index that publishes them, the index before the notify). */
		__asm__ volatile("" ::: "memory");
		idx = (u16)(idx + room);
		*avail_idx = idx;
		published += room;
		__asm__ volatile("mfence" ::: "memory");
		if (room == size)
			*notify = (u32)q;
	}
	out_begin();
	put_s("PROBE flood");
	put_kv("published", published);
	put_kv("used", *used_idx);
	out_end();
}

/* kbd: the probe as a guest that honours Ctrl+Alt+Del (what a VMM's SendCtrlAltDel
 * gives): polls the i8042 (status port 0x64, data port 0x60) until the key presses
 * Ctrl, Alt, Del (scan code set 2: 14 11 e0 71) have arrived, answers
 * `PROBE kbd ctrl_alt_del bytes=<n>`, then pulses the reset line as Linux's reboot=k
 * does (command 0xfe on port 0x64). Any byte on COM1 first stops the wait:
 * `PROBE kbd stopped bytes=<n>`. */
static void req_kbd(void)
{
	static const u8 want[] = {0x14, 0x11, 0xe0, 0x71};
	unsigned matched = 0;
	u64 bytes = 0;
	for (;;) {
		if (inb(COM1 + 5) & 0x01) {
			(void)inb(COM1);
			out_begin();
			put_s("PROBE kbd stopped");
			put_kv("bytes", bytes);
			out_end();
			return;
		}
		if (!(inb(0x64) & 0x01)) {
			for (int i = 0; i < 2000; i++)
				cpu_relax();
			continue;
		}
		u8 b = inb(0x60);
		bytes++;
		matched = b == want[matched] ? matched + 1 : (b == want[0] ? 1 : 0);
		if (matched == sizeof(want))
			break;
	}
	out_begin();
	put_s("PROBE kbd ctrl_alt_del");
	put_kv("bytes", bytes);
	out_end();
	outb(0x64, 0xfe);
}

/* pit [0|2]: uses a PIT timer. Timer 2 (the default) as a calibration loop does
 * (Linux's pit_calibrate_tsc): gated through port 0x61 with the speaker off, loaded with
 * 0xffff in mode 0 (one shot, no interrupt: timer 2 has no IRQ). Timer 0 as a periodic
 * tick would be: mode 2, 0xffff (its IRQ 0 stays masked in the 8259s and the IOAPIC, so
 * the probe takes no interrupt from it). Then the timer is latched and read twice with
 * a short spin between: a PIT counts down between the two reads; ports nobody serves
 * read back constants. Answers `PROBE pit timer=<t> port61=<x> count1=<n> count2=<n>`. */
static u16 pit_read(u16 timer)
{
	outb(0x43, (u8)(timer << 6)); /* latch */
	u16 lo = inb((u16)(0x40 + timer));
	return (u16)(lo | (u16)inb((u16)(0x40 + timer)) << 8);
}

static void req_pit(int argc, char **argv)
{
	u64 t = 2;
	if (argc > 2 || (argc == 2 && (parse_u64(argv[1], &t) || (t != 0 && t != 2))))
		return answer_err(argv[0], "usage: pit [0|2]");
	if (t == 2) {
		outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01)); /* gate 2 on, speaker off */
		outb(0x43, 0xb0);			      /* timer 2, lo/hi byte, mode 0 */
	} else {
		outb(0x43, 0x34); /* timer 0, lo/hi byte, mode 2 */
	}
	outb((u16)(0x40 + t), 0xff);
	outb((u16)(0x40 + t), 0xff);
	u16 c1 = pit_read((u16)t);
	for (int i = 0; i < 200000; i++)
		cpu_relax();
	u16 c2 = pit_read((u16)t);
	out_begin();
	put_s("PROBE pit");
	put_kv("timer", t);
	put_kv("port61", inb(0x61));
	put_kv("count1", c1);
	put_kv("count2", c2);
	out_end();
}

static void handle_line(char *s)
{
	char *argv[MAX_ARGS];
	int argc = 0;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			*s++ = 0;
		if (!*s)
			break;
		if (argc == MAX_ARGS) {
			g.requests++;
			return answer_err("request", "too many arguments");
		}
		argv[argc++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
	}
	if (!argc)
		return;
	g.requests++;
	const char *c = argv[0];
	if (str_eq(c, "ping")) {
		out_begin();
		put_s("PROBE pong");
		out_end();
	} else if (str_eq(c, "count")) {
		out_begin();
		put_s("PROBE count ");
		put_u(g.requests);
		out_end();
	} else if (str_eq(c, "info")) {
		req_info();
	} else if (str_eq(c, "touch")) {
		req_touch_sum(argc, argv, 1);
	} else if (str_eq(c, "sum")) {
		req_touch_sum(argc, argv, 0);
	} else if (str_eq(c, "compute")) {
		req_compute(argc, argv);
	} else if (str_eq(c, "touchscatter")) {
		req_touchscatter(argc, argv);
	} else if (str_eq(c, "regs")) {
		req_regs(argc, argv);
	} else if (str_eq(c, "r8") || str_eq(c, "r16") || str_eq(c, "r32") || str_eq(c, "r64") ||
		   str_eq(c, "w8") || str_eq(c, "w16") || str_eq(c, "w32") || str_eq(c, "w64")) {
		req_mem(argc, argv);
	} else if (str_eq(c, "wbytes")) {
		req_wbytes(argc, argv);
	} else if (str_eq(c, "flood")) {
		req_flood(argc, argv);
	} else if (str_eq(c, "pit")) {
		req_pit(argc, argv);
	} else if (str_eq(c, "kbd")) {
		req_kbd();
	} else if (str_eq(c, "triple")) {
		/* Ends the VM: a test of what the VMM does when a guest triple faults. */
		u32 service = GATE_TRIPLE;
		__asm__ volatile("int3" : "+a"(service) : : "memory");
		answer_err(c, "the CPU did not shut down");
	} else if (str_eq(c, "fault")) {
		/* Exercises exception delivery: the answer is the PROBE FAULT line. */
		__asm__ volatile("ud2");
	} else {
		answer_err(c, "unknown request");
	}
}

static void serve(void) __attribute__((noreturn));
static void serve(void)
{
	for (;;) {
		int ch = serial_getc();
		if (ch < 0) {
			if (g.idle_hlt) {
				idle_halt();
			} else {
				for (int i = 0; i < 2000; i++)
					cpu_relax();
			}
			continue;
		}
		if (ch == '\n' || ch == '\r') {
			if (g.line_overflow) {
				g.line_overflow = 0;
				g.line_len = 0;
				g.requests++;
				answer_err("request", "line too long");
				continue;
			}
			g.line[g.line_len] = 0;
			g.line_len = 0;
			handle_line(g.line);
		} else if (g.line_len < sizeof(g.line) - 1) {
			g.line[g.line_len++] = (char)ch;
		} else {
			g.line_overflow = 1;
		}
	}
}

/* ---- entry points from entry.S ---- */
void probe_cpu_main(u32 cpu);
void probe_fault_main(u32 cpu);

void probe_cpu_main(u32 cpu)
{
	set_xmm_marker(cpu);
	if (cpu) {
		lapic_init_local();
		ap_loop(cpu);
	}
	g.boot_tsc = rdtsc();
	idt_fill();
	parse_start_info();
	serial_init();
	setup_memory();
	discover_cpus();
	out_begin();
	put_s("THAW_PROBE_READY");
	put_kv("cpus", g.ncpus);
	put_kv("mem_mib", (g.mem_bytes + MIB - 1) / MIB);
	out_end();

	const char *v = cmdline_get("probe.idle");
	g.idle_hlt = !(v && str_eq(v, "poll"));
	g.tick_us = 4000;
	v = cmdline_get("probe.tick_us");
	if (v)
		parse_u64(v, &g.tick_us);
	lapic_init_local();
	start_aps();
	if (g.idle_hlt)
		idle_setup_bsp();
	serve();
}

void probe_fault_main(u32 cpu)
{
	const struct fault_rec *f = &probe_fault_rec[cpu < MAX_CPUS ? cpu : 0];
	if (cpu >= MAX_CPUS)
		cpu = 0;
	g.cpu[cpu].faulted = 1;
	out_begin();
	put_s("PROBE FAULT");
	put_kv("cpu", cpu);
	put_kv("vec", f->vec);
	put_kx("err", f->err);
	put_kx("rip", f->rip);
	put_kx("rsp", f->rsp);
	put_kx("cr2", f->cr2);
	out_end();
	if (cpu == 0) {
		/* The BSP goes back to serving: a request that faulted is answered by this
		 * line, and the probe stays usable. */
		g.cpu[0].faulted = 0;
		g.line_len = 0;
		serve();
	}
	for (;;)
		idle_halt();
}

/* GCC may emit calls to these even in freestanding code (struct copies, zeroing). */
void *memcpy(void *d, const void *s, u64 n);
void *memset(void *d, int c, u64 n);
void *memcpy(void *d, const void *s, u64 n)
{
	mem_copy(d, s, n);
	return d;
}

void *memset(void *d, int c, u64 n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}
