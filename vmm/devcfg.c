/* Device specs of the command line ("id=root,path=rootfs.ext4,ro=on"), parsed once into
 * the typed configurations of vmm.h. Each key=value pair is read exactly once, in one
 * pass, so a value cannot smuggle in another key (an API path "/img,ro=off" never
 * reaches a parser: the API fills the structs directly). */
#include "vmm/vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct key {
	const char *name;
	unsigned bit; /* VMM_KEY_* */
};

/* One key=value pair at a time: returns the key's bit with the value in `val` (and
 * the bit added to `given`), 0 at the end, or -EINVAL with `err` set for a key the
 * kind lacks or `allowed` leaves out, a key given twice, or a value too long. */
static int next_pair(const char *what, const char **p, const struct key *keys,
		     const char *const *allowed, unsigned *given, char *val, size_t cap, char *err,
		     size_t errlen)
{
	const char *s = *p, *end, *eq;
	size_t len, klen, vlen;

	if (!*s)
		return 0;
	end = strchr(s, ',');
	len = end ? (size_t)(end - s) : strlen(s);
	*p = end ? end + 1 : s + len;
	eq = memchr(s, '=', len);
	if (!eq)
		return errf(err, errlen, -EINVAL, "%s: '%.*s' is not key=value", what, (int)len, s);
	klen = (size_t)(eq - s);
	vlen = len - klen - 1;
	for (const struct key *k = keys; k->name; k++) {
		bool ok = !allowed;

		if (strlen(k->name) != klen || strncmp(s, k->name, klen) != 0)
			continue;
		for (unsigned i = 0; allowed && allowed[i]; i++)
			ok |= strcmp(allowed[i], k->name) == 0;
		if (!ok)
			break;
		if (*given & k->bit)
			return errf(err, errlen, -EINVAL, "%s: %s= given twice", what, k->name);
		*given |= k->bit;
		if (vlen == 0 || vlen >= cap)
			return errf(err, errlen, -EINVAL, "%s: %s= must have 1 to %zu characters",
				    what, k->name, cap - 1);
		memcpy(val, eq + 1, vlen);
		val[vlen] = 0;
		return (int)k->bit;
	}
	return errf(err, errlen, -EINVAL, "%s: '%.*s' is not one of its options", what, (int)klen,
		    s);
}

static int onoff(const char *what, const char *key, const char *v, bool *out, char *err,
		 size_t errlen)
{
	if (strcmp(v, "on") == 0)
		*out = true;
	else if (strcmp(v, "off") == 0)
		*out = false;
	else
		return errf(err, errlen, -EINVAL, "%s: %s=%s is not on or off", what, key, v);
	return 0;
}

/* Copies a checked value into a field (both sized by the caller's buffers). */
#define SET(dst, v) snprintf((dst), sizeof(dst), "%s", (v))

int vmm_parse_drive(const char *spec, const char *const *allowed, struct vmm_drive_cfg *cfg,
		    unsigned *given, char *err, size_t errlen)
{
	static const struct key keys[] = {{"id", VMM_KEY_ID},
					  {"path", VMM_KEY_PATH},
					  {"ro", VMM_KEY_RO},
					  {"root", VMM_KEY_ROOT},
					  {"overlay-of", VMM_KEY_OVERLAY_OF},
					  {NULL, 0}};
	const char *p = spec;
	char v[VMM_DEV_PATH_MAX];
	int k;

	memset(cfg, 0, sizeof(*cfg));
	*given = 0;
	while ((k = next_pair("--drive", &p, keys, allowed, given, v, sizeof(v), err, errlen)) >
	       0) {
		if (k == VMM_KEY_ID && strlen(v) >= sizeof(cfg->id))
			return errf(err, errlen, -EINVAL, "--drive: id= is longer than %zu",
				    sizeof(cfg->id) - 1);
		if (k == VMM_KEY_ID)
			SET(cfg->id, v);
		else if (k == VMM_KEY_PATH)
			SET(cfg->path, v);
		else if (k == VMM_KEY_OVERLAY_OF)
			SET(cfg->overlay_of, v);
		else if (onoff("--drive", k == VMM_KEY_RO ? "ro" : "root", v,
			       k == VMM_KEY_RO ? &cfg->read_only : &cfg->root, err, errlen))
			return -EINVAL;
	}
	if (k < 0)
		return k;
	if (!(*given & VMM_KEY_ID))
		return errf(err, errlen, -EINVAL, "--drive %s: needs id=NAME", spec);
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return mac[0] & 1 ? -EINVAL : 0; /* a multicast address is no station's */
}

