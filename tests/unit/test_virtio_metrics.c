/* Device metrics in Firecracker's layout (virtio_metrics): a group per kind summed over
 * its devices and one per device, each counter the change since the last line. */
#include "tests/unit/test_virtio_harness.h"

#include <json-c/json.h>

static int64_t get(json_object *root, const char *group, const char *name)
{
	json_object *g, *v;

	if (!json_object_object_get_ex(root, group, &g) || !json_object_object_get_ex(g, name, &v))
		fail_msg("no %s.%s in %s", group, name, json_object_to_json_string(root));
	return json_object_get_int64(v);
}

static void test_entropy_counts_are_changes_since_the_last_line(void **state)
{
	struct vm *vm = h_vm_new(H_MEM_SIZE);
	struct vm_config cfg = {.rng = true, .rng_rl = {.ops = {2, 0, 10000}}};
	struct virtio_dev *d;
	struct h_queue q;
	uint64_t a[] = {H_DATA};
	uint32_t l[] = {32}, id, len;
	bool w[] = {true};
	json_object *m;

	assert_int_equal(vmm_devices_attach(vm, &cfg, NULL, 0), 0);
	d = virtio_get(vm, 0);
	h_driver_up(d, ~0ull, &q, 1, 64, 0);
	for (int i = 0; i < 3; i++)
		h_publish(&q, h_add_chain(&q, 1, a, l, w));
	h_kick(d, 0);
	while (h_take_used(&q, &id, &len))
		;
	m = json_object_new_object();
	virtio_metrics(vm, m);
	/* two of three served (the limit), the third held back once */
	assert_int_equal(get(m, "entropy", "entropy_bytes"), 64);
	assert_int_equal(get(m, "entropy", "entropy_event_count"), 1);
	assert_int_equal(get(m, "entropy", "entropy_rate_limiter_throttled"), 1);
	assert_int_equal(get(m, "entropy_rng", "entropy_bytes"), 64);
	json_object_put(m);
	/* nothing happened since: all zero */
	m = json_object_new_object();
	virtio_metrics(vm, m);
	assert_int_equal(get(m, "entropy", "entropy_bytes"), 0);
	assert_int_equal(get(m, "entropy", "entropy_event_count"), 0);
	json_object_put(m);
	h_vm_free(vm);
}

static void test_no_device_no_group(void **state)
{
	struct vm *vm = h_vm_new(H_MEM_SIZE);
	json_object *m = json_object_new_object();

	virtio_metrics(vm, m);
	assert_int_equal(json_object_object_length(m), 0);
	json_object_put(m);
	h_vm_free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_entropy_counts_are_changes_since_the_last_line),
	    cmocka_unit_test(test_no_device_no_group),
	};

	return cmocka_run_group_tests_name("virtio-metrics", tests, NULL, NULL);
}
