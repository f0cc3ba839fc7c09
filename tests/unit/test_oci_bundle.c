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

#define HEAD                                                                                       \
	"{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, \"annotations\": "          \
	"{\"org.thaw.snapshot\": \"/snap/base.snap\"}"

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
	s.pid = getpid();
	s.starttime = oci_proc_starttime(getpid(), &zombie);
	assert_true(s.starttime > 0);
	assert_false(zombie);
	s.started = true;
	s.jailed = true;
	assert_int_equal(oci_state_save(file, &s), 0);
	assert_int_equal(oci_state_load(file, &t, e, sizeof(e)), 0);
	assert_string_equal(t.id, "c1");
	assert_string_equal(t.api_dir, "/srv/x/root");
	assert_string_equal(t.annotations, "{\"a\":\"b\"}");
	assert_int_equal(t.pid, getpid());
	assert_true(t.jailed);
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
	};

	return cmocka_run_group_tests_name("oci_bundle", tests, NULL, NULL);
}
