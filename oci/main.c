/* thaw-oci: the OCI runtime command line over thaw (docs/oci.md).
 *
 * Every command is one short-lived process. `create` starts the VMM (thaw, jailed through
 * thaw-jailer when the bundle asks for a cgroup or a network namespace) with the caller's
 * stdio as the guest's console, loads the bundle's snapshot paused over the VMM's API
 * socket, writes <root>/<id>/state.json and the pid file, and exits: the VMM is the
 * container's init, reaped by the engine's shim (a subreaper). The other commands read
 * the state file and act on the VMM's process or API. With org.thaw.pool, `create` takes a
 * thaw-pool's prepared VMM instead and forks a keeper (oci/pool.c) that stands in for it
 * as the engine's child. */
#include "oci/oci.h"

#include "api/api.h"
#include "common/argv.h"
#include "common/log.h"
#include "jailer/jailer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <libgen.h>
#include <unistd.h>

#define DEFAULT_ROOT  "/run/thaw-oci"
#define CONFIG_MAX    (1 << 20)
#define API_WAIT_MS   10000
#define EXIT_WAIT_MS  10000
#define JAIL_SNAPSHOT "/snapshot"
/* In the state directory (or the jail's root): drive-<id>.qcow2, the overlay each
 * container writes; jailed, drive-<id>.base is the base image linked in read-only. */
#define DRIVE_PREFIX "drive-"
#define VSOCK_NAME   "vsock.sock" /* the vsock device's host socket, beside api.sock */
#define MMDS_KEY     "oci"	  /* the clone's metadata: process args, env, cwd, id */
#define VERSION	     "0.1"

struct ctx {
	const char *root;
	const char *log_path;
	bool log_json;
	int log_fd;
	char bindir[PATH_MAX]; /* where thaw, thaw-static and thaw-jailer are */
};

/* ---- errors, as runc reports them: one line on stderr and one in --log ---------------- */

static void rfc3339(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%09ldZ", ts.tv_nsec);
}

static void __attribute__((format(printf, 3, 0)))
vreport(struct ctx *c, const char *level, const char *fmt, va_list ap)
{
	char msg[2048], when[64];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!strcmp(level, "error"))
		fprintf(stderr, "thaw-oci: %s\n", msg);
	if (c->log_fd < 0)
		return;
	rfc3339(when, sizeof(when));
	if (c->log_json) {
		json_object *o = json_object_new_object();
		const char *t;

		json_object_object_add(o, "level", json_object_new_string(level));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		json_object_object_add(o, "time", json_object_new_string(when));
		t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE);
		dprintf(c->log_fd, "%s\n", t);
		json_object_put(o);
	} else {
		dprintf(c->log_fd, "time=\"%s\" level=%s msg=\"%s\"\n", when, level, msg);
	}
}

static void __attribute__((format(printf, 3, 4)))
report(struct ctx *c, const char *level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, level, fmt, ap);
	va_end(ap);
}

/* Reports an error; returns 1, the exit status of a failed command. */
static int __attribute__((format(printf, 2, 3))) fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(c, "error", fmt, ap);
	va_end(ap);
	return 1;
}

/* ---- options ------------------------------------------------------------------------------ */

struct opt {
	const char *name;
	char shortname;
	bool has_arg;
	const char *value; /* set when given ("" for a flag) */
};

/* Parses urfave/cli-style options (-x, --name, -name, --name=value, --name value) and
 * collects positional arguments into pos. Returns the count or -1 after reporting. */
static int parse_opts(struct ctx *c, const char *cmd, int argc, char **argv, struct opt *opts,
		      const char **pos, int maxpos)
{
	int npos = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *name, *eq;
		size_t len;
		struct opt *o = NULL;

		if (a[0] != '-' || !a[1]) {
			if (npos == maxpos)
				return fail(c, "%s: unexpected argument '%s'", cmd, a), -1;
			pos[npos++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			while (++i < argc && npos < maxpos)
				pos[npos++] = argv[i];
			break;
		}
		name = a + 1 + (a[1] == '-');
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		for (struct opt *p = opts; p->name; p++)
			if ((strlen(p->name) == len && !strncmp(p->name, name, len)) ||
			    (len == 1 && p->shortname == name[0]))
				o = p;
		if (!o)
			return fail(c, "%s: unknown option '%s'", cmd, a), -1;
		if (!o->has_arg) {
			o->value = "";
		} else if (eq) {
			o->value = eq + 1;
		} else if (i + 1 < argc) {
			o->value = argv[++i];
		} else {
			return fail(c, "%s: option '%s' needs a value", cmd, a), -1;
		}
	}
	return npos;
}

static const char *optval(const struct opt *opts, const char *name)
{
	for (; opts->name; opts++)
		if (!strcmp(opts->name, name))
			return opts->value;
	return NULL;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static int path_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int path_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	if (path_fmt(tmp, sizeof(tmp), "%s", path))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(tmp, mode) < 0 && errno != EEXIST ? -errno : 0;
}

/* Writes `text` to `path` through a temporary name and a rename. */
static int write_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX + 16];
	size_t len = strlen(text);
	int fd, ret = 0;

	if (path_fmt(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid()))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		ret = -EIO;
	close(fd);
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static int read_file(const char *path, char **out)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size > CONFIG_MAX) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return -EIO;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static void state_paths(struct ctx *c, const char *id, char *dir, char *file)
{
	snprintf(dir, PATH_MAX, "%s/%s", c->root, id);
	snprintf(file, PATH_MAX, "%s/%s/state.json", c->root, id);
}

/* One API request to the VMM of s. The socket's directory may be too deep for a
 * sun_path, so the request goes through a relative path from that directory. */
