/* thaw-jailer: argument checks (pure), then the real binary from the build directory
 * jailing tests/integration/jailer_probe.c as root and looking at the result from
 * both sides. Root-only tests skip with a message when not root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jailer/jailer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UID "12345"
#define GID "23456"

static char jailer[PATH_MAX], probe[PATH_MAX];
static char base[64]; /* mkdtemp name: short, so paths built on it fit */
static int id_seq;

/* --- pure argument checks ------------------------------------------------------ */

static void id_check_accepts_letters_digits_hyphens(void **state)
{
	char id64[65];

	memset(id64, 'a', 64);
	id64[64] = '\0';
	assert_int_equal(jail_id_check("vm-1"), 0);
	assert_int_equal(jail_id_check("551e7604-e35c-42b3-b825-416853441234"), 0);
	assert_int_equal(jail_id_check(id64), 0);
}

static void id_check_rejects_slash_dots_empty_and_too_long(void **state)
{
	char id65[66];

	memset(id65, 'a', 65);
	id65[65] = '\0';
	assert_int_equal(jail_id_check(""), -EINVAL);
	assert_int_equal(jail_id_check("a/b"), -EINVAL);
	assert_int_equal(jail_id_check(".."), -EINVAL);
	assert_int_equal(jail_id_check("a_b"), -EINVAL);
	assert_int_equal(jail_id_check("a b"), -EINVAL);
	assert_int_equal(jail_id_check("\xc3\xa9t\xc3\xa9"), -EINVAL);
	assert_int_equal(jail_id_check(id65), -EINVAL);
}

static void path_check_wants_absolute_without_dotdot(void **state)
{
	assert_int_equal(jail_path_check("/srv/jailer"), 0);
	assert_int_equal(jail_path_check("/a/..b/c.."), 0);
	assert_int_equal(jail_path_check("srv/jailer"), -EINVAL);
	assert_int_equal(jail_path_check(""), -EINVAL);
	assert_int_equal(jail_path_check("/srv/../etc"), -EINVAL);
	assert_int_equal(jail_path_check("/srv/.."), -EINVAL);
}

static void rlimit_names_map_to_resources(void **state)
{
	assert_int_equal(jail_rlimit_resource("fsize"), RLIMIT_FSIZE);
	assert_int_equal(jail_rlimit_resource("no-file"), RLIMIT_NOFILE);
	assert_int_equal(jail_rlimit_resource("as"), RLIMIT_AS);
	assert_int_equal(jail_rlimit_resource("nofile"), -1);
}

static void link_spec_defaults_to_basename_and_read_only(void **state)
{
	struct jail_link l;

	assert_int_equal(jail_link_parse("/snaps/vm.snap", &l), 0);
	assert_string_equal(l.src, "/snaps/vm.snap");
	assert_string_equal(l.dst, "/vm.snap");
	assert_true(l.ro);
	assert_int_equal(jail_link_parse("/d/rootfs.ext4:rw", &l), 0);
	assert_string_equal(l.dst, "/rootfs.ext4");
	assert_false(l.ro);
	assert_int_equal(jail_link_parse("/d/a.img:disk/b.img:rw", &l), 0);
	assert_string_equal(l.src, "/d/a.img");
	assert_string_equal(l.dst, "/disk/b.img");
	assert_false(l.ro);
	assert_int_equal(jail_link_parse("/d/a.img:/x:xx", &l), -EINVAL);
	assert_int_equal(jail_link_parse("/d/a.img:/dev/kvm", &l), -EINVAL);
	assert_int_equal(jail_link_parse("/d/a.img:/../etc/passwd", &l), -EINVAL);
	assert_int_equal(jail_link_parse("d/a.img", &l), -EINVAL);
}

static int parse(struct jail_config *cfg, const char *const *args)
{
	char *argv[64];
	int n = 0;

	argv[n++] = (char *)"thaw-jailer";
	while (*args)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return jail_parse_args(n, argv, cfg);
}

static void parse_args_collects_everything(void **state)
{
	static struct jail_config cfg;
	const char *args[] = {"--id",
			      "vm-7",
			      "--exec-file",
			      "/usr/bin/thaw",
			      "--uid",
			      "123",
			      "--gid",
			      "100",
			      "--cgroup",
			      "pids.max=5",
			      "--cgroup",
			      "memory.limit_in_bytes=64M",
			      "--resource-limit",
			      "no-file=1024",
			      "--resource-limit",
			      "fsize=unlimited",
			      "--link",
			      "/s/x.snap",
			      "--new-pid-ns",
			      "--",
			      "--api-sock",
			      "/run/thaw.sock",
			      NULL};

	assert_int_equal(parse(&cfg, args), 0);
	assert_string_equal(cfg.id, "vm-7");
	assert_int_equal(cfg.uid, 123);
	assert_int_equal(cfg.gid, 100);
	assert_string_equal(cfg.base, JAIL_DEFAULT_BASE);
	assert_int_equal(cfg.n_cgroups, 2);
	assert_string_equal(cfg.cgroups[1].controller, "memory");
	assert_string_equal(cfg.cgroups[1].value, "64M");
	assert_int_equal(cfg.n_rlimits, 2);
	assert_int_equal(cfg.rlimits[0].value, 1024);
	assert_true(cfg.rlimits[1].value == RLIM_INFINITY);
	assert_int_equal(cfg.n_links, 1);
	assert_true(cfg.new_pid_ns);
	assert_false(cfg.daemonize);
	assert_int_equal(cfg.n_exec_args, 2);
	assert_string_equal(cfg.exec_args[0], "--api-sock");
}

