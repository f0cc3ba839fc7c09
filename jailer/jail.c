/* The jail, step by step. Each step logs "<step>: <call>(...): <strerror>" when it
 * fails and the failure unwinds everything earlier steps created: the jail directory
 * (through a directory fd opened on the host, so it works after pivot_root) and the
 * cgroup directories (after moving the process back out of them). */
#include "jailer/jail_int.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/securebits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

struct jail_dev {
	const char *path;
	const char *misc_name; /* NULL: not a misc device */
	unsigned major, minor;
	enum jail_device bit;
};

#define JAIL_STEPS 10

struct jail {
	const struct jail_config *cfg;
	struct jail_cgroups cgs;
	const char *exec_name;
	char root[PATH_MAX];
	int thaw_fd; /* <base>/thaw on the host: removes <id> on unwind, even after pivot */
	bool id_created;
	bool pivoted;
	int devnull_fd;
	int link_fds[JAIL_MAX_LINKS];
	bool link_mounted[JAIL_MAX_LINKS];
	struct jail_dev devs[4];
	unsigned n_devs;
	uint64_t t0;
	uint64_t parent_cpu_ns; /* CPU time of the process that forked this one, if any */
	uint64_t step_end[JAIL_STEPS];
};

/* This process's CPU time (CLOCK_PROCESS_CPUTIME_ID, which execve keeps counting). */
static uint64_t cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The child thaw, for the signal handler of a waiting --new-pid-ns parent. */
static volatile pid_t forward_pid;

/* --- step 1: validate ----------------------------------------------------------- */

static void probe_devices(struct jail *j)
{
	static const struct jail_dev known[] = {
	    {"/dev/kvm", "kvm", 10, 232, JAIL_DEV_KVM},
	    {"/dev/net/tun", "tun", 10, 200, JAIL_DEV_TUN},
	    {"/dev/userfaultfd", "userfaultfd", 10, 0, JAIL_DEV_UFFD},
	    {"/dev/urandom", NULL, 1, 9, JAIL_DEV_URANDOM},
	};

	char misc[4096];

	if (jail_fs_read_misc(misc, sizeof(misc)))
		misc[0] = '\0';
	j->n_devs = 0;
	for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		struct jail_dev d = known[i];
		struct stat st;
		if (!(j->cfg->devices & d.bit))
			continue;
		if (d.misc_name) {
			/* The host has a misc device when its driver registered it; the
			 * minor of userfaultfd is dynamic, so always take it from there. */
			int minor = jail_fs_misc_minor(misc, d.misc_name);
			if (minor < 0) {
				log_info("devices: host has no %s (no '%s' in /proc/misc); the "
					 "jail will not have it",
					 d.path, d.misc_name);
				continue;
			}
			d.minor = (unsigned)minor;
		} else if (stat(d.path, &st) || !S_ISCHR(st.st_mode) ||
			   st.st_rdev != makedev(d.major, d.minor)) {
			log_info("devices: host has no %s (%u:%u); the jail will not have it",
				 d.path, d.major, d.minor);
			continue;
		}
		j->devs[j->n_devs++] = d;
	}
}

static int step_validate(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	struct stat st;
	int ret;

	if (stat(cfg->exec_file, &st)) {
		ret = -errno;
		log_err("validate: --exec-file: stat(%s): %s", cfg->exec_file, strerror(-ret));
		return ret;
	}
	if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		log_err("validate: --exec-file %s: not an executable regular file", cfg->exec_file);
		return -EINVAL;
	}
	if (cfg->netns && stat(cfg->netns, &st)) {
		ret = -errno;
		log_err("validate: --netns: stat(%s): %s", cfg->netns, strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < cfg->n_links; i++) {
		if (stat(cfg->links[i].src, &st)) {
			ret = -errno;
			log_err("validate: --link: stat(%s): %s", cfg->links[i].src,
				strerror(-ret));
			return ret;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			log_err("validate: --link %s: not a regular file or directory",
				cfg->links[i].src);
			return -EINVAL;
		}
	}
	if (stat(cfg->base, &st) == 0 && !S_ISDIR(st.st_mode)) {
		log_err("validate: --chroot-base %s: not a directory", cfg->base);
		return -ENOTDIR;
	}
	if (snprintf(j->root, sizeof(j->root), "%s/%s/%s/root", cfg->base, j->exec_name, cfg->id) >=
	    (int)sizeof(j->root)) {
		log_err("validate: --chroot-base %s: path too long", cfg->base);
		return -ENAMETOOLONG;
	}
	ret = jail_cg_plan(cfg, &j->cgs);
	if (ret)
		return ret;
	probe_devices(j);
	return 0;
}

/* --- step 2: close inherited fds, clear the environment ------------------------- */