static int api_call(const char *api_dir, const char *method, const char *path, const char *body,
		    char *err, size_t errlen)
{
	struct api_response *resp = malloc(sizeof(*resp));
	int cwd = open(".", O_PATH | O_CLOEXEC), fd, ret;

	if (!resp || cwd < 0) {
		free(resp);
		if (cwd >= 0)
			close(cwd);
		return errf(err, errlen, -ENOMEM, "out of memory");
	}
	if (chdir(api_dir) < 0) {
		ret = errf(err, errlen, -errno, "%s: %s", api_dir, strerror(errno));
		goto out;
	}
	fd = api_client_connect("api.sock");
	if (fd < 0) {
		ret = errf(err, errlen, fd, "the VMM's API socket %s/api.sock: %s", api_dir,
			   strerror(-fd));
		goto out;
	}
	ret = api_client_request(fd, method, path, body, resp);
	close(fd);
	if (ret) {
		ret = errf(err, errlen, ret, "%s %s: %s", method, path, strerror(-ret));
	} else if (resp->status >= 300) {
		char fault[512];

		api_client_fault_message(resp, fault, sizeof(fault));
		ret = errf(err, errlen, -EIO, "%s %s: %d %s", method, path, resp->status, fault);
	}
out:
	if (fchdir(cwd) < 0 && !ret)
		ret = -errno;
	close(cwd);
	free(resp);
	return ret;
}

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Signals process pid if it still is the one started at `starttime`. */
static int signal_pid(pid_t pid, unsigned long long starttime, int sig)
{
	bool zombie;
	int fd, ret = 0;

	if (pid <= 0 || oci_proc_starttime(pid, &zombie) != starttime || zombie)
		return -ESRCH;
	fd = pidfd_open(pid);
	if (fd < 0)
		return -errno;
	if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* The VMM of s: the container's init, or the pool's VMM its keeper stands in for. */
static int signal_vmm(const struct oci_state *s, int sig)
{
	if (s->pool_clone[0])
		return signal_pid(s->vmm_pid, s->vmm_starttime, sig);
	return signal_pid(s->pid, s->starttime, sig);
}

/* Waits up to ms for process pid to end (a zombie counts: its parent reaps it). */
static int wait_gone(pid_t pid, unsigned long long starttime, int ms)
{
	struct pollfd p = {.events = POLLIN};
	bool zombie;
	int ret;

	if (pid <= 0 || oci_proc_starttime(pid, &zombie) != starttime || zombie)
		return 0;
	p.fd = pidfd_open(pid);
	if (p.fd < 0)
		return errno == ESRCH ? 0 : -errno;
	ret = poll(&p, 1, ms);
	close(p.fd);
	return ret > 0 ? 0 : -ETIMEDOUT;
}

/* Removes the files create and the VMM leave in a state directory: the API socket, the
 * state file (and a temporary one of a crashed write), the drives' overlays and the
 * vsock sockets (the VMM's and the per-port ones beside it). Nothing else is touched. */
static void remove_files(const char *dir)
{
	static const char *const prefixes[] = {"api.sock", "state.json", DRIVE_PREFIX, VSOCK_NAME};
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
			if (!strncmp(e->d_name, prefixes[i], strlen(prefixes[i]))) {
				unlinkat(dirfd(d), e->d_name, 0);
				break;
			}
	closedir(d);
}

/* Removes what a container left: the jail (thaw-jailer --cleanup, which also removes
 * its cgroup), the API socket and the state directory; with a pool's VMM, the pool's
 * record of the clone (a VMM still running is killed by the pool). The VMM must be gone
 * otherwise. */
static int destroy(struct ctx *c, const struct oci_state *s, const char *dir)
{
	char jailer[PATH_MAX + 16];
	int ret = 0;

	if (s->pool_clone[0]) {
		char err[PATH_MAX + 256];

		ret = oci_pool_forget(s->pool, s->pool_clone, EXIT_WAIT_MS, err, sizeof(err));
		if (ret) {
			/* A pool that is gone cleans its own (thaw-pool --cleanup) */
			report(c, "warn", "the pool's clone %s: %s", s->pool_clone, err);
			if (signal_pid(s->vmm_pid, s->vmm_starttime, SIGKILL) == 0 &&
			    wait_gone(s->vmm_pid, s->vmm_starttime, EXIT_WAIT_MS))
				return fail(c, "the VMM (pid %d) did not end", (int)s->vmm_pid),
				       -EIO;
			ret = 0;
		}
	}

	for (unsigned i = 0; i < s->n_taps; i++) {
		char err[PATH_MAX + 256];

		if (oci_tap_del(s->netns, s->taps[i].tap, s->taps[i].link, err, sizeof(err))) {
			report(c, "error", "removing tap %s: %s", s->taps[i].tap, err);
			return -EIO;
		}
	}
	if (s->jailed && s->jail_id[0]) {
		const char *argv[] = {
		    jailer,	  "--cleanup",	     "--id",	       s->jail_id, "--chroot-base",
		    s->jail_base, "--parent-cgroup", s->cgroup_parent, NULL};

		snprintf(jailer, sizeof(jailer), "%s/thaw-jailer", c->bindir);
		/* A just-killed VMM may hold its cgroup for a moment after its exit. */
		for (int i = 0; i < 50; i++) {
			ret = argv_run_wait(argv, true);
			if (!ret)
				break;
			usleep(20000);
		}
		if (ret) {
			report(c, "error", "thaw-jailer --cleanup --id %s failed", s->jail_id);
			return ret;
		}
	}
	remove_files(dir);
	if (rmdir(dir) < 0 && errno != ENOENT)
		return fail(c, "removing %s: %s", dir, strerror(errno)), -errno;
	return 0;
}

/* Loads the state of container id; reports when there is none. */
static int load(struct ctx *c, const char *id, struct oci_state *s, char *dir, bool quiet)
{
	char file[PATH_MAX], err[PATH_MAX + 64];

	if (oci_id_check(id))
		return fail(c, "invalid container id '%s'", id), -EINVAL;
	state_paths(c, id, dir, file);
	if (access(file, F_OK) < 0) {
		if (!quiet)
			report(c, "error", "container \"%s\" does not exist", id);
		return -ENOENT;
	}
	if (oci_state_load(file, s, err, sizeof(err)))
		return fail(c, "%s", err), -EINVAL;
	return 0;
}

static int save(struct ctx *c, const struct oci_state *s, const char *dir)
{
	char file[PATH_MAX + 16];
	int ret;

	snprintf(file, sizeof(file), "%s/state.json", dir);
	ret = oci_state_save(file, s);
	if (ret)
		report(c, "error", "writing %s: %s", file, strerror(-ret));
	return ret;
}

/* ---- create ------------------------------------------------------------------------------- */

/* The command line of the VMM: thaw-jailer ... -- thaw args, or thaw args. */
static void vmm_argv(struct ctx *c, const struct oci_bundle *b, const struct oci_state *s,
		     struct argv *v)
{
	bool pids_set = false;

	if (s->jailed) {
		argv_addf(v, "%s/thaw-jailer", c->bindir);
		argv_add(v, "--id");
		argv_add(v, s->jail_id);
		argv_add(v, "--exec-file");
		argv_addf(v, "%s/thaw-static", c->bindir);
		argv_add(v, "--uid");
		argv_addf(v, "%u", (unsigned)b->uid);
		argv_add(v, "--gid");
		argv_addf(v, "%u", (unsigned)b->gid);
		argv_add(v, "--chroot-base");
		argv_add(v, s->jail_base);
		argv_add(v, "--parent-cgroup");
		argv_add(v, s->cgroup_parent);
		for (unsigned i = 0; i < b->n_cg; i++) {
			argv_add(v, "--cgroup");
			argv_addf(v, "%s=%s", b->cg[i].key, b->cg[i].value);
			pids_set |= !strcmp(b->cg[i].key, "pids.max");
		}
		/* The jail joins the hierarchies of the controllers it sets: pids always,
		 * so the VMM is in the cgroup path the engine asked for even without
		 * limits (the engine reads its statistics there). */
		if (!pids_set) {
			argv_add(v, "--cgroup");
			argv_add(v, "pids.max=max");
		}
		if (b->netns[0]) {
			argv_add(v, "--netns");
			argv_add(v, b->netns);
		}
		argv_add(v, "--devices");
		argv_add(v, "kvm,tun,urandom");
		argv_add(v, "--link");
		argv_addf(v, "%s:%s:ro", b->snapshot, JAIL_SNAPSHOT);
		for (unsigned i = 0; i < b->n_drives; i++) {
			argv_add(v, "--link");
			argv_addf(v, "%s:/" DRIVE_PREFIX "%s.base:ro", b->drives[i].base,
				  b->drives[i].id);
		}
		argv_add(v, "--");
		argv_add(v, "--api-sock");
		argv_add(v, "/api.sock");
	} else {
		argv_addf(v, "%s/thaw", c->bindir);
		argv_add(v, "--api-sock");
		argv_add(v, "api.sock"); /* relative to its working directory, the state dir */
	}
	argv_add(v, "--id");
	argv_add(v, "thaw-oci");
	argv_add(v, "--console-in");
	argv_add(v, "stdin");
	argv_add(v, "--log-level");
	argv_add(v, "warn");
}

/* Sends the pty master over the console socket (runc's protocol: the pty's name as the
 * data, the fd as SCM_RIGHTS). */
static int send_console(const char *sock, int master, const char *name, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = (void *)name, .iov_len = strlen(name)};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	int fd, ret = 0;

	if (strlen(sock) >= sizeof(sa.sun_path))
		return errf(err, errlen, -ENAMETOOLONG, "--console-socket %s: too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = errf(err, errlen, -errno, "--console-socket %s: %s", sock, strerror(errno));
		goto out;
	}
	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&m);
	if (!cm) { /* cannot happen: msg_controllen holds one header */
		ret = -EINVAL;
		goto out;
	}
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &master, sizeof(int));
	if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0)
		ret = errf(err, errlen, -errno, "--console-socket %s: sendmsg: %s", sock,
			   strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Waits for the VMM's API to listen; fails when the process ended first. */
static int wait_api(pid_t pid, const char *api_dir, char *err, size_t errlen)
{
	char sock[PATH_MAX + 16];
	int st;

	snprintf(sock, sizeof(sock), "%s/api.sock", api_dir);
	for (int waited = 0; waited < API_WAIT_MS; waited++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return errf(err, errlen, -ECHILD,
				    "the VMM ended (%s %d) before its API answered; its own "
				    "message is on the container's stderr",
				    WIFEXITED(st) ? "exit status" : "signal",
				    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		if (access(sock, F_OK) == 0 && !api_call(api_dir, "GET", "/", NULL, NULL, 0))
			return 0;
		usleep(1000);
	}
	return errf(err, errlen, -ETIMEDOUT, "the VMM's API did not answer within %d ms",
		    API_WAIT_MS);
}

/* The body of PUT /snapshot/load: the snapshot, paused, and the host side of each of its
 * devices (docs/oci.md): a new qcow2 overlay per drive over the image's base, the taps
 * made in the pod's namespace, the vsock socket beside the API socket. Paths are the
 * VMM's: inside the jail, or in the state directory (its working directory). */
static json_object *load_body(const struct oci_bundle *b, const struct oci_state *s,
			      const struct oci_snap_devices *d, const char *dir)
{
	json_object *o = json_object_new_object(), *drives = json_object_new_array();
	json_object *nets = json_object_new_array();
	unsigned tap = 0;

	json_object_object_add(o, "snapshot_path",
			       json_object_new_string(s->jailed ? JAIL_SNAPSHOT : b->snapshot));
	json_object_object_add(o, "resume_vm", json_object_new_boolean(false));
	if (b->clock_realtime)
		json_object_object_add(o, "clock_realtime", json_object_new_boolean(true));
	for (unsigned i = 0; i < d->n; i++) {
		json_object *e = json_object_new_object();
		char path[PATH_MAX * 2];

		if (d->dev[i].kind == OCI_DEV_DRIVE) {
			const struct oci_drive *dr = NULL;

			for (unsigned k = 0; k < b->n_drives; k++)
				if (!strcmp(b->drives[k].id, d->dev[i].id))
					dr = &b->drives[k];
			if (!dr) /* oci_bundle_match refused it already */
				continue;
			json_object_object_add(e, "drive_id", json_object_new_string(dr->id));
			snprintf(path, sizeof(path), "%s/" DRIVE_PREFIX "%s.qcow2",
				 s->jailed ? "" : dir, dr->id);
			json_object_object_add(e, "path_on_host", json_object_new_string(path));
			if (s->jailed)
				snprintf(path, sizeof(path), "/" DRIVE_PREFIX "%s.base", dr->id);
			else
				snprintf(path, sizeof(path), "%s", dr->base);
			json_object_object_add(e, "overlay_of", json_object_new_string(path));
			json_object_array_add(drives, e);
		} else if (d->dev[i].kind == OCI_DEV_NET && tap < s->n_taps) {
			json_object_object_add(e, "iface_id", json_object_new_string(d->dev[i].id));
			json_object_object_add(e, "host_dev_name",
					       json_object_new_string(s->taps[tap++].tap));
			json_object_array_add(nets, e);
		} else if (d->dev[i].kind == OCI_DEV_VSOCK) {
			/* relative unjailed: a state directory's path may pass sun_path */
			json_object_object_add(
			    e, "uds_path",
			    json_object_new_string(s->jailed ? "/" VSOCK_NAME : VSOCK_NAME));
			json_object_object_add(o, "vsock_override", e);
		} else {
			json_object_put(e);
		}
	}
	json_object_object_add(o, "drive_overrides", drives);
	json_object_object_add(o, "network_overrides", nets);
	return o;
}

/* What create learned of the pod's interfaces its taps are tied to, for the guest. */
struct pod_links {
	struct {
		char id[OCI_DEV_ID_MAX + 1]; /* the snapshot's interface */
		char link[OCI_IFNAME_MAX + 1];
		struct oci_link_info info;
	} l[OCI_MAX_DEVS];
	unsigned n;
};

/* The taps of the snapshot's interfaces, in the bundle's network namespace, each tied to
 * its org.thaw.net.<id> interface or else to eth0 when the namespace has one (CNI's
 * name). Each is recorded in s as soon as it exists, so destroy removes it; what the
 * pod's interface holds (CNI's address) goes to pl. */
static int make_taps(struct ctx *c, const struct oci_bundle *b, struct oci_state *s,
		     const struct oci_snap_devices *d, struct pod_links *pl)
{
	char err[PATH_MAX + 256];

	for (unsigned i = 0; i < d->n; i++) {
		const char *link = "eth0";
		bool optional = true, linked = false;
		char tap[OCI_IFNAME_MAX + 1];

		if (d->dev[i].kind != OCI_DEV_NET)
			continue;
		for (unsigned k = 0; k < b->n_nets; k++)
			if (!strcmp(b->nets[k].id, d->dev[i].id)) {
				link = b->nets[k].link;
				optional = false;
			}
		oci_tap_name(s->id, s->n_taps, tap);
		snprintf(s->netns, sizeof(s->netns), "%s", b->netns);
		if (oci_tap_add(b->netns, tap, link, optional, b->uid, b->gid, &linked,
				&pl->l[pl->n].info, err, sizeof(err)))
			return fail(c, "network interface '%s': %s", d->dev[i].id, err), -EIO;
		snprintf(s->taps[s->n_taps].tap, sizeof(s->taps[0].tap), "%s", tap);
		snprintf(s->taps[s->n_taps].link, sizeof(s->taps[0].link), "%s",
			 linked ? link : "");
		s->n_taps++;
		if (linked) {
			snprintf(pl->l[pl->n].id, sizeof(pl->l[0].id), "%s", d->dev[i].id);
			snprintf(pl->l[pl->n].link, sizeof(pl->l[0].link), "%s", link);
			pl->n++;
		}
		report(c, "info", "tap %s for '%s' in %s%s%s", tap, d->dev[i].id, b->netns,
		       linked ? ", tied to " : "", linked ? link : "");
	}
	return 0;
}

/* The guest's view of the container's process, in the clone's MMDS store under
 * MMDS_KEY: args, env, cwd, the container's id, and per interface tied to the pod's,
 * what CNI gave the pod (address, gateway, MAC: docs/oci.md). */
static int put_process(struct ctx *c, const struct oci_bundle *b, const struct oci_state *s,
		       const struct pod_links *pl)
{
	json_object *o = json_object_new_object(), *p = json_tokener_parse(b->process);
	char err[PATH_MAX + 256];
	int r;

	if (!o || !p) {
		json_object_put(o);
		json_object_put(p);
		return fail(c, "out of memory"), -ENOMEM;
	}
	json_object_object_add(p, "id", json_object_new_string(s->id));
	if (pl->n) {
		json_object *net = json_object_new_object();

		for (unsigned i = 0; i < pl->n; i++)
			json_object_object_add(net, pl->l[i].id,
					       oci_link_guest_json(pl->l[i].link, &pl->l[i].info));
		json_object_object_add(p, "net", net);
	}
	json_object_object_add(o, MMDS_KEY, p);
	r = api_call(s->api_dir, "PATCH", "/mmds",
		     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE),
		     err, sizeof(err));
	json_object_put(o);
	if (r)
		return fail(c, "giving process.args/env to the clone (MMDS): %s", err), r;
	return 0;
}

struct create_args {
	const char *id, *bundle, *pid_file, *console_socket;
};

/* With org.thaw.pool: takes a prepared VMM of the bundle's snapshot from the pool and
 * loads it paused. 0 when it did (s names the VMM, the pool and the clone); 1 when the
 * container starts its own VMM instead, the reason in s->pool_note and the log. A
 * snapshot with interfaces or drives needs host sides a VMM prepared before the
 * container existed cannot be given (docs/oci.md). */
static int take_pooled(struct ctx *c, const struct oci_bundle *b, const struct oci_snap_devices *d,
		       struct oci_state *s, struct oci_pool_clone *pc)
{
	char err[PATH_MAX * 2];
	const char *why = NULL;
	bool zombie;

	for (unsigned i = 0; i < d->n && !why; i++)
		if (d->dev[i].kind == OCI_DEV_NET)
			why = "the snapshot has a network interface: its tap is made in the "
			      "pod's namespace, which a VMM prepared before it cannot open";
		else if (d->dev[i].kind == OCI_DEV_DRIVE)
			why = "the snapshot has a drive: its per-container overlay is named "
			      "after the VMM was prepared";
	if (!why) {
		int r =
		    oci_pool_take(b->pool, b->snapshot, b->clock_realtime, pc, err, sizeof(err));

		if (r == 0) {
			char *slash = strrchr(pc->api_sock, '/');

			snprintf(s->pool, sizeof(s->pool), "%s", b->pool);
			snprintf(s->pool_clone, sizeof(s->pool_clone), "%s", pc->id);
			s->vmm_pid = pc->pid;
			s->vmm_starttime = oci_proc_starttime(pc->pid, &zombie);
			if (!slash || strcmp(slash, "/api.sock") || !s->vmm_starttime || zombie) {
				fail(c, "pool %s: clone %s: its VMM (pid %d, %s) is not usable",
				     b->pool, pc->id, (int)pc->pid, pc->api_sock);
				return -EIO;
			}
			snprintf(s->api_dir, sizeof(s->api_dir), "%.*s",
				 (int)(slash - pc->api_sock), pc->api_sock);
			return 0;
		}
		why = err;
	}
	snprintf(s->pool_note, sizeof(s->pool_note), "%.250s", why);
	report(c, "info", "%s: no prepared VMM (%s): starting the VMM", s->id, why);
	return 1;
}

/* Forks the keeper of a pool's VMM: it becomes the container's init (create's child,
 * the engine's after create exits), with the pty's slave as its stdio when there is
 * one. It waits on *go until create has finished (a byte: run; EOF: create failed). */
static int start_keeper(struct ctx *c, const struct oci_state *s, const struct oci_pool_clone *pc,
			int master, int slave, pid_t *kpid, int *go)
{
	int gop[2], pfd, logfd;
	bool zombie;

	pfd = pidfd_open(pc->pid);
	if (pfd < 0 || oci_proc_starttime(pc->pid, &zombie) != s->vmm_starttime || zombie) {
		if (pfd >= 0)
			close(pfd);
		return fail(c, "pool clone %s: its VMM (pid %d) is gone", pc->id, (int)pc->pid),
		       -ESRCH;
	}
	logfd = open(pc->console_log, O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || pipe2(gop, O_CLOEXEC) < 0) {
		int e = errno;

		close(pfd);
		if (logfd >= 0)
			close(logfd);
		return fail(c, "pool clone %s: console log %s: %s", pc->id, pc->console_log,
			    strerror(e)),
		       -e;
	}
	*kpid = fork();
	if (*kpid == 0) {
		struct oci_keeper k = {pfd,	logfd,	      pc->console_log, pc->console_sock,
				       s->pool, s->pool_clone};
		sigset_t set;
		char x;

		close(gop[1]);
		if (master >= 0)
			close(master);
		setsid(); /* a session of its own, as the VMM's: the engine signals through kill */
		for (int fd = 0; slave >= 0 && fd < 3; fd++)
			dup2(slave, fd);
		oci_keeper_signals(&set); /* held until the loop's signalfd reads them */
		if (read(gop[0], &x, 1) != 1)
			_exit(1);
		close(gop[0]);
		_exit(oci_keeper_run(&k));
	}
	close(pfd);
	close(logfd);
	close(gop[0]);
	if (*kpid < 0) {
		int e = errno;

		close(gop[1]);
		return fail(c, "fork: %s", strerror(e)), -e;
	}
	*go = gop[1];
	return 0;
}

/* Puts the pool's VMM and its keeper into the container's cgroups, made and limited as
 * thaw-jailer makes a jail's (the same command line, parsed by the jailer's own code),
 * so delete's thaw-jailer --cleanup removes them. Before the VM runs: the guest's
 * memory is charged there from its first touch. */
static int adopt_cgroups(struct ctx *c, const struct oci_bundle *b, const struct oci_state *s,
			 pid_t vmm, pid_t keeper)
{
	struct argv *v = calloc(1, sizeof(*v));
	struct jail_config *cfg = calloc(1, sizeof(*cfg));
	pid_t pids[2] = {vmm, keeper};
	int r = -ENOMEM;

	if (v && cfg) {
		vmm_argv(c, b, s, v);
		r = jail_parse_args((int)v->n, (char **)v->a, cfg);
		if (!r)
			r = jail_cg_adopt(cfg, pids, 2);
	}
	free(v);
	free(cfg);
	if (r)
		return fail(c, "moving the pool's VMM into the cgroup %s/%s: %s", s->cgroup_parent,
			    s->jail_id, strerror(-r > 0 ? -r : EINVAL));
	return 0;
}

/* Creates the container; on success *pid is the VMM, our child. Leaves nothing behind
 * when it fails. */
static int do_create(struct ctx *c, const struct create_args *a, pid_t *pid_out)
{
	struct oci_bundle *b = calloc(1, sizeof(*b));
	struct oci_state *s = calloc(1, sizeof(*s));
	struct argv *v = calloc(1, sizeof(*v));
	struct oci_snap_devices *devs = calloc(1, sizeof(*devs));
	char dir[PATH_MAX], file[PATH_MAX], cfgpath[PATH_MAX + 16], bundle[PATH_MAX];
	struct oci_pool_clone *pc = calloc(1, sizeof(*pc));
	struct pod_links *pl = calloc(1, sizeof(*pl));
	char err[PATH_MAX * 2], slave_name[64] = "";
	posix_spawn_file_actions_t fa;
	char *json = NULL;
	int master = -1, slave = -1, go = -1, ret = 1, r;
	bool made_dir = false, pooled = false;
	pid_t pid = 0;

	if (!b || !s || !v || !devs || !pc || !pl) {
		fail(c, "out of memory");
		goto out;
	}
	if (oci_id_check(a->id)) {
		fail(c, "invalid container id '%s'", a->id);
		goto out;
	}
	if (!realpath(a->bundle, bundle)) {
		fail(c, "bundle %s: %s", a->bundle, strerror(errno));
		goto out;
	}
	snprintf(cfgpath, sizeof(cfgpath), "%s/config.json", bundle);
	r = read_file(cfgpath, &json);
	if (r) {
		fail(c, "%s: %s", cfgpath, strerror(-r));
		goto out;
	}
	if (oci_bundle_parse(json, bundle, b, err, sizeof(err)) ||
	    oci_bundle_check(b, err, sizeof(err))) {
		fail(c, "bundle %s: %s", bundle, err);
		goto out;
	}
	r = oci_snapshot_devices(b->snapshot, devs, err, sizeof(err));
	if (r) {
		fail(c, "loading the snapshot %s: %s", b->snapshot, err);
		goto out;
	}
	if (oci_bundle_match(b, devs, err, sizeof(err))) {
		fail(c, "bundle %s: %s", bundle, err);
		goto out;
	}
	if (b->terminal && !a->console_socket) {
		fail(c, "process.terminal is true: --console-socket is required");
		goto out;
	}
	if (!b->terminal && a->console_socket) {
		fail(c, "--console-socket given but process.terminal is false");
		goto out;
	}
	state_paths(c, a->id, dir, file);
	r = mkdir_p(c->root, 0711);
	if (r) {
		fail(c, "--root %s: %s", c->root, strerror(-r));
		goto out;
	}
	if (mkdir(dir, 0711) < 0) {
		if (errno == EEXIST)
			fail(c, "container with id exists: %s", a->id);
		else
			fail(c, "%s: %s", dir, strerror(errno));
		goto out;
	}
	made_dir = true;

	snprintf(s->id, sizeof(s->id), "%s", a->id);
	snprintf(s->bundle, sizeof(s->bundle), "%s", bundle);
	snprintf(s->rootfs, sizeof(s->rootfs), "%s", b->rootfs);
	rfc3339(s->created, sizeof(s->created));
	s->jailed = oci_bundle_jailed(b);
	{
		json_object *o = json_tokener_parse(json), *ann;

		if (o && json_object_object_get_ex(o, "annotations", &ann))
			snprintf(s->annotations, sizeof(s->annotations), "%s",
				 json_object_to_json_string_ext(
				     ann, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	}
	if (s->jailed) {
		oci_jail_id(a->id, b->cgroup_leaf, s->jail_id);
		snprintf(s->cgroup_parent, sizeof(s->cgroup_parent), "%s",
			 b->cgroup_parent[0] ? b->cgroup_parent : "thaw-oci");
		if (path_fmt(s->jail_base, sizeof(s->jail_base), "%s/jails", c->root) ||
		    /* thaw-jailer's layout is Firecracker's: <base>/<exec file name>/<id>/root */
		    path_fmt(s->api_dir, sizeof(s->api_dir), "%s/thaw-static/%s/root", s->jail_base,
			     s->jail_id)) {
			fail(c, "--root %s: too long", c->root);
			goto out;
		}
	} else {
		snprintf(s->api_dir, sizeof(s->api_dir), "%s", dir);
	}
	vmm_argv(c, b, s, v);
	if (v->overflow) {
		fail(c, "the VMM's command line is too long");
		goto out;
	}

	if (b->pool[0]) {
		r = take_pooled(c, b, devs, s, pc);
		if (r < 0)
			goto out;
		pooled = r == 0;
	}
	if (!pooled && make_taps(c, b, s, devs, pl))
		goto out;
	if (b->terminal) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) || unlockpt(master) ||
		    ptsname_r(master, slave_name, sizeof(slave_name))) {
			fail(c, "creating a pty: %s", strerror(errno));
			goto out;
		}
		slave = open(slave_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0) {
			fail(c, "%s: %s", slave_name, strerror(errno));
			goto out;
		}
	}
	if (pooled) {
		if (start_keeper(c, s, pc, master, slave, &pid, &go)) {
			pid = 0;
			goto out;
		}
		if (s->jailed && adopt_cgroups(c, b, s, pc->pid, pid))
			goto out;
		goto loaded;
	}
	posix_spawn_file_actions_init(&fa);
	if (slave >= 0)
		for (int fd = 0; fd < 3; fd++)
			posix_spawn_file_actions_adddup2(&fa, slave, fd);
	if (!s->jailed)
		posix_spawn_file_actions_addchdir_np(&fa, dir);
	/* A session of its own, as runc's init: the engine's signals go through kill. */
	r = argv_spawn_session(&pid, v, &fa);
	posix_spawn_file_actions_destroy(&fa);
	if (r) {
		pid = 0;
		fail(c, "starting %s: %s", v->a[0], strerror(r));
		goto out;
	}
	if (slave >= 0) {
		close(slave);
		slave = -1;
	}
	if (wait_api(pid, s->api_dir, err, sizeof(err))) {
		fail(c, "%s", err);
		goto out;
	}
	{
		json_object *o = load_body(b, s, devs, dir);

		r = api_call(s->api_dir, "PUT", "/snapshot/load",
			     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE),
			     err, sizeof(err));
		json_object_put(o);
		if (r) {
			fail(c, "loading the snapshot %s: %s", b->snapshot, err);
			goto out;
		}
	}
