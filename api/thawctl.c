/* thawctl: a small client of thaw's API socket for people. It prints what happened in words,
 * the server's fault_message on errors, and exits 0 on success, 1 when the server refused,
 * 2 on a usage error, 3 when the socket could not be used. */
#include "api/api.h"
#include "common/log.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: thawctl --sock PATH COMMAND\n"
		"commands:\n"
		"  info                          instance id, state and version (GET /)\n"
		"  config                        machine configuration (GET /machine-config)\n"
		"  start                         boot the configured VM (InstanceStart)\n"
		"  pause | resume                PATCH /vm\n"
		"  metrics                       write a metrics line (FlushMetrics)\n"
		"  snapshot create FILE [--mem FILE] [--diff]\n"
		"  snapshot load FILE [--mem FILE | --uffd SOCK] [--resume | --paused]\n"
		"                [--clock-realtime] [--net IFACE=TAP]... [--vsock-uds PATH]\n"
		"  raw METHOD PATH [JSON]        any request; prints status and body\n"
		"thaw-pool's socket (docs/pool.md):\n"
		"  pool create ID SNAPSHOT [--prepared N] [--max-clones N] [--max-mem-mib M]\n"
		"              [--refill-per-s R] [--mem FILE | --uffd SOCK] [--vsock]\n"
		"              [--jail-uid U --jail-gid G [--chroot-base DIR] [--cgroup K=V]...]\n"
		"  pool show ID | pool list | pool delete ID | pool clones ID | pool metrics\n"
		"  pool clone ID [--count N] [--paused] [--clock-realtime] [--vsock-dir DIR]\n"
		"             [--drive ID=PATH]...\n"
		"  pool clone-show CLONE | pool kill CLONE\n"
		"options: -s/--sock PATH (or $THAW_API_SOCK), -q/--quiet, -h/--help\n");
}

struct ctl {
	const char *sock;
	bool quiet;
	int fd;
	struct api_response resp;
};

/* Sends one request; 0 on a 2xx, 1 on an error status (message printed), 3 on I/O errors. */
static int call(struct ctl *c, const char *method, const char *path, const char *body, double *ms)
{
	uint64_t t0;
	int ret;

	if (c->fd < 0) {
		c->fd = api_client_connect(c->sock);
		if (c->fd < 0) {
			fprintf(stderr, "thawctl: cannot connect to %s: %s\n", c->sock,
				strerror(-c->fd));
			return 3;
		}
	}
	t0 = now_ns();
	ret = api_client_request(c->fd, method, path, body, &c->resp);
	if (ms)
		*ms = (double)(now_ns() - t0) / 1e6;
	if (ret < 0) {
		fprintf(stderr, "thawctl: %s %s: %s\n", method, path,
			ret == -EPROTO ? "malformed response" : strerror(-ret));
		return 3;
	}
	if (c->resp.status >= 300) {
		char msg[1024];

		api_client_fault_message(&c->resp, msg, sizeof(msg));
		fprintf(stderr, "thawctl: %s %s failed (%d): %s\n", method, path, c->resp.status,
			msg);
		return 1;
	}
	return 0;
}

static json_object *parse_resp(struct ctl *c)
{
	json_object *o = json_tokener_parse(c->resp.body);

	if (!o || !json_object_is_type(o, json_type_object)) {
		fprintf(stderr, "thawctl: the server sent an unexpected body: %s\n", c->resp.body);
		json_object_put(o);
		return NULL;
	}
	return o;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (json_object_object_get_ex(o, key, &v))
		return json_object_get_string(v);
	return "?";
}

static int cmd_info(struct ctl *c)
{
	json_object *o;
	int ret = call(c, "GET", "/", NULL, NULL);

	if (ret)
		return ret;
	o = parse_resp(c);
	if (!o)
		return 1;
	printf("id:       %s\nstate:    %s\nversion:  %s %s\n", jstr(o, "id"), jstr(o, "state"),
	       jstr(o, "app_name"), jstr(o, "vmm_version"));
	json_object_put(o);
	return 0;
}

