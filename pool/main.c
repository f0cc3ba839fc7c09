/* thaw-pool: the supervisor's command line. */
#include "pool/pool.h"

#include "common/log.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: thaw-pool --state-dir DIR --api-sock PATH [--thaw FILE]\n"
		   "                 [--run-dir DIR] [--log-level error|warn|info|debug]\n"
		   "       thaw-pool --cleanup --state-dir DIR\n"
		   "  --thaw FILE: the thaw binary of unjailed pools (default: beside thaw-pool);\n"
		   "  jailed pools use thaw-jailer and thaw-static beside thaw-pool unless their\n"
		   "  PUT names others. --run-dir DIR: the processes' sockets and records go\n"
		   "  there (best a tmpfs), DIR/run becoming a link to it. docs/pool.md\n"
		   "  describes the API.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"state-dir", required_argument, NULL, 's'},
					     {"api-sock", required_argument, NULL, 'a'},
					     {"run-dir", required_argument, NULL, 'r'},
					     {"thaw", required_argument, NULL, 't'},
					     {"cleanup", no_argument, NULL, 'c'},
					     {"log-level", required_argument, NULL, 'l'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *state = NULL, *sock = NULL, *thaw = NULL, *run = NULL;
	char self[PATH_MAX], bindir[PATH_MAX], thawbuf[PATH_MAX + 8];
	struct poold_opts po;
	struct poold *d;
	bool cleanup = false;
	ssize_t n;
	int c, ret;

	log_set_prefix("thaw-pool");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'a':
			sock = optarg;
			break;
		case 't':
			thaw = optarg;
			break;
		case 'r':
			run = optarg;
			break;
		case 'c':
			cleanup = true;
			break;
		case 'l':
			if (log_set_level_name("--log-level", optarg))
				return 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc || !state || (!cleanup && !sock)) {
		usage(stderr);
		return 1;
	}
	if (state[0] != '/') {
		log_err("--state-dir %s: give an absolute path (it is recorded)", state);
		return 1;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		log_err("readlink /proc/self/exe: %s", strerror(errno));
		return 2;
	}
	self[n] = '\0';
	snprintf(bindir, sizeof(bindir), "%s", dirname(self));
	if (cleanup) {
		ret = pool_cleanup(state, bindir);
		if (ret) {
			log_err("--cleanup: something was left behind (see above)");
			return 2;
		}
		return 0;
	}
	if (!thaw) {
		snprintf(thawbuf, sizeof(thawbuf), "%s/thaw", bindir);
		thaw = thawbuf;
	}
	po.state_dir = state;
	po.run_dir = run;
	po.api_sock = sock;
	po.thaw = thaw;
	po.bindir = bindir;
	ret = poold_create(&po, &d);
	if (ret)
		return 2;
	ret = poold_run(d);
	poold_destroy(d);
	return ret ? 2 : 0;
}