int vmm_parse_net(const char *spec, const char *const *allowed, struct vmm_net_cfg *cfg,
		  unsigned *given, char *err, size_t errlen)
{
	static const struct key keys[] = {
	    {"id", VMM_KEY_ID}, {"tap", VMM_KEY_PATH}, {"mac", VMM_KEY_MAC}, {NULL, 0}};
	const char *p = spec;
	char v[VMM_DEV_PATH_MAX];
	int k;

	memset(cfg, 0, sizeof(*cfg));
	*given = 0;
	while ((k = next_pair("--net", &p, keys, allowed, given, v, sizeof(v), err, errlen)) > 0) {
		if (k == VMM_KEY_ID) {
			if (strlen(v) >= sizeof(cfg->id))
				return errf(err, errlen, -EINVAL, "--net: id= is longer than %zu",
					    sizeof(cfg->id) - 1);
			SET(cfg->id, v);
		} else if (k == VMM_KEY_PATH) {
			if (strlen(v) >= sizeof(cfg->tap))
				return errf(err, errlen, -EINVAL,
					    "--net: tap=%s is longer than %zu", v,
					    sizeof(cfg->tap) - 1);
			SET(cfg->tap, v);
		} else {
			if (parse_mac(v, cfg->mac))
				return errf(err, errlen, -EINVAL,
					    "--net: mac=%s is not a unicast aa:bb:cc:dd:ee:ff", v);
			cfg->has_mac = true;
		}
	}
	if (k < 0)
		return k;
	if (!(*given & VMM_KEY_ID))
		return errf(err, errlen, -EINVAL, "--net %s: needs id=NAME", spec);
	return 0;
}

int vmm_parse_vsock(const char *spec, const char *const *allowed, struct vmm_vsock_cfg *cfg,
		    unsigned *given, char *err, size_t errlen)
{
	static const struct key keys[] = {{"cid", VMM_KEY_CID}, {"uds", VMM_KEY_PATH}, {NULL, 0}};
	const char *p = spec;
	char v[VMM_DEV_PATH_MAX], *end;
	unsigned long long c;
	int k;

	memset(cfg, 0, sizeof(*cfg));
	*given = 0;
	while ((k = next_pair("--vsock", &p, keys, allowed, given, v, sizeof(v), err, errlen)) >
	       0) {
		if (k == VMM_KEY_PATH) {
			SET(cfg->uds, v);
			continue;
		}
		errno = 0;
		c = strtoull(v, &end, 10);
		/* 0-2 are reserved (hypervisor, local, host); -1U is VMADDR_CID_ANY. */
		if (errno || *end || v[0] == '-' || c < 3 || c >= UINT32_MAX)
			return errf(err, errlen, -EINVAL,
				    "--vsock: cid=%s is not a number from 3 to %u", v,
				    UINT32_MAX - 1);
		cfg->guest_cid = (uint32_t)c;
	}
	return k < 0 ? k : 0;
}

/* `path` relative to the directory `dir`: a relative path as it is, an absolute one
 * only when it lies inside `dir` (textually; the kernel then checks the rest). NULL when
 * it does not. */
static const char *relative(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (path[0] != '/')
		return path;
	if (strcmp(dir, "/") != 0 && (strncmp(path, dir, n) != 0 || path[n] != '/'))
		return NULL;
	path += strcmp(dir, "/") == 0 ? 0 : n;
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

int vmm_open_beneath(int dirfd, const char *dir, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)flags | O_CLOEXEC,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	const char *rel;
	long fd;

	if (dirfd < 0) {
		fd = open(path, flags | O_CLOEXEC);
		return fd < 0 ? -errno : (int)fd;
	}
	rel = relative(dir, path);
	if (!rel)
		return -EXDEV;
	fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

int vmm_path_beneath(int dirfd, const char *dir, const char *path, char *out, size_t cap)
{
	char parent[VMM_DEV_PATH_MAX];
	const char *rel, *slash;
	struct stat st;
	int pfd;

	if (dirfd < 0)
		return snprintf(out, cap, "%s", path) < (int)cap ? 0 : -ENAMETOOLONG;
	rel = relative(dir, path);
	if (!rel)
		return -EXDEV;
	slash = strrchr(rel, '/');
	if (snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - rel) : 1,
		     slash ? rel : ".") >= (int)sizeof(parent))
		return -ENAMETOOLONG;
	pfd = vmm_open_beneath(dirfd, ".", parent, O_PATH | O_DIRECTORY);
	if (pfd < 0)
		return pfd;
	/* The last component may not exist yet (a socket to create); if it does, it must
	 * not be a symlink either. */
	if (fstatat(pfd, slash ? slash + 1 : rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode)) {
		close(pfd);
		return -ELOOP;
	}
	close(pfd);
	return snprintf(out, cap, "%s/%s", dir, rel) < (int)cap ? 0 : -ENAMETOOLONG;
}