static int step_environment(struct jail *j)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigset_t none;

	/* Only stdio crosses into the jail; anything else the caller leaked (sockets,
	 * directory fds on the host) would be a way out. */
	if (close_range(3, ~0u, 0)) {
		int ret = -errno;
		log_err("environment: close_range(3, ~0): %s", strerror(-ret));
		return ret;
	}
	/* Closed stdio would let the next open() become fd 0-2 of thaw. */
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int n = open("/dev/null", O_RDWR);
			if (n != fd) {
				log_err("environment: open(/dev/null) for fd %d: %s", fd,
					strerror(errno));
				return -EBADF;
			}
		}
	}
	if (clearenv()) {
		log_err("environment: clearenv: failed");
		return -ENOMEM;
	}
	/* Ignored signals and a blocked mask survive exec; thaw starts from defaults. */
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	umask(022);
	return 0;
}

/* --- step 3: the jail directory and the exec file -------------------------------- */

static int step_jail_dir(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	char path[PATH_MAX];
	int id_fd = -1, root_fd = -1, ret;
	bool linked;

	ret = jail_fs_mkdir_p(cfg->base, 0755);
	if (ret) {
		log_err("jail-dir: mkdir -p %s: %s", cfg->base, strerror(-ret));
		return ret;
	}
	snprintf(path, sizeof(path), "%s/%s", cfg->base, j->exec_name);
	if (mkdir(path, 0755) && errno != EEXIST) {
		ret = -errno;
		log_err("jail-dir: mkdir(%s): %s", path, strerror(-ret));
		return ret;
	}
	j->thaw_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->thaw_fd < 0) {
		ret = -errno;
		log_err("jail-dir: open(%s): %s", path, strerror(-ret));
		return ret;
	}
	/* The id must be new: reusing a directory left by an earlier jail would trust
	 * whatever that jail's user put in it. */
	if (mkdirat(j->thaw_fd, cfg->id, 0755)) {
		ret = -errno;
		log_err("jail-dir: mkdir(%s/%s): %s%s", path, cfg->id, strerror(-ret),
			ret == -EEXIST ? " (run thaw-jailer --cleanup --id first)" : "");
		return ret;
	}
	j->id_created = true;
	id_fd = openat(j->thaw_fd, cfg->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (id_fd < 0 || mkdirat(id_fd, "root", 0755)) {
		ret = -errno;
		log_err("jail-dir: mkdir(%s): %s", j->root, strerror(-ret));
		goto out;
	}
	root_fd = openat(id_fd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root_fd < 0) {
		ret = -errno;
		log_err("jail-dir: open(%s): %s", j->root, strerror(-ret));
		goto out;
	}
	ret = jail_fs_install_exec(cfg->exec_file, root_fd, j->exec_name, cfg->uid, cfg->gid,
				   &linked);
	if (ret) {
		log_err("jail-dir: link or copy %s to %s/%s: %s", cfg->exec_file, j->root,
			j->exec_name, strerror(-ret));
		goto out;
	}
	log_debug("jail-dir: %s %s into %s", linked ? "hard-linked" : "copied", cfg->exec_file,
		  j->root);
out:
	if (root_fd >= 0)
		close(root_fd);
	if (id_fd >= 0)
		close(id_fd);
	return ret;
}

/* --- step 4: rlimits ------------------------------------------------------------- */

static int step_rlimits(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	bool nofile = false;

	for (unsigned i = 0; i < cfg->n_rlimits; i++) {
		const struct jail_rlimit *rl = &cfg->rlimits[i];
		struct rlimit r = {rl->value, rl->value};
		if (setrlimit(rl->resource, &r)) {
			int ret = -errno;
			log_err("rlimits: setrlimit(%s): %s%s", rl->name, strerror(-ret),
				ret == -EPERM ? " (raising a hard limit needs CAP_SYS_RESOURCE)"
					      : "");
			return ret;
		}
		nofile |= rl->resource == RLIMIT_NOFILE;
	}
	if (!nofile) {
		/* As Firecracker: bound open files unless told otherwise, never raising. */
		struct rlimit r;
		if (getrlimit(RLIMIT_NOFILE, &r) == 0 && (r.rlim_max > 2048)) {
			r.rlim_cur = r.rlim_max = 2048;
			if (setrlimit(RLIMIT_NOFILE, &r)) {
				int ret = -errno;
				log_err("rlimits: setrlimit(no-file=2048): %s", strerror(-ret));
				return ret;
			}
		}
	}
	return 0;
}

/* --- step 6: network namespace --------------------------------------------------- */

static int step_netns(struct jail *j)
{
	int fd, ret = 0;

	if (!j->cfg->netns)
		return 0;
	fd = open(j->cfg->netns, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("netns: open(%s): %s", j->cfg->netns, strerror(-ret));
		return ret;
	}
	if (setns(fd, CLONE_NEWNET)) {
		ret = -errno;
		log_err("netns: setns(%s, CLONE_NEWNET): %s%s", j->cfg->netns, strerror(-ret),
			ret == -EINVAL ? " (not a network namespace)" : "");
	}
	close(fd);
	return ret;
}

/* --- step 7: mount namespace and pivot_root -------------------------------------- */

