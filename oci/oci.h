/* thaw-oci: the OCI runtime command line (as runc and crun implement it) over thaw.
 *
 * A container is one VM clone: its "init" process is the thaw VMM (started through
 * thaw-jailer when the bundle asks for a cgroup or a network namespace), `create` loads
 * the bundle's snapshot paused, `start` resumes it. docs/oci.md is the user's view. */
#ifndef THAW_OCI_H
#define THAW_OCI_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define OCI_ID_MAX	   128
#define OCI_SPEC_VERSION   "1.0.2"
#define OCI_SNAP_ANNOT	   "org.thaw.snapshot"
#define OCI_MAX_CGROUP_SET 8
#define OCI_JAIL_ID_MAX	   64

/* One cgroup file the jail's cgroup gets (thaw-jailer --cgroup KEY=VALUE, v1 names). */
struct oci_cgroup_set {
	char key[48];
	char value[32];
};

/* What create needs from a bundle's config.json, checked and typed (docs/oci.md). */
struct oci_bundle {
	char dir[PATH_MAX];	      /* the bundle directory, absolute */
	char rootfs[PATH_MAX];	      /* root.path resolved against dir */
	char snapshot[PATH_MAX];      /* rootfs + the org.thaw.snapshot annotation */
	char netns[PATH_MAX];	      /* linux.namespaces network path, "" for none */
	char cgroup_parent[PATH_MAX]; /* relative to each hierarchy root; "" for none */
	char cgroup_leaf[OCI_ID_MAX + 1];
	bool terminal;
	bool clock_realtime; /* annotation org.thaw.clock-realtime=true */
	uid_t uid;
	gid_t gid;
	struct oci_cgroup_set cg[OCI_MAX_CGROUP_SET];
	unsigned n_cg;
};

/* Parses config.json's text `json` of the bundle in `dir` (absolute) into b. Refuses,
 * with a message in err, what the VM cannot honour (docs/oci.md lists it). Touches no
 * file: the snapshot's existence is checked by oci_bundle_check. Returns 0 or -EINVAL. */
int oci_bundle_parse(const char *json, const char *dir, struct oci_bundle *b, char *err,
		     size_t errlen);

/* Checks the files the bundle names: the snapshot is a regular, readable file strictly
 * inside the rootfs (symlinks resolved), the netns path exists. Returns 0 or -errno. */
int oci_bundle_check(struct oci_bundle *b, char *err, size_t errlen);

/* True when the container needs thaw-jailer: a cgroup limit, a cgroups path or a netns. */
bool oci_bundle_jailed(const struct oci_bundle *b);

/* 0 when id is a container id we accept: 1..OCI_ID_MAX of [A-Za-z0-9_.-], not starting
 * with '.' (runc's rule); -EINVAL otherwise. */
int oci_id_check(const char *id);

/* The jail id of container `id` (thaw-jailer: 1..64 of [A-Za-z0-9-]): the cgroup
 * path's leaf when it qualifies, else "oci-" and the id's letters, digits and hyphens,
 * cut to fit, with the id's hash when anything was dropped. */
void oci_jail_id(const char *id, const char *leaf, char out[OCI_JAIL_ID_MAX + 1]);

enum oci_status { OCI_CREATING, OCI_CREATED, OCI_RUNNING, OCI_PAUSED, OCI_STOPPED };
const char *oci_status_name(enum oci_status s);

/* What <root>/<id>/state.json keeps between commands. */
struct oci_state {
	char id[OCI_ID_MAX + 1];
	char bundle[PATH_MAX];
	char rootfs[PATH_MAX];
	char created[64]; /* RFC 3339, UTC */
	pid_t pid;
	unsigned long long starttime; /* /proc/PID/stat field 22: pid + this name the VMM */
	bool started, paused, jailed;
	char jail_id[OCI_JAIL_ID_MAX + 1];
	char jail_base[PATH_MAX];
	char cgroup_parent[PATH_MAX];
	char api_dir[PATH_MAX]; /* the directory holding the VMM's api.sock */
	char annotations[8192]; /* the bundle's annotations, JSON */
};

int oci_state_save(const char *path, const struct oci_state *s);
int oci_state_load(const char *path, struct oci_state *s, char *err, size_t errlen);
/* The status as the runtime spec defines it: stopped once the VMM process is gone (or
 * a zombie, or its pid names another process). */
enum oci_status oci_state_status(const struct oci_state *s);
/* /proc/PID/stat's start time, 0 when the process is gone; *zombie set when it is one. */
unsigned long long oci_proc_starttime(pid_t pid, bool *zombie);

#endif
