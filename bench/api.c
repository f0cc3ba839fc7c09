/* API overhead benchmark (issue 6): the median round trip of `GET /` over one kept-alive
 * connection, with the server on its own thread behind an outer epoll loop as in thaw. Two
 * references isolate what the API adds: the same round trip against a bare echo server (the
 * kernel's socket and wake-up cost), and the API's request handling alone, fed in-process
 * without a socket.
 *
 * usage: bench_api [N]   (default 10000 requests per measurement)
 * The last line repeats the medians as key=value pairs (µs) for bench/bench.sh:
 * "bench_api: get_rtt_us=.. new_conn_us=.. echo_rtt_us=.. get_inproc_us=..
 * load_inproc_us=.. overhead_us=.. requests=.." */
#include "api/api_int.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile int stop;

/* The VMM's part of a load is measured elsewhere (restore/); here it costs nothing. */
static int bench_load(void *ctx, const struct api_snapshot_load *req, struct api_error *err)
{
	return req->snapshot_path[0] ? 0 : -EINVAL;
}

static void *serve(void *arg)
{
	struct api_server *srv = arg;
	struct epoll_event e = {.events = EPOLLIN};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	epoll_ctl(ep, EPOLL_CTL_ADD, api_server_fd(srv), &e);
	while (!stop) {
		if (epoll_wait(ep, &e, 1, 50) > 0)
			api_server_dispatch(srv);
	}
	close(ep);
	return NULL;
}

/* The reference: read a request's worth, answer with a fixed response of the same size. */
struct echo {
	int fd;
	size_t resp_len;
};

