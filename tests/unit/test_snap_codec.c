/* State codecs: random structs survive encode + decode field by field; decoders default
 * missing fields, skip unknown ones and refuse values that do not fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "restore/snap_kvm.h"

int snap_codec_tables_sorted(void);

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
#define R8  ((uint8_t)rnd())
#define R16 ((uint16_t)rnd())
#define R32 ((uint32_t)rnd())

static void fill_bytes(void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		((uint8_t *)p)[i] = R8;
}

static void rand_seg(struct kvm_segment *s)
{
	s->base = rnd();
	s->limit = R32;
	s->selector = R16;
	s->type = R8;
	s->present = R8;
	s->dpl = R8;
	s->db = R8;
	s->s = R8;
	s->l = R8;
	s->g = R8;
	s->avl = R8;
	s->unusable = R8;
}

/* Fills every saved field; reserved and padding stay zero so memcmp also applies. */
static void rand_vcpu(struct snap_vcpu_state *v, uint32_t nmsrs)
{
	memset(v, 0, sizeof(*v));
	__u64 *r = &v->regs.rax;
	for (int i = 0; i < 18; i++)
		r[i] = rnd();
	struct kvm_segment *segs[] = {&v->sregs.cs, &v->sregs.ds, &v->sregs.es, &v->sregs.fs,
				      &v->sregs.gs, &v->sregs.ss, &v->sregs.tr, &v->sregs.ldt};
	for (int i = 0; i < 8; i++)
		rand_seg(segs[i]);
	v->sregs.gdt.base = rnd();
	v->sregs.gdt.limit = R16;
	v->sregs.idt.base = rnd();
	v->sregs.idt.limit = R16;
	v->sregs.cr0 = rnd();
	v->sregs.cr2 = rnd();
	v->sregs.cr3 = rnd();
	v->sregs.cr4 = rnd();
	v->sregs.cr8 = rnd();
	v->sregs.efer = rnd();
	v->sregs.apic_base = rnd();
	for (int i = 0; i < 4; i++)
		v->sregs.interrupt_bitmap[i] = rnd();
	fill_bytes(v->xsave.region, sizeof(v->xsave.region));
	v->xcrs.nr_xcrs = 1;
	v->xcrs.flags = R32;
	v->xcrs.xcrs[0].xcr = 0;
	v->xcrs.xcrs[0].value = rnd();
	fill_bytes(v->lapic.regs, sizeof(v->lapic.regs));
	struct kvm_vcpu_events *e = &v->events;
	e->exception.injected = R8;
	e->exception.nr = R8;
	e->exception.has_error_code = R8;
	e->exception.pending = R8;
	e->exception.error_code = R32;
	e->exception_has_payload = R8;
	e->exception_payload = rnd();
	e->interrupt.injected = R8;
	e->interrupt.nr = R8;
	e->interrupt.soft = R8;
	e->interrupt.shadow = R8;
	e->nmi.injected = R8;
	e->nmi.pending = R8;
	e->nmi.masked = R8;
	e->sipi_vector = R32;
	e->flags = R32;
	e->smi.smm = R8;
	e->smi.pending = R8;
	e->smi.smm_inside_nmi = R8;
	e->smi.latched_init = R8;
	e->triple_fault.pending = R8;
	v->mp_state.mp_state = R32;
	for (int i = 0; i < 4; i++)
		v->debugregs.db[i] = rnd();
	v->debugregs.dr6 = rnd();
	v->debugregs.dr7 = rnd();
	v->debugregs.flags = rnd();
	v->nmsrs = nmsrs;
	for (uint32_t i = 0; i < nmsrs; i++) {
		v->msrs[i].index = R32;
		v->msrs[i].data = rnd();
	}
}

static void view(struct snap_section *sec, const char *name, const struct snap_sec *b)
{
	assert_int_equal(b->err, 0);
	snap_section_view(sec, name, b->buf, b->len);
}

static void test_tag_tables_are_sorted(void **state)
{
	(void)state;
	assert_true(snap_codec_tables_sorted());
}

