/* Private to pool/: a pool, its processes, the daemon. */
#ifndef THAW_POOL_INT_H
#define THAW_POOL_INT_H

#include <string.h>
#include "pool/pool.h"

#include <sys/stat.h>

/* Where a jailed thaw sees the pool's files (thaw-jailer --link). */
#define POOL_JAIL_SNAPSHOT "/snapshot"
#define POOL_JAIL_MEMFILE  "/memory"

enum proc_state {
	PROC_STARTING, /* started, its API not answering yet */
	PROC_READY,    /* prepared, waiting for a load */
	PROC_CLONE,    /* loaded: a running (or paused) clone */
	PROC_EXITED,   /* a clone that ended; kept for GET until deleted or trimmed */
};

struct pool;

struct proc {
	struct proc *next;
	struct pool *pool;
	char id[POOL_PROC_ID_LEN];
	char pool_id[POOL_ID_LEN];
	enum proc_state state;
	pid_t pid;
	unsigned long long starttime; /* /proc/PID/stat: pid + this names the process */
	int pidfd;		      /* adopted clones: not our children, watched by pidfd */
	int ready_fd;		      /* STARTING: the readiness probe's connection */
	bool adopted;
	bool jailed;
	bool deleting; /* DELETE asked for it: forget it once reaped */
	bool paused;
	uint64_t started_ns, ready_ns, exited_ns;
	uint64_t latency_us;	 /* request -> running, as this clone's requester saw it */
	bool from_stock;	 /* false: a fallback start (a miss) */
	int exit_status;	 /* wait status; -1 unknown (adopted) */
	char statedir[PATH_MAX]; /* <state>/run/<id>: record, logs (and sockets unjailed) */
	char rundir[PATH_MAX];	 /* host path of the directory thaw sees as its run dir */
	char jailer[PATH_MAX];
	char chroot_base[PATH_MAX];
	char exec_file[PATH_MAX]; /* names the jail's folder: <base>/<its name>/<id> */
	char api_sock[PATH_MAX];
	char console_sock[PATH_MAX];
	char vsock[PATH_MAX]; /* host path, "" without vsock */
};

struct pool {
	struct pool_cfg cfg;
	struct proc *procs;
	uint32_t n_starting, n_ready, n_running, n_exited;
	uint64_t hits, misses, prepared_died, start_failures, clones_total, clones_failed;
	uint64_t refilled;
	double tokens;
	uint64_t tokens_ns;
	struct pool_hist hist;
};

/* proc.c */
/* snprintf that says whether it fit: 0, or -ENAMETOOLONG (buf then holds a prefix). */
int pool_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The jail folder thaw-jailer makes for `exec_file`: its last path component. */
static inline const char *pool_exec_name(const char *exec_file)
{
	const char *s = strrchr(exec_file, '/');

	return s ? s + 1 : exec_file;
}
int pool_pidfd_open(pid_t pid);
unsigned long long pool_proc_starttime(pid_t pid);
int pool_mkdirs(const char *path, mode_t mode);
void pool_rmdir_files(const char *dir);
int pool_write_json(const char *path, struct json_object *o, bool durable);
const char *pool_proc_state_name(enum proc_state s);
int pool_proc_save(const struct proc *p);
int pool_proc_load(const char *statedir, struct proc *p);
/* Starts thaw (through thaw-jailer when cfg->jail.enabled); p's ids and paths are set. */
int pool_proc_start(struct proc *p, const struct pool_cfg *cfg, const char *thaw);
/* Readiness: connect and send GET / (-EAGAIN: not yet); then, when ready_fd is readable,
 * read the answer (0: prepared; -EAGAIN: probe again). */
int pool_proc_probe(struct proc *p);
int pool_proc_probe_read(struct proc *p);
/* SIGKILL if the pid still names the process, and wait up to timeout_ms for its end. */
int pool_proc_kill_wait(struct proc *p, int timeout_ms);
/* The jail (thaw-jailer --cleanup), sockets and the state directory of p. */
int pool_proc_cleanup(struct proc *p);

#endif