static void parse_args_rejects_bad_input(void **state)
{
	static struct jail_config cfg;
	static const char *const bad[][12] = {
	    {"--exec-file", "/x", "--uid", "1", "--gid", "1", NULL}, /* no id */
	    {"--id", "a/b", "--exec-file", "/x", "--uid", "1", "--gid", "1", NULL},
	    {"--id", "..", "--exec-file", "/x", "--uid", "1", "--gid", "1", NULL},
	    {"--id", "a", "--exec-file", "x", "--uid", "1", "--gid", "1", NULL},
	    {"--id", "a", "--exec-file", "/x", "--gid", "1", NULL}, /* no uid */
	    {"--id", "a", "--exec-file", "/x", "--uid", "-1", "--gid", "1", NULL},
	    {"--id", "a", "--exec-file", "/x", "--uid", "1", "--gid", "1", "--cgroup", "pidsmax=5",
	     NULL},
	    {"--id", "a", "--exec-file", "/x", "--uid", "1", "--gid", "1", "--cgroup",
	     "cgroup.procs=1", NULL},
	    {"--id", "a", "--exec-file", "/x", "--uid", "1", "--gid", "1", "--cgroup", "pids.max",
	     NULL},
	    {"--id", "a", "--exec-file", "/x", "--uid", "1", "--gid", "1", "--resource-limit",
	     "files=3", NULL},
	    {"--id", "a", "--exec-file", "/x", "--uid", "1", "--gid", "1", "--chroot-base",
	     "/srv/../etc", NULL},
	    {"--id", "a", "--exec-file", "/x", "--uid", "1", "--gid", "1", "stray", NULL},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(&cfg, bad[i]);
		if (ret != -EINVAL)
			fail_msg("bad argument set %zu accepted (%d)", i, ret);
	}
}

/* --- running the real jailer --------------------------------------------------- */

struct result {
	int status;
	char out[32768];
	char err[8192];
};

static bool root_ready(void)
{
	if (geteuid() != 0) {
		print_message(
		    "SKIPPED: thaw-jailer tests need root (namespaces, cgroups, mknod)\n");
		return false;
	}
	if (access(jailer, X_OK) || access(probe, X_OK)) {
		print_message("SKIPPED: %s or %s not built (make build/tests/test_jailer)\n",
			      jailer, probe);
		return false;
	}
	return true;
}

