/* thaw's uffd backend (uffd_restore_memory .. uffd_stop) over a VM that is only a
 * struct uffd_vm: plain memory and callbacks, no KVM and no vmm/ (this program links
 * libuffd, libsnap and libcommon alone). Faults are served from a real snapshot file,
 * discards translate through the VM's callback, the stall detector samples and kicks
 * through it, and a dead external handler ends the VM through request_exit. Skipped
 * when this host refuses userfaultfd. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "restore/snapshot.h"
#include "uffd/uffd.h"

#define NPAGES 64
#define SIZE   ((uint64_t)NPAGES * UFFD_PAGE)

/* The fake VM: what the callbacks saw. Written on uffd's threads. */
struct fake {
	uint8_t *host; /* for gpa_to_host, once mapped */
	int filters, exits, exit_status, samples, probes;
	char why[640];
	uint64_t seq, fp_seq, fp;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static int fake_thread_filter(void *opaque)
{
	struct fake *f = opaque;

	__atomic_add_fetch(&f->filters, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void fake_request_exit(void *opaque, int status, const char *why)
{
	struct fake *f = opaque;

	pthread_mutex_lock(&f->lock);
	if (!f->exits++) {
		f->exit_status = status;
		snprintf(f->why, sizeof(f->why), "%s", why);
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static enum uffd_vm_phase fake_phase(void *opaque)
{
	return UFFD_VM_RUNNING;
}

/* One vCPU that runs guest code without exits: a kick makes it come back at once, each
 * time at other registers (healthy, never stuck). */
static void fake_vcpu_sample(void *opaque, unsigned i, struct uffd_vcpu_sample *s)
{
	struct fake *f = opaque;

	pthread_mutex_lock(&f->lock);
	f->samples++;
	*s = (struct uffd_vcpu_sample){
	    .active = true, .seq = f->seq, .exits = 1, .fp_seq = f->fp_seq, .fp = f->fp};
	pthread_mutex_unlock(&f->lock);
}

static void fake_vcpu_probe(void *opaque, unsigned i)
{
	struct fake *f = opaque;

	pthread_mutex_lock(&f->lock);
	f->probes++;
	f->seq += 2;
	f->fp_seq += 2;
	f->fp++;
	pthread_mutex_unlock(&f->lock);
}

/* Guest physical = offset in the mapping, RAM [0, SIZE). */
static void *fake_gpa_to_host(void *opaque, uint64_t gpa, uint64_t len)
{
	struct fake *f = opaque;

	if (gpa >= SIZE || len > SIZE - gpa)
		return NULL;
	return f->host + gpa;
}

static struct uffd_vm fake_vm(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	return (struct uffd_vm){.size = SIZE,
				.nr_regions = 2,
				.regions = {{0, SIZE / 2}, {SIZE / 2, SIZE / 2}},
				.nr_vcpus = 1,
				.exit_status = 42,
				.opaque = f,
				.thread_filter = fake_thread_filter,
				.request_exit = fake_request_exit,
				.phase = fake_phase,
				.vcpu_sample = fake_vcpu_sample,
				.vcpu_probe = fake_vcpu_probe,
				.gpa_to_host = fake_gpa_to_host};
}

static uint8_t byte_at(uint64_t off)
{
	return (uint8_t)(off * 31 + 7);
}

/* A snapshot whose memory holds byte_at(offset); false when userfaultfd is refused. */
static bool make_snapshot(char *dir, char *path, size_t len, struct snap **s)
{
	static uint8_t mem[SIZE];
	struct snap_writer *w;
	char err[256];
	int fd = uffd_open(err, sizeof(err));

	if (fd < 0) {
		print_message("SKIPPED: %s\n", err);
		return false;
	}
	close(fd);
	assert_non_null(mkdtemp(dir));
	snprintf(path, len, "%s/vm.snap", dir);
	for (uint64_t i = 0; i < SIZE; i++)
		mem[i] = byte_at(i);
	assert_int_equal(snap_writer_create(path, &(struct snap_writer_opts){.no_fsync = true}, &w),
			 0);
	assert_int_equal(snap_writer_set_memory(w, mem, sizeof(mem)), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(path, s, err, sizeof(err)), 0);
	return true;
}

static void remove_snapshot(const char *dir, const char *path, struct snap *s)
{
	snap_close(s);
	unlink(path);
	rmdir(dir);
}

static void faults_are_served_from_the_snapshot_into_a_vm_of_callbacks(void **state)
{
	char dir[] = "/tmp/thaw-uffdbe-XXXXXX", path[300], err[256];
	struct uffd_restore_opts o = {.strategy = "ondemand:4k"};
	struct uffd_backend *b = NULL;
	struct snap *s;
	struct fake f;
	struct uffd_vm vm = fake_vm(&f);

	if (!make_snapshot(dir, path, sizeof(path), &s))
		skip();
	vm.stall_ms = 30; /* a check every 10 ms */
	assert_int_equal(uffd_restore_memory(&vm, s, &o, &b, err, sizeof(err)), 0);
	assert_non_null(b);
	assert_non_null(vm.host);
	f.host = vm.host;

	/* Both regions are served, each page from its offset in the snapshot. */
	for (uint64_t p = 0; p < NPAGES; p += 7)
		assert_int_equal(f.host[p * UFFD_PAGE + 5], byte_at(p * UFFD_PAGE + 5));
	assert_int_equal(f.host[SIZE - 1], byte_at(SIZE - 1));

	/* A discard goes through gpa_to_host and reads back as zeros. */
	assert_int_equal(uffd_discard(b, 2 * UFFD_PAGE, UFFD_PAGE), 0);
	assert_int_equal(f.host[2 * UFFD_PAGE + 5], 0);
	assert_int_equal(f.host[3 * UFFD_PAGE + 5], byte_at(3 * UFFD_PAGE + 5));
	assert_int_equal(uffd_discard(b, SIZE, UFFD_PAGE), -EINVAL);
	assert_int_equal(uffd_discard(b, 1, UFFD_PAGE), -EINVAL);
	assert_int_equal(uffd_discard(NULL, 0, UFFD_PAGE), -ENODEV);

	/* The stall detector samples and kicks the vCPU through the callbacks, and a
	 * vCPU that comes back from each kick is not taken for stuck. */
	for (int i = 0; i < 200 && __atomic_load_n(&f.probes, __ATOMIC_SEQ_CST) < 3; i++)
		usleep(10000);
	uffd_stop(b);
	assert_true(f.samples >= 3);
	assert_true(f.probes >= 3);
	assert_int_equal(f.exits, 0);
	assert_int_equal(f.filters, 2); /* the handler and the control thread */
	munmap(vm.host, SIZE);
	remove_snapshot(dir, path, s);
}

struct peer {
	int listen_fd;
	int uffd;
	char json[UFFD_MSG_MAX];
};

/* The external handler: takes the handshake, then hangs up without serving. */
static void *peer_main(void *opaque)
{
	struct peer *p = opaque;
	char err[256];
	int c = accept(p->listen_fd, NULL, NULL);

	if (c < 0)
		return NULL;
	if (uffd_handshake_recv(c, p->json, sizeof(p->json), &p->uffd, err, sizeof(err)) < 0)
		p->uffd = -1;
	close(c);
	return NULL;
}

static void a_handler_that_hangs_up_ends_the_vm_through_request_exit(void **state)
{
	char dir[] = "/tmp/thaw-uffdbe-XXXXXX", path[300], err[256];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct uffd_restore_opts o = {.external = true, .sock = sa.sun_path};
	struct uffd_backend *b = NULL;
	struct uffd_region r[UFFD_MAX_REGIONS];
	struct peer p = {.uffd = -1};
	struct timespec until;
	struct snap *s;
	struct fake f;
	struct uffd_vm vm = fake_vm(&f);
	pthread_t t;
	size_t n;

	if (!make_snapshot(dir, path, sizeof(path), &s))
		skip();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/h.sock", dir);
	p.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p.listen_fd >= 0);
	assert_int_equal(bind(p.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p.listen_fd, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, peer_main, &p), 0);

	assert_int_equal(uffd_restore_memory(&vm, s, &o, &b, err, sizeof(err)), 0);
	pthread_join(t, NULL);
	/* The handler was told about both regions at the new mapping. */
	assert_true(p.uffd >= 0);
	assert_int_equal(
	    uffd_regions_parse(p.json, strlen(p.json), r, UFFD_MAX_REGIONS, &n, err, sizeof(err)),
	    0);
	assert_int_equal(n, 2);
	assert_int_equal(r[1].base, (uint64_t)(uintptr_t)vm.host + SIZE / 2);
	assert_int_equal(r[1].offset, SIZE / 2);

	/* Stopping within the control thread's grace period, as thaw's main loop does. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&f.lock);
	while (!f.exits && pthread_cond_timedwait(&f.cond, &f.lock, &until) == 0)
		;
	pthread_mutex_unlock(&f.lock);
	uffd_stop(b);
	assert_int_equal(f.exits, 1);
	assert_int_equal(f.exit_status, 42);
	assert_non_null(strstr(f.why, "uffd: the page-fault handler"));
	close(p.uffd);
	close(p.listen_fd);
	unlink(sa.sun_path);
	munmap(vm.host, SIZE);
	remove_snapshot(dir, path, s);
}

static void a_vm_without_regions_is_refused_before_anything_is_mapped(void **state)
{
	char err[256];
	struct uffd_restore_opts o = {0};
	struct uffd_backend *b = NULL;
	struct fake f;
	struct uffd_vm vm = fake_vm(&f);

	vm.nr_regions = 0;
	assert_int_equal(uffd_restore_memory(&vm, NULL, &o, &b, err, sizeof(err)), -EINVAL);
	assert_null(vm.host);
	assert_null(b);
	vm.nr_regions = UFFD_MAX_REGIONS + 1;
	assert_int_equal(uffd_restore_memory(&vm, NULL, &o, &b, err, sizeof(err)), -EINVAL);
	assert_null(vm.host);
	assert_non_null(strstr(err, "memory regions"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(faults_are_served_from_the_snapshot_into_a_vm_of_callbacks),
	    cmocka_unit_test(a_handler_that_hangs_up_ends_the_vm_through_request_exit),
	    cmocka_unit_test(a_vm_without_regions_is_refused_before_anything_is_mapped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
