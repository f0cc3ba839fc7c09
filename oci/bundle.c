/* A bundle's config.json, parsed once into struct oci_bundle: the snapshot, the jail's
 * cgroup and network namespace, and a refusal of what a VM clone cannot honour. */
#include "oci/oci.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static bool nonempty(json_object *o)
{
	if (!o || json_object_is_type(o, json_type_null))
		return false;
	if (json_object_is_type(o, json_type_array))
		return json_object_array_length(o) > 0;
	if (json_object_is_type(o, json_type_object))
		return json_object_object_length(o) > 0;
	return true;
}

/* An integer field, checked: *set false when absent or null. */
static int get_int(json_object *o, const char *key, int64_t *v, bool *set, char *err, size_t errlen,
		   const char *where)
{
	json_object *x = get(o, key);

	*set = false;
	if (!x || json_object_is_type(x, json_type_null))
		return 0;
	if (!json_object_is_type(x, json_type_int))
		return errf(err, errlen, -EINVAL, "%s.%s: not an integer", where, key);
	*v = json_object_get_int64(x);
	*set = true;
	return 0;
}

static int add_cg(struct oci_bundle *b, const char *key, int64_t v, char *err, size_t errlen)
{
	struct oci_cgroup_set *c;

	if (b->n_cg >= OCI_MAX_CGROUP_SET)
		return errf(err, errlen, -EINVAL, "too many cgroup settings");
	c = &b->cg[b->n_cg++];
	snprintf(c->key, sizeof(c->key), "%s", key);
	snprintf(c->value, sizeof(c->value), "%" PRId64, v);
	return 0;
}

static int add_cg_str(struct oci_bundle *b, const char *key, json_object *s, char *err,
		      size_t errlen)
{
	const char *v = json_object_get_string(s);
	struct oci_cgroup_set *c;

	if (!json_object_is_type(s, json_type_string) || !*v)
		return 0;
	if (strlen(v) >= sizeof(c->value) || strspn(v, "0123456789,-") != strlen(v))
		return errf(err, errlen, -EINVAL, "linux.resources.cpu: '%s' is not a CPU list", v);
	if (b->n_cg >= OCI_MAX_CGROUP_SET)
		return errf(err, errlen, -EINVAL, "too many cgroup settings");
	c = &b->cg[b->n_cg++];
	snprintf(c->key, sizeof(c->key), "%s", key);
	snprintf(c->value, sizeof(c->value), "%s", v);
	return 0;
}

