/* The pool's request bodies to typed structs (strictly: unknown fields are refused, each
 * failure names its field), the snapshot's shape, and the latency histogram. */
#include "pool/pool.h"

#include "restore/snap_kvm.h"
#include "restore/snapshot.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

bool pool_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= POOL_ID_LEN || id[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

/* Only the keys in `allowed` (NULL-terminated). */
static int only_keys(json_object *o, const char *what, const char *const *allowed, char *err,
		     size_t errlen)
{
	json_object_object_foreach(o, key, val)
	{
		size_t i;

		(void)val;
		for (i = 0; allowed[i]; i++)
			if (!strcmp(key, allowed[i]))
				break;
		if (!allowed[i])
			return fail(err, errlen, "Unknown field \"%s%s%s\".", what,
				    what[0] ? "." : "", key);
	}
	return 0;
}

static int get_str(json_object *o, const char *key, const char *name, char *dst, size_t cap,
		   bool required, char *err, size_t errlen)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return fail(err, errlen, "Missing required field \"%s\".", name);
		dst[0] = '\0';
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(err, errlen, "Field \"%s\" must be a string.", name);
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return fail(err, errlen, "Field \"%s\" holds a NUL character.", name);
	if (strlen(s) >= cap)
		return fail(err, errlen, "Field \"%s\" is longer than %zu characters.", name,
			    cap - 1);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int get_path(json_object *o, const char *key, const char *name, char *dst, size_t cap,
		    bool required, char *err, size_t errlen)
{
	int ret = get_str(o, key, name, dst, cap, required, err, errlen);

	if (ret || !dst[0])
		return ret;
	if (dst[0] != '/')
		return fail(err, errlen, "Field \"%s\" must be an absolute path.", name);
	return 0;
}

static int get_uint(json_object *o, const char *key, const char *name, uint64_t max, uint64_t def,
		    uint64_t *out, char *err, size_t errlen)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
		*out = def;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(err, errlen, "Field \"%s\" must be an integer.", name);
	errno = 0;
	n = json_object_get_int64(v);
	if (n < 0 || errno || (uint64_t)n > max)
		return fail(err, errlen, "Field \"%s\" must be between 0 and %llu.", name,
			    (unsigned long long)max);
	*out = (uint64_t)n;
	return 0;
}

static int get_bool(json_object *o, const char *key, const char *name, bool *out, char *err,
		    size_t errlen)
{
	json_object *v;

	*out = false;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return fail(err, errlen, "Field \"%s\" must be true or false.", name);
	*out = json_object_get_boolean(v);
	return 0;
}

static int parse_backend(json_object *o, struct pool_cfg *cfg, char *err, size_t errlen)
{
	static const char *const keys[] = {"backend_type", "backend_path", NULL};
	char type[16];
	int ret;

	if (!json_object_is_type(o, json_type_object))
		return fail(err, errlen, "Field \"mem_backend\" must be an object.");
	ret = only_keys(o, "mem_backend", keys, err, errlen);
	if (!ret)
		ret = get_str(o, "backend_type", "mem_backend.backend_type", type, sizeof(type),
			      true, err, errlen);
	if (!ret)
		ret = get_path(o, "backend_path", "mem_backend.backend_path", cfg->backend_path,
			       sizeof(cfg->backend_path), true, err, errlen);
	if (ret)
		return ret;
	if (!strcmp(type, "File"))
		cfg->backend = API_MEM_BACKEND_FILE;
	else if (!strcmp(type, "Uffd"))
		cfg->backend = API_MEM_BACKEND_UFFD;
	else
		return fail(err, errlen,
			    "Field \"mem_backend.backend_type\" must be \"File\" or \"Uffd\".");
	return 0;
}

