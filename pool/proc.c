/* One thaw process of a pool: its start (directly or through thaw-jailer), its record in
 * the state directory, its readiness probe, and its end (kill, wait, jail clean-up).
 * Nothing here knows about pools' counts or the API. */
#include "pool/pool_int.h"

#include "api/api.h"
#include "common/argv.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int pool_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int pool_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. With
 * the pid it names one process for good (pids are reused). 0 when it is gone. */
unsigned long long pool_proc_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
	if (!p)
		return 0;
	/* after ") " comes field 3 (state) */
	for (field = 3, p += 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		v = strtoull(p, NULL, 10);
	return v;
}

/* mkdir -p for one level below an existing parent; EEXIST is fine. */
static int mkdir_one(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST) {
		int ret = -errno;

		log_err("pool: mkdir %s: %s", path, strerror(errno));
		return ret;
	}
	return 0;
}

int pool_mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir_one(tmp, mode);
}

/* Removes a directory and the files directly in it (a proc's run directory holds no
 * subdirectories). */
void pool_rmdir_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
			log_warn("pool: unlink %s/%s: %s", dir, e->d_name, strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("pool: rmdir %s: %s", dir, strerror(errno));
}

int pool_write_json(const char *path, json_object *o, bool durable)
{
	int ret = api_json_write_file(path, o, JSON_C_TO_STRING_PRETTY, durable);

	if (ret)
		log_err("pool: writing %s: %s", path, strerror(-ret));
	return ret;
}

/* ---- records ------------------------------------------------------------------------------- */

static const char *const state_names[] = {
    [PROC_STARTING] = "starting",
    [PROC_READY] = "prepared",
    [PROC_CLONE] = "running",
    [PROC_EXITED] = "exited",
};

const char *pool_proc_state_name(enum proc_state s)
{
	return state_names[s];
}

int pool_proc_save(const struct proc *p)
{
	char path[PATH_MAX + 16];
	json_object *o = json_object_new_object();
	int ret;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "id", json_object_new_string(p->id));
	json_object_object_add(o, "pool", json_object_new_string(p->pool_id));
	json_object_object_add(o, "state", json_object_new_string(pool_proc_state_name(p->state)));
	json_object_object_add(o, "pid", json_object_new_int64(p->pid));
	json_object_object_add(o, "starttime", json_object_new_int64((int64_t)p->starttime));
	json_object_object_add(o, "jailed", json_object_new_boolean(p->jailed));
	json_object_object_add(o, "jailer", json_object_new_string(p->jailer));
	json_object_object_add(o, "chroot_base", json_object_new_string(p->chroot_base));
	json_object_object_add(o, "exec_file", json_object_new_string(p->exec_file));
	json_object_object_add(o, "api_sock", json_object_new_string(p->api_sock));
	json_object_object_add(o, "console_sock", json_object_new_string(p->console_sock));
	json_object_object_add(o, "vsock", json_object_new_string(p->vsock));
	json_object_object_add(o, "paused", json_object_new_boolean(p->paused));
	json_object_object_add(o, "latency_us", json_object_new_int64((int64_t)p->latency_us));
	snprintf(path, sizeof(path), "%s/proc.json", p->statedir);
	/* Not fsync'd: it describes a process, which a machine crash ends too, and it is
	 * written on the clone request's path (an fsync took 2-17 ms here). A killed pool
	 * still finds one whole record for re-adoption. */
	ret = pool_write_json(path, o, false);
	json_object_put(o);
	return ret;
}

int pool_proc_load(const char *statedir, struct proc *p)
{
	char path[PATH_MAX + 16], state[16];
	json_object *o, *v;
	int ret = -EINVAL;

	memset(p, 0, sizeof(*p));
	p->pidfd = p->ready_fd = -1;
	p->exit_status = -1;
	snprintf(path, sizeof(path), "%s/proc.json", statedir);
	o = json_object_from_file(path);
	if (!o)
		return -ENOENT;
	if (api_json_get_str(o, "id", p->id, sizeof(p->id)) ||
	    api_json_get_str(o, "pool", p->pool_id, sizeof(p->pool_id)) ||
	    api_json_get_str(o, "state", state, sizeof(state)) ||
	    api_json_get_str(o, "jailer", p->jailer, sizeof(p->jailer)) ||
	    api_json_get_str(o, "chroot_base", p->chroot_base, sizeof(p->chroot_base)) ||
	    api_json_get_str(o, "exec_file", p->exec_file, sizeof(p->exec_file)) ||
	    api_json_get_str(o, "api_sock", p->api_sock, sizeof(p->api_sock)) ||
	    api_json_get_str(o, "console_sock", p->console_sock, sizeof(p->console_sock)) ||
	    api_json_get_str(o, "vsock", p->vsock, sizeof(p->vsock)))
		goto out;
	if (!pool_id_valid(p->id) || strlen(statedir) >= sizeof(p->statedir))
		goto out;
	memcpy(p->statedir, statedir, strlen(statedir) + 1);
	if (!json_object_object_get_ex(o, "pid", &v) || json_object_get_int64(v) <= 1)
		goto out;
	p->pid = (pid_t)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "starttime", &v))
		p->starttime = (unsigned long long)json_object_get_int64(v);
	if (json_object_object_get_ex(o, "jailed", &v))
		p->jailed = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "paused", &v))
		p->paused = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "latency_us", &v))
		p->latency_us = (uint64_t)json_object_get_int64(v);
	p->state = !strcmp(state, "running") ? PROC_CLONE : PROC_READY;
	ret = 0;
out:
	json_object_put(o);
	return ret;
}

/* ---- start --------------------------------------------------------------------------------- */

