/* File system helpers of the jailer. Everything that removes files works from
 * directory fds without following symlinks: the jail's root belongs to the jailed
 * user, who may have left symlinks there pointing anywhere on the host. */
#include "jailer/jail_int.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

int jail_fs_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(buf, mode) && errno != EEXIST)
				return -errno;
			*p = saved;
			if (!saved)
				break;
		}
	}
	return 0;
}

/* Deep trees are refused rather than recursed into without bound. */
#define REMOVE_MAX_DEPTH 64

static int remove_at(int dirfd, const char *name, dev_t dev, int depth)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, ret = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : -errno;
	if (st.st_dev != dev)
		return -EXDEV;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) && errno != ENOENT ? -errno : 0;
	if (depth >= REMOVE_MAX_DEPTH)
		return -ELOOP;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while ((de = readdir(d))) {
		int r;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = remove_at(fd, de->d_name, dev, depth + 1);
		if (r && !ret)
			ret = r;
	}
	closedir(d);
	if (ret)
		return ret;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) && errno != ENOENT)
		return -errno;
	return 0;
}

int jail_fs_remove_tree(int dirfd, const char *name)
{
	struct stat st;

	if (fstat(dirfd, &st))
		return -errno;
	return remove_at(dirfd, name, st.st_dev, 0);
}

static int copy_fd(int in, int out, off_t size)
{
	off_t done = 0;

	while (done < size) {
		ssize_t n = sendfile(out, in, NULL, (size_t)(size - done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the file shrank under us */
		done += n;
	}
	return 0;
}

int jail_fs_install_exec(const char *src, int dirfd, const char *name, uid_t uid, gid_t gid,
			 bool *linked)
{
	struct stat st, dst;
	bool writable;
	int in, out, ret;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	if (fstat(in, &st) || fstat(dirfd, &dst)) {
		ret = -errno;
		goto out_in;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out_in;
	}
	/* Could the jailed process write the inode a hard link would share with the host?
	 * It has no supplementary groups and no capabilities, so these are all the ways. */
	writable = st.st_uid == uid || (st.st_gid == gid && (st.st_mode & S_IWGRP)) ||
		   (st.st_mode & S_IWOTH);
	*linked = false;
	if (st.st_dev == dst.st_dev && !writable) {
		/* AT_EMPTY_PATH links the inode we checked, not whatever the path names now. */
		if (linkat(in, "", dirfd, name, AT_EMPTY_PATH) == 0) {
			*linked = true;
			ret = 0;
			goto out_in;
		}
		if (errno == EEXIST) {
			ret = -errno;
			goto out_in;
		}
		/* EPERM (protected_hardlinks) or anything else: copy instead. */
	}
	out = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0700);
	if (out < 0) {
		ret = -errno;
		goto out_in;
	}
	ret = copy_fd(in, out, st.st_size);
	if (!ret && fchown(out, 0, 0))
		ret = -errno;
	/* Same execute bits as the source, as a link would have; never group/other write. */
	if (!ret && fchmod(out, st.st_mode & 0755))
		ret = -errno;
	if (close(out) && !ret)
		ret = -errno;
	if (ret)
		unlinkat(dirfd, name, 0);
out_in:
	close(in);
	return ret;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

int jail_fs_mounts_below(const char *dir, char *first, size_t first_len)
{
	size_t dlen = strlen(dir);
	char *line = NULL;
	size_t cap = 0;
	int count = 0;
	FILE *f;

	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char mnt[PATH_MAX];
		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		unescape_octal(mnt);
		if (strncmp(mnt, dir, dlen) == 0 && (mnt[dlen] == '\0' || mnt[dlen] == '/')) {
			if (count == 0 && first)
				snprintf(first, first_len, "%s", mnt);
			count++;
		}
	}
	free(line);
	fclose(f);
	return count;
}

int jail_fs_elf_interp(int fd, char *out, size_t out_len)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	out[0] = '\0';
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		return -ENOEXEC;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 512)
		return -ENOEXEC;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		off_t off = (off_t)eh.e_phoff + (off_t)i * (off_t)sizeof(ph);
		if (pread(fd, &ph, sizeof(ph), off) != (ssize_t)sizeof(ph))
			return -ENOEXEC;
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz == 0 || ph.p_filesz > out_len)
			return -ENOEXEC;
		if (pread(fd, out, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
			return -ENOEXEC;
		out[ph.p_filesz - 1] = '\0';
		return 0;
	}
	return 0;
}

int jail_fs_read_misc(char *buf, size_t len)
{
	int fd = open("/proc/misc", O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return -errno;
	while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	return 0;
}

int jail_fs_misc_minor(const char *misc, const char *name)
{
	for (const char *p = misc; p && *p;) {
		char dev[64];
		int minor;
		if (sscanf(p, "%d %63s", &minor, dev) == 2 && strcmp(dev, name) == 0)
			return minor;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}
