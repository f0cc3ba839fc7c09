/* The programs in the build directory keep the hardening the Makefile asks for: a
 * read-only relocation segment (RELRO), immediate binding where there is a dynamic
 * section, every compile unit of ours built with stack canaries, stack-clash probes and
 * CET landing pads (as its DWARF producer line records), and fortified libc calls in our
 * code. Read with readelf, as checksec does; a program linked or compiled without them
 * fails. */
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static const char *const programs[] = {"thaw",	    "thaw-jailer", "thaw-uffd", "thawctl",
				       "thaw-snap", "thaw-pool",   "thaw-disk", "thaw-oci"};
#define NPROGRAMS (sizeof(programs) / sizeof(programs[0]))

static char build_dir[PATH_MAX];

/* Calls `line` for each line `readelf ARGS PROGRAM` prints; fails the test when readelf
 * cannot run or fails. */
static void readelf(const char *args, const char *prog, void (*line)(const char *, void *),
		    void *opaque)
{
	char cmd[PATH_MAX + 128], buf[4096];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "readelf %s '%s/%s' 2>&1", args, build_dir, prog);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(buf, sizeof(buf), f))
		line(buf, opaque);
	if (pclose(f) != 0)
		fail_msg("%s failed", cmd);
}

struct segments {
	bool relro, dynamic;
};

static void on_segment(const char *l, void *opaque)
{
	struct segments *s = opaque;

	s->relro |= strncmp(l, "  GNU_RELRO ", 12) == 0;
	s->dynamic |= strncmp(l, "  DYNAMIC ", 10) == 0;
}

static void programs_have_a_relro_segment(void **state)
{
	for (size_t i = 0; i < NPROGRAMS; i++) {
		struct segments s = {0};

		readelf("-lW", programs[i], on_segment, &s);
		if (!s.relro)
			fail_msg("%s has no GNU_RELRO segment (-Wl,-z,relro)", programs[i]);
	}
}

static void on_dynamic(const char *l, void *opaque)
{
	bool *now = opaque;

	if ((strstr(l, "(FLAGS)") && strstr(l, "BIND_NOW")) ||
	    (strstr(l, "(FLAGS_1)") && strstr(l, " NOW")))
		*now = true;
}

/* Full RELRO: with lazy binding the GOT stays writable for the process's life. A
 * program linked -static has no dynamic section and nothing to bind. */
static void dynamic_programs_bind_now(void **state)
{
	for (size_t i = 0; i < NPROGRAMS; i++) {
		struct segments s = {0};
		bool now = false;

		readelf("-lW", programs[i], on_segment, &s);
		if (!s.dynamic)
			continue;
		readelf("-dW", programs[i], on_dynamic, &now);
		if (!now)
			fail_msg("%s binds lazily (-Wl,-z,now)", programs[i]);
	}
}

struct producers {
	unsigned units, missing;
	char first_bad[512];
};

static void on_info(const char *l, void *opaque)
{
	static const char *const flags[] = {" -fstack-protector-strong",
					    " -fstack-clash-protection", " -fcf-protection"};
	struct producers *p = opaque;
	const char *c = strstr(l, "GNU C");

	/* C units only: a sanitizer build links a C++ unit of its runtime */
	if (!strstr(l, "DW_AT_producer") || !c || c[5] < '0' || c[5] > '9')
		return;
	p->units++;
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (!strstr(l, flags[i])) {
			if (!p->missing++)
				snprintf(p->first_bad, sizeof(p->first_bad), "%s", l);
			return;
		}
	}
}

/* Only our own objects carry C DWARF (libc's static archives have none here), so every
 * C producer line is one of our compile units. */
static void our_code_has_canaries_stack_probes_and_cet(void **state)
{
	for (size_t i = 0; i < NPROGRAMS; i++) {
		struct producers p = {0};

		readelf("--debug-dump=info", programs[i], on_info, &p);
		if (p.units == 0)
			fail_msg("%s: no DWARF producer to check (built without -g?)", programs[i]);
		if (p.missing)
			fail_msg("%s: %u of %u compile units lack -fstack-protector-strong, "
				 "-fstack-clash-protection or -fcf-protection; the first: %s",
				 programs[i], p.missing, p.units, p.first_bad);
	}
}

static void on_line_file(const char *l, void *opaque)
{
	unsigned *n = opaque;

	if (strstr(l, "string_fortified.h") || strstr(l, "stdio2.h"))
		(*n)++;
}

/* _FORTIFY_SOURCE leaves no mark on the producer line, and a static program holds
 * glibc's checking functions whoever calls them (libseccomp and json-c do). What only it
 * brings into our own compile units are glibc's fortify wrappers, inlined from
 * bits/string_fortified.h and bits/stdio2.h (headers glibc includes only with it on):
 * the DWARF line tables then name those files. */
static void our_code_calls_fortified_libc(void **state)
{
#ifdef __SANITIZE_ADDRESS__
	print_message("SKIPPED: sanitizer builds leave _FORTIFY_SOURCE off (Makefile)\n");
	return;
#endif
	for (size_t i = 0; i < NPROGRAMS; i++) {
		unsigned n = 0;

		readelf("--debug-dump=rawline", programs[i], on_line_file, &n);
		if (n == 0)
			fail_msg("%s: no fortified libc call in our code (-D_FORTIFY_SOURCE=2)",
				 programs[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(programs_have_a_relro_segment),
	    cmocka_unit_test(dynamic_programs_bind_now),
	    cmocka_unit_test(our_code_has_canaries_stack_probes_and_cet),
	    cmocka_unit_test(our_code_calls_fortified_libc),
	};
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return 1;
	self[n] = 0;
	snprintf(build_dir, sizeof(build_dir), "%s/..", dirname(self)); /* $(B)/tests/.. */
	return cmocka_run_group_tests_name("hardening", tests, NULL, NULL);
}
