/* Private to jailer/: the file system and cgroup helpers behind jail_run. */
#ifndef THAW_JAIL_INT_H
#define THAW_JAIL_INT_H

#include "jailer/jailer.h"

#include <stddef.h>

/* --- fs.c --- */

/* mkdir -p with mode for the missing parts; 0 or -errno (logged by the caller). */
int jail_fs_mkdir_p(const char *path, mode_t mode);

/* Removes dirfd/name and everything below it without following symlinks and without
 * crossing into another file system (a mount point below refuses with -EXDEV).
 * 0 when removed or already absent, -errno otherwise. */
int jail_fs_remove_tree(int dirfd, const char *name);

/* Puts src into dirfd/name: a hard link when both are on one file system and the
 * jailed uid/gid cannot write the source (a link shares the inode), else a copy owned
 * by root with the source's mode less group/other write. *linked tells which. 0 or -errno; on
 * failure the name is not left behind. */
int jail_fs_install_exec(const char *src, int dirfd, const char *name, uid_t uid, gid_t gid,
			 bool *linked);

/* Number of mount points at or below `dir` in /proc/self/mountinfo (-errno on read
 * failure); the first one is copied to first (may be NULL). */
int jail_fs_mounts_below(const char *dir, char *first, size_t first_len);

/* Reads the PT_INTERP path of the ELF file open at fd into out ("" for a static
 * binary). 0, -ENOEXEC when not a 64-bit ELF, or -errno. */
int jail_fs_elf_interp(int fd, char *out, size_t out_len);

/* Reads /proc/misc into buf (NUL-terminated, truncated to len); 0 or -errno. */
int jail_fs_read_misc(char *buf, size_t len);

/* Minor number of misc device `name` in the text of /proc/misc; -ENOENT when the host
 * has none. */
int jail_fs_misc_minor(const char *misc, const char *name);

/* --- cgroup.c --- */

#define JAIL_CG_MAX_HIER 16

struct jail_cg_hier {
	char mount[PATH_MAX];  /* mount point of the hierarchy */
	char cgpath[PATH_MAX]; /* <mount>/<parent>/<id> */
	int version;
	unsigned controllers; /* bit i: cfg->cgroups[i] is written here */
	int parent_fd;	      /* <mount>/<parent>, to rmdir <id> after pivot_root */
	int orig_procs_fd;    /* cgroup.procs of our cgroup before the jail, to step back */
	bool created, joined;
};

struct jail_cgroups {
	struct jail_cg_hier h[JAIL_CG_MAX_HIER];
	unsigned n;
	int version;
};

/* Decides the cgroup version and which hierarchy holds each --cgroup key, reading
 * /proc/mounts; no side effects. An unknown controller is -EINVAL (logged). */
int jail_cg_plan(const struct jail_config *cfg, struct jail_cgroups *cgs);

/* Creates <mount>/<parent>/<id> in each planned hierarchy, writes the settings
 * (a key without a file there is -EINVAL, "unknown cgroup key"), then moves the
 * calling process in. On failure undoes its own work. */
int jail_cg_apply(const struct jail_config *cfg, struct jail_cgroups *cgs);

/* Moves the caller back to its original cgroups and removes the jail's directories;
 * works after pivot_root (only fds are used). */
void jail_cg_unwind(struct jail_cgroups *cgs);

/* Closes the fds kept for unwinding: they lead out of the jail and must never reach
 * the jailed process. */
void jail_cg_close(struct jail_cgroups *cgs);

/* --cleanup: removes <mount>/<parent>/<id> in every mounted hierarchy. -EBUSY (logged)
 * when one still holds processes; 0 otherwise. *removed counts directories removed. */
int jail_cg_cleanup(const struct jail_config *cfg, unsigned *removed);

#endif
