/* Measures snap_writer_commit for 256 MiB of guest memory into the page cache (the
 * issue's create target: 256 MiB in well under 150 ms), for four memory profiles: every
 * page holds data (worst case for bytes), a quarter of the pages hold data in clusters
 * (a booted guest), a quarter scattered one page in four (worst case for holes), all
 * zero. Prints the median of 5 runs per profile and one run with fsync for reference.
 * Then the restore-path read: snap_open + decoding every state section of a snapshot
 * with 2 vCPUs and 3 devices, median and p99 of 1000 runs.
 * usage: bench-snap-write [DIR] [MiB] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "restore/snap_kvm.h"
#include "common/log.h"

#define RUNS 5

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

static uint64_t last_cpu_ns; /* CPU time of the last one(): the load-independent figure */

static int one(const char *path, const uint8_t *mem, uint64_t len, bool fsync_too, bool thread,
	       uint64_t *total_ns, struct snap_write_stats *st)
{
	uint64_t c0 = cpu_ns();
	struct snap_writer_opts o = {.no_fsync = !fsync_too, .checksum_thread = thread};
	struct snap_writer *w;
	struct snap_machine m = {.mem_size = len, .nr_vcpus = 1, .nr_regions = 1};
	m.regions[0].size = len;
	uint64_t t0 = now_ns();
	int r = snap_writer_create(path, &o, &w);
	if (r)
		return r;
	r = snap_put_machine(w, &m);
	if (!r)
		r = snap_writer_set_memory(w, mem, len);
	if (r) {
		snap_writer_abort(w);
		return r;
	}
	r = snap_writer_commit(w, st);
	*total_ns = now_ns() - t0;
	last_cpu_ns = cpu_ns() - c0;
	return r;
}

static struct snap_vcpu_state vcpu;