static int parse_jail(json_object *o, struct pool_jail *j, char *err, size_t errlen)
{
	static const char *const keys[] = {"uid",	"gid",	 "chroot_base", "jailer",
					   "exec_file", "netns", "cgroups",	NULL};
	json_object *v;
	uint64_t n;
	int ret;

	if (!json_object_is_type(o, json_type_object))
		return fail(err, errlen, "Field \"jail\" must be an object.");
	ret = only_keys(o, "jail", keys, err, errlen);
	if (ret)
		return ret;
	j->enabled = true;
	if (!json_object_object_get_ex(o, "uid", &v) || !json_object_object_get_ex(o, "gid", &v))
		return fail(err, errlen, "Missing required field \"jail.%s\".",
			    json_object_object_get_ex(o, "uid", &v) ? "gid" : "uid");
	if ((ret = get_uint(o, "uid", "jail.uid", UINT32_MAX - 1, 0, &n, err, errlen)))
		return ret;
	j->uid = (uint32_t)n;
	if ((ret = get_uint(o, "gid", "jail.gid", UINT32_MAX - 1, 0, &n, err, errlen)))
		return ret;
	j->gid = (uint32_t)n;
	if ((ret = get_path(o, "chroot_base", "jail.chroot_base", j->chroot_base,
			    sizeof(j->chroot_base), false, err, errlen)) ||
	    (ret = get_path(o, "jailer", "jail.jailer", j->jailer, sizeof(j->jailer), false, err,
			    errlen)) ||
	    (ret = get_path(o, "exec_file", "jail.exec_file", j->exec_file, sizeof(j->exec_file),
			    false, err, errlen)) ||
	    (ret = get_path(o, "netns", "jail.netns", j->netns, sizeof(j->netns), false, err,
			    errlen)))
		return ret;
	if (strchr(j->chroot_base, ':'))
		return fail(err, errlen, "Field \"jail.chroot_base\" may not contain ':'.");
	if (json_object_object_get_ex(o, "cgroups", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		size_t len;

		if (!json_object_is_type(v, json_type_array))
			return fail(err, errlen, "Field \"jail.cgroups\" must be an array.");
		len = json_object_array_length(v);
		if (len > sizeof(j->cgroups) / sizeof(j->cgroups[0]))
			return fail(err, errlen,
				    "Field \"jail.cgroups\" holds more than %zu items.",
				    sizeof(j->cgroups) / sizeof(j->cgroups[0]));
		for (size_t i = 0; i < len; i++) {
			json_object *e = json_object_array_get_idx(v, i);
			const char *s = json_object_get_string(e);

			if (!json_object_is_type(e, json_type_string) || !strchr(s, '=') ||
			    strlen(s) >= sizeof(j->cgroups[0]) || s[0] == '=' || s[0] == '-')
				return fail(
				    err, errlen,
				    "Field \"jail.cgroups[%zu]\" must be a string KEY=VALUE "
				    "of at most %zu characters.",
				    i, sizeof(j->cgroups[0]) - 1);
			memcpy(j->cgroups[i], s, strlen(s) + 1);
		}
		j->n_cgroups = (unsigned int)len;
	}
	return 0;
}

int pool_cfg_parse(const char *id, json_object *o, struct pool_cfg *cfg, char *err, size_t errlen)
{
	static const char *const keys[] = {
	    "id",	   "snapshot_path", "mem_backend", "prepared", "max_clones",
	    "max_mem_mib", "refill_per_s",  "vsock",	   "jail",     NULL};
	json_object *v;
	uint64_t n;
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	if (!pool_id_valid(id))
		return fail(err, errlen,
			    "Invalid pool id: 1 to %d letters, digits and '-', not starting with "
			    "'-'.",
			    POOL_ID_LEN - 1);
	memcpy(cfg->id, id, strlen(id) + 1);
	if (!json_object_is_type(o, json_type_object))
		return fail(err, errlen, "The request body must be a JSON object.");
	if ((ret = only_keys(o, "", keys, err, errlen)))
		return ret;
	if (json_object_object_get_ex(o, "id", &v) &&
	    (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), id)))
		return fail(err, errlen, "Field \"id\" differs from the pool id in the path.");
	if ((ret = get_path(o, "snapshot_path", "snapshot_path", cfg->snapshot,
			    sizeof(cfg->snapshot), true, err, errlen)))
		return ret;
	if (json_object_object_get_ex(o, "mem_backend", &v) &&
	    !json_object_is_type(v, json_type_null) && (ret = parse_backend(v, cfg, err, errlen)))
		return ret;
	if ((ret = get_uint(o, "prepared", "prepared", POOL_MAX_TARGET, 1, &n, err, errlen)))
		return ret;
	cfg->target = (uint32_t)n;
	if ((ret = get_uint(o, "max_clones", "max_clones", POOL_MAX_CLONES, POOL_MAX_CLONES, &n,
			    err, errlen)))
		return ret;
	cfg->max_clones = n ? (uint32_t)n : POOL_MAX_CLONES;
	if ((ret = get_uint(o, "max_mem_mib", "max_mem_mib", API_MAX_MEM_MIB * 1024ull, 0,
			    &cfg->max_mem_mib, err, errlen)))
		return ret;
	cfg->refill_per_s = 100;
	if (json_object_object_get_ex(o, "refill_per_s", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_int) &&
		    !json_object_is_type(v, json_type_double))
			return fail(err, errlen, "Field \"refill_per_s\" must be a number.");
		cfg->refill_per_s = json_object_get_double(v);
		if (!isfinite(cfg->refill_per_s) || cfg->refill_per_s < 0.1 ||
		    cfg->refill_per_s > 10000)
			return fail(err, errlen,
				    "Field \"refill_per_s\" must be between 0.1 and 10000.");
	}
	if ((ret = get_bool(o, "vsock", "vsock", &cfg->vsock, err, errlen)))
		return ret;
	if (json_object_object_get_ex(o, "jail", &v) && !json_object_is_type(v, json_type_null) &&
	    (ret = parse_jail(v, &cfg->jail, err, errlen)))
		return ret;
	if (strchr(cfg->snapshot, ':') || strchr(cfg->backend_path, ':'))
		if (cfg->jail.enabled)
			return fail(err, errlen,
				    "A jailed pool's snapshot and memory paths may not contain ':' "
				    "(thaw-jailer --link).");
	return 0;
}