/* linux.resources -> cgroup v1 files (the jailer's names; docs/oci.md has the table). */
static int parse_resources(json_object *r, struct oci_bundle *b, char *err, size_t errlen)
{
	json_object *mem = get(r, "memory"), *cpu = get(r, "cpu"), *pids = get(r, "pids");
	json_object *bio = get(r, "blockIO");
	static const char *const refused[] = {"hugepageLimits", "network", "rdma", "unified"};
	int64_t v;
	bool set;

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (nonempty(get(r, refused[i])))
			return errf(err, errlen, -EINVAL,
				    "linux.resources.%s: not supported by thaw-oci", refused[i]);
	if (bio) {
		json_object_object_foreach(bio, key, val)
		{
			if (nonempty(val) && !(json_object_is_type(val, json_type_int) &&
					       json_object_get_int(val) == 0))
				return errf(err, errlen, -EINVAL,
					    "linux.resources.blockIO.%s: not supported by thaw-oci",
					    key);
		}
	}
	if (mem) {
		json_object *d = get(mem, "disableOOMKiller");

		if (d && json_object_get_boolean(d))
			return errf(err, errlen, -EINVAL,
				    "linux.resources.memory.disableOOMKiller: not supported by "
				    "thaw-oci");
		if (get_int(mem, "limit", &v, &set, err, errlen, "linux.resources.memory"))
			return -EINVAL;
		if (set && v > 0 && add_cg(b, "memory.limit_in_bytes", v, err, errlen))
			return -EINVAL;
		if (get_int(mem, "reservation", &v, &set, err, errlen, "linux.resources.memory"))
			return -EINVAL;
		if (set && v > 0 && add_cg(b, "memory.soft_limit_in_bytes", v, err, errlen))
			return -EINVAL;
		if (get_int(mem, "swap", &v, &set, err, errlen, "linux.resources.memory"))
			return -EINVAL;
		if (set && v > 0 && add_cg(b, "memory.memsw.limit_in_bytes", v, err, errlen))
			return -EINVAL;
	}
	if (cpu) {
		if (get_int(cpu, "shares", &v, &set, err, errlen, "linux.resources.cpu"))
			return -EINVAL;
		if (set && v > 0 && add_cg(b, "cpu.shares", v, err, errlen))
			return -EINVAL;
		/* The period first: a quota is checked against the period in place. */
		if (get_int(cpu, "period", &v, &set, err, errlen, "linux.resources.cpu"))
			return -EINVAL;
		if (set && v > 0 && add_cg(b, "cpu.cfs_period_us", v, err, errlen))
			return -EINVAL;
		if (get_int(cpu, "quota", &v, &set, err, errlen, "linux.resources.cpu"))
			return -EINVAL;
		if (set && v > 0 && add_cg(b, "cpu.cfs_quota_us", v, err, errlen))
			return -EINVAL;
		if (add_cg_str(b, "cpuset.cpus", get(cpu, "cpus"), err, errlen) ||
		    add_cg_str(b, "cpuset.mems", get(cpu, "mems"), err, errlen))
			return -EINVAL;
		if (nonempty(get(cpu, "realtimeRuntime")) || nonempty(get(cpu, "realtimePeriod")))
			return errf(err, errlen, -EINVAL,
				    "linux.resources.cpu.realtime*: not supported by thaw-oci");
	}
	if (pids) {
		if (get_int(pids, "limit", &v, &set, err, errlen, "linux.resources.pids"))
			return -EINVAL;
		if (set && v > 0 && add_cg(b, "pids.max", v, err, errlen))
			return -EINVAL;
	}
	return 0;
}

/* linux.cgroupsPath: "/a/b/leaf" or "a/b/leaf" (cgroupfs form). The systemd form
 * "slice:prefix:name" comes with --systemd-cgroup, which main refuses. */
static int parse_cgroups_path(const char *p, struct oci_bundle *b, char *err, size_t errlen)
{
	const char *slash;

	if (strchr(p, ':'))
		return errf(err, errlen, -EINVAL,
			    "linux.cgroupsPath '%s': the systemd form (slice:prefix:name) is not "
			    "supported: configure the engine's cgroupfs driver",
			    p);
	while (*p == '/')
		p++;
	if (!*p)
		return 0;
	if (strstr(p, "..") || strlen(p) >= sizeof(b->cgroup_parent))
		return errf(err, errlen, -EINVAL, "linux.cgroupsPath '%s': refused", p);
	slash = strrchr(p, '/');
	if (slash) {
		snprintf(b->cgroup_parent, sizeof(b->cgroup_parent), "%.*s", (int)(slash - p), p);
		p = slash + 1;
	} else {
		snprintf(b->cgroup_parent, sizeof(b->cgroup_parent), "thaw-oci");
	}
	if (strlen(p) > OCI_ID_MAX)
		return errf(err, errlen, -EINVAL, "linux.cgroupsPath: leaf '%s' is too long", p);
	snprintf(b->cgroup_leaf, sizeof(b->cgroup_leaf), "%s", p);
	return 0;
}

