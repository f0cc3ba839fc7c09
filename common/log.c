#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_level max_level = LOG_INFO;
static const char *log_prefix = "thaw";

void log_set_level(enum log_level level)
{
	max_level = level;
}

int log_set_level_name(const char *option, const char *name)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i])) {
			log_set_level((enum log_level)i);
			return 0;
		}
	log_err("%s: '%s' is not one of error, warn, info, debug", option, name);
	return -1;
}

void log_set_prefix(const char *prefix)
{
	log_prefix = prefix;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char line[1024];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads do not interleave. */
	fprintf(stderr, "%s: %s: %s\n", log_prefix, names[level], line);
}

int log_ratelimit_allow(struct log_ratelimit *rl, uint32_t burst)
{
	uint64_t now = now_ns();

	if (now - rl->last_ns >= 1000000000ull) {
		rl->last_ns = now;
		if (rl->suppressed)
			log_msg(LOG_WARN, "(%u similar messages suppressed)", rl->suppressed);
		rl->suppressed = 0;
		rl->tokens = burst;
	}
	if (rl->tokens == 0) {
		rl->suppressed++;
		return 0;
	}
	rl->tokens--;
	return 1;
}

int errf(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}
