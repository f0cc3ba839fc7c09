/* MMDS: the store (PUT replaces, PATCH merges as RFC 7396, the size limit, nothing half
 * changed) and the guest's HTTP service (V1 and V2 sessions, JSON and IMDS formats, what
 * a hostile guest sends). No network: requests go in as the bytes a TCP stream carries. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api.h"

#include <json-c/json.h>

#define SEC 1000000000ull

static const char store[] =
    "{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-87654321\", \"reservation-id\": "
    "\"r-79054aef\", \"count\": 3, \"net\": {\"mac\": \"06:00:ac:10:00:02\"}}}}";

/* PUT and PATCH of JSON text, as the API hands them over once parsed; text that is no
 * JSON never gets this far (the API refuses it). */
static int put(struct api_mmds *m, const char *json, struct api_error *err)
{
	json_object *o = json_tokener_parse(json);
	int ret;

	assert_non_null(o);
	ret = api_mmds_put(m, o, err);
	json_object_put(o);
	return ret;
}

static int patch(struct api_mmds *m, const char *json, struct api_error *err)
{
	json_object *o = json_tokener_parse(json);
	int ret;

	assert_non_null(o);
	ret = api_mmds_patch(m, o, err);
	json_object_put(o);
	return ret;
}

static char *get(struct api_mmds *m)
{
	return strdup(json_object_to_json_string_ext(api_mmds_get(m), JSON_C_TO_STRING_PLAIN));
}

static struct api_mmds *new_store(size_t limit)
{
	struct api_mmds *m;
	struct api_error err = {0};

	assert_int_equal(api_mmds_create(limit, &m), 0);
	if (limit == 0)
		assert_int_equal(put(m, store, &err), 0);
	return m;
}

/* One request; the response's status, and its body in `body`. */
static int req(struct api_mmds *m, const char *request, uint64_t now, char *body, size_t cap)
{
	char *out, *b;
	size_t n;
	int status = -1;
	ssize_t used = api_mmds_http(m, request, strlen(request), now, &out, &n);

	assert_int_equal(used, (ssize_t)strlen(request));
	assert_non_null(out);
	assert_int_equal(sscanf(out, "HTTP/1.1 %d", &status), 1);
	b = strstr(out, "\r\n\r\n");
	assert_non_null(b);
	b += 4;
	snprintf(body, cap, "%.*s", (int)(n - (size_t)(b - out)), b);
	free(out);
	return status;
}

static void put_replaces_and_get_returns_the_store(void **state)
{
	struct api_mmds *m = new_store(0);
	struct api_error err = {0};
	char *s;

	s = get(m);
	assert_non_null(strstr(s, "\"ami-id\":\"ami-87654321\""));
	free(s);
	assert_int_equal(put(m, "{\"a\": 1}", &err), 0);
	s = get(m);
	assert_string_equal(s, "{\"a\":1}");
	free(s);
	api_mmds_destroy(m);
}

static void patch_merges_as_rfc7396_says(void **state)
{
	struct api_mmds *m = new_store(1000);
	struct api_error err = {0};
	const char *base = "{\"a\": \"b\", \"c\": {\"d\": \"e\", \"f\": \"g\"}, \"l\": [1, 2]}";
	const char *p = "{\"a\": \"z\", \"c\": {\"f\": null, \"h\": {\"i\": 1}}, \"l\": [3], "
			"\"n\": null}";
	char *s;

	assert_int_equal(put(m, base, &err), 0);
	assert_int_equal(patch(m, p, &err), 0);
	s = get(m);
	/* Members replaced, removed by null, objects merged, arrays replaced whole. */
	assert_string_equal(s, "{\"a\":\"z\",\"c\":{\"d\":\"e\",\"h\":{\"i\":1}},\"l\":[3]}");
	free(s);
	api_mmds_destroy(m);
}

static void bad_data_and_the_limit_change_nothing(void **state)
{
	struct api_mmds *m = new_store(64);
	struct api_error err = {0};
	char big[200], *s;

	assert_int_equal(put(m, "{\"k\": \"v\"}", &err), 0);
	assert_int_equal(put(m, "[1, 2]", &err), -EINVAL);
	assert_non_null(strstr(err.message, "JSON object"));
	snprintf(big, sizeof(big), "{\"k\": \"%0100d\"}", 0);
	assert_int_equal(put(m, big, &err), -EFBIG);
	assert_non_null(strstr(err.message, "limit of 64 bytes"));
	assert_int_equal(patch(m, big, &err), -EFBIG);
	assert_int_equal(patch(m, "\"str\"", &err), -EINVAL);
	s = get(m);
	assert_string_equal(s, "{\"k\":\"v\"}");
	free(s);
	api_mmds_destroy(m);
}