static int parse_drive(json_object *e, size_t i, struct api_drive_override *d, char *err,
		       size_t errlen)
{
	static const char *const keys[] = {"drive_id", "path_on_host", "is_read_only", "overlay_of",
					   NULL};
	char name[64], what[40];
	json_object *v;
	int ret;

	snprintf(what, sizeof(what), "drive_overrides[%zu]", i);
	if (!json_object_is_type(e, json_type_object))
		return fail(err, errlen, "Field \"%s\" must be an object.", what);
	if ((ret = only_keys(e, what, keys, err, errlen)))
		return ret;
	snprintf(name, sizeof(name), "%s.drive_id", what);
	if ((ret =
		 get_str(e, "drive_id", name, d->drive_id, sizeof(d->drive_id), true, err, errlen)))
		return ret;
	if (!d->drive_id[0])
		return fail(err, errlen, "Field \"%s\" is empty.", name);
	snprintf(name, sizeof(name), "%s.path_on_host", what);
	if ((ret = get_path(e, "path_on_host", name, d->path_on_host, sizeof(d->path_on_host), true,
			    err, errlen)))
		return ret;
	if (json_object_object_get_ex(e, "is_read_only", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		snprintf(name, sizeof(name), "%s.is_read_only", what);
		if ((ret = get_bool(e, "is_read_only", name, &d->is_read_only, err, errlen)))
			return ret;
		d->has_read_only = true;
	}
	/* the clone's own new qcow2 overlay over this base, made by thaw at the load */
	snprintf(name, sizeof(name), "%s.overlay_of", what);
	return get_path(e, "overlay_of", name, d->overlay_of, sizeof(d->overlay_of), false, err,
			errlen);
}

int pool_clone_req_parse(json_object *o, struct pool_clone_req *req, char *err, size_t errlen)
{
	static const char *const keys[] = {"count",	"paused",	   "clock_realtime",
					   "vsock_dir", "drive_overrides", NULL};
	json_object *v;
	uint64_t n;
	int ret;

	memset(req, 0, sizeof(*req));
	if (!json_object_is_type(o, json_type_object))
		return fail(err, errlen, "The request body must be a JSON object.");
	if ((ret = only_keys(o, "", keys, err, errlen)))
		return ret;
	if ((ret = get_uint(o, "count", "count", UINT32_MAX, 1, &n, err, errlen)))
		return ret;
	if (n == 0 || n > POOL_MAX_BATCH)
		return fail(err, errlen, "Field \"count\" must be between 1 and %d.",
			    POOL_MAX_BATCH);
	req->count = (uint32_t)n;
	if ((ret = get_bool(o, "paused", "paused", &req->opts.paused, err, errlen)) ||
	    (ret = get_bool(o, "clock_realtime", "clock_realtime", &req->opts.clock_realtime, err,
			    errlen)) ||
	    (ret =
		 get_path(o, "vsock_dir", "vsock_dir", req->opts.vsock_dir,
			  sizeof(req->opts.vsock_dir) - POOL_PROC_ID_LEN - 8, false, err, errlen)))
		return ret;
	if (json_object_object_get_ex(o, "drive_overrides", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		size_t len;

		if (!json_object_is_type(v, json_type_array))
			return fail(err, errlen, "Field \"drive_overrides\" must be an array.");
		len = json_object_array_length(v);
		if (len > API_MAX_DRIVE_OVERRIDES)
			return fail(err, errlen,
				    "Field \"drive_overrides\" holds more than %d items.",
				    API_MAX_DRIVE_OVERRIDES);
		for (size_t i = 0; i < len; i++) {
			if ((ret = parse_drive(json_object_array_get_idx(v, i), i,
					       &req->opts.drives[i], err, errlen)))
				return ret;
			for (size_t k = 0; k < i; k++)
				if (!strcmp(req->opts.drives[k].drive_id,
					    req->opts.drives[i].drive_id))
					return fail(
					    err, errlen,
					    "Field \"drive_overrides[%zu].drive_id\" repeats "
					    "\"%s\".",
					    i, req->opts.drives[i].drive_id);
		}
		req->opts.n_drives = (uint32_t)len;
	}
	return 0;
}

json_object *pool_cfg_to_json(const struct pool_cfg *c)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "id", json_object_new_string(c->id));
	json_object_object_add(o, "snapshot_path", json_object_new_string(c->snapshot));
	if (c->backend != API_MEM_BACKEND_NONE) {
		json_object *b = json_object_new_object();

		json_object_object_add(
		    b, "backend_type",
		    json_object_new_string(c->backend == API_MEM_BACKEND_FILE ? "File" : "Uffd"));
		json_object_object_add(b, "backend_path", json_object_new_string(c->backend_path));
		json_object_object_add(o, "mem_backend", b);
	}
	json_object_object_add(o, "prepared", json_object_new_int64(c->target));
	json_object_object_add(o, "max_clones", json_object_new_int64(c->max_clones));
	json_object_object_add(o, "max_mem_mib", json_object_new_int64((int64_t)c->max_mem_mib));
	json_object_object_add(o, "refill_per_s", json_object_new_double(c->refill_per_s));
	json_object_object_add(o, "vsock", json_object_new_boolean(c->vsock));
	if (c->jail.enabled) {
		const struct pool_jail *j = &c->jail;
		json_object *jo = json_object_new_object(), *cg = json_object_new_array();

		json_object_object_add(jo, "uid", json_object_new_int64(j->uid));
		json_object_object_add(jo, "gid", json_object_new_int64(j->gid));
		if (j->chroot_base[0])
			json_object_object_add(jo, "chroot_base",
					       json_object_new_string(j->chroot_base));
		if (j->jailer[0])
			json_object_object_add(jo, "jailer", json_object_new_string(j->jailer));
		if (j->exec_file[0])
			json_object_object_add(jo, "exec_file",
					       json_object_new_string(j->exec_file));
		if (j->netns[0])
			json_object_object_add(jo, "netns", json_object_new_string(j->netns));
		for (unsigned int i = 0; i < j->n_cgroups; i++)
			json_object_array_add(cg, json_object_new_string(j->cgroups[i]));
		json_object_object_add(jo, "cgroups", cg);
		json_object_object_add(o, "jail", jo);
	}
	return o;
}

