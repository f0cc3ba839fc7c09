/* jailer_probe: the program test_jailer and bench_jail run inside a jail instead of
 * thaw. Linked statically (a jail has no libc). It reports, one "key value" per line,
 * what the jail looks like from inside; options ask for more:
 *   --stamp            first line: "stamp <CLOCK_MONOTONIC ns>" (jail setup timing)
 *   --out PATH         write the report to PATH instead of stdout (--daemonize)
 *   --hidden PATH      report "hidden PATH <errno name>" for a host path
 *   --rw PATH          try open(PATH, O_RDWR) and report the result
 *   --read PATH        report the first line of PATH
 *   --write PATH       append a line to PATH and report the result
 *   --fork N           start N children (held until we exit), report how many started
 *   --alloc MIB        allocate and touch MIB MiB, report "alloc done" if it survives
 *   --fsize BYTES      write BYTES to a new file /probe-fsize, report the result
 *   --on-term          on SIGTERM print "got SIGTERM" and exit 143
 *   --wait             after the report, block until stdin gives a byte or EOF
 *   --exit N           exit with status N
 * The arguments Firecracker's jailer (and so thaw-jailer) puts before the user's
 * (--id, --start-time-us, --start-time-cpu-us, --parent-cpu-time-us) are reported
 * before "end" as "jailer-arg <name> <value>".
 * There is no /proc in the jail, so the process reads its own state with syscalls. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static FILE *out;

static void list_dir(const char *key, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d) {
		fprintf(out, "%s-error %s\n", key, strerrorname_np(errno));
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			fprintf(out, "%s %s\n", key, de->d_name);
	closedir(d);
}

static void report_caps(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	uint64_t bnd = 0, amb = 0;

	if (syscall(SYS_capget, &hdr, data)) {
		fprintf(out, "capget-error %s\n", strerrorname_np(errno));
		return;
	}
	for (int c = 0; c < 64 && prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; c++) {
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			bnd |= 1ull << c;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
			amb |= 1ull << c;
	}
	/* Same names and format as /proc/self/status. */
	fprintf(out, "CapInh:\t%08x%08x\n", data[1].inheritable, data[0].inheritable);
	fprintf(out, "CapPrm:\t%08x%08x\n", data[1].permitted, data[0].permitted);
	fprintf(out, "CapEff:\t%08x%08x\n", data[1].effective, data[0].effective);
	fprintf(out, "CapBnd:\t%016llx\n", (unsigned long long)bnd);
	fprintf(out, "CapAmb:\t%016llx\n", (unsigned long long)amb);
	fprintf(out, "NoNewPrivs:\t%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
}

static void report_dev(const char *path)
{
	struct stat st;

	if (stat(path, &st)) {
		fprintf(out, "dev %s %s\n", path, strerrorname_np(errno));
		return;
	}
	fprintf(out, "dev %s %u:%u %u:%u %o\n", path, major(st.st_rdev), minor(st.st_rdev),
		st.st_uid, st.st_gid, st.st_mode & 07777);
}

static void report(void)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	struct rlimit rl;
	static const struct {
		const char *name;
		int res;
	} lim[] = {{"no-file", RLIMIT_NOFILE}, {"fsize", RLIMIT_FSIZE}, {"as", RLIMIT_AS}};

	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	fprintf(out, "uid %u %u %u\n", ru, eu, su);
	fprintf(out, "gid %u %u %u\n", rg, eg, sg);
	fprintf(out, "groups %d\n", getgroups(0, NULL));
	fprintf(out, "pid %d\n", (int)getpid());
	fprintf(out, "sid-is-pid %d\n", getsid(0) == getpid());
	fprintf(out, "environ %s\n", environ && environ[0] ? environ[0] : "(empty)");
	fprintf(out, "fd3 %s\n", fcntl(3, F_GETFD) < 0 ? "closed" : "open");
	report_caps();
	for (unsigned i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
		getrlimit(lim[i].res, &rl);
		fprintf(out, "rlimit %s %llu %llu\n", lim[i].name, (unsigned long long)rl.rlim_cur,
			(unsigned long long)rl.rlim_max);
	}
	list_dir("root", "/");
	list_dir("devdir", "/dev");
	report_dev("/dev/kvm");
	report_dev("/dev/net/tun");
	report_dev("/dev/userfaultfd");
	report_dev("/dev/urandom");
	{
		struct if_nameindex *ifs = if_nameindex();
		for (struct if_nameindex *i = ifs; i && i->if_index; i++)
			fprintf(out, "iface %s\n", i->if_name);
		if (ifs)
			if_freenameindex(ifs);
	}
}

