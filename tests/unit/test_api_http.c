/* The API's transport over a real unix socket: keep-alive, pipelining, several clients,
 * stalled clients, idle and CRLF-only clients, the connection cap, caps, malformed HTTP,
 * socket file handling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/test_api_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void get_root_returns_instance_info(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	json_object *o, *v;

	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	o = json_tokener_parse(h_body());
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "id", &v));
	assert_string_equal(json_object_get_string(v), "test-vm");
	assert_true(json_object_object_get_ex(o, "state", &v));
	assert_string_equal(json_object_get_string(v), "Not started");
	assert_true(json_object_object_get_ex(o, "app_name", &v));
	assert_string_equal(json_object_get_string(v), "thaw");
	assert_true(json_object_object_get_ex(o, "vmm_version", &v));
	json_object_put(o);
	assert_int_equal(h->calls[OP_DESCRIBE], 1);
	h_stop(h);
}

static void get_root_without_describe_op_uses_api_state(void **state)
{
	static const struct api_ops none;
	struct harness *h = h_start_ops(&none, 0);

	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(h_body(), "\"state\": \"Not started\""));
	assert_non_null(strstr(h_body(), "\"id\": \"thaw\""));
	h_stop(h);
}

static void keep_alive_serves_many_requests_on_one_connection(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	int i;

	for (i = 0; i < 200; i++) {
		assert_int_equal(h_req(h, "GET", "/", NULL), 200);
		assert_true(h_resp_buf.keep_alive);
	}
	assert_int_equal(h->calls[OP_DESCRIBE], 200);
	h_stop(h);
}

static void pipelined_requests_are_answered_in_order(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	static const char reqs[] =
	    "PUT /machine-config HTTP/1.1\r\nContent-Length: 37\r\n\r\n"
	    "{\"vcpu_count\": 2, \"mem_size_mib\": 64}"
	    "GET /machine-config HTTP/1.1\r\n\r\n"
	    "PATCH /machine-config HTTP/1.1\r\nContent-Length: 17\r\n\r\n{\"vcpu_count\": 4}"
	    "GET /machine-config HTTP/1.1\r\n\r\n"
	    "GET /nope HTTP/1.1\r\n\r\n"
	    "GET / HTTP/1.1\r\n\r\n";
	struct api_response *r = calloc(6, sizeof(*r));
	int fd = h_connect(h);

	assert_non_null(r);
	assert_int_equal(h_send(fd, reqs, sizeof(reqs) - 1), 0);
	assert_int_equal(api_client_read_responses(fd, r, 6), 0);
	assert_int_equal(r[0].status, 204);
	assert_int_equal(r[1].status, 200);
	assert_non_null(strstr(r[1].body, "\"vcpu_count\": 2, \"mem_size_mib\": 64"));
	assert_int_equal(r[2].status, 204);
	assert_int_equal(r[3].status, 200);
	assert_non_null(strstr(r[3].body, "\"vcpu_count\": 4, \"mem_size_mib\": 64"));
	assert_int_equal(r[4].status, 400);
	assert_int_equal(r[5].status, 200);
	close(fd);
	free(r);
	h_stop(h);
}

/* 300 pipelined requests sent without reading: the server stops reading while its output
 * queue is full and resumes as the client drains it, losing and reordering nothing. */
static void pipelining_past_the_output_queue_keeps_order(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	enum { N = 300 };
	static const char one[] = "GET /machine-config HTTP/1.1\r\n\r\n";
	struct api_response *r = calloc(N, sizeof(*r));
	char *buf = malloc(N * (sizeof(one) - 1));
	int fd = h_connect(h), i;

	assert_non_null(r);
	assert_non_null(buf);
	for (i = 0; i < N; i++)
		memcpy(buf + (size_t)i * (sizeof(one) - 1), one, sizeof(one) - 1);
	assert_int_equal(h_send(fd, buf, N * (sizeof(one) - 1)), 0);
	assert_int_equal(api_client_read_responses(fd, r, N), 0);
	for (i = 0; i < N; i++) {
		assert_int_equal(r[i].status, 200);
		assert_non_null(strstr(r[i].body, "\"mem_size_mib\": 128"));
	}
	close(fd);
	free(buf);
	free(r);
	h_stop(h);
}

