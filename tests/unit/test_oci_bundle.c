/* thaw-oci's pure logic: a bundle's config.json to a typed plan (snapshot, cgroup
 * files, netns, refusals), container and jail ids, the state file's round trip and the
 * status of a process that is gone. No VM, no engine. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/oci.h"

#include <json-c/json.h>

#define HEAD                                                                                       \
	"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "          \
	"{\"org.thaw.snapshot\": \"/snap/base.snap\"}"

/* HEAD without the annotations' closing brace, for tests that add annotations */
#define HEAD_ANN                                                                                   \
	"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "          \
	"{\"org.thaw.snapshot\": \"/snap/base.snap\""

static struct oci_bundle b;
static char err[512];

static int parse(const char *json)
{
	err[0] = '\0';
	return oci_bundle_parse(json, "/b", &b, err, sizeof(err));
}

static const char *cg(const char *key)
{
	for (unsigned i = 0; i < b.n_cg; i++)
		if (!strcmp(b.cg[i].key, key))
			return b.cg[i].value;
	return NULL;
}

static void minimal_bundle_is_unjailed(void **state)
{
	assert_int_equal(parse(HEAD "}"), 0);
	assert_string_equal(b.rootfs, "/b/rootfs");
	assert_string_equal(b.snapshot, "/b/rootfs/snap/base.snap");
	assert_false(oci_bundle_jailed(&b));
	assert_false(b.terminal);
	assert_int_equal(b.uid, 0);
}

static void resources_become_cgroup_v1_files(void **state)
{
	assert_int_equal(
	    parse(HEAD
		  ", \"process\": {\"terminal\": true, \"user\": {\"uid\": 1000, \"gid\": "
		  "100}}, \"linux\": {\"cgroupsPath\": \"/default/c1\", \"resources\": "
		  "{\"memory\": {\"limit\": 268435456, \"swap\": 536870912}, \"cpu\": "
		  "{\"shares\": 512, \"quota\": 50000, \"period\": 100000, \"cpus\": \"0-1\"}, "
		  "\"pids\": {\"limit\": 64}, \"devices\": [{\"allow\": false, \"access\": "
		  "\"rwm\"}]}}}"),
	    0);
	assert_true(oci_bundle_jailed(&b));
	assert_true(b.terminal);
	assert_int_equal(b.uid, 1000);
	assert_int_equal(b.gid, 100);
	assert_string_equal(b.cgroup_parent, "default");
	assert_string_equal(b.cgroup_leaf, "c1");
	assert_string_equal(cg("memory.limit_in_bytes"), "268435456");
	assert_string_equal(cg("memory.memsw.limit_in_bytes"), "536870912");
	assert_string_equal(cg("cpu.shares"), "512");
	assert_string_equal(cg("cpu.cfs_quota_us"), "50000");
	assert_string_equal(cg("cpuset.cpus"), "0-1");
	assert_string_equal(cg("pids.max"), "64");
	/* the period is written before the quota that is checked against it */
	for (unsigned i = 0; i < b.n_cg; i++)
		if (!strcmp(b.cg[i].key, "cpu.cfs_quota_us"))
			assert_non_null(cg("cpu.cfs_period_us"));
}

static void unlimited_values_set_nothing(void **state)
{
	assert_int_equal(parse(HEAD ", \"linux\": {\"resources\": {\"memory\": {\"limit\": -1}, "
				    "\"pids\": {\"limit\": 0}, \"cpu\": {\"quota\": -1}}}}"),
			 0);
	assert_int_equal(b.n_cg, 0);
	assert_false(oci_bundle_jailed(&b));
}

static void network_namespace_path_is_the_jails(void **state)
{
	assert_int_equal(parse(HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"network\", "
				    "\"path\": \"/var/run/netns/cni-1\"}, {\"type\": \"pid\"}]}}"),
			 0);
	assert_string_equal(b.netns, "/var/run/netns/cni-1");
	assert_true(oci_bundle_jailed(&b));
	/* a new network namespace (no path): nothing to join */
	assert_int_equal(parse(HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"network\"}]}}"),
			 0);
	assert_string_equal(b.netns, "");
}