int pool_proc_start(struct proc *p, const struct pool_cfg *cfg, const char *thaw)
{
	posix_spawn_file_actions_t fa;
	char log[PATH_MAX + 16], console[PATH_MAX + 16];
	struct argv v = {.n = 0};
	const char *prefix = ""; /* where thaw sees its run directory */
	int ret;

	v.a[0] = NULL;
	if (cfg->jail.enabled) {
		const struct pool_jail *j = &cfg->jail;

		argv_add(&v, p->jailer);
		argv_add(&v, "--id");
		argv_add(&v, p->id);
		argv_add(&v, "--exec-file");
		argv_add(&v, j->exec_file);
		argv_add(&v, "--uid");
		argv_addf(&v, "%u", j->uid);
		argv_add(&v, "--gid");
		argv_addf(&v, "%u", j->gid);
		argv_add(&v, "--chroot-base");
		argv_add(&v, p->chroot_base);
		if (j->netns[0]) {
			argv_add(&v, "--netns");
			argv_add(&v, j->netns);
		}
		for (unsigned int i = 0; i < j->n_cgroups; i++) {
			argv_add(&v, "--cgroup");
			argv_add(&v, j->cgroups[i]);
		}
		argv_add(&v, "--devices");
		argv_add(&v,
			 cfg->backend == API_MEM_BACKEND_UFFD ? "kvm,uffd,urandom" : "kvm,urandom");
		argv_add(&v, "--link");
		argv_addf(&v, "%s:%s:ro", cfg->snapshot, POOL_JAIL_SNAPSHOT);
		if (cfg->backend == API_MEM_BACKEND_FILE) {
			argv_add(&v, "--link");
			argv_addf(&v, "%s:%s:ro", cfg->backend_path, POOL_JAIL_MEMFILE);
		}
		argv_add(&v, "--");
		prefix = "";
	} else {
		argv_add(&v, thaw);
		prefix = p->rundir;
	}
	argv_add(&v, "--api-sock");
	argv_addf(&v, "%s/api.sock", prefix);
	argv_add(&v, "--id");
	argv_add(&v, p->id);
	argv_add(&v, "--prepare");
	argv_addf(&v, "mem-mib=%u,vcpus=%u", cfg->mem_mib, cfg->vcpus);
	argv_add(&v, "--console-in");
	argv_addf(&v, "%s/console.sock", prefix);

	snprintf(log, sizeof(log), "%s/thaw.log", p->statedir);
	snprintf(console, sizeof(console), "%s/console.log", p->statedir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, console, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	/* Its own session: a terminal's ^C to the pool does not reach clones, which outlive
	 * the pool by design (a restarted pool re-adopts them). Signals default, unblocked:
	 * the pool blocks SIGCHLD and friends for its signalfd. */
	ret = argv_spawn_session(&p->pid, &v, &fa);
	posix_spawn_file_actions_destroy(&fa);
	if (ret) {
		log_err("pool: starting %s for %s: %s", v.a[0], p->id, strerror(ret));
		return -ret;
	}
	p->started_ns = now_ns();
	p->starttime = pool_proc_starttime(p->pid);
	return 0;
}

/* ---- readiness ---------------------------------------------------------------------------------
 */

int pool_proc_probe(struct proc *p)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (p->ready_fd >= 0)
		return 0;
	if (strlen(p->api_sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, p->api_sock, strlen(p->api_sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int ret = -errno;

		close(fd);
		/* not bound yet, or bound but not listening yet: try again later */
		return ret == -ENOENT || ret == -ECONNREFUSED || ret == -EAGAIN ? -EAGAIN : ret;
	}
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
		close(fd);
		return -EAGAIN;
	}
	p->ready_fd = fd;
	return 0;
}

int pool_proc_probe_read(struct proc *p)
{
	char buf[512];
	ssize_t n = recv(p->ready_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	close(p->ready_fd);
	p->ready_fd = -1;
	if (n <= 0)
		return -EAGAIN; /* closed before answering: probe again */
	buf[n] = '\0';
	/* GET / is answered once thaw's main loop runs, i.e. after --prepare built the VM. */
	return !strncmp(buf, "HTTP/1.1 200", 12) ? 0 : -EPROTO;
}

/* ---- end ---------------------------------------------------------------------------------------
 */

int pool_proc_kill_wait(struct proc *p, int timeout_ms)
{
	struct pollfd pfd;
	int fd;

	if (!p->pid || pool_proc_starttime(p->pid) != p->starttime || !p->starttime)
		return 0; /* gone already, or the pid is someone else's now */
	fd = pool_pidfd_open(p->pid);
	if (fd < 0)
		return errno == ESRCH ? 0 : -errno;
	if (syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) < 0 && errno != ESRCH) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, timeout_ms) <= 0) {
		close(fd);
		log_err("pool: %s (pid %d) did not die within %d ms", p->id, (int)p->pid,
			timeout_ms);
		return -ETIMEDOUT;
	}
	close(fd);
	/* Our child: reap it here, its status is of no interest (we killed it). */
	waitpid(p->pid, NULL, WNOHANG);
	return 0;
}

int pool_proc_cleanup(struct proc *p)
{
	int ret = 0;

	if (p->jailed) {
		const char *argv[] = {p->jailer,     "--cleanup",     "--id",
				      p->id,	     "--chroot-base", p->chroot_base,
				      "--exec-file", p->exec_file,    NULL};

		ret = argv_run_wait(argv, false);
		if (ret)
			log_err("pool: thaw-jailer --cleanup --id %s failed", p->id);
	} else {
		unlink(p->api_sock);
		unlink(p->console_sock);
	}
	if (p->vsock[0])
		unlink(p->vsock);
	if (!ret)
		pool_rmdir_files(p->statedir);
	return ret;
}