static int step_mount_ns(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	int ret;

	if (cfg->daemonize) {
		/* There is no /dev/null in the jail. */
		j->devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (j->devnull_fd < 0) {
			ret = -errno;
			log_err("mount-ns: open(/dev/null): %s", strerror(-ret));
			return ret;
		}
	}
	if (unshare(CLONE_NEWNS)) {
		ret = -errno;
		log_err("mount-ns: unshare(CLONE_NEWNS): %s", strerror(-ret));
		return ret;
	}
	/* Nothing we mount from here on may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		ret = -errno;
		log_err("mount-ns: mount(/, MS_REC|MS_PRIVATE): %s", strerror(-ret));
		return ret;
	}
	/* pivot_root needs the new root to be a mount point. */
	if (mount(j->root, j->root, NULL, MS_BIND, NULL)) {
		ret = -errno;
		log_err("mount-ns: mount(%s, MS_BIND): %s", j->root, strerror(-ret));
		return ret;
	}
	/* The --link sources are host paths, gone after pivot_root: clone them now as
	 * detached mounts and attach them inside the jail later, where their
	 * destinations are resolved within the jail's root and cannot lead out of it. */
	for (unsigned i = 0; i < cfg->n_links; i++) {
		j->link_fds[i] =
		    open_tree(AT_FDCWD, cfg->links[i].src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (j->link_fds[i] < 0) {
			ret = -errno;
			log_err("links: open_tree(%s, OPEN_TREE_CLONE): %s", cfg->links[i].src,
				strerror(-ret));
			return ret;
		}
	}
	if (chdir(j->root)) {
		ret = -errno;
		log_err("mount-ns: chdir(%s): %s", j->root, strerror(-ret));
		return ret;
	}
	if (mkdir("old_root", 0700)) {
		ret = -errno;
		log_err("mount-ns: mkdir(%s/old_root): %s", j->root, strerror(-ret));
		return ret;
	}
	if (syscall(SYS_pivot_root, ".", "old_root")) {
		ret = -errno;
		log_err("mount-ns: pivot_root(%s, old_root): %s", j->root, strerror(-ret));
		rmdir("old_root");
		return ret;
	}
	j->pivoted = true;
	if (chdir("/")) {
		ret = -errno;
		log_err("mount-ns: chdir(/): %s", strerror(-ret));
		return ret;
	}
	if (umount2("/old_root", MNT_DETACH)) {
		ret = -errno;
		log_err("mount-ns: umount2(/old_root, MNT_DETACH): %s", strerror(-ret));
		return ret;
	}
	if (rmdir("/old_root")) {
		ret = -errno;
		log_err("mount-ns: rmdir(/old_root): %s", strerror(-ret));
		return ret;
	}
	return 0;
}

/* --- step 8: device nodes -------------------------------------------------------- */

static int step_devices(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	int ret;

	if (mkdir("/dev", 0755)) {
		ret = -errno;
		log_err("devices: mkdir(/dev): %s", strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < j->n_devs; i++) {
		const struct jail_dev *d = &j->devs[i];
		if (strncmp(d->path, "/dev/net/", 9) == 0 && mkdir("/dev/net", 0755) &&
		    errno != EEXIST) {
			ret = -errno;
			log_err("devices: mkdir(/dev/net): %s", strerror(-ret));
			return ret;
		}
		if (mknod(d->path, S_IFCHR | 0600, makedev(d->major, d->minor))) {
			ret = -errno;
			log_err("devices: mknod(%s, %u:%u): %s", d->path, d->major, d->minor,
				strerror(-ret));
			return ret;
		}
		/* Only the jailed user may open them. */
		if (chown(d->path, cfg->uid, cfg->gid) || chmod(d->path, 0600)) {
			ret = -errno;
			log_err("devices: chown/chmod(%s, %u:%u, 0600): %s", d->path, cfg->uid,
				cfg->gid, strerror(-ret));
			return ret;
		}
		log_debug("devices: created %s (%u:%u)", d->path, d->major, d->minor);
	}
	return 0;
}

/* --- step 9: --link files -------------------------------------------------------- */

static int mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	char *slash;

	snprintf(buf, sizeof(buf), "%s", path);
	slash = strrchr(buf, '/');
	if (slash == buf)
		return 0;
	*slash = '\0';
	return jail_fs_mkdir_p(buf, 0755);
}

static int step_links(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	int ret;

	for (unsigned i = 0; i < cfg->n_links; i++) {
		const struct jail_link *l = &cfg->links[i];
		unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV;
		struct stat st;

		if (fstat(j->link_fds[i], &st)) {
			ret = -errno;
			log_err("links: fstat(%s): %s", l->src, strerror(-ret));
			return ret;
		}
		ret = mkdir_parents(l->dst);
		if (ret) {
			log_err("links: mkdir -p (parent of %s): %s", l->dst, strerror(-ret));
			return ret;
		}
		/* A bind mount needs something of the same kind to cover. */
		if (S_ISDIR(st.st_mode)) {
			ret = mkdir(l->dst, 0755) ? -errno : 0;
		} else {
			int fd = open(l->dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				      0600);
			ret = fd < 0 ? -errno : 0;
			if (fd >= 0)
				close(fd);
		}
		if (ret) {
			log_err("links: create %s: %s", l->dst, strerror(-ret));
			return ret;
		}
		if (move_mount(j->link_fds[i], "", AT_FDCWD, l->dst, MOVE_MOUNT_F_EMPTY_PATH)) {
			ret = -errno;
			log_err("links: move_mount(%s -> %s): %s", l->src, l->dst, strerror(-ret));
			return ret;
		}
		j->link_mounted[i] = true;
		close(j->link_fds[i]);
		j->link_fds[i] = -1;
		if (l->ro)
			flags |= MS_RDONLY;
		if (mount(NULL, l->dst, NULL, flags, NULL)) {
			ret = -errno;
			log_err("links: mount(%s, MS_BIND|MS_REMOUNT%s): %s", l->dst,
				l->ro ? "|MS_RDONLY" : "", strerror(-ret));
			return ret;
		}
		log_debug("links: %s -> %s (%s)", l->src, l->dst, l->ro ? "ro" : "rw");
	}
	/* The jailed thaw creates its API socket in its root, as Firecracker does. */
	if (chown("/", cfg->uid, cfg->gid)) {
		ret = -errno;
		log_err("links: chown(jail root, %u:%u): %s", cfg->uid, cfg->gid, strerror(-ret));
		return ret;
	}
	/* ...or in /run, which Firecracker's jailer makes: firecracker-go-sdk's default
	 * socket is /run/firecracker.socket. */
	if ((mkdir("/run", 0755) && errno != EEXIST) || chown("/run", cfg->uid, cfg->gid)) {
		ret = -errno;
		log_err("links: /run in the jail for %u:%u: %s", cfg->uid, cfg->gid,
			strerror(-ret));
		return ret;
	}
	return 0;
}

/* --- exec file check, before privileges go --------------------------------------- */

static int check_exec(struct jail *j)
{
	char path[PATH_MAX], interp[PATH_MAX];
	struct stat st;
	int fd, ret;

	snprintf(path, sizeof(path), "/%s", j->exec_name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_err("exec: open(%s): %s", path, strerror(-ret));
		return ret;
	}
	/* execve would refuse it only after the privileges are gone, too late to clean
	 * up; check the bits the jailed uid/gid will be judged by (no groups, no caps). */
	if (fstat(fd, &st) == 0) {
		mode_t x = st.st_uid == j->cfg->uid   ? S_IXUSR
			   : st.st_gid == j->cfg->gid ? S_IXGRP
						      : S_IXOTH;
		if (!(st.st_mode & x)) {
			log_err("exec: %s (mode %o, owner %u:%u) is not executable by %u:%u", path,
				st.st_mode & 07777, st.st_uid, st.st_gid, j->cfg->uid, j->cfg->gid);
			close(fd);
			return -EACCES;
		}
	}
	ret = jail_fs_elf_interp(fd, interp, sizeof(interp));
	close(fd);
	if (ret == -ENOEXEC)
		return 0; /* not ELF (a script?): leave it to execve */
	if (ret)
		return ret;
	/* A dynamically linked binary fails inside execve with a bare ENOENT once we
	 * can no longer clean up; say why while we still can. */
	if (interp[0] && access(interp, F_OK)) {
		log_err("exec: %s is dynamically linked and its loader %s is not in the jail: "
			"link it statically, or --link the loader and its libraries",
			j->cfg->exec_file, interp);
		return -ENOENT;
	}
	return 0;
}

/* --- privileges ------------------------------------------------------------------ */

/* The order matters: the bounding set and securebits need CAP_SETPCAP, so they go
 * first; then every capability but SETUID/SETGID; setgroups and setgid need SETGID and
 * must come before setuid, which (uid 0 -> not 0, no keep-caps) clears the rest; a
 * last explicit clear covers --uid 0. */
static int drop_privileges(const struct jail_config *cfg, bool switch_user)
{
	const cap_value_t keep[] = {CAP_SETUID, CAP_SETGID};
	unsigned secbits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
			   SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
			   SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	cap_t caps = NULL, none = NULL;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int ret = 0, last;

	/* Root keeps no special power after exec, whatever the uid. */
	if (cap_set_secbits(secbits)) {
		ret = -errno;
		log_err("privileges: prctl(PR_SET_SECUREBITS, 0x%x): %s", secbits, strerror(-ret));
		return ret;
	}
	/* The kernel tells where its capability list ends (EINVAL past the last). */
	for (last = 0; last < 64 && prctl(PR_CAPBSET_READ, last, 0, 0, 0) >= 0; last++) {
		if (cap_drop_bound((cap_value_t)last)) {
			ret = -errno;
			log_err("privileges: prctl(PR_CAPBSET_DROP, %d): %s", last, strerror(-ret));
			return ret;
		}
	}
	if (cap_reset_ambient()) {
		ret = -errno;
		log_err("privileges: prctl(PR_CAP_AMBIENT_CLEAR_ALL): %s", strerror(-ret));
		return ret;
	}
	caps = cap_init();
	none = cap_init();
	if (!caps || !none) {
		ret = -ENOMEM;
		goto out;
	}
	if (switch_user && (cap_set_flag(caps, CAP_EFFECTIVE, 2, keep, CAP_SET) ||
			    cap_set_flag(caps, CAP_PERMITTED, 2, keep, CAP_SET))) {
		ret = -EINVAL;
		goto out;
	}
	if (cap_set_proc(caps)) {
		ret = -errno;
		log_err("privileges: cap_set_proc(setuid,setgid only): %s", strerror(-ret));
		goto out;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		ret = -errno;
		log_err("privileges: prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(-ret));
		goto out;
	}
	if (switch_user) {
		if (setgroups(0, NULL)) {
			ret = -errno;
			log_err("privileges: setgroups(0): %s", strerror(-ret));
			goto out;
		}
		if (setresgid(cfg->gid, cfg->gid, cfg->gid)) {
			ret = -errno;
			log_err("privileges: setresgid(%u): %s", cfg->gid, strerror(-ret));
			goto out;
		}
		if (setresuid(cfg->uid, cfg->uid, cfg->uid)) {
			ret = -errno;
			log_err("privileges: setresuid(%u): %s", cfg->uid, strerror(-ret));
			goto out;
		}
	}
	if (cap_set_proc(none)) {
		ret = -errno;
		log_err("privileges: cap_set_proc(empty): %s", strerror(-ret));
		goto out;
	}

	/* Check the result rather than trust the sequence. */
	cap_free(caps);
	caps = cap_get_proc();
	if (!caps || cap_compare(caps, none) != 0) {
		log_err("privileges: capabilities remain after dropping them");
		ret = -EPERM;
		goto out;
	}
	for (int c = 0; c < last; c++) {
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 0 ||
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) != 0) {
			log_err("privileges: capability %d still in the bounding or ambient set",
				c);
			ret = -EPERM;
			goto out;
		}
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		log_err("privileges: no_new_privs is not set");
		ret = -EPERM;
		goto out;
	}
	if (switch_user) {
		if (getresuid(&ru, &eu, &su) || getresgid(&rg, &eg, &sg) || ru != cfg->uid ||
		    eu != cfg->uid || su != cfg->uid || rg != cfg->gid || eg != cfg->gid ||
		    sg != cfg->gid || getgroups(0, NULL) != 0) {
			log_err("privileges: uid/gid/groups are not %u/%u/none", cfg->uid,
				cfg->gid);
			ret = -EPERM;
			goto out;
		}
		if (cfg->uid != 0 && setuid(0) == 0) {
			log_err("privileges: setuid(0) succeeded after the drop");
			abort();
		}
	}
out:
	if (caps)
		cap_free(caps);
	if (none)
		cap_free(none);
	return ret;
}