#define NEED_ROOT()                                                                                \
	do {                                                                                       \
		if (!root_ready()) {                                                               \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static void read_all(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	lseek(fd, 0, SEEK_SET);
	while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
}

static void next_id(char *id, size_t len)
{
	snprintf(id, len, "tj-%d-%d", (int)getpid(), ++id_seq);
}

/* jailer args: fixed head, then `extra` (NULL-terminated), "--", `pargs`. */
static int build_argv(char **argv, const char *id, const char *const *extra,
		      const char *const *pargs)
{
	int n = 0;

	argv[n++] = jailer;
	argv[n++] = (char *)"--id";
	argv[n++] = (char *)id;
	argv[n++] = (char *)"--exec-file";
	argv[n++] = probe;
	argv[n++] = (char *)"--uid";
	argv[n++] = (char *)UID;
	argv[n++] = (char *)"--gid";
	argv[n++] = (char *)GID;
	argv[n++] = (char *)"--chroot-base";
	argv[n++] = base;
	for (; extra && *extra; extra++)
		argv[n++] = (char *)*extra;
	argv[n++] = (char *)"--";
	for (; pargs && *pargs; pargs++)
		argv[n++] = (char *)*pargs;
	argv[n] = NULL;
	return n;
}

static void run_argv(struct result *r, char **argv)
{
	int ofd = memfd_create("out", MFD_CLOEXEC), efd = memfd_create("err", MFD_CLOEXEC);
	pid_t pid;

	assert_true(ofd >= 0 && efd >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	assert_int_equal(waitpid(pid, &r->status, 0), pid);
	read_all(ofd, r->out, sizeof(r->out));
	read_all(efd, r->err, sizeof(r->err));
	close(ofd);
	close(efd);
}

static void run_jail(struct result *r, const char *id, const char *const *extra,
		     const char *const *pargs)
{
	char *argv[96];

	build_argv(argv, id, extra, pargs);
	run_argv(r, argv);
}

static void run_cleanup(struct result *r, const char *id)
{
	/* The exec file names the jail's folder, so cleanup is told it too. */
	char *argv[] = {
	    jailer, (char *)"--cleanup",   (char *)"--id", (char *)id, (char *)"--chroot-base",
	    base,   (char *)"--exec-file", probe,	   NULL};
	run_argv(r, argv);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p;) {
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static int count_prefix(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p;) {
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

#define assert_line(text, line)                                                                    \
	do {                                                                                       \
		if (!has_line((text), (line)))                                                     \
			fail_msg("missing line '%s' in:\n%s", (line), (text));                     \
	} while (0)

#define assert_exited(r, code)                                                                     \
	do {                                                                                       \
		if (!WIFEXITED((r)->status) || WEXITSTATUS((r)->status) != (code))                 \
			fail_msg("status 0x%x, wanted exit %d; stderr:\n%s", (r)->status, (code),  \
				 (r)->err);                                                        \
	} while (0)

static bool jail_dir_exists(const char *id)
{
	char p[PATH_MAX];
	struct stat st;

	/* Firecracker's layout: the folder is named after the exec file. */
	snprintf(p, sizeof(p), "%s/jailer_probe/%s", base, id);
	return lstat(p, &st) == 0;
}

/* Any <cgroup mount>/thaw/<id> directory, in v1 or v2. */
static bool cgroup_dir_exists(const char *id)
{
	char dev[256], dir[PATH_MAX], type[64], p[PATH_MAX + 80];
	bool found = false;
	struct stat st;
	FILE *f = fopen("/proc/mounts", "re");

	assert_non_null(f);
	while (fscanf(f, "%255s %4095s %63s %*s %*d %*d", dev, dir, type) == 3) {
		if (strncmp(type, "cgroup", 6))
			continue;
		snprintf(p, sizeof(p), "%s/thaw/%s", dir, id);
		found |= stat(p, &st) == 0;
	}
	fclose(f);
	return found;
}

/* Entries in <base>/jailer_probe: every test cleans up, so any is something left behind. */
static int jails_in_base(void)
{
	char p[PATH_MAX];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(p, sizeof(p), "%s/jailer_probe", base);
	d = opendir(p);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* Directories named like our test ids under any <cgroup mount>/thaw. */
static int our_cgroup_dirs(void)
{
	char dev[256], dir[PATH_MAX], type[64], p[PATH_MAX + 8], prefix[32];
	struct dirent *de;
	int n = 0;
	FILE *f = fopen("/proc/mounts", "re");

	assert_non_null(f);
	snprintf(prefix, sizeof(prefix), "tj-%d-", (int)getpid());
	while (fscanf(f, "%255s %4095s %63s %*s %*d %*d", dev, dir, type) == 3) {
		DIR *d;
		if (strncmp(type, "cgroup", 6))
			continue;
		snprintf(p, sizeof(p), "%s/thaw", dir);
		d = opendir(p);
		while (d && (de = readdir(d)))
			n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
		if (d)
			closedir(d);
	}
	fclose(f);
	return n;
}

static int mounts_under_base(void)
{
	char line[PATH_MAX * 2];
	int n = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, base))
			n++;
	fclose(f);
	return n;
}

static void cleanup_ok(const char *id)
{
	struct result *r = malloc(sizeof(*r));

	assert_non_null(r);
	run_cleanup(r, id);
	assert_exited(r, 0);
	assert_false(jail_dir_exists(id));
	assert_false(cgroup_dir_exists(id));
	free(r);
}

static bool host_has_misc(const char *name)
{
	char dev[64];
	int minor;
	bool found = false;
	FILE *f = fopen("/proc/misc", "re");

	if (!f)
		return false;
	while (fscanf(f, "%d %63s", &minor, dev) == 2)
		found |= strcmp(dev, name) == 0;
	fclose(f);
	return found;
}

/* A probe that reports, then waits on stdin so the host side can look at it. */
struct waiting {
	pid_t pid;
	int in, out;
	char text[32768];
};

static void spawn_waiting_args(struct waiting *w, const char *id, const char *const *extra,
			       const char *const *pargs)
{
	char *argv[96];
	int in[2], out[2];
	size_t n = 0;

	build_argv(argv, id, extra, pargs);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	w->pid = fork();
	assert_true(w->pid >= 0);
	if (w->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(argv[0], argv);
		_exit(126);
	}
	close(in[0]);
	close(out[1]);
	w->in = in[1];
	w->out = out[0];
	while (n + 1 < sizeof(w->text) && !strstr(w->text, "\nend\n")) {
		ssize_t r = read(w->out, w->text + n, sizeof(w->text) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		w->text[n] = '\0';
	}
	assert_non_null(strstr(w->text, "\nend\n"));
}

static void spawn_waiting(struct waiting *w, const char *id, const char *const *extra)
{
	const char *pargs[] = {"--report", "--wait", NULL};

	spawn_waiting_args(w, id, extra, pargs);
}

static int release_waiting(struct waiting *w)
{
	int status;

	close(w->in);
	close(w->out);
	assert_int_equal(waitpid(w->pid, &status, 0), w->pid);
	return status;
}

static void proc_status_of(pid_t pid, char *buf, size_t len)
{
	char p[64];
	int fd;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	read_all(fd, buf, len);
	close(fd);
}

static void jailed_process_has_no_capabilities_and_the_given_ids(void **state)
{
	const char *extra[] = {"--cgroup", "pids.max=20", NULL};
	static struct waiting w;
	char status[8192], id[64], path[PATH_MAX], procs[256];
	int fd;

	NEED_ROOT();
	next_id(id, sizeof(id));
	spawn_waiting(&w, id, extra);
	/* The kernel's view, from outside (no /proc inside the jail). */
	proc_status_of(w.pid, status, sizeof(status));
	assert_line(status, "CapInh:\t0000000000000000");
	assert_line(status, "CapPrm:\t0000000000000000");
	assert_line(status, "CapEff:\t0000000000000000");
	assert_line(status, "CapBnd:\t0000000000000000");
	assert_line(status, "CapAmb:\t0000000000000000");
	assert_line(status, "NoNewPrivs:\t1");
	assert_line(status, "Uid:\t" UID "\t" UID "\t" UID "\t" UID);
	assert_line(status, "Gid:\t" GID "\t" GID "\t" GID "\t" GID);
	assert_line(status, "Groups:\t ");
	/* And the process's own view. */
	assert_line(w.text, "CapEff:\t0000000000000000");
	assert_line(w.text, "CapBnd:\t0000000000000000");
	assert_line(w.text, "CapAmb:\t0000000000000000");
	assert_line(w.text, "NoNewPrivs:\t1");
	assert_line(w.text, "uid " UID " " UID " " UID);
	assert_line(w.text, "gid " GID " " GID " " GID);
	assert_line(w.text, "groups 0");
	assert_line(w.text, "environ (empty)");
	assert_line(w.text, "fd3 closed");
	/* What Firecracker's jailer passes the VMM first: the id and the start times. */
	{
		char want[96];

		snprintf(want, sizeof(want), "jailer-arg id %s", id);
		assert_line(w.text, want);
		assert_non_null(strstr(w.text, "\njailer-arg start-time-us "));
		assert_non_null(strstr(w.text, "\njailer-arg start-time-cpu-us "));
		assert_non_null(strstr(w.text, "\njailer-arg parent-cpu-time-us "));
	}
	/* It runs in its cgroup. */
	snprintf(path, sizeof(path), "/sys/fs/cgroup/pids/thaw/%s/cgroup.procs", id);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		char want[32];
		read_all(fd, procs, sizeof(procs));
		close(fd);
		snprintf(want, sizeof(want), "%d", (int)w.pid);
		assert_line(procs, want);
	} else {
		print_message("note: no v1 pids hierarchy; cgroup membership not checked here\n");
	}
	assert_int_equal(release_waiting(&w), 0);
	cleanup_ok(id);
}

static void uid_zero_jail_still_has_no_capabilities(void **state)
{
	const char *extra[] = {NULL};
	static struct waiting w;
	char status[8192], id[64];
	char *argv[96];

	NEED_ROOT();
	next_id(id, sizeof(id));
	(void)argv;
	/* Same as spawn_waiting but with uid/gid 0: overriding by a later --uid. */
	{
		const char *ex[] = {"--uid", "0", "--gid", "0", NULL};
		spawn_waiting(&w, id, ex);
	}
	(void)extra;
	proc_status_of(w.pid, status, sizeof(status));
	assert_line(status, "Uid:\t0\t0\t0\t0");
	assert_line(status, "CapPrm:\t0000000000000000");
	assert_line(status, "CapEff:\t0000000000000000");
	assert_line(status, "CapBnd:\t0000000000000000");
	assert_line(status, "NoNewPrivs:\t1");
	assert_int_equal(release_waiting(&w), 0);
	cleanup_ok(id);
}

static void only_the_jail_root_is_visible_with_the_devices_the_host_has(void **state)
{
	const char *pargs[] = {"--report", "--hidden", "/etc/passwd", "--hidden", "/proc/self",
			       "--hidden", base,       "--hidden",    "/work",	  NULL};
	static struct result r;
	char id[64], line[128];

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, NULL, pargs);
	assert_exited(&r, 0);
	assert_int_equal(count_prefix(r.out, "root "), 3);
	assert_line(r.out, "root jailer_probe");
	assert_line(r.out, "root dev");
	/* Made as Firecracker's jailer makes it, for the API socket. */
	assert_line(r.out, "root run");
	assert_line(r.out, "hidden /etc/passwd ENOENT");
	assert_line(r.out, "hidden /proc/self ENOENT");
	assert_line(r.out, "hidden /work ENOENT");
	snprintf(line, sizeof(line), "hidden %s ENOENT", base);
	assert_line(r.out, line);
	assert_line(r.out, "dev /dev/urandom 1:9 " UID ":" GID " 600");
	if (host_has_misc("tun"))
		assert_line(r.out, "dev /dev/net/tun 10:200 " UID ":" GID " 600");
	else
		assert_line(r.out, "dev /dev/net/tun ENOENT");
	if (host_has_misc("kvm")) {
		assert_line(r.out, "dev /dev/kvm 10:232 " UID ":" GID " 600");
	} else {
		assert_line(r.out, "dev /dev/kvm ENOENT");
		assert_non_null(strstr(r.err, "host has no /dev/kvm"));
	}
	if (host_has_misc("userfaultfd"))
		assert_non_null(strstr(r.out, "dev /dev/userfaultfd 10:"));
	/* Nothing else in /dev: at most net, kvm, userfaultfd, urandom. */
	assert_true(count_prefix(r.out, "devdir ") <= 4);
	cleanup_ok(id);
}

static void devices_option_creates_only_those_nodes(void **state)
{
	const char *extra[] = {"--devices", "urandom", NULL};
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 0);
	assert_int_equal(count_prefix(r.out, "devdir "), 1);
	assert_line(r.out, "devdir urandom");
	assert_line(r.out, "dev /dev/net/tun ENOENT");
	cleanup_ok(id);
}

static void pids_max_stops_forks_past_the_limit(void **state)
{
	const char *extra[] = {"--cgroup", "pids.max=5", NULL};
	const char *pargs[] = {"--fork", "10", NULL};
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 0);
	/* The probe itself is one of the five. */
	assert_line(r.out, "forked 4 of 10 EAGAIN");
	cleanup_ok(id);
}

static void memory_limit_below_need_kills_the_process(void **state)
{
	const char *extra[] = {"--cgroup", "memory.limit_in_bytes=24M", NULL};
	const char *extra_v2[] = {"--cgroup", "memory.max=24M", NULL};
	const char *pargs[] = {"--alloc", "256", NULL};
	static struct result r;
	char id[64];
	struct stat st;

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, stat("/sys/fs/cgroup/memory", &st) == 0 ? extra : extra_v2, pargs);
	if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGKILL)
		fail_msg("status 0x%x, wanted SIGKILL by the OOM killer; out:\n%s\nerr:\n%s",
			 r.status, r.out, r.err);
	assert_null(strstr(r.out, "alloc done"));
	cleanup_ok(id);
}

