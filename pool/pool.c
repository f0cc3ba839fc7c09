/* The supervisor: pools, their refill, the clone request, reaping, the state directory
 * and the HTTP router. One thread, one epoll loop: the API's fd, a signalfd (SIGCHLD,
 * SIGTERM, SIGINT), a timerfd (refill and readiness probes), each starting process's probe
 * connection and each adopted clone's pidfd. */
#include "pool/pool_int.h"

#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct poold {
	char state_dir[PATH_MAX];
	char thaw[PATH_MAX];
	char bindir[PATH_MAX];
	struct api_server *srv;
	int ep, sig_fd, tick_fd;
	uint64_t tick_armed_ms;
	struct pool *pools[POOL_MAX_POOLS];
	uint64_t seq; /* the next process number */
	struct pool_hist hist;
	uint64_t hits, misses, clone_requests, refused;
	bool loading; /* re-reading the state dir: no process starts yet */
	bool stop;
};

static int ep_add(struct poold *d, int fd, void *tag)
{
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = tag};

	return epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static struct pool *pool_find(struct poold *d, const char *id)
{
	for (unsigned int i = 0; i < POOL_MAX_POOLS; i++)
		if (d->pools[i] && !strcmp(d->pools[i]->cfg.id, id))
			return d->pools[i];
	return NULL;
}

static struct proc *proc_find(struct poold *d, const char *id, struct pool **pool)
{
	for (unsigned int i = 0; i < POOL_MAX_POOLS; i++) {
		struct pool *pl = d->pools[i];

		if (!pl)
			continue;
		for (struct proc *p = pl->procs; p; p = p->next)
			if (!strcmp(p->id, id)) {
				if (pool)
					*pool = pl;
				return p;
			}
	}
	return NULL;
}

static struct proc *proc_by_pid(struct poold *d, pid_t pid)
{
	for (unsigned int i = 0; i < POOL_MAX_POOLS; i++) {
		struct pool *pl = d->pools[i];

		if (!pl)
			continue;
		for (struct proc *p = pl->procs; p; p = p->next)
			if (p->pid == pid && p->state != PROC_EXITED && !p->adopted)
				return p;
	}
	return NULL;
}

static uint32_t *state_count(struct pool *pl, enum proc_state s)
{
	switch (s) {
	case PROC_STARTING:
		return &pl->n_starting;
	case PROC_READY:
		return &pl->n_ready;
	case PROC_CLONE:
		return &pl->n_running;
	case PROC_EXITED:
	default:
		return &pl->n_exited;
	}
}

static void proc_set_state(struct pool *pl, struct proc *p, enum proc_state s)
{
	(*state_count(pl, p->state))--;
	p->state = s;
	(*state_count(pl, s))++;
}

static void proc_unlink(struct pool *pl, struct proc *p)
{
	for (struct proc **pp = &pl->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			(*state_count(pl, p->state))--;
			return;
		}
}

static void proc_free(struct poold *d, struct proc *p)
{
	if (p->ready_fd >= 0) {
		epoll_ctl(d->ep, EPOLL_CTL_DEL, p->ready_fd, NULL);
		close(p->ready_fd);
	}
	if (p->pidfd >= 0) {
		epoll_ctl(d->ep, EPOLL_CTL_DEL, p->pidfd, NULL);
		close(p->pidfd);
	}
	free(p);
}