/* --- unwinding ------------------------------------------------------------------- */

static void jail_close_outside_fds(struct jail *j)
{
	jail_cg_close(&j->cgs);
	if (j->thaw_fd >= 0)
		close(j->thaw_fd);
	j->thaw_fd = -1;
	for (unsigned i = 0; i < j->cfg->n_links; i++) {
		if (j->link_fds[i] >= 0)
			close(j->link_fds[i]);
		j->link_fds[i] = -1;
	}
}

static void jail_unwind(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	int ret;

	/* In our namespace a mounted file cannot be unlinked (EBUSY). */
	for (unsigned i = 0; i < cfg->n_links; i++) {
		if (j->link_mounted[i] && umount2(cfg->links[i].dst, MNT_DETACH))
			log_warn("unwind: umount2(%s): %s", cfg->links[i].dst, strerror(errno));
		j->link_mounted[i] = false;
	}
	jail_cg_unwind(&j->cgs);
	if (j->id_created) {
		ret = jail_fs_remove_tree(j->thaw_fd, cfg->id);
		if (ret)
			log_warn("unwind: remove %s/%s/%s: %s", cfg->base, j->exec_name, cfg->id,
				 strerror(-ret));
		j->id_created = false;
	}
	jail_close_outside_fds(j);
}

/* --- step 10: PID namespace, fork, wait ----------------------------------------- */

