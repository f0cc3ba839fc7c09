/* The router: a complete request (method, URL, body) becomes a validated C struct, is checked
 * against the life cycle, and is executed through the VMM's ops. Every reply is written into
 * srv->reply; nothing here touches a socket, so the fuzz target drives it directly. */
#include "api/api_int.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define API_APP_NAME "thaw"

void api_error_set(struct api_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* ---- replies --------------------------------------------------------------------------- */

/* JSON-escapes `s` into dst (cap bytes, NUL kept), truncating on a character boundary. */
static size_t json_escape(char *dst, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char tmp[6];
		size_t k = 0;

		if (ch == '"' || ch == '\\') {
			tmp[k++] = '\\';
			tmp[k++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			tmp[k++] = '\\';
			tmp[k++] = 'u';
			tmp[k++] = '0';
			tmp[k++] = '0';
			tmp[k++] = hex[ch >> 4];
			tmp[k++] = hex[ch & 15];
		} else {
			tmp[k++] = (char)ch;
		}
		if (n + k + 1 > cap)
			break;
		memcpy(dst + n, tmp, k);
		n += k;
	}
	dst[n] = '\0';
	return n;
}

static void reply_status(struct api_server *srv, int status)
{
	srv->reply.status = status;
	srv->reply.len = 0;
}

static void reply_fault(struct api_server *srv, int status, const char *msg)
{
	struct api_reply *r = &srv->reply;
	static const char head[] = "{\"fault_message\": \"";
	size_t n = sizeof(head) - 1;

	memcpy(r->body, head, n);
	/* Leaves room for the closing quote and brace. */
	n += json_escape(r->body + n, sizeof(r->body) - n - 2, msg);
	r->body[n++] = '"';
	r->body[n++] = '}';
	r->len = n;
	r->status = status;
}

void api_reply_fault(struct api_server *srv, int status, const char *msg)
{
	reply_fault(srv, status, msg);
}

static void __attribute__((format(printf, 3, 4)))
reply_faultf(struct api_server *srv, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_fault(srv, status, msg);
}

/* ---- JSON field helpers: every failure names the field and fills err ---------------------- */

/* A field's name as the client sees it: "mem_backend.backend_type", "network_overrides[1]". */
static const char *fname(char *buf, size_t len, const char *prefix, const char *key)
{
	if (prefix && prefix[0])
		snprintf(buf, len, "%s.%s", prefix, key);
	else
		snprintf(buf, len, "%s", key);
	return buf;
}

static const char *jtype_name(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_double:
		return "number with a fraction";
	case json_type_int:
		return "integer";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_string:
		return "string";
	}
	return "unknown";
}

/* Refuses members not in `known` (NULL-terminated). `what` names the object. */
static int j_known(json_object *obj, const char *what, const char *const *known,
		   struct api_error *err)
{
	json_object_object_foreach(obj, key, val)
	{
		const char *const *k;
		char list[512];
		size_t n = 0;

		(void)val;
		for (k = known; *k; k++)
			if (!strcmp(*k, key))
				break;
		if (*k)
			continue;
		list[0] = '\0';
		for (k = known; *k && n < sizeof(list); k++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
					      k == known ? "" : ", ", *k);
		if (known[0])
			api_error_set(err, "Unknown field \"%.64s\" in %s; known fields: %s.", key,
				      what, list);
		else
			api_error_set(err, "Unknown field \"%.64s\" in %s; it takes no fields.",
				      key, what);
		return -EINVAL;
	}
	return 0;
}

/* Looks a member up; JSON null counts as absent (as Firecracker's optional fields do). */
static json_object *j_get(json_object *obj, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

static int j_missing(struct api_error *err, const char *prefix, const char *key)
{
	char n[160];

	api_error_set(err, "Missing required field \"%s\".", fname(n, sizeof(n), prefix, key));
	return -EINVAL;
}

static int j_wrong_type(struct api_error *err, const char *prefix, const char *key,
			const char *want, json_object *v)
{
	char n[160];

	api_error_set(err, "Field \"%s\" must be %s, got %s.", fname(n, sizeof(n), prefix, key),
		      want, jtype_name(v));
	return -EINVAL;
}

/* String into buf[cap]. Returns 1 when present, 0 when absent (buf emptied), -EINVAL. */
static int j_str(json_object *obj, const char *prefix, const char *key, char *buf, size_t cap,
		 bool required, struct api_error *err)
{
	json_object *v = j_get(obj, key);
	const char *s;
	size_t len;
	char n[160];

	buf[0] = '\0';
	if (!v)
		return required ? j_missing(err, prefix, key) : 0;
	if (!json_object_is_type(v, json_type_string))
		return j_wrong_type(err, prefix, key, "a string", v);
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len) {
		api_error_set(err, "Field \"%s\" must not contain NUL characters.",
			      fname(n, sizeof(n), prefix, key));
		return -EINVAL;
	}
	if (len >= cap) {
		api_error_set(err, "Field \"%s\" is too long: %zu bytes, at most %zu.",
			      fname(n, sizeof(n), prefix, key), len, cap - 1);
		return -EINVAL;
	}
	if (required && len == 0) {
		api_error_set(err, "Field \"%s\" must not be empty.",
			      fname(n, sizeof(n), prefix, key));
		return -EINVAL;
	}
	memcpy(buf, s, len + 1);
	return 1;
}

static int j_bool(json_object *obj, const char *prefix, const char *key, bool *out, bool required,
		  struct api_error *err)
{
	json_object *v = j_get(obj, key);

	*out = false;
	if (!v)
		return required ? j_missing(err, prefix, key) : 0;
	if (!json_object_is_type(v, json_type_boolean))
		return j_wrong_type(err, prefix, key, "a boolean", v);
	*out = json_object_get_boolean(v);
	return 1;
}

static int j_uint(json_object *obj, const char *prefix, const char *key, uint64_t min, uint64_t max,
		  uint64_t *out, bool required, struct api_error *err)
{
	json_object *v = j_get(obj, key);
	char n[160];
	int64_t sv;
	uint64_t uv;

	*out = 0;
	if (!v)
		return required ? j_missing(err, prefix, key) : 0;
	if (!json_object_is_type(v, json_type_int))
		return j_wrong_type(err, prefix, key, "an integer", v);
	/* json-c keeps integers above INT64_MAX as uint64; get_int64 then saturates. */
	sv = json_object_get_int64(v);
	uv = sv < 0 ? 0 : json_object_get_uint64(v);
	if (sv < 0 || uv < min || uv > max) {
		fname(n, sizeof(n), prefix, key);
		if (sv < 0)
			api_error_set(err,
				      "Field \"%s\" must be between %" PRIu64 " and %" PRIu64
				      ", got %" PRId64 ".",
				      n, min, max, sv);
		else
			api_error_set(err,
				      "Field \"%s\" must be between %" PRIu64 " and %" PRIu64
				      ", got %" PRIu64 ".",
				      n, min, max, uv);
		return -EINVAL;
	}
	*out = uv;
	return 1;
}

/* A string out of `names` (NULL-terminated, index = enum value). */
static int j_enum(json_object *obj, const char *prefix, const char *key, const char *const *names,
		  bool icase, int *out, bool required, struct api_error *err)
{
	char s[64], n[160], list[256];
	size_t len = 0;
	int r, i;

	r = j_str(obj, prefix, key, s, sizeof(s), required, err);
	if (r == -EINVAL && strstr(err->message, "too long"))
		s[0] = '\0'; /* reported below as not one of the names */
	else if (r <= 0)
		return r;
	for (i = 0; names[i]; i++)
		if (icase ? !strcasecmp(names[i], s) : !strcmp(names[i], s)) {
			*out = i;
			return 1;
		}
	list[0] = '\0';
	for (i = 0; names[i] && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
					names[i]);
	{
		char esc[128];

		json_escape(esc, sizeof(esc), s);
		api_error_set(err, "Field \"%s\" must be one of %s; got \"%s\".",
			      fname(n, sizeof(n), prefix, key), list, r < 0 ? "(too long)" : esc);
	}
	return -EINVAL;
}

/* Firecracker's id rule: 1..64 characters of [A-Za-z0-9_]. */
static int check_id(const char *id, const char *what, struct api_error *err)
{
	size_t i, len = strlen(id);

	if (len == 0 || len >= API_ID_LEN) {
		api_error_set(err, "Invalid %s: must be 1 to %d characters long.", what,
			      API_ID_LEN - 1);
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_')) {
			api_error_set(err, "Invalid %s: only letters, digits and '_' are allowed.",
				      what);
			return -EINVAL;
		}
	}
	return 0;
}

static int j_id(json_object *obj, const char *prefix, const char *key, char *buf, bool required,
		struct api_error *err)
{
	char n[160];
	int r;

	r = j_str(obj, prefix, key, buf, API_ID_LEN, required, err);
	if (r == 1 && check_id(buf, fname(n, sizeof(n), prefix, key), err))
		return -EINVAL;
	return r;
}

static int j_object(json_object *obj, const char *prefix, const char *key, json_object **out,
		    bool required, struct api_error *err)
{
	json_object *v = j_get(obj, key);

	*out = NULL;
	if (!v)
		return required ? j_missing(err, prefix, key) : 0;
	if (!json_object_is_type(v, json_type_object))
		return j_wrong_type(err, prefix, key, "an object", v);
	*out = v;
	return 1;
}

static int parse_bucket(json_object *obj, const char *prefix, const char *key,
			struct api_token_bucket *b, struct api_error *err)
{
	static const char *const known[] = {"size", "one_time_burst", "refill_time", NULL};
	json_object *o;
	char p[160];
	int r;

	memset(b, 0, sizeof(*b));
	r = j_object(obj, prefix, key, &o, false, err);
	if (r <= 0)
		return r;
	fname(p, sizeof(p), prefix, key);
	if (j_known(o, p, known, err) < 0 ||
	    j_uint(o, p, "size", 0, INT64_MAX, &b->size, true, err) < 0 ||
	    j_uint(o, p, "one_time_burst", 0, INT64_MAX, &b->one_time_burst, false, err) < 0 ||
	    j_uint(o, p, "refill_time", 0, INT64_MAX, &b->refill_time, true, err) < 0)
		return -EINVAL;
	b->present = true;
	return 1;
}

static int parse_rate_limiter(json_object *obj, const char *prefix, const char *key,
			      struct api_rate_limiter *rl, struct api_error *err)
{
	static const char *const known[] = {"bandwidth", "ops", NULL};
	json_object *o;
	char p[160];
	int r;

	memset(rl, 0, sizeof(*rl));
	r = j_object(obj, prefix, key, &o, false, err);
	if (r <= 0)
		return r;
	fname(p, sizeof(p), prefix, key);
	if (j_known(o, p, known, err) < 0 ||
	    parse_bucket(o, p, "bandwidth", &rl->bandwidth, err) < 0 ||
	    parse_bucket(o, p, "ops", &rl->ops, err) < 0)
		return -EINVAL;
	rl->present = true;
	return 1;
}

/* ---- resource parsers: JSON object to request struct ------------------------------------- */

static int parse_boot_source(json_object *o, struct api_boot_source *b, struct api_error *err)
{
	static const char *const known[] = {"kernel_image_path", "boot_args", "initrd_path", NULL};

	if (j_known(o, "boot-source", known, err) < 0 ||
	    j_str(o, "", "kernel_image_path", b->kernel_image_path, sizeof(b->kernel_image_path),
		  true, err) < 0 ||
	    j_str(o, "", "boot_args", b->boot_args, sizeof(b->boot_args), false, err) < 0 ||
	    j_str(o, "", "initrd_path", b->initrd_path, sizeof(b->initrd_path), false, err) < 0)
		return -EINVAL;
	return 0;
}

static const char *const cpu_template_names[] = {"None", "C3",	"T2",	"T2S",
						 "T2CL", "T2A", "V1N1", NULL};
static const char *const huge_pages_names[] = {"None", "Transparent", "2M", NULL};

/* PUT (patch false): vcpu_count and mem_size_mib required, the rest reset to defaults.
 * PATCH: only the members present change `c`, which holds the current configuration. */
static int parse_machine_config(json_object *o, bool patch, struct api_machine_config *c,
				struct api_error *err)
{
	static const char *const known[] = {
	    "vcpu_count",   "mem_size_mib", "smt", "track_dirty_pages",
	    "cpu_template", "huge_pages",   NULL};
	uint64_t v;
	bool b;
	int e, r;

