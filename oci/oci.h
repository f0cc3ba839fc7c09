/* thaw-oci: the OCI runtime command line (as runc and crun implement it) over thaw.
 *
 * A container is one VM clone: its "init" process is the thaw VMM (started through
 * thaw-jailer when the bundle asks for a cgroup or a network namespace), `create` loads
 * the bundle's snapshot paused, `start` resumes it; or a thaw-pool's prepared VMM is
 * loaded, with a keeper process as the container's init. docs/oci.md is the user's view. */
#ifndef THAW_OCI_H
#define THAW_OCI_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#define OCI_ID_MAX	   128
#define OCI_SPEC_VERSION   "1.0.2"
#define OCI_SNAP_ANNOT	   "org.thaw.snapshot"
#define OCI_MAX_CGROUP_SET 8
#define OCI_JAIL_ID_MAX	   64
#define OCI_MAX_DEVS	   16	 /* drives, and interfaces: the VMM's limit of each */
#define OCI_DEV_ID_MAX	   31	 /* a device id of the VMM (VMM_DEV_ID_MAX without NUL) */
#define OCI_IFNAME_MAX	   15	 /* a network interface's name (IFNAMSIZ without NUL) */
#define OCI_PROCESS_MAX	   51200 /* process.args/env/cwd as JSON: the clone's MMDS limit */
#define OCI_DRIVE_ANNOT	   "org.thaw.drive."
#define OCI_NET_ANNOT	   "org.thaw.net."
#define OCI_POOL_ANNOT	   "org.thaw.pool" /* a thaw-pool's API socket: prepared VMMs */
#define OCI_POOL_CLONE_MAX 63

/* One cgroup file the jail's cgroup gets (thaw-jailer --cgroup KEY=VALUE, v1 names). */
struct oci_cgroup_set {
	char key[48];
	char value[32];
};

/* Annotation org.thaw.drive.<id>: the base image of the snapshot's drive <id>, inside the
 * rootfs; each container writes to its own qcow2 overlay over it. */
struct oci_drive {
	char id[OCI_DEV_ID_MAX + 1];
	char base[PATH_MAX]; /* rootfs + the annotation's path; resolved by oci_bundle_check */
};

/* Annotation org.thaw.net.<id>: the pod network namespace's interface whose traffic
 * goes to the snapshot's interface <id> ("" for none: the tap alone). */
struct oci_net {
	char id[OCI_DEV_ID_MAX + 1];
	char link[OCI_IFNAME_MAX + 1];
};

/* What create needs from a bundle's config.json, checked and typed (docs/oci.md). */
struct oci_bundle {
	char dir[PATH_MAX];	      /* the bundle directory, absolute */
	char rootfs[PATH_MAX];	      /* root.path resolved against dir */
	char snapshot[PATH_MAX];      /* rootfs + the org.thaw.snapshot annotation */
	char netns[PATH_MAX];	      /* linux.namespaces network path, "" for none */
	char cgroup_parent[PATH_MAX]; /* relative to each hierarchy root; "" for none */
	char cgroup_leaf[OCI_ID_MAX + 1];
	char pool[PATH_MAX]; /* annotation org.thaw.pool: a thaw-pool's API socket, "" none */
	bool terminal;
	bool clock_realtime; /* annotation org.thaw.clock-realtime=true */
	uid_t uid;
	gid_t gid;
	struct oci_cgroup_set cg[OCI_MAX_CGROUP_SET];
	unsigned n_cg;
	struct oci_drive drives[OCI_MAX_DEVS];
	unsigned n_drives;
	struct oci_net nets[OCI_MAX_DEVS];
	unsigned n_nets;
	/* {"args": [...], "env": {...}, "cwd": "..."} of process, serialized: what the
	 * clone's MMDS store gets (docs/oci.md) */
	char process[OCI_PROCESS_MAX];
};

/* Parses config.json's text `json` of the bundle in `dir` (absolute) into b. Refuses,
 * with a message in err, what the VM cannot honour (docs/oci.md lists it). Touches no
 * file: the snapshot's existence is checked by oci_bundle_check. Returns 0 or -EINVAL. */
int oci_bundle_parse(const char *json, const char *dir, struct oci_bundle *b, char *err,
		     size_t errlen);

/* Checks the files the bundle names: the snapshot is a regular, readable file strictly
 * inside the rootfs (symlinks resolved), the netns path exists. Returns 0 or -errno. */
int oci_bundle_check(struct oci_bundle *b, char *err, size_t errlen);

/* The devices of a snapshot that need a host side at the load, as its device sections
 * name them (kind and id, docs/snapshot-format.md). */
enum oci_dev_kind { OCI_DEV_DRIVE, OCI_DEV_NET, OCI_DEV_VSOCK };
struct oci_snap_devices {
	struct {
		enum oci_dev_kind kind;
		char id[OCI_DEV_ID_MAX + 1];
	} dev[OCI_MAX_DEVS * 2 + 1];
	unsigned n;
};

