/* Cgroups of a jail: <hierarchy root>/<parent>/<id>, v2 when the unified hierarchy
 * is mounted and has every controller asked for, v1 otherwise. */
#include "jailer/jail_int.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

/* True when `tok` is one of the comma-separated words of `list`. */
static bool has_word(const char *list, const char *tok, char sep)
{
	size_t n = strlen(tok);

	for (const char *p = list; p && *p;) {
		const char *end = strchr(p, sep);
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && strncmp(p, tok, n) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

struct cg_mount {
	char dir[PATH_MAX];
	char opts[512];
	int version;
};

#define MAX_CG_MOUNTS 32

static int read_cg_mounts(struct cg_mount *m, unsigned *n)
{
	char dev[256], dir[PATH_MAX], type[64], opts[512];
	FILE *f = fopen("/proc/mounts", "re");

	*n = 0;
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %511s %*d %*d", dev, dir, type, opts) == 4) {
		int v = strcmp(type, "cgroup") == 0 ? 1 : strcmp(type, "cgroup2") == 0 ? 2 : 0;
		if (!v || *n == MAX_CG_MOUNTS)
			continue;
		snprintf(m[*n].dir, sizeof(m[*n].dir), "%s", dir);
		snprintf(m[*n].opts, sizeof(m[*n].opts), "%s", opts);
		m[*n].version = v;
		(*n)++;
	}
	fclose(f);
	return 0;
}

static int read_small(int dirfd, const char *name, char *buf, size_t len);

/* The hierarchies where systemd and most distributions mount them: cgroup2 at
 * /sys/fs/cgroup or /sys/fs/cgroup/unified, each v1 controller at /sys/fs/cgroup/<name>
 * (co-mounted ones reached through their symlinks, merged by device). Checked with
 * statfs, which unlike reading /proc/mounts does not queue behind namespace_sem: with
 * ten jailers mounting and unmounting at once that read took up to 390 ms. True when
 * every controller asked for was found; false sends the caller to /proc/mounts. A
 * directory there that is a cgroup file system without the controller makes the
 * jail fail later with "unknown cgroup key", never silently. */
static bool conventional_mounts(const struct jail_config *cfg, struct cg_mount *m, unsigned *n)
{
	static const char *const v2_dirs[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	dev_t devs[MAX_CG_MOUNTS];
	char ctrls[512] = "";
	struct statfs sf;
	struct stat st;

	*n = 0;
	for (unsigned i = 0; i < 2; i++) {
		if (statfs(v2_dirs[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
			int fd = open(v2_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd >= 0 && read_small(fd, "cgroup.controllers", ctrls, sizeof(ctrls)))
				ctrls[0] = '\0';
			if (fd >= 0)
				close(fd);
			snprintf(m[0].dir, sizeof(m[0].dir), "%s", v2_dirs[i]);
			m[0].opts[0] = '\0';
			m[0].version = 2;
			devs[0] = 0;
			*n = 1;
			break;
		}
	}
	for (unsigned i = 0; i < cfg->n_cgroups; i++) {
		const char *c = cfg->cgroups[i].controller;
		char dir[64];
		unsigned j;
		if (has_word(ctrls, c, ' '))
			continue;
		if (snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s", c) >= (int)sizeof(dir) ||
		    statfs(dir, &sf) || sf.f_type != CGROUP_SUPER_MAGIC || stat(dir, &st))
			return false;
		for (j = 0; j < *n; j++)
			if (m[j].version == 1 && devs[j] == st.st_dev)
				break;
		if (j == *n) {
			if (*n == MAX_CG_MOUNTS)
				return false;
			snprintf(m[j].dir, sizeof(m[j].dir), "%s", dir);
			m[j].opts[0] = '\0';
			m[j].version = 1;
			devs[j] = st.st_dev;
			(*n)++;
		}
		if (!has_word(m[j].opts, c, ',')) {
			size_t len = strlen(m[j].opts);
			snprintf(m[j].opts + len, sizeof(m[j].opts) - len, "%s%s", len ? "," : "",
				 c);
		}
	}
	return true;
}

static int read_small(int dirfd, const char *name, char *buf, size_t len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static int write_small(int dirfd, const char *name, const char *val)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(val);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

/* v2: the controllers <dir>/cgroup.controllers offers, space-separated. */
static int v2_controllers(const char *dir, char *buf, size_t len)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = read_small(fd, "cgroup.controllers", buf, len);
	close(fd);
	return ret;
}

/* The line of /proc/self/cgroup for this hierarchy gives our current cgroup, so an
 * unwind can put the process back where it came from. */
static int own_cgroup(int version, const struct jail_config *cfg, unsigned ctrls, char *out,
		      size_t len)
{
	char line[PATH_MAX + 256];
	int ret = -ENOENT;
	FILE *f = fopen("/proc/self/cgroup", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		bool match = false;
		if (!c2)
			continue;
		*c2 = '\0';
		if (version == 2) {
			/* "0::<path>": hierarchy 0, no controller list. */
			match = c1 == line + 1 && line[0] == '0' && c2 == c1 + 1;
		} else {
			for (unsigned i = 0; i < cfg->n_cgroups; i++)
				if ((ctrls & (1u << i)) &&
				    has_word(c1 + 1, cfg->cgroups[i].controller, ','))
					match = true;
		}
		if (!match)
			continue;
		c2[strcspn(c2 + 1, "\n") + 1] = '\0';
		snprintf(out, len, "%s", c2 + 1);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

int jail_cg_plan(const struct jail_config *cfg, struct jail_cgroups *cgs)
{
	struct cg_mount m[MAX_CG_MOUNTS];
	const struct cg_mount *v2 = NULL;
	unsigned nm;
	int ret;

	memset(cgs, 0, sizeof(*cgs));
	for (unsigned i = 0; i < JAIL_CG_MAX_HIER; i++)
		cgs->h[i].parent_fd = cgs->h[i].orig_procs_fd = -1;
	if (cfg->n_cgroups == 0)
		return 0;
	if (!conventional_mounts(cfg, m, &nm)) {
		ret = read_cg_mounts(m, &nm);
		if (ret) {
			log_err("validate: cgroups: open /proc/mounts: %s", strerror(-ret));
			return ret;
		}
	}
	for (unsigned i = 0; i < nm && !v2; i++)
		if (m[i].version == 2)
			v2 = &m[i];

	cgs->version = cfg->cgroup_version;
	if (cgs->version != 1) {
		/* Usable means every controller asked for is handed to the unified tree; on a
		 * hybrid host (like this one) they are usually all bound to v1 instead. */
		char ctrls[512] = "";
		bool usable = v2 != NULL && v2_controllers(v2->dir, ctrls, sizeof(ctrls)) == 0;
		for (unsigned i = 0; usable && i < cfg->n_cgroups; i++)
			usable = has_word(ctrls, cfg->cgroups[i].controller, ' ');
		if (!usable && cgs->version == 2) {
			for (unsigned i = 0; v2 && i < cfg->n_cgroups; i++)
				if (!has_word(ctrls, cfg->cgroups[i].controller, ' '))
					log_err("validate: cgroups: controller '%s' (--cgroup %s) "
						"is not in %s/cgroup.controllers",
						cfg->cgroups[i].controller, cfg->cgroups[i].key,
						v2->dir);
			if (!v2)
				log_err("validate: cgroups: --cgroup-version 2 but no cgroup2 "
					"file system is mounted (see /proc/mounts)");
			return -EINVAL;
		}
		cgs->version = usable ? 2 : 1;
	}

	if (cgs->version == 2) {
		struct jail_cg_hier *h = &cgs->h[0];
		snprintf(h->mount, sizeof(h->mount), "%s", v2->dir);
		h->version = 2;
		for (unsigned i = 0; i < cfg->n_cgroups; i++)
			h->controllers |= 1u << i;
		cgs->n = 1;
	} else {
		for (unsigned i = 0; i < cfg->n_cgroups; i++) {
			const struct cg_mount *found = NULL;
			unsigned j;
			for (j = 0; j < nm && !found; j++)
				if (m[j].version == 1 &&
				    has_word(m[j].opts, cfg->cgroups[i].controller, ','))
					found = &m[j];
			if (!found) {
				log_err("validate: cgroups: unknown cgroup controller '%s' in "
					"--cgroup %s=%s (no cgroup v1 hierarchy has it in "
					"/proc/mounts)",
					cfg->cgroups[i].controller, cfg->cgroups[i].key,
					cfg->cgroups[i].value);
				return -EINVAL;
			}
			for (j = 0; j < cgs->n; j++)
				if (strcmp(cgs->h[j].mount, found->dir) == 0)
					break;
			if (j == cgs->n) {
				if (cgs->n == JAIL_CG_MAX_HIER)
					return -E2BIG;
				snprintf(cgs->h[j].mount, sizeof(cgs->h[j].mount), "%s",
					 found->dir);
				cgs->h[j].version = 1;
				cgs->n++;
			}
			cgs->h[j].controllers |= 1u << i;
		}
	}
	for (unsigned j = 0; j < cgs->n; j++) {
		struct jail_cg_hier *h = &cgs->h[j];
		char mount[PATH_MAX];
		memcpy(mount, h->mount, sizeof(mount));
		if (snprintf(h->cgpath, sizeof(h->cgpath), "%s/%s/%s", mount, cfg->parent_cgroup,
			     cfg->id) >= (int)sizeof(h->cgpath))
			return -ENAMETOOLONG;
	}
	return 0;
}

/* v1 cpuset: a new cgroup starts with no cpus and no memory nodes, and nothing can
 * join it until both are set; start from the parent's. */
static int cpuset_inherit(int parent_fd, int child_fd)
{
	static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
	char buf[512];

	for (unsigned i = 0; i < 2; i++) {
		int ret = read_small(child_fd, files[i], buf, sizeof(buf));
		if (ret == 0 && buf[0])
			continue;
		ret = read_small(parent_fd, files[i], buf, sizeof(buf));
		if (!ret)
			ret = write_small(child_fd, files[i], buf);
		if (ret)
			return ret;
	}
	return 0;
}

/* v2: controllers reach a cgroup only when its parent enables them for children. */
static int v2_enable(int dirfd, const struct jail_config *cfg, unsigned ctrls)
{
	char cur[512], want[64];

	if (read_small(dirfd, "cgroup.subtree_control", cur, sizeof(cur)))
		cur[0] = '\0';
	for (unsigned i = 0; i < cfg->n_cgroups; i++) {
		int ret;
		if (!(ctrls & (1u << i)) || has_word(cur, cfg->cgroups[i].controller, ' '))
			continue;
		snprintf(want, sizeof(want), "+%s", cfg->cgroups[i].controller);
		ret = write_small(dirfd, "cgroup.subtree_control", want);
		if (ret)
			return ret;
		snprintf(cur + strlen(cur), sizeof(cur) - strlen(cur), " %s",
			 cfg->cgroups[i].controller);
	}
	return 0;
}

static bool hier_has(const struct jail_config *cfg, const struct jail_cg_hier *h, const char *ctrl)
{
	for (unsigned i = 0; i < cfg->n_cgroups; i++)
		if ((h->controllers & (1u << i)) && strcmp(cfg->cgroups[i].controller, ctrl) == 0)
			return true;
	return false;
}

/* The file a process joins a cgroup through, written with "0" (the writer). v1:
 * `tasks`: the kernel moves just the calling thread (the jailer has only one) and,
 * for the caller itself, skips the global cgroup_threadgroup_rwsem, whose write side
 * waits for an RCU grace period while cgroup_mutex is held and so queues concurrent
 * jailers (and every fork on the host) behind one another. v2 has only cgroup.procs. */
static const char *join_file(const struct jail_cg_hier *h)
{
	return h->version == 1 ? "tasks" : "cgroup.procs";
}

/* Opens (creating as needed) <mount>/<parent>, preparing each level on the way. */
static int open_parent(const struct jail_config *cfg, struct jail_cg_hier *h)
{
	char rel[PATH_MAX], *save = NULL;
	bool cpuset = h->version == 1 && hier_has(cfg, h, "cpuset");
	int fd, ret;

	fd = open(h->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("cgroups: open %s: %s", h->mount, strerror(-ret));
		return ret;
	}
	snprintf(rel, sizeof(rel), "%s", cfg->parent_cgroup);
	for (char *c = strtok_r(rel, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next;
		if (h->version == 2 && (ret = v2_enable(fd, cfg, h->controllers))) {
			log_err("cgroups: enable controllers in %s (level %s): write "
				"cgroup.subtree_control: %s",
				h->mount, c, strerror(-ret));
			goto fail;
		}
		if (mkdirat(fd, c, 0755) && errno != EEXIST) {
			ret = -errno;
			log_err("cgroups: mkdir %s/.../%s: %s", h->mount, c, strerror(-ret));
			goto fail;
		}
		next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			ret = -errno;
			log_err("cgroups: open %s/.../%s: %s", h->mount, c, strerror(-ret));
			goto fail;
		}
		if (cpuset && (ret = cpuset_inherit(fd, next))) {
			log_err("cgroups: copy cpuset.cpus/mems into %s/.../%s: %s", h->mount, c,
				strerror(-ret));
			close(next);
			goto fail;
		}
		close(fd);
		fd = next;
	}
	if (h->version == 2 && (ret = v2_enable(fd, cfg, h->controllers))) {
		log_err("cgroups: enable controllers in %s/%s: write cgroup.subtree_control: %s",
			h->mount, cfg->parent_cgroup, strerror(-ret));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return ret;
}

static int apply_one(const struct jail_config *cfg, struct jail_cg_hier *h)
{
	char own[PATH_MAX], procs[PATH_MAX + 32];
	int idfd, ret;

	ret = own_cgroup(h->version, cfg, h->controllers, own, sizeof(own));
	if (ret) {
		log_err("cgroups: find our cgroup for %s in /proc/self/cgroup: %s", h->mount,
			strerror(-ret));
		return ret;
	}
	if (snprintf(procs, sizeof(procs), "%s%s/%s", h->mount, strcmp(own, "/") ? own : "",
		     join_file(h)) >= (int)sizeof(procs))
		return -ENAMETOOLONG;
	h->orig_procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (h->orig_procs_fd < 0) {
		ret = -errno;
		log_err("cgroups: open %s: %s", procs, strerror(-ret));
		return ret;
	}
	ret = open_parent(cfg, h);
	if (ret < 0)
		return ret;
	h->parent_fd = ret;
	if (mkdirat(h->parent_fd, cfg->id, 0755)) {
		ret = -errno;
		log_err("cgroups: mkdir %s: %s%s", h->cgpath, strerror(-ret),
			ret == -EEXIST ? " (a jail with this id exists: thaw-jailer --cleanup)"
				       : "");
		return ret;
	}
	h->created = true;
	idfd = openat(h->parent_fd, cfg->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (idfd < 0) {
		ret = -errno;
		log_err("cgroups: open %s: %s", h->cgpath, strerror(-ret));
		return ret;
	}
	if (h->version == 1 && hier_has(cfg, h, "cpuset") &&
	    (ret = cpuset_inherit(h->parent_fd, idfd))) {
		log_err("cgroups: copy cpuset.cpus/mems into %s: %s", h->cgpath, strerror(-ret));
		goto out;
	}
	for (unsigned i = 0; i < cfg->n_cgroups; i++) {
		const struct jail_cgroup_setting *s = &cfg->cgroups[i];
		if (!(h->controllers & (1u << i)))
			continue;
		if (faccessat(idfd, s->key, F_OK, 0)) {
			ret = errno == ENOENT ? -EINVAL : -errno;
			log_err("cgroups: unknown cgroup key '%s': no such file in %s (cgroup "
				"v%d)",
				s->key, h->cgpath, h->version);
			goto out;
		}
		ret = write_small(idfd, s->key, s->value);
		if (ret) {
			log_err("cgroups: write '%s' to %s/%s: %s", s->value, h->cgpath, s->key,
				strerror(-ret));
			goto out;
		}
		log_debug("cgroups: %s/%s = %s", h->cgpath, s->key, s->value);
	}
out:
	close(idfd);
	return ret;
}

int jail_cg_apply(const struct jail_config *cfg, struct jail_cgroups *cgs)
{
	char pid[24];
	int ret;

	for (unsigned j = 0; j < cgs->n; j++) {
		ret = apply_one(cfg, &cgs->h[j]);
		if (ret)
			goto fail;
	}
	/* Join only once every limit is written, so the process never runs in a
	 * half-configured cgroup. "0" is the writer itself, see join_file(). */
	snprintf(pid, sizeof(pid), "0");
	for (unsigned j = 0; j < cgs->n; j++) {
		struct jail_cg_hier *h = &cgs->h[j];
		char procs[PATH_MAX + 16];
		snprintf(procs, sizeof(procs), "%s/%s", cfg->id, join_file(h));
		ret = write_small(h->parent_fd, procs, pid);
		if (ret) {
			log_err("cgroups: write pid %s to %s/%s: %s", pid, h->cgpath, join_file(h),
				strerror(-ret));
			goto fail;
		}
		h->joined = true;
	}
	return 0;
fail:
	jail_cg_unwind(cgs);
	return ret;
}

int jail_cg_adopt(const struct jail_config *cfg, const pid_t *pids, unsigned n)
{
	struct jail_cgroups *cgs = malloc(sizeof(*cgs));
	int ret;

	if (!cgs)
		return -ENOMEM;
	ret = jail_cg_plan(cfg, cgs);
	for (unsigned j = 0; !ret && j < cgs->n; j++)
		ret = apply_one(cfg, &cgs->h[j]);
	/* cgroup.procs, not tasks: every thread of each process moves (a VMM has its
	 * vCPU threads already). */
	for (unsigned j = 0; !ret && j < cgs->n; j++) {
		struct jail_cg_hier *h = &cgs->h[j];
		char procs[PATH_MAX + 16], pid[24];

		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cfg->id);
		for (unsigned i = 0; !ret && i < n; i++) {
			snprintf(pid, sizeof(pid), "%d", (int)pids[i]);
			ret = write_small(h->parent_fd, procs, pid);
			if (ret)
				log_err("cgroups: write pid %s to %s/cgroup.procs: %s", pid,
					h->cgpath, strerror(-ret));
		}
	}
	if (ret) {
		/* The processes moved stay where they are; their caller ends them and
		 * jail_cleanup removes the directories. Those made here and still empty go. */
		for (unsigned j = 0; j < cgs->n; j++)
			if (cgs->h[j].created)
				unlinkat(cgs->h[j].parent_fd, cfg->id, AT_REMOVEDIR);
	}
	jail_cg_close(cgs);
	free(cgs);
	return ret;
}

void jail_cg_unwind(struct jail_cgroups *cgs)
{
	const char *pid = "0"; /* the caller, as in jail_cg_apply */

	for (unsigned j = 0; j < cgs->n; j++) {
		struct jail_cg_hier *h = &cgs->h[j];
		if (h->joined) {
			if (write(h->orig_procs_fd, pid, strlen(pid)) < 0)
				log_warn("unwind: move back out of %s: %s", h->cgpath,
					 strerror(errno));
			h->joined = false;
		}
		if (h->created) {
			const char *id = strrchr(h->cgpath, '/') + 1;
			if (unlinkat(h->parent_fd, id, AT_REMOVEDIR))
				log_warn("unwind: rmdir %s: %s", h->cgpath, strerror(errno));
			h->created = false;
		}
	}
	jail_cg_close(cgs);
}

void jail_cg_close(struct jail_cgroups *cgs)
{
	for (unsigned j = 0; j < cgs->n; j++) {
		struct jail_cg_hier *h = &cgs->h[j];
		if (h->parent_fd >= 0)
			close(h->parent_fd);
		if (h->orig_procs_fd >= 0)
			close(h->orig_procs_fd);
		h->parent_fd = h->orig_procs_fd = -1;
	}
}

int jail_cg_cleanup(const struct jail_config *cfg, unsigned *removed)
{
	struct cg_mount m[MAX_CG_MOUNTS];
	char path[PATH_MAX], buf[64];
	unsigned nm;
	int ret;

	*removed = 0;
	ret = read_cg_mounts(m, &nm);
	if (ret) {
		log_err("cleanup: open /proc/mounts: %s", strerror(-ret));
		return ret;
	}
	/* First make sure no hierarchy still holds the jail's processes, so a refused
	 * cleanup removes nothing. */
	for (unsigned i = 0; i < nm; i++) {
		int fd;
		if (snprintf(path, sizeof(path), "%s/%s/%s", m[i].dir, cfg->parent_cgroup,
			     cfg->id) >= (int)sizeof(path))
			continue;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		ret = read_small(fd, "cgroup.procs", buf, sizeof(buf));
		close(fd);
		if (ret == 0 && buf[0]) {
			buf[strcspn(buf, "\n")] = '\0';
			log_err("cleanup: jail '%s' is still running: pid %s is in %s", cfg->id,
				buf, path);
			return -EBUSY;
		}
	}
	for (unsigned i = 0; i < nm; i++) {
		if (snprintf(path, sizeof(path), "%s/%s/%s", m[i].dir, cfg->parent_cgroup,
			     cfg->id) >= (int)sizeof(path))
			continue;
		/* A process that just exited may still be leaving the cgroup. */
		for (int tries = 0;; tries++) {
			if (rmdir(path) == 0) {
				(*removed)++;
				log_info("cleanup: removed cgroup %s", path);
				break;
			}
			if (errno == ENOENT)
				break;
			if (errno != EBUSY || tries == 50) {
				ret = -errno;
				log_err("cleanup: rmdir %s: %s", path, strerror(-ret));
				return ret;
			}
			usleep(2000);
		}
	}
	return 0;
}