/* Paths of a new process of pool `pl`. */
static int proc_paths(struct poold *d, struct pool *pl, struct proc *p)
{
	const struct pool_jail *j = &pl->cfg.jail;
	int n;

	if (pool_fmt(p->id, sizeof(p->id), "%s-%llu", pl->cfg.id, (unsigned long long)d->seq++))
		return -ENAMETOOLONG;
	memcpy(p->pool_id, pl->cfg.id, sizeof(p->pool_id));
	pool_fmt(p->statedir, sizeof(p->statedir), "%s/run/%s", d->state_dir, p->id);
	p->jailed = j->enabled;
	if (j->enabled) {
		pool_fmt(p->jailer, sizeof(p->jailer), "%s", j->jailer);
		pool_fmt(p->chroot_base, sizeof(p->chroot_base), "%s", j->chroot_base);
		pool_fmt(p->exec_file, sizeof(p->exec_file), "%s", j->exec_file);
		/* Firecracker's jail layout, which thaw-jailer keeps. */
		n = pool_fmt(p->rundir, sizeof(p->rundir), "%s/%s/%s/root", j->chroot_base,
			     pool_exec_name(j->exec_file), p->id);
	} else {
		n = pool_fmt(p->rundir, sizeof(p->rundir), "%s", p->statedir);
	}
	if (n || strlen(p->rundir) >= sizeof(p->rundir) - 16)
		return -ENAMETOOLONG;
	pool_fmt(p->api_sock, sizeof(p->api_sock), "%s/api.sock", p->rundir);
	pool_fmt(p->console_sock, sizeof(p->console_sock), "%s/console.sock", p->rundir);
	if (strlen(p->api_sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* Starts one process for pool `pl` (a refill, or a miss's fallback). */
static int proc_spawn(struct poold *d, struct pool *pl, struct proc **out)
{
	struct proc *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return -ENOMEM;
	p->pidfd = p->ready_fd = -1;
	p->exit_status = -1;
	p->pool = pl;
	p->state = PROC_STARTING;
	ret = proc_paths(d, pl, p);
	if (!ret)
		ret = pool_mkdirs(p->statedir, 0700);
	if (!ret)
		ret = pool_proc_start(p, &pl->cfg, d->thaw);
	if (ret) {
		pl->start_failures++;
		pool_rmdir_files(p->statedir);
		free(p);
		return ret;
	}
	/* The record at once, so that --cleanup after a kill -9 finds the process. A kill
	 * in the few microseconds between the start and this write leaves a process
	 * without a record: --cleanup then removes its run directory but cannot name it
	 * (docs/pool.md, "Not done"). */
	pool_proc_save(p);
	p->next = pl->procs;
	pl->procs = p;
	pl->n_starting++;
	*out = p;
	return 0;
}

/* A process reached its end (reaped child, or adopted one whose pidfd fired). */
static void proc_ended(struct poold *d, struct pool *pl, struct proc *p, int status)
{
	if (p->pidfd >= 0) {
		epoll_ctl(d->ep, EPOLL_CTL_DEL, p->pidfd, NULL);
		close(p->pidfd);
		p->pidfd = -1;
	}
	if (p->ready_fd >= 0) {
		epoll_ctl(d->ep, EPOLL_CTL_DEL, p->ready_fd, NULL);
		close(p->ready_fd);
		p->ready_fd = -1;
	}
	pool_proc_cleanup(p);
	if (p->state == PROC_CLONE && !p->deleting) {
		p->exit_status = status;
		p->exited_ns = now_ns();
		proc_set_state(pl, p, PROC_EXITED);
		log_info("pool %s: clone %s (pid %d) exited (%s %d)", pl->cfg.id, p->id,
			 (int)p->pid,
			 status < 0	       ? "status unknown"
			 : WIFSIGNALED(status) ? "signal"
					       : "status",
			 status < 0	       ? -1
			 : WIFSIGNALED(status) ? WTERMSIG(status)
					       : WEXITSTATUS(status));
		/* Remember a bounded number of ended clones. */
		if (pl->n_exited > POOL_MAX_EXITED) {
			struct proc *old = NULL;

			for (struct proc *q = pl->procs; q; q = q->next)
				if (q->state == PROC_EXITED &&
				    (!old || q->exited_ns < old->exited_ns))
					old = q;
			if (old) {
				proc_unlink(pl, old);
				proc_free(d, old);
			}
		}
		return;
	}
	if (p->state == PROC_READY) {
		pl->prepared_died++;
		log_warn("pool %s: prepared process %s (pid %d) died; it will be replaced",
			 pl->cfg.id, p->id, (int)p->pid);
	} else if (p->state == PROC_STARTING) {
		pl->start_failures++;
		log_warn(
		    "pool %s: process %s (pid %d) ended before it was prepared (see %s/thaw.log)",
		    pl->cfg.id, p->id, (int)p->pid, p->statedir);
	}
	proc_unlink(pl, p);
	proc_free(d, p);
}

/* Kills, waits and cleans; then forgets p. For prepared processes and shutdown. */
static void proc_destroy(struct poold *d, struct pool *pl, struct proc *p)
{
	if (p->state != PROC_EXITED) {
		pool_proc_kill_wait(p, 5000);
		pool_proc_cleanup(p);
	}
	proc_unlink(pl, p);
	proc_free(d, p);
}

static void reap_children(struct poold *d)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		struct proc *p;

		if (pid <= 0)
			return;
		p = proc_by_pid(d, pid);
		if (p)
			proc_ended(d, p->pool, p, st);
	}
}

/* ---- refill and readiness ------------------------------------------------------------------- */

static void probe_ready(struct poold *d, struct pool *pl, struct proc *p)
{
	int ret = pool_proc_probe_read(p);

	if (ret == -EAGAIN)
		return;
	if (ret) {
		log_warn("pool %s: %s answered GET / with an error; stopping it", pl->cfg.id,
			 p->id);
		proc_destroy(d, pl, p);
		pl->start_failures++;
		return;
	}
	p->ready_ns = now_ns();
	proc_set_state(pl, p, PROC_READY);
	pool_proc_save(p);
}

static void probe_starting(struct poold *d, struct pool *pl)
{
	struct proc *p, *next;
	uint64_t now = now_ns();

	for (p = pl->procs; p; p = next) {
		next = p->next;
		if (p->state != PROC_STARTING)
			continue;
		if (now - p->started_ns > (uint64_t)POOL_START_TIMEOUT_MS * 1000000ull) {
			log_warn("pool %s: %s not prepared after %d ms; stopping it", pl->cfg.id,
				 p->id, POOL_START_TIMEOUT_MS);
			pl->start_failures++;
			proc_destroy(d, pl, p);
			continue;
		}
		if (p->ready_fd >= 0)
			continue; /* its answer is awaited in the loop */
		if (pool_proc_probe(p) == 0 && ep_add(d, p->ready_fd, p) < 0) {
			close(p->ready_fd);
			p->ready_fd = -1;
		}
	}
}

static void refill(struct poold *d, struct pool *pl)
{
	uint64_t now = now_ns();
	double cap = pl->cfg.refill_per_s < 1 ? 1 : pl->cfg.refill_per_s;

	if (cap > POOL_MAX_PREPARING)
		cap = POOL_MAX_PREPARING;
	pl->tokens += (double)(now - pl->tokens_ns) / 1e9 * pl->cfg.refill_per_s;
	pl->tokens_ns = now;
	if (pl->tokens > cap)
		pl->tokens = cap;
	while (pl->n_ready + pl->n_starting < pl->cfg.target &&
	       pl->n_starting < POOL_MAX_PREPARING && pl->tokens >= 1) {
		struct proc *p;

		pl->tokens -= 1;
		if (proc_spawn(d, pl, &p) < 0)
			break;
		pl->refilled++;
	}
}

static void tick(struct poold *d)
{
	uint64_t ticks;
	bool busy = false;
	struct itimerspec its = {0};

	if (read(d->tick_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("pool: read timerfd: %s", strerror(errno));
	for (unsigned int i = 0; i < POOL_MAX_POOLS; i++) {
		struct pool *pl = d->pools[i];

		if (!pl)
			continue;
		refill(d, pl);
		probe_starting(d, pl);
		if (pl->n_starting || pl->n_ready < pl->cfg.target)
			busy = true;
	}
	/* Probing while something starts, the refill's pace otherwise. */
	its.it_value.tv_nsec = busy ? 2000000 : 100000000;
	timerfd_settime(d->tick_fd, 0, &its, NULL);
}

/* ---- the clone request ------------------------------------------------------------------------
 */

static json_object *load_body(const struct pool *pl, const struct proc *p,
			      const struct pool_clone_opts *o, const char *vsock_in_jail)
{
	const struct pool_cfg *c = &pl->cfg;
	json_object *b = json_object_new_object();

	json_object_object_add(
	    b, "snapshot_path",
	    json_object_new_string(c->jail.enabled ? POOL_JAIL_SNAPSHOT : c->snapshot));
	if (c->backend != API_MEM_BACKEND_NONE) {
		json_object *m = json_object_new_object();

		json_object_object_add(
		    m, "backend_type",
		    json_object_new_string(c->backend == API_MEM_BACKEND_FILE ? "File" : "Uffd"));
		json_object_object_add(
		    m, "backend_path",
		    json_object_new_string(c->jail.enabled && c->backend == API_MEM_BACKEND_FILE
					       ? POOL_JAIL_MEMFILE
					       : c->backend_path));
		json_object_object_add(b, "mem_backend", m);
	}
	json_object_object_add(b, "resume_vm", json_object_new_boolean(!o->paused));
	if (o->clock_realtime)
		json_object_object_add(b, "clock_realtime", json_object_new_boolean(true));
	if (p->vsock[0]) {
		json_object *v = json_object_new_object();

		json_object_object_add(
		    v, "uds_path",
		    json_object_new_string(vsock_in_jail ? vsock_in_jail : p->vsock));
		json_object_object_add(b, "vsock_override", v);
	}
	if (o->n_drives) {
		json_object *a = json_object_new_array();

		for (uint32_t i = 0; i < o->n_drives; i++) {
			json_object *e = json_object_new_object();

			json_object_object_add(e, "drive_id",
					       json_object_new_string(o->drives[i].drive_id));
			json_object_object_add(e, "path_on_host",
					       json_object_new_string(o->drives[i].path_on_host));
			if (o->drives[i].has_read_only)
				json_object_object_add(
				    e, "is_read_only",
				    json_object_new_boolean(o->drives[i].is_read_only));
			if (o->drives[i].overlay_of[0])
				json_object_object_add(
				    e, "overlay_of",
				    json_object_new_string(o->drives[i].overlay_of));
			json_object_array_add(a, e);
		}
		json_object_object_add(b, "drive_overrides", a);
	}
	return b;
}

/* Sends PUT /snapshot/load to p; returns the connected fd, or -errno. */
static int load_send(struct pool *pl, struct proc *p, const struct pool_clone_opts *o)
{
	json_object *b;
	const char *s;
	int fd, ret;

	if (pl->cfg.vsock || o->vsock_dir[0]) {
		if (o->vsock_dir[0])
			pool_fmt(p->vsock, sizeof(p->vsock), "%s/%s.vsock", o->vsock_dir, p->id);
		else
			pool_fmt(p->vsock, sizeof(p->vsock), "%s/vsock.sock", p->rundir);
	}
	b = load_body(pl, p, o, pl->cfg.jail.enabled && p->vsock[0] ? "/vsock.sock" : NULL);
	if (!b)
		return -ENOMEM;
	s = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN);
	fd = api_client_connect(p->api_sock);
	if (fd < 0) {
		json_object_put(b);
		return fd;
	}
	ret = api_client_send(fd, "PUT", "/snapshot/load", s);
	json_object_put(b);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static json_object *clone_json(const struct proc *p)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(p->id));
	json_object_object_add(o, "pool", json_object_new_string(p->pool_id));
	json_object_object_add(o, "state", json_object_new_string(pool_proc_state_name(p->state)));
	json_object_object_add(o, "pid", json_object_new_int64(p->pid));
	json_object_object_add(o, "api_sock", json_object_new_string(p->api_sock));
	json_object_object_add(o, "console_sock", json_object_new_string(p->console_sock));
	{
		char log[PATH_MAX + 16];

		pool_fmt(log, sizeof(log), "%s/console.log", p->statedir);
		json_object_object_add(o, "console_log", json_object_new_string(log));
	}
	json_object_object_add(o, "vsock", p->vsock[0] ? json_object_new_string(p->vsock) : NULL);
	json_object_object_add(o, "latency_us", json_object_new_int64((int64_t)p->latency_us));
	json_object_object_add(o, "from_stock", json_object_new_boolean(p->from_stock));
	json_object_object_add(o, "paused", json_object_new_boolean(p->paused));
	json_object_object_add(o, "adopted", json_object_new_boolean(p->adopted));
	if (p->state == PROC_EXITED) {
		int st = p->exit_status;

		if (st < 0) {
			json_object_object_add(o, "exit_status", NULL);
		} else if (WIFSIGNALED(st)) {
			json_object_object_add(o, "exit_signal", json_object_new_int(WTERMSIG(st)));
			json_object_object_add(o, "exit_status", NULL);
		} else {
			json_object_object_add(o, "exit_status",
					       json_object_new_int(WEXITSTATUS(st)));
		}
	}
	return o;
}

/* Waits (blocking: this is the miss path) until the fallback processes are prepared. */
static int wait_fallbacks(struct poold *d, struct pool *pl, struct proc **fb, uint32_t n)
{
	uint64_t t0 = now_ns();

	for (;;) {
		uint32_t ready = 0;

		for (uint32_t i = 0; i < n; i++) {
			struct proc *p = fb[i];
			int ret;

			if (p->state == PROC_READY) {
				ready++;
				continue;
			}
			if (p->ready_fd < 0 && pool_proc_probe(p) < 0)
				continue;
			ret = pool_proc_probe_read(p);
			if (ret == 0) {
				p->ready_ns = now_ns();
				proc_set_state(pl, p, PROC_READY);
				ready++;
			} else if (ret != -EAGAIN) {
				return -EPROTO;
			}
			/* it may have died: waitpid it now, so we do not wait the full timeout */
			if (p->state == PROC_STARTING && waitpid(p->pid, NULL, WNOHANG) == p->pid) {
				p->pid = 0;
				return -ECHILD;
			}
		}
		if (ready == n)
			return 0;
		if (now_ns() - t0 > (uint64_t)POOL_START_TIMEOUT_MS * 1000000ull)
			return -ETIMEDOUT;
		poll(NULL, 0, 1);
	}
}

static void route_clones(struct poold *d, struct pool *pl, json_object *body,
			 struct api_http_reply *r, uint64_t t0)
{
	struct pool_clone_req *req;
	struct proc *got[POOL_MAX_BATCH], *fb[POOL_MAX_BATCH];
	int fds[POOL_MAX_BATCH];
	uint32_t n = 0, nfb = 0, ok = 0;
	char err[512];
	json_object *out, *arr, *errs;
	struct api_response *resp;
	int ret;

	req = calloc(1, sizeof(*req));
	resp = malloc(sizeof(*resp));
	if (!req || !resp) {
		api_http_reply_fault(r, 500, "Out of memory.");
		goto out;
	}
	if (pool_clone_req_parse(body, req, err, sizeof(err))) {
		api_http_reply_fault(r, 400, "%s", err);
		goto out;
	}
	d->clone_requests++;
	if (pl->cfg.jail.enabled && (req->opts.vsock_dir[0] || req->opts.n_drives)) {
		api_http_reply_fault(r, 400,
				     "Pool %s is jailed: vsock_dir and drive_overrides name host "
				     "paths its prepared processes cannot see.",
				     pl->cfg.id);
		goto out;
	}
	/* Limits: refused at once, nothing queued. */
	if (pl->n_running + req->count > pl->cfg.max_clones) {
		d->refused++;
		api_http_reply_fault(
		    r, 429,
		    "Pool %s: %u clones running and %u requested exceed max_clones "
		    "%u.",
		    pl->cfg.id, pl->n_running, req->count, pl->cfg.max_clones);
		goto out;
	}
	if (pl->cfg.max_mem_mib &&
	    (uint64_t)(pl->n_running + req->count) * pl->cfg.mem_mib > pl->cfg.max_mem_mib) {
		d->refused++;
		api_http_reply_fault(r, 429,
				     "Pool %s: %u running clones of %u MiB and %u requested exceed "
				     "max_mem_mib %llu.",
				     pl->cfg.id, pl->n_running, pl->cfg.mem_mib, req->count,
				     (unsigned long long)pl->cfg.max_mem_mib);
		goto out;
	}
	/* Stock first, oldest prepared first is not needed: any will do. */
	for (struct proc *p = pl->procs; p && n < req->count; p = p->next)
		if (p->state == PROC_READY) {
			p->from_stock = true;
			got[n++] = p;
		}
	/* The rest: process starts now, counted as misses. */
	while (n + nfb < req->count) {
		struct proc *p;

		ret = proc_spawn(d, pl, &p);
		if (ret) {
			api_http_reply_fault(r, 503,
					     "Pool %s is empty and a process start failed: %s.",
					     pl->cfg.id, strerror(-ret));
			for (uint32_t i = 0; i < nfb; i++)
				proc_destroy(d, pl, fb[i]);
			goto out;
		}
		fb[nfb++] = p;
	}
	if (nfb) {
		pl->misses += nfb;
		d->misses += nfb;
		ret = wait_fallbacks(d, pl, fb, nfb);
		if (ret) {
			api_http_reply_fault(r, 503,
					     "Pool %s is empty and a fallback process did not get "
					     "prepared: %s.",
					     pl->cfg.id, strerror(-ret));
			for (uint32_t i = 0; i < nfb; i++)
				proc_destroy(d, pl, fb[i]);
			goto out;
		}
		for (uint32_t i = 0; i < nfb; i++)
			got[n++] = fb[i];
	}
	pl->hits += n - nfb;
	d->hits += n - nfb;

	/* Every load is sent before any answer is read: the restores run side by side. */
	for (uint32_t i = 0; i < n; i++) {
		proc_set_state(pl, got[i], PROC_CLONE);
		got[i]->paused = req->opts.paused;
		fds[i] = load_send(pl, got[i], &req->opts);
	}
	out = json_object_new_object();
	arr = json_object_new_array();
	errs = json_object_new_array();
	for (uint32_t i = 0; i < n; i++) {
		struct proc *p = got[i];

		ret = fds[i] < 0 ? fds[i] : api_client_read_response(fds[i], resp);
		p->latency_us = (now_ns() - t0) / 1000;
		if (fds[i] >= 0)
			close(fds[i]);
		if (ret == 0 && resp->status == 204) {
			pool_hist_add(&pl->hist, p->latency_us);
			pool_hist_add(&d->hist, p->latency_us);
			pool_proc_save(p);
			json_object_array_add(arr, clone_json(p));
			ok++;
			continue;
		}
		if (ret)
			pool_fmt(err, sizeof(err), "%s: %s", p->id, strerror(-ret));
		else {
			char msg[400];

			api_client_fault_message(resp, msg, sizeof(msg));
			pool_fmt(err, sizeof(err), "%s: thaw answered %d: %s", p->id, resp->status,
				 msg);
		}
		json_object_array_add(errs, json_object_new_string(err));
		pl->clones_failed++;
		/* A failed load leaves thaw refusing everything: that process is spent. */
		p->deleting = true;
		proc_destroy(d, pl, p);
	}
	pl->clones_total += ok;
	/* Refill right after the answer, not at the next slow tick. */
	{
		struct itimerspec its = {.it_value.tv_nsec = 100000};

		timerfd_settime(d->tick_fd, 0, &its, NULL);
	}
	if (!ok) {
		json_object_put(out);
		json_object_put(arr);
		api_http_reply_fault(r, 500, "Pool %s: no clone started; first failure: %s",
				     pl->cfg.id,
				     json_object_get_string(json_object_array_get_idx(errs, 0)));
		json_object_put(errs);
		goto out;
	}
	json_object_object_add(out, "clones", arr);
	json_object_object_add(out, "misses", json_object_new_int64(nfb));
	json_object_object_add(out, "errors", errs);
	api_http_reply_json(r, 201, out);
out:
	free(req);
	free(resp);
}

/* ---- pools --------------------------------------------------------------------------------- */

static json_object *pool_json(const struct pool *pl)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(pl->cfg.id));
	json_object_object_add(o, "config", pool_cfg_to_json(&pl->cfg));
	json_object_object_add(o, "mem_mib", json_object_new_int64(pl->cfg.mem_mib));
	json_object_object_add(o, "vcpus", json_object_new_int64(pl->cfg.vcpus));
	json_object_object_add(o, "target", json_object_new_int64(pl->cfg.target));
	json_object_object_add(o, "prepared", json_object_new_int64(pl->n_ready));
	json_object_object_add(o, "starting", json_object_new_int64(pl->n_starting));
	json_object_object_add(o, "running", json_object_new_int64(pl->n_running));
	json_object_object_add(o, "exited", json_object_new_int64(pl->n_exited));
	json_object_object_add(o, "hits", json_object_new_int64((int64_t)pl->hits));
	json_object_object_add(o, "misses", json_object_new_int64((int64_t)pl->misses));
	json_object_object_add(o, "clones_total", json_object_new_int64((int64_t)pl->clones_total));
	json_object_object_add(o, "clones_failed",
			       json_object_new_int64((int64_t)pl->clones_failed));
	json_object_object_add(o, "prepared_died",
			       json_object_new_int64((int64_t)pl->prepared_died));
	json_object_object_add(o, "start_failures",
			       json_object_new_int64((int64_t)pl->start_failures));
	json_object_object_add(o, "refilled", json_object_new_int64((int64_t)pl->refilled));
	json_object_object_add(o, "refill_per_s", json_object_new_double(pl->cfg.refill_per_s));
	json_object_object_add(o, "latency", pool_hist_to_json(&pl->hist));
	return o;
}