static void what_a_clone_cannot_honour_is_refused(void **state)
{
	static const struct {
		const char *json, *why;
	} cases[] = {
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}}", "no snapshot"},
	    {"{\"ociVersion\": \"2.0.0\"}", "not 1.x"},
	    {"{\"ociVersion\": \"1.0.2\", \"annotations\": {\"org.thaw.snapshot\": \"/s\"}}",
	     "no root.path"},
	    {"[1, 2]", "not a JSON object"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"../../etc/shadow\"}}",
	     "refused"},
	    {HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"user\"}]}}", "user namespace"},
	    {HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"ipc\", \"path\": "
		  "\"/proc/1/ns/ipc\"}]}}",
	     "joining a ipc namespace"},
	    {HEAD ", \"linux\": {\"cgroupsPath\": \"machine.slice:libpod:abc\"}}", "systemd form"},
	    {HEAD ", \"linux\": {\"cgroupsPath\": \"/a/../b\"}}", "refused"},
	    {HEAD ", \"linux\": {\"resources\": {\"memory\": {\"limit\": \"big\"}}}}",
	     "not an integer"},
	    {HEAD ", \"linux\": {\"resources\": {\"memory\": {\"disableOOMKiller\": true}}}}",
	     "disableOOMKiller"},
	    {HEAD ", \"linux\": {\"resources\": {\"cpu\": {\"cpus\": \"0-1; rm\"}}}}",
	     "not a CPU list"},
	    {HEAD ", \"linux\": {\"resources\": {\"blockIO\": {\"weight\": 100}}}}", "blockIO"},
	    {HEAD ", \"linux\": {\"intelRdt\": {\"closID\": \"x\"}}}", "intelRdt"},
	    {HEAD ", \"hooks\": {\"poststart\": [{\"path\": \"/bin/true\"}]}}", "hooks.poststart"},
	    {HEAD ", \"process\": {\"user\": {\"uid\": -1}}}", "out of range"},
	    {"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "
	     "{\"org.thaw.snapshot\": \"/s\", \"org.thaw.clock-realtime\": \"yes\"}}",
	     "true or false"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse(cases[i].json) != -EINVAL || !strstr(err, cases[i].why))
			fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].why);
	}
	/* what is ignored, not refused: a VM does not run the container's process */
	assert_int_equal(parse(HEAD ", \"process\": {\"args\": [\"/x\"], \"env\": [\"A=1\"], "
				    "\"capabilities\": {}}, \"mounts\": [{\"destination\": "
				    "\"/proc\"}], \"hooks\": {}, \"linux\": {\"seccomp\": "
				    "{\"defaultAction\": \"SCMP_ACT_ERRNO\"}, \"sysctl\": "
				    "{\"net.ipv4.ping_group_range\": \"0 0\"}, \"maskedPaths\": "
				    "[\"/proc/kcore\"]}}"),
			 0);
}

static void ids(void **state)
{
	char j[OCI_JAIL_ID_MAX + 1], k[OCI_JAIL_ID_MAX + 1];
	char long_id[OCI_ID_MAX + 2];

	assert_int_equal(oci_id_check("abc_1.2-x"), 0);
	assert_int_equal(oci_id_check(".hidden"), -EINVAL);
	assert_int_equal(oci_id_check("a/b"), -EINVAL);
	assert_int_equal(oci_id_check(""), -EINVAL);
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(oci_id_check(long_id), -EINVAL);
	/* the cgroup leaf when it is a jail id, else one made from the container id */
	oci_jail_id("c1", "c1", j);
	assert_string_equal(j, "c1");
	oci_jail_id("c1", NULL, j);
	assert_string_equal(j, "oci-c1");
	oci_jail_id("a_b", "", j);
	assert_int_equal(strncmp(j, "oci-ab-", 7), 0);
	oci_jail_id("a.b", "", k);
	assert_string_not_equal(j, k);
	oci_jail_id("0123456789012345678901234567890123456789012345678901234567890123456789", NULL,
		    j);
	assert_true(strlen(j) <= OCI_JAIL_ID_MAX);
}