static void v1_answers_imds_text_and_json(void **state)
{
	struct api_mmds *m = new_store(0);
	char body[512];

	assert_int_equal(req(m, "GET /latest HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)), 200);
	assert_string_equal(body, "meta-data/");
	assert_int_equal(req(m, "GET /latest/meta-data/ HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)),
			 200);
	assert_string_equal(body, "ami-id\ncount\nnet/\nreservation-id");
	assert_int_equal(req(m, "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n", SEC,
			     body, sizeof(body)),
			 200);
	assert_string_equal(body, "ami-87654321");
	assert_int_equal(
	    req(m, "GET /latest/meta-data/net HTTP/1.1\r\nAccept: application/json\r\n\r\n", SEC,
		body, sizeof(body)),
	    200);
	assert_string_equal(body, "{\"mac\":\"06:00:ac:10:00:02\"}");
	/* A number has no IMDS form; in JSON it has. */
	assert_int_equal(
	    req(m, "GET /latest/meta-data/count HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)), 501);
	assert_int_equal(
	    req(m, "GET /latest/meta-data/count HTTP/1.1\r\naccept: application/json\r\n\r\n", SEC,
		body, sizeof(body)),
	    200);
	assert_string_equal(body, "3");
	assert_int_equal(req(m, "GET /latest/nothing HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)),
			 404);
	assert_int_equal(
	    req(m, "POST /latest HTTP/1.1\r\nContent-Length: 0\r\n\r\n", SEC, body, sizeof(body)),
	    405);
	api_mmds_destroy(m);
}

static void imds_compat_ignores_accept(void **state)
{
	struct api_mmds *m = new_store(0);
	struct api_mmds_config c = *api_mmds_get_config(m);
	char body[512];

	c.imds_compat = true;
	api_mmds_set_config(m, &c);
	assert_int_equal(req(m, "GET /latest HTTP/1.1\r\nAccept: application/json\r\n\r\n", SEC,
			     body, sizeof(body)),
			 200);
	assert_string_equal(body, "meta-data/");
	api_mmds_destroy(m);
}

static void v2_needs_a_live_session_token(void **state)
{
	struct api_mmds *m = new_store(0);
	struct api_mmds_config c = *api_mmds_get_config(m);
	char body[512], token[128], get[512];

	c.version = API_MMDS_V2;
	api_mmds_set_config(m, &c);
	assert_int_equal(req(m, "GET /latest HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)), 401);
	assert_int_equal(req(m, "PUT /latest/api/token HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)),
			 400);
	assert_non_null(strstr(body, "time to live"));
	assert_int_equal(
	    req(m, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 0\r\n\r\n", SEC,
		body, sizeof(body)),
	    400);
	assert_int_equal(
	    req(m,
		"PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n"
		"X-Forwarded-For: 10.0.0.1\r\n\r\n",
		SEC, body, sizeof(body)),
	    400);
	assert_int_equal(req(m,
			     "PUT /latest/api/token HTTP/1.1\r\n"
			     "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n",
			     SEC, token, sizeof(token)),
			 200);
	assert_int_equal(strlen(token), 64);
	snprintf(get, sizeof(get),
		 "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", token);
	assert_int_equal(req(m, get, 2 * SEC, body, sizeof(body)), 200);
	assert_string_equal(body, "ami-87654321");
	/* 60 s later the token is gone. */
	assert_int_equal(req(m, get, 62 * SEC, body, sizeof(body)), 401);
	assert_int_equal(req(m, "GET /latest HTTP/1.1\r\nX-metadata-token: 0000\r\n\r\n", 2 * SEC,
			     body, sizeof(body)),
			 401);
	api_mmds_destroy(m);
}

static void v1_takes_a_session_token_too_and_ignores_a_bad_one(void **state)
{
	struct api_mmds *m = new_store(0);
	char body[512];

	assert_int_equal(
	    req(m, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 5\r\n\r\n", SEC,
		body, sizeof(body)),
	    200);
	assert_int_equal(req(m, "GET /latest HTTP/1.1\r\nX-metadata-token: bad\r\n\r\n", SEC, body,
			     sizeof(body)),
			 200);
	api_mmds_destroy(m);
}

static void nothing_is_served_before_the_first_put(void **state)
{
	struct api_mmds *m = new_store(100);
	char body[512];

	assert_int_equal(req(m, "GET / HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)), 404);
	api_mmds_destroy(m);
}

static void partial_pipelined_and_hostile_requests(void **state)
{
	struct api_mmds *m = new_store(0);
	const char two[] =
	    "GET /latest HTTP/1.1\r\n\r\nGET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n";
	char *out, body[64], longpath[3000];
	size_t n;
	ssize_t used;

	/* Not complete yet: nothing taken, no answer. */
	assert_int_equal(api_mmds_http(m, "GET /lat", 8, SEC, &out, &n), 0);
	assert_null(out);
	/* Two pipelined: one at a time. */
	used = api_mmds_http(m, two, strlen(two), SEC, &out, &n);
	assert_int_equal(used, strlen("GET /latest HTTP/1.1\r\n\r\n"));
	free(out);
	used = api_mmds_http(m, two + used, strlen(two) - (size_t)used, SEC, &out, &n);
	assert_true(used > 0);
	assert_non_null(strstr(out, "ami-87654321"));
	free(out);
	/* Garbage: a 400 that takes everything. */
	used = api_mmds_http(m, "\x01\x02 nonsense\r\n\r\n", 15, SEC, &out, &n);
	assert_int_equal(used, 15);
	assert_non_null(strstr(out, "HTTP/1.1 400"));
	free(out);
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "GET /", 5);
	snprintf(longpath + 2000, sizeof(longpath) - 2000, " HTTP/1.1\r\n\r\n");
	assert_int_equal(req(m, longpath, SEC, body, sizeof(body)), 414);
	/* A pointer escape that names nothing, and one that walks into an array. */
	assert_int_equal(req(m, "GET /latest/~2 HTTP/1.1\r\n\r\n", SEC, body, sizeof(body)), 404);
	api_mmds_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_replaces_and_get_returns_the_store),
	    cmocka_unit_test(patch_merges_as_rfc7396_says),
	    cmocka_unit_test(bad_data_and_the_limit_change_nothing),
	    cmocka_unit_test(v1_answers_imds_text_and_json),
	    cmocka_unit_test(imds_compat_ignores_accept),
	    cmocka_unit_test(v2_needs_a_live_session_token),
	    cmocka_unit_test(v1_takes_a_session_token_too_and_ignores_a_bad_one),
	    cmocka_unit_test(nothing_is_served_before_the_first_put),
	    cmocka_unit_test(partial_pipelined_and_hostile_requests),
	};

	return cmocka_run_group_tests_name("mmds", tests, NULL, NULL);
}
