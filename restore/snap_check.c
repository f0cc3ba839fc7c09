/* Offline checking of a snapshot as the restore path would judge it (thaw-snap verify,
 * merge): every section decoded, and the rules that tie sections together. Nothing here
 * is on the restore path: it allocates freely and reports every problem, not the first. */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "restore/snap_internal.h"
#include "restore/snap_kvm.h"

static int check_machine(const struct snap *s, const struct snap_section *sec, char *err,
			 size_t errlen)
{
	struct snap_machine *m = malloc(sizeof(*m));
	struct snap_memory_loc loc;
	int r;
	if (!m)
		return -ENOMEM;
	r = snap_decode_machine(sec, m, err, errlen);
	snap_memory(s, &loc);
	if (!r && !(snap_header_flags(s) & SNAP_HDR_DIFF) && m->mem_size != loc.size) {
		errf(err, errlen, 0,
		     "section 'machine' says %llu bytes of memory, the file has %llu",
		     (unsigned long long)m->mem_size, (unsigned long long)loc.size);
		r = -EBADMSG;
	}
	free(m);
	return r;
}

static int check_cpuid(const struct snap *s, const struct snap_section *sec, char *err,
		       size_t errlen)
{
	struct kvm_cpuid_entry2 *e = calloc(SNAP_MAX_CPUID, sizeof(*e));
	size_t n;
	(void)s;
	if (!e)
		return -ENOMEM;
	int r = snap_decode_cpuid(sec, e, SNAP_MAX_CPUID, &n, err, errlen);
	free(e);
	return r;
}

static int check_vcpu(const struct snap *s, const struct snap_section *sec, char *err,
		      size_t errlen)
{
	struct snap_vcpu_state *v = malloc(sizeof(*v));
	(void)s;
	if (!v)
		return -ENOMEM;
	int r = snap_decode_vcpu(sec, v, err, errlen);
	free(v);
	return r;
}

static int check_vm(const struct snap *s, const struct snap_section *sec, char *err, size_t errlen)
{
	struct snap_vm_state vm;
	(void)s;
	if (!strcmp(sec->name, "irqchip"))
		return snap_decode_irqchip(sec, &vm, err, errlen);
	if (!strcmp(sec->name, "pit"))
		return snap_decode_pit(sec, &vm.pit, err, errlen);
	return snap_decode_clock(sec, &vm.clock, err, errlen);
}

static int check_config(const struct snap *s, const struct snap_section *sec, char *err,
			size_t errlen)
{
	const char *json;
	size_t len;
	int r = snap_section_check_version(sec, 1, err, errlen);
	if (r)
		return r;
	(void)s;
	if (snap_get_str(sec, 1, &json, &len) || len > INT32_MAX)
		return errf(err, errlen, -EBADMSG, "section 'config' has no JSON text (tag 1)");
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	struct json_object *o = json_tokener_parse_ex(tok, json, (int)len);
	bool ok = o && json_tokener_get_error(tok) == json_tokener_success;
	json_object_put(o);
	json_tokener_free(tok);
	return ok ? 0 : errf(err, errlen, -EBADMSG, "section 'config' is not valid JSON");
}

static int check_sums(const struct snap *s, const struct snap_section *sec, char *err,
		      size_t errlen)
{
	struct snap_memory_loc loc;
	uint64_t chunk, msize;
	const uint64_t *sums;
	size_t n;
	int r = snap_section_check_version(sec, 1, err, errlen);
	if (r)
		return r;
	snap_memory(s, &loc);
	if (snap_get_u64(sec, 1, &chunk) || snap_get_u64(sec, 2, &msize) ||
	    snap_get_u64a(sec, 3, &sums, &n))
		return errf(err, errlen, -EBADMSG,
			    "section 'memory.sums' lacks chunk_size, mem_size or sums");
	if (chunk < SNAP_PAGE_SIZE || chunk % SNAP_PAGE_SIZE || chunk > (64u << 20) ||
	    msize != loc.size || n != (msize + chunk - 1) / chunk)
		return errf(err, errlen, -EBADMSG,
			    "section 'memory.sums' (chunk %llu, size %llu, %zu sums) does not "
			    "match memory of %llu bytes",
			    (unsigned long long)chunk, (unsigned long long)msize, n,
			    (unsigned long long)loc.size);
	for (size_t i = 0; i < n; i++)
		if (sums[i] >> 32)
			return errf(err, errlen, -EBADMSG,
				    "section 'memory.sums' sum %zu has upper bits set", i);
	return 0;
}

