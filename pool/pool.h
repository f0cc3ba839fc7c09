/* thaw-pool: keeps, per pool, a target number of prepared `thaw` processes (VM, memory
 * slot and parked vCPUs built for the pool's snapshot shape, waiting on their API socket)
 * and turns a clone request into a running clone by one `PUT /snapshot/load` to one of
 * them. Process starts, refills, reaping and jail clean-up happen in the event loop, off
 * the request path. docs/pool.md is the user's reference.
 *
 * Layers: libpool sits above libapi (the HTTP transport, the client), libsnap (the pool
 * opens a snapshot at PUT to learn its shape) and libcommon. It drives thaw and
 * thaw-jailer as programs and links neither.
 *
 * Everything runs on one thread; no call here blocks for long except the fallback of an
 * empty pool (a process start, which is the miss being counted).
 */
#ifndef THAW_POOL_H
#define THAW_POOL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api/api.h"

struct json_object;

#define POOL_ID_LEN	 33 /* 32 of [A-Za-z0-9-], first a letter or digit */
#define POOL_PROC_ID_LEN 64 /* "<pool id>-<sequence>": a thaw-jailer --id */
#define POOL_MAX_POOLS	 16
#define POOL_MAX_TARGET	 1024 /* prepared processes per pool */
#define POOL_MAX_CLONES	 4096 /* running clones per pool */
#define POOL_MAX_BATCH                                                                             \
	64		       /* clones per POST: ~600 bytes each at most, the reply below        \
				* the 64 KiB our client keeps (API_MAX_BODY_BYTES) */
#define POOL_MAX_PREPARING 8   /* process starts in flight per pool */
#define POOL_MAX_EXITED	   256 /* exited clones remembered per pool (oldest dropped) */
/* How long a process start may take before it counts as failed (a prepared VM is built
 * in ~10 ms; a loaded machine is slower). */
#define POOL_START_TIMEOUT_MS 20000
/* Latency histogram buckets (upper bounds, µs); one more for everything above. */
#define POOL_HIST_BUCKETS 16

/* ---- configuration: parsed once, at the API's edge (config.c) --------------------------- */

struct pool_jail {
	bool enabled;
	char jailer[PATH_MAX];	    /* thaw-jailer; "" -> beside thaw-pool */
	char exec_file[PATH_MAX];   /* a static thaw; "" -> thaw-static beside thaw-pool */
	char chroot_base[PATH_MAX]; /* "" -> <state dir>/jail */
	uint32_t uid, gid;
	char netns[PATH_MAX]; /* "" for none */
	/* cgroup KEY=VALUE for every process, e.g. "pids.max=64" */
	unsigned int n_cgroups;
	char cgroups[8][128];
};

/* `PUT /pools/{id}`. */
struct pool_cfg {
	char id[POOL_ID_LEN];
	char snapshot[PATH_MAX];
	enum api_mem_backend backend; /* NONE: memory inside the snapshot */
	char backend_path[PATH_MAX];
	uint32_t target;      /* prepared processes kept */
	uint32_t max_clones;  /* running clones; 0: POOL_MAX_CLONES */
	uint64_t max_mem_mib; /* guest memory of running clones; 0: no limit */
	double refill_per_s;  /* process starts per second, at most */
	bool vsock;	      /* every clone gets a vsock socket of its own */
	struct pool_jail jail;
	/* Learnt from the snapshot at PUT (not client input). */
	uint32_t mem_mib;
	uint32_t vcpus;
};

/* Per clone, from `POST /pools/{id}/clones`. */
struct pool_clone_opts {
	bool paused;
	bool clock_realtime;
	char vsock_dir[PATH_MAX]; /* "" -> the clone's run directory */
	uint32_t n_drives;
	struct api_drive_override drives[API_MAX_DRIVE_OVERRIDES];
};

struct pool_clone_req {
	uint32_t count;
	struct pool_clone_opts opts;
};

/* Parse and check; on failure -EINVAL and a message naming the field in err. `id` is
 * the path's. Fills cfg without touching the snapshot. */
int pool_cfg_parse(const char *id, struct json_object *o, struct pool_cfg *cfg, char *err,
		   size_t errlen);
int pool_clone_req_parse(struct json_object *o, struct pool_clone_req *req, char *err,
			 size_t errlen);
/* A pool or clone id: 1 to POOL_ID_LEN-1 of [A-Za-z0-9-], not starting with '-'. */
bool pool_id_valid(const char *id);
/* The pool's config as JSON (what GET shows and the state dir keeps). */
struct json_object *pool_cfg_to_json(const struct pool_cfg *cfg);
/* Opens the snapshot and reads its shape into cfg->mem_mib/vcpus; -errno and a message
 * saying why the snapshot cannot serve a pool. */
int pool_cfg_probe_snapshot(struct pool_cfg *cfg, char *err, size_t errlen);

/* The latency histogram (µs). */
struct pool_hist {
	uint64_t count, sum_us, max_us;
	uint64_t buckets[POOL_HIST_BUCKETS + 1];
};
void pool_hist_add(struct pool_hist *h, uint64_t us);
/* An estimate of the q-quantile (0..1) from the buckets: the upper bound of the bucket. */
uint64_t pool_hist_quantile(const struct pool_hist *h, double q);
struct json_object *pool_hist_to_json(const struct pool_hist *h);
extern const uint64_t pool_hist_bounds_us[POOL_HIST_BUCKETS];

/* ---- the supervisor (pool.c) --------------------------------------------------------------- */

struct poold;

struct poold_opts {
	const char *state_dir; /* created when missing */
	/* NULL, or where the processes' run directories go instead of <state_dir>/run,
	 * which becomes a symlink to it (created when missing; see pool_link_run_dir) */
	const char *run_dir;
	const char *api_sock;
	const char *thaw;   /* the thaw binary for unjailed pools */
	const char *bindir; /* where thaw-jailer and thaw-static are looked for */
};

/* Opens the state dir, re-reads its pools, re-adopts their running clones and kills and
 * cleans up their prepared processes, then serves the API. 0 or -errno (logged). */
int poold_create(const struct poold_opts *o, struct poold **out);
/* Runs the event loop until SIGTERM/SIGINT; prepared processes are then stopped and
 * cleaned, clones left running (a restarted pool re-adopts them). */
int poold_run(struct poold *d);
void poold_destroy(struct poold *d);

/* `thaw-pool --cleanup`: every process the state dir names is killed (if its start time
 * still matches), its jail cleaned, its sockets and files removed. 0, or -errno when
 * something was left (logged). */
int pool_cleanup(const char *state_dir, const char *bindir);

#endif
