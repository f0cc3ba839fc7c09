/* MMDS, Firecracker's microVM metadata service: the data store the API's /mmds resource
 * writes (PUT replaces, PATCH merges as RFC 7396 says) and the HTTP service a guest
 * reaches it through (V1: GET; V2: a session token from PUT /latest/api/token first),
 * answering in JSON or in the IMDS text format.
 *
 * The guest's side is untrusted: its request is parsed by http_parser from the bytes the
 * network stack hands over, every length is bounded, and what it gets back is bounded by
 * the store's own size limit. Nothing here knows about packets: the VMM's network
 * stack carries bytes to api_mmds_http and the answer back.
 */
#include "api/api.h"

#include <errno.h>
#include <http_parser.h>
#include <json-c/json.h>
#include <json-c/json_pointer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define MMDS_TOKENS	    64	  /* live V2 sessions; the oldest gives way */
#define MMDS_TOKEN_BYTES    32	  /* random bytes per token, hex-encoded on the wire */
#define MMDS_TTL_MAX	    21600 /* seconds, as Firecracker and IMDSv2 */
#define MMDS_PATH_MAX	    1024
#define MMDS_HEADER_VAL_MAX 128

struct mmds_token {
	char hex[2 * MMDS_TOKEN_BYTES + 1];
	uint64_t expires_ns; /* 0: free slot */
};

struct api_mmds {
	json_object *data; /* an object; {} until the first PUT */
	bool initialized;  /* a PUT has been made */
	size_t limit;	   /* bytes of the store, serialized */
	struct api_mmds_config cfg;
	struct mmds_token tokens[MMDS_TOKENS];
	uint64_t requests, rejected; /* guest requests, those answered 4xx/5xx */
};

int api_mmds_create(size_t limit, struct api_mmds **out)
{
	struct api_mmds *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->data = json_object_new_object();
	if (!m->data) {
		free(m);
		return -ENOMEM;
	}
	m->limit = limit ? limit : API_MMDS_DEFAULT_LIMIT;
	m->cfg.version = API_MMDS_V1;
	m->cfg.ipv4 = API_MMDS_DEFAULT_IPV4;
	*out = m;
	return 0;
}

void api_mmds_destroy(struct api_mmds *m)
{
	if (!m)
		return;
	json_object_put(m->data);
	free(m);
}

const struct api_mmds_config *api_mmds_get_config(const struct api_mmds *m)
{
	return &m->cfg;
}

void api_mmds_set_config(struct api_mmds *m, const struct api_mmds_config *cfg)
{
	m->cfg = *cfg;
	/* Tokens of a former configuration mean nothing to the new one. */
	memset(m->tokens, 0, sizeof(m->tokens));
}

/* ---------------------------------------------------------------- the store (the API's side) */