static int pool_file(struct poold *d, const char *id, char *buf, size_t len)
{
	return pool_fmt(buf, len, "%s/pools/%s.json", d->state_dir, id);
}

/* Defaults that depend on where we run, then what PUT cannot check without touching the
 * snapshot: it opens, its shape can be prepared, the binaries are there. */
static int pool_resolve(struct poold *d, struct pool_cfg *cfg, char *err, size_t errlen)
{
	struct pool_jail *j = &cfg->jail;
	char probe_sock[PATH_MAX];
	int ret;

	if (j->enabled) {
		if (!j->jailer[0])
			pool_fmt(j->jailer, sizeof(j->jailer), "%s/thaw-jailer", d->bindir);
		if (!j->exec_file[0])
			pool_fmt(j->exec_file, sizeof(j->exec_file), "%s/thaw-static", d->bindir);
		if (!j->chroot_base[0])
			pool_fmt(j->chroot_base, sizeof(j->chroot_base), "%s/jail", d->state_dir);
		if (access(j->jailer, X_OK) < 0)
			return pool_fmt(err, errlen, "The jailer %s is not executable: %s",
					j->jailer, strerror(errno)),
			       -ENOENT;
		if (access(j->exec_file, X_OK) < 0)
			return pool_fmt(err, errlen, "The jail's thaw %s is not executable: %s",
					j->exec_file, strerror(errno)),
			       -ENOENT;
		if (cfg->backend == API_MEM_BACKEND_UFFD)
			return pool_fmt(err, errlen,
					"A jailed pool cannot use a Uffd memory backend yet: the "
					"handler's socket is outside the jail."),
			       -EINVAL;
		pool_fmt(probe_sock, sizeof(probe_sock), "%s/%s/%s-%llu/root/console.sock",
			 j->chroot_base, pool_exec_name(j->exec_file), cfg->id,
			 (unsigned long long)UINT32_MAX);
	} else {
		pool_fmt(probe_sock, sizeof(probe_sock), "%s/run/%s-%llu/console.sock",
			 d->state_dir, cfg->id, (unsigned long long)UINT32_MAX);
	}
	if (strlen(probe_sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return pool_fmt(
			   err, errlen,
			   "Socket paths of pool %s would exceed %zu bytes (%s): use a shorter "
			   "state directory, chroot base or pool id.",
			   cfg->id, sizeof(((struct sockaddr_un *)0)->sun_path) - 1, probe_sock),
		       -ENAMETOOLONG;
	ret = pool_cfg_probe_snapshot(cfg, err, errlen);
	if (ret)
		return ret;
	if (cfg->backend == API_MEM_BACKEND_FILE && access(cfg->backend_path, R_OK) < 0)
		return pool_fmt(err, errlen, "The memory file %s does not open: %s",
				cfg->backend_path, strerror(errno)),
		       -ENOENT;
	return 0;
}

/* Whether two configurations can share prepared processes. */
static bool same_shape(const struct pool_cfg *a, const struct pool_cfg *b)
{
	return !strcmp(a->snapshot, b->snapshot) && a->backend == b->backend &&
	       !strcmp(a->backend_path, b->backend_path) && a->vsock == b->vsock &&
	       !memcmp(&a->jail, &b->jail, sizeof(a->jail)) && a->mem_mib == b->mem_mib &&
	       a->vcpus == b->vcpus;
}

static void route_put_pool(struct poold *d, const char *id, json_object *body,
			   struct api_http_reply *r)
{
	struct pool_cfg *cfg = calloc(1, sizeof(*cfg));
	struct pool *pl;
	char err[1024], path[PATH_MAX];
	unsigned int slot;
	json_object *saved;

	if (!cfg) {
		api_http_reply_fault(r, 500, "Out of memory.");
		return;
	}
	if (pool_cfg_parse(id, body, cfg, err, sizeof(err)) ||
	    pool_resolve(d, cfg, err, sizeof(err))) {
		api_http_reply_fault(r, 400, "%s", err);
		goto out;
	}
	if (pool_file(d, id, path, sizeof(path))) {
		api_http_reply_fault(r, 400, "Pool id too long for the state directory.");
		goto out;
	}
	pl = pool_find(d, id);
	if (pl) {
		/* Limits, target and pace change in place; what the processes were built
		 * for does not. */
		if (!same_shape(&pl->cfg, cfg)) {
			api_http_reply_fault(
			    r, 409,
			    "Pool %s exists with another snapshot, memory backend, "
			    "vsock or jail: DELETE it first.",
			    id);
			goto out;
		}
		pl->cfg.target = cfg->target;
		pl->cfg.max_clones = cfg->max_clones;
		pl->cfg.max_mem_mib = cfg->max_mem_mib;
		pl->cfg.refill_per_s = cfg->refill_per_s;
		saved = pool_cfg_to_json(&pl->cfg);
		pool_write_json(path, saved, true);
		json_object_put(saved);
		api_http_reply_json(r, 200, pool_json(pl));
		goto out;
	}
	for (slot = 0; slot < POOL_MAX_POOLS && d->pools[slot]; slot++)
		;
	if (slot == POOL_MAX_POOLS) {
		api_http_reply_fault(r, 429, "Already %d pools: DELETE one first.", POOL_MAX_POOLS);
		goto out;
	}
	pl = calloc(1, sizeof(*pl));
	if (!pl) {
		api_http_reply_fault(r, 500, "Out of memory.");
		goto out;
	}
	pl->cfg = *cfg;
	pl->tokens = 1;
	pl->tokens_ns = now_ns();
	saved = pool_cfg_to_json(&pl->cfg);
	if (pool_write_json(path, saved, true) < 0) {
		json_object_put(saved);
		free(pl);
		api_http_reply_fault(r, 500, "Cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	json_object_put(saved);
	d->pools[slot] = pl;
	log_info("pool %s: %s (%u MiB, %u vCPUs), %u prepared%s", id, cfg->snapshot, cfg->mem_mib,
		 cfg->vcpus, cfg->target, cfg->jail.enabled ? ", jailed" : "");
	if (!d->loading)
		refill(d, pl);
	api_http_reply_json(r, 201, pool_json(pl));
out:
	free(cfg);
}

static void route_delete_pool(struct poold *d, struct pool *pl, struct api_http_reply *r)
{
	char path[PATH_MAX];

	if (pl->n_running) {
		api_http_reply_fault(r, 409, "Pool %s has %u running clones: DELETE them first.",
				     pl->cfg.id, pl->n_running);
		return;
	}
	while (pl->procs)
		proc_destroy(d, pl, pl->procs);
	if (!pool_file(d, pl->cfg.id, path, sizeof(path)))
		unlink(path);
	for (unsigned int i = 0; i < POOL_MAX_POOLS; i++)
		if (d->pools[i] == pl)
			d->pools[i] = NULL;
	free(pl);
	r->status = 204;
}

static void route_delete_clone(struct poold *d, struct pool *pl, struct proc *p,
			       struct api_http_reply *r)
{
	if (p->state == PROC_EXITED) {
		proc_unlink(pl, p);
		proc_free(d, p);
		r->status = 204;
		return;
	}
	if (p->state != PROC_CLONE) {
		api_http_reply_fault(r, 404, "No clone %s.", p->id);
		return;
	}
	/* The kill is sent now; reaping and the jail's clean-up follow in the loop. */
	p->deleting = true;
	if (p->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	else if (pool_proc_starttime(p->pid) == p->starttime)
		kill(p->pid, SIGKILL);
	api_http_reply_json(r, 202, clone_json(p));
}

/* The pool's own open descriptors and resident memory: a long-lived process shows them
 * not growing (the tests compare them before and after many clones). */
static void self_usage(long long *fds, long long *rss_kb)
{
	struct dirent *e;
	char line[256];
	FILE *f;
	DIR *dp = opendir("/proc/self/fd");

	*fds = *rss_kb = -1;
	if (dp) {
		*fds = 0;
		while ((e = readdir(dp)))
			if (e->d_name[0] != '.')
				(*fds)++;
		(*fds)--; /* the one opendir holds */
		closedir(dp);
	}
	f = fopen("/proc/self/status", "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "VmRSS: %lld", rss_kb) == 1)
				break;
		fclose(f);
	}
}

static json_object *metrics_json(struct poold *d)
{
	json_object *o = json_object_new_object(), *pools = json_object_new_object();
	long long fds, rss;

	self_usage(&fds, &rss);
	json_object_object_add(o, "open_fds", json_object_new_int64(fds));
	json_object_object_add(o, "rss_kb", json_object_new_int64(rss));

	json_object_object_add(o, "clone_requests",
			       json_object_new_int64((int64_t)d->clone_requests));
	json_object_object_add(o, "hits", json_object_new_int64((int64_t)d->hits));
	json_object_object_add(o, "misses", json_object_new_int64((int64_t)d->misses));
	json_object_object_add(o, "refused", json_object_new_int64((int64_t)d->refused));
	json_object_object_add(o, "latency", pool_hist_to_json(&d->hist));
	for (unsigned int i = 0; i < POOL_MAX_POOLS; i++)
		if (d->pools[i])
			json_object_object_add(pools, d->pools[i]->cfg.id, pool_json(d->pools[i]));
	json_object_object_add(o, "pools", pools);
	return o;
}

/* Splits "/a/b/c" into at most 3 segments (no empty ones); -1 for more. */
static int split(const char *path, char seg[3][POOL_PROC_ID_LEN + 1])
{
	int n = 0;
	const char *s = path;

	while (*s == '/')
		s++;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);

		if (n == 3 || len == 0 || len > POOL_PROC_ID_LEN)
			return -1;
		memcpy(seg[n], s, len);
		seg[n][len] = '\0';
		n++;
		s += len;
		while (*s == '/')
			s++;
	}
	return n;
}

/* A JSON object, strictly (as thaw's API parses): an empty body is {}; trailing data,
 * bad JSON or another type is refused, saying where. */
static json_object *parse_body(const char *body, size_t len, struct api_http_reply *r)
{
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	json_object *o;
	size_t end;

	if (len == 0)
		return json_object_new_object();
	/* depth 16 bounds json-c's recursion, as in api/ */
	tok = json_tokener_new_ex(16);
	if (!tok) {
		api_http_reply_fault(r, 500, "Out of memory.");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			api_http_reply_fault(r, 400,
					     "Invalid JSON in the request body: unexpected end.");
		else
			api_http_reply_fault(r, 400,
					     "Invalid JSON in the request body at byte %zu: %s.",
					     end, json_tokener_error_desc(jerr));
		json_object_put(o);
		return NULL;
	}
	for (size_t i = end; i < len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n') {
			api_http_reply_fault(
			    r, 400, "Invalid JSON in the request body: trailing data at byte %zu.",
			    i);
			json_object_put(o);
			return NULL;
		}
	if (!json_object_is_type(o, json_type_object)) {
		api_http_reply_fault(r, 400, "The request body must be a JSON object.");
		json_object_put(o);
		return NULL;
	}
	return o;
}

static void route(void *ctx, const char *method, const char *path, const char *body,
		  size_t body_len, struct api_http_reply *r)
{
	struct poold *d = ctx;
	char seg[3][POOL_PROC_ID_LEN + 1];
	uint64_t t0 = now_ns();
	json_object *o = NULL;
	int n = split(path, seg);
	bool get = !strcmp(method, "GET"), put = !strcmp(method, "PUT"),
	     post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
	struct pool *pl = NULL;
	struct proc *p;

	r->status = 500;
	r->body = NULL;
	r->len = 0;
	if (put || post) {
		o = parse_body(body, body_len, r);
		if (!o)
			goto out;
	}
	if (n == 0 && get) {
		json_object *info = json_object_new_object();

		json_object_object_add(info, "app_name", json_object_new_string("thaw-pool"));
		json_object_object_add(info, "state_dir", json_object_new_string(d->state_dir));
		api_http_reply_json(r, 200, info);
	} else if (n == 1 && !strcmp(seg[0], "metrics") && get) {
		api_http_reply_json(r, 200, metrics_json(d));
	} else if (n == 1 && !strcmp(seg[0], "pools") && get) {
		json_object *a = json_object_new_array();

		for (unsigned int i = 0; i < POOL_MAX_POOLS; i++)
			if (d->pools[i])
				json_object_array_add(a, pool_json(d->pools[i]));
		api_http_reply_json(r, 200, a);
	} else if (n >= 2 && !strcmp(seg[0], "pools")) {
		pl = pool_find(d, seg[1]);
		if ((n == 2 && !put && !get && !del) ||
		    (n == 3 && (strcmp(seg[2], "clones") || (!post && !get)))) {
			api_http_reply_fault(r, 400, "Invalid request method and/or path: %s %s.",
					     method, path);
		} else if (n == 2 && put) {
			route_put_pool(d, seg[1], o, r);
		} else if (!pl) {
			api_http_reply_fault(r, 404, "No pool %s.", seg[1]);
		} else if (n == 2 && get) {
			api_http_reply_json(r, 200, pool_json(pl));
		} else if (n == 2 && del) {
			route_delete_pool(d, pl, r);
		} else if (n == 3 && !strcmp(seg[2], "clones") && post) {
			route_clones(d, pl, o, r, t0);
		} else if (n == 3 && !strcmp(seg[2], "clones") && get) {
			json_object *a = json_object_new_array();

			for (p = pl->procs; p; p = p->next)
				if (p->state == PROC_CLONE || p->state == PROC_EXITED)
					json_object_array_add(a, clone_json(p));
			api_http_reply_json(r, 200, a);
		} else {
			api_http_reply_fault(r, 400, "Invalid request method and/or path: %s %s.",
					     method, path);
		}
	} else if (n == 2 && !strcmp(seg[0], "clones") && (get || del)) {
		p = proc_find(d, seg[1], &pl);
		if (!p || p->state == PROC_STARTING || p->state == PROC_READY)
			api_http_reply_fault(r, 404, "No clone %s.", seg[1]);
		else if (get)
			api_http_reply_json(r, 200, clone_json(p));
		else
			route_delete_clone(d, pl, p, r);
	} else {
		api_http_reply_fault(r, 400, "Invalid request method and/or path: %s %s.", method,
				     path);
	}
out:
	json_object_put(o);
}

/* ---- the state directory --------------------------------------------------------------------- */

static void adopt_or_clean(struct poold *d, const char *statedir)
{
	struct proc *p = calloc(1, sizeof(*p));
	struct pool *pl;
	const char *num;

	if (!p)
		return;
	if (pool_proc_load(statedir, p) < 0) {
		log_warn("pool: %s holds no readable record; removing it", statedir);
		pool_rmdir_files(statedir);
		free(p);
		return;
	}
	num = strrchr(p->id, '-');
	if (num && strtoull(num + 1, NULL, 10) >= d->seq)
		d->seq = strtoull(num + 1, NULL, 10) + 1;
	pl = pool_find(d, p->pool_id);
	if (p->state == PROC_CLONE && pl && p->starttime &&
	    pool_proc_starttime(p->pid) == p->starttime) {
		p->pidfd = pool_pidfd_open(p->pid);
		if (p->pidfd >= 0 && ep_add(d, p->pidfd, p) == 0) {
			p->adopted = true;
			p->pool = pl;
			p->next = pl->procs;
			pl->procs = p;
			pl->n_running++;
			log_info("pool %s: re-adopted clone %s (pid %d)", pl->cfg.id, p->id,
				 (int)p->pid);
			return;
		}
	}
	/* A prepared process (a restarted pool starts its own), or one whose pool or
	 * process is gone: stop and clean. */
	pool_proc_kill_wait(p, 5000);
	pool_proc_cleanup(p);
	pool_rmdir_files(statedir);
	free(p);
}

static int load_state(struct poold *d)
{
	char dir[PATH_MAX + 16];
	struct dirent *e;
	DIR *dp;

	/* New processes are numbered past every one the state dir names. */
	pool_fmt(dir, sizeof(dir), "%s/run", d->state_dir);
	dp = opendir(dir);
	while (dp && (e = readdir(dp))) {
		const char *num = strrchr(e->d_name, '-');

		if (num && strtoull(num + 1, NULL, 10) >= d->seq)
			d->seq = strtoull(num + 1, NULL, 10) + 1;
	}
	if (dp)
		closedir(dp);
	d->loading = true;

	pool_fmt(dir, sizeof(dir), "%s/pools", d->state_dir);
	dp = opendir(dir);
	while (dp && (e = readdir(dp))) {
		char path[PATH_MAX * 2], id[POOL_ID_LEN + 8], err[1024];
		struct api_http_reply r = {0};
		size_t len = strlen(e->d_name);
		json_object *o;

		if (len < 6 || strcmp(e->d_name + len - 5, ".json") || len - 5 >= POOL_ID_LEN)
			continue;
		memcpy(id, e->d_name, len - 5);
		id[len - 5] = '\0';
		pool_fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		o = json_object_from_file(path);
		if (!o) {
			log_err("pool: %s does not parse; pool %s not restored", path, id);
			continue;
		}
		route_put_pool(d, id, o, &r);
		json_object_put(o);
		if (r.status >= 300) {
			pool_fmt(err, sizeof(err), "%.*s", (int)r.len, r.body ? r.body : "");
			log_err("pool: pool %s not restored: %s", id, err);
		}
		free(r.body);
	}
	if (dp)
		closedir(dp);

	pool_fmt(dir, sizeof(dir), "%s/run", d->state_dir);
	dp = opendir(dir);
	while (dp && (e = readdir(dp))) {
		char path[PATH_MAX * 2];

		if (e->d_name[0] == '.')
			continue;
		pool_fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		adopt_or_clean(d, path);
	}
	if (dp)
		closedir(dp);
	d->loading = false;
	return 0;
}

/* --run-dir: <state>/run becomes a symlink to `run_dir`, so everything that reads the
 * state directory (re-adoption, --cleanup) finds the processes there without the flag.
 * Every clone and prepared process creates and removes a run directory, its sockets
 * and its record: on ext4, allocating inodes among that many recently deleted ones
 * (ext4's recently_deleted scan) took as much CPU as all the restores of a 512-clone
 * burst; a tmpfs has no such cost. An existing symlink is repointed; a real directory
 * is taken over only when empty (it would hold live processes' sockets). */
static int link_run_dir(const char *state, const char *run_dir)
{
	char link[PATH_MAX + 8], cur[PATH_MAX];
	struct stat st;
	ssize_t n;
	int ret;

	if (run_dir[0] != '/') {
		log_err("pool: --run-dir %s: give an absolute path", run_dir);
		return -EINVAL;
	}
	if ((ret = pool_mkdirs(run_dir, 0700)))
		return ret;
	pool_fmt(link, sizeof(link), "%s/run", state);
	if (lstat(link, &st) == 0) {
		if (S_ISLNK(st.st_mode)) {
			n = readlink(link, cur, sizeof(cur) - 1);
			if (n >= 0 && (cur[n] = '\0', !strcmp(cur, run_dir)))
				return 0;
			if (unlink(link) < 0)
				goto fail;
		} else if (!S_ISDIR(st.st_mode) || rmdir(link) < 0) {
			log_err("pool: --run-dir: %s exists and is not an empty directory (live "
				"processes? run thaw-pool --cleanup first)",
				link);
			return -EEXIST;
		}
	} else if (errno != ENOENT) {
		goto fail;
	}
	if (symlink(run_dir, link) == 0)
		return 0;
fail:
	ret = -errno;
	log_err("pool: --run-dir: %s -> %s: %s", link, run_dir, strerror(errno));
	return ret;
}

int pool_cleanup(const char *state_dir, const char *bindir)
{
	char dir[PATH_MAX + 16];
	struct dirent *e;
	DIR *dp;
	int ret = 0;

	(void)bindir;
	pool_fmt(dir, sizeof(dir), "%s/run", state_dir);
	dp = opendir(dir);
	if (!dp)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(dp))) {
		char path[PATH_MAX * 2];
		struct proc p;

		if (e->d_name[0] == '.')
			continue;
		pool_fmt(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (pool_proc_load(path, &p) == 0) {
			if (pool_proc_kill_wait(&p, 5000) < 0 || pool_proc_cleanup(&p) < 0) {
				ret = -EBUSY;
				continue;
			}
			log_info("pool: cleaned %s (pid %d)", p.id, (int)p.pid);
		}
		pool_rmdir_files(path);
	}
	closedir(dp);
	return ret;
}

/* ---- the daemon ------------------------------------------------------------------------------ */

int poold_create(const struct poold_opts *o, struct poold **out)
{
	struct poold *d = calloc(1, sizeof(*d));
	char dir[PATH_MAX + 16];
	sigset_t set;
	int ret;

	if (!d)
		return -ENOMEM;
	d->ep = d->sig_fd = d->tick_fd = -1;
	pool_fmt(d->state_dir, sizeof(d->state_dir), "%s", o->state_dir);
	pool_fmt(d->thaw, sizeof(d->thaw), "%s", o->thaw);
	pool_fmt(d->bindir, sizeof(d->bindir), "%s", o->bindir);
	d->seq = 1;
	if ((ret = pool_mkdirs(d->state_dir, 0700)))
		goto err;
	pool_fmt(dir, sizeof(dir), "%s/pools", d->state_dir);
	if ((ret = pool_mkdirs(dir, 0700)))
		goto err;
	if (o->run_dir && (ret = link_run_dir(d->state_dir, o->run_dir)))
		goto err;
	pool_fmt(dir, sizeof(dir), "%s/run", d->state_dir);
	if ((ret = pool_mkdirs(dir, 0700)))
		goto err;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	d->ep = epoll_create1(EPOLL_CLOEXEC);
	d->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->sig_fd < 0 || d->ep < 0 || d->tick_fd < 0) {
		ret = -errno;
		log_err("pool: signalfd/epoll/timerfd: %s", strerror(errno));
		goto err;
	}
	if ((ret = ep_add(d, d->sig_fd, &d->sig_fd)) || (ret = ep_add(d, d->tick_fd, &d->tick_fd)))
		goto err;
	load_state(d);
	ret = api_server_create_router(o->api_sock, route, d, &d->srv);
	if (ret) {
		log_err("pool: serving %s: %s", o->api_sock, strerror(-ret));
		goto err;
	}
	if ((ret = ep_add(d, api_server_fd(d->srv), d->srv)))
		goto err;
	*out = d;
	return 0;
err:
	poold_destroy(d);
	return ret;
}

static void on_signal(struct poold *d)
{
	struct signalfd_siginfo si;

	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			reap_children(d);
		else
			d->stop = true;
	}
	/* Coalesced SIGCHLDs: reap whatever is there. */
	reap_children(d);
}