loaded:
	if (slave >= 0) {
		close(slave);
		slave = -1;
	}
	if (put_process(c, b, s, pl))
		goto out;
	if (master >= 0 && send_console(a->console_socket, master, slave_name, err, sizeof(err))) {
		fail(c, "%s", err);
		goto out;
	}
	s->pid = pid;
	s->starttime = oci_proc_starttime(pid, &(bool){false});
	if (save(c, s, dir))
		goto out;
	if (a->pid_file) {
		char text[32];

		snprintf(text, sizeof(text), "%d", (int)pid);
		r = write_atomic(a->pid_file, text);
		if (r) {
			fail(c, "--pid-file %s: %s", a->pid_file, strerror(-r));
			goto out;
		}
	}
	if (pooled) {
		if (write(go, "1", 1) != 1) {
			fail(c, "starting the keeper: %s", strerror(errno));
			goto out;
		}
		report(c, "info",
		       "created %s: keeper pid %d, VMM pid %d prepared by pool %s (clone %s%s), "
		       "snapshot %s",
		       a->id, (int)pid, (int)pc->pid, b->pool, pc->id,
		       pc->from_stock ? "" : ", started on request: the stock was empty",
		       b->snapshot);
	} else {
		report(c, "info", "created %s: VMM pid %d, snapshot %s%s", a->id, (int)pid,
		       b->snapshot, s->jailed ? ", jailed" : "");
	}
	*pid_out = pid;
	ret = 0;