static void test_vcpu_round_trip(void **state)
{
	(void)state;
	snap_warm_up(); /* must leave nothing behind that changes a decode */
	snap_warm_up();
	static struct snap_vcpu_state a, b;
	char err[256] = "";
	for (int round = 0; round < 20; round++) {
		rand_vcpu(&a, (uint32_t)(rnd() % (SNAP_MAX_MSRS + 1)));
		struct snap_sec sec = {0};
		struct snap_section v;
		assert_int_equal(snap_encode_vcpu(&sec, &a), 0);
		view(&v, "vcpu.0", &sec);
		memset(&b, 0xa5, sizeof(b));
		assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), 0);
		/* field by field, then everything */
		assert_memory_equal(&a.regs, &b.regs, sizeof(a.regs));
		assert_int_equal(a.regs.rip, b.regs.rip);
		assert_int_equal(a.sregs.cs.selector, b.sregs.cs.selector);
		assert_int_equal(a.sregs.ldt.unusable, b.sregs.ldt.unusable);
		assert_int_equal(a.sregs.tr.base, b.sregs.tr.base);
		assert_memory_equal(&a.sregs, &b.sregs, sizeof(a.sregs));
		assert_memory_equal(a.xsave.region, b.xsave.region, sizeof(a.xsave.region));
		assert_memory_equal(&a.xcrs, &b.xcrs, sizeof(a.xcrs));
		assert_memory_equal(&a.lapic, &b.lapic, sizeof(a.lapic));
		assert_int_equal(a.events.exception.error_code, b.events.exception.error_code);
		assert_int_equal(a.events.exception_payload, b.events.exception_payload);
		assert_memory_equal(&a.events, &b.events, sizeof(a.events));
		assert_int_equal(a.mp_state.mp_state, b.mp_state.mp_state);
		assert_memory_equal(&a.debugregs, &b.debugregs, sizeof(a.debugregs));
		assert_int_equal(a.nmsrs, b.nmsrs);
		for (uint32_t i = 0; i < a.nmsrs; i++) {
			assert_int_equal(a.msrs[i].index, b.msrs[i].index);
			assert_int_equal(a.msrs[i].data, b.msrs[i].data);
		}
		assert_memory_equal(&a, &b, sizeof(a));
		snap_sec_release(&sec);
	}
}

static void test_vcpu_missing_fields_default_and_unknown_are_skipped(void **state)
{
	(void)state;
	static struct snap_vcpu_state b;
	struct snap_sec sec = {0};
	struct snap_section v;
	char err[256];
	snap_put_u64(&sec, 17, 0xfff0);		 /* rip */
	snap_put_str(&sec, 0x7777, "new field"); /* from a newer writer */
	snap_put_u64(&sec, 0x7778, 5);
	view(&v, "vcpu.1", &sec);
	memset(&b, 0xa5, sizeof(b));
	assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), 0);
	assert_int_equal(b.regs.rip, 0xfff0);
	assert_int_equal(b.regs.rax, 0);
	assert_int_equal(b.sregs.cr0, 0);
	assert_int_equal(b.nmsrs, 0);
	snap_sec_release(&sec);
}

static void test_vcpu_value_too_wide_is_refused(void **state)
{
	(void)state;
	static struct snap_vcpu_state b;
	struct snap_sec sec = {0};
	struct snap_section v;
	char err[256] = "";
	snap_put_u64(&sec, 0x100 + 5, 0x100); /* cs.dpl is one byte */
	view(&v, "vcpu.0", &sec);
	assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "field 'cs.dpl' value 0x100 does not fit 1 bytes"));
	snap_sec_release(&sec);
}

static void test_vcpu_wrong_blob_size_and_type_are_refused(void **state)
{
	(void)state;
	static struct snap_vcpu_state b;
	char err[256] = "";
	uint8_t small[100] = {0};
	struct snap_sec sec = {0};
	struct snap_section v;
	snap_put_bytes(&sec, 0x200, small, sizeof(small)); /* xsave must be 4096 */
	view(&v, "vcpu.0", &sec);
	assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "'xsave' is 100 bytes, expected 4096"));
	snap_sec_release(&sec);

	struct snap_sec s2 = {0};
	snap_put_str(&s2, 1, "rax as text");
	view(&v, "vcpu.0", &s2);
	assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "field 'rax' (tag 0x1) is string, expected u64"));
	snap_sec_release(&s2);
}

