/* Command line of thaw-jailer: syntax checks only, nothing touches the file system
 * here, so a bad argument never leaves anything behind. */
#include "jailer/jailer.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jail_id_check(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > JAIL_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		if (!isascii(c) || !(isalnum(c) || c == '-'))
			return -EINVAL;
	}
	return 0;
}

int jail_path_check(const char *path)
{
	size_t n = strlen(path);
	const char *p = path;

	if (n == 0 || path[0] != '/')
		return -EINVAL;
	if (n >= PATH_MAX)
		return -ENAMETOOLONG;
	/* Reject any ".." component: the jailer works as root and must not be walked out
	 * of the directory the user named. */
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return -EINVAL;
		p += len;
		if (*p == '/')
			p++;
	}
	return 0;
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
    {"as", RLIMIT_AS},		 {"core", RLIMIT_CORE},
    {"cpu", RLIMIT_CPU},	 {"data", RLIMIT_DATA},
    {"fsize", RLIMIT_FSIZE},	 {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE},
    {"nice", RLIMIT_NICE},	 {"no-file", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC},	 {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},	 {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

int jail_rlimit_resource(const char *name)
{
	for (size_t i = 0; i < sizeof(rlimit_names) / sizeof(rlimit_names[0]); i++)
		if (strcmp(name, rlimit_names[i].name) == 0)
			return rlimit_names[i].resource;
	return -1;
}

static int parse_u32(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_rlimit(const char *spec, struct jail_config *cfg)
{
	const char *eq = strchr(spec, '=');
	char name[32];
	struct jail_rlimit *rl;
	char *end;
	int res;

	if (!eq || (size_t)(eq - spec) >= sizeof(name)) {
		log_err("validate: --resource-limit '%s': expected KEY=VALUE", spec);
		return -EINVAL;
	}
	memcpy(name, spec, (size_t)(eq - spec));
	name[eq - spec] = '\0';
	res = jail_rlimit_resource(name);
	if (res < 0) {
		log_err("validate: --resource-limit '%s': unknown resource '%s' (known: as, core, "
			"cpu, data, fsize, locks, memlock, msgqueue, nice, no-file, nproc, rss, "
			"rtprio, sigpending, stack)",
			spec, name);
		return -EINVAL;
	}
	if (cfg->n_rlimits == JAIL_MAX_RLIMITS) {
		log_err("validate: more than %d --resource-limit", JAIL_MAX_RLIMITS);
		return -EINVAL;
	}
	rl = &cfg->rlimits[cfg->n_rlimits];
	for (unsigned i = 0; i < cfg->n_rlimits; i++)
		if (cfg->rlimits[i].resource == res)
			rl = &cfg->rlimits[i]; /* the last one given wins */
	if (strcmp(eq + 1, "unlimited") == 0) {
		rl->value = RLIM_INFINITY;
	} else {
		if (!isdigit((unsigned char)eq[1])) {
			log_err("validate: --resource-limit '%s': value is not a number", spec);
			return -EINVAL;
		}
		errno = 0;
		unsigned long long v = strtoull(eq + 1, &end, 10);
		if (errno || *end || v >= RLIM_INFINITY) {
			log_err("validate: --resource-limit '%s': value is not a number", spec);
			return -EINVAL;
		}
		rl->value = (rlim_t)v;
	}
	rl->resource = res;
	rl->name = spec;
	if (rl == &cfg->rlimits[cfg->n_rlimits])
		cfg->n_rlimits++;
	return 0;
}

static int parse_cgroup(const char *spec, struct jail_config *cfg)
{
	const char *eq = strchr(spec, '=');
	const char *dot;
	struct jail_cgroup_setting *cg;
	size_t klen;

	if (!eq || eq == spec) {
		log_err("validate: --cgroup '%s': expected <controller>.<file>=VALUE", spec);
		return -EINVAL;
	}
	klen = (size_t)(eq - spec);
	if (cfg->n_cgroups == JAIL_MAX_CGROUPS) {
		log_err("validate: more than %d --cgroup", JAIL_MAX_CGROUPS);
		return -EINVAL;
	}
	cg = &cfg->cgroups[cfg->n_cgroups];
	if (klen >= sizeof(cg->key)) {
		log_err("validate: --cgroup '%s': key too long", spec);
		return -EINVAL;
	}
	memcpy(cg->key, spec, klen);
	cg->key[klen] = '\0';
	dot = strchr(cg->key, '.');
	/* The key names a file in the jail's cgroup directory: no path, and none of the
	 * cgroup core files, whose writes would move processes or change the hierarchy. */
	if (!dot || dot == cg->key || !dot[1] || strchr(cg->key, '/') ||
	    (size_t)(dot - cg->key) >= sizeof(cg->controller) ||
	    strncmp(cg->key, "cgroup.", 7) == 0 || strcmp(cg->key, "tasks") == 0) {
		log_err("validate: --cgroup '%s': unknown cgroup key '%s' (expected "
			"<controller>.<file>, e.g. pids.max, memory.max, cpu.shares)",
			spec, cg->key);
		return -EINVAL;
	}
	for (const char *p = cg->key; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_') {
			log_err("validate: --cgroup '%s': unknown cgroup key '%s'", spec, cg->key);
			return -EINVAL;
		}
	}
	memcpy(cg->controller, cg->key, (size_t)(dot - cg->key));
	cg->controller[dot - cg->key] = '\0';
	if (strlen(eq + 1) >= sizeof(cg->value) || strchr(eq + 1, '\n') || !eq[1]) {
		log_err("validate: --cgroup '%s': value empty, too long or multi-line", spec);
		return -EINVAL;
	}
	strcpy(cg->value, eq + 1);
	cfg->n_cgroups++;
	return 0;
}

int jail_link_parse(const char *spec, struct jail_link *link)
{
	char buf[PATH_MAX * 2];
	char *dst = NULL, *mode = NULL, *src;
	int ret;

	if (strlen(spec) >= sizeof(buf)) {
		log_err("validate: --link '%.64s...': too long", spec);
		return -EINVAL;
	}
	strcpy(buf, spec);
	src = buf;
	dst = strchr(buf, ':');
	if (dst) {
		*dst++ = '\0';
		mode = strchr(dst, ':');
		if (mode) {
			*mode++ = '\0';
		} else if (strcmp(dst, "ro") == 0 || strcmp(dst, "rw") == 0) {
			/* SRC:rw reads as a mode with the default destination. */
			mode = dst;
			dst = NULL;
		}
	}
	ret = jail_path_check(src);
	if (ret) {
		log_err("validate: --link '%s': source must be an absolute path without '..'",
			spec);
		return -EINVAL;
	}
	strcpy(link->src, src);
	link->ro = true;
	if (mode && strcmp(mode, "rw") == 0) {
		link->ro = false;
	} else if (mode && strcmp(mode, "ro") != 0) {
		log_err("validate: --link '%s': mode must be 'ro' or 'rw'", spec);
		return -EINVAL;
	}
	if (!dst || !*dst) {
		const char *base = strrchr(src, '/') + 1;
		if (!*base) {
			log_err("validate: --link '%s': source has no file name", spec);
			return -EINVAL;
		}
		snprintf(link->dst, sizeof(link->dst), "/%s", base);
	} else {
		if (snprintf(link->dst, sizeof(link->dst), "%s%s", dst[0] == '/' ? "" : "/", dst) >=
		    (int)sizeof(link->dst)) {
			log_err("validate: --link '%s': destination too long", spec);
			return -EINVAL;
		}
	}
	if (jail_path_check(link->dst) || strcmp(link->dst, "/") == 0 ||
	    strncmp(link->dst, "/dev/", 5) == 0 || strcmp(link->dst, "/dev") == 0 ||
	    strcmp(link->dst, "/old_root") == 0) {
		log_err("validate: --link '%s': destination '%s' must be a path inside the jail, "
			"without '..', not / and not under /dev",
			spec, link->dst);
		return -EINVAL;
	}
	return 0;
}

static int parse_devices(const char *list, unsigned *mask)
{
	char buf[128];
	char *save = NULL;

	if (strlen(list) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, list);
	*mask = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcmp(tok, "kvm") == 0)
			*mask |= JAIL_DEV_KVM;
		else if (strcmp(tok, "tun") == 0)
			*mask |= JAIL_DEV_TUN;
		else if (strcmp(tok, "userfaultfd") == 0 || strcmp(tok, "uffd") == 0)
			*mask |= JAIL_DEV_UFFD;
		else if (strcmp(tok, "urandom") == 0)
			*mask |= JAIL_DEV_URANDOM;
		else if (strcmp(tok, "none") != 0)
			return -EINVAL;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: thaw-jailer --id ID --exec-file PATH --uid U --gid G\n"
	    "                   [--chroot-base DIR] [--netns PATH] [--parent-cgroup REL]\n"
	    "                   [--cgroup KEY=VALUE ...] [--cgroup-version 1|2]\n"
	    "                   [--resource-limit KEY=VALUE ...] [--new-pid-ns] [--daemonize]\n"
	    "                   [--link SRC[:DST[:ro|rw]] ...] [--devices kvm,tun,uffd,urandom]\n"
	    "                   [-v] -- <arguments for the exec file>\n"
	    "       thaw-jailer --cleanup --id ID [--chroot-base DIR] [--parent-cgroup REL]\n"
	    "                   [--exec-file PATH] (names the jail's folder; default thaw)\n");
}