/* Reads the device list of the snapshot at `path` (header and state only, checked as
 * the VMM checks them; no memory is read). Returns 0, or -errno with the cause in err. */
int oci_snapshot_devices(const char *path, struct oci_snap_devices *d, char *err, size_t errlen);

/* Matches a bundle to its snapshot's devices before anything is made: every drive has
 * its org.thaw.drive.<id> annotation and every such annotation a drive, every
 * org.thaw.net.<id> an interface, and interfaces come with a network namespace path
 * (their taps are made there). Returns 0 or -EINVAL with the mismatch named in err. */
int oci_bundle_match(const struct oci_bundle *b, const struct oci_snap_devices *d, char *err,
		     size_t errlen);

/* True when the container needs thaw-jailer: a cgroup limit, a cgroups path or a netns. */
bool oci_bundle_jailed(const struct oci_bundle *b);

/* 0 when id is a container id we accept: 1..OCI_ID_MAX of [A-Za-z0-9_.-], not starting
 * with '.' (runc's rule); -EINVAL otherwise. */
int oci_id_check(const char *id);

/* The jail id of container `id` (thaw-jailer: 1..64 of [A-Za-z0-9-]): the cgroup
 * path's leaf when it qualifies, else "oci-" and the id's letters, digits and hyphens,
 * cut to fit, with the id's hash when anything was dropped. */
void oci_jail_id(const char *id, const char *leaf, char out[OCI_JAIL_ID_MAX + 1]);

/* The tap of container `id`'s interface number `index` (< OCI_MAX_DEVS): "thaw-" and a
 * hash of the id and the index, unique among the containers of one pod's namespace. */
void oci_tap_name(const char *id, unsigned index, char out[OCI_IFNAME_MAX + 1]);

#define OCI_LINK_ADDRS 8

/* The pod's interface as CNI left it, read in its namespace when a tap is tied to it:
 * what the guest is told through MMDS (docs/oci.md, "The pod's address"). */
struct oci_link_info {
	char mac[18];			/* "aa:bb:cc:dd:ee:ff", "" unknown */
	char addrs[OCI_LINK_ADDRS][64]; /* "10.88.77.2/24", "fd00::2/64" */
	unsigned n_addrs;
	char gateway[16]; /* the IPv4 default route's gateway through it, "" none */
};

/* The gateway of the IPv4 default route through `link` in the text of /proc/net/route
 * (hex fields, the kernel's byte order), dotted into out; "" and -ENOENT when there is
 * none. */
int oci_route_gateway(const char *route_text, const char *link, char *out, size_t len);

/* The MMDS object of one of the snapshot's interfaces tied to a pod interface:
 * {"link": ..., "mac": ..., "addresses": [...], "gateway": ...} (empty members left
 * out). The caller puts it. */
struct json_object *oci_link_guest_json(const char *link, const struct oci_link_info *li);

/* In the network namespace at `netns`: makes the persistent tap `tap` (owned by
 * uid/gid, so the jailed VMM without capabilities may attach to it), sets it up, and
 * when `link` is not "" redirects every frame arriving on `link` to the tap and every
 * frame from the tap out of `link` (tc ingress qdiscs, u32 match-all, mirred); with
 * `optional`, only when the namespace has `link`. *linked says whether it was. Runs in a
 * child process: thaw-oci's own namespace is left alone. When linked, *info (may be
 * NULL) gets `link`'s MAC, addresses and default gateway. 0 or -errno with err set. */
int oci_tap_add(const char *netns, const char *tap, const char *link, bool optional, uid_t uid,
		gid_t gid, bool *linked, struct oci_link_info *info, char *err, size_t errlen);
/* Undoes oci_tap_add: the tap is deleted, `link`'s ingress qdisc removed. A namespace or
 * tap already gone is success. */
int oci_tap_del(const char *netns, const char *tap, const char *link, char *err, size_t errlen);

enum oci_status { OCI_CREATING, OCI_CREATED, OCI_RUNNING, OCI_PAUSED, OCI_STOPPED };
const char *oci_status_name(enum oci_status s);

/* What <root>/<id>/state.json keeps between commands. */
struct oci_state {
	char id[OCI_ID_MAX + 1];
	char bundle[PATH_MAX];
	char rootfs[PATH_MAX];
	char created[64]; /* RFC 3339, UTC */
	/* The container's init as the engine sees it (the pid file's): the VMM, or with a
	 * pool's prepared VMM the keeper process create forked (docs/oci.md). */
	pid_t pid;
	unsigned long long starttime; /* /proc/PID/stat field 22: pid + this name it */
	/* From a pool: the VMM (the pool's child), the pool's socket and clone id. */
	pid_t vmm_pid;
	unsigned long long vmm_starttime;
	char pool[PATH_MAX];
	char pool_clone[OCI_POOL_CLONE_MAX + 1];
	char pool_note[256]; /* why no prepared VMM was used, when a pool was named */
	bool started, paused, jailed;
	char jail_id[OCI_JAIL_ID_MAX + 1];
	char jail_base[PATH_MAX];
	char cgroup_parent[PATH_MAX];
	char api_dir[PATH_MAX]; /* the directory holding the VMM's api.sock */
	char annotations[8192]; /* the bundle's annotations, JSON */
	char netns[PATH_MAX];	/* where the taps are, "" for none */
	struct {
		char tap[OCI_IFNAME_MAX + 1];
		char link[OCI_IFNAME_MAX + 1]; /* redirected to and from the tap, or "" */
	} taps[OCI_MAX_DEVS];
	unsigned n_taps;
};