static void test_vcpu_too_many_msrs_is_refused(void **state)
{
	(void)state;
	static struct snap_vcpu_state b;
	char err[256] = "";
	uint64_t *pairs = calloc(2 * (SNAP_MAX_MSRS + 1), 8);
	struct snap_sec sec = {0};
	struct snap_section v;
	snap_put_u64a(&sec, 0x600, pairs, 2 * (SNAP_MAX_MSRS + 1));
	view(&v, "vcpu.0", &sec);
	assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "'msrs' must be at most 256 pairs"));
	snap_sec_release(&sec);
	free(pairs);
	/* and the encoder refuses to write them */
	static struct snap_vcpu_state a;
	memset(&a, 0, sizeof(a));
	a.nmsrs = SNAP_MAX_MSRS + 1;
	struct snap_sec s2 = {0};
	assert_int_equal(snap_encode_vcpu(&s2, &a), -E2BIG);
	snap_sec_release(&s2);
}

static void test_newer_section_major_is_refused(void **state)
{
	(void)state;
	static struct snap_vcpu_state b;
	struct snap_sec sec = {0};
	struct snap_section v;
	char err[256] = "";
	snap_put_u64(&sec, 1, 1);
	view(&v, "vcpu.0", &sec);
	v.ver_major = 2;
	assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "section 'vcpu.0' version 2.0 is newer than this reader"));
	snap_sec_release(&sec);
}

