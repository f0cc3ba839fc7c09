/* A container from a thaw-pool's prepared VMMs (docs/oci.md, "Prepared VMMs"): the pool
 * client create uses to take one, and the keeper, the small process the engine's shim or
 * conmon sees as the container's init. The VMM is the pool's child, so the keeper stands
 * in for it: it holds a pidfd of the VMM, relays the guest's console to its stdio,
 * forwards the signals it gets, and exits with the VM's status, which the pool (the
 * VMM's reaper) reports. */
#include "oci/oci.h"

#include "api/api.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define SNAP_HEAD 4096 /* a snapshot's header: its table's checksum, so its content's */

int oci_unix_connect(const char *path)
{
	struct sockaddr_un sa;
	char short_path[64];
	const char *slash;
	int dir, fd;

	if (strlen(path) < sizeof(sa.sun_path))
		return api_client_connect(path);
	/* Too long for sun_path: through the directory's descriptor. */
	slash = strrchr(path, '/');
	if (!slash || slash == path || strlen(slash + 1) > 32)
		return -ENAMETOOLONG;
	{
		char d[PATH_MAX];

		snprintf(d, sizeof(d), "%.*s", (int)(slash - path), path);
		dir = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (dir < 0)
		return -errno;
	snprintf(short_path, sizeof(short_path), "/proc/self/fd/%d/%s", dir, slash + 1);
	fd = api_client_connect(short_path);
	close(dir);
	return fd;
}

int oci_pool_call(const char *sock, const char *method, const char *path, const char *body,
		  struct json_object **out, char *err, size_t errlen)
{
	struct api_response *resp = malloc(sizeof(*resp));
	int fd, ret;

	if (out)
		*out = NULL;
	if (!resp)
		return errf(err, errlen, -ENOMEM, "out of memory");
	fd = oci_unix_connect(sock);
	if (fd < 0) {
		ret = errf(err, errlen, fd, "the pool's socket %s: %s", sock, strerror(-fd));
		goto out;
	}
	ret = api_client_request(fd, method, path, body, resp);
	close(fd);
	if (ret) {
		ret = errf(err, errlen, ret, "pool %s: %s %s: %s", sock, method, path,
			   strerror(-ret));
	} else if (resp->status >= 300) {
		char fault[512];

		api_client_fault_message(resp, fault, sizeof(fault));
		ret = errf(err, errlen, resp->status == 404 ? -ENOENT : -EIO,
			   "pool %s: %s %s: %d %s", sock, method, path, resp->status, fault);
	} else if (out && resp->body_len) {
		*out = json_tokener_parse(resp->body);
		if (!*out)
			ret = errf(err, errlen, -EPROTO, "pool %s: %s %s: the answer is not JSON",
				   sock, method, path);
	}
out:
	free(resp);
	return ret;
}

int oci_snapshot_same(const char *a, const char *b)
{
	char ha[SNAP_HEAD], hb[SNAP_HEAD];
	const char *p[2] = {a, b};
	char *h[2] = {ha, hb};
	struct stat st[2];

	for (int i = 0; i < 2; i++) {
		int fd = open(p[i], O_RDONLY | O_CLOEXEC);
		ssize_t n;

		if (fd < 0)
			return -errno;
		if (fstat(fd, &st[i]) < 0) {
			close(fd);
			return -errno;
		}
		n = pread(fd, h[i], SNAP_HEAD, 0);
		close(fd);
		if (n != SNAP_HEAD)
			return 0;
	}
	if (st[0].st_dev == st[1].st_dev && st[0].st_ino == st[1].st_ino)
		return 1;
	return st[0].st_size == st[1].st_size && !memcmp(ha, hb, SNAP_HEAD);
}

static int get_str(json_object *o, const char *key, char *dst, size_t cap)
{
	return api_json_get_str(o, key, dst, cap);
}

/* The pool of `snapshot` among those `GET /pools` lists, and its stock. 1 with the
 * reason in err when there is none to use. */
static int find_pool(const char *sock, const char *snapshot, char *pool_id, size_t idlen, char *err,
		     size_t errlen)
{
	json_object *all = NULL, *pools;
	int ret, empty = 0;

	ret = oci_pool_call(sock, "GET", "/pools", NULL, &all, err, errlen);
	if (ret)
		return 1; /* an absent or stopped pool: start the VMM ourselves */
	pools = json_object_object_get_ex(all, "pools", &pools) ? pools : all;
	ret = errf(err, errlen, 1, "pool %s has no pool of the bundle's snapshot", sock);
	for (size_t i = 0;
	     json_object_is_type(pools, json_type_array) && i < json_object_array_length(pools);
	     i++) {
		json_object *p = json_object_array_get_idx(pools, i), *cfg, *v;
		char path[PATH_MAX];

		if (!json_object_object_get_ex(p, "config", &cfg) ||
		    get_str(cfg, "snapshot_path", path, sizeof(path)) ||
		    oci_snapshot_same(path, snapshot) != 1)
			continue;
		if (!json_object_object_get_ex(p, "prepared", &v) || json_object_get_int(v) < 1) {
			empty++;
			continue;
		}
		if (get_str(p, "id", pool_id, idlen))
			continue;
		ret = 0;
		break;
	}
	if (ret && empty)
		ret = errf(err, errlen, 1, "pool %s: no prepared VMM in stock for this snapshot",
			   sock);
	json_object_put(all);
	return ret;
}

int oci_pool_take(const char *sock, const char *snapshot, bool clock_realtime,
		  struct oci_pool_clone *pc, char *err, size_t errlen)
{
	json_object *ans = NULL, *clones, *c0, *v;
	char path[128], body[128];
	int ret;

	memset(pc, 0, sizeof(*pc));
	ret = find_pool(sock, snapshot, pc->pool_id, sizeof(pc->pool_id), err, errlen);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/pools/%s/clones", pc->pool_id);
	snprintf(body, sizeof(body), "{\"count\": 1, \"paused\": true, \"clock_realtime\": %s}",
		 clock_realtime ? "true" : "false");
	ret = oci_pool_call(sock, "POST", path, body, &ans, err, errlen);
	if (ret)
		return ret;
	if (!json_object_object_get_ex(ans, "clones", &clones) ||
	    !(c0 = json_object_array_get_idx(clones, 0)) ||
	    get_str(c0, "id", pc->id, sizeof(pc->id)) ||
	    get_str(c0, "api_sock", pc->api_sock, sizeof(pc->api_sock)) ||
	    get_str(c0, "console_sock", pc->console_sock, sizeof(pc->console_sock)) ||
	    get_str(c0, "console_log", pc->console_log, sizeof(pc->console_log)) ||
	    !json_object_object_get_ex(c0, "pid", &v) || json_object_get_int(v) <= 0) {
		ret = errf(err, errlen, -EPROTO, "pool %s: POST %s: no clone in the answer %s",
			   sock, path, json_object_to_json_string(ans));
		goto out;
	}
	pc->pid = json_object_get_int(v);
	pc->from_stock =
	    json_object_object_get_ex(c0, "from_stock", &v) && json_object_get_boolean(v);
	if (json_object_object_get_ex(c0, "vsock", &v) && json_object_is_type(v, json_type_string))
		snprintf(pc->vsock, sizeof(pc->vsock), "%s", json_object_get_string(v));
out:
	json_object_put(ans);
	return ret;
}

int oci_pool_exit(const char *sock, const char *clone, int ms, int *status, int *sig, char *err,
		  size_t errlen)
{
	char path[OCI_POOL_CLONE_MAX + 16], state[16];
	int ret = 0;

	snprintf(path, sizeof(path), "/clones/%s", clone);
	for (int waited = 0;; waited += 10) {
		json_object *o = NULL, *v;

		ret = oci_pool_call(sock, "GET", path, NULL, &o, err, errlen);
		if (ret)
			return ret;
		if (get_str(o, "state", state, sizeof(state))) {
			json_object_put(o);
			return errf(err, errlen, -EPROTO, "pool %s: GET %s: no state", sock, path);
		}
		if (!strcmp(state, "exited")) {
			*status = json_object_object_get_ex(o, "exit_status", &v) && v
				      ? json_object_get_int(v)
				      : -1;
			*sig = json_object_object_get_ex(o, "exit_signal", &v) && v
				   ? json_object_get_int(v)
				   : 0;
			json_object_put(o);
			return 0;
		}
		json_object_put(o);
		if (waited >= ms)
			return errf(err, errlen, -ETIMEDOUT,
				    "pool %s: clone %s not reported exited within %d ms", sock,
				    clone, ms);
		usleep(10000);
	}
}

int oci_pool_forget(const char *sock, const char *clone, int ms, char *err, size_t errlen)
{
	char path[OCI_POOL_CLONE_MAX + 16];
	int status, sig, ret;

	snprintf(path, sizeof(path), "/clones/%s", clone);
	ret = oci_pool_exit(sock, clone, 0, &status, &sig, err, errlen);
	if (ret == -ENOENT)
		return 0; /* forgotten already */
	if (ret == -ETIMEDOUT) {
		/* still running: the pool kills it, reaps it in its loop and cleans it */
		ret = oci_pool_call(sock, "DELETE", path, NULL, NULL, err, errlen);
		if (ret && ret != -ENOENT)
			return ret;
		ret = oci_pool_exit(sock, clone, ms, &status, &sig, err, errlen);
		if (ret == -ENOENT)
			return 0;
	}
	if (ret)
		return ret;
	ret = oci_pool_call(sock, "DELETE", path, NULL, NULL, err, errlen);
	return ret == -ENOENT ? 0 : ret;
}

/* ---- the keeper ----------------------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the engine closed our output: the guest goes on */
		p += w;
		n -= (size_t)w;
	}
}

