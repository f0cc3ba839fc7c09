/* thaw-disk, its output checked against qemu-img's on the same images: info, check
 * (exit statuses as qemu-img check's), create, overlay, the snapshot commands, commit. */
#include "tests/unit/test_disk_harness.h"

#include <json-c/json.h>

static json_object *json_of(const char *prog, const char *arg)
{
	char out[16384];
	json_object *o;

	assert_int_equal(sh_out(out, sizeof(out), "%s %s", prog, arg), 0);
	o = json_tokener_parse(out);
	if (!o)
		fprintf(stderr, "not JSON:\n%s\n", out);
	assert_non_null(o);
	return o;
}

static const char *field(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "(none)";
}

static void test_info_agrees_with_qemu_img_info(void **state)
{
	struct dfx *f = *state;
	const char *bin = thaw_disk_bin(), *base = P(f, 0, "base.qcow2"),
		   *top = P(f, 1, "top.qcow2");
	static const char *const keys[] = {"virtual-size", "cluster-size", "format",
					   "backing-filename", "backing-filename-format"};
	char cmd[4400];

	snprintf(cmd, sizeof(cmd), "%s info", bin);

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("qemu-img create -f qcow2 -o cluster_size=4096 %s 3G", base), 0);
	assert_int_equal(sh("%s overlay %s base.qcow2", bin, top), 0);
	for (unsigned img = 0; img < 2; img++) {
		const char *path = img ? top : base;
		json_object *ours, *theirs;

		ours = json_of(cmd, path);
		theirs = json_of("qemu-img info --output=json", path);
		for (unsigned k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			assert_string_equal(field(ours, keys[k]), field(theirs, keys[k]));
		json_object_put(ours);
		json_object_put(theirs);
	}
}

static void test_check_exit_status_matches_qemu_img(void **state)
{
	struct dfx *f = *state;
	const char *bin = thaw_disk_bin(), *img = P(f, 0, "k.qcow2");
	uint16_t rc = htobe16(1);
	int fd;

	REQUIRE_QEMU_IMG();
	assert_int_equal(
	    sh("qemu-img create -f qcow2 %s 1M && qemu-io -c 'write 0 64k' %s", img, img), 0);
	assert_int_equal(sh("%s check %s", bin, img), 0);
	fd = open(img, O_RDWR);
	assert_int_equal(pwrite(fd, &rc, 2, 2 * 65536 + 9 * 2), 2); /* a leak */
	assert_int_equal(ftruncate(fd, 10 * 65536), 0);
	close(fd);
	assert_int_equal(sh("qemu-img check %s", img), 3);
	assert_int_equal(sh("%s check %s", bin, img), 3);
	fd = open(img, O_RDWR);
	rc = 0;
	assert_int_equal(pwrite(fd, &rc, 2, 2 * 65536 + 5 * 2), 2); /* data cluster uncounted */
	close(fd);
	assert_int_equal(sh("qemu-img check %s", img), 2);
	assert_int_equal(sh("%s check %s", bin, img), 2);
}