int oci_state_save(const char *path, const struct oci_state *s);
int oci_state_load(const char *path, struct oci_state *s, char *err, size_t errlen);
/* The status as the runtime spec defines it: stopped once the VMM process is gone (or
 * a zombie, or its pid names another process). */
enum oci_status oci_state_status(const struct oci_state *s);
/* /proc/PID/stat's start time, 0 when the process is gone; *zombie set when it is one. */
unsigned long long oci_proc_starttime(pid_t pid, bool *zombie);

/* ---- prepared VMMs from a thaw-pool (oci/pool.c, docs/oci.md) ---------------------------- */

struct json_object;

#define OCI_KEEPER_EXIT_MS 10000 /* how long the pool may take to report an ended VMM */

/* A clone a thaw-pool made for a container: loaded from a prepared VMM, paused. */
struct oci_pool_clone {
	char pool_id[33];
	char id[OCI_POOL_CLONE_MAX + 1];
	pid_t pid; /* the VMM, the pool's child */
	bool from_stock;
	char api_sock[PATH_MAX], console_sock[PATH_MAX], console_log[PATH_MAX];
	char vsock[PATH_MAX]; /* "" when the pool gives none */
};

/* Connects to a unix socket whose path may pass sun_path (through its directory's
 * descriptor). The fd or -errno. */
int oci_unix_connect(const char *path);

/* One request to the thaw-pool at `sock`. With `out`, a 2xx answer's JSON body (NULL
 * when empty; the caller puts it). 0; -ENOENT for 404; else -errno, the reason in err
 * (the pool's fault_message for an error answer). */
int oci_pool_call(const char *sock, const char *method, const char *path, const char *body,
		  struct json_object **out, char *err, size_t errlen);

/* 1 when the snapshot files a and b hold the same snapshot (one inode, or the same size
 * and 4 KiB header, which carries the checksum of the section table and so of every
 * section's), 0 when not, -errno when one does not open. */
int oci_snapshot_same(const char *a, const char *b);

/* Takes, from the pool at `sock`, a prepared VMM of the pool whose snapshot is
 * `snapshot` and loads it paused (POST /pools/{id}/clones). 0 with pc filled; 1 when
 * there is none to take (no pool answers there, none has this snapshot, or its stock is
 * empty: the reason in err); -errno when the pool failed the request. */
int oci_pool_take(const char *sock, const char *snapshot, bool clock_realtime,
		  struct oci_pool_clone *pc, char *err, size_t errlen);

/* Waits up to ms for the pool to report clone `clone` exited (the pool reaps its VMMs):
 * *status its exit status (-1 when the pool has none), *sig the signal that ended it or
 * 0. 0, -ENOENT (no such clone), -ETIMEDOUT, or -errno with err set. */
int oci_pool_exit(const char *sock, const char *clone, int ms, int *status, int *sig, char *err,
		  size_t errlen);

/* Ends the pool's record of `clone`: a running one is killed (DELETE), waited for up to
 * ms until reaped, and its record deleted. An unknown clone is success. */
int oci_pool_forget(const char *sock, const char *clone, int ms, char *err, size_t errlen);

/* What the keeper needs: a pidfd of the VMM, the guest's console (the log the VMM
 * writes, open at its start, and the input socket), and where to ask the exit status. */
struct oci_keeper {
	int vmm_pidfd;
	int log_fd;
	const char *console_log, *console_sock;
	const char *pool, *clone;
};

/* Blocks the signals the keeper forwards to the VMM (SIGTERM, SIGINT, SIGHUP, SIGQUIT,
 * SIGUSR1, SIGUSR2; SIGWINCH is swallowed) into set. 0 or -errno. */
int oci_keeper_signals(sigset_t *set);

/* The keeper's life: relays the console log to stdout and stdin to the guest's console
 * input, forwards the signals above to the VMM, and when the VMM ends returns the VM's
 * exit status as the pool reports it; a VMM killed by a signal makes the keeper die of
 * the same signal (so SIGKILL reads 137 to the engine, as with an unpooled VMM). 255
 * when the status cannot be known. */
int oci_keeper_run(const struct oci_keeper *k);

#endif
