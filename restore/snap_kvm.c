/* The KVM x86 state schema's codecs: plain KVM structs <-> tagged fields. Every register
 * is its own named field (tables below, which are also the specification's tag lists), so
 * a field can be added without breaking old snapshots; only hardware-defined layouts (the
 * XSAVE area and the LAPIC register page) are byte blobs. Decoders walk the section once
 * and look each tag up by binary search: the restore path does no allocation here. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "restore/snap_internal.h"
#include "restore/snap_kvm.h"

enum { D_UINT, D_BLOB, D_U64ARR };

struct fdesc {
	uint16_t tag;
	uint8_t kind;
	uint32_t size; /* D_UINT: 1/2/4/8 bytes; D_BLOB: bytes; D_U64ARR: element count */
	uint32_t off;
	const char *name;
};

#define U(t, st, f, n)                                                                             \
	{                                                                                          \
		t, D_UINT, sizeof(((st *)0)->f), offsetof(st, f), n                                \
	}
#define BLOB(t, st, f, n)                                                                          \
	{                                                                                          \
		t, D_BLOB, sizeof(((st *)0)->f), offsetof(st, f), n                                \
	}
#define ARR(t, st, f, n)                                                                           \
	{                                                                                          \
		t, D_U64ARR, sizeof(((st *)0)->f) / 8, offsetof(st, f), n                          \
	}

/* ---------------------------------------------------------------- vcpu */

typedef struct snap_vcpu_state V;