static void test_section_version_check_names_section_and_both_versions(void **state)
{
	(void)state;
	struct snap_section v;
	char err[256] = "";
	snap_section_view(&v, "device.virtio0", NULL, 0);
	v.ver_major = 1;
	v.ver_minor = 9;
	assert_int_equal(snap_section_check_version(&v, 1, err, sizeof(err)), 0);
	v.ver_major = 2;
	v.ver_minor = 0;
	assert_int_equal(snap_section_check_version(&v, 1, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_string_equal(err,
			    "section 'device.virtio0' version 2.0 is newer than this reader (1.x)");
	assert_int_equal(snap_section_check_version(&v, 2, err, sizeof(err)), 0);
	v.ver_major = 0;
	v.ver_minor = 3;
	assert_int_equal(snap_section_check_version(&v, 1, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "section 'device.virtio0' version 0.3 is older than any"));
}

static void test_section_major_zero_is_refused_by_every_decoder(void **state)
{
	(void)state;
	static struct snap_vcpu_state b;
	struct snap_vm_state vm;
	struct snap_sec sec = {0};
	struct snap_section v;
	char err[256] = "";
	snap_put_u64(&sec, 1, 1);
	view(&v, "vcpu.0", &sec);
	v.ver_major = 0;
	assert_int_equal(snap_decode_vcpu(&v, &b, err, sizeof(err)), -EPROTONOSUPPORT);
	v.ver_major = 0;
	assert_int_equal(snap_decode_clock(&v, &vm.clock, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "older than any version"));
	snap_sec_release(&sec);
}

static void test_u64_getter_refuses_values_above_the_destination(void **state)
{
	(void)state;
	struct snap_sec sec = {0};
	struct snap_section v;
	char err[256] = "";
	uint64_t x = 7;
	snap_put_u64(&sec, 0x100, 1ull << 32); /* a device status that is not a u32 */
	snap_put_u64(&sec, 0x101, UINT32_MAX);
	snap_put_str(&sec, 0x102, "text");
	view(&v, "device.virtio0", &sec);
	assert_int_equal(snap_get_u64_max(&v, 0x100, UINT32_MAX, &x, err, sizeof(err)), -ERANGE);
	assert_int_equal(x, 7); /* untouched: never truncated to 0 */
	assert_string_equal(err, "section 'device.virtio0' field 0x100 value 0x100000000 is above "
				 "its limit 0xffffffff");
	assert_int_equal(snap_get_u64_max(&v, 0x101, UINT32_MAX, &x, err, sizeof(err)), 0);
	assert_int_equal(x, UINT32_MAX);
	assert_int_equal(snap_get_u64_max(&v, 0x102, UINT32_MAX, &x, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "field 0x102 is string, expected u64"));
	assert_int_equal(snap_get_u64_max(&v, 0x103, UINT32_MAX, &x, NULL, 0), -ENOENT);
	/* the defaulting form: missing takes the default, present is still checked */
	assert_int_equal(snap_get_u64_def(&v, 0x103, 0xff, 5, &x, err, sizeof(err)), 0);
	assert_int_equal(x, 5);
	assert_int_equal(snap_get_u64_def(&v, 0x100, UINT32_MAX, 5, &x, err, sizeof(err)), -ERANGE);
	snap_sec_release(&sec);
}

static void test_field_check_refuses_a_tag_twice_in_a_view(void **state)
{
	(void)state;
	struct snap_sec sec = {0};
	struct snap_section v;
	char err[256] = "";
	snap_put_u64(&sec, 1, 1);
	snap_put_u64(&sec, 2, 2);
	view(&v, "clock", &sec);
	assert_int_equal(snap_section_check_fields(&v, err, sizeof(err)), 0);
	snap_put_u64(&sec, 1, 3);
	view(&v, "clock", &sec);
	assert_int_equal(snap_section_check_fields(&v, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "section 'clock' has tag 0x1 twice"));
	/* and it leaves nothing behind: a clean section after a refused one passes */
	struct snap_sec ok = {0};
	snap_put_u64(&ok, 1, 1);
	view(&v, "pit", &ok);
	assert_int_equal(snap_section_check_fields(&v, err, sizeof(err)), 0);
	snap_sec_release(&sec);
	snap_sec_release(&ok);
}

static void test_machine_regions_must_tile_memory_in_order(void **state)
{
	(void)state;
	static struct snap_machine a, b;
	char err[256] = "";
	struct snap_section v;
	const struct {
		struct snap_mem_region r[2];
		const char *why;
	} bad[] = {
	    {{{0, 2 << 20, 0}, {1 << 20, 2 << 20, 2 << 20}}, "overlapping in guest physical space"},
	    {{{4 << 20, 2 << 20, 0}, {0, 2 << 20, 2 << 20}}, "out of guest physical order"},
	    {{{0, 2 << 20, 0}, {4 << 20, 2 << 20, 0}}, "mapping memory twice"},
	    {{{0, 2 << 20, 0}, {4 << 20, 1 << 20, 2 << 20}}, "leaving memory uncovered"},
	    {{{0, 2 << 20, 0}, {4 << 20, 0, 2 << 20}}, "an empty region"},
	};
	memset(&a, 0, sizeof(a));
	a.mem_size = 4 << 20;
	a.nr_vcpus = 1;
	a.nr_regions = 2;
	a.regions[0] = (struct snap_mem_region){0, 2 << 20, 0};
	a.regions[1] = (struct snap_mem_region){4 << 20, 2 << 20, 2 << 20};
	struct snap_sec good = {0};
	assert_int_equal(snap_encode_machine(&good, &a), 0);
	view(&v, "machine", &good);
	assert_int_equal(snap_decode_machine(&v, &b, err, sizeof(err)), 0);
	snap_sec_release(&good);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct snap_sec s = {0};
		a.regions[0] = bad[i].r[0];
		a.regions[1] = bad[i].r[1];
		assert_int_equal(snap_encode_machine(&s, &a), 0);
		view(&v, "machine", &s);
		if (snap_decode_machine(&v, &b, err, sizeof(err)) != -EBADMSG)
			fail_msg("regions %s were accepted", bad[i].why);
		assert_non_null(strstr(err, "field 'regions'"));
		snap_sec_release(&s);
	}
}

static void test_vm_state_round_trip(void **state)
{
	(void)state;
	struct snap_vm_state a, b;
	char err[256];
	for (int round = 0; round < 20; round++) {
		memset(&a, 0, sizeof(a));
		fill_bytes(a.pic, sizeof(a.pic)); /* all u8 fields */
		a.ioapic.base_address = rnd();
		a.ioapic.ioregsel = R32;
		a.ioapic.id = R32;
		a.ioapic.irr = R32;
		for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
			a.ioapic.redirtbl[i].bits = rnd();
		for (int c = 0; c < 3; c++) {
			struct kvm_pit_channel_state *ch = &a.pit.channels[c];
			ch->count = R32;
			ch->latched_count = R16;
			ch->count_latched = R8;
			ch->status_latched = R8;
			ch->status = R8;
			ch->read_state = R8;
			ch->write_state = R8;
			ch->write_latch = R8;
			ch->rw_mode = R8;
			ch->mode = R8;
			ch->bcd = R8;
			ch->gate = R8;
			ch->count_load_time = (int64_t)rnd();
		}
		a.pit.flags = R32;
		a.clock.clock = rnd();
		a.clock.flags = R32;
		a.clock.realtime = rnd();
		a.clock.host_tsc = rnd();

		struct snap_sec s1 = {0}, s2 = {0}, s3 = {0};
		struct snap_section v1, v2, v3;
		assert_int_equal(snap_encode_irqchip(&s1, &a), 0);
		assert_int_equal(snap_encode_pit(&s2, &a.pit), 0);
		assert_int_equal(snap_encode_clock(&s3, &a.clock), 0);
		view(&v1, "irqchip", &s1);
		view(&v2, "pit", &s2);
		view(&v3, "clock", &s3);
		memset(&b, 0x5a, sizeof(b));
		assert_int_equal(snap_decode_irqchip(&v1, &b, err, sizeof(err)), 0);
		assert_int_equal(snap_decode_pit(&v2, &b.pit, err, sizeof(err)), 0);
		assert_int_equal(snap_decode_clock(&v3, &b.clock, err, sizeof(err)), 0);
		assert_memory_equal(&a.pic[0], &b.pic[0], sizeof(a.pic[0]));
		assert_memory_equal(&a.pic[1], &b.pic[1], sizeof(a.pic[1]));
		assert_int_equal(a.ioapic.redirtbl[23].bits, b.ioapic.redirtbl[23].bits);
		assert_memory_equal(&a.ioapic, &b.ioapic, sizeof(a.ioapic));
		assert_int_equal(a.pit.channels[2].count_load_time,
				 b.pit.channels[2].count_load_time);
		assert_memory_equal(&a.pit, &b.pit, sizeof(a.pit));
		assert_int_equal(a.clock.clock, b.clock.clock);
		assert_memory_equal(&a.clock, &b.clock, sizeof(a.clock));
		snap_sec_release(&s1);
		snap_sec_release(&s2);
		snap_sec_release(&s3);
	}
}

static void test_cpuid_round_trip_and_cap(void **state)
{
	(void)state;
	static struct kvm_cpuid_entry2 a[SNAP_MAX_CPUID], b[SNAP_MAX_CPUID];
	char err[256] = "";
	size_t n = 80, got = 0;
	memset(a, 0, sizeof(a));
	for (size_t i = 0; i < n; i++) {
		a[i].function = R32;
		a[i].index = R32;
		a[i].flags = R32;
		a[i].eax = R32;
		a[i].ebx = R32;
		a[i].ecx = R32;
		a[i].edx = R32;
	}
	struct snap_sec sec = {0};
	struct snap_section v;
	assert_int_equal(snap_encode_cpuid(&sec, a, n), 0);
	view(&v, "cpuid", &sec);
	assert_int_equal(snap_decode_cpuid(&v, b, SNAP_MAX_CPUID, &got, err, sizeof(err)), 0);
	assert_int_equal(got, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(a[i].function, b[i].function);
		assert_int_equal(a[i].edx, b[i].edx);
	}
	assert_memory_equal(a, b, n * sizeof(a[0]));
	/* a caller's smaller array is respected */
	assert_int_equal(snap_decode_cpuid(&v, b, 10, &got, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "80 CPUID entries, at most 10"));
	snap_sec_release(&sec);
	struct snap_sec s2 = {0};
	assert_int_equal(snap_encode_cpuid(&s2, a, SNAP_MAX_CPUID + 1), -E2BIG);
	snap_sec_release(&s2);
}

static void test_cpuid_wider_entries_from_newer_writer(void **state)
{
	(void)state;
	/* a newer writer with 9 words per entry: this reader takes the first 7 */
	uint64_t w[18] = {7, 0, 1, 0xa, 0xb, 0xc, 0xd, 99, 98, 1, 0, 0, 1, 2, 3, 4, 97, 96};
	struct kvm_cpuid_entry2 e[4];
	size_t n;
	char err[256];
	struct snap_sec sec = {0};
	struct snap_section v;
	snap_put_u64(&sec, 1, 9);
	snap_put_u64a(&sec, 2, w, 18);
	view(&v, "cpuid", &sec);
	assert_int_equal(snap_decode_cpuid(&v, e, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].function, 7);
	assert_int_equal(e[0].edx, 0xd);
	assert_int_equal(e[1].function, 1);
	assert_int_equal(e[1].edx, 4);
	snap_sec_release(&sec);
}

static void test_machine_round_trip_and_hostile_regions(void **state)
{
	(void)state;
	static struct snap_machine a, b;
	char err[256] = "";
	memset(&a, 0, sizeof(a));
	a.mem_size = 4ull << 30;
	a.nr_vcpus = 2;
	a.nr_regions = 2;
	a.regions[0] = (struct snap_mem_region){0, 3ull << 30, 0};
	a.regions[1] = (struct snap_mem_region){4ull << 30, 1ull << 30, 3ull << 30};
	snprintf(a.cpu_template, sizeof(a.cpu_template), "T2");
	snprintf(a.cmdline, sizeof(a.cmdline), "console=ttyS0 reboot=k panic=1");
	snprintf(a.static_template, sizeof(a.static_template), "T2A");
	struct snap_sec sec = {0};
	struct snap_section v;
	assert_int_equal(snap_encode_machine(&sec, &a), 0);
	view(&v, "machine", &sec);
	assert_int_equal(snap_decode_machine(&v, &b, err, sizeof(err)), 0);
	assert_int_equal(b.mem_size, a.mem_size);
	assert_int_equal(b.nr_vcpus, 2);
	assert_int_equal(b.nr_regions, 2);
	assert_int_equal(b.regions[1].gpa, 4ull << 30);
	assert_int_equal(b.regions[1].offset, 3ull << 30);
	assert_string_equal(b.cpu_template, "T2");
	assert_string_equal(b.cmdline, a.cmdline);
	assert_string_equal(b.static_template, "T2A");
	assert_memory_equal(&a, &b, sizeof(a));
	snap_sec_release(&sec);

	/* a region past the end of memory */
	a.regions[1].offset = 3ull << 30 | 4096;
	struct snap_sec s2 = {0};
	assert_int_equal(snap_encode_machine(&s2, &a), 0);
	view(&v, "machine", &s2);
	assert_int_equal(snap_decode_machine(&v, &b, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "section 'machine' field 'regions': region 1"));
	snap_sec_release(&s2);
	/* zero vCPUs */
	a.regions[1].offset = 3ull << 30;
	a.nr_vcpus = 0;
	struct snap_sec s3 = {0};
	assert_int_equal(snap_encode_machine(&s3, &a), 0);
	view(&v, "machine", &s3);
	assert_int_equal(snap_decode_machine(&v, &b, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "'nr_vcpus'"));
	snap_sec_release(&s3);
}

/* The device convention, as a device's save/restore would use it: a virtio-mmio block
 * device with its three layers. */
static void test_device_section_convention(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_snap_dev.XXXXXX", path[64], err[256];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/d.snap", dir);
	struct snap_writer *w;
	struct snap_sec *s;
	struct snap_device_place place = {.mmio_base = 0xd0000000, .mmio_size = 0x1000, .irq = 5};
	assert_int_equal(snap_writer_create(path, NULL, &w), 0);
	assert_int_equal(snap_device_begin(w, "blk0", "virtio-blk", 1, 0, &place, &s), 0);
	/* transport layer: virtio-mmio registers */
	snap_put_u64(s, SNAP_DEV_TRANSPORT + 0, 0xf); /* status */
	snap_put_u64(s, SNAP_DEV_TRANSPORT + 1, 0);   /* queue_sel */
	/* virtio layer: features and one queue as (size, ready, desc, avail, used, avail
	 * idx, used idx) */
	snap_put_u64(s, SNAP_DEV_VIRTIO + 0, 1ull << 32); /* acked features */
	uint64_t q0[7] = {256, 1, 0x100000, 0x101000, 0x102000, 17, 17};
	snap_put_u64a(s, SNAP_DEV_VIRTIO + 0x10, q0, 7);
	/* device layer */
	snap_put_u64(s, SNAP_DEV_OWN + 0, 2048); /* capacity in sectors */
	snap_put_str(s, SNAP_DEV_OWN + 1, "/images/rootfs.ext4");
	assert_int_equal(snap_device_begin(w, "bad.id", "x", 1, 0, &place, &s), -EINVAL);
	assert_int_equal(snap_writer_commit(w, NULL), 0);

	struct snap *sn;
	assert_int_equal(snap_open(path, &sn, err, sizeof(err)), 0);
	const struct snap_section *d = snap_section_find(sn, "device.blk0");
	assert_non_null(d);
	char kind[32];
	struct snap_device_place p2;
	assert_int_equal(snap_device_get_place(d, kind, sizeof(kind), &p2), 0);
	assert_string_equal(kind, "virtio-blk");
	assert_int_equal(p2.mmio_base, 0xd0000000);
	assert_int_equal(p2.irq, 5);
	const uint64_t *q;
	size_t n;
	assert_int_equal(snap_get_u64a(d, SNAP_DEV_VIRTIO + 0x10, &q, &n), 0);
	assert_int_equal(n, 7);
	assert_int_equal(q[5], 17);
	assert_string_equal(snap_field_name("device.blk0", SNAP_DEV_IRQ), "irq");
	snap_close(sn);
	unlink(path);
	rmdir(dir);
}

