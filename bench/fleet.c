/* The fleet benchmark (issue 17): drives a running thaw-pool over its API socket.
 *
 * usage: fleet SOCK POOL_ID latency RUNS
 *            RUNS times: wait until the pool is stocked, POST one clone, `ping` it on
 *            its console, DELETE it. One line per run:
 *            "request_us=<POST..201> pool_latency_us=<the pool's request..running>
 *             answer_us=<POST..PROBE pong> hit=0|1 rc=0"
 *        fleet SOCK POOL_ID burst N
 *            N clones requested at once (POSTs of up to 64), then `ping` sent to all;
 *            one line: "wall_us=<first POST..last pong> post_us=<first POST..last 201>
 *            n=N answered=A misses=M pss_kb=<median PSS of one idle clone>
 *            guest_pss_kb=<median PSS of its guest RAM> vmm_pss_kb=<median of the rest>
 *            private_dirty_kb=<median> rc=0"; the clones are deleted afterwards.
 *        fleet SOCK POOL_ID rate SECONDS
 *            for SECONDS: request one clone, ping it, delete it, as fast as that goes
 *            (the pool refills meanwhile). One line: "clones=C seconds=S per_s=R rc=0"
 * Exit 0 when every clone answered, 1 otherwise, 2 on usage errors.
 */
#include "api/api.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLONES 4096
#define BATCH	   64

struct clone {
	char id[64];
	char console_sock[256];
	char console_log[512];
	int pid;
	long long latency_us;
	int con_fd;
	uint64_t answered_ns;
};

static const char *sock_path, *pool_id;
static struct api_response resp;

static int request(const char *method, const char *path, const char *body)
{
	int fd = api_client_connect(sock_path), ret;

	if (fd < 0)
		return fd;
	ret = api_client_request(fd, method, path, body, &resp);
	close(fd);
	return ret < 0 ? ret : resp.status;
}

static long long jint(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : -1;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

static long long pool_num(const char *key)
{
	char path[128];
	json_object *o;
	long long v = -1;

	snprintf(path, sizeof(path), "/pools/%s", pool_id);
	if (request("GET", path, NULL) == 200 && (o = json_tokener_parse(resp.body))) {
		v = jint(o, key);
		json_object_put(o);
	}
	return v;
}

static int wait_stocked(int timeout_ms)
{
	uint64_t t0 = now_ns();
	long long target = pool_num("target");

	while ((now_ns() - t0) / 1000000 < (uint64_t)timeout_ms) {
		if (pool_num("prepared") >= target)
			return 0;
		usleep(2000);
	}
	return -ETIMEDOUT;
}

/* POSTs `count` clones into c[]; returns how many came back (-1 on a refusal). */
static int post_clones(unsigned count, struct clone *c, long long *misses)
{
	char path[128], body[64];
	json_object *o, *arr;
	int n;

	snprintf(path, sizeof(path), "/pools/%s/clones", pool_id);
	snprintf(body, sizeof(body), "{\"count\": %u}", count);
	if (request("POST", path, body) != 201) {
		char msg[512];

		api_client_fault_message(&resp, msg, sizeof(msg));
		fprintf(stderr, "fleet: POST %s: %d %s\n", path, resp.status, msg);
		return -1;
	}
	o = json_tokener_parse(resp.body);
	if (!o || !json_object_object_get_ex(o, "clones", &arr)) {
		json_object_put(o);
		return -1;
	}
	if (misses)
		*misses += jint(o, "misses");
	n = (int)json_object_array_length(arr);
	for (int i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);

		memset(&c[i], 0, sizeof(c[i]));
		snprintf(c[i].id, sizeof(c[i].id), "%s", jstr(e, "id"));
		snprintf(c[i].console_sock, sizeof(c[i].console_sock), "%s",
			 jstr(e, "console_sock"));
		snprintf(c[i].console_log, sizeof(c[i].console_log), "%s", jstr(e, "console_log"));
		c[i].pid = (int)jint(e, "pid");
		c[i].latency_us = jint(e, "latency_us");
		c[i].con_fd = -1;
	}
	json_object_put(o);
	return n;
}