	if (j_known(o, "machine-config", known, err) < 0)
		return -EINVAL;
	if (!patch)
		memset(c, 0, sizeof(*c));
	r = j_uint(o, "", "vcpu_count", 1, API_MAX_VCPUS, &v, !patch, err);
	if (r < 0)
		return r;
	if (r)
		c->vcpu_count = (uint32_t)v;
	r = j_uint(o, "", "mem_size_mib", 1, API_MAX_MEM_MIB, &v, !patch, err);
	if (r < 0)
		return r;
	if (r)
		c->mem_size_mib = (uint32_t)v;
	r = j_bool(o, "", "smt", &b, false, err);
	if (r < 0)
		return r;
	if (r)
		c->smt = b;
	r = j_bool(o, "", "track_dirty_pages", &b, false, err);
	if (r < 0)
		return r;
	if (r)
		c->track_dirty_pages = b;
	r = j_enum(o, "", "cpu_template", cpu_template_names, false, &e, false, err);
	if (r < 0)
		return r;
	if (r)
		c->cpu_template = (enum api_cpu_template)e;
	r = j_enum(o, "", "huge_pages", huge_pages_names, false, &e, false, err);
	if (r < 0)
		return r;
	if (r)
		c->huge_pages = (enum api_huge_pages)e;

	if (c->smt && c->vcpu_count > 1 && c->vcpu_count % 2) {
		api_error_set(err,
			      "With \"smt\" enabled, \"vcpu_count\" must be 1 or even, got %u.",
			      c->vcpu_count);
		return -EINVAL;
	}
	if (c->huge_pages == API_HUGE_PAGES_2M && c->mem_size_mib % 2) {
		api_error_set(
		    err, "With 2M huge pages, \"mem_size_mib\" must be a multiple of 2, got %u.",
		    c->mem_size_mib);
		return -EINVAL;
	}
	return 0;
}

/* The id in a body must be the one in the path. */
static int same_id(const char *path_id, const char *body_id, struct api_error *err)
{
	if (strcmp(body_id, path_id) == 0)
		return 0;
	api_error_set(err,
		      "The id from the path (\"%s\") does not match the id in the body (\"%s\").",
		      path_id, body_id);
	return -EINVAL;
}

static const char *const cache_type_names[] = {"Unsafe", "Writeback", NULL};
static const char *const io_engine_names[] = {"Sync", "Async", NULL};

static int parse_drive(json_object *o, const char *path_id, struct api_drive *d,
		       struct api_error *err)
{
	static const char *const known[] = {
	    "drive_id",	    "partuuid",	    "is_root_device", "cache_type", "is_read_only",
	    "path_on_host", "rate_limiter", "io_engine",      "socket",	    NULL};
	int e = 0, r_path, r_sock, r_ro; /* e: an absent enum field is the first value */

	memset(d, 0, sizeof(*d));
	if (j_known(o, "drive", known, err) < 0 ||
	    j_id(o, "", "drive_id", d->drive_id, true, err) < 0 ||
	    same_id(path_id, d->drive_id, err) < 0)
		return -EINVAL;
	if (j_bool(o, "", "is_root_device", &d->is_root_device, true, err) < 0 ||
	    j_str(o, "", "partuuid", d->partuuid, sizeof(d->partuuid), false, err) < 0)
		return -EINVAL;
	r_path = j_str(o, "", "path_on_host", d->path_on_host, sizeof(d->path_on_host), false, err);
	if (r_path < 0)
		return r_path;
	r_sock = j_str(o, "", "socket", d->socket, sizeof(d->socket), false, err);
	if (r_sock < 0)
		return r_sock;
	r_ro = j_bool(o, "", "is_read_only", &d->is_read_only, false, err);
	if (r_ro < 0)
		return r_ro;
	if (r_path && r_sock) {
		api_error_set(err, "Fields \"path_on_host\" and \"socket\" exclude each other: "
				   "a drive is either virtio-block or vhost-user-block.");
		return -EINVAL;
	}
	if (!r_path && !r_sock)
		return j_missing(err, "", "path_on_host");
	if (r_sock && r_ro) {
		api_error_set(err, "Field \"is_read_only\" applies to virtio-block drives only, "
				   "not with \"socket\".");
		return -EINVAL;
	}
	if (j_enum(o, "", "cache_type", cache_type_names, false, &e, false, err) < 0)
		return -EINVAL;
	d->cache_type = (enum api_cache_type)e;
	e = 0;
	if (j_enum(o, "", "io_engine", io_engine_names, false, &e, false, err) < 0)
		return -EINVAL;
	d->io_engine = (enum api_io_engine)e;
	if (parse_rate_limiter(o, "", "rate_limiter", &d->rate_limiter, err) < 0)
		return -EINVAL;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	int i;

	if (strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		unsigned int v = 0;
		int k;

		for (k = 0; k < 2; k++) {
			char ch = s[i * 3 + k];

			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned int)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned int)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned int)(ch - 'A' + 10);
			else
				return -EINVAL;
		}
		if (i < 5 && s[i * 3 + 2] != ':')
			return -EINVAL;
		mac[i] = (uint8_t)v;
	}
	return 0;
}

static int j_ifname(json_object *o, const char *prefix, const char *key, char *buf,
		    struct api_error *err)
{
	char n[160];
	size_t i;

	if (j_str(o, prefix, key, buf, API_IFNAME_LEN, true, err) < 0)
		return -EINVAL;
	for (i = 0; buf[i]; i++)
		if (buf[i] == '/' || buf[i] == ' ' || (unsigned char)buf[i] < 0x21) {
			api_error_set(err, "Field \"%s\" is not a valid interface name.",
				      fname(n, sizeof(n), prefix, key));
			return -EINVAL;
		}
	return 0;
}

static int parse_net(json_object *o, const char *path_id, struct api_net *net,
		     struct api_error *err)
{
	static const char *const known[] = {"iface_id", "host_dev_name",   "guest_mac",
					    "mtu",	"rx_rate_limiter", "tx_rate_limiter",
					    NULL};
	char mac[API_MAC_LEN];
	uint64_t mtu;
	int r;

	memset(net, 0, sizeof(*net));
	if (j_known(o, "network interface", known, err) < 0 ||
	    j_id(o, "", "iface_id", net->iface_id, true, err) < 0 ||
	    same_id(path_id, net->iface_id, err) < 0)
		return -EINVAL;
	if (j_ifname(o, "", "host_dev_name", net->host_dev_name, err) < 0)
		return -EINVAL;
	r = j_str(o, "", "guest_mac", mac, sizeof(mac), false, err);
	if (r < 0 && strstr(err->message, "too long"))
		r = 2;
	if (r < 0)
		return r;
	if (r == 2 || (r == 1 && parse_mac(mac, net->guest_mac))) {
		api_error_set(err, "Field \"guest_mac\" must look like \"06:00:ac:10:00:02\".");
		return -EINVAL;
	}
	net->has_guest_mac = r == 1;
	if (j_uint(o, "", "mtu", 68, 65535, &mtu, false, err) < 0)
		return -EINVAL;
	net->mtu = (uint32_t)mtu;
	if (parse_rate_limiter(o, "", "rx_rate_limiter", &net->rx_rate_limiter, err) < 0 ||
	    parse_rate_limiter(o, "", "tx_rate_limiter", &net->tx_rate_limiter, err) < 0)
		return -EINVAL;
	return 0;
}

static int parse_drive_patch(json_object *o, const char *path_id, struct api_drive_patch *d,
			     struct api_error *err)
{
	static const char *const known[] = {"drive_id", "path_on_host", "rate_limiter", NULL};

	memset(d, 0, sizeof(*d));
	if (j_known(o, "drive", known, err) < 0 ||
	    j_id(o, "", "drive_id", d->drive_id, true, err) < 0 ||
	    same_id(path_id, d->drive_id, err) < 0 ||
	    j_str(o, "", "path_on_host", d->path_on_host, sizeof(d->path_on_host), false, err) <
		0 ||
	    parse_rate_limiter(o, "", "rate_limiter", &d->rate_limiter, err) < 0)
		return -EINVAL;
	return 0;
}

static int parse_net_patch(json_object *o, const char *path_id, struct api_net_patch *n,
			   struct api_error *err)
{
	static const char *const known[] = {"iface_id", "rx_rate_limiter", "tx_rate_limiter", NULL};

	memset(n, 0, sizeof(*n));
	if (j_known(o, "network interface", known, err) < 0 ||
	    j_id(o, "", "iface_id", n->iface_id, true, err) < 0 ||
	    same_id(path_id, n->iface_id, err) < 0 ||
	    parse_rate_limiter(o, "", "rx_rate_limiter", &n->rx_rate_limiter, err) < 0 ||
	    parse_rate_limiter(o, "", "tx_rate_limiter", &n->tx_rate_limiter, err) < 0)
		return -EINVAL;
	return 0;
}

static int parse_vsock(json_object *o, struct api_vsock *v, struct api_error *err)
{
	static const char *const known[] = {"guest_cid", "uds_path", "vsock_id", NULL};
	uint64_t cid;

	memset(v, 0, sizeof(*v));
	/* CIDs 0-2 are reserved (hypervisor, local, host); 0xffffffff is VMADDR_CID_ANY. */
	if (j_known(o, "vsock", known, err) < 0 ||
	    j_uint(o, "", "guest_cid", 3, UINT32_MAX - 1, &cid, true, err) < 0 ||
	    j_str(o, "", "uds_path", v->uds_path, sizeof(v->uds_path), true, err) < 0 ||
	    j_id(o, "", "vsock_id", v->vsock_id, false, err) < 0)
		return -EINVAL;
	v->guest_cid = (uint32_t)cid;
	return 0;
}

static int parse_entropy(json_object *o, struct api_entropy *e, struct api_error *err)
{
	static const char *const known[] = {"rate_limiter", NULL};

	memset(e, 0, sizeof(*e));
	if (j_known(o, "entropy", known, err) < 0 ||
	    parse_rate_limiter(o, "", "rate_limiter", &e->rate_limiter, err) < 0)
		return -EINVAL;
	return 0;
}

/* Index = enum api_log_level + 0; Firecracker's names, case-insensitive. */
static const char *const log_level_names[] = {"Off",   "Error", "Warning", "Info",
					      "Debug", "Trace", NULL};

static int parse_logger(json_object *o, struct api_logger *l, struct api_error *err)
{
	static const char *const known[] = {"log_path",	       "level",	 "show_level",
					    "show_log_origin", "module", NULL};
	int e, r;

	memset(l, 0, sizeof(*l));
	if (j_known(o, "logger", known, err) < 0 ||
	    j_str(o, "", "log_path", l->log_path, sizeof(l->log_path), false, err) < 0)
		return -EINVAL;
	r = j_enum(o, "", "level", log_level_names, true, &e, false, err);
	if (r < 0)
		return r;
	l->has_level = r == 1;
	l->level = (enum api_log_level)e;
	if (j_bool(o, "", "show_level", &l->show_level, false, err) < 0 ||
	    j_bool(o, "", "show_log_origin", &l->show_log_origin, false, err) < 0 ||
	    j_str(o, "", "module", l->module, sizeof(l->module), false, err) < 0)
		return -EINVAL;
	return 0;
}

static const char *const snapshot_type_names[] = {"Full", "Diff", NULL};

static int parse_snapshot_create(json_object *o, struct api_snapshot_create *s,
				 struct api_error *err)
{
	static const char *const known[] = {"snapshot_path", "mem_file_path", "snapshot_type",
					    "disk_checkpoint", NULL};
	static const char *const ckpt_names[] = {"None", "External", "Internal", NULL};
	int e = 0, c = 0;

	memset(s, 0, sizeof(*s));
	if (j_known(o, "snapshot/create", known, err) < 0 ||
	    j_str(o, "", "snapshot_path", s->snapshot_path, sizeof(s->snapshot_path), true, err) <
		0 ||
	    j_str(o, "", "mem_file_path", s->mem_file_path, sizeof(s->mem_file_path), false, err) <
		0 ||
	    j_enum(o, "", "snapshot_type", snapshot_type_names, false, &e, false, err) < 0 ||
	    j_enum(o, "", "disk_checkpoint", ckpt_names, false, &c, false, err) < 0)
		return -EINVAL;
	s->snapshot_type = (enum api_snapshot_type)e;
	s->disk_checkpoint = c;
	return 0;
}

/* An optional array field `key` of at most `max` entries: 1 with it in `*arr` and its
 * length in `*n`, 0 when absent (`*n` = 0), -EINVAL otherwise. */
static int j_array(json_object *o, const char *key, size_t max, json_object **arr, size_t *n,
		   struct api_error *err)
{
	*n = 0;
	*arr = j_get(o, key);
	if (!*arr)
		return 0;
	if (!json_object_is_type(*arr, json_type_array))
		return j_wrong_type(err, "", key, "an array", *arr);
	*n = json_object_array_length(*arr);
	if (*n > max) {
		api_error_set(err, "Field \"%s\" has %zu entries, at most %zu.", key, *n, max);
		return -EINVAL;
	}
	return 1;
}