static void memory_limit_above_need_lets_it_run(void **state)
{
	const char *extra[] = {"--cgroup", "memory.limit_in_bytes=128M", NULL};
	const char *pargs[] = {"--alloc", "32", NULL};
	static struct result r;
	char id[64];
	struct stat st;

	NEED_ROOT();
	if (stat("/sys/fs/cgroup/memory", &st))
		skip();
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 0);
	assert_line(r.out, "alloc done");
	cleanup_ok(id);
}

static void rlimits_are_applied(void **state)
{
	const char *extra[] = {"--resource-limit", "no-file=64", "--resource-limit", "fsize=8192",
			       NULL};
	const char *pargs[] = {"--report", "--fsize", "20000", NULL};
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 0);
	assert_line(r.out, "rlimit no-file 64 64");
	assert_line(r.out, "rlimit fsize 8192 8192");
	assert_line(r.out, "fsize wrote 8192 EFBIG");
	cleanup_ok(id);
}

static void default_no_file_limit_is_2048(void **state)
{
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, NULL, pargs);
	assert_exited(&r, 0);
	assert_line(r.out, "rlimit no-file 2048 2048");
	cleanup_ok(id);
}

static void new_pid_ns_makes_thaw_pid_1_and_forwards_its_exit_status(void **state)
{
	const char *extra[] = {"--new-pid-ns", "--cgroup", "pids.max=10", NULL};
	const char *pargs[] = {"--report", "--exit", "7", NULL};
	static struct result r;
	char id[64], p[PATH_MAX];
	struct stat st;

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 7);
	assert_line(r.out, "pid 1");
	assert_line(r.out, "CapEff:\t0000000000000000");
	snprintf(p, sizeof(p), "%s/jailer_probe/%s/root/jailer_probe.pid", base, id);
	assert_int_equal(stat(p, &st), 0);
	cleanup_ok(id);
}