/* Copies what the VMM appended to its console log to our stdout. */
static void drain_log(int log)
{
	char buf[16384];
	ssize_t n;

	while ((n = read(log, buf, sizeof(buf))) > 0)
		write_all(STDOUT_FILENO, buf, (size_t)n);
}

/* Only a terminal, pipe or socket can be polled (thaw's rule for its own stdin). */
static bool stdin_pollable(void)
{
	struct stat st;

	return fstat(STDIN_FILENO, &st) == 0 &&
	       (isatty(STDIN_FILENO) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

int oci_keeper_signals(sigset_t *set)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

	sigemptyset(set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(set, sigs[i]);
	return sigprocmask(SIG_BLOCK, set, NULL) < 0 ? -errno : 0;
}

int oci_keeper_run(const struct oci_keeper *k)
{
	struct pollfd p[4];
	sigset_t set;
	int sfd, ino, in = -1, status = -1, sig = 0, ret;
	char err[PATH_MAX + 256];
	bool have_in = stdin_pollable();

	signal(SIGPIPE, SIG_IGN);
	oci_keeper_signals(&set);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (sfd < 0 || ino < 0 || inotify_add_watch(ino, k->console_log, IN_MODIFY) < 0) {
		log_err("keeper: signalfd/inotify on %s: %s", k->console_log, strerror(errno));
		return 255;
	}
	if (have_in) {
		in = oci_unix_connect(k->console_sock);
		if (in < 0)
			log_warn("keeper: the guest's console input %s: %s", k->console_sock,
				 strerror(-in));
	}
	p[0] = (struct pollfd){.fd = k->vmm_pidfd, .events = POLLIN};
	p[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
	p[2] = (struct pollfd){.fd = ino, .events = POLLIN};
	p[3] = (struct pollfd){.fd = in >= 0 ? STDIN_FILENO : -1, .events = POLLIN};
	drain_log(k->log_fd);
	for (;;) {
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("keeper: poll: %s", strerror(errno));
			return 255;
		}
		if (p[2].revents) {
			char ev[4096];

			while (read(ino, ev, sizeof(ev)) > 0)
				;
			drain_log(k->log_fd);
		}
		if (p[3].revents) {
			char buf[4096];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n > 0)
				write_all(in, buf, (size_t)n);
			else if (n == 0 || errno != EINTR)
				p[3].fd = -1; /* the engine closed the container's stdin */
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				if (si.ssi_signo != SIGWINCH &&
				    syscall(SYS_pidfd_send_signal, k->vmm_pidfd, (int)si.ssi_signo,
					    NULL, 0) < 0 &&
				    errno != ESRCH)
					log_warn("keeper: forwarding signal %u: %s", si.ssi_signo,
						 strerror(errno));
		}
		if (p[0].revents)
			break;
	}
	drain_log(k->log_fd);
	ret = oci_pool_exit(k->pool, k->clone, OCI_KEEPER_EXIT_MS, &status, &sig, err, sizeof(err));
	if (ret) {
		log_err("keeper: the VM's exit status: %s", err);
		return 255;
	}
	if (sig > 0) {
		/* Die of the VMM's signal: the engine reports it as it would the VMM's
		 * (SIGKILL: 137). */
		sigset_t all;

		signal(sig, SIG_DFL);
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		kill(getpid(), sig);
		return 128 + sig;
	}
	return status >= 0 ? status : 255;
}
