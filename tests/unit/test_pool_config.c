/* thaw-pool's request parsing (strict, each refusal naming its field), ids, the
 * snapshot probe's refusals, and the latency histogram. No VM, no process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "pool/pool.h"
#include "restore/snap_kvm.h"
#include "restore/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[1024];

static int parse_pool(const char *id, const char *json, struct pool_cfg *cfg)
{
	json_object *o = json_tokener_parse(json);
	int ret;

	assert_non_null(o);
	err[0] = '\0';
	ret = pool_cfg_parse(id, o, cfg, err, sizeof(err));
	json_object_put(o);
	return ret;
}

static int parse_clone(const char *json, struct pool_clone_req *req)
{
	json_object *o = json_tokener_parse(json);
	int ret;

	assert_non_null(o);
	err[0] = '\0';
	ret = pool_clone_req_parse(o, req, err, sizeof(err));
	json_object_put(o);
	return ret;
}

static void pool_ids_are_jail_ids(void **state)
{
	assert_true(pool_id_valid("fn-42"));
	assert_true(pool_id_valid("A0"));
	assert_false(pool_id_valid(""));
	assert_false(pool_id_valid("-x"));
	assert_false(pool_id_valid("a_b"));
	assert_false(pool_id_valid("a/b"));
	assert_false(pool_id_valid("a.b"));
	assert_true(pool_id_valid("0123456789abcdef0123456789abcdef"));	  /* 32 */
	assert_false(pool_id_valid("0123456789abcdef0123456789abcdef0")); /* 33 */
}

static void a_full_pool_config_parses_to_its_fields(void **state)
{
	static struct pool_cfg c;

	assert_int_equal(
	    parse_pool("p1",
		       "{\"id\": \"p1\", \"snapshot_path\": \"/s/a.snap\", "
		       "\"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": "
		       "\"/s/a.mem\"}, \"prepared\": 20, \"max_clones\": 50, "
		       "\"max_mem_mib\": 4096, \"refill_per_s\": 12.5, \"vsock\": true, "
		       "\"jail\": {\"uid\": 100, \"gid\": 101, \"chroot_base\": \"/j\", "
		       "\"cgroups\": [\"pids.max=64\", \"memory.max=256M\"]}}",
		       &c),
	    0);
	assert_string_equal(c.id, "p1");
	assert_string_equal(c.snapshot, "/s/a.snap");
	assert_int_equal(c.backend, API_MEM_BACKEND_FILE);
	assert_string_equal(c.backend_path, "/s/a.mem");
	assert_int_equal(c.target, 20);
	assert_int_equal(c.max_clones, 50);
	assert_int_equal(c.max_mem_mib, 4096);
	assert_true(c.refill_per_s > 12.4 && c.refill_per_s < 12.6);
	assert_true(c.vsock);
	assert_true(c.jail.enabled);
	assert_int_equal(c.jail.uid, 100);
	assert_int_equal(c.jail.gid, 101);
	assert_string_equal(c.jail.chroot_base, "/j");
	assert_int_equal(c.jail.n_cgroups, 2);
	assert_string_equal(c.jail.cgroups[1], "memory.max=256M");
}

static void defaults_fill_what_is_left_out(void **state)
{
	static struct pool_cfg c;

	assert_int_equal(parse_pool("p", "{\"snapshot_path\": \"/a.snap\"}", &c), 0);
	assert_int_equal(c.backend, API_MEM_BACKEND_NONE);
	assert_int_equal(c.target, 1);
	assert_int_equal(c.max_clones, POOL_MAX_CLONES);
	assert_int_equal(c.max_mem_mib, 0);
	assert_false(c.jail.enabled);
	assert_false(c.vsock);
}

static void a_config_survives_its_own_json(void **state)
{
	static struct pool_cfg a, b;
	json_object *o;

	assert_int_equal(
	    parse_pool("rt",
		       "{\"snapshot_path\": \"/a.snap\", \"prepared\": 3, "
		       "\"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": "
		       "\"/u.sock\"}, \"jail\": {\"uid\": 1, \"gid\": 2, \"netns\": "
		       "\"/run/netns/x\"}}",
		       &a),
	    0);
	o = pool_cfg_to_json(&a);
	assert_non_null(o);
	assert_int_equal(pool_cfg_parse("rt", o, &b, err, sizeof(err)), 0);
	json_object_put(o);
	assert_memory_equal(&a, &b, sizeof(a));
}