static void test_full_state_through_a_file(void **state)
{
	(void)state;
	static struct snap_vcpu_state a[2], b;
	struct snap_vm_state vm, vm2;
	char dir[] = "/tmp/test_snap_full.XXXXXX", path[64], err[256];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f.snap", dir);
	struct snap_writer *w;
	assert_int_equal(snap_writer_create(path, NULL, &w), 0);
	for (unsigned i = 0; i < 2; i++) {
		rand_vcpu(&a[i], 40);
		assert_int_equal(snap_put_vcpu(w, i, &a[i]), 0);
	}
	memset(&vm, 0, sizeof(vm));
	vm.pit.channels[0].count = 65536;
	vm.clock.clock = 123456789;
	vm.ioapic.base_address = 0xfec00000;
	assert_int_equal(snap_put_vm(w, &vm), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	struct snap *s;
	assert_int_equal(snap_open(path, &s, err, sizeof(err)), 0);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(snap_get_vcpu(s, i, &b, err, sizeof(err)), 0);
		assert_memory_equal(&a[i], &b, sizeof(b));
	}
	assert_int_equal(snap_get_vcpu(s, 2, &b, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no section 'vcpu.2'"));
	assert_int_equal(snap_get_vm(s, &vm2, err, sizeof(err)), 0);
	assert_memory_equal(&vm, &vm2, sizeof(vm));
	assert_string_equal(snap_field_name("vcpu.1", 0x193), "cr4");
	assert_string_equal(snap_field_name("pit", 0x30c), "ch2.count_load_time");
	snap_close(s);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tag_tables_are_sorted),
	    cmocka_unit_test(test_vcpu_round_trip),
	    cmocka_unit_test(test_vcpu_missing_fields_default_and_unknown_are_skipped),
	    cmocka_unit_test(test_vcpu_value_too_wide_is_refused),
	    cmocka_unit_test(test_vcpu_wrong_blob_size_and_type_are_refused),
	    cmocka_unit_test(test_vcpu_too_many_msrs_is_refused),
	    cmocka_unit_test(test_newer_section_major_is_refused),
	    cmocka_unit_test(test_section_version_check_names_section_and_both_versions),
	    cmocka_unit_test(test_section_major_zero_is_refused_by_every_decoder),
	    cmocka_unit_test(test_u64_getter_refuses_values_above_the_destination),
	    cmocka_unit_test(test_field_check_refuses_a_tag_twice_in_a_view),
	    cmocka_unit_test(test_machine_regions_must_tile_memory_in_order),
	    cmocka_unit_test(test_vm_state_round_trip),
	    cmocka_unit_test(test_cpuid_round_trip_and_cap),
	    cmocka_unit_test(test_cpuid_wider_entries_from_newer_writer),
	    cmocka_unit_test(test_machine_round_trip_and_hostile_regions),
	    cmocka_unit_test(test_device_section_convention),
	    cmocka_unit_test(test_full_state_through_a_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