/* The restore path's share of the format: open, validate, decode all state. */
static int bench_open(const char *path, const uint8_t *mem, uint64_t len)
{
	struct snap_writer *w;
	struct snap_writer_opts o = {.no_fsync = true};
	struct snap_machine m = {.mem_size = len, .nr_vcpus = 2, .nr_regions = 1};
	struct snap_vm_state vm = {0};
	static struct kvm_cpuid_entry2 cpuid[SNAP_MAX_CPUID];
	char err[256];
	m.regions[0].size = len;
	vcpu.nmsrs = 40;
	for (int i = 0; i < 40; i++)
		vcpu.msrs[i].index = 0xc0000080 + (uint32_t)i;
	for (int i = 0; i < 60; i++)
		cpuid[i].function = (uint32_t)i;
	int r = snap_writer_create(path, &o, &w);
	if (r)
		return 1;
	snap_put_machine(w, &m);
	snap_put_cpuid(w, cpuid, 60);
	snap_put_vcpu(w, 0, &vcpu);
	snap_put_vcpu(w, 1, &vcpu);
	snap_put_vm(w, &vm);
	for (int d = 0; d < 3; d++) {
		char id[8];
		struct snap_sec *s;
		struct snap_device_place pl = {0xd0000000 + 0x1000u * (unsigned)d, 0x1000, 5};
		snprintf(id, sizeof(id), "dev%d", d);
		snap_device_begin(w, id, "virtio-blk", 1, 0, &pl, &s);
		for (uint16_t t = 0; t < 30; t++)
			snap_put_u64(s, SNAP_DEV_TRANSPORT + t, t);
	}
	const char *cfg = "{\"machine-config\": {\"vcpu_count\": 2}}";
	snap_put_config(w, cfg, strlen(cfg));
	snap_writer_set_memory(w, mem, len);
	if (snap_writer_commit(w, NULL))
		return 1;
	enum { N = 1000 };
	static uint64_t t[N];
	size_t state = 0;
	for (int i = 0; i < N; i++) {
		struct snap *s;
		size_t n;
		uint64_t t0 = now_ns();
		if (snap_open(path, &s, err, sizeof(err))) {
			fprintf(stderr, "open: %s\n", err);
			return 1;
		}
		if (snap_get_machine(s, &m, err, sizeof(err)) ||
		    snap_get_cpuid(s, cpuid, SNAP_MAX_CPUID, &n, err, sizeof(err)) ||
		    snap_get_vcpu(s, 0, &vcpu, err, sizeof(err)) ||
		    snap_get_vcpu(s, 1, &vcpu, err, sizeof(err)) ||
		    snap_get_vm(s, &vm, err, sizeof(err))) {
			fprintf(stderr, "decode: %s\n", err);
			return 1;
		}
		t[i] = now_ns() - t0;
		const struct snap_section *last = snap_section_at(s, snap_section_count(s) - 2);
		state = (size_t)(last->offset + last->size);
		snap_close(s);
	}
	qsort(t, N, sizeof(t[0]), cmp_u64);
	printf("restore-path read (open + validate + decode machine, cpuid, 2 vcpus, vm; %zu "
	       "bytes of state): median %.1f us, p99 %.1f us\n",
	       state, t[N / 2] / 1e3, t[N * 99 / 100] / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 256;
	uint64_t len = mib << 20;
	char path[4096];
	snprintf(path, sizeof(path), "%s/bench-snap-write.%d.snap", dir, (int)getpid());
	uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	static const struct {
		const char *name;
		unsigned data_every; /* 1 of this many pages holds data; 0: none */
		bool clustered;	     /* same share, in runs of 1..256 pages */
	} prof[] = {{"all data", 1, false},
		    {"1/4 clustered", 4, true},
		    {"1/4 scattered", 4, false},
		    {"all zero", 0, false}};

	for (size_t p = 0; p < sizeof(prof) / sizeof(prof[0]); p++) {
		memset(mem, 0, len);
		uint64_t x = 0x9e3779b97f4a7c15ull;
		uint64_t run_left = 0;
		bool in_data = false;
		for (uint64_t pg = 0; prof[p].data_every && pg < len / 4096; pg++) {
			if (prof[p].clustered) {
				if (!run_left) {
					in_data = !in_data;
					x ^= x << 13, x ^= x >> 7, x ^= x << 17;
					run_left =
					    1 + x % 256 * (in_data ? 1 : prof[p].data_every - 1);
				}
				run_left--;
				if (!in_data)
					continue;
			} else if (pg % prof[p].data_every) {
				continue;
			}
			uint64_t *q = (uint64_t *)(void *)(mem + pg * 4096);
			for (int i = 0; i < 512; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				q[i] = x;
			}
		}
		uint64_t tot[RUNS], memns[RUNS], thr[RUNS], cpu[RUNS];
		struct snap_write_stats st;
		for (int i = 0; i < RUNS; i++) {
			int r = one(path, mem, len, false, true, &thr[i], &st);
			unlink(path);
			if (!r)
				r = one(path, mem, len, false, false, &tot[i], &st);
			cpu[i] = last_cpu_ns;
			if (r) {
				fprintf(stderr, "commit: %s\n", strerror(-r));
				return 1;
			}
			memns[i] = st.mem_ns;
			unlink(path); /* a fresh file each run, as a real create makes */
		}
		qsort(tot, RUNS, sizeof(tot[0]), cmp_u64);
		qsort(memns, RUNS, sizeof(memns[0]), cmp_u64);
		qsort(thr, RUNS, sizeof(thr[0]), cmp_u64);
		qsort(cpu, RUNS, sizeof(cpu[0]), cmp_u64);
		uint64_t fs_total;
		int r = one(path, mem, len, true, false, &fs_total, &st);
		unlink(path);
		if (r) {
			fprintf(stderr, "commit: %s\n", strerror(-r));
			return 1;
		}
		printf("%llu MiB, %-13s (%5.1f%% data): create to page cache median %.1f ms "
		       "(min %.1f, max %.1f; memory part %.1f ms; CPU time %.1f ms); with checksum "
		       "thread %.1f ms; "
		       "with fsync %.1f ms\n",
		       (unsigned long long)mib, prof[p].name,
		       100.0 * (double)st.data_pages / (double)(st.data_pages + st.zero_pages),
		       tot[RUNS / 2] / 1e6, tot[0] / 1e6, tot[RUNS - 1] / 1e6,
		       memns[RUNS / 2] / 1e6, cpu[RUNS / 2] / 1e6, thr[RUNS / 2] / 1e6,
		       fs_total / 1e6);
	}
	int r = bench_open(path, mem, len);
	unlink(path);
	munmap(mem, len);
	return r;
}