static int send_ping(struct clone *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(c->console_sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, c->console_sock, strlen(c->console_sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(fd, "ping\n", 5) != 5) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	c->con_fd = fd;
	return 0;
}

static bool answered(struct clone *c)
{
	char buf[4096];
	int fd = open(c->console_log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "PROBE pong") != NULL;
}

/* Pings every clone and waits for all answers (or timeout); returns how many answered. */
static int ping_all(struct clone *c, int n, int timeout_ms)
{
	uint64_t t0 = now_ns();
	int done = 0;

	for (int i = 0; i < n; i++)
		if (send_ping(&c[i]) < 0)
			fprintf(stderr, "fleet: %s: console %s does not connect\n", c[i].id,
				c[i].console_sock);
	while (done < n && (now_ns() - t0) / 1000000 < (uint64_t)timeout_ms) {
		for (int i = 0; i < n; i++)
			if (!c[i].answered_ns && answered(&c[i])) {
				c[i].answered_ns = now_ns();
				done++;
			}
		if (done < n)
			usleep(200);
	}
	for (int i = 0; i < n; i++)
		if (c[i].con_fd >= 0)
			close(c[i].con_fd);
	return done;
}

static void delete_all(struct clone *c, int n)
{
	for (int i = 0; i < n; i++) {
		char path[sizeof(c[i].id) + 16];

		snprintf(path, sizeof(path), "/clones/%.63s", c[i].id);
		request("DELETE", path, NULL);
	}
}

/* Pss and Private_Dirty of a process, and the Pss of its guest RAM, KiB (smaps): the
 * mappings of 16 MiB and more are guest memory (thread stacks are 8 MiB), so
 * pss - guest_pss is what the VMM itself costs a clone, the "beyond the guest
 * pages it dirtied". */
static int mem_kb(int pid, long long *pss, long long *dirty, long long *guest_pss)
{
	char path[64], line[512];
	unsigned long long lo, hi;
	bool guest = false;
	long long v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	*pss = *dirty = *guest_pss = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			guest = hi - lo >= (16ull << 20);
		else if (sscanf(line, "Pss: %lld", &v) == 1) {
			*pss += v;
			if (guest)
				*guest_pss += v;
		} else if (sscanf(line, "Private_Dirty: %lld", &v) == 1)
			*dirty += v;
	}
	fclose(f);
	return 0;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static int run_latency(int runs)
{
	struct clone c;
	int bad = 0;

	for (int r = 0; r < runs; r++) {
		uint64_t t0;
		long long misses = 0;
		long long req_us;
		int ok;

		if (wait_stocked(60000) < 0)
			fprintf(stderr, "fleet: the pool was not stocked within 60 s\n");
		t0 = now_ns();
		if (post_clones(1, &c, &misses) != 1) {
			printf("rc=1\n");
			bad++;
			continue;
		}
		req_us = (long long)(now_ns() - t0) / 1000;
		ok = ping_all(&c, 1, 30000) == 1;
		printf("request_us=%lld pool_latency_us=%lld answer_us=%lld hit=%d rc=%d\n", req_us,
		       c.latency_us, ok ? (long long)(c.answered_ns - t0) / 1000 : 0, misses == 0,
		       ok ? 0 : 1);
		fflush(stdout);
		bad += !ok;
		delete_all(&c, 1);
	}
	return bad ? 1 : 0;
}

static int run_burst(int n)
{
	static struct clone c[MAX_CLONES];
	static long long pss[MAX_CLONES], dirty[MAX_CLONES], guest[MAX_CLONES], vmm[MAX_CLONES];
	long long misses = 0;
	int got = 0, ok, npss = 0;
	uint64_t t0, t_post;

	if (wait_stocked(600000) < 0)
		fprintf(stderr, "fleet: the pool was not stocked within 600 s\n");
	t0 = now_ns();
	while (got < n) {
		int k =
		    post_clones((unsigned)(n - got > BATCH ? BATCH : n - got), c + got, &misses);

		if (k <= 0)
			break;
		got += k;
	}
	t_post = now_ns();
	ok = ping_all(c, got, 120000);
	uint64_t last = t0;
	for (int i = 0; i < got; i++)
		if (c[i].answered_ns > last)
			last = c[i].answered_ns;
	/* idle clones, all alive: PSS shares the snapshot's page cache among them */
	for (int i = 0; i < got; i++)
		if (mem_kb(c[i].pid, &pss[npss], &dirty[npss], &guest[npss]) == 0) {
			vmm[npss] = pss[npss] - guest[npss];
			npss++;
		}
	qsort(pss, (size_t)npss, sizeof(pss[0]), cmp_ll);
	qsort(dirty, (size_t)npss, sizeof(dirty[0]), cmp_ll);
	qsort(guest, (size_t)npss, sizeof(guest[0]), cmp_ll);
	qsort(vmm, (size_t)npss, sizeof(vmm[0]), cmp_ll);
	printf("wall_us=%lld post_us=%lld n=%d answered=%d misses=%lld pss_kb=%lld "
	       "private_dirty_kb=%lld guest_pss_kb=%lld vmm_pss_kb=%lld rc=%d\n",
	       (long long)(last - t0) / 1000, (long long)(t_post - t0) / 1000, n, ok, misses,
	       npss ? pss[npss / 2] : -1, npss ? dirty[npss / 2] : -1, npss ? guest[npss / 2] : -1,
	       npss ? vmm[npss / 2] : -1, ok == n ? 0 : 1);
	fflush(stdout);
	delete_all(c, got);
	return ok == n ? 0 : 1;
}

static int run_rate(double seconds)
{
	struct clone c;
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
	long long n = 0, misses = 0, bad = 0;

	while (now_ns() < end) {
		if (post_clones(1, &c, &misses) != 1) {
			bad++;
			usleep(1000);
			continue;
		}
		if (ping_all(&c, 1, 30000) == 1)
			n++;
		else
			bad++;
		delete_all(&c, 1);
	}
	seconds = (double)(now_ns() - t0) / 1e9;
	printf("clones=%lld seconds=%.3f per_s=%.1f misses=%lld failed=%lld rc=%d\n", n, seconds,
	       (double)n / seconds, misses, bad, bad ? 1 : 0);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr,
			"usage: fleet SOCK POOL_ID latency RUNS | burst N | rate SECONDS\n");
		return 2;
	}
	sock_path = argv[1];
	pool_id = argv[2];
	if (!strcmp(argv[3], "latency"))
		return run_latency(atoi(argv[4]));
	if (!strcmp(argv[3], "burst")) {
		int n = atoi(argv[4]);

		if (n < 1 || n > MAX_CLONES) {
			fprintf(stderr, "fleet: burst N: 1 to %d\n", MAX_CLONES);
			return 2;
		}
		return run_burst(n);
	}
	if (!strcmp(argv[3], "rate"))
		return run_rate(atof(argv[4]));
	fprintf(stderr, "fleet: unknown mode %s\n", argv[3]);
	return 2;
}