/* As pid 1 of a PID namespace, SIGTERM without a handler would be ignored. */
static void on_term(int sig)
{
	static const char msg[] = "got SIGTERM\n";
	if (write(fileno(out), msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(128 + sig);
}

int main(int argc, char **argv)
{
	uint64_t stamp;
	struct timespec ts;
	int exit_code = 0;
	bool wait_stdin = false;
	const char *fc_args[4][2];
	int n_fc = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	stamp = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	out = stdout;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			out = fopen(argv[++i], "we");
			if (!out)
				return 3;
		}
	}
	setvbuf(out, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--stamp") == 0) {
			fprintf(out, "stamp %llu\n", (unsigned long long)stamp);
		} else if (strcmp(a, "--report") == 0) {
			report();
		} else if (strcmp(a, "--out") == 0) {
			i++;
		} else if (strcmp(a, "--hidden") == 0 && v) {
			struct stat st;
			fprintf(out, "hidden %s %s\n", v,
				stat(v, &st) ? strerrorname_np(errno) : "VISIBLE");
			i++;
		} else if (strcmp(a, "--rw") == 0 && v) {
			int fd = open(v, O_RDWR);
			fprintf(out, "rw %s %s\n", v, fd < 0 ? strerrorname_np(errno) : "ok");
			if (fd >= 0)
				close(fd);
			i++;
		} else if (strcmp(a, "--read") == 0 && v) {
			char line[256] = "";
			FILE *f = fopen(v, "re");
			if (f && fgets(line, sizeof(line), f))
				line[strcspn(line, "\n")] = '\0';
			fprintf(out, "read %s %s\n", v, f ? line : strerrorname_np(errno));
			if (f)
				fclose(f);
			i++;
		} else if (strcmp(a, "--write") == 0 && v) {
			int fd = open(v, O_WRONLY | O_APPEND);
			bool ok = fd >= 0 && write(fd, "written by probe\n", 17) == 17;
			fprintf(out, "write %s %s\n", v, ok ? "ok" : strerrorname_np(errno));
			if (fd >= 0)
				close(fd);
			i++;
		} else if (strcmp(a, "--fork") == 0 && v) {
			int n = atoi(v), started = 0, err = 0;
			for (; started < n; started++) {
				pid_t p = fork();
				if (p < 0) {
					err = errno;
					break;
				}
				if (p == 0) {
					pause();
					_exit(0);
				}
			}
			fprintf(out, "forked %d of %d %s\n", started, n,
				err ? strerrorname_np(err) : "ok");
			signal(SIGTERM, SIG_IGN);
			kill(0, SIGTERM); /* our process group: the children */
			while (wait(NULL) > 0)
				;
			i++;
		} else if (strcmp(a, "--alloc") == 0 && v) {
			size_t len = (size_t)atoi(v) << 20;
			char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED) {
				fprintf(out, "alloc %s\n", strerrorname_np(errno));
			} else {
				for (size_t off = 0; off < len; off += 4096)
					p[off] = 1;
				fprintf(out, "alloc done\n");
			}
			i++;
		} else if (strcmp(a, "--fsize") == 0 && v) {
			size_t len = (size_t)atol(v);
			char buf[4096] = {0};
			size_t done = 0;
			int fd = open("/probe-fsize", O_WRONLY | O_CREAT | O_TRUNC, 0600);
			int err = fd < 0 ? errno : 0;
			signal(SIGXFSZ, SIG_IGN); /* see EFBIG rather than die */
			while (fd >= 0 && done < len) {
				ssize_t n = write(
				    fd, buf, len - done < sizeof(buf) ? len - done : sizeof(buf));
				if (n <= 0) {
					err = n < 0 ? errno : EIO;
					break;
				}
				done += (size_t)n;
			}
			fprintf(out, "fsize wrote %zu %s\n", done,
				err ? strerrorname_np(err) : "ok");
			if (fd >= 0) {
				close(fd);
				unlink("/probe-fsize");
			}
			i++;
		} else if (strcmp(a, "--on-term") == 0) {
			signal(SIGTERM, on_term);
		} else if (strcmp(a, "--wait") == 0) {
			wait_stdin = true;
		} else if (strcmp(a, "--exit") == 0 && v) {
			exit_code = atoi(v);
			i++;
		} else if (v && n_fc < 4 &&
			   (strcmp(a, "--id") == 0 || strcmp(a, "--start-time-us") == 0 ||
			    strcmp(a, "--start-time-cpu-us") == 0 ||
			    strcmp(a, "--parent-cpu-time-us") == 0)) {
			fc_args[n_fc][0] = a + 2;
			fc_args[n_fc++][1] = v;
			i++;
		} else {
			fprintf(out, "unknown-arg %s\n", a);
			return 2;
		}
	}
	for (int k = 0; k < n_fc; k++)
		fprintf(out, "jailer-arg %s %s\n", fc_args[k][0], fc_args[k][1]);
	fprintf(out, "end\n");
	fflush(out);
	if (wait_stdin) {
		char c;
		while (read(0, &c, 1) < 0 && errno == EINTR)
			;
	}
	return exit_code;
}
