/* api/'s transport under another router (api_server_create_router, as thaw-pool uses it):
 * the router sees method, path and body; its replies of any size go out whole and in
 * order on kept-alive and pipelined connections; faults keep Firecracker's shape; the
 * transport's own answers (malformed HTTP, caps) stay the transport's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/test_api_harness.h"

/* What the router saw last. */
static char seen_method[16], seen_path[API_MAX_URL_BYTES + 1], seen_body[256];
static size_t seen_body_len;
static int routed;

/* /big/N answers N bytes of JSON; /fault answers 404; everything else echoes. */
static void test_router(void *ctx, const char *method, const char *path, const char *body,
			size_t body_len, struct api_http_reply *r)
{
	routed++;
	snprintf(seen_method, sizeof(seen_method), "%s", method);
	snprintf(seen_path, sizeof(seen_path), "%s", path);
	snprintf(seen_body, sizeof(seen_body), "%s", body);
	seen_body_len = body_len;
	if (!strncmp(path, "/big/", 5)) {
		size_t n = strtoul(path + 5, NULL, 10);

		r->status = 200;
		r->body = malloc(n);
		r->len = n;
		memset(r->body, 'x', n);
		r->body[0] = '"';
		r->body[n - 1] = '"';
		return;
	}
	if (!strcmp(path, "/fault")) {
		api_http_reply_fault(r, 404, "No %s here: \"quoted\".", "thing");
		return;
	}
	if (!strcmp(path, "/empty")) {
		r->status = 204;
		r->body = NULL;
		r->len = 0;
		return;
	}
	{
		json_object *o = json_object_new_object();

		json_object_object_add(o, "method", json_object_new_string(method));
		json_object_object_add(o, "path", json_object_new_string(path));
		api_http_reply_json(r, 201, o);
	}
}

static struct harness *start_router(void)
{
	struct harness *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	h->fail_op = -1;
	snprintf(h->dir, sizeof(h->dir), "/tmp/thaw-test-router-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->sock, sizeof(h->sock), "%s/api.sock", h->dir);
	assert_int_equal(api_server_create_router(h->sock, test_router, h, &h->srv), 0);
	h->stop_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(h->stop_fd >= 0);
	assert_int_equal(pthread_create(&h->thread, NULL, h_serve, h), 0);
	h->fd = api_client_connect(h->sock);
	assert_true(h->fd >= 0);
	routed = 0;
	return h;
}

static void router_sees_method_path_and_body(void **state)
{
	struct harness *h = start_router();

	assert_int_equal(h_req(h, "POST", "/pools/p1/clones?x=1", "{\"count\": 2}"), 201);
	assert_string_equal(seen_method, "POST");
	assert_string_equal(seen_path, "/pools/p1/clones"); /* the query is not the path */
	assert_string_equal(seen_body, "{\"count\": 2}");
	assert_int_equal(seen_body_len, 12);
	assert_non_null(strstr(h_body(), "\"path\":\"\\/pools\\/p1\\/clones\""));
	assert_int_equal(h_req(h, "GET", "/machine-config", NULL), 201); /* not thaw's routes */
	assert_string_equal(seen_method, "GET");
	assert_int_equal(seen_body_len, 0);
	assert_int_equal(h_req(h, "DELETE", "/empty", NULL), 204);
	assert_int_equal(h_resp_buf.body_len, 0);
	h_stop(h);
}

static void large_replies_go_out_whole_and_the_connection_goes_on(void **state)
{
	struct harness *h = start_router();
	int i;

	/* far larger than a connection's output queue (API_OUT_CAP) */
	for (i = 0; i < 3; i++) {
		assert_int_equal(h_req(h, "GET", "/big/60000", NULL), 200);
		assert_int_equal(h_resp_buf.body_len, 60000);
		assert_int_equal(h_body()[59998], 'x');
		assert_int_equal(h_req(h, "GET", "/small", NULL), 201);
		assert_non_null(strstr(h_body(), "/small"));
	}
	assert_int_equal(routed, 6);
	h_stop(h);
}

static void pipelined_requests_after_a_large_reply_keep_their_order(void **state)
{
	static const char reqs[] = "GET /big/50000 HTTP/1.1\r\nHost: x\r\n\r\n"
				   "GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
				   "GET /big/20000 HTTP/1.1\r\nHost: x\r\n\r\n"
				   "GET /two HTTP/1.1\r\nHost: x\r\n\r\n";
	static struct api_response resp[4];
	struct harness *h = start_router();
	int fd = h_connect(h);

	assert_true(fd >= 0);
	assert_int_equal(h_send(fd, reqs, sizeof(reqs) - 1), 0);
	assert_int_equal(api_client_read_responses(fd, resp, 4), 0);
	assert_int_equal(resp[0].body_len, 50000);
	assert_non_null(strstr(resp[1].body, "/one"));
	assert_int_equal(resp[2].body_len, 20000);
	assert_non_null(strstr(resp[3].body, "/two"));
	close(fd);
	h_stop(h);
}

static void router_faults_keep_the_fault_message_shape(void **state)
{
	struct harness *h = start_router();

	assert_int_equal(h_req(h, "GET", "/fault", NULL), 404);
	assert_string_equal(h_fault(), "No thing here: \"quoted\".");
	h_stop(h);
}

static void malformed_http_is_answered_by_the_transport(void **state)
{
	static const char bad[] = "NOT HTTP AT ALL\r\n\r\n";
	struct harness *h = start_router();
	bool closed = false;

	assert_int_equal(h_raw(h, bad, sizeof(bad) - 1, &closed), 400);
	assert_non_null(strstr(h_fault(), "Malformed HTTP request"));
	assert_true(closed);
	assert_int_equal(routed, 0);
	h_stop(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(router_sees_method_path_and_body),
	    cmocka_unit_test(large_replies_go_out_whole_and_the_connection_goes_on),
	    cmocka_unit_test(pipelined_requests_after_a_large_reply_keep_their_order),
	    cmocka_unit_test(router_faults_keep_the_fault_message_shape),
	    cmocka_unit_test(malformed_http_is_answered_by_the_transport),
	};

	return cmocka_run_group_tests_name("api_router", tests, NULL, NULL);
}