static void forward_signal(int sig)
{
	if (forward_pid > 0)
		kill(forward_pid, sig);
}

/* What the waiting parent passes on to thaw. */
static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static void forwarded_set(sigset_t *set)
{
	sigemptyset(set);
	for (unsigned i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(set, forwarded[i]);
}

static void write_pid_file(struct jail *j, pid_t pid)
{
	char path[PATH_MAX], buf[24];
	struct stat st;
	int fd, n;

	/* Named as Firecracker names it: /<exec file name>.pid in the jail's root. */
	snprintf(path, sizeof(path), "/%s.pid", j->exec_name);
	/* The root belongs to the jailed user, who could have put a FIFO or a symlink
	 * there: never block, never follow, write only into a regular file. */
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_warn("pid-ns: open(%s): %s", path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || ftruncate(fd, 0)) {
		log_warn("pid-ns: %s is not a regular file we can write", path);
		close(fd);
		return;
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)pid);
	if (write(fd, buf, (size_t)n) != n)
		log_warn("pid-ns: write(%s): %s", path, strerror(errno));
	close(fd);
}

static void exec_target(struct jail *j, int report_fd) __attribute__((noreturn));
static void log_step_times(const struct jail *j);

/* Parent of the fork: learns whether the child reached execve, then either leaves
 * (--daemonize) or waits and exits with the child's status. It leaves with _exit:
 * it has nothing to flush, and exit-time hooks (a sanitizer's leak check reading
 * /proc) cannot work inside the jail. */