out:
	if (go >= 0)
		close(go);
	if (ret && pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (ret && made_dir)
		destroy(c, s, dir);
	if (master >= 0)
		close(master);
	if (slave >= 0)
		close(slave);
	free(json);
	free(b);
	free(s);
	free(v);
	free(devs);
	free(pc);
	free(pl);
	return ret;
}

/* create's and run's options (run adds --detach and --keep). 0, or 1 after reporting. */
static int create_opts(struct ctx *c, bool run, int argc, char **argv, struct create_args *a,
		       bool *detach, bool *keep)
{
	struct opt o[] = {{"bundle", 'b', true, NULL},
			  {"pid-file", 0, true, NULL},
			  {"console-socket", 0, true, NULL},
			  {"no-pivot", 0, false, NULL},
			  {"no-new-keyring", 0, false, NULL},
			  {"preserve-fds", 0, true, NULL},
			  {"detach", 'd', false, NULL},
			  {"keep", 0, false, NULL},
			  {NULL, 0, false, NULL}};
	const char *pos[1], *cmd = run ? "run" : "create";

	if (parse_opts(c, cmd, argc, argv, o, pos, 1) != 1)
		return fail(c,
			    "%s: usage: %s [--bundle DIR] [--pid-file F] [--console-socket S]%s ID",
			    cmd, cmd, run ? " [--detach] [--keep]" : "");
	*detach = optval(o, "detach") != NULL;
	*keep = optval(o, "keep") != NULL;
	if (!run && (*detach || *keep))
		return fail(c, "create: --detach and --keep are run's options");
	*a = (struct create_args){pos[0], optval(o, "bundle") ? optval(o, "bundle") : ".",
				  optval(o, "pid-file"), optval(o, "console-socket")};
	return 0;
}

