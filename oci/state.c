/* <root>/<id>/state.json: what one command leaves for the next, and the status the
 * runtime spec defines, read from the VMM process itself. */
#include "oci/oci.h"

#include "api/api.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *oci_status_name(enum oci_status s)
{
	static const char *const names[] = {"creating", "created", "running", "paused", "stopped"};

	return names[s];
}

unsigned long long oci_proc_starttime(pid_t pid, bool *zombie)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	ssize_t n;
	int fd;

	*zombie = false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold anything, so start after its last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	*zombie = p[2] == 'Z' || p[2] == 'X';
	p += 3;
	/* field 3 is the state; start time is field 22 */
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p)
		st = strtoull(p, NULL, 10);
	return st;
}

enum oci_status oci_state_status(const struct oci_state *s)
{
	bool zombie;

	if (s->pid <= 0 || oci_proc_starttime(s->pid, &zombie) != s->starttime || zombie)
		return OCI_STOPPED;
	if (!s->started)
		return OCI_CREATED;
	return s->paused ? OCI_PAUSED : OCI_RUNNING;
}

int oci_state_save(const char *path, const struct oci_state *s)
{
	json_object *o = json_object_new_object(), *ann, *taps;
	int ret;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "id", json_object_new_string(s->id));
	json_object_object_add(o, "bundle", json_object_new_string(s->bundle));
	json_object_object_add(o, "rootfs", json_object_new_string(s->rootfs));
	json_object_object_add(o, "created", json_object_new_string(s->created));
	json_object_object_add(o, "pid", json_object_new_int(s->pid));
	json_object_object_add(o, "starttime", json_object_new_uint64(s->starttime));
	json_object_object_add(o, "started", json_object_new_boolean(s->started));
	json_object_object_add(o, "paused", json_object_new_boolean(s->paused));
	json_object_object_add(o, "jailed", json_object_new_boolean(s->jailed));
	json_object_object_add(o, "jail_id", json_object_new_string(s->jail_id));
	json_object_object_add(o, "jail_base", json_object_new_string(s->jail_base));
	json_object_object_add(o, "cgroup_parent", json_object_new_string(s->cgroup_parent));
	json_object_object_add(o, "api_dir", json_object_new_string(s->api_dir));
	ann = json_tokener_parse(s->annotations[0] ? s->annotations : "{}");
	json_object_object_add(o, "annotations", ann ? ann : json_object_new_object());
	json_object_object_add(o, "netns", json_object_new_string(s->netns));
	json_object_object_add(o, "vmm_pid", json_object_new_int(s->vmm_pid));
	json_object_object_add(o, "vmm_starttime", json_object_new_uint64(s->vmm_starttime));
	json_object_object_add(o, "pool", json_object_new_string(s->pool));
	json_object_object_add(o, "pool_clone", json_object_new_string(s->pool_clone));
	json_object_object_add(o, "pool_note", json_object_new_string(s->pool_note));
	taps = json_object_new_array();
	for (unsigned i = 0; taps && i < s->n_taps; i++) {
		json_object *t = json_object_new_object();

		json_object_object_add(t, "tap", json_object_new_string(s->taps[i].tap));
		json_object_object_add(t, "link", json_object_new_string(s->taps[i].link));
		json_object_array_add(taps, t);
	}
	json_object_object_add(o, "taps", taps);
	/* Written aside and renamed: a crash leaves the old state or the new, never half. */
	ret = api_json_write_file(path, o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
				  true);
	json_object_put(o);
	return ret;
}

static bool flag(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

int oci_state_load(const char *path, struct oci_state *s, char *err, size_t errlen)
{
	char buf[32768];
	json_object *o, *v;
	ssize_t n;
	int fd, ret = -EINVAL;

	memset(s, 0, sizeof(*s));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return errf(err, errlen, -EIO, "%s: %s", path, strerror(errno));
	buf[n] = '\0';
	o = json_tokener_parse(buf);
	if (!o || api_json_get_str(o, "id", s->id, sizeof(s->id)) ||
	    api_json_get_str(o, "bundle", s->bundle, sizeof(s->bundle)) ||
	    api_json_get_str(o, "rootfs", s->rootfs, sizeof(s->rootfs)) ||
	    api_json_get_str(o, "created", s->created, sizeof(s->created)) ||
	    api_json_get_str(o, "jail_id", s->jail_id, sizeof(s->jail_id)) ||
	    api_json_get_str(o, "jail_base", s->jail_base, sizeof(s->jail_base)) ||
	    api_json_get_str(o, "cgroup_parent", s->cgroup_parent, sizeof(s->cgroup_parent)) ||
	    api_json_get_str(o, "api_dir", s->api_dir, sizeof(s->api_dir))) {
		errf(err, errlen, 0, "%s: not a state file of thaw-oci", path);
		goto out;
	}
	if (json_object_object_get_ex(o, "pid", &v))
		s->pid = json_object_get_int(v);
	if (json_object_object_get_ex(o, "starttime", &v))
		s->starttime = json_object_get_uint64(v);
	s->started = flag(o, "started");
	s->paused = flag(o, "paused");
	s->jailed = flag(o, "jailed");
	if (json_object_object_get_ex(o, "vmm_pid", &v))
		s->vmm_pid = json_object_get_int(v);
	if (json_object_object_get_ex(o, "vmm_starttime", &v))
		s->vmm_starttime = json_object_get_uint64(v);
	/* absent in the state of an older thaw-oci: no pool */
	if ((json_object_object_get_ex(o, "pool", &v) &&
	     api_json_get_str(o, "pool", s->pool, sizeof(s->pool))) ||
	    (json_object_object_get_ex(o, "pool_clone", &v) &&
	     api_json_get_str(o, "pool_clone", s->pool_clone, sizeof(s->pool_clone))) ||
	    (json_object_object_get_ex(o, "pool_note", &v) &&
	     api_json_get_str(o, "pool_note", s->pool_note, sizeof(s->pool_note)))) {
		errf(err, errlen, 0, "%s: pool, pool_clone or pool_note: not a string", path);
		goto out;
	}
	/* absent in the state of an older thaw-oci: no taps */
	if (json_object_object_get_ex(o, "netns", &v) &&
	    api_json_get_str(o, "netns", s->netns, sizeof(s->netns))) {
		errf(err, errlen, 0, "%s: netns: not a path", path);
		goto out;
	}
	if (json_object_object_get_ex(o, "taps", &v)) {
		size_t nt =
		    json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;

		for (size_t i = 0; i < nt && i < OCI_MAX_DEVS; i++) {
			json_object *t = json_object_array_get_idx(v, i);

			if (api_json_get_str(t, "tap", s->taps[i].tap, sizeof(s->taps[i].tap)) ||
			    api_json_get_str(t, "link", s->taps[i].link, sizeof(s->taps[i].link))) {
				errf(err, errlen, 0, "%s: taps[%zu]: not a tap", path, i);
				goto out;
			}
			s->n_taps++;
		}
	}
	if (json_object_object_get_ex(o, "annotations", &v))
		snprintf(s->annotations, sizeof(s->annotations), "%s",
			 json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	ret = 0;
out:
	json_object_put(o);
	return ret;
}