static int cmd_config(struct ctl *c)
{
	json_object *o;
	int ret = call(c, "GET", "/machine-config", NULL, NULL);

	if (ret)
		return ret;
	o = parse_resp(c);
	if (!o)
		return 1;
	printf("vcpus:        %s\nmemory:       %s MiB\nsmt:          %s\n"
	       "dirty pages:  %s\ncpu template: %s\nhuge pages:   %s\n",
	       jstr(o, "vcpu_count"), jstr(o, "mem_size_mib"), jstr(o, "smt"),
	       jstr(o, "track_dirty_pages"), jstr(o, "cpu_template"), jstr(o, "huge_pages"));
	json_object_put(o);
	return 0;
}

static int simple(struct ctl *c, const char *method, const char *path, const char *body,
		  const char *done)
{
	double ms;
	int ret = call(c, method, path, body, &ms);

	if (!ret && !c->quiet)
		printf("%s (%.3f ms)\n", done, ms);
	return ret;
}

/* Adds key: value to obj; returns -1 (after a message) when out of memory. */
static int add_str(json_object *obj, const char *key, const char *val)
{
	json_object *s = json_object_new_string(val);

	if (!s || json_object_object_add(obj, key, s)) {
		json_object_put(s);
		fprintf(stderr, "thawctl: out of memory\n");
		return -1;
	}
	return 0;
}

static int send_json(struct ctl *c, const char *method, const char *path, json_object *body,
		     const char *done)
{
	int ret = simple(c, method, path,
			 json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), done);

	json_object_put(body);
	return ret;
}

static int cmd_snapshot(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"mem", required_argument, NULL, 'm'},
	    {"uffd", required_argument, NULL, 'u'},
	    {"resume", no_argument, NULL, 'r'},
	    {"paused", no_argument, NULL, 'p'},
	    {"diff", no_argument, NULL, 'd'},
	    {"clock-realtime", no_argument, NULL, 'c'},
	    {"net", required_argument, NULL, 'n'},
	    {"vsock-uds", required_argument, NULL, 'v'},
	    {NULL, 0, NULL, 0},
	};
	const char *mem = NULL, *uffd = NULL, *vsock = NULL, *verb, *file;
	bool resume = false, diff = false, realtime = false, paused = false;
	json_object *body, *nets;
	int opt;

	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	verb = argv[1];
	file = argv[2];
	body = json_object_new_object();
	nets = json_object_new_array();
	if (!body || !nets)
		goto nomem;
	/* Options follow FILE: parse argv[2..] with FILE standing in for the program name. */
	optind = 0;
	while ((opt = getopt_long(argc - 2, argv + 2, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			mem = optarg;
			break;
		case 'u':
			uffd = optarg;
			break;
		case 'r':
			resume = true;
			break;
		case 'p':
			paused = true;
			break;
		case 'd':
			diff = true;
			break;
		case 'c':
			realtime = true;
			break;
		case 'v':
			vsock = optarg;
			break;
		case 'n': {
			char *eq = strchr(optarg, '=');
			json_object *ov = json_object_new_object();

			if (!ov)
				goto nomem;
			json_object_array_add(nets, ov);
			if (!eq) {
				fprintf(stderr, "thawctl: --net wants IFACE=TAP, got %s\n", optarg);
				goto usage;
			}
			*eq = '\0';
			if (add_str(ov, "iface_id", optarg) || add_str(ov, "host_dev_name", eq + 1))
				goto nomem;
			break;
		}
		default:
			goto usage;
		}
	}
	if (optind != argc - 2)
		goto usage;
	if (add_str(body, "snapshot_path", file))
		goto nomem;

	if (!strcmp(verb, "create")) {
		if (uffd || resume || paused || realtime || vsock ||
		    json_object_array_length(nets)) {
			fprintf(stderr, "thawctl: snapshot create takes only --mem and --diff\n");
			goto usage;
		}
		if (mem && add_str(body, "mem_file_path", mem))
			goto nomem;
		if (add_str(body, "snapshot_type", diff ? "Diff" : "Full"))
			goto nomem;
		json_object_put(nets);
		return send_json(c, "PUT", "/snapshot/create", body, "snapshot created");
	}
	if (!strcmp(verb, "load")) {
		if (diff || (mem && uffd) || (resume && paused)) {
			fprintf(stderr, "thawctl: snapshot load: --diff is for create; --mem and "
					"--uffd, --resume and --paused exclude each other\n");
			goto usage;
		}
		if (mem || uffd) {
			json_object *mb = json_object_new_object();

			if (!mb || json_object_object_add(body, "mem_backend", mb) ||
			    add_str(mb, "backend_type", mem ? "File" : "Uffd") ||
			    add_str(mb, "backend_path", mem ? mem : uffd))
				goto nomem;
		}
		json_object_object_add(body, "resume_vm", json_object_new_boolean(resume));
		if (realtime)
			json_object_object_add(body, "clock_realtime", json_object_new_boolean(1));
		if (json_object_array_length(nets)) {
			json_object_object_add(body, "network_overrides", nets);
			nets = NULL;
		}
		if (vsock) {
			json_object *vo = json_object_new_object();

			if (!vo || json_object_object_add(body, "vsock_override", vo) ||
			    add_str(vo, "uds_path", vsock))
				goto nomem;
		}
		json_object_put(nets);
		return send_json(c, "PUT", "/snapshot/load", body,
				 resume ? "snapshot loaded, VM running"
					: "snapshot loaded, VM paused");
	}
	fprintf(stderr, "thawctl: unknown snapshot command \"%s\"\n", verb);
usage:
	json_object_put(body);
	json_object_put(nets);
	usage(stderr);
	return 2;
nomem:
	json_object_put(body);
	json_object_put(nets);
	fprintf(stderr, "thawctl: out of memory\n");
	return 3;
}

