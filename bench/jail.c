/* bench_jail: how long thaw-jailer takes from its start to the exec of the jailed
 * program, one jail at a time and ten at once.
 *
 *   bench_jail JAILER PROBE [RUNS]
 *
 * The jailed program is tests/integration/jailer_probe.c with --stamp: its first line
 * is CLOCK_MONOTONIC at main(), so "setup" is fork+exec of the jailer, every jail
 * step, and execve of the probe. "plain" is the same probe started without a jail,
 * the floor any launcher pays. Needs root. Prints a table and one JSON line. */
#include "common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONCURRENT 10
#define MAX_RUNS   200

static const char *jailer, *probe;
static char base[64], jailer_copy[96], probe_copy[96];
static int seq;

struct spawned {
	pid_t pid;
	int fd;
	uint64_t t0;
	char id[32];
};

/* Starts the jailer (or the bare probe when cfg is NULL) with stdout on a pipe. */
static int spawn(struct spawned *s, const char *const *cfg)
{
	char *argv[40];
	int p[2], n = 0;

	snprintf(s->id, sizeof(s->id), "bench-%d-%d", (int)getpid(), ++seq);
	if (cfg) {
		argv[n++] = (char *)jailer;
		argv[n++] = (char *)"--id";
		argv[n++] = s->id;
		argv[n++] = (char *)"--exec-file";
		argv[n++] = (char *)probe;
		argv[n++] = (char *)"--uid";
		argv[n++] = (char *)"10000";
		argv[n++] = (char *)"--gid";
		argv[n++] = (char *)"10000";
		argv[n++] = (char *)"--chroot-base";
		argv[n++] = base;
		for (; *cfg; cfg++)
			argv[n++] = (char *)*cfg;
		argv[n++] = (char *)"--";
	} else {
		argv[n++] = (char *)probe;
	}
	argv[n++] = (char *)"--stamp";
	argv[n] = NULL;
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	s->t0 = now_ns();
	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(p[1], 1);
		if (!getenv("BENCH_JAIL_STDERR"))
			dup2(null, 2);
		execv(argv[0], argv);
		fprintf(stderr, "bench_jail: execv(%s): %s\n", argv[0], strerror(errno));
		_exit(126);
	}
	close(p[1]);
	s->fd = p[0];
	return 0;
}