static void new_pid_ns_forwards_death_by_signal(void **state)
{
	const char *extra[] = {"--new-pid-ns", "--cgroup", "memory.limit_in_bytes=24M", NULL};
	const char *pargs[] = {"--alloc", "256", NULL};
	static struct result r;
	char id[64];
	struct stat st;

	NEED_ROOT();
	if (stat("/sys/fs/cgroup/memory", &st))
		skip();
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	if (!WIFSIGNALED(r.status) || WTERMSIG(r.status) != SIGKILL)
		fail_msg("status 0x%x, wanted SIGKILL forwarded; err:\n%s", r.status, r.err);
	cleanup_ok(id);
}

static void new_pid_ns_parent_forwards_sigterm_to_thaw(void **state)
{
	const char *extra[] = {"--new-pid-ns", NULL};
	const char *pargs[] = {"--on-term", "--report", "--wait", NULL};
	static struct waiting w;
	char id[64], buf[4096];
	ssize_t n;
	int status;

	NEED_ROOT();
	next_id(id, sizeof(id));
	spawn_waiting_args(&w, id, extra, pargs);
	assert_line(w.text, "pid 1");
	/* The jailer (w.pid, the waiting parent) gets it, the probe (pid 1) acts on it. */
	assert_int_equal(kill(w.pid, SIGTERM), 0);
	/* a lost signal would leave the probe waiting forever */
	struct pollfd pfd = {.fd = w.out, .events = POLLIN};
	if (poll(&pfd, 1, 10000) != 1)
		fail_msg("the probe did not report SIGTERM within 10 s");
	n = read(w.out, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_line(buf, "got SIGTERM");
	status = release_waiting(&w);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 128 + SIGTERM)
		fail_msg("status 0x%x, wanted exit %d forwarded", status, 128 + SIGTERM);
	cleanup_ok(id);
}

static bool wait_for_file_line(const char *path, const char *line, int ms)
{
	char buf[32768];

	for (int i = 0; i < ms; i += 10) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			read_all(fd, buf, sizeof(buf));
			close(fd);
			if (has_line(buf, line))
				return true;
		}
		usleep(10000);
	}
	return false;
}

static void daemonize_returns_at_once_and_detaches_thaw(void **state)
{
	char id[64], outf[PATH_MAX], link[PATH_MAX + 16], buf[32768];
	const char *extra[] = {"--daemonize", "--link", link, NULL};
	const char *pargs[] = {"--out", "/report.txt", "--report", NULL};
	static struct result r;
	int fd;

	NEED_ROOT();
	next_id(id, sizeof(id));
	snprintf(outf, sizeof(outf), "%s/%s.report", base, id);
	fd = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fchown(fd, 12345, 23456), 0);
	close(fd);
	snprintf(link, sizeof(link), "%s:/report.txt:rw", outf);
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 0);
	assert_true(wait_for_file_line(outf, "end", 5000));
	fd = open(outf, O_RDONLY);
	read_all(fd, buf, sizeof(buf));
	close(fd);
	assert_line(buf, "sid-is-pid 1");
	assert_line(buf, "CapEff:\t0000000000000000");
	/* The daemon exits right after its report; give it a moment to leave. */
	for (int i = 0; i < 100; i++) {
		struct result *c = malloc(sizeof(*c));
		run_cleanup(c, id);
		bool ok = WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0;
		free(c);
		if (ok)
			break;
		usleep(10000);
	}
	assert_false(jail_dir_exists(id));
	unlink(outf);
}

