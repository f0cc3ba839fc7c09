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
	fprintf(f, "usage: thawctl --sock PATH COMMAND\n"
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
	else {
		fprintf(stderr, "thawctl: unknown command \"%s\"\n", cmd);
		ret = 2;
	}
	if (ret == 2 && strcmp(cmd, "snapshot") && strcmp(cmd, "raw"))
		usage(stderr);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return ret;
}