static int cmd_create(struct ctx *c, int argc, char **argv)
{
	struct create_args a;
	bool detach, keep;
	pid_t pid;

	if (create_opts(c, false, argc, argv, &a, &detach, &keep))
		return 1;
	return do_create(c, &a, &pid);
}

/* ---- the life cycle ----------------------------------------------------------------------- */

static int do_start(struct ctx *c, struct oci_state *s, const char *dir)
{
	enum oci_status st = oci_state_status(s);
	char err[PATH_MAX + 256];

	if (st != OCI_CREATED)
		return fail(c, "cannot start a container that is %s", oci_status_name(st));
	if (api_call(s->api_dir, "PATCH", "/vm", "{\"state\": \"Resumed\"}", err, sizeof(err)))
		return fail(c, "starting %s: %s", s->id, err);
	s->started = true;
	return save(c, s, dir) ? 1 : 0;
}

static int one_id(struct ctx *c, const char *cmd, int argc, char **argv, struct opt *o,
		  const char **id)
{
	struct opt none[] = {{NULL, 0, false, NULL}};

	if (parse_opts(c, cmd, argc, argv, o ? o : none, id, 1) != 1)
		return fail(c, "%s: a container id is required", cmd);
	return 0;
}

static int cmd_start(struct ctx *c, int argc, char **argv)
{
	struct oci_state s;
	char dir[PATH_MAX];
	const char *id;

	if (one_id(c, "start", argc, argv, NULL, &id) || load(c, id, &s, dir, false))
		return 1;
	return do_start(c, &s, dir);
}

