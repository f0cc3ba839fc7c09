/* thaw-jailer: builds a jail for one thaw process and execs it inside.
 *
 * The jail is `<base>/thaw/<id>/root`, entered with pivot_root in a private mount
 * namespace, with only the device nodes thaw needs, cgroup and rlimit bounds, an
 * optional network and PID namespace, no capabilities and no_new_privs. Every step
 * that fails names itself and the failing call, and undoes what earlier steps did.
 * See docs/jailer.md for the user's view. */
#ifndef THAW_JAILER_H
#define THAW_JAILER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#define JAIL_ID_MAX	    64
#define JAIL_MAX_CGROUPS    32
#define JAIL_MAX_RLIMITS    16
#define JAIL_MAX_LINKS	    32
#define JAIL_MAX_EXEC_ARGS  256
#define JAIL_CG_VALUE_MAX   256
#define JAIL_DEFAULT_BASE   "/srv/jailer"
#define JAIL_DEFAULT_PARENT "thaw"
/* The folder under the base is named after the exec file, as Firecracker's jailer does
 * (<base>/<exec file name>/<id>/root, where firecracker-go-sdk looks); --cleanup without
 * --exec-file takes this one. */
#define JAIL_DEFAULT_EXEC_NAME "thaw"

/* Device nodes the jailer can create inside the jail (bit mask). */
enum jail_device {
	JAIL_DEV_KVM = 1u << 0,	    /* /dev/kvm, misc 10:232 */
	JAIL_DEV_TUN = 1u << 1,	    /* /dev/net/tun, misc 10:200 */
	JAIL_DEV_UFFD = 1u << 2,    /* /dev/userfaultfd, misc 10:<dynamic minor> */
	JAIL_DEV_URANDOM = 1u << 3, /* /dev/urandom, mem 1:9 */
	JAIL_DEV_ALL = 0xf,
};

struct jail_cgroup_setting {
	char key[64]; /* "<controller>.<file>", e.g. "memory.limit_in_bytes" */
	char controller[32];
	char value[JAIL_CG_VALUE_MAX];
};

struct jail_rlimit {
	const char *name; /* as given: "no-file", "fsize", ... */
	int resource;
	rlim_t value; /* soft and hard limit */
};

struct jail_link {
	char src[PATH_MAX]; /* absolute host path */
	char dst[PATH_MAX]; /* absolute path inside the jail */
	bool ro;
};

struct jail_config {
	const char *id;
	const char *exec_file;
	const char *base;	   /* chroot base dir */
	const char *parent_cgroup; /* relative to each hierarchy's root */
	const char *netns;
	uid_t uid;
	gid_t gid;
	bool have_uid, have_gid;
	int cgroup_version; /* 0: automatic (v2 when usable), 1 or 2 */
	struct jail_cgroup_setting cgroups[JAIL_MAX_CGROUPS];
	unsigned n_cgroups;
	struct jail_rlimit rlimits[JAIL_MAX_RLIMITS];
	unsigned n_rlimits;
	struct jail_link links[JAIL_MAX_LINKS];
	unsigned n_links;
	unsigned devices; /* enum jail_device mask the user allows */
	bool new_pid_ns;
	bool daemonize;
	bool cleanup;
	int verbose;
	/* Arguments after "--", passed to the exec file; points into main's argv. */
	char **exec_args;
	int n_exec_args;
};

/* Parses thaw-jailer's command line into cfg (which keeps pointers into argv).
 * Checks syntax only (no file system access): id, absolute paths without "..",
 * key=value forms, known rlimit names. Returns 0, or -EINVAL after logging what is
 * wrong; 1 when --help was asked (usage printed). */
int jail_parse_args(int argc, char **argv, struct jail_config *cfg);

/* The jail's folder under the base: the exec file's name, or JAIL_DEFAULT_EXEC_NAME
 * when --cleanup was given no --exec-file. */
const char *jail_exec_name(const struct jail_config *cfg);

/* 0 when id is 1..64 letters, digits or hyphens; -EINVAL otherwise. */
int jail_id_check(const char *id);

/* 0 when path is absolute, shorter than PATH_MAX and has no ".." component;
 * -EINVAL (-ENAMETOOLONG for length) otherwise. Does not touch the file system. */
int jail_path_check(const char *path);

/* Maps an rlimit name ("fsize", "no-file", "as", ...) to RLIMIT_*; -1 if unknown. */
int jail_rlimit_resource(const char *name);

/* Parses "SRC[:DST[:ro|rw]]" into link; DST defaults to "/<basename of SRC>", the mode
 * to read-only. Returns 0 or -EINVAL (logged). */
int jail_link_parse(const char *spec, struct jail_link *link);

/* Runs every step of the jail and execs the exec file; returns only on failure, with
 * -errno, after undoing what it created. With --new-pid-ns or --daemonize the
 * jailer's own process ends inside this call (exit status forwarded). */
int jail_run(const struct jail_config *cfg);

/* Makes the jail's cgroups as jail_run would (<mount>/<parent>/<id> in each hierarchy
 * of cfg's settings, the settings written) and moves the n processes `pids`, every
 * thread of each, into them: for a process that was started elsewhere (thaw-oci gives
 * a pool's prepared VMM the container's cgroup). 0 or -errno (logged); on failure the
 * directories still empty are removed. jail_cleanup removes them. */
int jail_cg_adopt(const struct jail_config *cfg, const pid_t *pids, unsigned n);

/* Removes `<base>/thaw/<id>` and the jail's cgroup directories and checks nothing is
 * mounted below the jail. Safe to run twice (the second finds nothing). Returns 0,
 * -EBUSY if the jail's cgroup still holds processes, or another -errno. */
int jail_cleanup(const struct jail_config *cfg);

#endif
