/* One logging facility for every thaw program: levels, printf checking, and a
 * rate-limited form for paths a guest or a client can trigger at will. */
#ifndef THAW_LOG_H
#define THAW_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages at or below this level are printed; set once by main. */
void log_set_level(enum log_level level);
/* --log-level NAME for every program: "error", "warn", "info" or "debug". Returns 0, or
 * -1 after logging what was wrong with `name`. */
int log_set_level_name(const char *option, const char *name);
/* Prefix printed before every line ("thaw", "thaw-jailer", ...); not copied. */
void log_set_prefix(const char *prefix);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* A token bucket per call site: at most `burst` lines, then one per second;
 * the count of suppressed lines is reported with the next one let through. */
struct log_ratelimit {
	uint64_t last_ns;
	uint32_t tokens;
	uint32_t suppressed;
};

int log_ratelimit_allow(struct log_ratelimit *rl, uint32_t burst);

#define log_ratelimited(level, ...)                                                                \
	do {                                                                                       \
		static struct log_ratelimit rl__;                                                  \
		if (log_ratelimit_allow(&rl__, 10))                                                \
			log_msg(level, __VA_ARGS__);                                               \
	} while (0)

/* For functions that hand a cause back to their caller instead of logging it:
 * formats the message into `err` (`errlen` bytes, may be 0) and returns `ret`. */
int errf(char *err, size_t errlen, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Monotonic clock in nanoseconds. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
