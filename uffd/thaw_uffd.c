/* thaw-uffd: an external page-fault handler. Listens on a unix socket; a VMM (thaw with
 * --mem-backend uffd-ext, or Firecracker with a Uffd memory backend) connects and sends
 * its userfaultfd and a JSON array of memory regions; thaw-uffd serves that VM's faults
 * from a snapshot (or a raw memory file) until the VMM hangs up, then takes the next.
 *
 *   thaw-uffd --socket PATH (--snapshot FILE | --mem-file FILE) [--strategy S]
 *             [--record FILE] [--count N] [--allow-uid UID] [--handshake-timeout-ms MS]
 *             [--log-level L]
 *   thaw-uffd embed --snapshot IN --workingset WS --out OUT
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "restore/snapshot.h"
#include "uffd/uffd.h"
#include "common/log.h"

/* A VMM sends its handshake right after connecting (Firecracker and thaw alike): seconds
 * are plenty, and the handler serves nobody else meanwhile. */
#define HANDSHAKE_TIMEOUT_MS	 3000u
#define HANDSHAKE_TIMEOUT_MAX_MS 600000u

static void usage(FILE *f)
{
	fprintf(f,
		"usage: thaw-uffd --socket PATH (--snapshot FILE | --mem-file FILE)\n"
		"                 [--strategy MODE[:CHUNK][,OPTION]...] [--record FILE]\n"
		"                 [--count N] [--allow-uid UID] [--handshake-timeout-ms MS]\n"
		"                 [--log-level error|warn|info|debug]\n"
		"       thaw-uffd embed --snapshot IN --workingset WS --out OUT\n"
		"  strategies: ondemand[:4k..2m], record, prefetch[:CHUNK] (working set from the\n"
		"  snapshot, or ws=FILE); options nozero, gap=N, extent=SIZE, depth=N.\n"
		"  --count N: serve N VMs one after the other, then exit (0: no limit).\n"
		"  --allow-uid UID: the one uid whose VMMs may connect (default: our own).\n"
		"  --handshake-timeout-ms MS: drop a VMM whose handshake has not arrived by\n"
		"  then (default 3000).\n"
		"  embed: writes OUT = IN with WS (a --record file) as its workingset section.\n");
}

/* A whole decimal number up to `max`: -EINVAL otherwise. */
static int parse_ulong(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	*v = strtoul(s, &end, 10);
	if (errno || *end || *v > max)
		return -EINVAL;
	return 0;
}

/* What every VM is served from. */
struct source {
	struct snap *snap;
	const char *path;
	const uint8_t *mem;
	uint64_t size;
	int fd;
	uint64_t off;
	const uint8_t *zero;
	uint64_t *ws;
	size_t nws;
};

