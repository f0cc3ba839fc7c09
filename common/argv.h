/* Building a program's argument vector for posix_spawn, and running a helper program to
 * its end: what thaw-pool and thaw-oci do when they start thaw or thaw-jailer. */
#ifndef THAW_ARGV_H
#define THAW_ARGV_H

#include <stdbool.h>
#include <spawn.h>
#include <stddef.h>
#include <sys/types.h>

/* A NULL-terminated vector `a` with room for fixed lists of ours; formatted arguments
 * live in `store`. An argument that does not fit is dropped and `overflow` set: a bug
 * in the caller's list, which it checks before spawning. Zero-initialise before use. */
struct argv {
	const char *a[96];
	size_t n;
	char store[8192];
	size_t used;
	bool overflow;
};

/* Appends s (not copied: it must outlive the vector). */
void argv_add(struct argv *v, const char *s);
/* Appends a formatted argument, copied into v->store. */
void argv_addf(struct argv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts v's program in a session of its own, with every signal unblocked and at its
 * default action (a caller's signalfd set-up must not reach the child), with the file
 * actions fa (may be NULL). Returns 0 with *pid set, or a positive errno as posix_spawn
 * does (E2BIG when v overflowed). */
int argv_spawn_session(pid_t *pid, const struct argv *v, const posix_spawn_file_actions_t *fa);

/* Runs argv[0] with stdin and stdout on /dev/null (stderr too when quiet) and waits for
 * it. Returns 0 when it exited 0, -EIO when it failed, or -errno when it could not run. */
int argv_run_wait(const char *const *argv, bool quiet);

#endif