static int parent_wait(struct jail *j, pid_t child, int rfd)
{
	struct sigaction sa = {.sa_handler = forward_signal};
	int child_err = 0, status;
	sigset_t set;
	ssize_t n;

	/* The forwarded signals have been blocked since before the fork: one sent as
	 * soon as thaw runs (or even before) waits for the handler instead of killing
	 * the parent and leaving thaw without its signal. */
	forward_pid = child;
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	forwarded_set(&set);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	do {
		n = read(rfd, &child_err, sizeof(child_err));
	} while (n < 0 && errno == EINTR);
	close(rfd);
	if (n == (ssize_t)sizeof(child_err)) {
		/* The child failed before execve and said so; it is gone, so the cgroups
		 * are empty again once we step out of them. */
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		jail_unwind(j);
		return child_err < 0 ? child_err : -EIO;
	}
	/* EOF: the pipe closed on execve (O_CLOEXEC); the jail is in thaw's hands. */
	jail_close_outside_fds(j);
	log_debug("pid-ns: child %d running %s", (int)child, j->exec_name);
	if (j->cfg->daemonize)
		_exit(0);

	/* The waiting parent needs no power at all. It becomes the jailed user too: a
	 * process without CAP_KILL may only signal its own uid, and thaw (in a PID
	 * namespace where the parent is invisible) cannot signal or trace it back. */
	if (drop_privileges(j->cfg, true))
		log_warn("pid-ns: parent keeps its privileges");
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			log_err("pid-ns: waitpid(%d): %s", (int)child, strerror(errno));
			_exit(1);
		}
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		/* Die the same way, so our parent sees what happened to thaw. */
		sigaction(sig, &dfl, NULL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		_exit(128 + sig);
	}
	_exit(1);
}

static int step_pid_ns_and_exec(struct jail *j)
{
	const struct jail_config *cfg = j->cfg;
	int pfd[2], ret;
	sigset_t fwd;
	pid_t pid;

	ret = check_exec(j);
	if (ret)
		return ret;
	if (!cfg->new_pid_ns && !cfg->daemonize) {
		/* thaw takes over this very process. */
		ret = drop_privileges(cfg, true);
		if (ret)
			return ret;
		jail_close_outside_fds(j);
		exec_target(j, -1);
	}
	if (cfg->new_pid_ns && unshare(CLONE_NEWPID)) {
		ret = -errno;
		log_err("pid-ns: unshare(CLONE_NEWPID): %s", strerror(-ret));
		return ret;
	}
	if (pipe2(pfd, O_CLOEXEC)) {
		ret = -errno;
		log_err("pid-ns: pipe2: %s", strerror(-ret));
		return ret;
	}
	forwarded_set(&fwd);
	sigprocmask(SIG_BLOCK, &fwd, NULL);
	/* The child's CPU clock starts from zero: it tells thaw what we spent. */
	j->parent_cpu_ns = cpu_now_ns();
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		log_err("pid-ns: fork: %s", strerror(-ret));
		sigprocmask(SIG_UNBLOCK, &fwd, NULL);
		close(pfd[0]);
		close(pfd[1]);
		return ret;
	}
	if (pid > 0) {
		close(pfd[1]);
		/* Before thaw runs, so the file is ours when it starts. */
		write_pid_file(j, pid);
		return parent_wait(j, pid, pfd[0]);
	}
	/* Child: pid 1 of the new namespace when asked. The parent unwinds for us. */
	sigprocmask(SIG_UNBLOCK, &fwd, NULL);
	close(pfd[0]);
	jail_cg_close(&j->cgs);
	if (j->thaw_fd >= 0)
		close(j->thaw_fd);
	j->thaw_fd = -1;
	if (cfg->daemonize && setsid() < 0) {
		ret = -errno;
		log_err("pid-ns: setsid: %s", strerror(-ret));
	} else {
		ret = drop_privileges(cfg, true);
	}
	if (ret) {
		if (write(pfd[1], &ret, sizeof(ret)) < 0)
			_exit(127);
		_exit(127);
	}
	exec_target(j, pfd[1]);
}

/* --- step 11: exec ------------------------------------------------------------------ */

/* The arguments exec_target puts before the user's, as Firecracker's jailer does. */
#define JAIL_FC_ARGS 8