static void bad_pool_configs_are_refused_naming_the_field(void **state)
{
	static struct pool_cfg c;
	static const struct {
		const char *id, *json, *needle;
	} cases[] = {
	    {"p", "{}", "\"snapshot_path\""},
	    {"p", "{\"snapshot_path\": \"rel.snap\"}", "absolute"},
	    {"p", "{\"snapshot_path\": 7}", "string"},
	    {"p", "{\"snapshot_path\": \"/a\", \"prepared\": -1}", "\"prepared\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"prepared\": 100000}", "\"prepared\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"prepared\": \"3\"}", "integer"},
	    {"p", "{\"snapshot_path\": \"/a\", \"refill_per_s\": 0}", "\"refill_per_s\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"vsock\": 1}", "\"vsock\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"extra\": 1}", "Unknown field \"extra\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"id\": \"q\"}", "\"id\""},
	    {"p",
	     "{\"snapshot_path\": \"/a\", \"mem_backend\": {\"backend_type\": \"Disk\", "
	     "\"backend_path\": \"/m\"}}",
	     "\"mem_backend.backend_type\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"mem_backend\": {\"backend_type\": \"File\"}}",
	     "\"mem_backend.backend_path\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"jail\": {\"gid\": 1}}", "\"jail.uid\""},
	    {"p",
	     "{\"snapshot_path\": \"/a\", \"jail\": {\"uid\": 1, \"gid\": 1, \"cgroups\": "
	     "[\"nokey\"]}}",
	     "\"jail.cgroups[0]\""},
	    {"p", "{\"snapshot_path\": \"/a\", \"jail\": {\"uid\": 1, \"gid\": 1, \"shell\": 1}}",
	     "\"jail.shell\""},
	    {"p", "{\"snapshot_path\": \"/a:b\", \"jail\": {\"uid\": 1, \"gid\": 1}}", "':'"},
	    {"bad id", "{\"snapshot_path\": \"/a\"}", "pool id"},
	    {"p", "[1]", "JSON object"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse_pool(cases[i].id, cases[i].json, &c) != -EINVAL ||
		    !strstr(err, cases[i].needle))
			fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].json, err,
				 cases[i].needle);
	}
}

static void clone_requests_parse_and_refuse(void **state)
{
	static struct pool_clone_req r;

	assert_int_equal(parse_clone("{}", &r), 0);
	assert_int_equal(r.count, 1);
	assert_false(r.opts.paused);
	assert_int_equal(parse_clone("{\"count\": 64, \"paused\": true, \"clock_realtime\": "
				     "true, \"vsock_dir\": \"/v\", \"drive_overrides\": "
				     "[{\"drive_id\": \"root\", \"path_on_host\": \"/d.img\", "
				     "\"is_read_only\": false}]}",
				     &r),
			 0);
	assert_int_equal(r.count, 64);
	assert_true(r.opts.paused && r.opts.clock_realtime);
	assert_string_equal(r.opts.vsock_dir, "/v");
	assert_int_equal(r.opts.n_drives, 1);
	assert_string_equal(r.opts.drives[0].drive_id, "root");
	assert_true(r.opts.drives[0].has_read_only);
	assert_false(r.opts.drives[0].is_read_only);
	assert_string_equal(r.opts.drives[0].overlay_of, "");
	assert_int_equal(
	    parse_clone("{\"drive_overrides\": [{\"drive_id\": \"root\", "
			"\"path_on_host\": \"/c/1.qcow2\", \"overlay_of\": \"/b.img\"}]}",
			&r),
	    0);
	assert_string_equal(r.opts.drives[0].overlay_of, "/b.img");
	assert_int_equal(
	    parse_clone("{\"drive_overrides\": [{\"drive_id\": \"root\", "
			"\"path_on_host\": \"/c/1.qcow2\", \"overlay_of\": \"b.img\"}]}",
			&r),
	    -EINVAL);
	assert_non_null(strstr(err, "overlay_of\" must be an absolute path"));

	assert_int_equal(parse_clone("{\"count\": 0}", &r), -EINVAL);
	assert_non_null(strstr(err, "between 1 and 64"));
	assert_int_equal(parse_clone("{\"count\": 65}", &r), -EINVAL);
	assert_non_null(strstr(err, "between 1 and 64"));
	assert_int_equal(parse_clone("{\"vsock_dir\": \"v\"}", &r), -EINVAL);
	assert_non_null(strstr(err, "absolute"));
	assert_int_equal(parse_clone("{\"drive_overrides\": [{\"drive_id\": \"a\", "
				     "\"path_on_host\": \"/x\"}, {\"drive_id\": \"a\", "
				     "\"path_on_host\": \"/y\"}]}",
				     &r),
			 -EINVAL);
	assert_non_null(strstr(err, "drive_overrides[1].drive_id"));
	assert_int_equal(parse_clone("{\"drive_overrides\": [{\"drive_id\": \"a\"}]}", &r),
			 -EINVAL);
	assert_non_null(strstr(err, "drive_overrides[0].path_on_host"));
	assert_int_equal(parse_clone("{\"netns\": \"/x\"}", &r), -EINVAL);
	assert_non_null(strstr(err, "\"netns\""));
}