/* Reads the probe's stamp and reaps; returns setup time in ns, 0 on failure. */
static uint64_t finish(struct spawned *s, uint64_t *stamp_out)
{
	char buf[256];
	unsigned long long stamp = 0;
	ssize_t n, len = 0;
	int status;

	while ((n = read(s->fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	buf[len] = '\0';
	close(s->fd);
	waitpid(s->pid, &status, 0);
	if (sscanf(buf, "stamp %llu", &stamp) != 1 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_jail: run %s failed (status 0x%x): %s\n", s->id, status,
			buf);
		return 0;
	}
	if (stamp_out)
		*stamp_out = stamp;
	return stamp - s->t0;
}

static uint64_t cleanup(const char *id)
{
	char *argv[] = {(char *)jailer,
			(char *)"--cleanup",
			(char *)"--id",
			(char *)id,
			(char *)"--chroot-base",
			base,
			NULL};
	uint64_t t0 = now_ns();
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execv(argv[0], argv);
		_exit(126);
	}
	waitpid(pid, &status, 0);
	return now_ns() - t0;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out, ret = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			ret = -EIO;
	if (n < 0)
		ret = -errno;
	close(in);
	close(out);
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct stats {
	double min, median, p90, mean;
};

static struct stats stats_of(uint64_t *v, int n)
{
	struct stats s = {0};
	double sum = 0;

	if (n == 0)
		return s;
	qsort(v, (size_t)n, sizeof(v[0]), cmp_u64);
	for (int i = 0; i < n; i++)
		sum += (double)v[i];
	s.min = (double)v[0] / 1e3;
	s.median = (double)v[n / 2] / 1e3;
	s.p90 = (double)v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1] / 1e3;
	s.mean = sum / n / 1e3;
	return s;
}

struct result {
	const char *name;
	struct stats seq, seq_cleanup, conc_each, conc_wall;
	double seq10_ms;
};

static int bench_config(const char *name, const char *const *cfg, int runs, struct result *r)
{
	static uint64_t setup[MAX_RUNS], clean[MAX_RUNS], each[MAX_RUNS * CONCURRENT],
	    wall[MAX_RUNS];
	int n = 0, ne = 0, batches = runs / 4 > 3 ? runs / 4 : 3;
	struct spawned s[CONCURRENT];

	r->name = name;
	for (int i = 0; i < runs; i++) {
		if (spawn(&s[0], cfg))
			return -1;
		setup[n] = finish(&s[0], NULL);
		if (!setup[n])
			return -1;
		clean[n] = cfg ? cleanup(s[0].id) : 0;
		n++;
	}
	r->seq = stats_of(setup, n);
	r->seq_cleanup = stats_of(clean, n);
	/* Ten one after another: what a host starting ten functions serially pays. */
	r->seq10_ms = r->seq.median * CONCURRENT / 1e3;
	for (int b = 0; b < batches && b < MAX_RUNS; b++) {
		uint64_t last = 0, stamp;
		for (int i = 0; i < CONCURRENT; i++)
			if (spawn(&s[i], cfg))
				return -1;
		for (int i = 0; i < CONCURRENT; i++) {
			each[ne] = finish(&s[i], &stamp);
			if (!each[ne])
				return -1;
			ne++;
			if (stamp > last)
				last = stamp;
		}
		wall[b] = last - s[0].t0;
		for (int i = 0; cfg && i < CONCURRENT; i++)
			cleanup(s[i].id);
	}
	r->conc_each = stats_of(each, ne);
	r->conc_wall = stats_of(wall, batches);
	return 0;
}

int main(int argc, char **argv)
{
	const char *minimal[] = {NULL};
	const char *cg_v1[] = {
	    "--cgroup", "pids.max=64",	  "--cgroup", "memory.limit_in_bytes=256M",
	    "--cgroup", "cpu.shares=512", NULL};
	const char *cg_v1_pidns[] = {
	    "--cgroup", "pids.max=64",	  "--cgroup",	  "memory.limit_in_bytes=256M",
	    "--cgroup", "cpu.shares=512", "--new-pid-ns", NULL};
	const char *cg_v2[] = {"--cgroup", "pids.max=64",   "--cgroup", "memory.max=256M",
			       "--cgroup", "cpu.weight=50", NULL};
	const char *cg_v2_pidns[] = {"--cgroup", "pids.max=64",	  "--cgroup",	  "memory.max=256M",
				     "--cgroup", "cpu.weight=50", "--new-pid-ns", NULL};
	struct stat st;
	bool v1 = stat("/sys/fs/cgroup/memory/memory.limit_in_bytes", &st) == 0;
	struct {
		const char *name;
		const char *const *cfg;
	} configs[] = {
	    {"plain exec (no jail)", NULL},
	    {"jail, no cgroups", minimal},
	    {v1 ? "jail + cgroups v1 (pids,memory,cpu)" : "jail + cgroups v2", v1 ? cg_v1 : cg_v2},
	    {"jail + cgroups + new pid ns", v1 ? cg_v1_pidns : cg_v2_pidns},
	};
	struct result res[4];
	double load[3] = {0};
	int runs = 40;

	if (argc < 3) {
		fprintf(stderr, "usage: %s JAILER PROBE [RUNS]\n", argv[0]);
		return 2;
	}
	jailer = argv[1];
	probe = argv[2];
	if (argc > 3)
		runs = atoi(argv[3]);
	if (runs < 4 || runs > MAX_RUNS)
		runs = 40;
	if (geteuid() != 0) {
		fprintf(stderr, "bench_jail: needs root\n");
		return 2;
	}
	strcpy(base, "/tmp/thaw-bench-jail.XXXXXX");
	if (!mkdtemp(base))
		return 1;
	chmod(base, 0755);
	/* Private copies: a parallel `make` relinking the build tree must not make a
	 * run fail with ETXTBSY or ENOENT halfway. */
	snprintf(jailer_copy, sizeof(jailer_copy), "%s/thaw-jailer", base);
	snprintf(probe_copy, sizeof(probe_copy), "%s/jailer_probe", base);
	if (copy_file(jailer, jailer_copy) || copy_file(probe, probe_copy)) {
		fprintf(stderr, "bench_jail: cannot copy %s and %s into %s\n", jailer, probe, base);
		return 1;
	}
	jailer = jailer_copy;
	probe = probe_copy;
	for (unsigned i = 0; i < 4; i++) {
		if (bench_config(configs[i].name, configs[i].cfg, runs, &res[i])) {
			fprintf(stderr, "bench_jail: %s failed\n", configs[i].name);
			return 1;
		}
	}
	getloadavg(load, 3);
	printf(
	    "jail setup = thaw-jailer fork+exec -> every step -> execve of the jailed program\n");
	printf("%d sequential runs, %d batches of %d at once; load average %.2f; times in us\n\n",
	       runs, runs / 4 > 3 ? runs / 4 : 3, CONCURRENT, load[0]);
	printf("%-38s %8s %8s %8s | %8s | %10s %10s | %9s %9s\n", "", "seq min", "median", "p90",
	       "cleanup", "10@once", "each med", "10 seq ms", "10@once ms");
	for (unsigned i = 0; i < 4; i++) {
		struct result *r = &res[i];
		printf("%-38s %8.0f %8.0f %8.0f | %8.0f | %10s %10.0f | %9.1f %9.1f\n", r->name,
		       r->seq.min, r->seq.median, r->seq.p90, r->seq_cleanup.median, "",
		       r->conc_each.median, r->seq10_ms, r->conc_wall.median / 1e3);
	}
	printf("\n{\"bench\":\"jail\",\"runs\":%d,\"load\":%.2f,\"results\":[", runs, load[0]);
	for (unsigned i = 0; i < 4; i++) {
		struct result *r = &res[i];
		printf(
		    "%s{\"name\":\"%s\",\"setup_us\":{\"min\":%.0f,\"median\":%.0f,\"p90\":%.0f},"
		    "\"cleanup_us\":%.0f,\"concurrent_each_median_us\":%.0f,"
		    "\"ten_sequential_ms\":%.2f,\"ten_concurrent_wall_ms\":%.2f}",
		    i ? "," : "", r->name, r->seq.min, r->seq.median, r->seq.p90,
		    r->seq_cleanup.median, r->conc_each.median, r->seq10_ms,
		    r->conc_wall.median / 1e3);
	}
	printf("]}\n");
	{
		char thaw[96];
		snprintf(thaw, sizeof(thaw), "%s/thaw", base);
		rmdir(thaw);
		unlink(jailer_copy);
		unlink(probe_copy);
		rmdir(base);
	}
	return 0;
}