static int parse_linux(json_object *lx, struct oci_bundle *b, char *err, size_t errlen)
{
	json_object *ns = get(lx, "namespaces"), *cgp = get(lx, "cgroupsPath");
	static const char *const refused[] = {"uidMappings", "gidMappings", "intelRdt",
					      "personality"};

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (nonempty(get(lx, refused[i])))
			return errf(err, errlen, -EINVAL, "linux.%s: not supported by thaw-oci",
				    refused[i]);
	for (size_t i = 0; ns && i < json_object_array_length(ns); i++) {
		json_object *n = json_object_array_get_idx(ns, i);
		const char *type = json_object_get_string(get(n, "type"));
		json_object *path = get(n, "path");

		if (!type)
			return errf(err, errlen, -EINVAL, "linux.namespaces[%zu]: no type", i);
		if (!strcmp(type, "user"))
			return errf(err, errlen, -EINVAL,
				    "linux.namespaces: a user namespace is not supported by "
				    "thaw-oci (the jail drops every capability instead)");
		if (!strcmp(type, "network") && path && nonempty(path)) {
			const char *s = json_object_get_string(path);

			if (*s != '/' || strlen(s) >= sizeof(b->netns))
				return errf(err, errlen, -EINVAL,
					    "linux.namespaces: network path '%s' is not absolute",
					    s);
			snprintf(b->netns, sizeof(b->netns), "%s", s);
		} else if (path && nonempty(path)) {
			/* Joining another container's mount, pid, ipc... namespace means
			 * sharing a process's view; a VM shares nothing of the sort. */
			return errf(err, errlen, -EINVAL,
				    "linux.namespaces: joining a %s namespace (%s) is not "
				    "supported by thaw-oci",
				    type, json_object_get_string(path));
		}
	}
	if (cgp && json_object_is_type(cgp, json_type_string) &&
	    parse_cgroups_path(json_object_get_string(cgp), b, err, errlen))
		return -EINVAL;
	if (get(lx, "resources") && parse_resources(get(lx, "resources"), b, err, errlen))
		return -EINVAL;
	return 0;
}

/* A device id as the VMM takes it (1..31 of letters, digits, '_', '-'). */
static bool dev_id_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n <= OCI_DEV_ID_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* The <id> of an org.thaw.<kind>.<id> annotation (after `prefix`) and the room for one
 * more of its kind (`count` so far): 0, or -EINVAL with the reason. */
static int annot_device(const char *key, const char *prefix, const char *what, unsigned count,
			char *err, size_t errlen)
{
	const char *id = key + strlen(prefix);

	if (!dev_id_ok(id))
		return errf(err, errlen, -EINVAL,
			    "annotation '%s': '%s' is not %s id (1-%d letters, digits, '_', '-')",
			    key, id, what, OCI_DEV_ID_MAX);
	if (count == OCI_MAX_DEVS)
		return errf(err, errlen, -EINVAL, "more than %d %s* annotations", OCI_MAX_DEVS,
			    prefix);
	return 0;
}

/* org.thaw.drive.<id> = the base image's path inside the rootfs. ':' is refused too: it
 * separates thaw-jailer's --link fields. */
static int parse_drive(const char *key, json_object *val, struct oci_bundle *b, char *err,
		       size_t errlen)
{
	const char *path = json_object_get_string(val);
	struct oci_drive *d;

	if (annot_device(key, OCI_DRIVE_ANNOT, "a drive", b->n_drives, err, errlen))
		return -EINVAL;
	if (!json_object_is_type(val, json_type_string) || !*path || strstr(path, "..") ||
	    strchr(path, ':'))
		return errf(err, errlen, -EINVAL,
			    "annotation '%s': the drive's base image, a path inside the root file "
			    "system without '..' or ':'",
			    key);
	d = &b->drives[b->n_drives++];
	snprintf(d->id, sizeof(d->id), "%s", key + strlen(OCI_DRIVE_ANNOT));
	if (snprintf(d->base, sizeof(d->base), "%s/%s", b->rootfs, path + (*path == '/')) >=
	    (int)sizeof(d->base))
		return errf(err, errlen, -EINVAL, "annotation '%s': too long", key);
	return 0;
}