static int cmd_state(struct ctx *c, int argc, char **argv)
{
	json_object *o, *ann;
	struct oci_state s;
	char dir[PATH_MAX];
	const char *id;
	enum oci_status st;

	if (one_id(c, "state", argc, argv, NULL, &id) || load(c, id, &s, dir, false))
		return 1;
	st = oci_state_status(&s);
	o = json_object_new_object();
	json_object_object_add(o, "ociVersion", json_object_new_string(OCI_SPEC_VERSION));
	json_object_object_add(o, "id", json_object_new_string(s.id));
	json_object_object_add(o, "status", json_object_new_string(oci_status_name(st)));
	json_object_object_add(o, "pid", json_object_new_int(st == OCI_STOPPED ? 0 : s.pid));
	json_object_object_add(o, "bundle", json_object_new_string(s.bundle));
	json_object_object_add(o, "rootfs", json_object_new_string(s.rootfs));
	json_object_object_add(o, "created", json_object_new_string(s.created));
	json_object_object_add(o, "owner", json_object_new_string(""));
	ann = json_tokener_parse(s.annotations[0] ? s.annotations : "{}");
	json_object_object_add(o, "annotations", ann ? ann : json_object_new_object());
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return 0;
}

static int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {{"HUP", SIGHUP},	{"INT", SIGINT},    {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
		     {"USR1", SIGUSR1}, {"USR2", SIGUSR2},  {"TERM", SIGTERM}, {"CONT", SIGCONT},
		     {"STOP", SIGSTOP}, {"WINCH", SIGWINCH}};
	char *end;
	long n;

	if (!strncmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name))
			return names[i].sig;
	n = strtol(s, &end, 10);
	return *s && !*end && n > 0 && n < NSIG ? (int)n : -1;
}

static int cmd_kill(struct ctx *c, int argc, char **argv)
{
	struct opt o[] = {
	    {"all", 'a', false, NULL}, {"pid", 'p', true, NULL}, {NULL, 0, false, NULL}};
	const char *pos[2];
	struct oci_state s;
	char dir[PATH_MAX];
	int n = parse_opts(c, "kill", argc, argv, o, pos, 2), sig = SIGTERM, r;

	if (n < 1)
		return fail(c, "kill: usage: kill [--all] ID [SIGNAL]");
	if (n == 2 && (sig = parse_signal(pos[1])) < 0)
		return fail(c, "kill: unknown signal '%s'", pos[1]);
	if (load(c, pos[0], &s, dir, false))
		return 1;
	if (oci_state_status(&s) == OCI_STOPPED)
		return fail(c, "container not running");
	/* --all: every process of the container is the VMM (and its keeper, which ends
	 * with it). A keeper whose VMM is gone gets the signal itself. */
	r = signal_vmm(&s, sig);
	if (r == -ESRCH && s.pool_clone[0])
		r = signal_pid(s.pid, s.starttime, sig);
	if (r == -ESRCH)
		return fail(c, "container not running");
	if (r)
		return fail(c, "kill %s: %s", s.id, strerror(-r));
	return 0;
}

