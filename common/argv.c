/* Argument vectors for posix_spawn and a run-to-completion helper (common/argv.h). */
#include "common/argv.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

void argv_add(struct argv *v, const char *s)
{
	if (v->n < sizeof(v->a) / sizeof(v->a[0]) - 1)
		v->a[v->n++] = s;
	else
		v->overflow = true;
	v->a[v->n] = NULL;
}

void argv_addf(struct argv *v, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(v->store + v->used, sizeof(v->store) - v->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(v->store) - v->used) {
		v->overflow = true;
		return;
	}
	argv_add(v, v->store + v->used);
	v->used += (size_t)n + 1;
}

int argv_spawn_session(pid_t *pid, const struct argv *v, const posix_spawn_file_actions_t *fa)
{
	posix_spawnattr_t sa;
	sigset_t none, all;
	int ret;

	if (v->overflow || !v->n)
		return E2BIG;
	posix_spawnattr_init(&sa);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setsigdefault(&sa, &all);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					  POSIX_SPAWN_SETSIGDEF);
	ret = posix_spawn(pid, v->a[0], fa, &sa, (char *const *)v->a, environ);
	posix_spawnattr_destroy(&sa);
	return ret;
}

int argv_run_wait(const char *const *argv, bool quiet)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int ret, st;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (quiet)
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	ret = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		return -ret;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}