/* Runs the exec file; on failure reports -errno on report_fd (the fork parent's
 * pipe, -1 without one) and exits 127. */
static void exec_target(struct jail *j, int report_fd)
{
	const struct jail_config *cfg = j->cfg;
	char path[PATH_MAX];
	char *argv[JAIL_MAX_EXEC_ARGS + JAIL_FC_ARGS + 2];
	static char a_id[] = "--id", a_start[] = "--start-time-us", a_cpu[] = "--start-time-cpu-us",
		    a_parent[] = "--parent-cpu-time-us";
	char t_start[24], t_cpu[24], t_parent[24];
	char *envp[] = {NULL};
	int n = 0, err;

	snprintf(path, sizeof(path), "/%s", j->exec_name);
	argv[n++] = (char *)j->exec_name;
	/* What Firecracker's jailer tells the VMM before the user's arguments: the id and
	 * when the jail began (monotonic wall clock; CPU time here and in a parent that
	 * forked us), for the metrics' process_startup_time_us and _cpu_us. */
	snprintf(t_start, sizeof(t_start), "%llu", (unsigned long long)(j->t0 / 1000));
	snprintf(t_cpu, sizeof(t_cpu), "%llu", (unsigned long long)(cpu_now_ns() / 1000));
	snprintf(t_parent, sizeof(t_parent), "%llu",
		 (unsigned long long)((j->parent_cpu_ns + cpu_now_ns()) / 1000));
	argv[n++] = a_id;
	argv[n++] = (char *)cfg->id;
	argv[n++] = a_start;
	argv[n++] = t_start;
	argv[n++] = a_cpu;
	argv[n++] = t_cpu;
	argv[n++] = a_parent;
	argv[n++] = t_parent;
	for (int i = 0; i < cfg->n_exec_args; i++)
		argv[n++] = cfg->exec_args[i];
	argv[n] = NULL;
	log_step_times(j);
	if (cfg->daemonize && j->devnull_fd >= 0) {
		dup2(j->devnull_fd, 0);
		dup2(j->devnull_fd, 1);
		dup2(j->devnull_fd, 2);
		close(j->devnull_fd);
	}
	execve(path, argv, envp);
	err = -errno;
	if (report_fd >= 0) {
		/* The parent still holds its privileges and unwinds the jail. */
		log_err("exec: execve(%s): %s", path, strerror(-err));
		if (write(report_fd, &err, sizeof(err)) < 0)
			_exit(127);
	} else {
		log_err("exec: execve(%s): %s; the jail is left behind: run thaw-jailer "
			"--cleanup --id %s",
			path, strerror(-err), cfg->id);
	}
	_exit(127);
}

static int step_cgroups(struct jail *j)
{
	return jail_cg_apply(j->cfg, &j->cgs);
}

/* In the order the issue and docs/jailer.md give; "exec" covers the PID namespace,
 * the privilege drop and execve. */
static const struct {
	const char *name;
	int (*run)(struct jail *j);
} steps[JAIL_STEPS] = {
    {"validate", step_validate},    {"environment", step_environment}, {"jail-dir", step_jail_dir},
    {"rlimits", step_rlimits},	    {"cgroups", step_cgroups},	       {"netns", step_netns},
    {"mount-ns", step_mount_ns},    {"devices", step_devices},	       {"links", step_links},
    {"exec", step_pid_ns_and_exec},
};

/* One debug line with the time of each step, for bench_jail and for users
 * wondering where the time goes. */
static void log_step_times(const struct jail *j)
{
	char line[512];
	size_t off = 0;
	uint64_t prev = j->t0, now = now_ns();

	for (unsigned i = 0; i < JAIL_STEPS && off < sizeof(line); i++) {
		uint64_t end = i + 1 < JAIL_STEPS ? j->step_end[i] : now;
		off += (size_t)snprintf(line + off, sizeof(line) - off, " %s=%llu", steps[i].name,
					(unsigned long long)((end - prev) / 1000));
		prev = end;
	}
	log_debug("timing (us):%s total=%llu", line, (unsigned long long)((now - j->t0) / 1000));
}

int jail_run(const struct jail_config *cfg)
{
	struct jail j = {.cfg = cfg, .thaw_fd = -1, .devnull_fd = -1, .t0 = now_ns()};
	int ret = 0;

	for (unsigned i = 0; i < JAIL_MAX_LINKS; i++)
		j.link_fds[i] = -1;
	j.exec_name = jail_exec_name(cfg);

	/* The last step ends in execve and only comes back on failure. */
	for (unsigned i = 0; i < JAIL_STEPS && !ret; i++) {
		ret = steps[i].run(&j);
		j.step_end[i] = now_ns();
	}
	jail_unwind(&j);
	if (j.devnull_fd >= 0)
		close(j.devnull_fd);
	return ret;
}

/* A process still rooted in the jail (with or without cgroups, whatever the pid file
 * says): /proc/<pid>/root leads to the directory it was pivoted into. -EBUSY (logged)
 * when one is found. */
