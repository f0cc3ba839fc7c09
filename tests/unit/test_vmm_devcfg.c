/* Device specs of the command line, parsed once into typed configurations: every key
 * read once, values copied whole or refused, nothing a value holds taken as a key. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/vmm.h"

static void test_drive_spec_fills_the_struct(void **state)
{
	struct vmm_drive_cfg d;
	char err[256];
	unsigned given;

	assert_int_equal(
	    vmm_parse_drive("id=root,path=/img,ro=on,root=on", NULL, &d, &given, err, sizeof(err)),
	    0);
	assert_string_equal(d.id, "root");
	assert_string_equal(d.path, "/img");
	assert_true(d.read_only);
	assert_true(d.root);
	assert_int_equal(given, VMM_KEY_ID | VMM_KEY_PATH | VMM_KEY_RO | VMM_KEY_ROOT);
	assert_string_equal(d.overlay_of, "");
	assert_int_equal(vmm_parse_drive("id=d0,path=/c/1.qcow2,overlay-of=/base/disk.img", NULL,
					 &d, &given, err, sizeof(err)),
			 0);
	assert_string_equal(d.overlay_of, "/base/disk.img");
	assert_int_equal(given, VMM_KEY_ID | VMM_KEY_PATH | VMM_KEY_OVERLAY_OF);
}

/* The injection the API once allowed, on the command line: a second ro= is an error,
 * not a silent override. */
static void test_a_key_given_twice_is_refused(void **state)
{
	struct vmm_drive_cfg d;
	char err[256];
	unsigned given;

	assert_int_equal(
	    vmm_parse_drive("id=x,path=/img,ro=on,ro=off", NULL, &d, &given, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "ro= given twice"));
}

static void test_bad_specs_are_refused_naming_the_problem(void **state)
{
	static const struct {
		const char *spec, *needle;
	} bad[] = {
	    {"path=/img", "needs id"},
	    {"id=x,ro=maybe", "not on or off"},
	    {"id=x,colour=blue", "'colour' is not one of its options"},
	    {"id=x,ro", "not key=value"},
	    {"id=x,path=", "must have 1 to"},
	    {"id=0123456789012345678901234567890123456789,path=/i", "longer than"},
	};
	struct vmm_drive_cfg d;
	char err[256];
	unsigned given;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vmm_parse_drive(bad[i].spec, NULL, &d, &given, err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, bad[i].needle))
			fail_msg("'%s': '%s' lacks '%s'", bad[i].spec, err, bad[i].needle);
	}
}

/* A restore's override takes only what it may change. */
static void test_allowed_keys_limit_an_override(void **state)
{
	static const char *const only[] = {"id", "tap", NULL};
	struct vmm_net_cfg n;
	char err[256];
	unsigned given;

	assert_int_equal(vmm_parse_net("id=eth0,tap=tap1", only, &n, &given, err, sizeof(err)), 0);
	assert_string_equal(n.tap, "tap1");
	assert_false(n.has_mac);
	assert_int_equal(vmm_parse_net("id=eth0,tap=tap1,mac=02:00:00:00:00:01", only, &n, &given,
				       err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(
	    vmm_parse_net("id=eth0,tap=0123456789abcdefgh", NULL, &n, &given, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(vmm_parse_net("id=eth0,tap=t,mac=01:00:00:00:00:01", NULL, &n, &given, err,
				       sizeof(err)),
			 -EINVAL); /* multicast */
}

static void test_vsock_cid_range(void **state)
{
	struct vmm_vsock_cfg v;
	char err[256];
	unsigned given;

	assert_int_equal(vmm_parse_vsock("cid=3,uds=/v.sock", NULL, &v, &given, err, sizeof(err)),
			 0);
	assert_int_equal(v.guest_cid, 3);
	assert_string_equal(v.uds, "/v.sock");
	assert_int_equal(vmm_parse_vsock("cid=2,uds=/v", NULL, &v, &given, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(
	    vmm_parse_vsock("cid=4294967295,uds=/v", NULL, &v, &given, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmm_parse_vsock("cid=-5,uds=/v", NULL, &v, &given, err, sizeof(err)),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_drive_spec_fills_the_struct),
	    cmocka_unit_test(test_a_key_given_twice_is_refused),
	    cmocka_unit_test(test_bad_specs_are_refused_naming_the_problem),
	    cmocka_unit_test(test_allowed_keys_limit_an_override),
	    cmocka_unit_test(test_vsock_cid_range),
	};

	return cmocka_run_group_tests_name("device specs", tests, NULL, NULL);
}