/* Entry `i` of an array of objects, named `path` in errors. */
static int j_item(json_object *arr, size_t i, const char *path, json_object **it,
		  struct api_error *err)
{
	*it = json_object_array_get_idx(arr, i);
	if (!*it || !json_object_is_type(*it, json_type_object))
		return j_wrong_type(err, "", path, "an object", *it);
	return 0;
}

static int j_twice(struct api_error *err, const char *field, const char *what, const char *id)
{
	api_error_set(err, "Field \"%s\" names %s \"%s\" twice.", field, what, id);
	return -EINVAL;
}

static int parse_snapshot_load(json_object *o, struct api_snapshot_load *s, struct api_error *err)
{
	static const char *const known[] = {"snapshot_path",
					    "mem_backend",
					    "mem_file_path",
					    "enable_diff_snapshots",
					    "track_dirty_pages",
					    "resume_vm",
					    "network_overrides",
					    "vsock_override",
					    "clock_realtime",
					    "drive_overrides",
					    "snapshot_paths",
					    "keep_generation",
					    NULL};
	static const char *const backend_known[] = {"backend_type", "backend_path", NULL};
	static const char *const backend_names[] = {"File", "Uffd", NULL};
	static const char *const ovr_known[] = {"iface_id", "host_dev_name", NULL};
	static const char *const drive_known[] = {"drive_id", "path_on_host", "is_read_only",
						  "overlay_of", NULL};
	static const char *const vsock_known[] = {"uds_path", NULL};
	char mem_file[API_PATH_LEN];
	json_object *mb, *vo, *arr;
	bool diff, track;
	int r_file, r_mb, e, ret;
	size_t i, n;

	/* Not the whole struct: the override arrays are most of its 150 KiB, and the
	 * entries this parse fills (the first n) are cleared one by one below. Zeroing all
	 * of it touched ~37 pages at each load, on the restore's path, and left them dirty
	 * in every idle clone (issue 17). */
	memset(s, 0, offsetof(struct api_snapshot_load, net_overrides));
	s->has_vsock_override = false;
	s->vsock_uds_path[0] = '\0';
	s->n_drive_overrides = 0;
	s->snapshot_paths[0] = '\0';
	if (j_known(o, "snapshot/load", known, err) < 0 ||
	    j_str(o, "", "snapshot_path", s->snapshot_path, sizeof(s->snapshot_path), true, err) <
		0)
		return -EINVAL;
	r_file = j_str(o, "", "mem_file_path", mem_file, sizeof(mem_file), false, err);
	if (r_file < 0)
		return r_file;
	r_mb = j_object(o, "", "mem_backend", &mb, false, err);
	if (r_mb < 0)
		return r_mb;
	if (r_file && r_mb) {
		api_error_set(err, "Fields \"mem_file_path\" (deprecated) and \"mem_backend\" "
				   "exclude each other; use \"mem_backend\".");
		return -EINVAL;
	}
	if (r_mb) {
		if (j_known(mb, "mem_backend", backend_known, err) < 0 ||
		    j_enum(mb, "mem_backend", "backend_type", backend_names, false, &e, true, err) <
			0 ||
		    j_str(mb, "mem_backend", "backend_path", s->backend_path,
			  sizeof(s->backend_path), true, err) < 0)
			return -EINVAL;
		s->backend_type = e == 0 ? API_MEM_BACKEND_FILE : API_MEM_BACKEND_UFFD;
	} else if (r_file) {
		s->backend_type = API_MEM_BACKEND_FILE;
		memcpy(s->backend_path, mem_file, sizeof(mem_file));
	} else {
		s->backend_type = API_MEM_BACKEND_NONE;
	}
	if (j_bool(o, "", "enable_diff_snapshots", &diff, false, err) < 0 ||
	    j_bool(o, "", "track_dirty_pages", &track, false, err) < 0 ||
	    j_bool(o, "", "resume_vm", &s->resume_vm, false, err) < 0 ||
	    j_bool(o, "", "clock_realtime", &s->clock_realtime, false, err) < 0 ||
	    j_bool(o, "", "keep_generation", &s->keep_generation, false, err) < 0)
		return -EINVAL;
	s->track_dirty_pages = diff || track;

	ret = j_array(o, "network_overrides", API_MAX_NET_OVERRIDES, &arr, &n, err);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++) {
		struct api_net_override *ov = &s->net_overrides[i];
		json_object *it;
		char p[48];

		memset(ov, 0, sizeof(*ov));
		snprintf(p, sizeof(p), "network_overrides[%zu]", i);
		if (j_item(arr, i, p, &it, err) < 0 || j_known(it, p, ovr_known, err) < 0 ||
		    j_id(it, p, "iface_id", ov->iface_id, true, err) < 0 ||
		    j_ifname(it, p, "host_dev_name", ov->host_dev_name, err) < 0)
			return -EINVAL;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(s->net_overrides[k].iface_id, ov->iface_id))
				return j_twice(err, "network_overrides", "interface", ov->iface_id);
	}
	s->n_net_overrides = (uint32_t)n;
	ret = j_array(o, "drive_overrides", API_MAX_DRIVE_OVERRIDES, &arr, &n, err);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++) {
		struct api_drive_override *ov = &s->drive_overrides[i];
		json_object *it;
		char p[48];
		int r;

		ov->drive_id[0] = ov->path_on_host[0] = ov->overlay_of[0] = '\0';
		ov->has_read_only = ov->is_read_only = false;
		snprintf(p, sizeof(p), "drive_overrides[%zu]", i);
		if (j_item(arr, i, p, &it, err) < 0 || j_known(it, p, drive_known, err) < 0 ||
		    j_id(it, p, "drive_id", ov->drive_id, true, err) < 0 ||
		    j_str(it, p, "path_on_host", ov->path_on_host, sizeof(ov->path_on_host), true,
			  err) < 0)
			return -EINVAL;
		r = j_bool(it, p, "is_read_only", &ov->is_read_only, false, err);
		if (r < 0)
			return r;
		ov->has_read_only = r > 0;
		if (j_str(it, p, "overlay_of", ov->overlay_of, sizeof(ov->overlay_of), false, err) <
		    0)
			return -EINVAL;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(s->drive_overrides[k].drive_id, ov->drive_id))
				return j_twice(err, "drive_overrides", "drive", ov->drive_id);
	}
	s->n_drive_overrides = (uint32_t)n;
	if (j_str(o, "", "snapshot_paths", s->snapshot_paths, sizeof(s->snapshot_paths), false,
		  err) < 0)
		return -EINVAL;
	if (j_object(o, "", "vsock_override", &vo, false, err) < 0)
		return -EINVAL;
	if (vo) {
		if (j_known(vo, "vsock_override", vsock_known, err) < 0 ||
		    j_str(vo, "vsock_override", "uds_path", s->vsock_uds_path,
			  sizeof(s->vsock_uds_path), true, err) < 0)
			return -EINVAL;
		s->has_vsock_override = true;
	}
	return 0;
}

/* ---- metrics and logger owned by the API ------------------------------------------------- */

/* Firecracker's way of opening the log and metrics destinations: read-write, non-blocking,
 * created when missing. Read-write matters for a named pipe: a write-only, non-blocking open
 * of a FIFO nobody reads yet fails with ENXIO, while a read-write one succeeds (this process
 * holds the read end too), so a client may create the FIFO and start its reader later, as
 * firecracker-go-sdk and firecracker-containerd do. Lines written before a reader comes wait
 * in the pipe (64 KiB); past that they are dropped, never blocking the VMM's loop. A regular
 * file is appended to. */
int api_open_output(const char *path, struct api_error *err, const char *what)
{
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);

	if (fd < 0) {
		int e = errno;

		api_error_set(err, "Cannot open the %s file \"%s\": %s.", what, path, strerror(e));
		return -e;
	}
	return fd;
}

/* Writes what is left of a metrics line a full pipe cut short. 0 when nothing is left. */
static int metrics_drain(struct api_server *srv)
{
	while (srv->metrics_pending_len) {
		ssize_t w = write(srv->metrics_fd, srv->metrics_pending + srv->metrics_pending_off,
				  srv->metrics_pending_len);

		if (w < 0)
			return errno == EINTR ? -EINTR : -errno;
		srv->metrics_pending_off += (size_t)w;
		srv->metrics_pending_len -= (size_t)w;
	}
	free(srv->metrics_pending);
	srv->metrics_pending = NULL;
	srv->metrics_pending_off = 0;
	return 0;
}

/* One metrics line out: a pipe may take part of it (non-blocking writes above PIPE_BUF are
 * not atomic); the rest is kept and goes first next time, so a reader never sees two lines
 * interleaved. A line that finds the pipe still full is dropped and counted. */
static int metrics_write_line(struct api_server *srv, char *buf, size_t len)
{
	ssize_t w;

	if (metrics_drain(srv) < 0) {
		srv->cnt.metrics_missed++;
		free(buf);
		return 0;
	}
	w = write(srv->metrics_fd, buf, len);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		srv->cnt.metrics_missed++;
		free(buf);
		return 0;
	}
	if (w < 0) {
		int e = errno;

		srv->cnt.metrics_fails++;
		free(buf);
		return -e;
	}
	if ((size_t)w < len) {
		srv->metrics_pending = buf;
		srv->metrics_pending_off = (size_t)w;
		srv->metrics_pending_len = len - (size_t)w;
		return 0;
	}
	free(buf);
	return 0;
}

void api_server_set_startup_times(struct api_server *srv, uint64_t wall_us, uint64_t cpu_us)
{
	srv->cnt.startup_us = wall_us;
	srv->cnt.startup_cpu_us = cpu_us;
}

/* An incrementing counter as Firecracker writes it: the change since the last line. */
static json_object *inc_delta(struct api_inc *c)
{
	uint64_t d = c->cur - c->prev;

	c->prev = c->cur;
	return json_object_new_uint64(d);
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

/* get_api_requests, put_api_requests and patch_api_requests with Firecracker's names. */
static void add_request_groups(json_object *root, struct api_counters *c)
{
	static const struct {
		const char *group, *name;
		enum api_req_metric m;
		bool fails;
	} map[] = {
	    {"get_api_requests", "instance_info_count", RM_GET_INSTANCE_INFO, false},
	    {"get_api_requests", "machine_cfg_count", RM_GET_MACHINE_CFG, false},
	    {"get_api_requests", "mmds_count", RM_GET_MMDS, false},
	    {"get_api_requests", "vmm_version_count", RM_GET_VMM_VERSION, false},
	    {"put_api_requests", "actions", RM_PUT_ACTIONS, true},
	    {"put_api_requests", "boot_source", RM_PUT_BOOT_SOURCE, true},
	    {"put_api_requests", "drive", RM_PUT_DRIVE, true},
	    {"put_api_requests", "logger", RM_PUT_LOGGER, true},
	    {"put_api_requests", "machine_cfg", RM_PUT_MACHINE_CFG, true},
	    {"put_api_requests", "cpu_cfg", RM_PUT_CPU_CFG, true},
	    {"put_api_requests", "metrics", RM_PUT_METRICS, true},
	    {"put_api_requests", "network", RM_PUT_NETWORK, true},
	    {"put_api_requests", "mmds", RM_PUT_MMDS, true},
	    {"put_api_requests", "vsock", RM_PUT_VSOCK, true},
	    {"patch_api_requests", "drive", RM_PATCH_DRIVE, true},
	    {"patch_api_requests", "network", RM_PATCH_NETWORK, true},
	    {"patch_api_requests", "machine_cfg", RM_PATCH_MACHINE_CFG, true},
	    {"patch_api_requests", "mmds", RM_PATCH_MMDS, true},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		json_object *g;
		char key[64];

		if (!json_object_object_get_ex(root, map[i].group, &g)) {
			g = json_object_new_object();
			json_object_object_add(root, map[i].group, g);
		}
		if (!map[i].fails) {
			json_object_object_add(g, map[i].name, inc_delta(&c->req_count[map[i].m]));
			continue;
		}
		snprintf(key, sizeof(key), "%s_count", map[i].name);
		json_object_object_add(g, key, inc_delta(&c->req_count[map[i].m]));
		snprintf(key, sizeof(key), "%s_fails", map[i].name);
		json_object_object_add(g, key, inc_delta(&c->req_fails[map[i].m]));
	}
}

/* The API's own figures, cumulative: thaw's additions, under "thaw" beside the VMM's. */
static json_object *thaw_api_group(struct api_counters *c)
{
	static const struct {
		const char *name;
		enum api_req_metric m;
	} extra[] = {
	    {"get_vm_config", RM_GET_VM_CONFIG},
	    {"put_entropy", RM_PUT_ENTROPY},
	    {"put_snapshot_create", RM_PUT_SNAPSHOT_CREATE},
	    {"put_snapshot_load", RM_PUT_SNAPSHOT_LOAD},
	    {"patch_vm", RM_PATCH_VM},
	};
	json_object *api = json_object_new_object();
	char key[64];

	add_u64(api, "requests", c->requests);
	add_u64(api, "status_2xx", c->status_2xx);
	add_u64(api, "status_4xx", c->status_4xx);
	add_u64(api, "status_5xx", c->status_5xx);
	add_u64(api, "bad_http", c->bad_http);
	add_u64(api, "timeouts", c->timeouts);
	add_u64(api, "conns_accepted", c->conns_accepted);
	add_u64(api, "conns_refused", c->conns_refused);
	add_u64(api, "load_snapshot_request_us", c->last_load_snapshot_us);
	add_u64(api, "create_snapshot_request_us", c->last_create_snapshot_us);
	add_u64(api, "instance_start_request_us", c->last_instance_start_us);
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		snprintf(key, sizeof(key), "%s_count", extra[i].name);
		add_u64(api, key, c->req_count[extra[i].m].cur);
		snprintf(key, sizeof(key), "%s_fails", extra[i].name);
		add_u64(api, key, c->req_fails[extra[i].m].cur);
	}
	return api;
}