static int find_jailed_process(const char *dir)
{
	char path[PATH_MAX + 8];
	struct stat jail_root, st;
	struct dirent *de;
	DIR *proc;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/root", dir);
	if (lstat(path, &jail_root) || !S_ISDIR(jail_root.st_mode))
		return 0;
	proc = opendir("/proc");
	if (!proc) {
		ret = -errno;
		log_err("cleanup: opendir(/proc): %s", strerror(-ret));
		return ret;
	}
	while ((de = readdir(proc))) {
		char p[64];
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%.20s/root", de->d_name);
		if (stat(p, &st) == 0 && st.st_dev == jail_root.st_dev &&
		    st.st_ino == jail_root.st_ino) {
			log_err("cleanup: jail is still running: pid %s has %s as its root",
				de->d_name, path);
			ret = -EBUSY;
			break;
		}
	}
	closedir(proc);
	return ret;
}

/* The folder holding jail `id`: <base>/<--exec-file's name>, or without --exec-file the
 * one folder of the base that has an `id` in it (JAIL_DEFAULT_EXEC_NAME when none has:
 * nothing to remove but cgroups). Two candidates are refused: --exec-file must say. */
static int cleanup_folder(const struct jail_config *cfg, char *out, size_t len)
{
	struct dirent *e;
	unsigned found = 0;
	struct stat st;
	DIR *d;

	snprintf(out, len, "%s/%s", cfg->base, jail_exec_name(cfg));
	if (cfg->exec_file)
		return 0;
	d = opendir(cfg->base);
	if (!d)
		return 0; /* no base: nothing of the jail on disk */
	while ((e = readdir(d))) {
		char p[PATH_MAX];

		if (e->d_name[0] == '.' ||
		    snprintf(p, sizeof(p), "%s/%s/%s", cfg->base, e->d_name, cfg->id) >=
			(int)sizeof(p) ||
		    lstat(p, &st) || !S_ISDIR(st.st_mode))
			continue;
		if (found++) {
			log_err("cleanup: jails named '%s' in more than one folder of %s: give "
				"--exec-file to say which",
				cfg->id, cfg->base);
			closedir(d);
			return -EEXIST;
		}
		snprintf(out, len, "%s/%s", cfg->base, e->d_name);
	}
	closedir(d);
	return 0;
}

int jail_cleanup(const struct jail_config *cfg)
{
	char dir[PATH_MAX], thaw[PATH_MAX], first[PATH_MAX];
	unsigned cg_removed;
	int thaw_fd, ret, n;
	bool existed;
	struct stat st;

	ret = cleanup_folder(cfg, thaw, sizeof(thaw));
	if (ret)
		return ret;
	if (snprintf(dir, sizeof(dir), "%s/%s", thaw, cfg->id) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	ret = find_jailed_process(dir);
	if (ret)
		return ret;
	ret = jail_cg_cleanup(cfg, &cg_removed);
	if (ret)
		return ret;
	/* The jail's mounts live in its own namespace and die with it; anything still
	 * seen here was mounted by someone else, and we would rather not delete through
	 * it. */
	for (int tries = 0; (n = jail_fs_mounts_below(dir, first, sizeof(first))) > 0; tries++) {
		if (tries == 16) {
			log_err("cleanup: %s is still mounted", first);
			return -EBUSY;
		}
		log_warn("cleanup: unmounting %s", first);
		if (umount2(first, MNT_DETACH)) {
			ret = -errno;
			log_err("cleanup: umount2(%s, MNT_DETACH): %s", first, strerror(-ret));
			return ret;
		}
	}
	if (n < 0) {
		log_err("cleanup: read /proc/self/mountinfo: %s", strerror(-n));
		return n;
	}
	thaw_fd = open(thaw, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (thaw_fd < 0) {
		if (errno != ENOENT) {
			ret = -errno;
			log_err("cleanup: open(%s): %s", thaw, strerror(-ret));
			return ret;
		}
		existed = false;
	} else {
		existed = fstatat(thaw_fd, cfg->id, &st, AT_SYMLINK_NOFOLLOW) == 0;
		ret = jail_fs_remove_tree(thaw_fd, cfg->id);
		if (ret) {
			log_err("cleanup: remove %s: %s", dir, strerror(-ret));
			close(thaw_fd);
			return ret;
		}
		if (fstatat(thaw_fd, cfg->id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			log_err("cleanup: %s is still there", dir);
			close(thaw_fd);
			return -EEXIST;
		}
		close(thaw_fd);
	}
	n = jail_fs_mounts_below(dir, first, sizeof(first));
	if (n != 0) {
		log_err("cleanup: %s still mounted after cleanup", n > 0 ? first : dir);
		return -EBUSY;
	}
	if (existed || cg_removed)
		log_info("cleanup: jail '%s' removed (%s%s, %u cgroup dirs), nothing mounted",
			 cfg->id, existed ? "" : "no ", dir, cg_removed);
	else
		log_info("cleanup: nothing to remove for jail '%s'", cfg->id);
	return 0;
}