/* Snapshot ids and names in `out` (lines of "ID NAME ..."), header lines skipped. */
static void snap_list(const char *out, char *flat, size_t len)
{
	char id[64], name[256];
	const char *p = out;

	flat[0] = 0;
	while (p && *p) {
		if (sscanf(p, "%63s %255s", id, name) == 2 && id[0] >= '0' && id[0] <= '9') {
			strncat(flat, id, len - strlen(flat) - 1);
			strncat(flat, "=", len - strlen(flat) - 1);
			strncat(flat, name, len - strlen(flat) - 1);
			strncat(flat, " ", len - strlen(flat) - 1);
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
}

/* thaw-disk snapshot list and qemu-img snapshot -l give the same ids and names: `want`. */
static void lists_agree(const char *bin, const char *img, const char *want)
{
	char a[4096], b[4096], la[1024], lb[1024];

	assert_int_equal(sh_out(a, sizeof(a), "%s snapshot list %s", bin, img), 0);
	assert_int_equal(sh_out(b, sizeof(b), "qemu-img snapshot -l %s", img), 0);
	snap_list(a, la, sizeof(la));
	snap_list(b, lb, sizeof(lb));
	assert_string_equal(la, want);
	assert_string_equal(lb, want);
}

static void test_snapshot_commands_agree_with_qemu_img_snapshot_l(void **state)
{
	struct dfx *f = *state;
	const char *bin = thaw_disk_bin(), *img = P(f, 0, "s.qcow2");

	REQUIRE_QEMU_IMG();
	assert_int_equal(sh("%s create %s 32M", bin, img), 0);
	assert_int_equal(sh("qemu-io -c 'write -P 1 0 1M' %s", img), 0);
	assert_int_equal(sh("%s snapshot create %s one", bin, img), 0);
	assert_int_equal(sh("qemu-io -c 'write -P 2 0 1M' %s", img), 0);
	assert_int_equal(sh("qemu-img snapshot -c two %s", img), 0); /* qemu's, in the same table */
	assert_int_equal(sh("%s snapshot create %s three", bin, img), 0);
	lists_agree(bin, img, "1=one 2=two 3=three ");
	assert_int_equal(sh("%s snapshot revert %s one", bin, img), 0);
	assert_int_equal(sh("qemu-io -c 'read -P 1 0 1M' %s", img), 0);
	assert_int_equal(sh("%s snapshot delete %s two", bin, img), 0);
	assert_int_equal(sh("%s snapshot delete %s nosuch", bin, img), 1);
	lists_agree(bin, img, "1=one 3=three ");
	assert_int_equal(sh("%s check %s", bin, img), 0);
	assert_int_equal(qemu_check(img), 0);
}

/* commit: what the overlay holds goes into its base, raw or qcow2; afterwards base and
 * overlay read the same, and the base passes qemu-img check. */
static void commit_into(struct dfx *f, const char *fmt)
{
	const char *bin = thaw_disk_bin(), *base = P(f, 0, "cbase"), *top = P(f, 1, "ctop.qcow2");
	const char *before = P(f, 2, "before");

	sh("rm -f %s %s %s", base, top, before);
	assert_int_equal(
	    sh("qemu-img create -f %s %s 16M && qemu-io -f %s -c 'write -P 5 0 16M' %s", fmt, base,
	       fmt, base),
	    0);
	assert_int_equal(sh("cp %s %s", base, before), 0);
	assert_int_equal(sh("%s overlay %s cbase", bin, top), 0);
	assert_int_equal(sh("qemu-io -c 'write -P 6 1000k 300k' -c 'write -z 5M 128k' "
			    "-c 'write -P 7 15M 512' %s",
			    top),
			 0);
	assert_int_equal(qemu_compare(top, before), 1); /* they differ before the commit */
	assert_int_equal(sh("%s commit %s", bin, top), 0);
	assert_int_equal(qemu_compare(top, base), 0);
	if (!strcmp(fmt, "qcow2"))
		assert_int_equal(qemu_check(base), 0);
	assert_int_equal(sh("qemu-io -f %s -c 'read -P 6 1000k 300k' -c 'read -P 0 5M 128k' "
			    "-c 'read -P 5 6M 1M' %s",
			    fmt, base),
			 0);
}

static void test_commit_merges_an_overlay_into_raw_and_qcow2_bases(void **state)
{
	REQUIRE_QEMU_IMG();
	commit_into(*state, "qcow2");
	commit_into(*state, "raw");
}

static void test_bad_arguments_exit_64_and_bad_images_1(void **state)
{
	struct dfx *f = *state;
	const char *bin = thaw_disk_bin(), *junk = P(f, 0, "junk");

	assert_int_equal(sh("%s", bin), 64);
	assert_int_equal(sh("%s frobnicate x", bin), 64);
	assert_int_equal(sh("%s create %s 12Q", bin, P(f, 1, "x.qcow2")), 64);
	assert_int_equal(sh("printf 'QFI\\373 garbage' > %s", junk), 0);
	assert_int_equal(sh("%s info %s", bin, junk), 1);
	assert_int_equal(sh("%s check %s", bin, junk), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, dfx_setup, dfx_teardown)
	    T(test_info_agrees_with_qemu_img_info),
	    T(test_check_exit_status_matches_qemu_img),
	    T(test_snapshot_commands_agree_with_qemu_img_snapshot_l),
	    T(test_commit_merges_an_overlay_into_raw_and_qcow2_bases),
	    T(test_bad_arguments_exit_64_and_bad_images_1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