/* Firecracker's layout: utc_timestamp_ms, api_server, the request groups, logger and the
 * API's latencies_us members, around the VMM's groups (vcpu, vmm, uart, i8042, seccomp,
 * signals, its own latencies_us members); thaw's additions go under "thaw". */
static json_object *metrics_line(struct api_server *srv)
{
	struct api_counters *c = &srv->cnt;
	json_object *root = NULL, *g, *thaw;
	struct timespec ts;

	if (srv->ops->metrics)
		root = srv->ops->metrics(srv->ctx);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		root = json_object_new_object();
		if (!root)
			return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_object_add(
	    root, "utc_timestamp_ms",
	    json_object_new_int64((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000));
	g = json_object_new_object();
	add_u64(g, "process_startup_time_us", c->startup_us);
	add_u64(g, "process_startup_time_cpu_us", c->startup_cpu_us);
	json_object_object_add(root, "api_server", g);
	add_request_groups(root, c);
	g = json_object_new_object();
	add_u64(g, "missed_metrics_count", c->metrics_missed);
	add_u64(g, "metrics_fails", c->metrics_fails);
	json_object_object_add(root, "logger", g);

	/* The request-level latencies, unless the VMM measured them more closely. */
	if (!json_object_object_get_ex(root, "latencies_us", &g)) {
		g = json_object_new_object();
		json_object_object_add(root, "latencies_us", g);
	}
	if (!json_object_object_get_ex(g, "load_snapshot", NULL))
		add_u64(g, "load_snapshot", c->last_load_snapshot_us);
	if (!json_object_object_get_ex(g, "full_create_snapshot", NULL))
		add_u64(g, "full_create_snapshot",
			c->last_create_was_diff ? 0 : c->last_create_snapshot_us);
	if (!json_object_object_get_ex(g, "diff_create_snapshot", NULL))
		add_u64(g, "diff_create_snapshot",
			c->last_create_was_diff ? c->last_create_snapshot_us : 0);
	add_u64(g, "pause_vm", c->last_pause_us);
	add_u64(g, "resume_vm", c->last_resume_us);

	if (!json_object_object_get_ex(root, "thaw", &thaw)) {
		thaw = json_object_new_object();
		json_object_object_add(root, "thaw", thaw);
	}
	json_object_object_add(thaw, "api", thaw_api_group(c));
	return root;
}

int api_server_metrics_fd(const struct api_server *srv)
{
	return srv->metrics_fd;
}

int api_server_flush_metrics(struct api_server *srv)
{
	json_object *root;
	const char *line;
	size_t len;
	char *buf;
	int ret;

	if (srv->metrics_fd < 0)
		return -ENOENT;
	root = metrics_line(srv);
	if (!root)
		return -ENOMEM;
	line = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	len = strlen(line);
	/* One write per line so readers of a pipe never see half a record. */
	buf = malloc(len + 1);
	if (!buf) {
		json_object_put(root);
		return -ENOMEM;
	}
	memcpy(buf, line, len);
	buf[len] = '\n';
	ret = metrics_write_line(srv, buf, len + 1);
	json_object_put(root);
	return ret;
}

static int default_logger(const struct api_logger *l, struct api_error *err)
{
	static const enum log_level map[] = {
	    [API_LOG_OFF] = LOG_ERROR, [API_LOG_ERROR] = LOG_ERROR, [API_LOG_WARNING] = LOG_WARN,
	    [API_LOG_INFO] = LOG_INFO, [API_LOG_DEBUG] = LOG_DEBUG, [API_LOG_TRACE] = LOG_DEBUG,
	};
	int fd;

	if (l->log_path[0]) {
		fd = api_open_output(l->log_path, err, "log");
		if (fd < 0)
			return fd;
		if (dup2(fd, STDERR_FILENO) < 0) {
			int e = errno;

			close(fd);
			api_error_set(err, "dup2 of the log file onto stderr: %s.", strerror(e));
			err->status = 500;
			return -e;
		}
		close(fd);
	}
	if (l->has_level)
		log_set_level(map[l->level]);
	return 0;
}

/* ---- the router ---------------------------------------------------------------------------- */

enum res {
	RES_ROOT,
	RES_BOOT_SOURCE,
	RES_MACHINE_CONFIG,
	RES_DRIVES,
	RES_NET,
	RES_VSOCK,
	RES_ENTROPY,
	RES_ACTIONS,
	RES_VM,
	RES_SNAP_CREATE,
	RES_SNAP_LOAD,
	RES_LOGGER,
	RES_METRICS,
	RES_VERSION,
	RES_VM_CONFIG,
	RES_MMDS,
	RES_MMDS_CONFIG,
	RES_CPU_CONFIG,
	RES_NONE,
};

static enum res match_path(const char *p, size_t len, const char **id, size_t *id_len)
{
	static const struct {
		const char *path;
		enum res res;
		bool has_id;
	} table[] = {
	    {"/", RES_ROOT, false},
	    {"/boot-source", RES_BOOT_SOURCE, false},
	    {"/machine-config", RES_MACHINE_CONFIG, false},
	    {"/drives/", RES_DRIVES, true},
	    {"/network-interfaces/", RES_NET, true},
	    {"/vsock", RES_VSOCK, false},
	    {"/entropy", RES_ENTROPY, false},
	    {"/actions", RES_ACTIONS, false},
	    {"/vm", RES_VM, false},
	    {"/snapshot/create", RES_SNAP_CREATE, false},
	    {"/snapshot/load", RES_SNAP_LOAD, false},
	    {"/logger", RES_LOGGER, false},
	    {"/metrics", RES_METRICS, false},
	    {"/version", RES_VERSION, false},
	    {"/vm/config", RES_VM_CONFIG, false},
	    {"/mmds", RES_MMDS, false},
	    {"/mmds/config", RES_MMDS_CONFIG, false},
	    {"/cpu-config", RES_CPU_CONFIG, false},
	};
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		size_t n = strlen(table[i].path);

		if (table[i].has_id) {
			if (len > n && !memcmp(p, table[i].path, n)) {
				*id = p + n;
				*id_len = len - n;
				return table[i].res;
			}
		} else if (len == n && !memcmp(p, table[i].path, n)) {
			return table[i].res;
		}
	}
	return RES_NONE;
}

static const char *method_name(enum http_method m)
{
	return http_method_str(m);
}

static const char *const state_names[] = {"Not started", "Running", "Paused"};

static void reply_root(struct api_server *srv)
{
	struct api_instance_info info;
	char id[6 * API_ID_LEN];
	int n;

	memset(&info, 0, sizeof(info));
	snprintf(info.id, sizeof(info.id), "%s", "thaw");
	if (srv->phase == API_PHASE_STARTED)
		info.state = srv->paused ? API_VM_PAUSED : API_VM_RUNNING;
	if (srv->ops->describe)
		srv->ops->describe(srv->ctx, &info);
	info.id[sizeof(info.id) - 1] = '\0';
	if ((unsigned int)info.state > API_VM_PAUSED)
		info.state = API_VM_NOT_STARTED;
	json_escape(id, sizeof(id), info.id);
	n = snprintf(srv->reply.body, sizeof(srv->reply.body),
		     "{\"id\": \"%s\", \"state\": \"%s\", \"vmm_version\": \"%s\", \"app_name\": "
		     "\"%s\"}",
		     id, state_names[info.state], API_VMM_VERSION, API_APP_NAME);
	srv->reply.status = 200;
	srv->reply.len = (size_t)n;
}

static void reply_machine_config(struct api_server *srv, const struct api_machine_config *c)
{
	int n;

	n = snprintf(
	    srv->reply.body, sizeof(srv->reply.body),
	    "{\"vcpu_count\": %u, \"mem_size_mib\": %u, \"smt\": %s, "
	    "\"track_dirty_pages\": %s, \"cpu_template\": \"%s\", \"huge_pages\": \"%s\"}",
	    c->vcpu_count, c->mem_size_mib, c->smt ? "true" : "false",
	    c->track_dirty_pages ? "true" : "false",
	    cpu_template_names[c->cpu_template <= API_CPU_TEMPLATE_V1N1 ? c->cpu_template : 0],
	    huge_pages_names[c->huge_pages <= API_HUGE_PAGES_2M ? c->huge_pages : 0]);
	srv->reply.status = 200;
	srv->reply.len = (size_t)n;
}

/* The current machine configuration: the VMM's when it can tell, else the last accepted. */
static int current_mcfg(struct api_server *srv, struct api_machine_config *c, struct api_error *err)
{
	*c = srv->mcfg;
	if (srv->ops->get_machine_config)
		return srv->ops->get_machine_config(srv->ctx, c, err);
	return 0;
}

#define MSG_AFTER_START	 "The requested operation is not supported after starting the microVM."
#define MSG_BEFORE_START "The requested operation is not supported before starting the microVM."

/* Whether the current phase allows `what`; replies 400 when not. */
enum need { NEED_ANY, NEED_PREBOOT, NEED_STARTED, NEED_FRESH };

static bool phase_allows(struct api_server *srv, enum need need)
{
	if (srv->phase == API_PHASE_FAILED && need != NEED_ANY) {
		reply_faultf(srv, 400,
			     "The microVM is in a failed state and refuses further actions (%s). "
			     "Start a new thaw process.",
			     srv->failed_reason);
		return false;
	}
	switch (need) {
	case NEED_ANY:
		return true;
	case NEED_PREBOOT:
		if (srv->phase == API_PHASE_STARTED) {
			reply_fault(srv, 400, MSG_AFTER_START);
			return false;
		}
		return true;
	case NEED_STARTED:
		if (srv->phase != API_PHASE_STARTED) {
			reply_fault(srv, 400, MSG_BEFORE_START);
			return false;
		}
		return true;
	case NEED_FRESH:
		if (srv->phase == API_PHASE_STARTED) {
			reply_fault(srv, 400,
				    "Loading a microVM snapshot is not allowed after "
				    "starting the microVM.");
			return false;
		}
		if (srv->phase == API_PHASE_CONFIGURING) {
			reply_fault(srv, 400,
				    "Loading a microVM snapshot is not allowed after "
				    "configuring boot-specific resources; it needs a fresh "
				    "thaw process.");
			return false;
		}
		return true;
	}
	return false;
}

/* Turns a callback's result into the reply. */
static void reply_op(struct api_server *srv, int ret, struct api_error *err)
{
	if (ret == 0) {
		reply_status(srv, 204);
		return;
	}
	if (ret > 0)
		ret = -EIO;
	err->message[sizeof(err->message) - 1] = '\0';
	if (!err->message[0])
		api_error_set(err, "%s.", strerror(-ret));
	if (err->status < 400 || err->status > 599)
		err->status = 400;
	reply_fault(srv, err->status, err->message);
}

static void reply_unsupported(struct api_server *srv, enum http_method m, const char *path)
{
	reply_faultf(srv, 400, "%s %s is not supported by this VMM.", method_name(m), path);
}

static void enter_failed(struct api_server *srv, const char *what, const struct api_error *err)
{
	srv->phase = API_PHASE_FAILED;
	snprintf(srv->failed_reason, sizeof(srv->failed_reason), "%s failed: %s", what,
		 err->message);
	/* The VMM logged the cause as an error already; this records the consequence. */
	log_warn("api: refusing further actions: %s", srv->failed_reason);
}