static int check_zero(const struct snap *s, const struct snap_section *sec, char *err,
		      size_t errlen)
{
	const uint8_t *bits;
	uint64_t n;
	int r = snap_section_check_version(sec, 1, err, errlen);
	if (r)
		return r;
	r = snap_memory_zero_bitmap(s, &bits, &n);
	if (!r && (n % 8) && (bits[n / 8] >> (n % 8)))
		r = -EBADMSG; /* bits past the last page are reserved */
	return r ? errf(err, errlen, -EBADMSG,
			"section 'memory.zero' does not match the memory (page size, page "
			"count or bitmap length)")
		 : 0;
}

static int check_memfile(const struct snap *s, const struct snap_section *sec, char *err,
			 size_t errlen)
{
	(void)s;
	return snap_section_check_version(sec, 1, err, errlen); /* the rest: snap_open */
}

static int check_ws(const struct snap *s, const struct snap_section *sec, char *err, size_t errlen)
{
	const uint64_t *p;
	size_t n;
	int r = snap_section_check_version(sec, 1, err, errlen);
	if (r)
		return r;
	r = snap_workingset(s, &p, &n);
	return r ? errf(err, errlen, -EBADMSG,
			"section 'workingset' lacks its page size or pages, or names a page "
			"outside memory")
		 : 0;
}

static int check_base(const struct snap *s, const struct snap_section *sec, char *err,
		      size_t errlen)
{
	const void *p;
	const char *path;
	size_t len;
	struct snap_memory_loc loc;
	int r = snap_section_check_version(sec, 1, err, errlen);
	if (r)
		return r;
	r = snap_get_bytes(sec, 1, &p, &len);
	if (r != -ENOENT && (r || len != 16))
		return errf(err, errlen, -EBADMSG,
			    "section 'base' field 'base_id' is not 16 bytes");
	r = snap_get_str(sec, 2, &path, &len);
	if (r && r != -ENOENT)
		return errf(err, errlen, -EBADMSG,
			    "section 'base' field 'base_path' is not a string");
	if (!(snap_header_flags(s) & SNAP_HDR_DIFF))
		return 0;
	snap_memory(s, &loc);
	if (snap_get_bytes(sec, 1, &p, &len) || snap_get_bytes(sec, 3, &p, &len) ||
	    len != (loc.size / SNAP_PAGE_SIZE + 7) / 8)
		return errf(err, errlen, -EBADMSG,
			    "section 'base' of a diff lacks base_id, or its page bitmap does "
			    "not match memory");
	return 0;
}

/* The placement every device section starts with; the rest of a device section is its
 * own and judged by the VMM's checker (an `extra` of snap_check). */
static int check_device(const struct snap *s, const struct snap_section *sec, char *err,
			size_t errlen)
{
	char kind[32];
	struct snap_device_place pl;
	(void)s;
	if (!sec->ver_major)
		return snap_section_check_version(sec, 1, err, errlen);
	int r = snap_device_get_place(sec, kind, sizeof(kind), &pl);
	if (r || !kind[0])
		return errf(err, errlen, -EBADMSG,
			    "section '%s': placement (kind, mmio_base, mmio_size, irq) is "
			    "missing or out of range",
			    sec->name);
	return 0;
}

static const struct snap_checker builtin[] = {
    {"machine", check_machine},	    {"cpuid", check_cpuid},	 {"vcpu.", check_vcpu},
    {"irqchip", check_vm},	    {"pit", check_vm},		 {"clock", check_vm},
    {"config", check_config},	    {"memory.sums", check_sums}, {"memory.zero", check_zero},
    {"memory.file", check_memfile}, {"workingset", check_ws},	 {"base", check_base},
    {"device.", check_device},
};