/* org.thaw.net.<id> = the pod namespace's interface to connect, or "none". */
static int parse_net(const char *key, json_object *val, struct oci_bundle *b, char *err,
		     size_t errlen)
{
	const char *link = json_object_get_string(val);
	struct oci_net *n;

	if (annot_device(key, OCI_NET_ANNOT, "an interface", b->n_nets, err, errlen))
		return -EINVAL;
	if (!json_object_is_type(val, json_type_string) || !*link ||
	    strlen(link) > OCI_IFNAME_MAX || strcspn(link, " \t\n/:") != strlen(link))
		return errf(err, errlen, -EINVAL,
			    "annotation '%s': the pod's interface name (1-%d characters) or "
			    "'none'",
			    key, OCI_IFNAME_MAX);
	n = &b->nets[b->n_nets++];
	snprintf(n->id, sizeof(n->id), "%s", key + strlen(OCI_NET_ANNOT));
	snprintf(n->link, sizeof(n->link), "%s", strcmp(link, "none") ? link : "");
	return 0;
}

/* process.args, env and cwd, for the guest: {"args": [..], "env": {NAME: VALUE}, "cwd"}.
 * env becomes an object so a guest reads one variable by its path (MMDS's IMDS format
 * lists an object's keys; docs/oci.md). */
static int process_for_guest(json_object *proc, struct oci_bundle *b, char *err, size_t errlen)
{
	json_object *out = json_object_new_object(), *args = json_object_new_array();
	json_object *env = json_object_new_object(), *a = get(proc, "args"), *e = get(proc, "env");
	json_object *cwd = get(proc, "cwd");
	const char *text;
	int ret = -EINVAL;

	if (!out || !args || !env) {
		json_object_put(args);
		json_object_put(env);
		json_object_put(out);
		return errf(err, errlen, -ENOMEM, "out of memory");
	}
	json_object_object_add(out, "args", args);
	json_object_object_add(out, "env", env);
	if (a && !json_object_is_type(a, json_type_array)) {
		errf(err, errlen, 0, "process.args: not an array");
		goto out;
	}
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *x = json_object_array_get_idx(a, i);

		if (!json_object_is_type(x, json_type_string)) {
			errf(err, errlen, 0, "process.args[%zu]: not a string", i);
			goto out;
		}
		json_object_array_add(args, json_object_get(x));
	}
	if (e && !json_object_is_type(e, json_type_array)) {
		errf(err, errlen, 0, "process.env: not an array");
		goto out;
	}
	for (size_t i = 0; e && i < json_object_array_length(e); i++) {
		json_object *x = json_object_array_get_idx(e, i);
		const char *kv = json_object_get_string(x), *eq = kv ? strchr(kv, '=') : NULL;
		char name[256];

		if (!json_object_is_type(x, json_type_string) || !eq || eq == kv ||
		    (size_t)(eq - kv) >= sizeof(name)) {
			errf(err, errlen, 0, "process.env[%zu]: not NAME=VALUE", i);
			goto out;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - kv), kv);
		/* a later entry of the same name wins, as in execve's environment */
		json_object_object_add(env, name, json_object_new_string(eq + 1));
	}
	if (cwd && json_object_is_type(cwd, json_type_string))
		json_object_object_add(out, "cwd", json_object_get(cwd));
	text = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(text) + 64 >= sizeof(b->process)) {
		errf(err, errlen, 0,
		     "process.args, env and cwd: %zu bytes, more than the clone's metadata store "
		     "holds (%d)",
		     strlen(text), OCI_PROCESS_MAX);
		goto out;
	}
	snprintf(b->process, sizeof(b->process), "%s", text);
	ret = 0;
out:
	json_object_put(out);
	return ret;
}