/* Parses the body as one JSON object; replies 400 and returns NULL otherwise. */
static json_object *parse_body(struct api_server *srv, const char *body, size_t len)
{
	enum json_tokener_error jerr;
	json_object *obj;
	size_t end, i;

	if (len == 0) {
		reply_fault(srv, 400, "The request needs a JSON object body.");
		return NULL;
	}
	json_tokener_reset(srv->tok);
	obj = json_tokener_parse_ex(srv->tok, body, (int)len);
	jerr = json_tokener_get_error(srv->tok);
	if (!obj || jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			reply_fault(srv, 400, "Invalid JSON in the request body: unexpected end.");
		else
			reply_faultf(srv, 400, "Invalid JSON in the request body at byte %zu: %s.",
				     json_tokener_get_parse_end(srv->tok),
				     json_tokener_error_desc(jerr));
		json_object_put(obj);
		return NULL;
	}
	end = json_tokener_get_parse_end(srv->tok);
	for (i = end; i < len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n') {
			reply_faultf(srv, 400,
				     "Invalid JSON in the request body: trailing data at byte %zu.",
				     i);
			json_object_put(obj);
			return NULL;
		}
	if (!json_object_is_type(obj, json_type_object)) {
		reply_faultf(srv, 400, "The request body must be a JSON object, got %s.",
			     jtype_name(obj));
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

/* ---- GET /version, GET /vm/config and the record behind it -------------------------------- */

/* Keeps what a pre-boot PUT the VMM accepted configured, for GET /vm/config: a second PUT
 * of the same resource or id replaces the first, as it does in the VMM. */
static void record_config(struct api_server *srv, enum res res)
{
	struct api_vm_config *v = srv->vmcfg;
	uint32_t i;

	switch (res) {
	case RES_BOOT_SOURCE:
		v->boot = srv->scratch.boot;
		v->has_boot_source = true;
		break;
	case RES_DRIVES:
		for (i = 0; i < v->n_drives; i++)
			if (!strcmp(v->drives[i].drive_id, srv->scratch.drive.drive_id))
				break;
		if (i < API_MAX_DRIVES) {
			v->drives[i] = srv->scratch.drive;
			v->n_drives += i == v->n_drives;
		}
		break;
	case RES_NET:
		for (i = 0; i < v->n_nets; i++)
			if (!strcmp(v->nets[i].iface_id, srv->scratch.net.iface_id))
				break;
		if (i < API_MAX_NETS) {
			v->nets[i] = srv->scratch.net;
			v->n_nets += i == v->n_nets;
		}
		break;
	case RES_VSOCK:
		v->vsock = srv->scratch.vsock;
		v->has_vsock = true;
		break;
	case RES_ENTROPY:
		v->entropy = srv->scratch.entropy;
		v->has_entropy = true;
		break;
	default:
		break;
	}
}

/* "" as JSON null, as Firecracker's optional strings are. */
static json_object *j_str_or_null(const char *s)
{
	return s[0] ? json_object_new_string(s) : NULL;
}

static json_object *bucket_json(const struct api_token_bucket *b)
{
	json_object *o;

	if (!b->present)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "size", json_object_new_uint64(b->size));
	json_object_object_add(o, "one_time_burst", json_object_new_uint64(b->one_time_burst));
	json_object_object_add(o, "refill_time", json_object_new_uint64(b->refill_time));
	return o;
}

static json_object *rate_limiter_json(const struct api_rate_limiter *rl)
{
	json_object *o;

	if (!rl->present)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "bandwidth", bucket_json(&rl->bandwidth));
	json_object_object_add(o, "ops", bucket_json(&rl->ops));
	return o;
}

static json_object *drive_json(const struct api_drive *d)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "drive_id", json_object_new_string(d->drive_id));
	json_object_object_add(o, "partuuid", j_str_or_null(d->partuuid));
	json_object_object_add(o, "is_root_device", json_object_new_boolean(d->is_root_device));
	json_object_object_add(o, "cache_type",
			       json_object_new_string(cache_type_names[d->cache_type & 1]));
	json_object_object_add(o, "is_read_only", json_object_new_boolean(d->is_read_only));
	json_object_object_add(o, "path_on_host", j_str_or_null(d->path_on_host));
	json_object_object_add(o, "rate_limiter", rate_limiter_json(&d->rate_limiter));
	json_object_object_add(o, "io_engine",
			       json_object_new_string(io_engine_names[d->io_engine & 1]));
	json_object_object_add(o, "socket", j_str_or_null(d->socket));
	return o;
}

static json_object *net_json(const struct api_net *n)
{
	json_object *o = json_object_new_object();
	char mac[API_MAC_LEN];

	json_object_object_add(o, "iface_id", json_object_new_string(n->iface_id));
	json_object_object_add(o, "host_dev_name", json_object_new_string(n->host_dev_name));
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->guest_mac[0],
		 n->guest_mac[1], n->guest_mac[2], n->guest_mac[3], n->guest_mac[4],
		 n->guest_mac[5]);
	json_object_object_add(o, "guest_mac",
			       n->has_guest_mac ? json_object_new_string(mac) : NULL);
	json_object_object_add(o, "rx_rate_limiter", rate_limiter_json(&n->rx_rate_limiter));
	json_object_object_add(o, "tx_rate_limiter", rate_limiter_json(&n->tx_rate_limiter));
	return o;
}

static json_object *machine_config_json(const struct api_machine_config *c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "vcpu_count", json_object_new_int64(c->vcpu_count));
	json_object_object_add(o, "mem_size_mib", json_object_new_int64(c->mem_size_mib));
	json_object_object_add(o, "smt", json_object_new_boolean(c->smt));
	json_object_object_add(o, "track_dirty_pages",
			       json_object_new_boolean(c->track_dirty_pages));
	json_object_object_add(
	    o, "cpu_template",
	    json_object_new_string(
		cpu_template_names[c->cpu_template <= API_CPU_TEMPLATE_V1N1 ? c->cpu_template
									    : 0]));
	json_object_object_add(
	    o, "huge_pages",
	    json_object_new_string(
		huge_pages_names[c->huge_pages <= API_HUGE_PAGES_2M ? c->huge_pages : 0]));
	return o;
}

/* GET /vm/config's "mmds-config": null until PUT /mmds/config (or a restore) set one. */
static json_object *mmds_config_json(struct api_server *srv)
{
	struct api_mmds *m = srv->ops->mmds ? srv->ops->mmds(srv->ctx) : NULL;
	const struct api_mmds_config *c = m ? api_mmds_get_config(m) : NULL;
	json_object *o, *ifs;
	char ip[16];

	if (!c || !c->nr_ifaces)
		return NULL;
	o = json_object_new_object();
	ifs = json_object_new_array();
	for (unsigned i = 0; i < c->nr_ifaces; i++)
		json_object_array_add(ifs, json_object_new_string(c->ifaces[i]));
	snprintf(ip, sizeof(ip), "%u.%u.%u.%u", c->ipv4 >> 24, (c->ipv4 >> 16) & 255,
		 (c->ipv4 >> 8) & 255, c->ipv4 & 255);
	json_object_object_add(o, "version",
			       json_object_new_string(c->version == API_MMDS_V2 ? "V2" : "V1"));
	json_object_object_add(o, "network_interfaces", ifs);
	json_object_object_add(o, "ipv4_address", json_object_new_string(ip));
	json_object_object_add(o, "imds_compat", json_object_new_boolean(c->imds_compat));
	return o;
}

/* Firecracker's FullVmConfiguration: every member present, absent ones null. */
static json_object *vm_config_json(struct api_server *srv, const struct api_vm_config *v,
				   const struct api_machine_config *mc)
{
	json_object *o = json_object_new_object(), *arr;
	uint32_t i;

	json_object_object_add(o, "balloon", NULL);
	arr = json_object_new_array();
	for (i = 0; i < v->n_drives && i < API_MAX_DRIVES; i++)
		json_object_array_add(arr, drive_json(&v->drives[i]));
	json_object_object_add(o, "drives", arr);
	if (v->has_boot_source) {
		json_object *b = json_object_new_object();

		json_object_object_add(b, "kernel_image_path",
				       json_object_new_string(v->boot.kernel_image_path));
		json_object_object_add(b, "initrd_path", j_str_or_null(v->boot.initrd_path));
		json_object_object_add(b, "boot_args", j_str_or_null(v->boot.boot_args));
		json_object_object_add(o, "boot-source", b);
	} else {
		json_object_object_add(o, "boot-source", NULL);
	}
	json_object_object_add(o, "cpu-config", NULL);
	if (srv->has_logger) {
		json_object *l = json_object_new_object();

		json_object_object_add(l, "log_path", j_str_or_null(srv->logger.log_path));
		json_object_object_add(
		    l, "level",
		    json_object_new_string(
			log_level_names[srv->logger.has_level ? srv->logger.level : API_LOG_INFO]));
		json_object_object_add(l, "show_level",
				       json_object_new_boolean(srv->logger.show_level));
		json_object_object_add(l, "show_log_origin",
				       json_object_new_boolean(srv->logger.show_log_origin));
		json_object_object_add(l, "module", j_str_or_null(srv->logger.module));
		json_object_object_add(o, "logger", l);
	} else {
		json_object_object_add(o, "logger", NULL);
	}
	json_object_object_add(o, "machine-config", machine_config_json(mc));
	if (srv->metrics_path[0]) {
		json_object *m = json_object_new_object();

		json_object_object_add(m, "metrics_path",
				       json_object_new_string(srv->metrics_path));
		json_object_object_add(o, "metrics", m);
	} else {
		json_object_object_add(o, "metrics", NULL);
	}
	json_object_object_add(o, "mmds-config", mmds_config_json(srv));
	arr = json_object_new_array();
	for (i = 0; i < v->n_nets && i < API_MAX_NETS; i++)
		json_object_array_add(arr, net_json(&v->nets[i]));
	json_object_object_add(o, "network-interfaces", arr);
	if (v->has_vsock) {
		json_object *vs = json_object_new_object();

		json_object_object_add(vs, "guest_cid", json_object_new_int64(v->vsock.guest_cid));
		json_object_object_add(vs, "uds_path", json_object_new_string(v->vsock.uds_path));
		json_object_object_add(o, "vsock", vs);
	} else {
		json_object_object_add(o, "vsock", NULL);
	}
	if (v->has_entropy) {
		json_object *e = json_object_new_object();

		json_object_object_add(e, "rate_limiter",
				       rate_limiter_json(&v->entropy.rate_limiter));
		json_object_object_add(o, "entropy", e);
	} else {
		json_object_object_add(o, "entropy", NULL);
	}
	return o;
}

/* A 200 with `o` serialised (the reference is taken); bodies past srv->reply's buffer go
 * out through reply.big. */
static void reply_json(struct api_server *srv, json_object *o)
{
	const char *s;
	size_t len;

	s = o ? json_object_to_json_string_length(o, JSON_C_TO_STRING_SPACED, &len) : NULL;
	if (!s) {
		reply_fault(srv, 500, "Out of memory building the reply.");
		json_object_put(o);
		return;
	}
	if (len <= sizeof(srv->reply.body)) {
		memcpy(srv->reply.body, s, len);
		srv->reply.len = len;
	} else {
		srv->reply.big = malloc(len);
		if (!srv->reply.big) {
			reply_fault(srv, 500, "Out of memory building the reply.");
			json_object_put(o);
			return;
		}
		memcpy(srv->reply.big, s, len);
		srv->reply.big_len = len;
		srv->reply.len = 0;
	}
	srv->reply.status = 200;
	json_object_put(o);
}

/* ---- PUT /cpu-config: Firecracker's custom CPU template (x86) ---------------------------- */

/* A number given as a JSON integer or as a string ("0x1f", "31"). */
static int j_num(json_object *o, const char *path, uint64_t max, uint64_t *out,
		 struct api_error *err)
{
	const char *s;
	char *end;

	if (json_object_is_type(o, json_type_int) && json_object_get_int64(o) >= 0) {
		*out = (uint64_t)json_object_get_int64(o);
	} else if (json_object_is_type(o, json_type_string)) {
		s = json_object_get_string(o);
		errno = 0;
		*out = strtoull(s, &end, 0);
		if (!*s || *end || errno) {
			api_error_set(err, "Field \"%s\" must be a number (\"0x1f\" or 31).", path);
			return -EINVAL;
		}
	} else {
		api_error_set(err, "Field \"%s\" must be a number (\"0x1f\" or 31).", path);
		return -EINVAL;
	}
	if (*out > max) {
		api_error_set(err, "Field \"%s\" is above %#llx.", path, (unsigned long long)max);
		return -EINVAL;
	}
	return 0;
}

/* "0b" and `bits` characters of '0', '1' or 'x' (most significant first), '_' allowed
 * between them: which bits are set, and which are kept as they are. */
static int j_bitmap(json_object *o, const char *path, unsigned bits, uint64_t *keep, uint64_t *set,
		    struct api_error *err)
{
	const char *s = json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
	unsigned n = 0;