static void *echo_serve(void *arg)
{
	struct echo *ec = arg;
	char buf[4096], resp[4096];

	memset(resp, 'x', sizeof(resp));
	while (!stop) {
		ssize_t n = recv(ec->fd, buf, sizeof(buf), 0);

		if (n <= 0)
			break;
		if (send(ec->fd, resp, ec->resp_len, MSG_NOSIGNAL) < 0)
			break;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts ns, prints the line and returns the median in µs. */
static double report(const char *what, uint64_t *ns, int n)
{
	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	printf("%-44s median %7.2f us  p90 %7.2f us  p99 %7.2f us  (n=%d)\n", what,
	       (double)ns[n / 2] / 1e3, (double)ns[n * 9 / 10] / 1e3,
	       (double)ns[n * 99 / 100] / 1e3, n);
	return (double)ns[n / 2] / 1e3;
}

static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n";

int main(int argc, char **argv)
{
	static const struct api_ops ops = {.snapshot_load = bench_load};
	char path[] = "/tmp/thaw-bench-api-XXXXXX";
	struct api_response *resp;
	struct api_server *srv;
	struct api_conn *conn;
	pthread_t th;
	uint64_t *ns;
	double api_med, echo_med, new_conn_med, inproc_med, load_med;
	char sock[128], buf[4096];
	size_t resp_len = 0;
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	int fd, i, sv[2], ret;
	struct echo ec;

	if (n < 100)
		n = 100;
	ns = calloc((size_t)n, sizeof(*ns));
	resp = malloc(sizeof(*resp));
	if (!ns || !resp || !mkdtemp(path))
		return 1;
	snprintf(sock, sizeof(sock), "%s/api.sock", path);
	ret = api_server_create(sock, &ops, NULL, &srv);
	if (ret) {
		fprintf(stderr, "bench_api: api_server_create: %s\n", strerror(-ret));
		return 1;
	}
	pthread_create(&th, NULL, serve, srv);
	fd = api_client_connect(sock);
	if (fd < 0) {
		fprintf(stderr, "bench_api: connect: %s\n", strerror(-fd));
		return 1;
	}
	/* Warm up, and learn the response size for the echo reference. */
	for (i = 0; i < 1000; i++)
		if (api_client_request(fd, "GET", "/", NULL, resp) || resp->status != 200)
			return 1;
	for (i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0 ||
		    api_client_read_response(fd, resp) || resp->status != 200) {
			fprintf(stderr, "bench_api: request %d failed\n", i);
			return 1;
		}
		ns[i] = now_ns() - t0;
	}
	report("GET / round trip through the API", ns, n);
	api_med = (double)ns[n / 2];

	/* What a client that connects per request (curl) pays: connect, request, response. */
	{
		int m = n / 10, k;

		for (k = 0; k < m; k++) {
			uint64_t t0 = now_ns();
			int fd2 = api_client_connect(sock);

			if (fd2 < 0 || send(fd2, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0 ||
			    api_client_read_response(fd2, resp) || resp->status != 200) {
				fprintf(stderr, "bench_api: new-connection request %d failed\n", k);
				return 1;
			}
			ns[k] = now_ns() - t0;
			close(fd2);
		}
		new_conn_med = report("connect + GET / on a new connection", ns, m);
	}

	/* Same exchange size over a bare socket pair, read by the same client code path. */
	{
		int fd2 = api_client_connect(sock);

		send(fd2, req, sizeof(req) - 1, MSG_NOSIGNAL);
		resp_len = (size_t)recv(fd2, buf, sizeof(buf), 0);
		close(fd2);
	}
	close(fd);
	stop = 1;
	pthread_join(th, NULL);
	stop = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 1;
	ec.fd = sv[1];
	ec.resp_len = resp_len;
	pthread_create(&th, NULL, echo_serve, &ec);
	for (i = 0; i < 1000 + n; i++) {
		uint64_t t0 = now_ns();
		size_t got = 0;

		send(sv[0], req, sizeof(req) - 1, MSG_NOSIGNAL);
		while (got < resp_len) {
			ssize_t r = recv(sv[0], buf, sizeof(buf), 0);

			if (r <= 0)
				return 1;
			got += (size_t)r;
		}
		if (i >= 1000)
			ns[i - 1000] = now_ns() - t0;
	}
	report("same-size round trip, bare echo thread", ns, n);
	echo_med = (double)ns[n / 2];
	stop = 1;
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);

	/* The API's own work: parse, route, format, without sockets. */
	conn = api_conn_new(srv, -1);
	if (!conn)
		return 1;
	for (i = 0; i < 1000 + n; i++) {
		uint64_t t0 = now_ns();

		api_conn_feed(conn, req, sizeof(req) - 1);
		if (i >= 1000)
			ns[i - 1000] = now_ns() - t0;
	}
	inproc_med = report("GET / handling in-process (no socket)", ns, n);

	/* A snapshot load request's parse, validation and routing, the VMM's work left out:
	 * what the API adds to a restore. The state is reset so every request is allowed. */
	{
		static const char load[] =
		    "PUT /snapshot/load HTTP/1.1\r\nHost: localhost\r\n"
		    "Accept: application/json\r\nContent-Type: application/json\r\n"
		    "Content-Length: 218\r\n\r\n"
		    "{\"snapshot_path\": \"/srv/snapshots/base.snap\", \"mem_backend\": "
		    "{\"backend_type\": \"File\", \"backend_path\": \"/srv/snapshots/base.mem\"}, "
		    "\"resume_vm\": true, \"network_overrides\": [{\"iface_id\": \"eth0\", "
		    "\"host_dev_name\": \"tap0\"}]}";

		for (i = 0; i < 1000 + n; i++) {
			uint64_t t0;

			api_state_init(srv);
			t0 = now_ns();
			api_conn_feed(conn, load, sizeof(load) - 1);
			if (i >= 1000)
				ns[i - 1000] = now_ns() - t0;
		}
		if (srv->reply.status != 204) {
			fprintf(stderr, "bench_api: load request answered %d: %.*s\n",
				srv->reply.status, (int)srv->reply.len, srv->reply.body);
			return 1;
		}
		load_med = report("PUT /snapshot/load handling in-process", ns, n);
	}
	printf("API overhead per request: %.2f us median round trip, %.2f us above a bare "
	       "socket round trip (target <= 50 us)\n",
	       api_med / 1e3, (api_med - echo_med) / 1e3);
	printf("bench_api: get_rtt_us=%.2f new_conn_us=%.2f echo_rtt_us=%.2f get_inproc_us=%.2f "
	       "load_inproc_us=%.2f overhead_us=%.2f requests=%d\n",
	       api_med / 1e3, new_conn_med, echo_med / 1e3, inproc_med, load_med,
	       (api_med - echo_med) / 1e3, n);
	api_conn_free(conn);
	api_server_destroy(srv);
	rmdir(path);
	free(ns);
	free(resp);
	return 0;
}