/* snap_check's first complaint. */
static void first_problem(void *opaque, const char *msg)
{
	char *buf = opaque;

	if (!buf[0])
		snprintf(buf, 256, "%s", msg);
}

int pool_cfg_probe_snapshot(struct pool_cfg *cfg, char *err, size_t errlen)
{
	struct snap_machine *m;
	struct snap *s = NULL;
	char why[256] = "";
	int ret;

	/* struct snap_machine holds the command line: not a stack object. */
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	ret = snap_open(cfg->snapshot, &s, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "The snapshot %s does not open: %s", cfg->snapshot,
			 why[0] ? why : strerror(-ret));
		goto out;
	}
	ret = snap_get_machine(s, m, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "The snapshot %s has no usable machine section: %s",
			 cfg->snapshot, why[0] ? why : strerror(-ret));
		goto out;
	}
	if (m->mem_size == 0 || m->mem_size % (1ull << 20) ||
	    (m->mem_size >> 20) > API_MAX_MEM_MIB) {
		snprintf(err, errlen,
			 "The snapshot %s's shape cannot be prepared: guest memory of %llu bytes "
			 "is not a whole number of MiB up to %u MiB",
			 cfg->snapshot, (unsigned long long)m->mem_size, API_MAX_MEM_MIB);
		ret = -EINVAL;
		goto out;
	}
	if (m->nr_vcpus == 0 || m->nr_vcpus > API_MAX_VCPUS) {
		snprintf(err, errlen,
			 "The snapshot %s's shape cannot be prepared: %u vCPUs (1 to %d can)",
			 cfg->snapshot, m->nr_vcpus, API_MAX_VCPUS);
		ret = -EINVAL;
		goto out;
	}
	/* What a restore would refuse, refused now (state sections only; memory is not
	 * read): a pool of processes that all fail their load helps nobody. */
	why[0] = '\0';
	if (snap_check(s, NULL, 0, first_problem, why, NULL)) {
		snprintf(err, errlen, "The snapshot %s fails its checks: %s", cfg->snapshot,
			 why[0] ? why : "see thaw-snap verify");
		ret = -EINVAL;
		goto out;
	}
	cfg->mem_mib = (uint32_t)(m->mem_size >> 20);
	cfg->vcpus = m->nr_vcpus;
	ret = 0;