	*keep = *set = 0;
	if (!s || strncmp(s, "0b", 2))
		goto bad;
	for (s += 2; *s; s++) {
		if (*s == '_')
			continue;
		if (*s != '0' && *s != '1' && *s != 'x' && *s != 'X')
			goto bad;
		if (++n > bits)
			goto bad;
		*keep = *keep << 1 | (*s == 'x' || *s == 'X');
		*set = *set << 1 | (*s == '1');
	}
	if (n == bits)
		return 0;
bad:
	api_error_set(err, "Field \"%s\" must be \"0b\" and %u of '0', '1' or 'x'.", path, bits);
	return -EINVAL;
}

static int parse_cpu_config(json_object *o, struct api_cpu_config *c, struct api_error *err)
{
	static const char *const known[] = {"cpuid_modifiers", "msr_modifiers", "kvm_capabilities",
					    "vcpu_features",   "reg_modifiers", NULL};
	static const char *const mod_known[] = {"leaf", "subleaf", "flags", "modifiers", NULL};
	static const char *const reg_known[] = {"register", "bitmap", NULL};
	static const char *const msr_known[] = {"addr", "bitmap", NULL};
	static const char *const regs[] = {"eax", "ebx", "ecx", "edx", NULL};
	json_object *arr, *it, *regs_arr, *r, *v;
	size_t n, nr;
	char p[96];

	memset(c, 0, sizeof(*c));
	if (j_known(o, "cpu-config", known, err) < 0)
		return -EINVAL;
	if ((v = j_get(o, "kvm_capabilities")) &&
	    (!json_object_is_type(v, json_type_array) || json_object_array_length(v))) {
		api_error_set(err, "cpu-config: kvm_capabilities are not supported by thaw (it "
				   "enables the capabilities it needs itself).");
		return -EINVAL;
	}
	if (j_get(o, "vcpu_features") || j_get(o, "reg_modifiers")) {
		api_error_set(err, "cpu-config: vcpu_features and reg_modifiers are for aarch64; "
				   "thaw runs x86_64 guests.");
		return -EINVAL;
	}
	if (j_array(o, "cpuid_modifiers", API_CPUID_MODS_MAX, &arr, &n, err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		uint64_t leaf, sub = 0, flags = 0;
		int reg;

		snprintf(p, sizeof(p), "cpuid_modifiers[%zu]", i);
		if (j_item(arr, i, p, &it, err) || j_known(it, p, mod_known, err) < 0)
			return -EINVAL;
		snprintf(p, sizeof(p), "cpuid_modifiers[%zu].leaf", i);
		if (!(v = j_get(it, "leaf")))
			return j_missing(err, "", p);
		if (j_num(v, p, UINT32_MAX, &leaf, err))
			return -EINVAL;
		snprintf(p, sizeof(p), "cpuid_modifiers[%zu].subleaf", i);
		if ((v = j_get(it, "subleaf")) && j_num(v, p, UINT32_MAX, &sub, err))
			return -EINVAL;
		snprintf(p, sizeof(p), "cpuid_modifiers[%zu].flags", i);
		if ((v = j_get(it, "flags")) && j_num(v, p, UINT32_MAX, &flags, err))
			return -EINVAL;
		snprintf(p, sizeof(p), "cpuid_modifiers[%zu].modifiers", i);
		regs_arr = j_get(it, "modifiers");
		if (!regs_arr || !json_object_is_type(regs_arr, json_type_array))
			return j_wrong_type(err, "", p, "an array", regs_arr);
		nr = json_object_array_length(regs_arr);
		for (size_t k = 0; k < nr; k++) {
			uint64_t keep, set;

			if (c->nr_cpuid == API_CPUID_MODS_MAX) {
				api_error_set(err, "cpu-config: more than %d register modifiers.",
					      API_CPUID_MODS_MAX);
				return -EINVAL;
			}
			snprintf(p, sizeof(p), "cpuid_modifiers[%zu].modifiers[%zu]", i, k);
			if (j_item(regs_arr, k, p, &r, err) || j_known(r, p, reg_known, err) < 0 ||
			    j_enum(r, p, "register", regs, true, &reg, false, err) < 0)
				return -EINVAL;
			snprintf(p, sizeof(p), "cpuid_modifiers[%zu].modifiers[%zu].bitmap", i, k);
			if (j_bitmap(j_get(r, "bitmap"), p, 32, &keep, &set, err))
				return -EINVAL;
			c->cpuid[c->nr_cpuid].leaf = (uint32_t)leaf;
			c->cpuid[c->nr_cpuid].subleaf = (uint32_t)sub;
			c->cpuid[c->nr_cpuid].flags = (uint32_t)flags;
			c->cpuid[c->nr_cpuid].reg = (uint8_t)reg;
			c->cpuid[c->nr_cpuid].keep = (uint32_t)keep;
			c->cpuid[c->nr_cpuid].set = (uint32_t)set;
			c->nr_cpuid++;
		}
	}
	if (j_array(o, "msr_modifiers", API_MSR_MODS_MAX, &arr, &n, err) < 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		uint64_t addr;

		snprintf(p, sizeof(p), "msr_modifiers[%zu]", i);
		if (j_item(arr, i, p, &it, err) || j_known(it, p, msr_known, err) < 0)
			return -EINVAL;
		snprintf(p, sizeof(p), "msr_modifiers[%zu].addr", i);
		if (!(v = j_get(it, "addr")))
			return j_missing(err, "", p);
		if (j_num(v, p, UINT32_MAX, &addr, err))
			return -EINVAL;
		snprintf(p, sizeof(p), "msr_modifiers[%zu].bitmap", i);
		if (j_bitmap(j_get(it, "bitmap"), p, 64, &c->msr[i].keep, &c->msr[i].set, err))
			return -EINVAL;
		c->msr[i].addr = (uint32_t)addr;
		c->nr_msr++;
	}
	return 0;
}

/* ---- MMDS: the store (PUT, PATCH, GET /mmds, at any time) and its configuration --------- */

static struct api_mmds *mmds_store(struct api_server *srv)
{
	return srv->ops->mmds ? srv->ops->mmds(srv->ctx) : NULL;
}

static void reply_mmds(struct api_server *srv)
{
	struct api_mmds *m = mmds_store(srv);

	if (!m) {
		reply_fault(srv, 400, "MMDS is not offered by this VMM.");
		return;
	}
	reply_json(srv, json_object_get(api_mmds_get(m)));
}

static void route_mmds(struct api_server *srv, enum http_method method, json_object *o,
		       struct api_error *err)
{
	struct api_mmds *m = mmds_store(srv);
	int ret;

	if (!m) {
		reply_fault(srv, 400, "MMDS is not offered by this VMM.");
		return;
	}
	ret = method == HTTP_PUT ? api_mmds_put(m, o, err) : api_mmds_patch(m, o, err);
	reply_op(srv, ret, err);
}

static int parse_ipv4(const char *s, uint32_t *out)
{
	unsigned a, b, c, d;
	char end;

	if (sscanf(s, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &end) != 4 || a > 255 || b > 255 ||
	    c > 255 || d > 255)
		return -EINVAL;
	*out = a << 24 | b << 16 | c << 8 | d;
	return 0;
}

/* PUT /mmds/config, pre-boot: the interfaces must be configured ones (the guest reaches
 * MMDS through them), the address a unicast one. */
static void route_mmds_config(struct api_server *srv, json_object *o, struct api_error *err)
{
	static const char *const known[] = {"network_interfaces", "ipv4_address", "version",
					    "imds_compat", NULL};
	static const char *const versions[] = {"V1", "V2", NULL};
	struct api_mmds *m = mmds_store(srv);
	struct api_mmds_config cfg = {.version = API_MMDS_V1, .ipv4 = API_MMDS_DEFAULT_IPV4};
	json_object *list;
	char ip[32];
	int v = 0, r;
	size_t n;

	if (!m) {
		reply_fault(srv, 400, "MMDS is not offered by this VMM.");
		return;
	}
	if (j_known(o, "mmds config", known, err) < 0 ||
	    j_enum(o, "", "version", versions, false, &v, false, err) < 0 ||
	    j_bool(o, "", "imds_compat", &cfg.imds_compat, false, err) < 0)
		goto bad;
	cfg.version = v ? API_MMDS_V2 : API_MMDS_V1;
	r = j_str(o, "", "ipv4_address", ip, sizeof(ip), false, err);
	if (r < 0)
		goto bad;
	if (r == 1 && (parse_ipv4(ip, &cfg.ipv4) || cfg.ipv4 == 0 || cfg.ipv4 >= 0xe0000000u)) {
		api_error_set(err, "Field \"ipv4_address\" must be a unicast IPv4 address.");
		goto bad;
	}
	if (!json_object_object_get_ex(o, "network_interfaces", &list)) {
		j_missing(err, "", "network_interfaces");
		goto bad;
	}
	if (!json_object_is_type(list, json_type_array) ||
	    (n = json_object_array_length(list)) == 0 || n > API_MMDS_MAX_IFACES) {
		api_error_set(err,
			      "Field \"network_interfaces\" must list 1 to %d network interface "
			      "ids.",
			      API_MMDS_MAX_IFACES);
		goto bad;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(list, i);
		const char *id =
		    json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
		bool found = false;

		for (uint32_t k = 0; id && srv->vmcfg && k < srv->vmcfg->n_nets; k++)
			found |= !strcmp(srv->vmcfg->nets[k].iface_id, id);
		if (!found) {
			api_error_set(err,
				      "Invalid network interface ID - not found: %s (configure it "
				      "with PUT /network-interfaces first).",
				      id ? id : "(not a string)");
			goto bad;
		}
		snprintf(cfg.ifaces[cfg.nr_ifaces++], API_ID_LEN, "%s", id);
	}
	if (!phase_allows(srv, NEED_PREBOOT))
		return;
	api_mmds_set_config(m, &cfg);
	reply_status(srv, 204);
	return;
bad:
	reply_fault(srv, 400, err->message);
}

static void reply_vm_config(struct api_server *srv, struct api_error *err)
{
	struct api_machine_config mc;
	struct api_vm_config *loaded = NULL;
	int ret = current_mcfg(srv, &mc, err);

	if (ret) {
		reply_op(srv, ret, err);
		return;
	}
	if (srv->phase == API_PHASE_STARTED && srv->loaded && srv->ops->get_vm_config) {
		loaded = calloc(1, sizeof(*loaded));
		if (!loaded) {
			reply_fault(srv, 500, "Out of memory building the reply.");
			return;
		}
		ret = srv->ops->get_vm_config(srv->ctx, loaded, err);
		if (ret) {
			free(loaded);
			reply_op(srv, ret, err);
			return;
		}
	}
	reply_json(srv, vm_config_json(srv, loaded ? loaded : srv->vmcfg, &mc));
	free(loaded);
}

/* GET /version: Firecracker's shape; the version is thaw's own. */
static void reply_version(struct api_server *srv)
{
	int n = snprintf(srv->reply.body, sizeof(srv->reply.body),
			 "{\"firecracker_version\": \"%s\"}", API_VMM_VERSION);

	srv->reply.status = 200;
	srv->reply.len = (size_t)n;
}

static void route_actions(struct api_server *srv, json_object *o, struct api_error *err)
{
	static const char *const known[] = {"action_type", NULL};
	static const char *const names[] = {"InstanceStart", "SendCtrlAltDel", "FlushMetrics",
					    NULL};
	uint64_t t0;
	int a, ret;

	if (j_known(o, "actions", known, err) < 0 ||
	    j_enum(o, "", "action_type", names, false, &a, true, err) < 0) {
		reply_fault(srv, 400, err->message);
		return;
	}
	switch (a) {
	case 0: /* InstanceStart */
		if (!phase_allows(srv, NEED_PREBOOT))
			return;
		if (!srv->ops->instance_start) {
			reply_unsupported(srv, HTTP_PUT, "/actions InstanceStart");
			return;
		}
		if (!srv->boot_source_set) {
			reply_fault(srv, 400,
				    "Cannot start the microVM without a boot source: "
				    "PUT /boot-source first.");
			return;
		}
		t0 = now_ns();
		ret = srv->ops->instance_start(srv->ctx, err);
		srv->cnt.last_instance_start_us = (now_ns() - t0) / 1000;
		reply_op(srv, ret, err);
		if (ret == 0) {
			srv->phase = API_PHASE_STARTED;
			srv->paused = false;
		} else if (!err->keep_state) {
			enter_failed(srv, "InstanceStart", err);
		}
		return;
	case 1: /* SendCtrlAltDel */
		if (!phase_allows(srv, NEED_STARTED))
			return;
		if (!srv->ops->send_ctrl_alt_del) {
			reply_unsupported(srv, HTTP_PUT, "/actions SendCtrlAltDel");
			return;
		}
		reply_op(srv, srv->ops->send_ctrl_alt_del(srv->ctx, err), err);
		return;
	default: /* FlushMetrics */
		ret = api_server_flush_metrics(srv);
		if (ret == -ENOENT)
			reply_fault(srv, 400,
				    "The metrics system is not configured: PUT /metrics "
				    "first.");
		else if (ret < 0)
			reply_faultf(srv, 500, "Writing the metrics failed: %s.", strerror(-ret));
		else
			reply_status(srv, 204);
		return;
	}
}

static void route_vm(struct api_server *srv, json_object *o, struct api_error *err)
{
	static const char *const known[] = {"state", NULL};
	static const char *const names[] = {"Paused", "Resumed", NULL};
	uint64_t t0;
	int s, ret;

	if (j_known(o, "vm", known, err) < 0 ||
	    j_enum(o, "", "state", names, false, &s, true, err) < 0) {
		reply_fault(srv, 400, err->message);
		return;
	}
	if (!phase_allows(srv, NEED_STARTED))
		return;
	if (!(s == 0 ? srv->ops->pause : srv->ops->resume)) {
		reply_unsupported(srv, HTTP_PATCH, "/vm");
		return;
	}
	t0 = now_ns();
	ret = s == 0 ? srv->ops->pause(srv->ctx, err) : srv->ops->resume(srv->ctx, err);
	*(s == 0 ? &srv->cnt.last_pause_us : &srv->cnt.last_resume_us) = (now_ns() - t0) / 1000;
	reply_op(srv, ret, err);
	if (ret == 0)
		srv->paused = s == 0;
}

/* The configuration resources share their shape: parse, check the phase, call the op. */
static void route_config(struct api_server *srv, enum res res, enum http_method m, const char *path,
			 const char *id, json_object *o, struct api_error *err)
{
	const struct api_ops *ops = srv->ops;
	int ret = -EINVAL;
	bool has_op;

	switch (res) {
	case RES_BOOT_SOURCE:
		ret = parse_boot_source(o, &srv->scratch.boot, err);
		has_op = ops->put_boot_source;
		break;
	case RES_MACHINE_CONFIG:
		if (m == HTTP_PATCH) {
			ret = current_mcfg(srv, &srv->scratch.mcfg, err);
			if (ret) {
				reply_op(srv, ret, err);
				return;
			}
		}
		ret = parse_machine_config(o, m == HTTP_PATCH, &srv->scratch.mcfg, err);
		has_op = ops->put_machine_config;
		break;
	case RES_DRIVES:
		ret = parse_drive(o, id, &srv->scratch.drive, err);
		has_op = ops->put_drive;
		break;
	case RES_NET:
		ret = parse_net(o, id, &srv->scratch.net, err);
		has_op = ops->put_net;
		break;
	case RES_VSOCK:
		ret = parse_vsock(o, &srv->scratch.vsock, err);
		has_op = ops->put_vsock;
		break;
	case RES_ENTROPY:
		ret = parse_entropy(o, &srv->scratch.entropy, err);
		has_op = ops->put_entropy;
		break;
	default:
		reply_fault(srv, 500, "internal routing error");
		return;
	}
	if (ret < 0) {
		reply_fault(srv, 400, err->message);
		return;
	}
	if (!phase_allows(srv, NEED_PREBOOT))
		return;
	if (!has_op) {
		reply_unsupported(srv, m, path);
		return;
	}
	switch (res) {
	case RES_BOOT_SOURCE:
		ret = ops->put_boot_source(srv->ctx, &srv->scratch.boot, err);
		if (ret == 0)
			srv->boot_source_set = true;
		break;
	case RES_MACHINE_CONFIG:
		ret = ops->put_machine_config(srv->ctx, &srv->scratch.mcfg, err);
		if (ret == 0)
			srv->mcfg = srv->scratch.mcfg;
		break;
	case RES_DRIVES:
		ret = ops->put_drive(srv->ctx, &srv->scratch.drive, err);
		break;
	case RES_NET:
		ret = ops->put_net(srv->ctx, &srv->scratch.net, err);
		break;
	case RES_VSOCK:
		ret = ops->put_vsock(srv->ctx, &srv->scratch.vsock, err);
		break;
	case RES_ENTROPY:
		ret = ops->put_entropy(srv->ctx, &srv->scratch.entropy, err);
		break;
	default:
		break;
	}
	reply_op(srv, ret, err);
	if (ret == 0) {
		srv->phase = API_PHASE_CONFIGURING;
		record_config(srv, res);
	}
}

/* PUT /logger's effect (and --log-path's): the VMM's op, or the API's default. */
static int set_logger(struct api_server *srv, const struct api_logger *l, struct api_error *err)
{
	int ret =
	    srv->ops->put_logger ? srv->ops->put_logger(srv->ctx, l, err) : default_logger(l, err);

	if (ret == 0) {
		srv->logger = *l;
		srv->has_logger = true;
	}
	return ret;
}

/* PUT /metrics's effect (and --metrics-path's): once per process, as Firecracker. */
static int set_metrics(struct api_server *srv, const char *path, struct api_error *err)
{
	int fd;

	if (srv->metrics_fd >= 0) {
		api_error_set(err, "The metrics system is already configured.");
		return -EALREADY;
	}
	fd = api_open_output(path, err, "metrics");
	if (fd < 0)
		return fd;
	srv->metrics_fd = fd;
	snprintf(srv->metrics_path, sizeof(srv->metrics_path), "%s", path);
	/* Without the periodic flush metrics still work through FlushMetrics. */
	if (api_metrics_timer_start(srv) < 0)
		log_warn("api: periodic metrics flush not available");
	return 0;
}

int api_server_put_logger(struct api_server *srv, const struct api_logger *l, struct api_error *err)
{
	return set_logger(srv, l, err);
}

int api_server_put_metrics(struct api_server *srv, const char *path, struct api_error *err)
{
	return set_metrics(srv, path, err);
}

int api_log_level_parse(const char *name, enum api_log_level *out)
{
	for (int i = 0; log_level_names[i]; i++)
		if (!strcasecmp(log_level_names[i], name)) {
			*out = (enum api_log_level)i;
			return 0;
		}
	return -EINVAL;
}

/* PATCH of a started VM's drive or network interface. */
static void route_patch(struct api_server *srv, enum res res, const char *path, const char *id,
			json_object *o, struct api_error *err)
{
	const struct api_ops *ops = srv->ops;
	bool drive = res == RES_DRIVES;
	int ret;

	ret = drive ? parse_drive_patch(o, id, &srv->scratch.drive_patch, err)
		    : parse_net_patch(o, id, &srv->scratch.net_patch, err);
	if (ret < 0) {
		reply_fault(srv, 400, err->message);
		return;
	}
	if (!phase_allows(srv, NEED_STARTED))
		return;
	if (drive ? !ops->patch_drive : !ops->patch_net) {
		reply_unsupported(srv, HTTP_PATCH, path);
		return;
	}
	ret = drive ? ops->patch_drive(srv->ctx, &srv->scratch.drive_patch, err)
		    : ops->patch_net(srv->ctx, &srv->scratch.net_patch, err);
	reply_op(srv, ret, err);
}

static void route_body(struct api_server *srv, enum res res, enum http_method m, const char *path,
		       const char *id, json_object *o, struct api_error *err)
{
	const struct api_ops *ops = srv->ops;
	static const char *const metrics_known[] = {"metrics_path", NULL};
	char mpath[API_PATH_LEN];
	uint64_t t0;
	int ret;

	switch (res) {
	case RES_ACTIONS:
		route_actions(srv, o, err);
		return;
	case RES_VM:
		route_vm(srv, o, err);
		return;
	case RES_SNAP_CREATE:
		if (parse_snapshot_create(o, &srv->scratch.screate, err) < 0) {
			reply_fault(srv, 400, err->message);
			return;
		}
		if (!phase_allows(srv, NEED_STARTED))
			return;
		if (!ops->snapshot_create) {
			reply_unsupported(srv, m, path);
			return;
		}
		t0 = now_ns();
		ret = ops->snapshot_create(srv->ctx, &srv->scratch.screate, err);
		srv->cnt.last_create_snapshot_us = (now_ns() - t0) / 1000;
		srv->cnt.last_create_was_diff =
		    srv->scratch.screate.snapshot_type == API_SNAPSHOT_DIFF;
		reply_op(srv, ret, err);
		return;
	case RES_SNAP_LOAD:
		if (parse_snapshot_load(o, &srv->scratch.sload, err) < 0) {
			reply_fault(srv, 400, err->message);
			return;
		}
		if (!phase_allows(srv, NEED_FRESH))
			return;
		if (!ops->snapshot_load) {
			reply_unsupported(srv, m, path);
			return;
		}
		ret = ops->snapshot_load(srv->ctx, &srv->scratch.sload, err);
		reply_op(srv, ret, err);
		if (ret == 0) {
			srv->phase = API_PHASE_STARTED;
			srv->paused = !srv->scratch.sload.resume_vm;
			srv->loaded = true;
		} else if (!err->keep_state) {
			enter_failed(srv, "Snapshot load", err);
		}
		return;
	case RES_LOGGER:
		if (parse_logger(o, &srv->scratch.logger, err) < 0) {
			reply_fault(srv, 400, err->message);
			return;
		}
		reply_op(srv, set_logger(srv, &srv->scratch.logger, err), err);
		return;
	case RES_METRICS:
		if (j_known(o, "metrics", metrics_known, err) < 0 ||
		    j_str(o, "", "metrics_path", mpath, sizeof(mpath), true, err) < 0) {
			reply_fault(srv, 400, err->message);
			return;
		}
		reply_op(srv, set_metrics(srv, mpath, err), err);
		return;
	case RES_MMDS:
		route_mmds(srv, m, o, err);
		return;
	case RES_MMDS_CONFIG:
		route_mmds_config(srv, o, err);
		return;
	case RES_CPU_CONFIG:
		if (parse_cpu_config(o, &srv->scratch.cpu_config, err) < 0) {
			reply_fault(srv, 400, err->message);
			return;
		}
		if (!phase_allows(srv, NEED_PREBOOT))
			return;
		if (!ops->put_cpu_config) {
			reply_unsupported(srv, m, path);
			return;
		}
		ret = ops->put_cpu_config(srv->ctx, &srv->scratch.cpu_config, err);
		reply_op(srv, ret, err);
		if (ret == 0)
			srv->phase = API_PHASE_CONFIGURING;
		return;
	case RES_DRIVES:
	case RES_NET:
		if (m == HTTP_PATCH) {
			route_patch(srv, res, path, id, o, err);
			return;
		}
		route_config(srv, res, m, path, id, o, err);
		return;
	default:
		route_config(srv, res, m, path, id, o, err);
		return;
	}
}

void api_state_init(struct api_server *srv)
{
	srv->phase = API_PHASE_FRESH;
	srv->boot_source_set = false;
	srv->paused = false;
	/* The two strings far into the struct are written only when set: on a fresh
	 * server their pages stay untouched (issue 17). */
	if (srv->failed_reason[0])
		srv->failed_reason[0] = '\0';
	memset(&srv->mcfg, 0, sizeof(srv->mcfg));
	srv->mcfg.vcpu_count = 1;
	srv->mcfg.mem_size_mib = 128;
	srv->loaded = false;
	srv->has_logger = false;
	if (srv->metrics_path[0])
		srv->metrics_path[0] = '\0';
	/* Its counts and flags only: the arrays are most of its 150 KiB, written whole
	 * entry by entry (record_config), and zeroing them would make each idle clone hold
	 * them as dirty memory (issue 17). */
	if (srv->vmcfg) {
		srv->vmcfg->has_boot_source = srv->vmcfg->has_vsock = false;
		srv->vmcfg->has_entropy = false;
		srv->vmcfg->n_drives = srv->vmcfg->n_nets = 0;
	}
}

static bool method_ok(enum res res, enum http_method m)
{
	switch (res) {
	case RES_ROOT:
	case RES_VERSION:
	case RES_VM_CONFIG:
		return m == HTTP_GET;
	case RES_MACHINE_CONFIG:
		return m == HTTP_GET || m == HTTP_PUT || m == HTTP_PATCH;
	case RES_VM:
		return m == HTTP_PATCH;
	case RES_DRIVES:
	case RES_NET:
		return m == HTTP_PUT || m == HTTP_PATCH;
	case RES_MMDS:
		return m == HTTP_GET || m == HTTP_PUT || m == HTTP_PATCH;
	case RES_NONE:
		return false;
	default:
		return m == HTTP_PUT;
	}
}

/* Firecracker's endpoints thaw does not offer (docs/api.md, compatibility table): a clear
 * refusal naming the feature, not "invalid path". Prefix match on `path` ("/balloon"
 * covers /balloon/statistics and /balloon/hinting/...). */
static bool route_unoffered(struct api_server *srv, enum http_method m, const char *path)
{
	static const struct {
		const char *prefix;
		const char *feature;
	} table[] = {
	    {"/balloon", "the balloon device is not offered by thaw"},
	    {"/pmem/", "virtio-pmem devices are not offered by thaw"},
	    {"/serial", "serial reconfiguration is not offered by thaw: its console is given on "
			"the command line (--console-out, --console-in)"},
	    {"/hotplug/memory", "memory hotplug (virtio-mem) is not offered by thaw"},
	};
	char esc[256];

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		size_t n = strlen(table[i].prefix);

		if (strncmp(path, table[i].prefix, n) ||
		    (path[n] && path[n] != '/' && table[i].prefix[n - 1] != '/'))
			continue;
		json_escape(esc, sizeof(esc), path);
		reply_faultf(srv, 400, "%s %s: %s.", method_name(m), esc, table[i].feature);
		return true;
	}
	return false;
}