static int open_source(struct source *src, const char *snapshot, const char *mem_file,
		       const struct uffd_strategy *st)
{
	char err[512];
	int ret;

	src->fd = -1;
	if (snapshot) {
		struct snap_memory_loc loc;
		uint64_t zn;

		src->path = snapshot;
		ret = snap_open(snapshot, &src->snap, err, sizeof(err));
		if (!ret)
			ret = snap_memory(src->snap, &loc);
		if (!ret)
			ret = snap_memory_open(src->snap, &src->fd, err, sizeof(err));
		if (ret) {
			log_err("%s: %s", snapshot, ret == -EBADMSG ? err : strerror(-ret));
			return ret;
		}
		src->size = loc.size;
		src->off = loc.offset;
		if (snap_memory_zero_bitmap(src->snap, &src->zero, &zn) ||
		    zn != src->size / UFFD_PAGE)
			src->zero = NULL;
	} else {
		struct stat sb;

		src->path = mem_file;
		src->fd = open(mem_file, O_RDONLY | O_CLOEXEC);
		if (src->fd < 0 || fstat(src->fd, &sb) < 0) {
			log_err("%s: %s", mem_file, strerror(errno));
			return -errno;
		}
		src->size = (uint64_t)sb.st_size & ~(uint64_t)(UFFD_PAGE - 1);
	}
	if (src->size == 0) {
		log_err("%s: no memory to serve", src->path);
		return -EINVAL;
	}
	src->mem =
	    mmap(NULL, src->size, PROT_READ, MAP_PRIVATE | MAP_NORESERVE, src->fd, (off_t)src->off);
	if (src->mem == MAP_FAILED) {
		log_err("mmap of %s: %s", src->path, strerror(errno));
		return -errno;
	}
	if (st->mode != UFFD_MODE_PREFETCH)
		return 0;
	if (st->ws_path[0]) {
		ret = uffd_ws_read(st->ws_path, src->snap ? snap_id(src->snap) : NULL,
				   src->size / UFFD_PAGE, &src->ws, &src->nws, err, sizeof(err));
		if (ret) {
			log_err("%s", err);
			return ret;
		}
	} else {
		const uint64_t *w;

		if (!src->snap || snap_workingset(src->snap, &w, &src->nws)) {
			log_err("prefetch: %s has no workingset section: give ws=FILE", src->path);
			return -ENOENT;
		}
		src->ws = malloc(src->nws * sizeof(*w) + 8);
		if (!src->ws)
			return -ENOMEM;
		memcpy(src->ws, w, src->nws * sizeof(*w));
	}
	return 0;
}

/* Releases what open_source took (a partly opened source too), so a handler that ends
 * leaves nothing behind for LeakSanitizer (make SAN=1) to report. */
static void close_source(struct source *src)
{
	if (src->mem && src->mem != MAP_FAILED)
		munmap((void *)src->mem, src->size);
	if (src->fd >= 0)
		close(src->fd);
	free(src->ws);
	if (src->snap)
		snap_close(src->snap);
	memset(src, 0, sizeof(*src));
	src->fd = -1;
}

/* The socket file is created 0600 by bind itself: the mode of an unbound socket's inode
 * (set with fchmod) is what bind gives the file, minus the umask. A chmod after bind would
 * leave a moment in which another user could connect. */
static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat sb;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("--socket %s: path too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path); /* a stale socket from an earlier run */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_err("socket: %s", strerror(errno));
		return -1;
	}
	/* only the VMM (same user, or --allow-uid) may hand us its memory */
	if (fchmod(fd, 0600) < 0) {
		log_err("fchmod of the socket before bind: %s", strerror(errno));
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_err("bind %s: %s", path, strerror(errno));
		goto fail;
	}
	/* A kernel that ignored the fchmod would have bound it wider: refuse to serve. */
	if (lstat(path, &sb) < 0 || (sb.st_mode & 07777 & ~0600)) {
		log_err("%s: bound with mode %04o, not 0600: refusing to listen", path,
			(unsigned)(sb.st_mode & 07777));
		unlink(path);
		goto fail;
	}
	if (listen(fd, 16) < 0) {
		log_err("listen on %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* Who may connect and how long a handshake may take. */
struct admission {
	uid_t allow_uid;
	unsigned timeout_ms;
};

/* Admits a connection: its peer's uid must be the allowed one (SO_PEERCRED, taken at
 * connect), and its handshake must arrive within the timeout, so that neither another
 * user nor one client that never finishes keeps the handler from the next VMM. Returns
 * the handshake's length with the message in `msg` and the uffd in *uffd, or -errno
 * after logging why the connection is dropped. */
static int admit(int conn, const struct admission *adm, struct ucred *cred, char *msg, size_t len,
		 int *uffd)
{
	struct pollfd p = {.fd = conn, .events = POLLIN};
	socklen_t clen = sizeof(*cred);
	char err[512];
	int ret;

	*uffd = -1;
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, cred, &clen) < 0) {
		ret = -errno;
		log_err("SO_PEERCRED: %s: connection dropped", strerror(-ret));
		return ret;
	}
	if (cred->uid != adm->allow_uid) {
		log_warn("refused a connection from pid %d uid %u: only uid %u may connect "
			 "(--allow-uid)",
			 (int)cred->pid, (unsigned)cred->uid, (unsigned)adm->allow_uid);
		return -EPERM;
	}
	do
		ret = poll(&p, 1, (int)adm->timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ret = -errno;
		log_err("vm pid %d: poll: %s", (int)cred->pid, strerror(-ret));
		return ret;
	}
	if (ret == 0) {
		log_warn("vm pid %d uid %u: no handshake within %u ms (--handshake-timeout-ms): "
			 "connection dropped",
			 (int)cred->pid, (unsigned)cred->uid, adm->timeout_ms);
		return -ETIMEDOUT;
	}
	/* Readable: the one recvmsg takes what is there and cannot block. */
	ret = uffd_handshake_recv(conn, msg, len, uffd, err, sizeof(err));
	if (ret < 0)
		log_err("vm pid %d: handshake: %s", (int)cred->pid, err);
	return ret;
}