int oci_bundle_parse(const char *json, const char *dir, struct oci_bundle *b, char *err,
		     size_t errlen)
{
	json_object *o, *v, *ann, *proc, *root, *lx, *hooks;
	const char *s, *snap;
	int ret = -EINVAL;
	int64_t id;
	bool set;

	memset(b, 0, sizeof(*b));
	if (*dir != '/' || strlen(dir) >= sizeof(b->dir))
		return errf(err, errlen, -EINVAL, "bundle '%s': not an absolute path", dir);
	snprintf(b->dir, sizeof(b->dir), "%s", dir);
	o = json_tokener_parse(json);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return errf(err, errlen, -EINVAL, "config.json: not a JSON object");
	}
	v = get(o, "ociVersion");
	s = v ? json_object_get_string(v) : NULL;
	if (!s || strncmp(s, "1.", 2)) {
		errf(err, errlen, 0, "config.json: ociVersion '%s' is not 1.x", s ? s : "");
		goto out;
	}
	root = get(o, "root");
	s = root ? json_object_get_string(get(root, "path")) : NULL;
	if (!s || !*s) {
		errf(err, errlen, 0, "config.json: no root.path");
		goto out;
	}
	if (strstr(s, "..")) {
		errf(err, errlen, 0, "config.json: root.path '%s' has '..'", s);
		goto out;
	}
	if ((*s == '/' ? snprintf(b->rootfs, sizeof(b->rootfs), "%s", s)
		       : snprintf(b->rootfs, sizeof(b->rootfs), "%s/%s", dir, s)) >=
	    (int)sizeof(b->rootfs)) {
		errf(err, errlen, 0, "config.json: root.path is too long");
		goto out;
	}
	ann = get(o, "annotations");
	snap = ann ? json_object_get_string(get(ann, OCI_SNAP_ANNOT)) : NULL;
	if (!snap || !*snap) {
		errf(err, errlen, 0,
		     "config.json: no snapshot: annotation '%s' must name the base snapshot, a "
		     "path inside the root file system",
		     OCI_SNAP_ANNOT);
		goto out;
	}
	if (strstr(snap, "..") || snprintf(b->snapshot, sizeof(b->snapshot), "%s/%s", b->rootfs,
					   snap + (*snap == '/')) >= (int)sizeof(b->snapshot)) {
		errf(err, errlen, 0, "annotation %s '%s': refused (\"..\" or too long)",
		     OCI_SNAP_ANNOT, snap);
		goto out;
	}
	s = ann ? json_object_get_string(get(ann, "org.thaw.clock-realtime")) : NULL;
	if (s && strcmp(s, "true") && strcmp(s, "false")) {
		errf(err, errlen, 0, "annotation org.thaw.clock-realtime '%s': true or false", s);
		goto out;
	}
	b->clock_realtime = s && !strcmp(s, "true");
	s = ann ? json_object_get_string(get(ann, OCI_POOL_ANNOT)) : NULL;
	if (s && (*s != '/' || strstr(s, "/../") || strlen(s) >= sizeof(b->pool))) {
		errf(err, errlen, 0,
		     "annotation %s '%s': must be the absolute path of a thaw-pool's API socket",
		     OCI_POOL_ANNOT, s);
		goto out;
	}
	snprintf(b->pool, sizeof(b->pool), "%s", s ? s : "");
	if (ann) {
		/* An org.thaw.* annotation we do not know is a typo that would be ignored. */
		json_object_object_foreach(ann, key, val)
		{
			if (!strncmp(key, OCI_DRIVE_ANNOT, strlen(OCI_DRIVE_ANNOT))) {
				if (parse_drive(key, val, b, err, errlen))
					goto out;
			} else if (!strncmp(key, OCI_NET_ANNOT, strlen(OCI_NET_ANNOT))) {
				if (parse_net(key, val, b, err, errlen))
					goto out;
			} else if (!strncmp(key, "org.thaw.", 9) && strcmp(key, OCI_SNAP_ANNOT) &&
				   strcmp(key, "org.thaw.clock-realtime") &&
				   strcmp(key, OCI_POOL_ANNOT)) {
				errf(err, errlen, 0, "annotation '%s': not known to thaw-oci", key);
				goto out;
			}
		}
	}
	proc = get(o, "process");
	if (process_for_guest(proc, b, err, errlen))
		goto out;
	if (proc) {
		v = get(proc, "terminal");
		b->terminal = v && json_object_get_boolean(v);
		v = get(proc, "user");
		if (get_int(v, "uid", &id, &set, err, errlen, "process.user"))
			goto out;
		b->uid = set ? (uid_t)id : 0;
		if (set && (id < 0 || id > 0xfffffffe)) {
			errf(err, errlen, 0, "process.user.uid %" PRId64 ": out of range", id);
			goto out;
		}
		if (get_int(v, "gid", &id, &set, err, errlen, "process.user"))
			goto out;
		b->gid = set ? (gid_t)id : 0;
		if (set && (id < 0 || id > 0xfffffffe)) {
			errf(err, errlen, 0, "process.user.gid %" PRId64 ": out of range", id);
			goto out;
		}
	}
	hooks = get(o, "hooks");
	if (hooks) {
		json_object_object_foreach(hooks, key, val)
		{
			if (nonempty(val)) {
				errf(err, errlen, 0, "hooks.%s: not supported by thaw-oci", key);
				goto out;
			}
		}
	}
	lx = get(o, "linux");
	if (lx && parse_linux(lx, b, err, errlen))
		goto out;
	ret = 0;