static void two_clients_interleave(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	int a = h_connect(h), b = h_connect(h), i;

	for (i = 0; i < 20; i++) {
		assert_int_equal(api_client_request(a, "GET", "/", NULL, &h_resp_buf), 0);
		assert_int_equal(h_resp_buf.status, 200);
		assert_int_equal(api_client_request(b, "GET", "/machine-config", NULL, &h_resp_buf),
				 0);
		assert_int_equal(h_resp_buf.status, 200);
	}
	close(a);
	close(b);
	h_stop(h);
}

struct client_arg {
	struct harness *h;
	int ok;
};

static void *client_thread(void *p)
{
	struct client_arg *a = p;
	struct api_response *r = malloc(sizeof(*r));
	int fd = h_connect(a->h), i;

	for (i = 0; r && fd >= 0 && i < 200; i++)
		if (api_client_request(fd, "GET", i % 2 ? "/" : "/machine-config", NULL, r) == 0 &&
		    r->status == 200)
			a->ok++;
	if (fd >= 0)
		close(fd);
	free(r);
	return NULL;
}

static void eight_clients_at_once_are_all_served(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	struct client_arg args[8];
	pthread_t th[8];
	int i;

	for (i = 0; i < 8; i++) {
		args[i].h = h;
		args[i].ok = 0;
		assert_int_equal(pthread_create(&th[i], NULL, client_thread, &args[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].ok, 200);
	}
	h_stop(h);
}

static void stalled_half_request_does_not_block_others_and_times_out(void **state)
{
	struct harness *h = h_start_ops(NULL, 1000);
	static const char half[] = "PUT /boot-source HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"ker";
	int stalled = h_connect(h), i;
	uint64_t t0;

	assert_int_equal(h_send(stalled, half, sizeof(half) - 1), 0);
	/* The other clients are served at once, repeatedly, while the first one stalls. */
	t0 = mono_ms();
	for (i = 0; i < 10; i++)
		assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	/* Served long before the stalled request's timeout: nobody waited for it. */
	assert_true(mono_ms() - t0 < 500);
	/* The stalled one gets 408 and is closed after the timeout. */
	assert_int_equal(api_client_read_response(stalled, &h_resp_buf), 0);
	assert_int_equal(h_resp_buf.status, 408);
	assert_true(mono_ms() - t0 >= 900);
	{
		char c;

		assert_int_equal(recv(stalled, &c, 1, 0), 0);
	}
	close(stalled);
	assert_int_equal(h->calls[OP_BOOT], 0);
	/* An idle kept-alive connection is not timed out by the request timeout. */
	usleep(1200 * 1000);
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	h_stop(h);
}

static void request_split_in_single_bytes_is_assembled(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	static const char req[] = "PUT /vsock HTTP/1.1\r\nContent-Length: 39\r\n\r\n"
				  "{\"guest_cid\": 3, \"uds_path\": \"/v.sock\"}";
	int fd = h_connect(h);
	size_t i;

	for (i = 0; i < sizeof(req) - 1; i++)
		assert_int_equal(h_send(fd, req + i, 1), 0);
	assert_int_equal(api_client_read_response(fd, &h_resp_buf), 0);
	assert_int_equal(h_resp_buf.status, 204);
	assert_int_equal(h->vsock.guest_cid, 3);
	assert_string_equal(h->vsock.uds_path, "/v.sock");
	close(fd);
	h_stop(h);
}

static void oversize_headers_get_431_and_close(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	size_t len = API_MAX_HEADER_BYTES + 2000;
	char *req = malloc(len + 64);
	bool closed = false;
	int n;

	assert_non_null(req);
	n = sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
	memset(req + n, 'a', len);
	strcpy(req + n + len, "\r\n\r\n");
	assert_int_equal(h_raw(h, req, strlen(req), &closed), 431);
	assert_true(closed);
	assert_non_null(strstr(h_fault(), "headers exceed"));
	free(req);
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	h_stop(h);
}

static void many_small_headers_count_against_the_cap(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char *req = malloc(20000);
	size_t n;
	int i;

	assert_non_null(req);
	n = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
	for (i = 0; i < 1500; i++)
		n += (size_t)sprintf(req + n, "A: b\r\n");
	strcpy(req + n, "\r\n");
	assert_int_equal(h_raw(h, req, strlen(req), NULL), 431);
	free(req);
	h_stop(h);
}

static void oversize_body_gets_413_before_it_is_read(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	bool closed = false;

	assert_int_equal(
	    H_RAW(h, "PUT /boot-source HTTP/1.1\r\nContent-Length: 70000\r\n\r\n{", &closed), 413);
	assert_true(closed);
	assert_non_null(strstr(h_fault(), "body exceeds"));
	assert_int_equal(h->calls[OP_BOOT], 0);
	h_stop(h);
}

static void oversize_chunked_body_gets_413(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	size_t chunk = 40000, n;
	char *req = malloc(2 * chunk + 256);
	int fd = h_connect(h), i;

	assert_non_null(req);
	n = (size_t)sprintf(req, "PUT /boot-source HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 2; i++) {
		n += (size_t)sprintf(req + n, "%zx\r\n", chunk);
		memset(req + n, ' ', chunk);
		n += chunk;
		n += (size_t)sprintf(req + n, "\r\n");
	}
	/* The server may close before reading it all; only its answer matters. */
	h_send(fd, req, n);
	assert_int_equal(api_client_read_response(fd, &h_resp_buf), 0);
	assert_int_equal(h_resp_buf.status, 413);
	close(fd);
	free(req);
	h_stop(h);
}

static void chunked_body_within_cap_is_accepted(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(H_RAW(h,
			       "PUT /boot-source HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "10\r\n{\"kernel_image_p\r\n"
			       "f\r\nath\": \"/vmlinux\r\n"
			       "2\r\n\"}\r\n0\r\n\r\n",
			       NULL),
			 204);
	assert_string_equal(h->boot.kernel_image_path, "/vmlinux");
	h_stop(h);
}

static void oversize_url_gets_414(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char req[API_MAX_URL_BYTES + 100];
	int n = sprintf(req, "GET /");

	memset(req + n, 'a', API_MAX_URL_BYTES + 10);
	strcpy(req + n + API_MAX_URL_BYTES + 10, " HTTP/1.1\r\n\r\n");
	assert_int_equal(h_raw(h, req, strlen(req), NULL), 414);
	h_stop(h);
}

static void malformed_request_line_gets_400_and_close(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	bool closed = false;

	assert_int_equal(H_RAW(h, "GARBAGE\r\n\r\n", &closed), 400);
	assert_true(closed);
	assert_non_null(strstr(h_fault(), "Malformed HTTP request"));
	closed = false;
	assert_int_equal(H_RAW(h, "GET / HTTP/9x\r\n\r\n", &closed), 400);
	assert_true(closed);
	closed = false;
	assert_int_equal(H_RAW(h, "GET / HTTP/1.1\r\nBad Header Line\r\n\r\n", &closed), 400);
	assert_true(closed);
	closed = false;
	assert_int_equal(H_RAW(h, "PUT /vm HTTP/1.1\r\nContent-Length: abc\r\n\r\n", &closed), 400);
	assert_true(closed);
	/* The server keeps serving everyone else. */
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	h_stop(h);
}

static void bad_request_after_good_one_on_same_connection(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	static const char reqs[] = "GET / HTTP/1.1\r\n\r\n"
				   "BROKEN\r\n\r\n"
				   "GET / HTTP/1.1\r\n\r\n";
	struct api_response r[2];
	int fd = h_connect(h);
	char c;

	assert_int_equal(h_send(fd, reqs, sizeof(reqs) - 1), 0);
	assert_int_equal(api_client_read_responses(fd, r, 2), 0);
	assert_int_equal(r[0].status, 200);
	assert_int_equal(r[1].status, 400);
	/* Nothing after the malformed request is answered. */
	assert_int_equal(recv(fd, &c, 1, 0), 0);
	close(fd);
	h_stop(h);
}

static void expect_100_continue_is_honoured(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	static const char head[] = "PUT /boot-source HTTP/1.1\r\nExpect: 100-continue\r\n"
				   "Content-Length: 27\r\n\r\n";
	int fd = h_connect(h);
	char buf[64];
	ssize_t n;

	assert_int_equal(h_send(fd, head, sizeof(head) - 1), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(h_send(fd, "{\"kernel_image_path\": \"/k\"}", 27), 0);
	assert_int_equal(api_client_read_response(fd, &h_resp_buf), 0);
	assert_int_equal(h_resp_buf.status, 204);
	close(fd);
	h_stop(h);
}

static void connection_close_and_http10_close_after_response(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	bool closed = false;

	assert_int_equal(H_RAW(h, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &closed), 200);
	assert_true(closed);
	assert_false(h_resp_buf.keep_alive);
	closed = false;
	assert_int_equal(H_RAW(h, "GET / HTTP/1.0\r\n\r\n", &closed), 200);
	assert_true(closed);
	h_stop(h);
}

static void half_closed_client_still_gets_its_answer(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	static const char req[] = "GET / HTTP/1.1\r\n\r\n";
	int fd = h_connect(h);

	assert_int_equal(h_send(fd, req, sizeof(req) - 1), 0);
	shutdown(fd, SHUT_WR);
	assert_int_equal(api_client_read_response(fd, &h_resp_buf), 0);
	assert_int_equal(h_resp_buf.status, 200);
	close(fd);
	h_stop(h);
}

static void client_vanishing_mid_request_is_harmless(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	int i;

	for (i = 0; i < 20; i++) {
		int fd = h_connect(h);

		assert_int_equal(h_send(fd, "PUT /boot-source HTTP/1.1\r\nContent-Le", 37), 0);
		close(fd);
	}
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_int_equal(h->calls[OP_BOOT], 0);
	h_stop(h);
}

/* Waits up to `ms` for the server to close `fd`; returns the milliseconds it took, or -1
 * when it is still open. */
static long closed_within(int fd, unsigned int ms)
{
	uint64_t t0 = mono_ms();
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	while (mono_ms() - t0 < ms) {
		if (poll(&p, 1, 50) == 1)
			return recv(fd, &c, 1, MSG_DONTWAIT) == 0 ? (long)(mono_ms() - t0) : -1;
	}
	return -1;
}

/* API_MAX_CONNS idle sockets (some only ever sending CRLFs) must not lock clients out:
 * a new connection is served, and the one idle the longest is closed for it. */
static void at_the_cap_the_longest_idle_connection_makes_room(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	int fds[API_MAX_CONNS], fresh, i;

	/* h->fd already holds one slot, and is the oldest. */
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	usleep(20 * 1000);
	for (i = 0; i < API_MAX_CONNS - 1; i++) {
		fds[i] = h_connect(h);
		if (i % 2)
			assert_int_equal(h_send(fds[i], "\r\n", 2), 0);
	}
	usleep(50 * 1000); /* all accepted, in order */
	fresh = h_connect(h);
	assert_int_equal(api_client_request(fresh, "GET", "/", NULL, &h_resp_buf), 0);
	assert_int_equal(h_resp_buf.status, 200);
	assert_true(closed_within(h->fd, 2000) >= 0);
	/* Everyone else is still served; the newest make room for one more in turn. */
	for (i = 0; i < API_MAX_CONNS - 1; i++) {
		assert_int_equal(api_client_request(fds[i], "GET", "/", NULL, &h_resp_buf), 0);
		assert_int_equal(h_resp_buf.status, 200);
	}
	for (i = 0; i < API_MAX_CONNS - 1; i++)
		close(fds[i]);
	close(fresh);
	/* Slots come back when clients leave. */
	fds[0] = h_connect(h);
	assert_int_equal(api_client_request(fds[0], "GET", "/", NULL, &h_resp_buf), 0);
	close(fds[0]);
	h_stop(h);
}

static void idle_connection_is_closed_after_the_idle_timeout(void **state)
{
	struct harness *h = h_start_idle(NULL, 0, 300);
	int fd = h_connect(h), i;
	long ms;

	/* Requests are progress: 150 ms apart, the connection outlives the timeout. */
	for (i = 0; i < 5; i++) {
		assert_int_equal(api_client_request(fd, "GET", "/", NULL, &h_resp_buf), 0);
		assert_int_equal(h_resp_buf.status, 200);
		usleep(150 * 1000);
	}
	assert_int_equal(api_client_request(fd, "GET", "/", NULL, &h_resp_buf), 0);
	/* Then idle: closed after about 300 ms, without an answer. */
	ms = closed_within(fd, 3000);
	assert_true(ms >= 200);
	close(fd);
	h_stop(h);
}

/* CRLFs make no request: a client sending only those is idle, and closed. */
static void crlf_trickle_connection_is_closed_after_the_idle_timeout(void **state)
{
	struct harness *h = h_start_idle(NULL, 0, 300);
	int fd = h_connect(h);
	uint64_t t0 = mono_ms();
	long ms = -1;

	while (mono_ms() - t0 < 3000 && ms < 0) {
		if (send(fd, "\r\n", 2, MSG_NOSIGNAL) != 2)
			break; /* already closed */
		ms = closed_within(fd, 50);
	}
	assert_true(mono_ms() - t0 >= 250);
	assert_true(mono_ms() - t0 < 3000);
	close(fd);
	assert_int_equal(h_req(h, "GET", "/", NULL) < 0, true); /* h->fd: idle too, closed */
	h_stop(h);
}

static void unknown_path_and_wrong_method_get_400(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(h_req(h, "GET", "/nope", NULL), 400);
	assert_string_equal(h_fault(), "Invalid request method and/or path: GET /nope.");
	assert_int_equal(h_req(h, "DELETE", "/", NULL), 400);
	assert_int_equal(h_req(h, "GET", "/actions", NULL), 400);
	assert_int_equal(h_req(h, "POST", "/boot-source", "{}"), 400);
	assert_int_equal(h_req(h, "GET", "/drives/", NULL), 400);
	/* CONNECT and Upgrade are not spoken: answered like any request, never handed over. */
	assert_int_equal(H_RAW(h, "CONNECT localhost:80 HTTP/1.1\r\n\r\n", NULL), 400);
	assert_int_equal(
	    H_RAW(h, "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", NULL), 200);
	/* The query string is ignored; an absolute URL is routed by its path. */
	assert_int_equal(h_req(h, "GET", "/?x=1", NULL), 200);
	assert_int_equal(h_req(h, "GET", "http://localhost/machine-config", NULL), 200);
	h_stop(h);
}

static void stale_socket_is_replaced_live_one_refused(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	struct api_server *srv2 = NULL;
	char path[160];
	int fd, ret;

	/* Someone is serving h->sock: refused. */
	ret = api_server_create(h->sock, &h_ops, h, &srv2);
	assert_int_equal(ret, -EADDRINUSE);
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);

	/* A socket file nobody listens on: replaced. */
	snprintf(path, sizeof(path), "%s/stale.sock", h->dir);
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		strcpy(sa.sun_path, path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(fd);
	}
	assert_int_equal(api_server_create(path, &h_ops, h, &srv2), 0);
	api_server_destroy(srv2);
	assert_int_equal(access(path, F_OK), -1);

	/* A regular file: left alone. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(api_server_create(path, &h_ops, h, &srv2), -EEXIST);
	unlink(path);
	h_stop(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(get_root_returns_instance_info),
	    cmocka_unit_test(get_root_without_describe_op_uses_api_state),
	    cmocka_unit_test(keep_alive_serves_many_requests_on_one_connection),
	    cmocka_unit_test(pipelined_requests_are_answered_in_order),
	    cmocka_unit_test(pipelining_past_the_output_queue_keeps_order),
	    cmocka_unit_test(two_clients_interleave),
	    cmocka_unit_test(eight_clients_at_once_are_all_served),
	    cmocka_unit_test(stalled_half_request_does_not_block_others_and_times_out),
	    cmocka_unit_test(request_split_in_single_bytes_is_assembled),
	    cmocka_unit_test(oversize_headers_get_431_and_close),
	    cmocka_unit_test(many_small_headers_count_against_the_cap),
	    cmocka_unit_test(oversize_body_gets_413_before_it_is_read),
	    cmocka_unit_test(oversize_chunked_body_gets_413),
	    cmocka_unit_test(chunked_body_within_cap_is_accepted),
	    cmocka_unit_test(oversize_url_gets_414),
	    cmocka_unit_test(malformed_request_line_gets_400_and_close),
	    cmocka_unit_test(bad_request_after_good_one_on_same_connection),
	    cmocka_unit_test(expect_100_continue_is_honoured),
	    cmocka_unit_test(connection_close_and_http10_close_after_response),
	    cmocka_unit_test(half_closed_client_still_gets_its_answer),
	    cmocka_unit_test(client_vanishing_mid_request_is_harmless),
	    cmocka_unit_test(at_the_cap_the_longest_idle_connection_makes_room),
	    cmocka_unit_test(idle_connection_is_closed_after_the_idle_timeout),
	    cmocka_unit_test(crlf_trickle_connection_is_closed_after_the_idle_timeout),
	    cmocka_unit_test(unknown_path_and_wrong_method_get_400),
	    cmocka_unit_test(stale_socket_is_replaced_live_one_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
