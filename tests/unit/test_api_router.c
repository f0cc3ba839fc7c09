/* api/'s transport under another router (api_server_create_router, as thaw-pool uses it):
 * the router sees method, path and body; its replies of any size go out whole and in
 * order on kept-alive and pipelined connections; faults keep Firecracker's shape; the
 * transport's own answers (malformed HTTP, caps) stay the transport's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/test_api_harness.h"

#include <limits.h>
#include <sys/wait.h>

/* What the router saw last. */
static char seen_method[16], seen_path[API_MAX_URL_BYTES + 1], seen_body[1024];
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
	/* as thaw-pool answers a clone request */
	if (!strcmp(method, "POST") && strstr(path, "/clones")) {
		static const char clones[] =
		    "{\"clones\": [{\"id\": \"p1-7\", \"state\": \"running\", \"pid\": 4242, "
		    "\"api_sock\": \"/run/p1-7/api.sock\", \"vsock\": null, \"latency_us\": 812}], "
		    "\"misses\": 1, \"errors\": []}";

		r->status = 201;
		r->body = strdup(clones);
		r->len = strlen(clones);
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

	assert_int_equal(h_req(h, "POST", "/pools/p1/things?x=1", "{\"count\": 2}"), 201);
	assert_string_equal(seen_method, "POST");
	assert_string_equal(seen_path, "/pools/p1/things"); /* the query is not the path */
	assert_string_equal(seen_body, "{\"count\": 2}");
	assert_int_equal(seen_body_len, 12);
	assert_non_null(strstr(h_body(), "\"path\":\"\\/pools\\/p1\\/things\""));
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

/* thawctl's pool commands send what docs/pool.md says and print what came back. */

static void thawctl_pool_commands_send_the_documented_requests(void **state)
{
	char thawctl[PATH_MAX + 16], exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct harness *h;
	json_object *o, *v;

	/* build/tests/test_api_router -> build/thawctl */
	assert_true(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(thawctl, sizeof(thawctl), "%s/thawctl", exe);
	if (access(thawctl, X_OK)) {
		print_message("SKIPPED: %s is not built\n", thawctl);
		skip();
	}
	h = start_router();

	assert_int_equal(run("%s -s %s pool create p1 /s/a.snap --prepared 20 --max-clones 50 "
			     "--max-mem-mib 4096 --refill-per-s 12.5 --mem /s/a.mem --jail-uid 10 "
			     "--jail-gid 11 --cgroup pids.max=64 2>&1",
			     thawctl, h->sock),
			 0);
	assert_string_equal(seen_method, "PUT");
	assert_string_equal(seen_path, "/pools/p1");
	o = json_tokener_parse(seen_body);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "snapshot_path", &v));
	assert_string_equal(json_object_get_string(v), "/s/a.snap");
	assert_true(json_object_object_get_ex(o, "prepared", &v));
	assert_int_equal(json_object_get_int(v), 20);
	assert_true(json_object_object_get_ex(o, "max_mem_mib", &v));
	assert_int_equal(json_object_get_int(v), 4096);
	assert_true(json_object_object_get_ex(o, "mem_backend", &v));
	assert_non_null(strstr(json_object_to_json_string(v), "\"File\""));
	assert_true(json_object_object_get_ex(o, "jail", &v));
	assert_non_null(strstr(json_object_to_json_string(v), "pids.max=64"));
	json_object_put(o);

	assert_int_equal(run("%s -s %s pool clone p1 --count 3 --paused --clock-realtime "
			     "--vsock-dir /v --drive root=/d.img 2>&1",
			     thawctl, h->sock),
			 0);
	assert_string_equal(seen_method, "POST");
	assert_string_equal(seen_path, "/pools/p1/clones");
	o = json_tokener_parse(seen_body);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "count", &v));
	assert_int_equal(json_object_get_int(v), 3);
	assert_true(json_object_object_get_ex(o, "paused", &v) && json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "drive_overrides", &v));
	assert_non_null(strstr(json_object_to_json_string(v), "/d.img"));
	json_object_put(o);
	/* one line per clone, then the count and the misses */
	assert_non_null(strstr(out, "p1-7  running  pid 4242"));
	assert_non_null(strstr(out, "1 clones, 1 misses"));

	assert_int_equal(run("%s -s %s pool kill p1-7 2>&1", thawctl, h->sock), 0);
	assert_string_equal(seen_method, "DELETE");
	assert_string_equal(seen_path, "/clones/p1-7");
	assert_int_equal(run("%s -s %s pool delete p1 2>&1", thawctl, h->sock), 0);
	assert_string_equal(seen_path, "/pools/p1");
	/* an id that would change the path is refused before anything is sent */
	routed = 0;
	assert_int_equal(run("%s -s %s pool show ../x 2>&1", thawctl, h->sock), 2);
	assert_int_equal(routed, 0);
	/* the server's fault_message reaches the user */
	assert_int_equal(run("%s -s %s raw GET /fault 2>&1", thawctl, h->sock), 1);
	assert_non_null(strstr(out, "No thing here"));
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
	    cmocka_unit_test(thawctl_pool_commands_send_the_documented_requests),
	};

	return cmocka_run_group_tests_name("api_router", tests, NULL, NULL);
}