#define SEG(i, sg)                                                                                 \
	U(0x100 + 16 * (i) + 0, V, sregs.sg.base, #sg ".base"),                                    \
	    U(0x100 + 16 * (i) + 1, V, sregs.sg.limit, #sg ".limit"),                              \
	    U(0x100 + 16 * (i) + 2, V, sregs.sg.selector, #sg ".selector"),                        \
	    U(0x100 + 16 * (i) + 3, V, sregs.sg.type, #sg ".type"),                                \
	    U(0x100 + 16 * (i) + 4, V, sregs.sg.present, #sg ".present"),                          \
	    U(0x100 + 16 * (i) + 5, V, sregs.sg.dpl, #sg ".dpl"),                                  \
	    U(0x100 + 16 * (i) + 6, V, sregs.sg.db, #sg ".db"),                                    \
	    U(0x100 + 16 * (i) + 7, V, sregs.sg.s, #sg ".s"),                                      \
	    U(0x100 + 16 * (i) + 8, V, sregs.sg.l, #sg ".l"),                                      \
	    U(0x100 + 16 * (i) + 9, V, sregs.sg.g, #sg ".g"),                                      \
	    U(0x100 + 16 * (i) + 10, V, sregs.sg.avl, #sg ".avl"),                                 \
	    U(0x100 + 16 * (i) + 11, V, sregs.sg.unusable, #sg ".unusable")

#define VCPU_XCRS 0x210
#define VCPU_MSRS 0x600

static const struct fdesc vcpu_desc[] = {
    U(1, V, regs.rax, "rax"),
    U(2, V, regs.rbx, "rbx"),
    U(3, V, regs.rcx, "rcx"),
    U(4, V, regs.rdx, "rdx"),
    U(5, V, regs.rsi, "rsi"),
    U(6, V, regs.rdi, "rdi"),
    U(7, V, regs.rsp, "rsp"),
    U(8, V, regs.rbp, "rbp"),
    U(9, V, regs.r8, "r8"),
    U(10, V, regs.r9, "r9"),
    U(11, V, regs.r10, "r10"),
    U(12, V, regs.r11, "r11"),
    U(13, V, regs.r12, "r12"),
    U(14, V, regs.r13, "r13"),
    U(15, V, regs.r14, "r14"),
    U(16, V, regs.r15, "r15"),
    U(17, V, regs.rip, "rip"),
    U(18, V, regs.rflags, "rflags"),
    SEG(0, cs),
    SEG(1, ds),
    SEG(2, es),
    SEG(3, fs),
    SEG(4, gs),
    SEG(5, ss),
    SEG(6, tr),
    SEG(7, ldt),
    U(0x180, V, sregs.gdt.base, "gdt.base"),
    U(0x181, V, sregs.gdt.limit, "gdt.limit"),
    U(0x182, V, sregs.idt.base, "idt.base"),
    U(0x183, V, sregs.idt.limit, "idt.limit"),
    U(0x190, V, sregs.cr0, "cr0"),
    U(0x191, V, sregs.cr2, "cr2"),
    U(0x192, V, sregs.cr3, "cr3"),
    U(0x193, V, sregs.cr4, "cr4"),
    U(0x194, V, sregs.cr8, "cr8"),
    U(0x195, V, sregs.efer, "efer"),
    U(0x196, V, sregs.apic_base, "apic_base"),
    ARR(0x197, V, sregs.interrupt_bitmap, "interrupt_bitmap"),
    BLOB(0x200, V, xsave.region, "xsave"),
    U(0x211, V, xcrs.flags, "xcrs.flags"),
    BLOB(0x220, V, lapic.regs, "lapic"),
    U(0x300, V, events.exception.injected, "exception.injected"),
    U(0x301, V, events.exception.nr, "exception.nr"),
    U(0x302, V, events.exception.has_error_code, "exception.has_error_code"),
    U(0x303, V, events.exception.pending, "exception.pending"),
    U(0x304, V, events.exception.error_code, "exception.error_code"),
    U(0x305, V, events.exception_has_payload, "exception.has_payload"),
    U(0x306, V, events.exception_payload, "exception.payload"),
    U(0x310, V, events.interrupt.injected, "interrupt.injected"),
    U(0x311, V, events.interrupt.nr, "interrupt.nr"),
    U(0x312, V, events.interrupt.soft, "interrupt.soft"),
    U(0x313, V, events.interrupt.shadow, "interrupt.shadow"),
    U(0x320, V, events.nmi.injected, "nmi.injected"),
    U(0x321, V, events.nmi.pending, "nmi.pending"),
    U(0x322, V, events.nmi.masked, "nmi.masked"),
    U(0x330, V, events.sipi_vector, "sipi_vector"),
    U(0x331, V, events.flags, "events.flags"),
    U(0x340, V, events.smi.smm, "smi.smm"),
    U(0x341, V, events.smi.pending, "smi.pending"),
    U(0x342, V, events.smi.smm_inside_nmi, "smi.smm_inside_nmi"),
    U(0x343, V, events.smi.latched_init, "smi.latched_init"),
    U(0x350, V, events.triple_fault.pending, "triple_fault.pending"),
    U(0x400, V, mp_state.mp_state, "mp_state"),
    ARR(0x500, V, debugregs.db, "db"),
    U(0x501, V, debugregs.dr6, "dr6"),
    U(0x502, V, debugregs.dr7, "dr7"),
    U(0x503, V, debugregs.flags, "debugregs.flags"),
};

/* ---------------------------------------------------------------- irqchip, pit, clock */

typedef struct snap_vm_state VM;

#define PIC(base, i)                                                                               \
	U(base + 0, VM, pic[i].last_irr, "pic" #i ".last_irr"),                                    \
	    U(base + 1, VM, pic[i].irr, "pic" #i ".irr"),                                          \
	    U(base + 2, VM, pic[i].imr, "pic" #i ".imr"),                                          \
	    U(base + 3, VM, pic[i].isr, "pic" #i ".isr"),                                          \
	    U(base + 4, VM, pic[i].priority_add, "pic" #i ".priority_add"),                        \
	    U(base + 5, VM, pic[i].irq_base, "pic" #i ".irq_base"),                                \
	    U(base + 6, VM, pic[i].read_reg_select, "pic" #i ".read_reg_select"),                  \
	    U(base + 7, VM, pic[i].poll, "pic" #i ".poll"),                                        \
	    U(base + 8, VM, pic[i].special_mask, "pic" #i ".special_mask"),                        \
	    U(base + 9, VM, pic[i].init_state, "pic" #i ".init_state"),                            \
	    U(base + 10, VM, pic[i].auto_eoi, "pic" #i ".auto_eoi"),                               \
	    U(base + 11, VM, pic[i].rotate_on_auto_eoi, "pic" #i ".rotate_on_auto_eoi"),           \
	    U(base + 12, VM, pic[i].special_fully_nested_mode,                                     \
	      "pic" #i ".special_fully_nested_mode"),                                              \
	    U(base + 13, VM, pic[i].init4, "pic" #i ".init4"),                                     \
	    U(base + 14, VM, pic[i].elcr, "pic" #i ".elcr"),                                       \
	    U(base + 15, VM, pic[i].elcr_mask, "pic" #i ".elcr_mask")

static const struct fdesc irqchip_desc[] = {
    PIC(0x100, 0),
    PIC(0x200, 1),
    U(0x300, VM, ioapic.base_address, "ioapic.base_address"),
    U(0x301, VM, ioapic.ioregsel, "ioapic.ioregsel"),
    U(0x302, VM, ioapic.id, "ioapic.id"),
    U(0x303, VM, ioapic.irr, "ioapic.irr"),
    {0x310, D_U64ARR, KVM_IOAPIC_NUM_PINS, offsetof(VM, ioapic.redirtbl), "ioapic.redirtbl"},
};

typedef struct kvm_pit_state2 PIT;

#define PITCH(base, i)                                                                             \
	U(base + 0, PIT, channels[i].count, "ch" #i ".count"),                                     \
	    U(base + 1, PIT, channels[i].latched_count, "ch" #i ".latched_count"),                 \
	    U(base + 2, PIT, channels[i].count_latched, "ch" #i ".count_latched"),                 \
	    U(base + 3, PIT, channels[i].status_latched, "ch" #i ".status_latched"),               \
	    U(base + 4, PIT, channels[i].status, "ch" #i ".status"),                               \
	    U(base + 5, PIT, channels[i].read_state, "ch" #i ".read_state"),                       \
	    U(base + 6, PIT, channels[i].write_state, "ch" #i ".write_state"),                     \
	    U(base + 7, PIT, channels[i].write_latch, "ch" #i ".write_latch"),                     \
	    U(base + 8, PIT, channels[i].rw_mode, "ch" #i ".rw_mode"),                             \
	    U(base + 9, PIT, channels[i].mode, "ch" #i ".mode"),                                   \
	    U(base + 10, PIT, channels[i].bcd, "ch" #i ".bcd"),                                    \
	    U(base + 11, PIT, channels[i].gate, "ch" #i ".gate"),                                  \
	    U(base + 12, PIT, channels[i].count_load_time, "ch" #i ".count_load_time")

static const struct fdesc pit_desc[] = {
    PITCH(0x100, 0),
    PITCH(0x200, 1),
    PITCH(0x300, 2),
    U(0x400, PIT, flags, "flags"),
};

typedef struct kvm_clock_data CLK;
static const struct fdesc clock_desc[] = {
    U(1, CLK, clock, "clock"),
    U(2, CLK, flags, "flags"),
    U(3, CLK, realtime, "realtime"),
    U(4, CLK, host_tsc, "host_tsc"),
};

/* Tags of the sections encoded by hand (names for tools, values for the codecs). */
#define CPUID_WORDS   1
#define CPUID_ENTRIES 2
#define M_MEM_SIZE    1
#define M_NR_VCPUS    2
#define M_REGIONS     3
#define M_TEMPLATE    4
#define M_CMDLINE     5
#define M_STATIC_TMPL 6

static const struct snap_tagname vcpu_extra_names[] = {{VCPU_XCRS, "xcrs"}, {VCPU_MSRS, "msrs"}};
static const struct snap_tagname cpuid_names[] = {{CPUID_WORDS, "entry_words"},
						  {CPUID_ENTRIES, "entries"}};
static const struct snap_tagname machine_names[] = {
    {M_MEM_SIZE, "mem_size"},	  {M_NR_VCPUS, "nr_vcpus"}, {M_REGIONS, "regions"},
    {M_TEMPLATE, "cpu_template"}, {M_CMDLINE, "cmdline"},   {M_STATIC_TMPL, "static_cpu_template"}};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- generic engine */

static const struct fdesc *desc_find(const struct fdesc *t, size_t n, uint16_t tag)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t[mid].tag == tag)
			return &t[mid];
		if (t[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static uint64_t load_uint(const uint8_t *p, uint32_t size)
{
	uint64_t v = 0;
	memcpy(&v, p, size); /* little endian: the low bytes */
	return v;
}

static int enc_table(struct snap_sec *sec, const struct fdesc *t, size_t n, const void *base)
{
	const uint8_t *b = base;
	for (size_t i = 0; i < n; i++) {
		switch (t[i].kind) {
		case D_UINT:
			snap_put_u64(sec, t[i].tag, load_uint(b + t[i].off, t[i].size));
			break;
		case D_BLOB:
			snap_put_bytes(sec, t[i].tag, b + t[i].off, t[i].size);
			break;
		default:
			snap_put_u64a(sec, t[i].tag, (const uint64_t *)(const void *)(b + t[i].off),
				      t[i].size);
			break;
		}
	}
	return sec->err;
}

/* Stores one field through its descriptor: 0 done, -ENOENT not in the table, <0 error. */
static int dec_field(const struct fdesc *t, size_t n, const struct snap_field *f, void *base,
		     const char *secname, char *err, size_t errlen)
{
	const struct fdesc *d = desc_find(t, n, f->tag);
	uint8_t *b = base;
	if (!d)
		return -ENOENT;
	static const uint16_t want[] = {
	    [D_UINT] = SNAP_T_U64, [D_BLOB] = SNAP_T_BYTES, [D_U64ARR] = SNAP_T_U64A};
	if (f->type != want[d->kind]) {
		errf(err, errlen, 0, "section '%s' field '%s' (tag 0x%x) is %s, expected %s",
		     secname, d->name, f->tag, snap_type_name(f->type),
		     snap_type_name(want[d->kind]));
		return -EBADMSG;
	}
	switch (d->kind) {
	case D_UINT: {
		uint64_t v = rd64(f->val);
		if (d->size < 8 && (v >> (8 * d->size))) {
			errf(err, errlen, 0,
			     "section '%s' field '%s' value 0x%llx does not fit %u bytes", secname,
			     d->name, (unsigned long long)v, d->size);
			return -ERANGE;
		}
		memcpy(b + d->off, &v, d->size);
		return 0;
	}
	case D_BLOB:
		if (f->len != d->size) {
			errf(err, errlen, 0, "section '%s' field '%s' is %u bytes, expected %u",
			     secname, d->name, f->len, d->size);
			return -EBADMSG;
		}
		memcpy(b + d->off, f->val, d->size);
		return 0;
	default:
		if (f->len / 8 > d->size) {
			errf(err, errlen, 0,
			     "section '%s' field '%s' has %u elements, at most %u allowed", secname,
			     d->name, f->len / 8, d->size);
			return -ERANGE;
		}
		memcpy(b + d->off, f->val, f->len);
		return 0;
	}
}

/* Every section this file decodes is at major 1: the newest (and only) one it knows. */
#define SEC_MAJOR 1

static int check_version(const struct snap_section *sec, char *err, size_t errlen)
{
	return snap_section_check_version(sec, SEC_MAJOR, err, errlen);
}

/* Decodes a table-only section into `base` (zeroed first: missing fields default to 0). */
static int dec_table(const struct snap_section *sec, const struct fdesc *t, size_t n, void *base,
		     size_t size, char *err, size_t errlen)
{
	struct snap_field f;
	size_t pos = 0;
	int r = check_version(sec, err, errlen);
	if (r)
		return r;
	memset(base, 0, size);
	while ((r = snap_field_next(sec, &pos, &f)) == 1) {
		r = dec_field(t, n, &f, base, sec->name, err, errlen);
		if (r && r != -ENOENT)
			return r;
	}
	if (r < 0)
		errf(err, errlen, 0, "section '%s' has a malformed field", sec->name);
	return r;
}

static int bad_field(const struct snap_section *sec, const char *what, char *err, size_t errlen)
{
	errf(err, errlen, 0, "section '%s' field '%s' is invalid", sec->name, what);
	return -EBADMSG;
}

/* ---------------------------------------------------------------- vcpu */

int snap_encode_vcpu(struct snap_sec *sec, const struct snap_vcpu_state *v)
{
	uint64_t pairs[2 * (SNAP_MAX_MSRS > SNAP_MAX_XCRS ? SNAP_MAX_MSRS : SNAP_MAX_XCRS)];
	enc_table(sec, vcpu_desc, N(vcpu_desc), v);
	uint32_t nx = v->xcrs.nr_xcrs < SNAP_MAX_XCRS ? v->xcrs.nr_xcrs : SNAP_MAX_XCRS;
	for (uint32_t i = 0; i < nx; i++) {
		pairs[2 * i] = v->xcrs.xcrs[i].xcr;
		pairs[2 * i + 1] = v->xcrs.xcrs[i].value;
	}
	snap_put_u64a(sec, VCPU_XCRS, pairs, 2 * nx);
	if (v->nmsrs > SNAP_MAX_MSRS) {
		if (!sec->err)
			sec->err = -E2BIG;
		return sec->err;
	}
	for (uint32_t i = 0; i < v->nmsrs; i++) {
		pairs[2 * i] = v->msrs[i].index;
		pairs[2 * i + 1] = v->msrs[i].data;
	}
	snap_put_u64a(sec, VCPU_MSRS, pairs, 2 * v->nmsrs);
	return sec->err;
}

int snap_decode_vcpu(const struct snap_section *sec, struct snap_vcpu_state *v, char *err,
		     size_t errlen)
{
	struct snap_field f;
	size_t pos = 0;
	int r = check_version(sec, err, errlen);
	if (r)
		return r;
	memset(v, 0, sizeof(*v));
	while ((r = snap_field_next(sec, &pos, &f)) == 1) {
		r = dec_field(vcpu_desc, N(vcpu_desc), &f, v, sec->name, err, errlen);
		if (r != -ENOENT) {
			if (r)
				return r;
			continue;
		}
		if (f.tag != VCPU_XCRS && f.tag != VCPU_MSRS)
			continue; /* a newer writer's field: skipped */
		uint32_t cap = f.tag == VCPU_XCRS ? SNAP_MAX_XCRS : SNAP_MAX_MSRS;
		if (f.type != SNAP_T_U64A || f.len % 16 || f.len / 16 > cap) {
			errf(err, errlen, 0, "section '%s' field '%s' must be at most %u pairs",
			     sec->name, f.tag == VCPU_XCRS ? "xcrs" : "msrs", cap);
			return -ERANGE;
		}
		const uint64_t *p = (const uint64_t *)(const void *)f.val;
		uint32_t n = f.len / 16;
		for (uint32_t i = 0; i < n; i++) {
			if (p[2 * i] >> 32)
				return bad_field(sec, f.tag == VCPU_XCRS ? "xcrs" : "msrs", err,
						 errlen);
			if (f.tag == VCPU_XCRS) {
				v->xcrs.xcrs[i].xcr = (uint32_t)p[2 * i];
				v->xcrs.xcrs[i].value = p[2 * i + 1];
			} else {
				v->msrs[i].index = (uint32_t)p[2 * i];
				v->msrs[i].data = p[2 * i + 1];
			}
		}
		if (f.tag == VCPU_XCRS)
			v->xcrs.nr_xcrs = n;
		else
			v->nmsrs = n;
	}
	if (r < 0)
		errf(err, errlen, 0, "section '%s' has a malformed field", sec->name);
	return r;
}

/* ---------------------------------------------------------------- vm */

int snap_encode_irqchip(struct snap_sec *sec, const struct snap_vm_state *vm)
{
	return enc_table(sec, irqchip_desc, N(irqchip_desc), vm);
}

int snap_decode_irqchip(const struct snap_section *sec, struct snap_vm_state *vm, char *err,
			size_t errlen)
{
	/* Only the irqchip part of `vm` is replaced. */
	struct snap_vm_state tmp;
	int r = dec_table(sec, irqchip_desc, N(irqchip_desc), &tmp, sizeof(tmp), err, errlen);
	if (r)
		return r;
	memcpy(vm->pic, tmp.pic, sizeof(tmp.pic));
	vm->ioapic = tmp.ioapic;
	return 0;
}

int snap_encode_pit(struct snap_sec *sec, const struct kvm_pit_state2 *pit)
{
	return enc_table(sec, pit_desc, N(pit_desc), pit);
}

int snap_decode_pit(const struct snap_section *sec, struct kvm_pit_state2 *pit, char *err,
		    size_t errlen)
{
	return dec_table(sec, pit_desc, N(pit_desc), pit, sizeof(*pit), err, errlen);
}

int snap_encode_clock(struct snap_sec *sec, const struct kvm_clock_data *clock)
{
	return enc_table(sec, clock_desc, N(clock_desc), clock);
}

int snap_decode_clock(const struct snap_section *sec, struct kvm_clock_data *clock, char *err,
		      size_t errlen)
{
	return dec_table(sec, clock_desc, N(clock_desc), clock, sizeof(*clock), err, errlen);
}

/* ---------------------------------------------------------------- cpuid */

#define CPUID_NWORDS 7

int snap_encode_cpuid(struct snap_sec *sec, const struct kvm_cpuid_entry2 *e, size_t n)
{
	uint64_t words[SNAP_MAX_CPUID * CPUID_NWORDS];
	if (n > SNAP_MAX_CPUID) {
		if (!sec->err)
			sec->err = -E2BIG;
		return sec->err;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t *w = words + i * CPUID_NWORDS;
		w[0] = e[i].function;
		w[1] = e[i].index;
		w[2] = e[i].flags;
		w[3] = e[i].eax;
		w[4] = e[i].ebx;
		w[5] = e[i].ecx;
		w[6] = e[i].edx;
	}
	snap_put_u64(sec, CPUID_WORDS, CPUID_NWORDS);
	snap_put_u64a(sec, CPUID_ENTRIES, words, n * CPUID_NWORDS);
	return sec->err;
}

int snap_decode_cpuid(const struct snap_section *sec, struct kvm_cpuid_entry2 *e, size_t cap,
		      size_t *n, char *err, size_t errlen)
{
	uint64_t stride;
	const uint64_t *w;
	size_t nw;
	int r = check_version(sec, err, errlen);
	if (r)
		return r;
	/* A newer writer may append words per entry: the stride says how many. */
	r = snap_get_u64_max(sec, CPUID_WORDS, 64, &stride, err, errlen);
	if (r == -ERANGE)
		return r;
	if (r || stride < CPUID_NWORDS)
		return bad_field(sec, "entry_words", err, errlen);
	r = snap_get_u64a(sec, CPUID_ENTRIES, &w, &nw);
	if (r == -ENOENT) {
		nw = 0;
	} else if (r || nw % stride) {
		return bad_field(sec, "entries", err, errlen);
	}
	size_t count = nw / stride;
	if (count > cap || count > SNAP_MAX_CPUID) {
		errf(err, errlen, 0, "section '%s' has %zu CPUID entries, at most %zu allowed",
		     sec->name, count, cap < SNAP_MAX_CPUID ? cap : (size_t)SNAP_MAX_CPUID);
		return -ERANGE;
	}
	for (size_t i = 0; i < count; i++) {
		const uint64_t *x = w + i * stride;
		for (int k = 0; k < CPUID_NWORDS; k++)
			if (x[k] >> 32)
				return bad_field(sec, "entries", err, errlen);
		memset(&e[i], 0, sizeof(e[i]));
		e[i].function = (uint32_t)x[0];
		e[i].index = (uint32_t)x[1];
		e[i].flags = (uint32_t)x[2];
		e[i].eax = (uint32_t)x[3];
		e[i].ebx = (uint32_t)x[4];
		e[i].ecx = (uint32_t)x[5];
		e[i].edx = (uint32_t)x[6];
	}
	*n = count;
	return 0;
}

/* ---------------------------------------------------------------- machine */

int snap_encode_machine(struct snap_sec *sec, const struct snap_machine *m)
{
	uint64_t r[SNAP_MAX_REGIONS * 3];
	if (m->nr_regions > SNAP_MAX_REGIONS) {
		if (!sec->err)
			sec->err = -E2BIG;
		return sec->err;
	}
	for (uint32_t i = 0; i < m->nr_regions; i++) {
		r[3 * i] = m->regions[i].gpa;
		r[3 * i + 1] = m->regions[i].size;
		r[3 * i + 2] = m->regions[i].offset;
	}
	snap_put_u64(sec, M_MEM_SIZE, m->mem_size);
	snap_put_u64(sec, M_NR_VCPUS, m->nr_vcpus);
	snap_put_u64a(sec, M_REGIONS, r, 3 * m->nr_regions);
	snap_put_strn(sec, M_TEMPLATE, m->cpu_template,
		      strnlen(m->cpu_template, sizeof(m->cpu_template)));
	snap_put_strn(sec, M_CMDLINE, m->cmdline, strnlen(m->cmdline, sizeof(m->cmdline)));
	if (m->static_template[0])
		snap_put_strn(sec, M_STATIC_TMPL, m->static_template,
			      strnlen(m->static_template, sizeof(m->static_template)));
	return sec->err;
}

int snap_decode_machine(const struct snap_section *sec, struct snap_machine *m, char *err,
			size_t errlen)
{
	uint64_t v;
	const uint64_t *r;
	size_t n;
	int ret = check_version(sec, err, errlen);
	if (ret)
		return ret;
	memset(m, 0, sizeof(*m));
	if (snap_get_u64(sec, M_MEM_SIZE, &m->mem_size) || m->mem_size % SNAP_PAGE_SIZE)
		return bad_field(sec, "mem_size", err, errlen);
	ret = snap_get_u64_max(sec, M_NR_VCPUS, SNAP_MAX_VCPUS, &v, err, errlen);
	if (ret == -ERANGE)
		return ret;
	if (ret || v == 0)
		return bad_field(sec, "nr_vcpus", err, errlen);
	m->nr_vcpus = (uint32_t)v;
	ret = snap_get_u64a(sec, M_REGIONS, &r, &n);
	if (ret && ret != -ENOENT)
		return bad_field(sec, "regions", err, errlen);
	if (ret)
		n = 0;
	if (n % 3 || n / 3 > SNAP_MAX_REGIONS)
		return bad_field(sec, "regions", err, errlen);
	/* Untrusted: regions are in guest physical order without overlap, each non-empty and
	 * page aligned, and they tile the memory in that order (region i starts in memory
	 * where region i-1 ends), so every byte of memory is mapped exactly once. */
	uint64_t next_off = 0, gpa_end = 0;
	for (size_t i = 0; i < n / 3; i++) {
		struct snap_mem_region *g = &m->regions[i];
		g->gpa = r[3 * i];
		g->size = r[3 * i + 1];
		g->offset = r[3 * i + 2];
		if (!g->size || g->gpa + g->size < g->gpa ||
		    (g->gpa | g->size | g->offset) % 4096 || g->offset != next_off ||
		    (i && g->gpa < gpa_end) || g->size > m->mem_size - next_off) {
			errf(err, errlen, 0,
			     "section '%s' field 'regions': region %zu (gpa 0x%llx, size 0x%llx, "
			     "offset 0x%llx) breaks the layout rules (ordered, page aligned, "
			     "tiling memory of 0x%llx bytes)",
			     sec->name, i, (unsigned long long)g->gpa, (unsigned long long)g->size,
			     (unsigned long long)g->offset, (unsigned long long)m->mem_size);
			return -EBADMSG;
		}
		next_off += g->size;
		gpa_end = g->gpa + g->size;
	}
	if (next_off != m->mem_size) {
		errf(err, errlen, 0,
		     "section '%s' field 'regions': regions cover 0x%llx of 0x%llx bytes of memory",
		     sec->name, (unsigned long long)next_off, (unsigned long long)m->mem_size);
		return -EBADMSG;
	}
	m->nr_regions = (uint32_t)(n / 3);
	ret = snap_get_strbuf(sec, M_TEMPLATE, m->cpu_template, sizeof(m->cpu_template));
	if (ret && ret != -ENOENT)
		return bad_field(sec, "cpu_template", err, errlen);
	ret = snap_get_strbuf(sec, M_CMDLINE, m->cmdline, sizeof(m->cmdline));
	if (ret && ret != -ENOENT)
		return bad_field(sec, "cmdline", err, errlen);
	ret = snap_get_strbuf(sec, M_STATIC_TMPL, m->static_template, sizeof(m->static_template));
	if (ret && ret != -ENOENT)
		return bad_field(sec, "static_cpu_template", err, errlen);
	return 0;
}

/* ---------------------------------------------------------------- writer conveniences */

static int new_sec(struct snap_writer *w, const char *name, uint32_t flags, struct snap_sec **s)
{
	return snap_writer_section(w, name, 1, 0, flags, s);
}

int snap_put_vcpu(struct snap_writer *w, unsigned index, const struct snap_vcpu_state *v)
{
	char name[SNAP_NAME_MAX];
	struct snap_sec *s;
	snprintf(name, sizeof(name), "vcpu.%u", index);
	int r = new_sec(w, name, SNAP_SEC_REQUIRED, &s);
	return r ? r : snap_encode_vcpu(s, v);
}

int snap_put_vm(struct snap_writer *w, const struct snap_vm_state *vm)
{
	struct snap_sec *s;
	int r = new_sec(w, "irqchip", SNAP_SEC_REQUIRED, &s);
	if (r || (r = snap_encode_irqchip(s, vm)))
		return r;
	r = new_sec(w, "pit", SNAP_SEC_REQUIRED, &s);
	if (r || (r = snap_encode_pit(s, &vm->pit)))
		return r;
	r = new_sec(w, "clock", SNAP_SEC_REQUIRED, &s);
	return r ? r : snap_encode_clock(s, &vm->clock);
}

int snap_put_cpuid(struct snap_writer *w, const struct kvm_cpuid_entry2 *e, size_t n)
{
	struct snap_sec *s;
	int r = new_sec(w, "cpuid", SNAP_SEC_REQUIRED, &s);
	return r ? r : snap_encode_cpuid(s, e, n);
}

int snap_put_machine(struct snap_writer *w, const struct snap_machine *m)
{
	struct snap_sec *s;
	int r = new_sec(w, "machine", SNAP_SEC_REQUIRED, &s);
	return r ? r : snap_encode_machine(s, m);
}

/* ---------------------------------------------------------------- reader conveniences */

static const struct snap_section *need(const struct snap *s, const char *name, char *err,
				       size_t errlen)
{
	const struct snap_section *sec = snap_section_find(s, name);
	if (!sec)
		errf(err, errlen, 0, "snapshot has no section '%s'", name);
	return sec;
}

int snap_get_vcpu(const struct snap *s, unsigned index, struct snap_vcpu_state *v, char *err,
		  size_t errlen)
{
	char name[SNAP_NAME_MAX];
	snprintf(name, sizeof(name), "vcpu.%u", index);
	const struct snap_section *sec = need(s, name, err, errlen);
	return sec ? snap_decode_vcpu(sec, v, err, errlen) : -ENOENT;
}

int snap_get_vm(const struct snap *s, struct snap_vm_state *vm, char *err, size_t errlen)
{
	const struct snap_section *a = need(s, "irqchip", err, errlen);
	if (!a)
		return -ENOENT;
	int r = snap_decode_irqchip(a, vm, err, errlen);
	if (r)
		return r;
	const struct snap_section *b = need(s, "pit", err, errlen);
	if (!b)
		return -ENOENT;
	r = snap_decode_pit(b, &vm->pit, err, errlen);
	if (r)
		return r;
	const struct snap_section *c = need(s, "clock", err, errlen);
	return c ? snap_decode_clock(c, &vm->clock, err, errlen) : -ENOENT;
}

int snap_get_cpuid(const struct snap *s, struct kvm_cpuid_entry2 *e, size_t cap, size_t *n,
		   char *err, size_t errlen)
{
	const struct snap_section *sec = need(s, "cpuid", err, errlen);
	return sec ? snap_decode_cpuid(sec, e, cap, n, err, errlen) : -ENOENT;
}

int snap_get_machine(const struct snap *s, struct snap_machine *m, char *err, size_t errlen)
{
	const struct snap_section *sec = need(s, "machine", err, errlen);
	return sec ? snap_decode_machine(sec, m, err, errlen) : -ENOENT;
}

/* ---------------------------------------------------------------- names for tools */

static const char *desc_name(const struct fdesc *t, size_t n, uint16_t tag)
{
	const struct fdesc *d = desc_find(t, n, tag);
	return d ? d->name : NULL;
}

const char *snap_kvm_field_name(const char *section, uint16_t tag)
{
	if (!strncmp(section, "vcpu.", 5)) {
		const char *nm = desc_name(vcpu_desc, N(vcpu_desc), tag);
		return nm ? nm : snap_tagname_find(vcpu_extra_names, N(vcpu_extra_names), tag);
	}
	if (!strcmp(section, "irqchip"))
		return desc_name(irqchip_desc, N(irqchip_desc), tag);
	if (!strcmp(section, "pit"))
		return desc_name(pit_desc, N(pit_desc), tag);
	if (!strcmp(section, "clock"))
		return desc_name(clock_desc, N(clock_desc), tag);
	if (!strcmp(section, "cpuid"))
		return snap_tagname_find(cpuid_names, N(cpuid_names), tag);
	if (!strcmp(section, "machine"))
		return snap_tagname_find(machine_names, N(machine_names), tag);
	return NULL;
}

/* For the unit test that keeps the tables sorted (binary search relies on it). */
int snap_codec_tables_sorted(void);
int snap_codec_tables_sorted(void)
{
	const struct {
		const struct fdesc *d;
		size_t n;
	} t[] = {{vcpu_desc, N(vcpu_desc)},
		 {irqchip_desc, N(irqchip_desc)},
		 {pit_desc, N(pit_desc)},
		 {clock_desc, N(clock_desc)}};
	for (size_t k = 0; k < N(t); k++)
		for (size_t i = 1; i < t[k].n; i++)
			if (t[k].d[i - 1].tag >= t[k].d[i].tag)
				return 0;
	return 1;
}

void snap_warm_up(void)
{
	/* Everything snap_open and the decoders touch for the first time in a process costs a
	 * page fault (code, tables, heap), and faults are expensive in a VM with shadow
	 * paging: pay them here, before the restore request. */
	struct snap_vcpu_state *v = calloc(1, sizeof(*v)); /* heap: freed, nothing kept */
	struct snap_vm_state vm;
	struct kvm_cpuid_entry2 e[2];
	struct snap_machine *m = calloc(1, sizeof(*m));
	struct snap_sec sec = {0};
	struct snap_section view;
	size_t n;
	snap_crc32c(0, NULL, 0);
	memset(&vm, 0, sizeof(vm));
	memset(e, 0, sizeof(e));
	if (v && snap_encode_vcpu(&sec, v) == 0) {
		snap_section_view(&view, "vcpu.0", sec.buf, sec.len);
		snap_crc32c(0, sec.buf, sec.len);
		snap_decode_vcpu(&view, v, NULL, 0);
	}
	free(v);
	sec.len = 0;
	if (snap_encode_irqchip(&sec, &vm) == 0) {
		snap_section_view(&view, "irqchip", sec.buf, sec.len);
		snap_decode_irqchip(&view, &vm, NULL, 0);
	}
	sec.len = 0;
	if (snap_encode_cpuid(&sec, e, 2) == 0) {
		snap_section_view(&view, "cpuid", sec.buf, sec.len);
		snap_decode_cpuid(&view, e, 2, &n, NULL, 0);
	}
	if (m) {
		sec.len = 0;
		m->nr_vcpus = 1;
		if (snap_encode_machine(&sec, m) == 0) {
			snap_section_view(&view, "machine", sec.buf, sec.len);
			snap_decode_machine(&view, m, NULL, 0);
		}
		free(m);
	}
	snap_sec_release(&sec);
}