static void links_put_the_snapshot_read_only_and_the_drive_read_write(void **state)
{
	char id[64], snap[PATH_MAX], drive[PATH_MAX], l1[PATH_MAX + 32], l2[PATH_MAX + 32];
	const char *extra[] = {"--link", l1, "--link", l2, NULL};
	const char *pargs[] = {"--report",	     "--read",	"/snapshots/vm.snap", "--rw",
			       "/snapshots/vm.snap", "--write", "/drive.img",	      NULL};
	static struct result r;
	char buf[256];
	int fd;

	NEED_ROOT();
	next_id(id, sizeof(id));
	snprintf(snap, sizeof(snap), "%s/%s.snap", base, id);
	snprintf(drive, sizeof(drive), "%s/%s.img", base, id);
	fd = open(snap, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	assert_int_equal(write(fd, "snapshot-bytes\n", 15), 15);
	/* World-writable, so only the read-only mount can refuse the write. */
	assert_int_equal(fchmod(fd, 0666), 0);
	close(fd);
	fd = open(drive, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(fchown(fd, 12345, 23456), 0);
	close(fd);
	snprintf(l1, sizeof(l1), "%s:/snapshots/vm.snap:ro", snap);
	snprintf(l2, sizeof(l2), "%s:/drive.img:rw", drive);
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 0);
	assert_line(r.out, "read /snapshots/vm.snap snapshot-bytes");
	assert_line(r.out, "rw /snapshots/vm.snap EROFS");
	assert_line(r.out, "write /drive.img ok");
	fd = open(drive, O_RDONLY);
	read_all(fd, buf, sizeof(buf));
	close(fd);
	assert_string_equal(buf, "written by probe\n");
	/* The jail's mounts died with it: the host sees none. */
	assert_int_equal(mounts_under_base(), 0);
	cleanup_ok(id);
	/* Cleanup removes the jail's placeholders, never the linked files. */
	fd = open(snap, O_RDONLY);
	read_all(fd, buf, sizeof(buf));
	close(fd);
	assert_string_equal(buf, "snapshot-bytes\n");
	unlink(snap);
	unlink(drive);
}

static void netns_is_joined(void **state)
{
	char id[64], nsfile[PATH_MAX], src[64];
	const char *extra[] = {"--netns", nsfile, NULL};
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	int sync[2], fd;
	char c;
	pid_t pid;

	NEED_ROOT();
	next_id(id, sizeof(id));
	/* A fresh network namespace held by a bind mount, as `ip netns add` does. */
	snprintf(nsfile, sizeof(nsfile), "%s/%s.netns", base, id);
	fd = open(nsfile, O_WRONLY | O_CREAT, 0600);
	close(fd);
	assert_int_equal(pipe(sync), 0);
	pid = fork();
	if (pid == 0) {
		c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
		if (write(sync[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(sync[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	snprintf(src, sizeof(src), "/proc/%d/ns/net", (int)pid);
	assert_int_equal(mount(src, nsfile, NULL, MS_BIND, NULL), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(sync[0]);
	close(sync[1]);

	run_jail(&r, id, extra, pargs);
	umount2(nsfile, MNT_DETACH);
	unlink(nsfile);
	assert_exited(&r, 0);
	assert_int_equal(count_prefix(r.out, "iface "), 1);
	assert_line(r.out, "iface lo");
	cleanup_ok(id);
}

/* The unified mount point and whether its root offers `ctrl`; false when none. */
static bool v2_offers(const char *ctrl, char *mnt, size_t len)
{
	char dev[256], dir[PATH_MAX], type[64], p[PATH_MAX + 32], buf[512] = "";
	bool found = false;
	FILE *f = fopen("/proc/mounts", "re");
	int fd;

	assert_non_null(f);
	while (!found && fscanf(f, "%255s %4095s %63s %*s %*d %*d", dev, dir, type) == 3)
		found = strcmp(type, "cgroup2") == 0;
	fclose(f);
	if (!found)
		return false;
	snprintf(mnt, len, "%s", dir);
	snprintf(p, sizeof(p), "%s/cgroup.controllers", dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	read_all(fd, buf, sizeof(buf));
	close(fd);
	for (char *save = NULL, *w = strtok_r(buf, " \n", &save); w;
	     w = strtok_r(NULL, " \n", &save))
		if (strcmp(w, ctrl) == 0)
			return true;
	return false;
}

static void cgroup_v2_is_used_when_the_unified_tree_has_the_controller(void **state)
{
	const char *extra[] = {"--cgroup", "hugetlb.2MB.max=0", NULL};
	static struct waiting w;
	char mnt[PATH_MAX], p[PATH_MAX + 96], buf[256], want[32], id[64];
	int fd;

	NEED_ROOT();
	/* On a hybrid host (like the dev machine) cpu/memory/pids sit in v1 and only
	 * hugetlb is handed to the unified tree: that is enough to drive the v2 code. */
	if (!v2_offers("hugetlb", mnt, sizeof(mnt)) ||
	    access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK)) {
		print_message("SKIPPED: no cgroup2 mount offering hugetlb with 2MB pages\n");
		skip();
	}
	next_id(id, sizeof(id));
	spawn_waiting(&w, id, extra);
	snprintf(p, sizeof(p), "%s/thaw/%s/cgroup.procs", mnt, id);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	read_all(fd, buf, sizeof(buf));
	close(fd);
	snprintf(want, sizeof(want), "%d", (int)w.pid);
	assert_line(buf, want);
	snprintf(p, sizeof(p), "%s/thaw/%s/hugetlb.2MB.max", mnt, id);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	read_all(fd, buf, sizeof(buf));
	close(fd);
	assert_line(buf, "0");
	assert_int_equal(release_waiting(&w), 0);
	cleanup_ok(id);
}

static void cgroup_version_2_without_the_controller_is_refused(void **state)
{
	const char *extra[] = {"--cgroup-version", "2", "--cgroup", "pids.max=5", NULL};
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	char mnt[PATH_MAX], id[64];

	NEED_ROOT();
	if (v2_offers("pids", mnt, sizeof(mnt))) {
		print_message("SKIPPED: the unified hierarchy has pids here\n");
		skip();
	}
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 1);
	assert_non_null(strstr(r.err, "validate: cgroups:"));
	assert_int_equal(jails_in_base(), 0);
	assert_int_equal(our_cgroup_dirs(), 0);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
	ssize_t n;

	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

struct bad_case {
	const char *name;
	const char *id;	  /* NULL: a fresh valid id */
	const char *exec; /* NULL: the probe */
	const char *extra[6];
	const char *expect; /* in stderr */
};

static void bad_arguments_fail_clearly_and_leave_nothing_behind(void **state)
{
	char id65[66], nsfile[PATH_MAX], noexec[PATH_MAX];
	const struct bad_case cases[] = {
	    {"id with slash", "a/b", NULL, {NULL}, "validate: --id"},
	    {"id with ..", "..", NULL, {NULL}, "validate: --id"},
	    {"id too long", id65, NULL, {NULL}, "validate: --id"},
	    {"missing binary", NULL, "/nonexistent/thaw", {NULL}, "validate: --exec-file"},
	    {"relative binary", NULL, "build/thaw", {NULL}, "validate: --exec-file"},
	    {"unknown cgroup key",
	     NULL,
	     NULL,
	     {"--cgroup", "pids.bogus=1", NULL},
	     "unknown cgroup key 'pids.bogus'"},
	    {"unknown cgroup controller",
	     NULL,
	     NULL,
	     {"--cgroup", "nosuch.max=1", NULL},
	     "unknown cgroup controller 'nosuch'"},
	    {"bad cgroup value",
	     NULL,
	     NULL,
	     {"--cgroup", "pids.max=lots", NULL},
	     "cgroups: write 'lots'"},
	    {"missing netns",
	     NULL,
	     NULL,
	     {"--netns", "/var/run/netns/nonexistent", NULL},
	     "validate: --netns"},
	    {"netns that is no netns", NULL, NULL, {"--netns", nsfile, NULL}, "netns: setns("},
	    {"missing link source",
	     NULL,
	     NULL,
	     {"--link", "/nonexistent/vm.snap", NULL},
	     "validate: --link"},
	    {"dynamic binary (fails after pivot_root)",
	     NULL,
	     "/bin/true",
	     {"--cgroup", "pids.max=5", NULL},
	     "exec: /bin/true is dynamically linked"},
	    {"dynamic binary in a pid namespace",
	     NULL,
	     "/bin/true",
	     {"--cgroup", "pids.max=5", "--new-pid-ns", NULL},
	     "exec: /bin/true is dynamically linked"},
	    {"binary the jailed user cannot execute",
	     NULL,
	     noexec,
	     {NULL},
	     "is not executable by 12345:23456"},
	    {"binary the jailed user cannot execute, pid ns",
	     NULL,
	     noexec,
	     {"--new-pid-ns", NULL},
	     "is not executable by 12345:23456"},
	    {"rlimit above the hard limit",
	     NULL,
	     NULL,
	     {"--resource-limit", "no-file=999999999", "--cgroup", "pids.max=5", NULL},
	     "rlimits: setrlimit(no-file"},
	};
	static struct result r;
	char *argv[96], id[64];

	NEED_ROOT();
	memset(id65, 'a', 65);
	id65[65] = '\0';
	snprintf(nsfile, sizeof(nsfile), "%s/not-a-netns", base);
	close(open(nsfile, O_WRONLY | O_CREAT, 0600));
	/* Not in the base itself: <base>/<exec file name> is a jail folder. */
	snprintf(noexec, sizeof(noexec), "%s/bin", base);
	mkdir(noexec, 0755);
	snprintf(noexec, sizeof(noexec), "%s/bin/noexec-probe", base);
	/* A copy, not a link: changing the mode of a link would change the probe's. */
	copy_file(probe, noexec);
	assert_int_equal(chmod(noexec, 0700), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		next_id(id, sizeof(id));
		build_argv(argv, c->id ? c->id : id, c->extra, NULL);
		if (c->exec)
			argv[4] = (char *)c->exec;
		run_argv(&r, argv);
		if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) == 0)
			fail_msg("%s: status 0x%x, wanted failure", c->name, r.status);
		if (!strstr(r.err, c->expect))
			fail_msg("%s: stderr lacks '%s':\n%s", c->name, c->expect, r.err);
		if (jails_in_base() != 0 || our_cgroup_dirs() != 0)
			fail_msg("%s: left a jail or cgroup directory behind", c->name);
		{
			const char *msg =
			    strstr(r.err, "error: ") ? strstr(r.err, "error: ") : r.err;
			print_message("  %-40s -> %.*s\n", c->name, (int)strcspn(msg, "\n"), msg);
		}
	}
	assert_int_equal(mounts_under_base(), 0);
	unlink(nsfile);
	unlink(noexec);
	snprintf(noexec, sizeof(noexec), "%s/bin", base);
	rmdir(noexec);
}

static void an_existing_jail_id_is_refused_and_kept(void **state)
{
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, NULL, pargs);
	assert_exited(&r, 0);
	run_jail(&r, id, NULL, pargs);
	assert_exited(&r, 1);
	assert_non_null(strstr(r.err, "File exists (run thaw-jailer --cleanup --id first)"));
	assert_true(jail_dir_exists(id));
	cleanup_ok(id);
}

static void cleanup_removes_everything_and_can_run_twice(void **state)
{
	const char *extra[] = {"--cgroup", "pids.max=10", "--cgroup", "cpu.shares=512", NULL};
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, extra, pargs);
	assert_exited(&r, 0);
	assert_true(jail_dir_exists(id));
	assert_true(cgroup_dir_exists(id));
	run_cleanup(&r, id);
	assert_exited(&r, 0);
	assert_non_null(strstr(r.err, "nothing mounted"));
	assert_false(jail_dir_exists(id));
	assert_false(cgroup_dir_exists(id));
	assert_int_equal(mounts_under_base(), 0);
	run_cleanup(&r, id);
	assert_exited(&r, 0);
	assert_non_null(strstr(r.err, "nothing to remove"));
}

/* Without --exec-file, cleanup finds the jail in whichever folder of the base holds it
 * (older callers name only the id); with two candidates it asks which. */
static void cleanup_without_exec_file_finds_the_folder(void **state)
{
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	char id[64], other[PATH_MAX];
	char *argv[] = {
	    jailer, (char *)"--cleanup", (char *)"--id", id, (char *)"--chroot-base", base, NULL};

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, NULL, pargs);
	assert_exited(&r, 0);
	assert_true(jail_dir_exists(id));
	/* a second folder with the same id: ambiguous */
	snprintf(other, sizeof(other), "%s/otherexec", base);
	assert_int_equal(mkdir(other, 0755), 0);
	snprintf(other, sizeof(other), "%s/otherexec/%s", base, id);
	assert_int_equal(mkdir(other, 0755), 0);
	run_argv(&r, argv);
	assert_exited(&r, 1);
	assert_non_null(strstr(r.err, "give --exec-file"));
	assert_true(jail_dir_exists(id));
	assert_int_equal(rmdir(other), 0);
	snprintf(other, sizeof(other), "%s/otherexec", base);
	assert_int_equal(rmdir(other), 0);
	run_argv(&r, argv);
	assert_exited(&r, 0);
	assert_false(jail_dir_exists(id));
}

static void cleanup_refuses_a_running_jail(void **state)
{
	const char *extra[] = {"--cgroup", "pids.max=10", NULL};
	static struct waiting w;
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	spawn_waiting(&w, id, extra);
	run_cleanup(&r, id);
	assert_exited(&r, 1);
	assert_non_null(strstr(r.err, "still running"));
	assert_true(jail_dir_exists(id));
	assert_true(cgroup_dir_exists(id));
	assert_int_equal(release_waiting(&w), 0);
	cleanup_ok(id);
}

static void cleanup_refuses_a_running_jail_without_cgroups(void **state)
{
	static struct waiting w;
	static struct result r;
	char id[64];

	NEED_ROOT();
	next_id(id, sizeof(id));
	spawn_waiting(&w, id, NULL);
	run_cleanup(&r, id);
	assert_exited(&r, 1);
	assert_non_null(strstr(r.err, "jail is still running"));
	assert_true(jail_dir_exists(id));
	assert_int_equal(release_waiting(&w), 0);
	cleanup_ok(id);
}

static void cleanup_does_not_follow_symlinks_out_of_the_jail(void **state)
{
	const char *pargs[] = {"--report", NULL};
	static struct result r;
	char id[64], victim[PATH_MAX / 2], lnk[PATH_MAX];
	struct stat st;

	NEED_ROOT();
	next_id(id, sizeof(id));
	run_jail(&r, id, NULL, pargs);
	assert_exited(&r, 0);
	/* What a hostile jailed user (owner of the root) could leave behind. */
	snprintf(victim, sizeof(victim), "%s/%s.victim", base, id);
	assert_int_equal(mkdir(victim, 0755), 0);
	close(open(strcat(strcpy(lnk, victim), "/keep"), O_WRONLY | O_CREAT, 0600));
	snprintf(lnk, sizeof(lnk), "%s/jailer_probe/%s/root/escape", base, id);
	assert_int_equal(symlink(victim, lnk), 0);
	cleanup_ok(id);
	snprintf(lnk, sizeof(lnk), "%s/keep", victim);
	assert_int_equal(stat(lnk, &st), 0);
	unlink(lnk);
	rmdir(victim);
}

/* --- fixtures ---------------------------------------------------------------------- */

static int setup(void **state)
{
	char self[PATH_MAX], *dir;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	dir = dirname(self); /* $(B)/tests */
	snprintf(probe, sizeof(probe), "%s/jailer_probe", dir);
	snprintf(jailer, sizeof(jailer), "%s/../thaw-jailer", dir);
	strcpy(base, "/tmp/thaw-jailer-test.XXXXXX");
	if (!mkdtemp(base))
		return -1;
	chmod(base, 0755);
	return 0;
}

static int teardown(void **state)
{
	char thaw[PATH_MAX + 8];
	struct dirent *de;
	DIR *d;

	snprintf(thaw, sizeof(thaw), "%s/thaw", base);
	/* A failed test may have left its jail: clean it so the host stays tidy. */
	d = opendir(thaw);
	while (d && (de = readdir(d))) {
		static struct result r;
		if (de->d_name[0] == '.')
			continue;
		print_message("note: cleaning up jail %s left by a failed test\n", de->d_name);
		run_cleanup(&r, de->d_name);
	}
	if (d)
		closedir(d);
	rmdir(thaw); /* empty when every test cleaned up after itself */
	if (rmdir(base))
		print_message("note: %s not empty, left for inspection\n", base);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(id_check_accepts_letters_digits_hyphens),
	    cmocka_unit_test(id_check_rejects_slash_dots_empty_and_too_long),
	    cmocka_unit_test(path_check_wants_absolute_without_dotdot),
	    cmocka_unit_test(rlimit_names_map_to_resources),
	    cmocka_unit_test(link_spec_defaults_to_basename_and_read_only),
	    cmocka_unit_test(parse_args_collects_everything),
	    cmocka_unit_test(parse_args_rejects_bad_input),
	    cmocka_unit_test(jailed_process_has_no_capabilities_and_the_given_ids),
	    cmocka_unit_test(uid_zero_jail_still_has_no_capabilities),
	    cmocka_unit_test(only_the_jail_root_is_visible_with_the_devices_the_host_has),
	    cmocka_unit_test(devices_option_creates_only_those_nodes),
	    cmocka_unit_test(pids_max_stops_forks_past_the_limit),
	    cmocka_unit_test(memory_limit_below_need_kills_the_process),
	    cmocka_unit_test(memory_limit_above_need_lets_it_run),
	    cmocka_unit_test(rlimits_are_applied),
	    cmocka_unit_test(default_no_file_limit_is_2048),
	    cmocka_unit_test(new_pid_ns_makes_thaw_pid_1_and_forwards_its_exit_status),
	    cmocka_unit_test(new_pid_ns_forwards_death_by_signal),
	    cmocka_unit_test(new_pid_ns_parent_forwards_sigterm_to_thaw),
	    cmocka_unit_test(daemonize_returns_at_once_and_detaches_thaw),
	    cmocka_unit_test(links_put_the_snapshot_read_only_and_the_drive_read_write),
	    cmocka_unit_test(netns_is_joined),
	    cmocka_unit_test(cgroup_v2_is_used_when_the_unified_tree_has_the_controller),
	    cmocka_unit_test(cgroup_version_2_without_the_controller_is_refused),
	    cmocka_unit_test(bad_arguments_fail_clearly_and_leave_nothing_behind),
	    cmocka_unit_test(an_existing_jail_id_is_refused_and_kept),
	    cmocka_unit_test(cleanup_removes_everything_and_can_run_twice),
	    cmocka_unit_test(cleanup_without_exec_file_finds_the_folder),
	    cmocka_unit_test(cleanup_refuses_a_running_jail),
	    cmocka_unit_test(cleanup_refuses_a_running_jail_without_cgroups),
	    cmocka_unit_test(cleanup_does_not_follow_symlinks_out_of_the_jail),
	};

	return cmocka_run_group_tests_name("thaw-jailer", tests, setup, teardown);
}
