/* The clone's taps in the pod's network namespace: made persistent and owned by the
 * VMM's uid before the jailed VMM (no capabilities) attaches to them, and tied to the
 * pod's interface (CNI's eth0) by tc redirects both ways, so the pod's traffic is the
 * guest's. Everything runs in a forked child that joins the namespace: thaw-oci's own
 * namespace never changes. */
#include "oci/oci.h"

#include "common/argv.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <json-c/json.h>
#include <stdlib.h>
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
	struct oci_link_info info;
	char msg[512];
};

int oci_route_gateway(const char *text, const char *link, char *out, size_t len)
{
	const char *line = text;

	if (len)
		out[0] = '\0';
	/* "Iface Destination Gateway Flags RefCnt Use Metric Mask ...", a header first */
	for (line = strchr(line, '\n'); line && *++line; line = strchr(line, '\n')) {
		char ifname[IFNAMSIZ + 1];
		unsigned dest, gw, flags, mask;
		struct in_addr a;

		if (sscanf(line, "%16s %x %x %x %*d %*d %*d %x", ifname, &dest, &gw, &flags,
			   &mask) != 5)
			continue;
		if (strcmp(ifname, link) || dest || mask || !(flags & 0x2 /* RTF_GATEWAY */))
			continue;
		a.s_addr = gw; /* printed as the kernel holds it: network order in memory */
		if (!inet_ntop(AF_INET, &a, out, (socklen_t)len))
			return -ENOSPC;
		return 0;
	}
	return -ENOENT;
}

json_object *oci_link_guest_json(const char *link, const struct oci_link_info *li)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "link", json_object_new_string(link));
	if (li->mac[0])
		json_object_object_add(o, "mac", json_object_new_string(li->mac));
	for (unsigned i = 0; i < li->n_addrs && i < OCI_LINK_ADDRS; i++)
		json_object_array_add(a, json_object_new_string(li->addrs[i]));
	json_object_object_add(o, "addresses", a);
	if (li->gateway[0])
		json_object_object_add(o, "gateway", json_object_new_string(li->gateway));
	return o;
}

static unsigned prefix_len(const struct sockaddr *mask)
{
	const unsigned char *b;
	size_t n;
	unsigned bits = 0;

	if (!mask)
		return 0;
	if (mask->sa_family == AF_INET) {
		b = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr;
		n = 4;
	} else {
		b = (const unsigned char *)&((const struct sockaddr_in6 *)mask)->sin6_addr;
		n = 16;
	}
	for (size_t i = 0; i < n; i++)
		bits += (unsigned)__builtin_popcount(b[i]);
	return bits;
}

/* In the pod's namespace: `link`'s MAC, its IPv4 and global IPv6 addresses (link-local
 * ones say nothing the guest needs) and the IPv4 default gateway through it. */
static void link_info(const char *link, struct oci_link_info *li)
{
	struct ifaddrs *all, *i;
	struct ifreq ifr = {0};
	char text[8192];
	ssize_t n;
	int fd;

	memset(li, 0, sizeof(*li));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", link);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0) {
		const unsigned char *m = (const unsigned char *)ifr.ifr_hwaddr.sa_data;

		snprintf(li->mac, sizeof(li->mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1],
			 m[2], m[3], m[4], m[5]);
	}
	if (fd >= 0)
		close(fd);
	if (getifaddrs(&all) == 0) {
		for (i = all; i && li->n_addrs < OCI_LINK_ADDRS; i = i->ifa_next) {
			char a[INET6_ADDRSTRLEN];
			const void *p;

			if (!i->ifa_addr || strcmp(i->ifa_name, link) ||
			    (i->ifa_addr->sa_family != AF_INET &&
			     i->ifa_addr->sa_family != AF_INET6))
				continue;
			if (i->ifa_addr->sa_family == AF_INET) {
				p = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;
			} else {
				p = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
				if (IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *)p))
					continue;
			}
			if (!inet_ntop(i->ifa_addr->sa_family, p, a, sizeof(a)))
				continue;
			snprintf(li->addrs[li->n_addrs++], sizeof(li->addrs[0]), "%s/%u", a,
				 prefix_len(i->ifa_netmask));
		}
		freeifaddrs(all);
	}
	/* /proc/net is the reading task's namespace's: this child's, the pod's */
	fd = open("/proc/net/route", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
		text[n > 0 ? n : 0] = '\0';
		oci_route_gateway(text, link, li->gateway, sizeof(li->gateway));
	}
}

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

static int tap_add(const struct tap_job *j, bool *linked, struct oci_link_info *info, char *err,
		   size_t errlen)
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
	} else {
		link_info(j->link, info);
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

static int in_netns(const char *netns, const struct tap_job *j, bool *linked,
		    struct oci_link_info *info, char *err, size_t errlen)
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
			r.ret = j->add ? tap_add(j, &r.linked, &r.info, r.msg, sizeof(r.msg))
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
	if (info)
		*info = r.info;
	if (r.ret)
		errf(err, errlen, 0, "%s", r.msg);
	return r.ret;
}

int oci_tap_add(const char *netns, const char *tap, const char *link, bool optional, uid_t uid,
		gid_t gid, bool *linked, struct oci_link_info *info, char *err, size_t errlen)
{
	struct tap_job j = {tap, link, uid, gid, true, optional};

	return in_netns(netns, &j, linked, info, err, errlen);
}

int oci_tap_del(const char *netns, const char *tap, const char *link, char *err, size_t errlen)
{
	struct tap_job j = {tap, link, 0, 0, false, false};

	return in_netns(netns, &j, NULL, NULL, err, errlen);
}