enum {
	OPT_ID = 256,
	OPT_EXEC,
	OPT_UID,
	OPT_GID,
	OPT_BASE,
	OPT_NETNS,
	OPT_CGROUP,
	OPT_CGVER,
	OPT_PARENT,
	OPT_RLIMIT,
	OPT_PIDNS,
	OPT_DAEMON,
	OPT_LINK,
	OPT_DEVICES,
	OPT_CLEANUP,
};

const char *jail_exec_name(const struct jail_config *cfg)
{
	return cfg->exec_file ? strrchr(cfg->exec_file, '/') + 1 : JAIL_DEFAULT_EXEC_NAME;
}

int jail_parse_args(int argc, char **argv, struct jail_config *cfg)
{
	static const struct option opts[] = {
	    {"id", required_argument, NULL, OPT_ID},
	    {"exec-file", required_argument, NULL, OPT_EXEC},
	    {"uid", required_argument, NULL, OPT_UID},
	    {"gid", required_argument, NULL, OPT_GID},
	    {"chroot-base", required_argument, NULL, OPT_BASE},
	    {"chroot-base-dir", required_argument, NULL, OPT_BASE},
	    {"netns", required_argument, NULL, OPT_NETNS},
	    {"cgroup", required_argument, NULL, OPT_CGROUP},
	    {"cgroup-version", required_argument, NULL, OPT_CGVER},
	    {"parent-cgroup", required_argument, NULL, OPT_PARENT},
	    {"resource-limit", required_argument, NULL, OPT_RLIMIT},
	    {"new-pid-ns", no_argument, NULL, OPT_PIDNS},
	    {"daemonize", no_argument, NULL, OPT_DAEMON},
	    {"link", required_argument, NULL, OPT_LINK},
	    {"devices", required_argument, NULL, OPT_DEVICES},
	    {"cleanup", no_argument, NULL, OPT_CLEANUP},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned long v;
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->base = JAIL_DEFAULT_BASE;
	cfg->parent_cgroup = JAIL_DEFAULT_PARENT;
	cfg->devices = JAIL_DEV_ALL;
	optind = 1;
	opterr = 0;
	/* "+": stop at the first non-option so thaw's own arguments are never parsed. */
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ID:
			cfg->id = optarg;
			break;
		case OPT_EXEC:
			cfg->exec_file = optarg;
			break;
		case OPT_UID:
			if (parse_u32(optarg, 0xfffffffeul, &v)) {
				log_err("validate: --uid '%s': not a number", optarg);
				return -EINVAL;
			}
			cfg->uid = (uid_t)v;
			cfg->have_uid = true;
			break;
		case OPT_GID:
			if (parse_u32(optarg, 0xfffffffeul, &v)) {
				log_err("validate: --gid '%s': not a number", optarg);
				return -EINVAL;
			}
			cfg->gid = (gid_t)v;
			cfg->have_gid = true;
			break;
		case OPT_BASE:
			cfg->base = optarg;
			break;
		case OPT_NETNS:
			cfg->netns = optarg;
			break;
		case OPT_CGROUP:
			if (parse_cgroup(optarg, cfg))
				return -EINVAL;
			break;
		case OPT_CGVER:
			if (strcmp(optarg, "1") == 0) {
				cfg->cgroup_version = 1;
			} else if (strcmp(optarg, "2") == 0) {
				cfg->cgroup_version = 2;
			} else {
				log_err("validate: --cgroup-version '%s': must be 1 or 2", optarg);
				return -EINVAL;
			}
			break;
		case OPT_PARENT:
			cfg->parent_cgroup = optarg;
			break;
		case OPT_RLIMIT:
			if (parse_rlimit(optarg, cfg))
				return -EINVAL;
			break;
		case OPT_PIDNS:
			cfg->new_pid_ns = true;
			break;
		case OPT_DAEMON:
			cfg->daemonize = true;
			break;
		case OPT_LINK:
			if (cfg->n_links == JAIL_MAX_LINKS) {
				log_err("validate: more than %d --link", JAIL_MAX_LINKS);
				return -EINVAL;
			}
			if (jail_link_parse(optarg, &cfg->links[cfg->n_links]))
				return -EINVAL;
			cfg->n_links++;
			break;
		case OPT_DEVICES:
			if (parse_devices(optarg, &cfg->devices)) {
				log_err(
				    "validate: --devices '%s': expected a comma list of kvm, tun, "
				    "uffd, urandom or 'none'",
				    optarg);
				return -EINVAL;
			}
			break;
		case OPT_CLEANUP:
			cfg->cleanup = true;
			break;
		case 'v':
			cfg->verbose++;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			log_err("validate: unknown or incomplete option '%s'", argv[optind - 1]);
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0) {
		log_err("validate: unexpected argument '%s' (thaw's arguments go after '--')",
			argv[optind]);
		return -EINVAL;
	}
	cfg->exec_args = argv + optind;
	cfg->n_exec_args = argc - optind;
	if (cfg->n_exec_args > JAIL_MAX_EXEC_ARGS) {
		log_err("validate: more than %d arguments after '--'", JAIL_MAX_EXEC_ARGS);
		return -EINVAL;
	}

	if (!cfg->id) {
		log_err("validate: --id is required");
		return -EINVAL;
	}
	if (jail_id_check(cfg->id)) {
		log_err("validate: --id '%.80s': must be 1 to %d letters, digits or hyphens",
			cfg->id, JAIL_ID_MAX);
		return -EINVAL;
	}
	if (jail_path_check(cfg->base)) {
		log_err("validate: --chroot-base '%s': must be an absolute path without '..'",
			cfg->base);
		return -EINVAL;
	}
	if (cfg->parent_cgroup[0] == '/' || !cfg->parent_cgroup[0] ||
	    strlen(cfg->parent_cgroup) > 128) {
		log_err("validate: --parent-cgroup '%s': must be a relative path",
			cfg->parent_cgroup);
		return -EINVAL;
	}
	{
		/* Same rule as paths, checked on "/<parent>". */
		char p[160];
		snprintf(p, sizeof(p), "/%s", cfg->parent_cgroup);
		if (jail_path_check(p)) {
			log_err("validate: --parent-cgroup '%s': must not contain '..'",
				cfg->parent_cgroup);
			return -EINVAL;
		}
	}
	if (cfg->exec_file && jail_path_check(cfg->exec_file)) {
		log_err("validate: --exec-file '%s': must be an absolute path without '..'",
			cfg->exec_file);
		return -EINVAL;
	}
	if (cfg->exec_file && !strrchr(cfg->exec_file, '/')[1]) {
		log_err("validate: --exec-file '%s': names a directory", cfg->exec_file);
		return -EINVAL;
	}
	if (cfg->cleanup)
		return 0;

	if (!cfg->exec_file) {
		log_err("validate: --exec-file is required");
		return -EINVAL;
	}
	if (jail_path_check(cfg->exec_file)) {
		log_err("validate: --exec-file '%s': must be an absolute path without '..'",
			cfg->exec_file);
		return -EINVAL;
	}
	if (!cfg->have_uid || !cfg->have_gid) {
		log_err("validate: --uid and --gid are required");
		return -EINVAL;
	}
	if (cfg->netns && jail_path_check(cfg->netns)) {
		log_err("validate: --netns '%s': must be an absolute path without '..'",
			cfg->netns);
		return -EINVAL;
	}
	{
		const char *name = strrchr(cfg->exec_file, '/') + 1;
		if (!*name) {
			log_err("validate: --exec-file '%s': names a directory", cfg->exec_file);
			return -EINVAL;
		}
		for (unsigned i = 0; i < cfg->n_links; i++) {
			if (strcmp(cfg->links[i].dst + 1, name) == 0) {
				log_err("validate: --link destination '%s' is where the exec file "
					"goes",
					cfg->links[i].dst);
				return -EINVAL;
			}
		}
	}
	return 0;
}
