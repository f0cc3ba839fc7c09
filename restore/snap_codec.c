/* Generic section codecs of the container: the field type names, the `config` and
 * `workingset` sections, a device section's common header (kind, placement) and the
 * field names tools print. The KVM x86 state schema's codecs are in snap_kvm.c. */
#include <errno.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "restore/snap_internal.h"

static const struct snap_tagname config_names[] = {{1, "json"}};
static const struct snap_tagname sums_names[] = {{1, "chunk_size"}, {2, "mem_size"}, {3, "sums"}};
static const struct snap_tagname zero_names[] = {{1, "page_size"}, {2, "npages"}, {3, "bitmap"}};
static const struct snap_tagname memfile_names[] = {{1, "path"}, {2, "size"}};
static const struct snap_tagname ws_names[] = {{1, "page_size"}, {2, "pages"}};
static const struct snap_tagname base_names[] = {{1, "base_id"}, {2, "base_path"}, {3, "pages"}};
/* The placement, then thaw's virtio device fields (docs/snapshot-format.md 6.7). */
static const struct snap_tagname device_names[] = {{SNAP_DEV_KIND, "kind"},
						   {SNAP_DEV_MMIO_BASE, "mmio_base"},
						   {SNAP_DEV_MMIO_SIZE, "mmio_size"},
						   {SNAP_DEV_IRQ, "irq"},
						   {5, "index"},
						   {6, "device_id"},
						   {7, "name"},
						   {0x100, "status"},
						   {0x101, "dev_features_sel"},
						   {0x102, "drv_features_sel"},
						   {0x103, "queue_sel"},
						   {0x104, "interrupt_status"},
						   {0x105, "config_generation"},
						   {0x200, "device_features"},
						   {0x201, "driver_features"},
						   {0x202, "nr_queues"},
						   {0x210, "queue0"},
						   {0x211, "queue1"},
						   {0x212, "queue2"},
						   {0x1000, "path"},
						   {0x1001, "read_only"},
						   {0x1002, "capacity"},
						   {0x1003, "tap"},
						   {0x1004, "mac"},
						   {0x1005, "offload"},
						   {0x1006, "guest_cid"},
						   {0x1007, "format"},
						   {0x1008, "identity"},
						   {0x1009, "internal_snapshot"},
						   {0x1010, "rl_bandwidth_size"},
						   {0x1011, "rl_bandwidth_burst"},
						   {0x1012, "rl_bandwidth_refill_ms"},
						   {0x1013, "rl_ops_size"},
						   {0x1014, "rl_ops_burst"},
						   {0x1015, "rl_ops_refill_ms"},
						   {0x1016, "tx_rl_bandwidth_size"},
						   {0x1017, "tx_rl_bandwidth_burst"},
						   {0x1018, "tx_rl_bandwidth_refill_ms"},
						   {0x1019, "tx_rl_ops_size"},
						   {0x101a, "tx_rl_ops_burst"},
						   {0x101b, "tx_rl_ops_refill_ms"},
						   {0x1020, "mmds_ipv4"},
						   {0x1021, "mmds_version"},
						   {0x1022, "mmds_imds_compat"}};
static const struct snap_tagname uart_names[] = {{SNAP_DEV_KIND, "kind"},
						 {SNAP_DEV_MMIO_BASE, "mmio_base"},
						 {SNAP_DEV_MMIO_SIZE, "mmio_size"},
						 {SNAP_DEV_IRQ, "irq"},
						 {0x1000, "regs"},
						 {0x1001, "rx"},
						 {0x1002, "thr_ipending"}};
static const struct snap_tagname vmgenid_names[] = {{1, "addr"}, {2, "ged_irq"}, {3, "id"}};
static const struct snap_tagname i8042_names[] = {{1, "regs"}, {2, "buf"}};

#define N(a) (sizeof(a) / sizeof((a)[0]))

const char *snap_type_name(uint16_t type)
{
	switch (type) {
	case SNAP_T_U64:
		return "u64";
	case SNAP_T_BYTES:
		return "bytes";
	case SNAP_T_STR:
		return "string";
	case SNAP_T_U64A:
		return "u64[]";
	default:
		return "unknown";
	}
}

/* ---------------------------------------------------------------- generic sections */