static size_t serialized_len(json_object *o)
{
	return strlen(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

static int check_size(const struct api_mmds *m, json_object *o, struct api_error *err)
{
	size_t n = serialized_len(o);

	if (n <= m->limit)
		return 0;
	api_error_set(err,
		      "The MMDS data store would hold %zu bytes, more than its limit of %zu "
		      "bytes.",
		      n, m->limit);
	return -EFBIG;
}

int api_mmds_put(struct api_mmds *m, json_object *o, struct api_error *err)
{
	if (!json_object_is_type(o, json_type_object)) {
		api_error_set(err, "The MMDS data must be a JSON object.");
		return -EINVAL;
	}
	if (check_size(m, o, err))
		return -EFBIG;
	json_object_put(m->data);
	m->data = json_object_get(o);
	m->initialized = true;
	return 0;
}

/* RFC 7396: `patch` merged into `*target` (which may be replaced). Depth is bounded by
 * the JSON parser's own (32 levels by default). */
static int merge_patch(json_object **target, json_object *patch)
{
	if (!json_object_is_type(patch, json_type_object)) {
		json_object *copy = NULL;

		if (json_object_deep_copy(patch, &copy, NULL) < 0)
			return -ENOMEM;
		json_object_put(*target);
		*target = copy;
		return 0;
	}
	if (!*target || !json_object_is_type(*target, json_type_object)) {
		json_object_put(*target);
		*target = json_object_new_object();
		if (!*target)
			return -ENOMEM;
	}
	json_object_object_foreach(patch, key, value)
	{
		json_object *cur;

		if (!value || json_object_is_type(value, json_type_null)) {
			json_object_object_del(*target, key);
			continue;
		}
		cur = json_object_object_get(*target, key);
		json_object_get(cur); /* keep it while the key is replaced */
		if (merge_patch(&cur, value) < 0) {
			json_object_put(cur);
			return -ENOMEM;
		}
		if (json_object_object_add(*target, key, cur) < 0) {
			json_object_put(cur);
			return -ENOMEM;
		}
	}
	return 0;
}

int api_mmds_patch(struct api_mmds *m, json_object *patch, struct api_error *err)
{
	json_object *next = NULL;
	int ret;

	if (!json_object_is_type(patch, json_type_object)) {
		api_error_set(err, "The MMDS patch must be a JSON object.");
		return -EINVAL;
	}
	/* Patch a copy: a patch that fails or grows the store past its limit changes nothing. */
	ret = json_object_deep_copy(m->data, &next, NULL) < 0 ? -ENOMEM : merge_patch(&next, patch);
	if (!ret)
		ret = check_size(m, next, err);
	else
		api_error_set(err, "out of memory");
	if (ret) {
		json_object_put(next);
		return ret;
	}
	json_object_put(m->data);
	m->data = next;
	m->initialized = true;
	return 0;
}

json_object *api_mmds_get(const struct api_mmds *m)
{
	return m->data;
}

/* ---------------------------------------------------------------- the guest's side */

/* One guest request as http_parser delivers it. */
struct mmds_req {
	enum http_method method;
	char path[MMDS_PATH_MAX + 1];
	size_t path_len;
	bool too_long;
	bool complete;
	/* The header being read, and what we keep of the ones we know. */
	char hname[40];
	size_t hname_len;
	bool in_value;
	int hcur; /* index into hvals of the header being read, -1: not one we keep */
	char hvals[5][MMDS_HEADER_VAL_MAX + 1];
	size_t hval_len[5];
	bool hseen[5];
};

enum { H_ACCEPT, H_TOKEN, H_TTL, H_FORWARDED, H_NONE };

static const char *const header_names[][2] = {
    [H_ACCEPT] = {"accept", NULL},
    [H_TOKEN] = {"x-metadata-token", "x-aws-ec2-metadata-token"},
    [H_TTL] = {"x-metadata-token-ttl-seconds", "x-aws-ec2-metadata-token-ttl-seconds"},
    [H_FORWARDED] = {"x-forwarded-for", NULL},
};

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct mmds_req *r = p->data;

	if (len > MMDS_PATH_MAX - r->path_len) {
		r->too_long = true;
		return 0;
	}
	memcpy(r->path + r->path_len, at, len);
	r->path_len += len;
	r->path[r->path_len] = '\0';
	return 0;
}

static void header_done(struct mmds_req *r)
{
	r->hcur = H_NONE;
	for (int i = 0; i < H_NONE; i++)
		for (int k = 0; k < 2; k++)
			if (header_names[i][k] && strlen(header_names[i][k]) == r->hname_len &&
			    strncasecmp(r->hname, header_names[i][k], r->hname_len) == 0)
				r->hcur = i;
	if (r->hcur != H_NONE) {
		r->hseen[r->hcur] = true;
		r->hval_len[r->hcur] = 0;
		r->hvals[r->hcur][0] = '\0';
	}
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct mmds_req *r = p->data;

	if (r->in_value) {
		r->in_value = false;
		r->hname_len = 0;
	}
	/* Longer than any name we know: it is none of them. */
	if (len > sizeof(r->hname) - r->hname_len)
		r->hname_len = sizeof(r->hname);
	else {
		memcpy(r->hname + r->hname_len, at, len);
		r->hname_len += len;
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct mmds_req *r = p->data;
	size_t *n;

	if (!r->in_value) {
		r->in_value = true;
		header_done(r);
	}
	if (r->hcur == H_NONE)
		return 0;
	n = &r->hval_len[r->hcur];
	if (len > MMDS_HEADER_VAL_MAX - *n)
		len = MMDS_HEADER_VAL_MAX - *n; /* a longer value is no token and no number */
	memcpy(r->hvals[r->hcur] + *n, at, len);
	*n += len;
	r->hvals[r->hcur][*n] = '\0';
	return 0;
}

static int on_complete(http_parser *p)
{
	struct mmds_req *r = p->data;

	r->complete = true;
	http_parser_pause(p, 1); /* one request per call */
	return 0;
}

static bool token_valid(struct api_mmds *m, const char *hex, uint64_t now_ns)
{
	for (unsigned i = 0; i < MMDS_TOKENS; i++) {
		struct mmds_token *t = &m->tokens[i];

		if (!t->expires_ns)
			continue;
		if (t->expires_ns <= now_ns) {
			t->expires_ns = 0;
			continue;
		}
		if (strcmp(t->hex, hex) == 0)
			return true;
	}
	return false;
}

static int token_new(struct api_mmds *m, uint64_t ttl_s, uint64_t now_ns, char *hex)
{
	uint8_t raw[MMDS_TOKEN_BYTES];
	struct mmds_token *slot = &m->tokens[0];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (unsigned i = 0; i < MMDS_TOKENS; i++) {
		struct mmds_token *t = &m->tokens[i];

		if (!t->expires_ns || t->expires_ns <= now_ns) {
			slot = t;
			break;
		}
		if (t->expires_ns < slot->expires_ns)
			slot = t; /* all taken: the one that ends first gives way */
	}
	for (unsigned i = 0; i < sizeof(raw); i++)
		snprintf(slot->hex + 2 * i, 3, "%02x", raw[i]);
	slot->expires_ns = now_ns + ttl_s * 1000000000ull;
	memcpy(hex, slot->hex, sizeof(slot->hex));
	return 0;
}

struct resp {
	int status;
	const char *reason;
	const char *ctype;
	const char *allow; /* for 405 */
	char *body;	   /* owned */
	size_t len;
};

static void resp_text(struct resp *rs, int status, const char *reason, const char *text)
{
	rs->status = status;
	rs->reason = reason;
	rs->ctype = "text/plain";
	free(rs->body);
	rs->body = strdup(text);
	rs->len = rs->body ? strlen(rs->body) : 0;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lists an object's keys, one per line in byte order (as Firecracker's store, a sorted
 * map, lists them), objects with a '/' (IMDS). */
static char *imds_keys(json_object *o)
{
	size_t nkeys = (size_t)json_object_object_length(o), cap = 1, len = 0, i = 0;
	const char **keys = calloc(nkeys ? nkeys : 1, sizeof(*keys));
	char *s = NULL;

	if (!keys)
		return NULL;
	json_object_object_foreach(o, k0, v0)
	{
		(void)v0;
		keys[i++] = k0;
		cap += strlen(k0) + 2;
	}
	qsort(keys, nkeys, sizeof(*keys), cmp_key);
	s = malloc(cap);
	if (s) {
		s[0] = '\0';
		for (i = 0; i < nkeys; i++)
			len +=
			    (size_t)snprintf(s + len, cap - len, "%s%s%s", i ? "\n" : "", keys[i],
					     json_object_is_type(json_object_object_get(o, keys[i]),
								 json_type_object)
						 ? "/"
						 : "");
	}
	free(keys);
	return s;
}

/* GET of `path` (the URL's path, query already cut): the value at that JSON pointer. */
static void get_value(struct api_mmds *m, const char *path, bool want_json, struct resp *rs)
{
	char ptr[MMDS_PATH_MAX + 1];
	size_t n = strlen(path);
	json_object *v = NULL;

	/* "/a/b/" names the same as "/a/b"; "/" the whole store ("" as a pointer). */
	while (n > 0 && path[n - 1] == '/')
		n--;
	memcpy(ptr, path, n);
	ptr[n] = '\0';
	if (!m->initialized || json_pointer_get(m->data, ptr, &v) < 0 || !v) {
		resp_text(rs, 404, "Not Found", "Resource not found.");
		return;
	}
	if (want_json && !m->cfg.imds_compat) {
		rs->status = 200;
		rs->reason = "OK";
		rs->ctype = "application/json";
		rs->body = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	} else if (json_object_is_type(v, json_type_object)) {
		rs->status = 200;
		rs->reason = "OK";
		rs->ctype = "text/plain";
		rs->body = imds_keys(v);
	} else if (json_object_is_type(v, json_type_string)) {
		rs->status = 200;
		rs->reason = "OK";
		rs->ctype = "text/plain";
		rs->body = strdup(json_object_get_string(v));
	} else {
		resp_text(rs, 501, "Not Implemented",
			  "Cannot retrieve value. The value has an unsupported type for the "
			  "IMDS format (only strings and objects are).");
		return;
	}
	if (!rs->body)
		resp_text(rs, 500, "Internal Server Error", "out of memory");
	else
		rs->len = strlen(rs->body);
}

static void answer(struct api_mmds *m, struct mmds_req *r, uint64_t now_ns, struct resp *rs)
{
	char path[MMDS_PATH_MAX + 1], *q;
	bool json;

	if (r->too_long) {
		resp_text(rs, 414, "URI Too Long", "The request's path is too long.");
		return;
	}
	snprintf(path, sizeof(path), "%s", r->path);
	q = strpbrk(path, "?#");
	if (q)
		*q = '\0';
	if (path[0] != '/') {
		resp_text(rs, 400, "Bad Request", "The request's path must be absolute.");
		return;
	}
	if (r->method == HTTP_PUT) {
		char *end;
		unsigned long long ttl;
		char hex[2 * MMDS_TOKEN_BYTES + 1];

		if (strcmp(path, "/latest/api/token") != 0) {
			resp_text(rs, 405, "Method Not Allowed", "PUT only makes session tokens.");
			rs->allow = "GET";
			return;
		}
		if (r->hseen[H_FORWARDED]) {
			resp_text(rs, 400, "Bad Request",
				  "A token request must not carry X-Forwarded-For.");
			return;
		}
		if (!r->hseen[H_TTL]) {
			resp_text(rs, 400, "Bad Request",
				  "Token time to live value not found. Use "
				  "X-metadata-token-ttl-seconds.");
			return;
		}
		ttl = strtoull(r->hvals[H_TTL], &end, 10);
		if (!r->hvals[H_TTL][0] || *end || ttl < 1 || ttl > MMDS_TTL_MAX) {
			resp_text(rs, 400, "Bad Request",
				  "Invalid time to live value: it must be 1 to 21600 seconds.");
			return;
		}
		if (token_new(m, ttl, now_ns, hex)) {
			resp_text(rs, 500, "Internal Server Error", "no randomness for a token");
			return;
		}
		resp_text(rs, 200, "OK", hex);
		return;
	}
	if (r->method != HTTP_GET) {
		resp_text(rs, 405, "Method Not Allowed", "Only GET and PUT are allowed.");
		rs->allow = "GET, PUT";
		return;
	}
	/* V1 answers with or without a token (an invalid one too), as Firecracker does. */
	if (m->cfg.version == API_MMDS_V2 &&
	    (!r->hseen[H_TOKEN] || !token_valid(m, r->hvals[H_TOKEN], now_ns))) {
		resp_text(rs, 401, "Unauthorized",
			  r->hseen[H_TOKEN] ? "The session token is invalid or expired."
					    : "No MMDS token provided. Use X-metadata-token.");
		return;
	}
	json = r->hseen[H_ACCEPT] && strstr(r->hvals[H_ACCEPT], "application/json");
	get_value(m, path, json, rs);
}

ssize_t api_mmds_http(struct api_mmds *m, const char *in, size_t in_len, uint64_t now_ns,
		      char **out, size_t *out_len)
{
	static const http_parser_settings settings = {
	    .on_url = on_url,
	    .on_header_field = on_header_field,
	    .on_header_value = on_header_value,
	    .on_message_complete = on_complete,
	};
	struct mmds_req *r = calloc(1, sizeof(*r));
	struct resp rs = {0};
	http_parser p;
	size_t used, cap;
	char *buf;

	*out = NULL;
	*out_len = 0;
	if (!r)
		return -ENOMEM;
	r->hcur = H_NONE;
	http_parser_init(&p, HTTP_REQUEST);
	p.data = r;
	used = http_parser_execute(&p, &settings, in, in_len);
	if (!r->complete) {
		enum http_errno e = HTTP_PARSER_ERRNO(&p);

		free(r);
		if (e == HPE_OK)
			return 0; /* more bytes needed */
		m->requests++;
		m->rejected++;
		resp_text(&rs, 400, "Bad Request", http_errno_description(e));
		used = in_len; /* nothing after garbage is a request */
	} else {
		r->method = (enum http_method)p.method;
		m->requests++;
		answer(m, r, now_ns, &rs);
		free(r);
		if (rs.status >= 400)
			m->rejected++;
	}
	cap = rs.len + 256;
	buf = malloc(cap);
	if (!buf) {
		free(rs.body);
		return -ENOMEM;
	}
	*out_len =
	    (size_t)snprintf(buf, cap,
			     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			     "%s%s%s\r\n",
			     rs.status, rs.reason, rs.ctype, rs.len, rs.allow ? "Allow: " : "",
			     rs.allow ? rs.allow : "", rs.allow ? "\r\n" : "");
	if (rs.len)
		memcpy(buf + *out_len, rs.body, rs.len);
	*out_len += rs.len;
	free(rs.body);
	*out = buf;
	return (ssize_t)used;
}

void api_mmds_counts(const struct api_mmds *m, uint64_t *requests, uint64_t *rejected)
{
	*requests = m->requests;
	*rejected = m->rejected;
}