static void state_round_trip_and_gone_process(void **state)
{
	char path[] = "/tmp/thaw-oci-unit-XXXXXX", file[64], e[256];
	struct oci_state s = {0}, t;
	bool zombie;

	assert_non_null(mkdtemp(path));
	snprintf(file, sizeof(file), "%s/state.json", path);
	snprintf(s.id, sizeof(s.id), "c1");
	snprintf(s.bundle, sizeof(s.bundle), "/b");
	snprintf(s.rootfs, sizeof(s.rootfs), "/b/rootfs");
	snprintf(s.created, sizeof(s.created), "2026-12-07T00:00:00Z");
	snprintf(s.jail_id, sizeof(s.jail_id), "c1");
	snprintf(s.api_dir, sizeof(s.api_dir), "/srv/x/root");
	snprintf(s.annotations, sizeof(s.annotations), "{\"a\":\"b\"}");
	snprintf(s.netns, sizeof(s.netns), "/run/netns/pod");
	snprintf(s.taps[0].tap, sizeof(s.taps[0].tap), "thaw-0badcafe-0");
	snprintf(s.taps[0].link, sizeof(s.taps[0].link), "eth0");
	s.n_taps = 1;
	s.pid = getpid();
	s.starttime = oci_proc_starttime(getpid(), &zombie);
	assert_true(s.starttime > 0);
	assert_false(zombie);
	s.started = true;
	s.jailed = true;
	s.vmm_pid = 4242;
	s.vmm_starttime = 99;
	snprintf(s.pool, sizeof(s.pool), "/run/pool.sock");
	snprintf(s.pool_clone, sizeof(s.pool_clone), "fn-17");
	assert_int_equal(oci_state_save(file, &s), 0);
	assert_int_equal(oci_state_load(file, &t, e, sizeof(e)), 0);
	assert_string_equal(t.id, "c1");
	assert_int_equal(t.vmm_pid, 4242);
	assert_int_equal(t.vmm_starttime, 99);
	assert_string_equal(t.pool, "/run/pool.sock");
	assert_string_equal(t.pool_clone, "fn-17");
	assert_string_equal(t.pool_note, "");
	assert_string_equal(t.api_dir, "/srv/x/root");
	assert_string_equal(t.annotations, "{\"a\":\"b\"}");
	assert_int_equal(t.pid, getpid());
	assert_true(t.jailed);
	assert_string_equal(t.netns, "/run/netns/pod");
	assert_int_equal(t.n_taps, 1);
	assert_string_equal(t.taps[0].tap, "thaw-0badcafe-0");
	assert_string_equal(t.taps[0].link, "eth0");
	assert_int_equal(oci_state_status(&t), OCI_RUNNING);
	t.paused = true;
	assert_int_equal(oci_state_status(&t), OCI_PAUSED);
	t.started = false;
	assert_int_equal(oci_state_status(&t), OCI_CREATED);
	/* the pid names another process now (other start time): stopped */
	t.starttime++;
	assert_int_equal(oci_state_status(&t), OCI_STOPPED);
	assert_string_equal(oci_status_name(OCI_STOPPED), "stopped");
	/* not a state file */
	assert_int_equal(oci_state_save(file, &s), 0);
	{
		FILE *f = fopen(file, "w");

		assert_non_null(f);
		fputs("{\"id\": 3}", f);
		fclose(f);
	}
	assert_int_equal(oci_state_load(file, &t, e, sizeof(e)), -EINVAL);
	assert_non_null(strstr(e, "not a state file"));
	unlink(file);
	rmdir(path);
}

/* org.thaw.pool names a pool's API socket: an absolute path, nothing else. */
static void pool_annotation_is_an_absolute_socket(void **state)
{
	assert_int_equal(parse(HEAD "}"), 0);
	assert_string_equal(b.pool, "");
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.pool\": \"/run/thaw-pool.sock\"}}"), 0);
	assert_string_equal(b.pool, "/run/thaw-pool.sock");
	assert_false(oci_bundle_jailed(&b)); /* a pool alone asks for no cgroup */
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.pool\": \"pool.sock\"}}"), -EINVAL);
	assert_non_null(strstr(err, "org.thaw.pool 'pool.sock': must be the absolute path"));
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.pool\": \"/a/../b.sock\"}}"), -EINVAL);
	/* a near miss is a typo, refused as before */
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.pools\": \"/p.sock\"}}"), -EINVAL);
	assert_non_null(strstr(err, "not known to thaw-oci"));
}