static bool name_matches(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	/* a prefix ending in '.' names a family; otherwise a whole name, or a family
	 * prefix of the VMM's ("device.virtio" for "device.virtio0") */
	return !strncmp(name, prefix, n);
}

/* The rules between sections: which must be there, and vcpu sections matching the
 * machine. Returns the number of problems reported. */
static int check_whole(const struct snap *s, snap_report_fn report, void *opaque)
{
	static const char *const need[] = {"machine", "cpuid", "irqchip", "pit", "clock"};
	const struct snap_section *msec = snap_section_find(s, "machine");
	struct snap_memory_loc loc;
	int bad = 0;

	snap_memory(s, &loc);
	if (!msec && !loc.size && snap_section_find(s, "workingset"))
		return 0; /* a working-set side file: its sections were checked one by one */
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (!snap_section_find(s, need[i])) {
			snap_reportf(report, opaque, "required section '%s' is missing", need[i]);
			bad++;
		}
	}
	if (!loc.size) {
		snap_reportf(report, opaque,
			     "the snapshot has no memory ('memory' or 'memory.file')");
		bad++;
	}
	struct snap_machine *m = malloc(sizeof(*m));
	char err[256];
	if (!m)
		return bad + 1;
	if (msec && snap_decode_machine(msec, m, err, sizeof(err)) == 0) {
		char name[SNAP_NAME_MAX];
		for (unsigned i = 0; i < m->nr_vcpus; i++) {
			snprintf(name, sizeof(name), "vcpu.%u", i);
			if (!snap_section_find(s, name)) {
				snap_reportf(report, opaque,
					     "section '%s' is missing (machine has %u vCPUs)", name,
					     m->nr_vcpus);
				bad++;
			}
		}
		for (size_t i = 0; i < snap_section_count(s); i++) {
			const struct snap_section *sec = snap_section_at(s, i);
			if (!strncmp(sec->name, "vcpu.", 5) &&
			    strtoul(sec->name + 5, NULL, 10) >= m->nr_vcpus) {
				snap_reportf(report, opaque,
					     "section '%s' is beyond the machine's %u vCPUs",
					     sec->name, m->nr_vcpus);
				bad++;
			}
		}
	}
	free(m);
	return bad;
}

int snap_check(const struct snap *s, const struct snap_checker *extra, size_t nextra,
	       snap_report_fn report, void *opaque, size_t *sections_checked)
{
	char err[512];
	int bad = 0;
	size_t checked = 0;

	for (size_t i = 0; i < snap_section_count(s); i++) {
		const struct snap_section *sec = snap_section_at(s, i);
		const struct snap_checker *best = NULL;
		bool any = false;
		for (size_t k = 0; k < sizeof(builtin) / sizeof(builtin[0]); k++) {
			const char *p = builtin[k].prefix;
			bool family = p[strlen(p) - 1] == '.';
			if ((family ? name_matches(sec->name, p) : !strcmp(sec->name, p)) &&
			    (!best || strlen(p) > strlen(best->prefix)))
				best = &builtin[k];
		}
		if (best) {
			any = true;
			err[0] = 0;
			if (best->check(s, sec, err, sizeof(err))) {
				snap_reportf(report, opaque, "%s", err[0] ? err : sec->name);
				bad++;
				continue; /* the extras would only repeat the complaint */
			}
		}
		for (size_t k = 0; k < nextra; k++) {
			if (!extra[k].prefix || !name_matches(sec->name, extra[k].prefix))
				continue;
			any = true;
			err[0] = 0;
			if (extra[k].check(s, sec, err, sizeof(err))) {
				snap_reportf(report, opaque, "%s", err[0] ? err : sec->name);
				bad++;
			}
		}
		if (any)
			checked++;
	}
	bad += check_whole(s, report, opaque);
	if (sections_checked)
		*sections_checked = checked;
	return bad ? -EBADMSG : 0;
}
