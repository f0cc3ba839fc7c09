/* thaw-jailer: see jailer/jailer.h and docs/jailer.md. */
#include "jailer/jailer.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	/* Large (links carry paths) and only main's: static rather than on the stack. */
	static struct jail_config cfg;
	int ret;

	log_set_prefix("thaw-jailer");
	ret = jail_parse_args(argc, argv, &cfg);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (cfg.verbose)
		log_set_level(LOG_DEBUG);
	if (cfg.cleanup)
		return jail_cleanup(&cfg) ? 1 : 0;
	ret = jail_run(&cfg);
	/* jail_run returns only on failure; the message naming the step is out. */
	log_err("no jail for '%s': %s", cfg.id, strerror(-ret));
	return 1;
}