/* The pod's default gateway from /proc/net/route's text (the kernel's hex, its byte
 * order): only a default route with RTF_GATEWAY through the interface asked for. */
static void default_gateway_from_proc_net_route(void **state)
{
	const char *route =
	    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	    "eth1\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	    "eth0\t004D580A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	    "eth0\t00000000\t014D580A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
	char gw[16];

	assert_int_equal(oci_route_gateway(route, "eth0", gw, sizeof(gw)), 0);
	assert_string_equal(gw, "10.88.77.1");
	assert_int_equal(oci_route_gateway(route, "eth1", gw, sizeof(gw)), 0);
	assert_string_equal(gw, "192.168.1.1");
	assert_int_equal(oci_route_gateway(route, "eth2", gw, sizeof(gw)), -ENOENT);
	assert_string_equal(gw, "");
	/* a default route without RTF_GATEWAY (on-link) names no gateway */
	assert_int_equal(oci_route_gateway("Iface\tDestination\tGateway\tFlags\n"
					   "eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\n",
					   "eth0", gw, sizeof(gw)),
			 -ENOENT);
	assert_int_equal(oci_route_gateway("", "eth0", gw, sizeof(gw)), -ENOENT);
}

/* What the guest reads in MMDS of an interface tied to the pod's: link, MAC, CNI's
 * addresses and gateway; what is unknown is left out. */
static void pod_link_becomes_the_guests_json(void **state)
{
	struct oci_link_info li = {.mac = "0a:58:0a:58:4d:02",
				   .addrs = {"10.88.77.2/24", "fd00::2/64"},
				   .n_addrs = 2,
				   .gateway = "10.88.77.1"};
	struct json_object *o = oci_link_guest_json("eth0", &li);

	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"link\":\"eth0\",\"mac\":\"0a:58:0a:58:4d:02\",\"addresses\":"
			    "[\"10.88.77.2\\/24\",\"fd00::2\\/64\"],\"gateway\":\"10.88.77.1\"}");
	json_object_put(o);
	memset(&li, 0, sizeof(li));
	o = oci_link_guest_json("net1", &li);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"link\":\"net1\",\"addresses\":[]}");
	json_object_put(o);
}

static void put_file(const char *path, char fill, size_t head, size_t size)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	for (size_t i = 0; i < size; i++)
		fputc(i < head ? fill : 0, f);
	fclose(f);
}

/* A pool's snapshot file and the bundle's are the same snapshot when they are one inode
 * or have the same size and header (the header holds the table's checksum). */
static void snapshot_identity_is_size_and_header(void **state)
{
	char d[] = "/tmp/thaw-oci-unit-XXXXXX", a[64], c[64], x[64], y[64], z[64];

	assert_non_null(mkdtemp(d));
	snprintf(a, sizeof(a), "%s/a", d);
	snprintf(c, sizeof(c), "%s/copy", d);
	snprintf(x, sizeof(x), "%s/otherhead", d);
	snprintf(y, sizeof(y), "%s/longer", d);
	snprintf(z, sizeof(z), "%s/short", d);
	put_file(a, 'h', 4096, 8192);
	put_file(c, 'h', 4096, 8192);
	put_file(x, 'H', 4096, 8192);
	put_file(y, 'h', 4096, 12288);
	put_file(z, 'h', 100, 100);
	assert_int_equal(oci_snapshot_same(a, a), 1);
	assert_int_equal(oci_snapshot_same(a, c), 1);
	assert_int_equal(oci_snapshot_same(a, x), 0);
	assert_int_equal(oci_snapshot_same(a, y), 0);
	assert_int_equal(oci_snapshot_same(z, z), 0); /* no header: not a snapshot */
	assert_int_equal(oci_snapshot_same(a, "/nonexistent/snap"), -ENOENT);
	unlink(a);
	unlink(c);
	unlink(x);
	unlink(y);
	unlink(z);
	rmdir(d);
}

