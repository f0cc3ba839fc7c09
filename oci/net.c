/* The clone's taps in the pod's network namespace: made persistent and owned by the
 * VMM's uid before the jailed VMM (no capabilities) attaches to them, and tied to the
 * pod's interface (CNI's eth0) by tc redirects both ways, so the pod's traffic is the
 * guest's. Everything runs in a forked child that joins the namespace: thaw-oci's own
 * namespace never changes. */
#include "oci/oci.h"

#include "common/argv.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct tap_job {
	const char *tap, *link;
	uid_t uid;
	gid_t gid;
	bool add;
	bool optional; /* link: only when the namespace has it */
};

/* What the child hands back. */
struct tap_result {
	int ret;
	bool linked;
	char msg[512];
};

static const char *tc_path(void)
{
	static const char *const where[] = {"/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"};

	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		if (access(where[i], X_OK) == 0)
			return where[i];
	return NULL;
}

/* tc qdisc add dev FROM ingress; tc filter add dev FROM parent ffff: protocol all u32
 * match u32 0 0 action mirred egress redirect dev TO. *qdisc says whether the qdisc was
 * added (ours to remove when something later fails). */
static int redirect(const char *tc, const char *from, const char *to, bool *qdisc, char *err,
		    size_t errlen)
{
	const char *add[] = {tc, "qdisc", "add", "dev", from, "ingress", NULL};
	const char *filter[] = {tc,	 "filter",   "add",    "dev",	 from,	   "parent",
				"ffff:", "protocol", "all",    "u32",	 "match",  "u32",
				"0",	 "0",	     "action", "mirred", "egress", "redirect",
				"dev",	 to,	     NULL};

	*qdisc = false;
	if (argv_run_wait(add, false))
		return errf(err, errlen, -EIO,
			    "tc qdisc add dev %s ingress failed (another clone's redirect there?)",
			    from);
	*qdisc = true;
	if (argv_run_wait(filter, false))
		return errf(err, errlen, -EIO, "tc filter: redirecting %s to %s failed", from, to);
	return 0;
}

static void qdisc_del(const char *tc, const char *dev)
{
	const char *del[] = {tc, "qdisc", "del", "dev", dev, "ingress", NULL};

	argv_run_wait(del, true);
}

static int tap_open(const char *tap, int *fd, char *err, size_t errlen)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
	*fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (*fd < 0)
		return errf(err, errlen, -errno, "/dev/net/tun: %s", strerror(errno));
	if (ioctl(*fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;

		close(*fd);
		return errf(err, errlen, -e, "tap %s: TUNSETIFF: %s", tap, strerror(e));
	}
	return 0;
}

static int tap_del(const struct tap_job *j, char *err, size_t errlen);

static int tap_add(const struct tap_job *j, bool *linked, char *err, size_t errlen)
{
	const struct tap_job unlinked = {j->tap, "", j->uid, j->gid, true, false};
	struct ifreq ifr = {0};
	const char *tc = tc_path();
	bool qdisc = false;
	int fd, s, ret;

	*linked = j->link[0] && (!j->optional || if_nametoindex(j->link));
	if (!*linked)
		j = &unlinked;
	if (j->link[0] && !tc)
		return errf(err, errlen, -ENOENT,
			    "tc (iproute2) is needed to connect %s: not found", j->link);
	if (j->link[0] && !if_nametoindex(j->link))
		return errf(err, errlen, -ENODEV, "the pod's interface %s: %s", j->link,
			    strerror(errno));
	if (if_nametoindex(j->tap))
		return errf(err, errlen, -EEXIST, "tap %s exists already", j->tap);
	ret = tap_open(j->tap, &fd, err, errlen);
	if (ret)
		return ret;
	if (ioctl(fd, TUNSETOWNER, (unsigned long)j->uid) < 0 ||
	    ioctl(fd, TUNSETGROUP, (unsigned long)j->gid) < 0 ||
	    ioctl(fd, TUNSETPERSIST, 1UL) < 0) {
		ret = errf(err, errlen, -errno, "tap %s: TUNSETOWNER/GROUP/PERSIST: %s", j->tap,
			   strerror(errno));
		close(fd);
		return ret;
	}
	close(fd);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", j->tap);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
		ret =
		    errf(err, errlen, -errno, "tap %s: setting it up: %s", j->tap, strerror(errno));
		if (s >= 0)
			close(s);
		tap_del(&(struct tap_job){j->tap, "", 0, 0, false, false}, NULL, 0);
		return ret;
	}
	close(s);
	if (!j->link[0])
		return 0;
	ret = redirect(tc, j->link, j->tap, &qdisc, err, errlen);
	if (!ret)
		ret = redirect(tc, j->tap, j->link, &(bool){false}, err, errlen);
	if (ret) {
		/* undo what this call made, and only that: the tap (its own qdisc goes
		 * with it) and the link's qdisc when it was ours */
		if (qdisc)
			qdisc_del(tc, j->link);
		tap_del(&(struct tap_job){j->tap, "", 0, 0, false, false}, NULL, 0);
	}
	return ret;
}

static int tap_del(const struct tap_job *j, char *err, size_t errlen)
{
	const char *tc = tc_path();
	int fd, ret;

	if (j->link[0] && tc)
		qdisc_del(tc, j->link); /* gone with the namespace's interface is fine */
	if (!if_nametoindex(j->tap))
		return 0;
	ret = tap_open(j->tap, &fd, err, errlen);
	if (ret)
		return ret;
	if (ioctl(fd, TUNSETPERSIST, 0UL) < 0)
		ret = errf(err, errlen, -errno, "tap %s: TUNSETPERSIST 0: %s", j->tap,
			   strerror(errno));
	close(fd); /* the last close of a tap that is not persistent deletes it */
	return ret;
}

static int in_netns(const char *netns, const struct tap_job *j, bool *linked, char *err,
		    size_t errlen)
{
	struct tap_result r = {0};
	int p[2], st;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return errf(err, errlen, -errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return errf(err, errlen, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int fd = open(netns, O_RDONLY | O_CLOEXEC);

		close(p[0]);
		if (fd < 0 && errno == ENOENT && !j->add)
			r.ret = 0; /* the namespace went first, and its interfaces with it */
		else if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			r.ret = errf(r.msg, sizeof(r.msg), -errno, "network namespace %s: %s",
				     netns, strerror(errno));
		else
			r.ret = j->add ? tap_add(j, &r.linked, r.msg, sizeof(r.msg))
				       : tap_del(j, r.msg, sizeof(r.msg));
		n = write(p[1], &r, sizeof(r));
		_exit(n == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(p[1]);
	n = read(p[0], &r, sizeof(r));
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(r))
		return errf(err, errlen, -EIO, "tap %s: the helper process failed", j->tap);
	r.msg[sizeof(r.msg) - 1] = '\0';
	if (linked)
		*linked = r.linked;
	if (r.ret)
		errf(err, errlen, 0, "%s", r.msg);
	return r.ret;
}

int oci_tap_add(const char *netns, const char *tap, const char *link, bool optional, uid_t uid,
		gid_t gid, bool *linked, char *err, size_t errlen)
{
	struct tap_job j = {tap, link, uid, gid, true, optional};

	return in_netns(netns, &j, linked, err, errlen);
}

int oci_tap_del(const char *netns, const char *tap, const char *link, char *err, size_t errlen)
{
	struct tap_job j = {tap, link, 0, 0, false, false};

	return in_netns(netns, &j, NULL, err, errlen);
}