out:
	if (s)
		snap_close(s);
	free(m);
	return ret;
}

/* ---- latency histogram ---------------------------------------------------------------------- */

const uint64_t pool_hist_bounds_us[POOL_HIST_BUCKETS] = {
    100,  250,	500,   750,   1000,  1500,   2000,   3000,
    5000, 7500, 10000, 20000, 50000, 100000, 500000, 1000000};

void pool_hist_add(struct pool_hist *h, uint64_t us)
{
	unsigned int i;

	for (i = 0; i < POOL_HIST_BUCKETS && us > pool_hist_bounds_us[i]; i++)
		;
	h->buckets[i]++;
	h->count++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

uint64_t pool_hist_quantile(const struct pool_hist *h, double q)
{
	uint64_t need, seen = 0;

	if (!h->count)
		return 0;
	need = (uint64_t)ceil(q * (double)h->count);
	if (need == 0)
		need = 1;
	for (unsigned int i = 0; i <= POOL_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= need)
			return i < POOL_HIST_BUCKETS && pool_hist_bounds_us[i] < h->max_us
				   ? pool_hist_bounds_us[i]
				   : h->max_us;
	}
	return h->max_us;
}

json_object *pool_hist_to_json(const struct pool_hist *h)
{
	json_object *o = json_object_new_object(), *b = json_object_new_array();

	for (unsigned int i = 0; i <= POOL_HIST_BUCKETS; i++) {
		json_object *e = json_object_new_object();

		if (i < POOL_HIST_BUCKETS)
			json_object_object_add(
			    e, "le_us", json_object_new_int64((int64_t)pool_hist_bounds_us[i]));
		else
			json_object_object_add(e, "le_us", json_object_new_string("inf"));
		json_object_object_add(e, "count", json_object_new_int64((int64_t)h->buckets[i]));
		json_object_array_add(b, e);
	}
	json_object_object_add(o, "count", json_object_new_int64((int64_t)h->count));
	json_object_object_add(
	    o, "mean_us", json_object_new_int64(h->count ? (int64_t)(h->sum_us / h->count) : 0));
	json_object_object_add(o, "p50_us",
			       json_object_new_int64((int64_t)pool_hist_quantile(h, 0.5)));
	json_object_object_add(o, "p99_us",
			       json_object_new_int64((int64_t)pool_hist_quantile(h, 0.99)));
	json_object_object_add(o, "max_us", json_object_new_int64((int64_t)h->max_us));
	json_object_object_add(o, "buckets", b);
	return o;
}