out:
	json_object_put(o);
	return ret;
}

int oci_bundle_check(struct oci_bundle *b, char *err, size_t errlen)
{
	char root[PATH_MAX], snap[PATH_MAX];
	struct stat st;
	size_t n;

	if (!realpath(b->rootfs, root))
		return errf(err, errlen, -errno, "root.path %s: %s", b->rootfs, strerror(errno));
	if (!realpath(b->snapshot, snap))
		return errf(err, errlen, -errno, "snapshot %s (annotation %s): %s", b->snapshot,
			    OCI_SNAP_ANNOT, strerror(errno));
	n = strlen(root);
	if (strncmp(snap, root, n) || snap[n] != '/')
		return errf(err, errlen, -EACCES,
			    "snapshot %s: resolves to %s, outside the root "
			    "file system %s",
			    b->snapshot, snap, root);
	if (stat(snap, &st) < 0 || !S_ISREG(st.st_mode))
		return errf(err, errlen, -EINVAL, "snapshot %s: not a regular file", snap);
	if (access(snap, R_OK) < 0)
		return errf(err, errlen, -errno, "snapshot %s: %s", snap, strerror(errno));
	memcpy(b->snapshot, snap, sizeof(snap));
	for (unsigned i = 0; i < b->n_drives; i++) {
		struct oci_drive *d = &b->drives[i];

		if (!realpath(d->base, snap))
			return errf(err, errlen, -errno, "drive '%s' (annotation %s%s): %s: %s",
				    d->id, OCI_DRIVE_ANNOT, d->id, d->base, strerror(errno));
		if (strncmp(snap, root, n) || snap[n] != '/')
			return errf(
			    err, errlen, -EACCES,
			    "drive '%s': %s resolves to %s, outside the root file system %s", d->id,
			    d->base, snap, root);
		if (stat(snap, &st) < 0 || !S_ISREG(st.st_mode))
			return errf(err, errlen, -EINVAL, "drive '%s': %s is not a regular file",
				    d->id, snap);
		if (access(snap, R_OK) < 0)
			return errf(err, errlen, -errno, "drive '%s': %s: %s", d->id, snap,
				    strerror(errno));
		memcpy(d->base, snap, sizeof(snap));
	}
	if (b->netns[0] && stat(b->netns, &st) < 0)
		return errf(err, errlen, -errno, "network namespace %s: %s", b->netns,
			    strerror(errno));
	return 0;
}

bool oci_bundle_jailed(const struct oci_bundle *b)
{
	return b->n_cg || b->cgroup_leaf[0] || b->netns[0];
}

