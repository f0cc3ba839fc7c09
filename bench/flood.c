/*
 * flood: does a guest that floods a virtio device starve thaw's API? (issue 14, item 3)
 *
 * usage: flood [--requests N] [--tap NAME] THAW PROBE DIR
 *   Starts THAW --api-sock DIR/api.sock, configures the probe guest (PROBE) over the API
 *   with an rng, a vsock (DIR/v.sock) and, with --tap, a net on tap NAME (created by thaw:
 *   run it in a private network namespace), and starts it. For each device it sets up one
 *   queue by hand through the probe's raw access requests (guest/probe/PROTOCOL.md,
 *   section 4): rng's request queue with one 64-byte writable buffer, vsock's transmit
 *   queue with an RST for no connection (taken and dropped), net's transmit queue with one
 *   60-byte frame (each queue as large as the device allows: 64, 256, 256). Then, on one kept-alive
 * API connection, it times N `GET /` while the guest idles, and N more while the probe's `flood`
 * request republishes that chain as fast as the device uses it (notifying after each), then stops
 * the flood and checks the guest still answers.
 *
 * Output, one line per device:
 *   dev=NAME requests=N idle_p50_us= idle_p99_us= idle_max_us= flood_p50_us= flood_p99_us=
 *   flood_max_us= p99_ratio= published= (chains the guest published during the flood)
 *
 * usage: flood --limit BYTES_PER_S [--seconds S] [--drive FILE] [--tap NAME] THAW PROBE DIR
 *   Rate limiters (issue 19 item 5): every device gets a bandwidth bucket of BYTES_PER_S
 *   (a tenth of it refilled every 100 ms: a bucket of 10 ms would lose whatever refill
 *   comes while a loaded host does not run thaw's main thread for longer than that, as
 *   any token bucket does), the drive FILE too (4 KiB reads of sector 0), and the probe
 *   floods each device's queue for S seconds (default 10) with larger chains (rng 4 KiB,
 *   net 1 KiB frames). What the device used less the bucket it started with, over the
 *   flood's time as the host saw it:
 *   dev=NAME limit_Bps= achieved_Bps= ratio= chains= seconds=
 *
 * usage: flood --measure --drive FILE [--seconds S] THAW PROBE DIR
 *   The drive alone, with no limit: how fast it serves the probe's 4 KiB reads of
 *   sector 0 (issue 20's disk group: raw against qcow2):
 *   dev=blk limit_Bps=0 achieved_Bps= ratio=0 chains= seconds=
 * Exit status: 0 measured, 2 setup error, 3 the guest or thaw did not answer, 4 an API
 * request failed.
 */
#include "api/api.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VIRTIO_BASE 0xd0000000ull
#define MAX_DEVS    4
#define RING(k)	    (0x400000ull + (uint64_t)(k)*0x10000) /* desc; avail +0x1000; used +0x2000 */
#define BUF(k)	    (RING(k) + 0x8000)