int snap_put_config(struct snap_writer *w, const char *json, size_t len)
{
	struct snap_sec *s;
	/* Tools parse this section: refuse to store something that is not JSON. */
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	if (len > INT32_MAX) {
		json_tokener_free(tok);
		return -E2BIG;
	}
	struct json_object *obj = json_tokener_parse_ex(tok, json, (int)len);
	bool ok = obj && json_tokener_get_error(tok) == json_tokener_success;
	json_object_put(obj);
	json_tokener_free(tok);
	if (!ok)
		return -EINVAL;
	int r = snap_writer_section(w, "config", 1, 0, 0, &s);
	return r ? r : snap_put_strn(s, 1, json, len);
}

int snap_put_workingset(struct snap_writer *w, const uint64_t *pages, size_t n)
{
	struct snap_sec *s;
	int r = snap_writer_section(w, "workingset", 1, 0, 0, &s);
	if (r)
		return r;
	snap_put_u64(s, 1, SNAP_PAGE_SIZE);
	return snap_put_u64a(s, 2, pages, n);
}

int snap_device_begin(struct snap_writer *w, const char *id, const char *kind, uint16_t ver_major,
		      uint16_t ver_minor, const struct snap_device_place *place,
		      struct snap_sec **sec)
{
	char name[SNAP_NAME_MAX];
	if (strlen(id) > 24 || strchr(id, '.'))
		return -EINVAL;
	snprintf(name, sizeof(name), "device.%s", id);
	int r = snap_writer_section(w, name, ver_major, ver_minor, SNAP_SEC_REQUIRED, sec);
	if (r)
		return r;
	snap_put_str(*sec, SNAP_DEV_KIND, kind);
	snap_put_u64(*sec, SNAP_DEV_MMIO_BASE, place->mmio_base);
	snap_put_u64(*sec, SNAP_DEV_MMIO_SIZE, place->mmio_size);
	return snap_put_u64(*sec, SNAP_DEV_IRQ, place->irq);
}

int snap_device_get_place(const struct snap_section *sec, char *kind, size_t kind_size,
			  struct snap_device_place *place)
{
	uint64_t irq;
	int r = snap_get_strbuf(sec, SNAP_DEV_KIND, kind, kind_size);
	if (!r)
		r = snap_get_u64(sec, SNAP_DEV_MMIO_BASE, &place->mmio_base);
	if (!r)
		r = snap_get_u64(sec, SNAP_DEV_MMIO_SIZE, &place->mmio_size);
	if (!r)
		r = snap_get_u64_max(sec, SNAP_DEV_IRQ, UINT32_MAX, &irq, NULL, 0);
	if (r)
		return r;
	if (place->mmio_base + place->mmio_size < place->mmio_base)
		return -ERANGE;
	place->irq = (uint32_t)irq;
	return 0;
}

int snap_get_config(const struct snap *s, const char **json, size_t *len)
{
	const struct snap_section *sec = snap_section_find(s, "config");
	if (!sec)
		return -ENOENT;
	if (snap_section_check_version(sec, 1, NULL, 0))
		return -EPROTONOSUPPORT;
	return snap_get_str(sec, 1, json, len);
}

/* ---------------------------------------------------------------- names for tools */

const char *snap_field_name(const char *section, uint16_t tag)
{
	/* The schema's sections first: it owns their names (snap_kvm.c). */
	const char *nm = snap_kvm_field_name(section, tag);
	if (nm)
		return nm;
	if (!strcmp(section, "device.com1"))
		return snap_tagname_find(uart_names, N(uart_names), tag);
	if (!strncmp(section, "device.", 7))
		return snap_tagname_find(device_names, N(device_names), tag);
	static const struct {
		const char *sec;
		const struct snap_tagname *t;
		size_t nt;
	} map[] = {
	    {"config", config_names, N(config_names)},
	    {"memory.sums", sums_names, N(sums_names)},
	    {"memory.zero", zero_names, N(zero_names)},
	    {"memory.file", memfile_names, N(memfile_names)},
	    {"workingset", ws_names, N(ws_names)},
	    {"base", base_names, N(base_names)},
	    {"vmgenid", vmgenid_names, N(vmgenid_names)},
	    {"i8042", i8042_names, N(i8042_names)},
	};
	for (size_t i = 0; i < N(map); i++)
		if (!strcmp(section, map[i].sec))
			return snap_tagname_find(map[i].t, map[i].nt, tag);
	return NULL;
}