/* Routes one request; returns the resource it named (RES_NONE when none). */
static enum res route_request(struct api_server *srv, enum http_method method, const char *url,
			      size_t url_len, const char *body, size_t body_len)
{
	struct http_parser_url u;
	struct api_error err;
	char path[API_MAX_URL_BYTES + 1];
	char id[API_ID_LEN];
	const char *idp = NULL;
	size_t plen, id_len = 0;
	enum res res = RES_NONE;
	json_object *o;
	uint64_t t0 = now_ns();

	srv->cnt.requests++;
	memset(&err, 0, sizeof(err));
	err.status = 400;

	http_parser_url_init(&u);
	if (http_parser_parse_url(url, url_len, 0, &u) || !(u.field_set & (1 << UF_PATH))) {
		reply_fault(srv, 400, "Invalid request URL.");
		return res;
	}
	plen = u.field_data[UF_PATH].len;
	memcpy(path, url + u.field_data[UF_PATH].off, plen);
	path[plen] = '\0';
	if (strlen(path) != plen) {
		reply_fault(srv, 400, "Invalid request URL.");
		return res;
	}

	res = match_path(path, plen, &idp, &id_len);
	if (res == RES_NONE && route_unoffered(srv, method, path))
		return res;
	if (!method_ok(res, method)) {
		char esc[256];

		json_escape(esc, sizeof(esc), path);
		reply_faultf(srv, 400, "Invalid request method and/or path: %s %s.",
			     method_name(method), esc);
		return res;
	}
	if (idp) {
		if (id_len >= sizeof(id)) {
			reply_faultf(srv, 400, "Invalid %s id: must be 1 to %d characters long.",
				     res == RES_DRIVES ? "drive" : "interface", API_ID_LEN - 1);
			return res;
		}
		memcpy(id, idp, id_len);
		id[id_len] = '\0';
		if (check_id(
			id, res == RES_DRIVES ? "drive id in the path" : "interface id in the path",
			&err)) {
			reply_fault(srv, 400, err.message);
			return res;
		}
	}

	if (method == HTTP_GET) {
		if (body_len) {
			/* Firecracker refuses these too: a body would be silently ignored. */
			reply_fault(srv, 400, "A GET request takes no body.");
			return res;
		}
		if (res == RES_ROOT) {
			reply_root(srv);
		} else if (res == RES_VERSION) {
			reply_version(srv);
		} else if (res == RES_VM_CONFIG) {
			reply_vm_config(srv, &err);
		} else if (res == RES_MMDS) {
			reply_mmds(srv);
		} else {
			struct api_machine_config c;
			int ret = current_mcfg(srv, &c, &err);

			if (ret)
				reply_op(srv, ret, &err);
			else
				reply_machine_config(srv, &c);
		}
		return res;
	}

	o = parse_body(srv, body, body_len);
	if (!o)
		return res;
	route_body(srv, res, method, path, idp ? id : NULL, o, &err);
	json_object_put(o);
	if (res == RES_SNAP_LOAD)
		srv->cnt.last_load_snapshot_us = (now_ns() - t0) / 1000;
	return res;
}