static void device_annotations_become_drives_and_nets(void **state)
{
	assert_int_equal(
	    parse("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, "
		  "\"annotations\": {\"org.thaw.snapshot\": \"/base.snap\", "
		  "\"org.thaw.drive.d0\": \"/img/base.qcow2\", \"org.thaw.drive.scratch\": "
		  "\"raw.img\", \"org.thaw.net.eth0\": \"eth0\", \"org.thaw.net.eth1\": "
		  "\"none\"}}"),
	    0);
	assert_int_equal(b.n_drives, 2);
	assert_string_equal(b.drives[0].id, "d0");
	assert_string_equal(b.drives[0].base, "/b/rootfs/img/base.qcow2");
	assert_string_equal(b.drives[1].id, "scratch");
	assert_string_equal(b.drives[1].base, "/b/rootfs/raw.img");
	assert_int_equal(b.n_nets, 2);
	assert_string_equal(b.nets[0].id, "eth0");
	assert_string_equal(b.nets[0].link, "eth0");
	assert_string_equal(b.nets[1].link, "");
	/* ids the VMM would refuse, paths that leave the rootfs, names no interface has */
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.drive.a.b\": \"/x\"}}"), -EINVAL);
	assert_non_null(strstr(err, "not a drive id"));
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.drive.d0\": \"/../etc/passwd\"}}"), -EINVAL);
	assert_non_null(strstr(err, "without '..'"));
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.drive.d0\": \"/a:b\"}}"), -EINVAL);
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.drive.d0\": \"\"}}"), -EINVAL);
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.net.eth0\": \"a-name-far-too-long\"}}"),
			 -EINVAL);
	assert_non_null(strstr(err, "interface name"));
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.net.eth0\": \"../x\"}}"), -EINVAL);
	assert_int_equal(parse(HEAD_ANN ", \"org.thaw.net.\": \"eth0\"}}"), -EINVAL);
}

static void process_goes_to_the_guest_as_json(void **state)
{
	assert_int_equal(parse(HEAD
			       ", \"process\": {\"args\": [\"/fn\", \"--port\", \"80\"], "
			       "\"env\": [\"PATH=/bin\", \"A=1=2\", \"A=3\", \"E=\"], \"cwd\": "
			       "\"/srv\"}}"),
			 0);
	assert_string_equal(b.process, "{\"args\":[\"/fn\",\"--port\",\"80\"],\"env\":{\"PATH\":"
				       "\"/bin\",\"A\":\"3\",\"E\":\"\"},\"cwd\":\"/srv\"}");
	/* no process: empty args and env */
	assert_int_equal(parse(HEAD "}"), 0);
	assert_string_equal(b.process, "{\"args\":[],\"env\":{}}");
	assert_int_equal(parse(HEAD ", \"process\": {\"env\": [\"NOEQUALS\"]}}"), -EINVAL);
	assert_non_null(strstr(err, "process.env[0]: not NAME=VALUE"));
	assert_int_equal(parse(HEAD ", \"process\": {\"env\": [\"=x\"]}}"), -EINVAL);
	assert_int_equal(parse(HEAD ", \"process\": {\"args\": [1]}}"), -EINVAL);
	assert_non_null(strstr(err, "process.args[0]: not a string"));
	assert_int_equal(parse(HEAD ", \"process\": {\"args\": \"/fn\"}}"), -EINVAL);
	/* more than the clone's metadata store holds: refused before anything is made */
	{
		size_t n = OCI_PROCESS_MAX + 100;
		char *big = malloc(n + 256);

		assert_non_null(big);
		snprintf(big, 256, HEAD ", \"process\": {\"args\": [\"");
		memset(big + strlen(big), 'x', n);
		snprintf(big + strlen(HEAD ", \"process\": {\"args\": [\"") + n, 16, "\"]}}");
		assert_int_equal(parse(big), -EINVAL);
		assert_non_null(strstr(err, "more than the clone's metadata store holds"));
		free(big);
	}
}