int poold_run(struct poold *d)
{
	struct itimerspec its = {.it_value.tv_nsec = 1000000};

	timerfd_settime(d->tick_fd, 0, &its, NULL);
	while (!d->stop) {
		struct epoll_event ev[32];
		int n = epoll_wait(d->ep, ev, 32, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("pool: epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			void *tag = ev[i].data.ptr;

			if (tag == &d->sig_fd) {
				on_signal(d);
			} else if (tag == &d->tick_fd) {
				tick(d);
			} else if (tag == d->srv) {
				api_server_dispatch(d->srv);
			} else {
				struct proc *p = tag;

				/* The tag may have been freed earlier in this batch: look it up. */
				bool live = false;

				for (unsigned int k = 0; k < POOL_MAX_POOLS && !live; k++)
					for (struct proc *q = d->pools[k] ? d->pools[k]->procs
									  : NULL;
					     q; q = q->next)
						if (q == p) {
							live = true;
							break;
						}
				if (!live)
					continue;
				if (p->state == PROC_STARTING && p->ready_fd >= 0) {
					/* the fd leaves the epoll set when probe_ready closes it */
					probe_ready(d, p->pool, p);
				} else if (p->adopted && p->pidfd >= 0) {
					/* not our child: its status is not ours to read */
					proc_ended(d, p->pool, p, -1);
				}
			}
		}
	}
	log_info("pool: stopping: prepared processes end, clones keep running");
	return 0;
}

void poold_destroy(struct poold *d)
{
	if (!d)
		return;
	for (unsigned int i = 0; i < POOL_MAX_POOLS; i++) {
		struct pool *pl = d->pools[i];
		struct proc *p, *next;

		if (!pl)
			continue;
		/* The whole list goes, so nothing is unlinked: unlinking a process after
		 * an earlier one was freed in place walked freed memory (a crash at
		 * SIGTERM once a clone had run). Running clones stay, with their records. */
		for (p = pl->procs; p; p = next) {
			next = p->next;
			if (p->state == PROC_STARTING || p->state == PROC_READY) {
				pool_proc_kill_wait(p, 5000);
				pool_proc_cleanup(p);
			}
			proc_free(d, p);
		}
		free(pl);
	}
	api_server_destroy(d->srv);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->tick_fd >= 0)
		close(d->tick_fd);
	if (d->ep >= 0)
		close(d->ep);
	free(d);
}