static void snapshots_that_cannot_serve_are_refused_with_why(void **state)
{
	static struct pool_cfg c;
	char path[] = "/tmp/thaw-pool-unit-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage", 7), 7);
	close(fd);
	snprintf(c.snapshot, sizeof(c.snapshot), "%s", path);
	assert_true(pool_cfg_probe_snapshot(&c, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "does not open"));
	unlink(path);
	assert_true(pool_cfg_probe_snapshot(&c, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "No such file"));
}

/* A snapshot with only a machine section (what the pool reads at PUT) of this shape. */
static void write_machine_snapshot(const char *path, uint64_t mem_size, uint32_t vcpus)
{
	static struct snap_machine m;
	struct snap_writer_opts o = {.no_fsync = true};
	struct snap_writer *w;

	memset(&m, 0, sizeof(m));
	m.mem_size = mem_size;
	m.nr_vcpus = vcpus;
	m.nr_regions = 1;
	m.regions[0].size = mem_size;
	assert_int_equal(snap_writer_create(path, &o, &w), 0);
	assert_int_equal(snap_put_machine(w, &m), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
}

static void shapes_that_cannot_be_prepared_and_incomplete_snapshots_are_refused(void **state)
{
	static struct pool_cfg c;
	char dir[] = "/tmp/thaw-pool-unit-XXXXXX";

	assert_non_null(mkdtemp(dir));
	snprintf(c.snapshot, sizeof(c.snapshot), "%s/s.snap", dir);

	/* a good shape, but no CPU state: a restore would refuse it, so does the pool */
	write_machine_snapshot(c.snapshot, 64ull << 20, 2);
	assert_int_equal(pool_cfg_probe_snapshot(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "fails its checks"));

	write_machine_snapshot(c.snapshot, (3ull << 20) + 4096, 1);
	assert_int_equal(pool_cfg_probe_snapshot(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot be prepared"));
	assert_non_null(strstr(err, "whole number of MiB"));

	write_machine_snapshot(c.snapshot, 64ull << 20, 64);
	assert_int_equal(pool_cfg_probe_snapshot(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "64 vCPUs"));

	unlink(c.snapshot);
	rmdir(dir);
}

static void the_histogram_places_and_ranks_latencies(void **state)
{
	static struct pool_hist h;
	json_object *o, *v;

	assert_int_equal(pool_hist_quantile(&h, 0.5), 0);
	for (int i = 0; i < 98; i++)
		pool_hist_add(&h, 400); /* the 500 us bucket */
	pool_hist_add(&h, 1800);	/* 2000 */
	pool_hist_add(&h, 9000000);	/* above every bound */
	assert_int_equal(h.count, 100);
	assert_int_equal(pool_hist_quantile(&h, 0.5), 500);
	assert_int_equal(pool_hist_quantile(&h, 0.99), 2000);
	assert_int_equal(pool_hist_quantile(&h, 1.0), 9000000);
	assert_int_equal(h.max_us, 9000000);
	o = pool_hist_to_json(&h);
	assert_true(json_object_object_get_ex(o, "buckets", &v));
	assert_int_equal(json_object_array_length(v), POOL_HIST_BUCKETS + 1);
	assert_true(json_object_object_get_ex(o, "p99_us", &v));
	assert_int_equal(json_object_get_int64(v), 2000);
	json_object_put(o);
	/* a single sample below its bucket's bound ranks as itself */
	memset(&h, 0, sizeof(h));
	pool_hist_add(&h, 612);
	assert_int_equal(pool_hist_quantile(&h, 0.5), 612);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pool_ids_are_jail_ids),
	    cmocka_unit_test(a_full_pool_config_parses_to_its_fields),
	    cmocka_unit_test(defaults_fill_what_is_left_out),
	    cmocka_unit_test(a_config_survives_its_own_json),
	    cmocka_unit_test(bad_pool_configs_are_refused_naming_the_field),
	    cmocka_unit_test(clone_requests_parse_and_refuse),
	    cmocka_unit_test(snapshots_that_cannot_serve_are_refused_with_why),
	    cmocka_unit_test(shapes_that_cannot_be_prepared_and_incomplete_snapshots_are_refused),
	    cmocka_unit_test(the_histogram_places_and_ranks_latencies),
	};

	return cmocka_run_group_tests_name("pool_config", tests, NULL, NULL);
}