static void bundle_must_match_the_snapshots_devices(void **state)
{
	struct oci_snap_devices d = {0};

	d.dev[0].kind = OCI_DEV_DRIVE;
	snprintf(d.dev[0].id, sizeof(d.dev[0].id), "d0");
	d.dev[1].kind = OCI_DEV_NET;
	snprintf(d.dev[1].id, sizeof(d.dev[1].id), "eth0");
	d.dev[2].kind = OCI_DEV_VSOCK;
	snprintf(d.dev[2].id, sizeof(d.dev[2].id), "vsock");
	d.n = 3;
	static const struct {
		const char *config;
		const char *why; /* NULL: matched */
	} cases[] = {
	    /* a drive with no base image named */
	    {HEAD ", \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": "
		  "\"/run/netns/p\"}]}}",
	     "the snapshot has drive 'd0': annotation org.thaw.drive.d0"},
	    /* an interface without a namespace to put its tap in */
	    {HEAD_ANN ", \"org.thaw.drive.d0\": \"/d\"}}",
	     "network interface 'eth0': the bundle must give a network namespace path"},
	    /* both: matched (the vsock needs nothing from the bundle) */
	    {HEAD_ANN ", \"org.thaw.drive.d0\": \"/d\"}, \"linux\": {\"namespaces\": "
		      "[{\"type\": \"network\", \"path\": \"/run/netns/p\"}]}}",
	     NULL},
	    /* annotations naming devices the snapshot does not have */
	    {HEAD_ANN ", \"org.thaw.drive.d0\": \"/d\", \"org.thaw.drive.d1\": \"/d\"}, "
		      "\"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": "
		      "\"/run/netns/p\"}]}}",
	     "the snapshot has no drive 'd1'"},
	    {HEAD_ANN ", \"org.thaw.drive.d0\": \"/d\", \"org.thaw.net.eth9\": \"eth0\"}, "
		      "\"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": "
		      "\"/run/netns/p\"}]}}",
	     "no network interface 'eth9'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].config), 0);
		assert_int_equal(oci_bundle_match(&b, &d, err, sizeof(err)),
				 cases[i].why ? -EINVAL : 0);
		if (cases[i].why && !strstr(err, cases[i].why))
			fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].why);
	}
	/* a snapshot without devices takes a bundle without device annotations */
	d.n = 0;
	assert_int_equal(parse(HEAD "}"), 0);
	assert_int_equal(oci_bundle_match(&b, &d, err, sizeof(err)), 0);
}

static void tap_names_fit_and_differ(void **state)
{
	char a[OCI_IFNAME_MAX + 1], c[OCI_IFNAME_MAX + 1], long_id[OCI_ID_MAX + 1];

	memset(long_id, 'x', OCI_ID_MAX);
	long_id[OCI_ID_MAX] = '\0';
	oci_tap_name(long_id, 15, a);
	assert_int_equal(strlen(a), OCI_IFNAME_MAX);
	assert_int_equal(strncmp(a, "thaw-", 5), 0);
	oci_tap_name("c1", 0, a);
	oci_tap_name("c2", 0, c);
	assert_string_not_equal(a, c);
	oci_tap_name("c1", 1, c);
	assert_string_not_equal(a, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(minimal_bundle_is_unjailed),
	    cmocka_unit_test(resources_become_cgroup_v1_files),
	    cmocka_unit_test(unlimited_values_set_nothing),
	    cmocka_unit_test(network_namespace_path_is_the_jails),
	    cmocka_unit_test(what_a_clone_cannot_honour_is_refused),
	    cmocka_unit_test(ids),
	    cmocka_unit_test(state_round_trip_and_gone_process),
	    cmocka_unit_test(device_annotations_become_drives_and_nets),
	    cmocka_unit_test(process_goes_to_the_guest_as_json),
	    cmocka_unit_test(bundle_must_match_the_snapshots_devices),
	    cmocka_unit_test(tap_names_fit_and_differ),
	    cmocka_unit_test(pool_annotation_is_an_absolute_socket),
	    cmocka_unit_test(snapshot_identity_is_size_and_header),
	    cmocka_unit_test(default_gateway_from_proc_net_route),
	    cmocka_unit_test(pod_link_becomes_the_guests_json),
	};

	return cmocka_run_group_tests_name("oci_bundle", tests, NULL, NULL);
}