/* Firecracker's per-resource counter for a request, or RM_COUNT for none. */
static enum api_req_metric req_metric(enum res res, enum http_method m)
{
	if (m == HTTP_GET)
		return res == RES_ROOT		   ? RM_GET_INSTANCE_INFO
		       : res == RES_MMDS	   ? RM_GET_MMDS
		       : res == RES_MACHINE_CONFIG ? RM_GET_MACHINE_CFG
		       : res == RES_VERSION	   ? RM_GET_VMM_VERSION
		       : res == RES_VM_CONFIG	   ? RM_GET_VM_CONFIG
						   : RM_COUNT;
	if (m == HTTP_PATCH)
		return res == RES_DRIVES	   ? RM_PATCH_DRIVE
		       : res == RES_MMDS	   ? RM_PATCH_MMDS
		       : res == RES_NET		   ? RM_PATCH_NETWORK
		       : res == RES_MACHINE_CONFIG ? RM_PATCH_MACHINE_CFG
		       : res == RES_VM		   ? RM_PATCH_VM
						   : RM_COUNT;
	if (m != HTTP_PUT)
		return RM_COUNT;
	switch (res) {
	case RES_ACTIONS:
		return RM_PUT_ACTIONS;
	case RES_BOOT_SOURCE:
		return RM_PUT_BOOT_SOURCE;
	case RES_DRIVES:
		return RM_PUT_DRIVE;
	case RES_LOGGER:
		return RM_PUT_LOGGER;
	case RES_MACHINE_CONFIG:
		return RM_PUT_MACHINE_CFG;
	case RES_METRICS:
		return RM_PUT_METRICS;
	case RES_NET:
		return RM_PUT_NETWORK;
	case RES_VSOCK:
		return RM_PUT_VSOCK;
	case RES_ENTROPY:
		return RM_PUT_ENTROPY;
	case RES_SNAP_CREATE:
		return RM_PUT_SNAPSHOT_CREATE;
	case RES_SNAP_LOAD:
		return RM_PUT_SNAPSHOT_LOAD;
	case RES_MMDS:
	case RES_MMDS_CONFIG:
		return RM_PUT_MMDS;
	default:
		return RM_COUNT;
	}
}

void api_route(struct api_server *srv, enum http_method method, const char *url, size_t url_len,
	       const char *body, size_t body_len)
{
	enum res res;
	enum api_req_metric m;

	srv->reply.big = NULL;
	res = route_request(srv, method, url, url_len, body, body_len);
	m = req_metric(res, method);
	if (m == RM_COUNT)
		return;
	srv->cnt.req_count[m].cur++;
	if (srv->reply.status >= 400)
		srv->cnt.req_fails[m].cur++;
}

/* ---- Firecracker's --config-file ---------------------------------------------------------- */

/* The fault message of the reply just made, into err (the reply's JSON decoded). */
static void reply_message(struct api_server *srv, char *err, size_t errlen)
{
	json_object *o = NULL, *m;

	if (srv->reply.len < sizeof(srv->reply.body)) {
		srv->reply.body[srv->reply.len] = '\0';
		o = json_tokener_parse(srv->reply.body);
	}
	if (o && json_object_object_get_ex(o, "fault_message", &m))
		snprintf(err, errlen, "%s", json_object_get_string(m));
	else
		snprintf(err, errlen, "status %d", srv->reply.status);
	json_object_put(o);
}

/* One member of the file as its PUT: 0, or -EINVAL with err naming the member. */
static int apply_member(struct api_server *srv, enum res res, const char *what, const char *path,
			const char *id, json_object *o, char *err, size_t errlen)
{
	struct api_error e;
	char msg[600];

	memset(&e, 0, sizeof(e));
	e.status = 400;
	srv->reply.big = NULL;
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "%s: must be an object, got %s", what, jtype_name(o));
		return -EINVAL;
	}
	route_body(srv, res, HTTP_PUT, path, id, o, &e);
	free(srv->reply.big);
	srv->reply.big = NULL;
	if (srv->reply.status < 400)
		return 0;
	reply_message(srv, msg, sizeof(msg));
	snprintf(err, errlen, "%s: %s", what, msg);
	return -EINVAL;
}

/* "drives" or "network-interfaces": an array of objects, each PUT under its own id. */
static int apply_array(struct api_server *srv, json_object *root, const char *key, enum res res,
		       const char *idkey, char *err, size_t errlen)
{
	json_object *arr = j_get(root, key), *it, *idv;
	char what[80], path[API_ID_LEN + 32], id[API_ID_LEN];
	size_t n;

	if (!arr)
		return 0;
	if (!json_object_is_type(arr, json_type_array)) {
		snprintf(err, errlen, "%s: must be an array, got %s", key, jtype_name(arr));
		return -EINVAL;
	}
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		it = json_object_array_get_idx(arr, i);
		snprintf(what, sizeof(what), "%s[%zu]", key, i);
		id[0] = '\0';
		/* The body's id stands for the path's; parsing checks it like any id. */
		if (it && json_object_is_type(it, json_type_object) &&
		    json_object_object_get_ex(it, idkey, &idv) &&
		    json_object_is_type(idv, json_type_string))
			snprintf(id, sizeof(id), "%s", json_object_get_string(idv));
		snprintf(path, sizeof(path), "/%s/%s", key, id);
		if (apply_member(srv, res, what, path, id, it, err, errlen))
			return -EINVAL;
	}
	return 0;
}

int api_server_apply_config(struct api_server *srv, const char *json, size_t len, char *err,
			    size_t errlen)
{
	static const char *const known[] = {
	    "boot-source", "drives",	 "machine-config", "network-interfaces",
	    "vsock",	   "entropy",	 "logger",	   "metrics",
	    "balloon",	   "cpu-config", "mmds-config",	   NULL};
	static const struct {
		const char *key, *feature;
	} refused[] = {
	    {"balloon", "the balloon device is not offered by thaw"},
	    {"cpu-config", "custom CPU templates (cpu-config) are not supported by thaw yet"},
	};
	static const struct {
		const char *key, *path;
		enum res res;
	} single[] = {
	    {"logger", "/logger", RES_LOGGER},
	    {"metrics", "/metrics", RES_METRICS},
	    {"machine-config", "/machine-config", RES_MACHINE_CONFIG},
	    {"boot-source", "/boot-source", RES_BOOT_SOURCE},
	};
	enum json_tokener_error jerr;
	struct api_error e;
	json_object *root, *v, *start;
	int ret = -EINVAL;

	memset(&e, 0, sizeof(e));
	json_tokener_reset(srv->tok);
	root = len <= INT32_MAX ? json_tokener_parse_ex(srv->tok, json, (int)len) : NULL;
	jerr = json_tokener_get_error(srv->tok);
	if (!root || jerr != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		snprintf(err, errlen, "not one JSON object (%s at byte %zu)",
			 root ? "wrong type" : json_tokener_error_desc(jerr),
			 json_tokener_get_parse_end(srv->tok));
		json_object_put(root);
		return -EINVAL;
	}
	if (j_known(root, "the configuration file", known, &e) < 0) {
		snprintf(err, errlen, "%s", e.message);
		goto out;
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (j_get(root, refused[i].key)) {
			snprintf(err, errlen, "%s: %s", refused[i].key, refused[i].feature);
			goto out;
		}
	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
		v = j_get(root, single[i].key);
		if (v && apply_member(srv, single[i].res, single[i].key, single[i].path, NULL, v,
				      err, errlen))
			goto out;
	}
	if (apply_array(srv, root, "drives", RES_DRIVES, "drive_id", err, errlen) ||
	    apply_array(srv, root, "network-interfaces", RES_NET, "iface_id", err, errlen))
		goto out;
	v = j_get(root, "vsock");
	if (v && apply_member(srv, RES_VSOCK, "vsock", "/vsock", NULL, v, err, errlen))
		goto out;
	v = j_get(root, "entropy");
	if (v && apply_member(srv, RES_ENTROPY, "entropy", "/entropy", NULL, v, err, errlen))
		goto out;
	/* After the interfaces it names. */
	v = j_get(root, "mmds-config");
	if (v &&
	    apply_member(srv, RES_MMDS_CONFIG, "mmds-config", "/mmds/config", NULL, v, err, errlen))
		goto out;
	ret = 0;
	if (!j_get(root, "boot-source"))
		goto out;
	start = json_object_new_object();
	if (!start) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	json_object_object_add(start, "action_type", json_object_new_string("InstanceStart"));
	ret = apply_member(srv, RES_ACTIONS, "InstanceStart", "/actions", NULL, start, err, errlen);
	json_object_put(start);
out:
	json_object_put(root);
	return ret;
}