/* ---- thaw-pool ---------------------------------------------------------------------------- */

static long long jint(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

static void print_pool(json_object *o)
{
	json_object *lat = NULL;

	json_object_object_get_ex(o, "latency", &lat);
	printf("%s: %lld MiB, %lld vCPUs; prepared %lld/%lld (starting %lld), running %lld, "
	       "exited %lld; hits %lld, misses %lld, prepared died %lld; refill %s/s; "
	       "latency p50 %lld us, p99 %lld us (%lld clones)\n",
	       jstr(o, "id"), jint(o, "mem_mib"), jint(o, "vcpus"), jint(o, "prepared"),
	       jint(o, "target"), jint(o, "starting"), jint(o, "running"), jint(o, "exited"),
	       jint(o, "hits"), jint(o, "misses"), jint(o, "prepared_died"),
	       jstr(o, "refill_per_s"), lat ? jint(lat, "p50_us") : -1,
	       lat ? jint(lat, "p99_us") : -1, lat ? jint(lat, "count") : -1);
}

static void print_clone(json_object *o)
{
	json_object *v;

	printf("%s  %s  pid %lld  api %s  latency %lld us", jstr(o, "id"), jstr(o, "state"),
	       jint(o, "pid"), jstr(o, "api_sock"), jint(o, "latency_us"));
	if (json_object_object_get_ex(o, "vsock", &v) && v)
		printf("  vsock %s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "exit_status", &v) && v)
		printf("  exit status %d", json_object_get_int(v));
	if (json_object_object_get_ex(o, "exit_signal", &v) && v)
		printf("  killed by signal %d", json_object_get_int(v));
	printf("\n");
}

/* GET path and print it with `fn` (each element of an array). */
static int pool_get(struct ctl *c, const char *path, void (*fn)(json_object *))
{
	json_object *o;
	int ret = call(c, "GET", path, NULL, NULL);

	if (ret)
		return ret;
	o = json_tokener_parse(c->resp.body);
	if (!o) {
		fprintf(stderr, "thawctl: the server sent an unexpected body: %s\n", c->resp.body);
		return 1;
	}
	if (json_object_is_type(o, json_type_array))
		for (size_t i = 0; i < json_object_array_length(o); i++)
			fn(json_object_array_get_idx(o, i));
	else
		fn(o);
	json_object_put(o);
	return 0;
}

/* buf = "/<kind>/<id><tail>" */
static int pool_path(char *buf, size_t len, const char *kind, const char *id, const char *tail)
{
	int n = snprintf(buf, len, "/%s/%s%s", kind, id, tail);

	if (n < 0 || (size_t)n >= len || strchr(id, '/') || strchr(id, '?')) {
		fprintf(stderr, "thawctl: invalid id \"%s\"\n", id);
		return -1;
	}
	return 0;
}

static int parse_count(const char *opt, const char *a, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(a, &end, 10);
	if (errno || *end || end == a || *v < 0) {
		fprintf(stderr, "thawctl: %s wants a number, got %s\n", opt, a);
		return -1;
	}
	return 0;
}

static int cmd_pool_create(struct ctl *c, int argc, char **argv, char *path, size_t plen)
{
	static const struct option opts[] = {{"prepared", required_argument, NULL, 'p'},
					     {"max-clones", required_argument, NULL, 'c'},
					     {"max-mem-mib", required_argument, NULL, 'M'},
					     {"refill-per-s", required_argument, NULL, 'r'},
					     {"mem", required_argument, NULL, 'm'},
					     {"uffd", required_argument, NULL, 'u'},
					     {"vsock", no_argument, NULL, 'v'},
					     {"jail-uid", required_argument, NULL, 'U'},
					     {"jail-gid", required_argument, NULL, 'G'},
					     {"chroot-base", required_argument, NULL, 'b'},
					     {"cgroup", required_argument, NULL, 'g'},
					     {NULL, 0, NULL, 0}};
	json_object *body = json_object_new_object(), *jail = NULL, *cg = NULL;
	long long v;
	int opt;

	if (argc < 4 || !body)
		goto usage;
	if (pool_path(path, plen, "pools", argv[2], ""))
		goto usage;
	add_str(body, "snapshot_path", argv[3]);
	optind = 0;
	while ((opt = getopt_long(argc - 3, argv + 3, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
		case 'c':
		case 'M':
		case 'U':
		case 'G':
			if (parse_count(argv[optind + 2], optarg, &v))
				goto usage;
			if (opt == 'U' || opt == 'G') {
				if (!jail)
					jail = json_object_new_object();
				json_object_object_add(jail, opt == 'U' ? "uid" : "gid",
						       json_object_new_int64(v));
			} else {
				json_object_object_add(body,
						       opt == 'p'   ? "prepared"
						       : opt == 'c' ? "max_clones"
								    : "max_mem_mib",
						       json_object_new_int64(v));
			}
			break;
		case 'r':
			json_object_object_add(body, "refill_per_s",
					       json_object_new_double(strtod(optarg, NULL)));
			break;
		case 'm':
		case 'u': {
			json_object *mb = json_object_new_object();

			json_object_object_add(body, "mem_backend", mb);
			add_str(mb, "backend_type", opt == 'm' ? "File" : "Uffd");
			add_str(mb, "backend_path", optarg);
			break;
		}
		case 'v':
			json_object_object_add(body, "vsock", json_object_new_boolean(1));
			break;
		case 'b':
		case 'g':
			if (!jail)
				jail = json_object_new_object();
			if (opt == 'b') {
				add_str(jail, "chroot_base", optarg);
			} else {
				if (!cg) {
					cg = json_object_new_array();
					json_object_object_add(jail, "cgroups", cg);
				}
				json_object_array_add(cg, json_object_new_string(optarg));
			}
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc - 3)
		goto usage;
	if (jail)
		json_object_object_add(body, "jail", jail);
	{
		int ret = call(c, "PUT", path,
			       json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), NULL);
		json_object *o;

		json_object_put(body);
		if (ret)
			return ret;
		o = json_tokener_parse(c->resp.body);
		if (o && !c->quiet)
			print_pool(o);
		json_object_put(o);
		return 0;
	}
usage:
	json_object_put(body);
	usage(stderr);
	return 2;
}

static int cmd_pool_clone(struct ctl *c, int argc, char **argv, char *path, size_t plen)
{
	static const struct option opts[] = {
	    {"count", required_argument, NULL, 'n'},	{"paused", no_argument, NULL, 'p'},
	    {"clock-realtime", no_argument, NULL, 'c'}, {"vsock-dir", required_argument, NULL, 'v'},
	    {"drive", required_argument, NULL, 'd'},	{NULL, 0, NULL, 0}};
	json_object *body = json_object_new_object(), *drives = NULL, *o, *arr;
	long long v;
	double ms;
	int opt, ret;

	if (argc < 3 || !body || pool_path(path, plen, "pools", argv[2], "/clones"))
		goto usage;
	optind = 0;
	while ((opt = getopt_long(argc - 2, argv + 2, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (parse_count("--count", optarg, &v))
				goto usage;
			json_object_object_add(body, "count", json_object_new_int64(v));
			break;
		case 'p':
			json_object_object_add(body, "paused", json_object_new_boolean(1));
			break;
		case 'c':
			json_object_object_add(body, "clock_realtime", json_object_new_boolean(1));
			break;
		case 'v':
			add_str(body, "vsock_dir", optarg);
			break;
		case 'd': {
			char *eq = strchr(optarg, '=');
			json_object *d = json_object_new_object();

			if (!eq) {
				json_object_put(d);
				fprintf(stderr, "thawctl: --drive wants ID=PATH, got %s\n", optarg);
				goto usage;
			}
			*eq = '\0';
			add_str(d, "drive_id", optarg);
			add_str(d, "path_on_host", eq + 1);
			if (!drives) {
				drives = json_object_new_array();
				json_object_object_add(body, "drive_overrides", drives);
			}
			json_object_array_add(drives, d);
			break;
		}
		default:
			goto usage;
		}
	}
	if (optind != argc - 2)
		goto usage;
	ret = call(c, "POST", path, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
		   &ms);
	json_object_put(body);
	if (ret)
		return ret;
	o = json_tokener_parse(c->resp.body);
	if (!o || !json_object_object_get_ex(o, "clones", &arr)) {
		fprintf(stderr, "thawctl: the server sent an unexpected body: %s\n", c->resp.body);
		json_object_put(o);
		return 1;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		print_clone(json_object_array_get_idx(arr, i));
	if (!c->quiet)
		printf("%zu clones, %lld misses, %.3f ms\n", json_object_array_length(arr),
		       jint(o, "misses"), ms);
	if (json_object_object_get_ex(o, "errors", &arr) && json_object_array_length(arr)) {
		for (size_t i = 0; i < json_object_array_length(arr); i++)
			fprintf(stderr, "thawctl: %s\n",
				json_object_get_string(json_object_array_get_idx(arr, i)));
		ret = 1;
	}
	json_object_put(o);
	return ret;
usage:
	json_object_put(body);
	usage(stderr);
	return 2;
}

static void print_metrics(json_object *o)
{
	json_object *lat = NULL;

	json_object_object_get_ex(o, "latency", &lat);
	printf("clone requests %lld, hits %lld, misses %lld, refused %lld; latency p50 %lld us, "
	       "p99 %lld us, max %lld us (%lld clones)\n",
	       jint(o, "clone_requests"), jint(o, "hits"), jint(o, "misses"), jint(o, "refused"),
	       lat ? jint(lat, "p50_us") : -1, lat ? jint(lat, "p99_us") : -1,
	       lat ? jint(lat, "max_us") : -1, lat ? jint(lat, "count") : -1);
}

static int cmd_pool(struct ctl *c, int argc, char **argv)
{
	char path[512];
	const char *verb = argc > 1 ? argv[1] : "";

	if (!strcmp(verb, "create"))
		return cmd_pool_create(c, argc, argv, path, sizeof(path));
	if (!strcmp(verb, "clone"))
		return cmd_pool_clone(c, argc, argv, path, sizeof(path));
	if (!strcmp(verb, "list") && argc == 2)
		return pool_get(c, "/pools", print_pool);
	if (!strcmp(verb, "metrics") && argc == 2)
		return pool_get(c, "/metrics", print_metrics);
	if (argc == 3 && !strcmp(verb, "show"))
		return pool_path(path, sizeof(path), "pools", argv[2], "")
			   ? 2
			   : pool_get(c, path, print_pool);
	if (argc == 3 && !strcmp(verb, "clones"))
		return pool_path(path, sizeof(path), "pools", argv[2], "/clones")
			   ? 2
			   : pool_get(c, path, print_clone);
	if (argc == 3 && !strcmp(verb, "clone-show"))
		return pool_path(path, sizeof(path), "clones", argv[2], "")
			   ? 2
			   : pool_get(c, path, print_clone);
	if (argc == 3 && !strcmp(verb, "delete"))
		return pool_path(path, sizeof(path), "pools", argv[2], "")
			   ? 2
			   : simple(c, "DELETE", path, NULL, "pool deleted");
	if (argc == 3 && !strcmp(verb, "kill"))
		return pool_path(path, sizeof(path), "clones", argv[2], "")
			   ? 2
			   : simple(c, "DELETE", path, NULL, "clone stopping (or forgotten)");
	fprintf(stderr, "thawctl: unknown or incomplete pool command\n");
	usage(stderr);
	return 2;
}

static int cmd_raw(struct ctl *c, int argc, char **argv)
{
	int ret;

	if (argc < 3 || argc > 4) {
		usage(stderr);
		return 2;
	}
	ret = call(c, argv[1], argv[2], argc == 4 ? argv[3] : NULL, NULL);
	if (ret == 3)
		return ret;
	/* raw shows everything, errors included, on stdout. */
	printf("%d\n", c->resp.status);
	if (c->resp.body_len)
		printf("%s\n", c->resp.body);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"sock", required_argument, NULL, 's'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl *c;
	const char *cmd;
	int opt, ret;

	c = calloc(1, sizeof(*c));
	if (!c) {
		fprintf(stderr, "thawctl: out of memory\n");
		return 3;
	}
	c->fd = -1;
	c->sock = getenv("THAW_API_SOCK");
	/* '+': stop at the command, its own options are parsed by it. */
	while ((opt = getopt_long(argc, argv, "+s:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c->sock = optarg;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'h':
			usage(stdout);
			free(c);
			return 0;
		default:
			usage(stderr);
			free(c);
			return 2;
		}
	}
	if (!c->sock || optind >= argc) {
		usage(stderr);
		free(c);
		return 2;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "info"))
		ret = argc == 1 ? cmd_info(c) : 2;
	else if (!strcmp(cmd, "config"))
		ret = argc == 1 ? cmd_config(c) : 2;
	else if (!strcmp(cmd, "start"))
		ret = argc == 1 ? simple(c, "PUT", "/actions",
					 "{\"action_type\": \"InstanceStart\"}", "started")
				: 2;
	else if (!strcmp(cmd, "pause"))
		ret =
		    argc == 1 ? simple(c, "PATCH", "/vm", "{\"state\": \"Paused\"}", "paused") : 2;
	else if (!strcmp(cmd, "resume"))
		ret = argc == 1 ? simple(c, "PATCH", "/vm", "{\"state\": \"Resumed\"}", "resumed")
				: 2;
	else if (!strcmp(cmd, "metrics"))
		ret = argc == 1 ? simple(c, "PUT", "/actions",
					 "{\"action_type\": \"FlushMetrics\"}", "metrics flushed")
				: 2;
	else if (!strcmp(cmd, "snapshot"))
		ret = cmd_snapshot(c, argc, argv);
	else if (!strcmp(cmd, "raw"))
		ret = cmd_raw(c, argc, argv);
	else if (!strcmp(cmd, "pool"))
		ret = cmd_pool(c, argc, argv);
	else {
		fprintf(stderr, "thawctl: unknown command \"%s\"\n", cmd);
		ret = 2;
	}
	if (ret == 2 && strcmp(cmd, "snapshot") && strcmp(cmd, "raw") && strcmp(cmd, "pool"))
		usage(stderr);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return ret;
}