static int cmd_delete(struct ctx *c, int argc, char **argv)
{
	struct opt o[] = {{"force", 'f', false, NULL}, {NULL, 0, false, NULL}};
	struct oci_state s;
	char dir[PATH_MAX], file[PATH_MAX];
	const char *id;
	bool force;
	enum oci_status st;
	int r;

	if (one_id(c, "delete", argc, argv, o, &id))
		return 1;
	force = optval(o, "force") != NULL;
	r = load(c, id, &s, dir, force);
	if (r == -ENOENT) {
		/* A create that died before its state file: what is left is the directory. */
		state_paths(c, id, dir, file);
		rmdir(dir);
		return force ? 0 : 1;
	}
	if (r)
		return 1;
	st = oci_state_status(&s);
	if (st == OCI_RUNNING || st == OCI_PAUSED) {
		if (!force)
			return fail(c, "cannot delete container %s that is not stopped: %s", id,
				    oci_status_name(st));
	}
	/* A created container is deleted without --force, as runc does. A pool's VMM
	 * goes whatever its keeper's state (a keeper killed alone leaves it running). */
	if (st != OCI_STOPPED || s.pool_clone[0]) {
		r = signal_vmm(&s, SIGKILL);
		if (r && r != -ESRCH)
			return fail(c, "delete %s: SIGKILL: %s", id, strerror(-r));
		if (s.pool_clone[0]) {
			signal_pid(s.pid, s.starttime, SIGKILL); /* the keeper */
			if (wait_gone(s.vmm_pid, s.vmm_starttime, EXIT_WAIT_MS))
				return fail(c, "delete %s: the VMM (pid %d) did not end", id,
					    (int)s.vmm_pid);
		}
		if (wait_gone(s.pid, s.starttime, EXIT_WAIT_MS))
			return fail(c, "delete %s: the %s (pid %d) did not end", id,
				    s.pool_clone[0] ? "keeper" : "VMM", (int)s.pid);
	}
	return destroy(c, &s, dir) ? 1 : 0;
}

static int pause_resume(struct ctx *c, const char *cmd, int argc, char **argv, bool pause)
{
	struct oci_state s;
	char dir[PATH_MAX], err[PATH_MAX + 256];
	const char *id;
	enum oci_status st;

	if (one_id(c, cmd, argc, argv, NULL, &id) || load(c, id, &s, dir, false))
		return 1;
	st = oci_state_status(&s);
	if (st != (pause ? OCI_RUNNING : OCI_PAUSED))
		return fail(c, "container %s is %s, not %s", id, oci_status_name(st),
			    pause ? "running" : "paused");
	if (api_call(s.api_dir, "PATCH", "/vm",
		     pause ? "{\"state\": \"Paused\"}" : "{\"state\": \"Resumed\"}", err,
		     sizeof(err)))
		return fail(c, "%s %s: %s", cmd, id, err);
	s.paused = pause;
	return save(c, &s, dir) ? 1 : 0;
}

static int cmd_pause(struct ctx *c, int argc, char **argv)
{
	return pause_resume(c, "pause", argc, argv, true);
}

static int cmd_resume(struct ctx *c, int argc, char **argv)
{
	return pause_resume(c, "resume", argc, argv, false);
}

static int cmd_ps(struct ctx *c, int argc, char **argv)
{
	struct opt o[] = {{"format", 'f', true, NULL}, {NULL, 0, false, NULL}};
	struct oci_state s;
	char dir[PATH_MAX];
	const char *id, *fmt;
	bool running;

	if (one_id(c, "ps", argc, argv, o, &id) || load(c, id, &s, dir, false))
		return 1;
	fmt = optval(o, "format") ? optval(o, "format") : "table";
	running = oci_state_status(&s) != OCI_STOPPED;
	if (!strcmp(fmt, "json") && s.pool_clone[0]) {
		if (running)
			printf("[%d,%d]\n", (int)s.pid, (int)s.vmm_pid);
		else
			printf("[]\n");
	} else if (!strcmp(fmt, "json")) {
		printf(running ? "[%d]\n" : "[]\n", (int)s.pid);
	} else if (!strcmp(fmt, "table")) {
		printf("PID   CMD\n");
		if (running && s.pool_clone[0])
			printf("%-5d thaw-oci keeper\n%-5d thaw (pool clone %s)\n", (int)s.pid,
			       (int)s.vmm_pid, s.pool_clone);
		else if (running)
			printf("%-5d %s\n", (int)s.pid, s.jailed ? "thaw-static" : "thaw");
	} else {
		return fail(c, "ps: --format %s: table or json", fmt);
	}
	return 0;
}

