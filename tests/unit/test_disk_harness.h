/* Shared by the disk tests: a scratch directory, shell commands (qemu-img is the
 * judge of every image thaw writes), and a loud skip when qemu-img is missing. */
#ifndef TEST_DISK_HARNESS_H
#define TEST_DISK_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/disk/disk.h"

struct dfx {
	char dir[64];
	char err[512];
};

/* Runs a shell command (stdout and stderr to `out` when given, else discarded);
 * returns its exit status, or -1 when it did not exit. */
static inline int sh_out(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int sh_out(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	FILE *p;
	size_t n = 0;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (out && outlen) {
		n = fread(out, 1, outlen - 1, p);
		out[n] = 0;
	} else {
		char sink[4096];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
#define sh(...) sh_out(NULL, 0, __VA_ARGS__)

static inline bool have_qemu_img(void)
{
	return sh("command -v qemu-img && command -v qemu-io") == 0;
}

/* Skips the test, saying so where a reader of the log will see it. */
#define REQUIRE_QEMU_IMG()                                                                         \
	do {                                                                                       \
		if (!have_qemu_img()) {                                                            \
			fprintf(stderr,                                                            \
				"*** SKIPPED %s: qemu-img/qemu-io missing; `make deps` "           \
				"installs qemu-utils ***\n",                                       \
				__func__);                                                         \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static inline int dfx_setup(void **state)
{
	struct dfx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_disk.XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static inline int dfx_teardown(void **state)
{
	struct dfx *f = *state;

	sh("rm -rf '%s'", f->dir);
	free(f);
	return 0;
}

/* `name` inside the fixture's directory (a static buffer per slot 0..3). */
static inline const char *P(struct dfx *f, unsigned slot, const char *name)
{
	static char paths[4][160];

	snprintf(paths[slot & 3], sizeof(paths[0]), "%s/%s", f->dir, name);
	return paths[slot & 3];
}

static inline struct disk *open_rw(struct dfx *f, const char *path)
{
	struct disk *d = NULL;
	int ret = disk_open(path, false, &d, f->err, sizeof(f->err));

	if (ret)
		fprintf(stderr, "open %s: %s\n", path, f->err);
	assert_int_equal(ret, 0);
	return d;
}

/* qemu-img check's verdict: 0 clean, 2 corruption, 3 leaks only. */
static inline int qemu_check(const char *img)
{
	char out[4096];
	int rc = sh_out(out, sizeof(out), "qemu-img check '%s'", img);

	if (rc != 0)
		fprintf(stderr, "qemu-img check %s (exit %d):\n%s", img, rc, out);
	return rc;
}

static inline int qemu_compare(const char *a, const char *b)
{
	char out[4096];
	int rc = sh_out(out, sizeof(out), "qemu-img compare '%s' '%s'", a, b);

	if (rc != 0)
		fprintf(stderr, "qemu-img compare %s %s (exit %d):\n%s", a, b, rc, out);
	return rc;
}

static inline uint64_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static inline void fill(uint8_t *b, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((seed * 131 + i * 7 + (i >> 9)) ^ (seed >> 3));
}

/* `name` in the build directory of this test program (build/tests/X -> build/name),
 * or a loud skip when it cannot be accessed with `mode` (access(2)). The last four
 * answers stay valid. */
static inline const char *build_file(const char *name, int mode)
{
	static char paths[4][4200];
	static unsigned next;
	char *path = paths[next++ & 3], exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	assert_true(n > 0);
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	*strrchr(exe, '/') = 0;
	snprintf(path, sizeof(paths[0]), "%s/%s", exe, name);
	if (access(path, mode)) {
		fprintf(stderr, "*** SKIPPED: %s is not built ***\n", path);
		skip();
	}
	return path;
}

/* The thaw-disk next to this test program (build/tests/X -> build/thaw-disk). */
static inline const char *thaw_disk_bin(void)
{
	return build_file("thaw-disk", X_OK);
}

#endif