int oci_id_check(const char *id)
{
	size_t n = strlen(id);

	if (!n || n > OCI_ID_MAX || id[0] == '.')
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') && !(id[i] >= 'A' && id[i] <= 'Z') &&
		    !(id[i] >= '0' && id[i] <= '9') && !strchr("_.-", id[i]))
			return -EINVAL;
	return 0;
}

static bool jail_id_ok(const char *s)
{
	size_t n = strlen(s);

	return n && n <= OCI_JAIL_ID_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

void oci_jail_id(const char *id, const char *leaf, char out[OCI_JAIL_ID_MAX + 1])
{
	uint32_t h = 2166136261u; /* FNV-1a of the id: distinct ids stay distinct */
	size_t k = 4;
	bool dropped = false;

	if (leaf && jail_id_ok(leaf)) {
		snprintf(out, OCI_JAIL_ID_MAX + 1, "%s", leaf);
		return;
	}
	memcpy(out, "oci-", 4);
	for (const char *p = id; *p; p++) {
		h = (h ^ (uint8_t)*p) * 16777619u;
		if (strchr("_.", *p) || k >= OCI_JAIL_ID_MAX - 9)
			dropped = true;
		else
			out[k++] = *p;
	}
	if (dropped)
		k += (size_t)snprintf(out + k, OCI_JAIL_ID_MAX + 1 - k, "-%08x", h);
	out[k] = '\0';
}

int oci_bundle_match(const struct oci_bundle *b, const struct oci_snap_devices *d, char *err,
		     size_t errlen)
{
	unsigned nets = 0;

	for (unsigned i = 0; i < d->n; i++) {
		bool found = false;

		if (d->dev[i].kind == OCI_DEV_DRIVE) {
			for (unsigned k = 0; k < b->n_drives; k++)
				found |= !strcmp(b->drives[k].id, d->dev[i].id);
			if (!found)
				return errf(
				    err, errlen, -EINVAL,
				    "the snapshot has drive '%s': annotation %s%s must name "
				    "its base image, a file inside the root file system",
				    d->dev[i].id, OCI_DRIVE_ANNOT, d->dev[i].id);
		} else if (d->dev[i].kind == OCI_DEV_NET) {
			nets++;
			if (!b->netns[0])
				return errf(
				    err, errlen, -EINVAL,
				    "the snapshot has network interface '%s': the bundle "
				    "must give a network namespace path (linux.namespaces), "
				    "where thaw-oci makes its tap",
				    d->dev[i].id);
		}
	}
	if (nets > OCI_MAX_DEVS)
		return errf(err, errlen, -EINVAL, "the snapshot has more than %d interfaces",
			    OCI_MAX_DEVS);
	for (unsigned k = 0; k < b->n_drives; k++) {
		bool found = false;

		for (unsigned i = 0; i < d->n; i++)
			found |= d->dev[i].kind == OCI_DEV_DRIVE &&
				 !strcmp(b->drives[k].id, d->dev[i].id);
		if (!found)
			return errf(err, errlen, -EINVAL,
				    "annotation %s%s: the snapshot has no drive '%s'",
				    OCI_DRIVE_ANNOT, b->drives[k].id, b->drives[k].id);
	}
	for (unsigned k = 0; k < b->n_nets; k++) {
		bool found = false;

		for (unsigned i = 0; i < d->n; i++)
			found |=
			    d->dev[i].kind == OCI_DEV_NET && !strcmp(b->nets[k].id, d->dev[i].id);
		if (!found)
			return errf(err, errlen, -EINVAL,
				    "annotation %s%s: the snapshot has no network interface '%s'",
				    OCI_NET_ANNOT, b->nets[k].id, b->nets[k].id);
	}
	return 0;
}

void oci_tap_name(const char *id, unsigned index, char out[OCI_IFNAME_MAX + 1])
{
	uint32_t h = 2166136261u; /* FNV-1a, as the jail id's */

	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(out, OCI_IFNAME_MAX + 1, "thaw-%08x-%x", h, index & 0xf);
}