static int cmd_list(struct ctx *c, int argc, char **argv)
{
	struct opt o[] = {
	    {"format", 'f', true, NULL}, {"quiet", 'q', false, NULL}, {NULL, 0, false, NULL}};
	const char *pos[1], *fmt;
	struct dirent **names;
	json_object *all;
	bool quiet;
	int n;

	if (parse_opts(c, "list", argc, argv, o, pos, 0) < 0)
		return 1;
	fmt = optval(o, "format") ? optval(o, "format") : "table";
	quiet = optval(o, "quiet") != NULL;
	if (strcmp(fmt, "table") && strcmp(fmt, "json"))
		return fail(c, "list: --format %s: table or json", fmt);
	all = json_object_new_array();
	if (!quiet && !strcmp(fmt, "table"))
		printf("ID\tPID\tSTATUS\tBUNDLE\tCREATED\n");
	n = scandir(c->root, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		struct oci_state s;
		char dir[PATH_MAX];

		if (!oci_id_check(names[i]->d_name) && !load(c, names[i]->d_name, &s, dir, true)) {
			enum oci_status st = oci_state_status(&s);
			json_object *e = json_object_new_object();

			json_object_object_add(e, "id", json_object_new_string(s.id));
			json_object_object_add(e, "pid", json_object_new_int(s.pid));
			json_object_object_add(e, "status",
					       json_object_new_string(oci_status_name(st)));
			json_object_object_add(e, "bundle", json_object_new_string(s.bundle));
			json_object_object_add(e, "created", json_object_new_string(s.created));
			json_object_array_add(all, e);
			if (quiet)
				printf("%s\n", s.id);
			else if (!strcmp(fmt, "table"))
				printf("%s\t%d\t%s\t%s\t%s\n", s.id, (int)s.pid,
				       oci_status_name(st), s.bundle, s.created);
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	if (!quiet && !strcmp(fmt, "json"))
		printf("%s\n", json_object_to_json_string_ext(
				   all, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(all);
	return 0;
}

/* run: create and start; without --detach, wait for the VMM (our child) and delete. */
static int cmd_run(struct ctx *c, int argc, char **argv)
{
	struct create_args a;
	struct oci_state s;
	char dir[PATH_MAX];
	bool detach, keep;
	pid_t pid;
	int st;

	if (create_opts(c, true, argc, argv, &a, &detach, &keep))
		return 1;
	if (do_create(c, &a, &pid))
		return 1;
	if (load(c, a.id, &s, dir, false) || do_start(c, &s, dir)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		destroy(c, &s, dir);
		return 1;
	}
	if (detach)
		return 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return fail(c, "run: waitpid: %s", strerror(errno));
	if (!keep)
		destroy(c, &s, dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cmd_exec(struct ctx *c, int argc, char **argv)
{
	return fail(c, "exec: not supported: a thaw-oci container is a VM clone whose guest "
		       "runs no process on request (docs/oci.md)");
}

static int cmd_unsupported(struct ctx *c, const char *cmd)
{
	return fail(c, "%s: not supported by thaw-oci (docs/oci.md)", cmd);
}

/* The runtime spec's features document (features.md). */
static int cmd_features(struct ctx *c, int argc, char **argv)
{
	static const char text[] =
	    "{\n"
	    "  \"ociVersionMin\": \"1.0.0\",\n"
	    "  \"ociVersionMax\": \"" OCI_SPEC_VERSION "\",\n"
	    "  \"hooks\": [],\n"
	    "  \"mountOptions\": [],\n"
	    "  \"linux\": {\n"
	    "    \"namespaces\": [\"network\"],\n"
	    "    \"capabilities\": [],\n"
	    "    \"cgroup\": {\"v1\": true, \"v2\": false, \"systemd\": false,"
	    " \"systemdUser\": false},\n"
	    "    \"seccomp\": {\"enabled\": false},\n"
	    "    \"apparmor\": {\"enabled\": false},\n"
	    "    \"selinux\": {\"enabled\": false}\n"
	    "  },\n"
	    "  \"annotations\": {\n"
	    "    \"org.thaw.snapshot\": \"the base snapshot: a path inside the root file "
	    "system (required)\",\n"
	    "    \"org.thaw.clock-realtime\": \"true: advance the guest clock to host time "
	    "at the restore\",\n"
	    "    \"org.thaw.drive.<id>\": \"the base image of the snapshot's drive <id>, a "
	    "path inside the root file system; each container writes its own qcow2 "
	    "overlay\",\n"
	    "    \"org.thaw.net.<id>\": \"the pod namespace's interface tied to the tap of "
	    "the snapshot's interface <id> (default eth0 when there is one), or none\",\n"
	    "    \"org.thaw.pool\": \"a thaw-pool's API socket: create takes a prepared "
	    "VMM of the snapshot from it when it can\",\n"
	    "    \"org.thaw.oci.version\": \"" VERSION "\"\n"
	    "  }\n"
	    "}\n";

	(void)c;
	(void)argc;
	(void)argv;
	fputs(text, stdout);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: thaw-oci [--root DIR] [--log FILE] [--log-format text|json] COMMAND ...\n"
		"  create [--bundle DIR] [--pid-file F] [--console-socket S] ID\n"
		"  start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID\n"
		"  pause ID | resume ID | ps [--format table|json] ID | list | features\n"
		"  run [--bundle DIR] [--pid-file F] [--console-socket S] [--detach] ID\n"
		"  a container is a thaw VM clone of the snapshot its bundle names (annotation\n"
		"  " OCI_SNAP_ANNOT "); docs/oci.md\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctx *, int, char **);
	} cmds[] = {{"create", cmd_create}, {"start", cmd_start},   {"state", cmd_state},
		    {"kill", cmd_kill},	    {"delete", cmd_delete}, {"pause", cmd_pause},
		    {"resume", cmd_resume}, {"ps", cmd_ps},	    {"list", cmd_list},
		    {"run", cmd_run},	    {"exec", cmd_exec},	    {"features", cmd_features}};
	struct opt g[] = {{"root", 0, true, NULL},	 {"log", 0, true, NULL},
			  {"log-format", 0, true, NULL}, {"systemd-cgroup", 0, false, NULL},
			  {"debug", 0, false, NULL},	 {"help", 'h', false, NULL},
			  {"version", 'v', false, NULL}, {"rootless", 0, true, NULL},
			  {"criu", 0, true, NULL},	 {NULL, 0, false, NULL}};
	struct ctx c = {.root = DEFAULT_ROOT, .log_fd = -1};
	char self[PATH_MAX];
	const char *fmt;
	ssize_t n;
	int i;

	log_set_prefix("thaw-oci");
	/* Global options stop at the command's name. */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *pos[1];
		int k = i + 1;

		/* a value-taking option without '=' takes the next word too */
		for (struct opt *p = g; p->name; p++) {
			const char *name = argv[i] + 1 + (argv[i][1] == '-');

			if (p->has_arg && !strcmp(name, p->name))
				k = i + 2;
		}
		if (k > argc)
			k = argc;
		if (parse_opts(&c, "thaw-oci", k - i, argv + i, g, pos, 0) < 0)
			return 1;
		i = k - 1;
	}
	if (optval(g, "root"))
		c.root = optval(g, "root");
	if (optval(g, "log")) {
		c.log_path = optval(g, "log");
		c.log_fd = open(c.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (c.log_fd < 0)
			fprintf(stderr, "thaw-oci: --log %s: %s\n", c.log_path, strerror(errno));
	}
	fmt = optval(g, "log-format");
	if (fmt && strcmp(fmt, "json") && strcmp(fmt, "text"))
		return fail(&c, "--log-format %s: text or json", fmt);
	c.log_json = fmt && !strcmp(fmt, "json");
	if (optval(g, "version")) {
		printf("thaw-oci version " VERSION "\nspec: " OCI_SPEC_VERSION "\n");
		return 0;
	}
	if (optval(g, "help") || i == argc) {
		usage(i == argc && !optval(g, "help") ? stderr : stdout);
		return optval(g, "help") ? 0 : 1;
	}
	if (optval(g, "systemd-cgroup"))
		return fail(&c, "--systemd-cgroup: not supported: thaw-oci places the VMM in "
				"cgroupfs (v1) cgroups through thaw-jailer; configure the engine's "
				"cgroupfs driver");
	if (c.root[0] != '/')
		return fail(&c, "--root %s: not an absolute path", c.root);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return fail(&c, "/proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	snprintf(c.bindir, sizeof(c.bindir), "%s", dirname(self));
	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
		if (!strcmp(argv[i], cmds[k].name))
			return cmds[k].fn(&c, argc - i - 1, argv + i + 1);
	if (!strcmp(argv[i], "update") || !strcmp(argv[i], "checkpoint") ||
	    !strcmp(argv[i], "restore") || !strcmp(argv[i], "events"))
		return cmd_unsupported(&c, argv[i]);
	return fail(&c, "unknown command '%s'", argv[i]);
}