struct guest {
	pid_t pid;
	int in, out; /* the probe's serial console: thaw's stdin and stdout */
	char buf[8192];
	size_t len;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The next console line holding `want`, within `ms`; 0, or -1 (timeout or EOF). */
static int read_line(struct guest *g, const char *want, char *line, size_t cap, unsigned ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;

	for (;;) {
		char *nl = memchr(g->buf, '\n', g->len);

		if (nl) {
			size_t n = (size_t)(nl - g->buf);

			size_t keep = n < cap - 1 ? n : cap - 1;

			memcpy(line, g->buf, keep);
			line[keep] = 0;
			memmove(g->buf, nl + 1, g->len - n - 1);
			g->len -= n + 1;
			if (strstr(line, want))
				return 0;
			continue;
		}
		if (g->len == sizeof(g->buf))
			g->len = 0; /* a line longer than we care about */
		struct pollfd p = {.fd = g->out, .events = POLLIN};
		uint64_t now = now_ns();

		if (now >= end || poll(&p, 1, (int)((end - now) / 1000000 + 1)) <= 0)
			return -1;
		ssize_t r = read(g->out, g->buf + g->len, sizeof(g->buf) - g->len);

		if (r <= 0)
			return -1;
		g->len += (size_t)r;
	}
}

static int send_line(struct guest *g, const char *s)
{
	size_t n = strlen(s);

	return write(g->in, s, n) == (ssize_t)n && write(g->in, "\n", 1) == 1 ? 0 : -1;
}

/* One probe request; its answer line in `ans` (an error answer is a failure). */
static int probe(struct guest *g, char *ans, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int probe(struct guest *g, char *ans, size_t cap, const char *fmt, ...)
{
	char req[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req, sizeof(req), fmt, ap);
	va_end(ap);
	if (send_line(g, req) || read_line(g, "PROBE ", ans, cap, 10000)) {
		fprintf(stderr, "flood: no answer to '%s'\n", req);
		return -1;
	}
	if (strstr(ans, "PROBE ERR") || strstr(ans, "PROBE FAULT")) {
		fprintf(stderr, "flood: '%s' answered '%s'\n", req, ans);
		return -1;
	}
	return 0;
}

static int w32(struct guest *g, uint64_t addr, uint64_t v)
{
	char ans[256];

	return probe(g, ans, sizeof(ans), "w32 %#llx %#llx", (unsigned long long)addr,
		     (unsigned long long)v);
}

static int r32(struct guest *g, uint64_t addr, uint32_t *v)
{
	char ans[256];
	const char *p;

	if (probe(g, ans, sizeof(ans), "r32 %#llx", (unsigned long long)addr))
		return -1;
	p = strstr(ans, "value=");
	if (!p)
		return -1;
	*v = (uint32_t)strtoull(p + 6, NULL, 16);
	return 0;
}

static int wbytes(struct guest *g, uint64_t addr, const void *data, size_t n)
{
	char hex[2 * 128 + 1], ans[256];

	if (n > 120)
		return -1;
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", ((const uint8_t *)data)[i]);
	return probe(g, ans, sizeof(ans), "wbytes %#llx %s", (unsigned long long)addr, hex);
}

/* One descriptor of the chain a device's queue is flooded with. */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags; /* 1 NEXT (to the following one), 2 WRITE */
};

/* The driver's bring-up of device `k` with queue `q` of `size` ready (only VERSION_1
 * acked, the other queues left off) and descriptors 0..n-1 = `d`. */
static int queue_up(struct guest *g, unsigned k, unsigned q, unsigned size, const struct desc *d,
		    unsigned n)
{
	uint64_t base = VIRTIO_BASE + k * 0x1000ull;
	uint8_t desc[16 * 3];
	uint32_t status;
	static const uint8_t zero[120];

	for (unsigned i = 0; i < n; i++) {
		uint16_t next = (uint16_t)(i + 1);

		memcpy(desc + 16 * i, &d[i].addr, 8);
		memcpy(desc + 16 * i + 8, &d[i].len, 4);
		memcpy(desc + 16 * i + 12, &d[i].flags, 2);
		memcpy(desc + 16 * i + 14, &next, 2);
	}
	if (w32(g, base + 0x70, 0) || w32(g, base + 0x70, 1) || w32(g, base + 0x70, 3) ||
	    w32(g, base + 0x24, 1) || w32(g, base + 0x20, 1) || w32(g, base + 0x24, 0) ||
	    w32(g, base + 0x20, 0) || w32(g, base + 0x70, 11) || r32(g, base + 0x70, &status))
		return -1;
	if (!(status & 8)) {
		fprintf(stderr, "flood: device %u refused FEATURES_OK\n", k);
		return -1;
	}
	/* Fresh rings: avail and used indices 0. */
	if (wbytes(g, RING(k) + 0x1000, zero, 8) || wbytes(g, RING(k) + 0x2000, zero, 8) ||
	    wbytes(g, RING(k), desc, 16 * n) || w32(g, base + 0x30, q) ||
	    w32(g, base + 0x38, size) || w32(g, base + 0x80, RING(k)) || w32(g, base + 0x84, 0) ||
	    w32(g, base + 0x90, RING(k) + 0x1000) || w32(g, base + 0x94, 0) ||
	    w32(g, base + 0xa0, RING(k) + 0x2000) || w32(g, base + 0xa4, 0) ||
	    w32(g, base + 0x44, 1) || w32(g, base + 0x70, 15) || r32(g, base + 0x70, &status))
		return -1;
	if ((status & 0x44) != 4) {
		fprintf(stderr, "flood: device %u status %#x after DRIVER_OK\n", k, status);
		return -1;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	uint64_t p50, p99, max; /* ns */
};

/* `n` GET / round trips on `fd`. */
static int time_gets(int fd, unsigned n, uint64_t *lat, struct stats *st)
{
	static struct api_response resp;

	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		int ret = api_client_request(fd, "GET", "/", NULL, &resp);

		if (ret || resp.status != 200) {
			fprintf(stderr, "flood: GET / failed: %s (status %d)\n",
				ret ? strerror(-ret) : "answered", resp.status);
			return -1;
		}
		lat[i] = now_ns() - t0;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	st->p50 = lat[n / 2];
	st->p99 = lat[(size_t)n * 99 / 100];
	st->max = lat[n - 1];
	return 0;
}

static int api(int fd, const char *method, const char *path, const char *body)
{
	static struct api_response resp;
	char msg[512];
	int ret = api_client_request(fd, method, path, body, &resp);

	if (ret || resp.status / 100 != 2) {
		if (!ret)
			api_client_fault_message(&resp, msg, sizeof(msg));
		fprintf(stderr, "flood: %s %s: %s\n", method, path, ret ? strerror(-ret) : msg);
		return -1;
	}
	return 0;
}

static int start_thaw(struct guest *g, const char *thaw, const char *sock, const char *err)
{
	int in[2], out[2];

	if (pipe(in) || pipe(out))
		return -1;
	g->pid = fork();
	if (g->pid < 0)
		return -1;
	if (g->pid == 0) {
		FILE *e = freopen(err, "w", stderr);

		(void)e;
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		setpgid(0, 0);
		execl(thaw, thaw, "--api-sock", sock, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	g->in = in[1];
	g->out = out[0];
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"requests", required_argument, NULL, 'n'},
	    {"tap", required_argument, NULL, 't'},
	    {"limit", required_argument, NULL, 'l'},
	    {"measure", no_argument, NULL, 'm'},
	    {"seconds", required_argument, NULL, 's'},
	    {"drive", required_argument, NULL, 'd'},
	    {0},
	};
	const char *tap = NULL, *drive = NULL, *thaw, *kernel, *dir;
	char sock[108], vsock[108], err[256], body[768], line[512], rl[160] = "";
	struct guest g = {0};
	unsigned n = 2000, devs = 0, seconds = 10;
	unsigned long long limit = 0;
	bool measure = false; /* --measure: the drive's own rate, no limiter */
	uint64_t *lat, t0;
	int fd = -1, c, status = 2;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			n = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 't')
			tap = optarg;
		else if (c == 'l')
			limit = strtoull(optarg, NULL, 10);
		else if (c == 'm')
			measure = true;
		else if (c == 's')
			seconds = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'd')
			drive = optarg;
		else
			return 2;
	}
	if (argc - optind != 3 || n < 100 || (limit && (limit < 100 || !seconds)) ||
	    (drive && !limit && !measure) || (measure && (limit || !drive || !seconds))) {
		fprintf(stderr,
			"usage: flood [--requests N>=100] [--tap NAME] THAW PROBE DIR\n"
			"       flood --measure --drive FILE [--seconds S] THAW PROBE DIR\n"
			"       flood --limit BYTES_PER_S>=100 [--seconds S] [--drive FILE] "
			"[--tap NAME] THAW PROBE DIR\n");
		return 2;
	}
	if (limit)
		snprintf(rl, sizeof(rl), "{\"bandwidth\": {\"size\": %llu, \"refill_time\": 100}}",
			 limit / 10);
	thaw = argv[optind];
	kernel = argv[optind + 1];
	dir = argv[optind + 2];
	signal(SIGPIPE, SIG_IGN);
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	snprintf(vsock, sizeof(vsock), "%s/v.sock", dir);
	snprintf(err, sizeof(err), "%s/thaw.err", dir);
	lat = calloc(n, sizeof(*lat));
	if (!lat || start_thaw(&g, thaw, sock, err))
		return 2;
	for (t0 = now_ns(); fd < 0 && now_ns() - t0 < 20000000000ull; usleep(1000))
		fd = api_client_connect(sock);
	if (fd < 0) {
		fprintf(stderr, "flood: %s never accepted\n", sock);
		goto out;
	}
	status = 4;
	snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s\"}", kernel);
	if (api(fd, "PUT", "/boot-source", body) ||
	    api(fd, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}"))
		goto out;
	if (drive) {
		snprintf(body, sizeof(body),
			 "{\"drive_id\": \"d0\", \"path_on_host\": \"%s\", \"is_root_device\": "
			 "false%s%s}",
			 drive, limit ? ", \"rate_limiter\": " : "", rl);
		if (api(fd, "PUT", "/drives/d0", body))
			goto out;
	}
	if (tap) {
		snprintf(body, sizeof(body),
			 "{\"iface_id\": \"eth0\", \"host_dev_name\": \"%s\"%s%s}", tap,
			 limit ? ", \"tx_rate_limiter\": " : "", rl);
		if (api(fd, "PUT", "/network-interfaces/eth0", body))
			goto out;
	}
	snprintf(body, sizeof(body), "{\"guest_cid\": 3, \"uds_path\": \"%s\"}", vsock);
	if (api(fd, "PUT", "/vsock", body))
		goto out;
	snprintf(body, sizeof(body), "{%s%s}", limit ? "\"rate_limiter\": " : "", rl);
	if (api(fd, "PUT", "/entropy", body) ||
	    api(fd, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"))
		goto out;
	status = 3;
	if (read_line(&g, "THAW_PROBE_READY", line, sizeof(line), 60000)) {
		fprintf(stderr, "flood: the probe never said THAW_PROBE_READY\n");
		goto out;
	}
	for (unsigned k = 0; k < MAX_DEVS; k++) {
		uint64_t base = VIRTIO_BASE + k * 0x1000ull;
		uint32_t magic, id;
		const char *name;
		unsigned q, size;
		struct stats idle, flood;
		uint8_t pkt[72] = {0};
		struct desc d[3];
		unsigned nd = 1;
		uint32_t len;
		uint64_t used_bytes; /* what the device's limiter charges for one chain */
		unsigned long long published = 0, chains;

		if (r32(&g, base, &magic) || magic != 0x74726976)
			break;
		if (r32(&g, base + 8, &id))
			goto out;
		switch (id) {
		case 4: /* rng: one writable buffer */
			if (measure)
				continue;
			name = "rng", q = 0, size = 64, len = limit ? 4096 : 64;
			d[0] = (struct desc){BUF(k), len, 2};
			used_bytes = len;
			break;
		case 2: { /* blk: a 4 KiB read of sector 0 (only with --limit) */
			uint32_t hdr[4] = {0}; /* VIRTIO_BLK_T_IN, reserved, sector 0 */

			memcpy(pkt, hdr, sizeof(hdr));
			name = "blk", q = 0, size = 128, len = 16, nd = 3;
			d[0] = (struct desc){BUF(k), 16, 1};
			d[1] = (struct desc){BUF(k) + 0x1000, 4096, 1 | 2};
			d[2] = (struct desc){BUF(k) + 0x100, 1, 2};
			used_bytes = 4096;
			break;
		}
		case 19: { /* vsock tx: an RST for no connection, taken and dropped */
			if (limit || measure)
				continue; /* vsock has no rate limiter */
			uint64_t src = 3, dst = 2;
			uint32_t sport = 1, dport = 9999;
			uint16_t type = 1, op = 3;

			memcpy(pkt, &src, 8);
			memcpy(pkt + 8, &dst, 8);
			memcpy(pkt + 16, &sport, 4);
			memcpy(pkt + 20, &dport, 4);
			memcpy(pkt + 28, &type, 2);
			memcpy(pkt + 30, &op, 2);
			name = "vsock", q = 1, size = 256, len = 44;
			d[0] = (struct desc){BUF(k), len, 0};
			used_bytes = len;
			break;
		}
		case 1: /* net tx: vnet header of zeros, a broadcast frame of a local type */
			if (measure)
				continue;
			memset(pkt + 12, 0xff, 6);
			memcpy(pkt + 18, "\x06\x74\x68\x61\x77\x00\x88\xb5", 8);
			name = "net", q = 1, size = 256, len = limit ? 1036 : 72;
			d[0] = (struct desc){BUF(k), len, 0};
			used_bytes =
			    len - 12; /* the limiter counts the frame, not the vnet header */
			break;
		default:
			continue;
		}
		if ((id != 4 && wbytes(&g, BUF(k), pkt, len < 72 ? len : 72)) ||
		    queue_up(&g, k, q, size, d, nd))
			goto out;
		if (limit || measure) {
			uint64_t t1, t2;
			double secs, rate;

			snprintf(line, sizeof(line), "flood %#llx %u %#llx %u 0",
				 (unsigned long long)base, q, (unsigned long long)RING(k), size);
			status = 3;
			if (send_line(&g, line))
				goto out;
			t1 = now_ns();
			sleep(seconds);
			if (send_line(&g, "") ||
			    read_line(&g, "PROBE flood", line, sizeof(line), 30000)) {
				fprintf(stderr, "flood: the probe did not end its flood\n");
				goto out;
			}
			t2 = now_ns();
			sscanf(strstr(line, "published="), "published=%llu", &published);
			/* A held-back queue stays full: all but `size` chains were used. */
			chains = published > size ? published - size : 0;
			secs = (double)(t2 - t1) / 1e9;
			rate = ((double)chains * (double)used_bytes - (double)(limit / 10)) / secs;
			printf("dev=%s limit_Bps=%llu achieved_Bps=%.0f ratio=%.4f chains=%llu "
			       "seconds=%.3f\n",
			       name, limit, rate, limit ? rate / (double)limit : 0.0, chains, secs);
			fflush(stdout);
			if (probe(&g, line, sizeof(line), "ping"))
				goto out;
			devs++;
			continue;
		}
		status = 4;
		if (time_gets(fd, n, lat, &idle))
			goto out;
		status = 3;
		snprintf(line, sizeof(line), "flood %#llx %u %#llx %u 0", (unsigned long long)base,
			 q, (unsigned long long)RING(k), size);
		if (send_line(&g, line))
			goto out;
		usleep(100 * 1000); /* the flood is under way */
		status = 4;
		if (time_gets(fd, n, lat, &flood))
			goto out;
		status = 3;
		if (send_line(&g, "") || read_line(&g, "PROBE flood", line, sizeof(line), 30000)) {
			fprintf(stderr, "flood: the probe did not end its flood\n");
			goto out;
		}
		sscanf(strstr(line, "published="), "published=%llu", &published);
		if (probe(&g, line, sizeof(line), "ping"))
			goto out;
		printf("dev=%s requests=%u idle_p50_us=%.1f idle_p99_us=%.1f idle_max_us=%.1f "
		       "flood_p50_us=%.1f flood_p99_us=%.1f flood_max_us=%.1f p99_ratio=%.2f "
		       "published=%llu\n",
		       name, n, idle.p50 / 1e3, idle.p99 / 1e3, idle.max / 1e3, flood.p50 / 1e3,
		       flood.p99 / 1e3, flood.max / 1e3, (double)flood.p99 / (double)idle.p99,
		       published);
		fflush(stdout);
		devs++;
	}
	status = devs ? 0 : 3;
	if (!devs)
		fprintf(stderr, "flood: no device found\n");
out:
	if (fd >= 0)
		close(fd);
	if (g.pid > 0) {
		kill(-g.pid, SIGTERM);
		waitpid(g.pid, NULL, 0);
	}
	free(lat);
	return status;
}