/* Serves one connected VMM until it hangs up: false when the connection was not
 * admitted (it does not count towards --count). */
static bool serve_one(int conn, const struct admission *adm, const struct source *src,
		      const struct uffd_strategy *st, const char *record)
{
	struct uffd_region regions[UFFD_MAX_REGIONS];
	char msg[UFFD_MSG_MAX + 1], err[512], line[400];
	struct uffd_server *srv = NULL;
	struct uffd_stats stats;
	struct ucred cred = {0};
	size_t nr;
	int uffd = -1, ret;
	uint64_t t0 = now_ns();

	ret = admit(conn, adm, &cred, msg, sizeof(msg), &uffd);
	if (ret < 0) {
		if (uffd >= 0)
			close(uffd);
		return false;
	}
	if (uffd_regions_parse(msg, (size_t)ret, regions, UFFD_MAX_REGIONS, &nr, err,
			       sizeof(err))) {
		log_err("vm pid %d: %s", (int)cred.pid, err);
		goto out;
	}
	struct uffd_server_opts so = {.uffd = uffd,
				      .regions = regions,
				      .nr_regions = nr,
				      .src = src->mem,
				      .mem_size = src->size,
				      .src_fd = src->fd,
				      .src_off = src->off,
				      .zero_bits = src->zero,
				      .ws = src->ws,
				      .nws = src->nws,
				      .strategy = *st,
				      .record = record != NULL};

	ret = uffd_server_create(&so, &srv);
	if (ret) {
		log_err("vm pid %d: %s (do its regions lie inside the %llu bytes of %s?)",
			(int)cred.pid, strerror(-ret), (unsigned long long)src->size, src->path);
		goto out;
	}
	log_info("vm pid %d: serving %zu region(s) from %s", (int)cred.pid, nr, src->path);
	for (;;) {
		char junk[256];
		ssize_t n;

		ret = uffd_server_run(srv, conn);
		if (ret) {
			log_err("vm pid %d: %s", (int)cred.pid, strerror(-ret));
			break;
		}
		/* the connection polled readable: the VMM ended, or sent something */
		n = recv(conn, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
	uffd_server_stats(srv, &stats);
	uffd_stats_format(&stats, line, sizeof(line));
	log_info("vm pid %d: done after %.1f ms: %s", (int)cred.pid, (double)(now_ns() - t0) / 1e6,
		 line);
	if (record) {
		size_t n;
		const uint64_t *pages = uffd_server_recorded(srv, &n);

		ret = uffd_ws_write(record, src->snap ? snap_id(src->snap) : NULL, src->path, pages,
				    n);
		if (ret)
			log_err("writing the working set to %s: %s", record, strerror(-ret));
		else
			log_info("recorded %zu pages to %s", n, record);
	}
out:
	uffd_server_destroy(srv);
	if (uffd >= 0)
		close(uffd);
	return true;
}

static int embed_main(int argc, char **argv)
{
	static const struct option opts[] = {{"snapshot", required_argument, NULL, 's'},
					     {"workingset", required_argument, NULL, 'w'},
					     {"out", required_argument, NULL, 'o'},
					     {NULL, 0, NULL, 0}};
	const char *in = NULL, *ws = NULL, *out = NULL;
	struct snap *s;
	struct snap_memory_loc loc;
	uint64_t *pages;
	size_t n;
	char err[512];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			in = optarg;
		else if (c == 'w')
			ws = optarg;
		else if (c == 'o')
			out = optarg;
		else
			return 1;
	}
	if (!in || !ws || !out) {
		usage(stderr);
		return 1;
	}
	if (snap_open(in, &s, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	snap_memory(s, &loc);
	if (uffd_ws_read(ws, snap_id(s), loc.size / UFFD_PAGE, &pages, &n, err, sizeof(err))) {
		snap_close(s);
		log_err("%s", err);
		return 1;
	}
	snap_close(s);
	if (uffd_ws_embed(in, pages, n, out, err, sizeof(err))) {
		free(pages);
		log_err("%s", err);
		return 1;
	}
	free(pages);
	printf("%s: %zu working-set pages\n", out, n);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 'S'},
					     {"snapshot", required_argument, NULL, 's'},
					     {"mem-file", required_argument, NULL, 'm'},
					     {"strategy", required_argument, NULL, 't'},
					     {"record", required_argument, NULL, 'r'},
					     {"count", required_argument, NULL, 'c'},
					     {"log-level", required_argument, NULL, 'L'},
					     {"allow-uid", required_argument, NULL, 'u'},
					     {"handshake-timeout-ms", required_argument, NULL, 'T'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *sock = NULL, *snapshot = NULL, *mem_file = NULL, *strategy = NULL;
	const char *record = NULL;
	struct uffd_strategy st;
	struct source src = {0};
	struct admission adm = {.allow_uid = geteuid(), .timeout_ms = HANDSHAKE_TIMEOUT_MS};
	unsigned long count = 0, served = 0, v;
	char err[512];
	int c, lfd;

	log_set_prefix("thaw-uffd");
	if (argc > 1 && !strcmp(argv[1], "embed"))
		return embed_main(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			sock = optarg;
			break;
		case 's':
			snapshot = optarg;
			break;
		case 'm':
			mem_file = optarg;
			break;
		case 't':
			strategy = optarg;
			break;
		case 'r':
			record = optarg;
			break;
		case 'c':
			count = strtoul(optarg, NULL, 10);
			break;
		case 'u':
			/* (uid_t)-1 is no uid: chown's "unchanged" */
			if (parse_ulong(optarg, UINT_MAX - 1, &v)) {
				log_err("--allow-uid: '%s' is not a uid", optarg);
				return 1;
			}
			adm.allow_uid = (uid_t)v;
			break;
		case 'T':
			if (parse_ulong(optarg, HANDSHAKE_TIMEOUT_MAX_MS, &v) || v == 0) {
				log_err("--handshake-timeout-ms: '%s' is not 1..%u", optarg,
					HANDSHAKE_TIMEOUT_MAX_MS);
				return 1;
			}
			adm.timeout_ms = (unsigned)v;
			break;
		case 'L':
			if (log_set_level_name("--log-level", optarg))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!sock || !snapshot == !mem_file || optind != argc) {
		usage(stderr);
		return 1;
	}
	if (uffd_strategy_parse(strategy, &st, err, sizeof(err))) {
		log_err("%s", err);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (open_source(&src, snapshot, mem_file, &st)) {
		close_source(&src);
		return 1;
	}
	lfd = listen_on(sock);
	if (lfd < 0) {
		close_source(&src);
		return 1;
	}
	printf("THAW_UFFD_READY socket=%s\n", sock);
	fflush(stdout);
	while (count == 0 || served < count) {
		int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			log_err("accept: %s", strerror(errno));
			close_source(&src);
			return 1;
		}
		if (serve_one(conn, &adm, &src, &st, record))
			served++;
		close(conn);
	}
	unlink(sock);
	close(lfd);
	close_source(&src);
	return 0;
}
