/* JSON records on disk, for the programs that keep state between runs (thaw-pool's clone
 * records, thaw-oci's container state): written aside and renamed, read back a string at
 * a time into fixed buffers. */
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int api_json_write_file(const char *path, struct json_object *o, int flags, bool durable)
{
	char tmp[PATH_MAX + 8];
	const char *s = json_object_to_json_string_ext(o, flags);
	size_t len = strlen(s);
	int fd, ret = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (write(fd, s, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    (durable && fsync(fd) < 0))
		ret = errno ? -errno : -EIO;
	close(fd);
	/* A crash of this process (or, when durable, of the machine) leaves the old record
	 * or the new one, never half of one. */
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

int api_json_get_str(struct json_object *o, const char *key, char *dst, size_t cap)
{
	json_object *v;
	const char *s;
	size_t n;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	n = strlen(s);
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, s, n + 1);
	return 0;
}
