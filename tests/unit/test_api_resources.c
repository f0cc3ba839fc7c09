/* The API's resources over a real unix socket: every resource parses into its struct,
 * validation names the field, and the life-cycle rules hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/unit/test_api_harness.h"

#include "common/log.h"

#include <fcntl.h>

#define PUT(h, path, body)   h_req(h, "PUT", path, body)
#define PATCH(h, path, body) h_req(h, "PATCH", path, body)

/* Asserts a 400 whose fault_message contains `needle`. */
#define assert_400(call, needle)                                                                   \
	do {                                                                                       \
		assert_int_equal(call, 400);                                                       \
		if (!strstr(h_fault(), needle))                                                    \
			fail_msg("fault_message \"%s\" lacks \"%s\"", h_fault(), needle);          \
	} while (0)

static void boot(struct harness *h)
{
	assert_int_equal(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 204);
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
}

static void boot_source_is_parsed(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(PUT(h, "/boot-source",
			     "{\"kernel_image_path\": \"/img/vmlinux\", \"boot_args\": "
			     "\"console=ttyS0 reboot=k panic=1 pci=off\", \"initrd_path\": null}"),
			 204);
	assert_string_equal(h->boot.kernel_image_path, "/img/vmlinux");
	assert_string_equal(h->boot.boot_args, "console=ttyS0 reboot=k panic=1 pci=off");
	assert_string_equal(h->boot.initrd_path, "");
	assert_int_equal(h->calls[OP_BOOT], 1);
	h_stop(h);
}

static void boot_source_errors_name_the_field(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char *big;

	assert_400(PUT(h, "/boot-source", "{\"boot_args\": \"x\"}"),
		   "Missing required field \"kernel_image_path\"");
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\", \"kernel\": 1}"),
		   "Unknown field \"kernel\"");
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": 7}"),
		   "Field \"kernel_image_path\" must be a string, got integer");
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\", \"boot_args\": [1]}"),
		   "Field \"boot_args\" must be a string, got array");
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"\"}"), "must not be empty");
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/a\\u0000b\"}"),
		   "must not contain NUL");
	big = malloc(API_PATH_LEN + 64);
	assert_non_null(big);
	strcpy(big, "{\"kernel_image_path\": \"");
	memset(big + strlen(big), 'a', API_PATH_LEN);
	strcpy(big + 23 + API_PATH_LEN, "\"}");
	assert_400(PUT(h, "/boot-source", big), "is too long");
	free(big);
	assert_int_equal(h->calls[OP_BOOT], 0);
	h_stop(h);
}

static void invalid_json_bodies_get_400(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": "), "Invalid JSON");
	assert_400(PUT(h, "/boot-source", "{'kernel_image_path': '/k'}"), "Invalid JSON");
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"} x"), "Invalid JSON");
	assert_400(PUT(h, "/boot-source", "[1, 2]"), "must be a JSON object, got array");
	assert_400(PUT(h, "/boot-source", "\"str\""), "must be a JSON object");
	assert_400(h_req(h, "PUT", "/boot-source", ""), "needs a JSON object body");
	/* Trailing whitespace is fine. */
	assert_int_equal(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}\r\n  "), 204);
	/* Nesting beyond the tokenizer's depth is refused, not recursed into. */
	assert_400(PUT(h, "/entropy",
		       "{\"rate_limiter\": [[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]}"),
		   "Invalid JSON");
	h_stop(h);
}

static void machine_config_put_get_patch(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	json_object *o, *v;

	/* Firecracker's defaults before any PUT. */
	assert_int_equal(h_req(h, "GET", "/machine-config", NULL), 200);
	assert_non_null(strstr(h_body(), "\"vcpu_count\": 1, \"mem_size_mib\": 128"));
	assert_int_equal(PUT(h, "/machine-config",
			     "{\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": true, "
			     "\"track_dirty_pages\": true, \"cpu_template\": \"T2\", "
			     "\"huge_pages\": \"2M\"}"),
			 204);
	assert_int_equal(h->mcfg.vcpu_count, 2);
	assert_int_equal(h->mcfg.mem_size_mib, 1024);
	assert_true(h->mcfg.smt);
	assert_true(h->mcfg.track_dirty_pages);
	assert_int_equal(h->mcfg.cpu_template, API_CPU_TEMPLATE_T2);
	assert_int_equal(h->mcfg.huge_pages, API_HUGE_PAGES_2M);

	/* PATCH changes only what it names; the VMM receives the merged whole. */
	assert_int_equal(PATCH(h, "/machine-config", "{\"mem_size_mib\": 512}"), 204);
	assert_int_equal(h->mcfg.vcpu_count, 2);
	assert_int_equal(h->mcfg.mem_size_mib, 512);
	assert_true(h->mcfg.smt);
	assert_int_equal(h->mcfg.cpu_template, API_CPU_TEMPLATE_T2);

	assert_int_equal(h_req(h, "GET", "/machine-config", NULL), 200);
	o = json_tokener_parse(h_body());
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "mem_size_mib", &v));
	assert_int_equal(json_object_get_int(v), 512);
	assert_true(json_object_object_get_ex(o, "cpu_template", &v));
	assert_string_equal(json_object_get_string(v), "T2");
	assert_true(json_object_object_get_ex(o, "huge_pages", &v));
	assert_string_equal(json_object_get_string(v), "2M");
	json_object_put(o);

	/* PUT resets what it does not name. */
	assert_int_equal(PUT(h, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}"),
			 204);
	assert_false(h->mcfg.smt);
	assert_int_equal(h->mcfg.cpu_template, API_CPU_TEMPLATE_NONE);
	assert_int_equal(h->mcfg.huge_pages, API_HUGE_PAGES_NONE);
	h_stop(h);
}

static void machine_config_validation(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_400(PUT(h, "/machine-config", "{\"mem_size_mib\": 128}"),
		   "Missing required field \"vcpu_count\"");
	assert_400(PUT(h, "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 128}"),
		   "Field \"vcpu_count\" must be between 1 and 32, got 0");
	assert_400(PUT(h, "/machine-config", "{\"vcpu_count\": 33, \"mem_size_mib\": 128}"),
		   "got 33");
	assert_400(PUT(h, "/machine-config", "{\"vcpu_count\": -1, \"mem_size_mib\": 128}"),
		   "got -1");
	assert_400(PUT(h, "/machine-config",
		       "{\"vcpu_count\": 1, \"mem_size_mib\": 99999999999999999999}"),
		   "mem_size_mib");
	assert_400(PUT(h, "/machine-config", "{\"vcpu_count\": 1.5, \"mem_size_mib\": 128}"),
		   "Field \"vcpu_count\" must be an integer, got number with a fraction");
	assert_400(PUT(h, "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 128}"),
		   "must be an integer, got string");
	assert_400(PUT(h, "/machine-config",
		       "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": \"yes\"}"),
		   "Field \"smt\" must be a boolean, got string");
	assert_400(
	    PUT(h, "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}"),
	    "must be 1 or even");
	assert_400(PUT(h, "/machine-config",
		       "{\"vcpu_count\": 1, \"mem_size_mib\": 127, \"huge_pages\": \"2M\"}"),
		   "multiple of 2");
	assert_400(PUT(h, "/machine-config",
		       "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpu_template\": \"Z9\"}"),
		   "Field \"cpu_template\" must be one of None, C3, T2");
	assert_400(
	    PUT(h, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"vcpus\": 1}"),
	    "Unknown field \"vcpus\"");
	/* A PATCH is validated merged: smt on top of 3 vCPUs fails. */
	assert_int_equal(PUT(h, "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 128}"),
			 204);
	assert_400(PATCH(h, "/machine-config", "{\"smt\": true}"), "must be 1 or even");
	assert_int_equal(h->calls[OP_PUT_MCFG], 1);
	h_stop(h);
}

/* PATCH of a drive or interface: only once the VM runs (or is paused after a load), the
 * id must match, and a rate limiter's buckets say which of them change. */
static void drive_and_net_patches_come_after_start(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_400(
	    PATCH(h, "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/b\"}"),
	    "not supported before starting");
	assert_int_equal(h->calls[OP_PATCH_DRIVE], 0);
	assert_int_equal(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 204);
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);

	assert_int_equal(
	    PATCH(h, "/drives/rootfs",
		  "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/img/clone.ext4\", "
		  "\"rate_limiter\": {\"ops\": {\"size\": 100, \"refill_time\": 1000}}}"),
	    204);
	assert_string_equal(h->drive_patch.drive_id, "rootfs");
	assert_string_equal(h->drive_patch.path_on_host, "/img/clone.ext4");
	assert_true(h->drive_patch.rate_limiter.present);
	assert_true(h->drive_patch.rate_limiter.ops.present);
	assert_false(h->drive_patch.rate_limiter.bandwidth.present);

	/* Only the rate limiter: the path stays (empty). */
	assert_int_equal(PATCH(h, "/drives/rootfs",
			       "{\"drive_id\": \"rootfs\", \"rate_limiter\": {\"bandwidth\": "
			       "{\"size\": 0, \"refill_time\": 0}}}"),
			 204);
	assert_string_equal(h->drive_patch.path_on_host, "");
	assert_true(h->drive_patch.rate_limiter.bandwidth.present);

	assert_400(PATCH(h, "/drives/rootfs", "{\"drive_id\": \"other\"}"), "does not match");
	assert_400(PATCH(h, "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"is_read_only\": true}"),
		   "Unknown field \"is_read_only\"");
	assert_int_equal(h->calls[OP_PATCH_DRIVE], 2);

	assert_int_equal(
	    PATCH(h, "/network-interfaces/eth0",
		  "{\"iface_id\": \"eth0\", \"tx_rate_limiter\": {\"bandwidth\": "
		  "{\"size\": 125000, \"one_time_burst\": 1000, \"refill_time\": 100}}}"),
	    204);
	assert_string_equal(h->net_patch.iface_id, "eth0");
	assert_false(h->net_patch.rx_rate_limiter.present);
	assert_true(h->net_patch.tx_rate_limiter.present);
	assert_int_equal(h->net_patch.tx_rate_limiter.bandwidth.one_time_burst, 1000);
	assert_400(PATCH(h, "/network-interfaces/eth0",
			 "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap1\"}"),
		   "Unknown field \"host_dev_name\"");

	/* The op's own refusal (no such device) reaches the client. */
	h->fail_op = OP_PATCH_NET;
	snprintf(h->fail_msg, sizeof(h->fail_msg), "network interface eth9: no such device");
	assert_400(PATCH(h, "/network-interfaces/eth9", "{\"iface_id\": \"eth9\"}"),
		   "no such device");
	h_stop(h);
}

/* MMDS over the API: the store at any time (PUT replaces, PATCH merges, GET returns it,
 * over the limit or not an object: refused, nothing changed), its configuration pre-boot
 * only and only through configured interfaces. */
static void mmds_store_and_config(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char big[1200];

	assert_int_equal(h_req(h, "GET", "/mmds", NULL), 200);
	assert_string_equal(h_body(), "{ }");
	assert_int_equal(PUT(h, "/mmds", "{\"latest\": {\"meta-data\": {\"id\": \"i-1\"}}}"), 204);
	assert_int_equal(PATCH(h, "/mmds", "{\"latest\": {\"meta-data\": {\"az\": \"b\"}}}"), 204);
	assert_int_equal(h_req(h, "GET", "/mmds", NULL), 200);
	assert_non_null(strstr(h_body(), "\"id\": \"i-1\""));
	assert_non_null(strstr(h_body(), "\"az\": \"b\""));
	assert_400(PUT(h, "/mmds", "[1]"), "must be a JSON object");
	snprintf(big, sizeof(big), "{\"k\": \"%01100d\"}", 1);
	assert_400(PUT(h, "/mmds", big), "limit of 1024 bytes");
	assert_400(PATCH(h, "/mmds", big), "limit of 1024 bytes");
	assert_int_equal(h_req(h, "GET", "/mmds", NULL), 200);
	assert_non_null(strstr(h_body(), "\"az\": \"b\""));

	assert_400(PUT(h, "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}"),
		   "not found: eth0");
	assert_int_equal(PUT(h, "/network-interfaces/eth0",
			     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}"),
			 204);
	assert_400(PUT(h, "/mmds/config", "{\"network_interfaces\": []}"), "1 to 8");
	assert_400(
	    PUT(h, "/mmds/config", "{\"network_interfaces\": [\"eth0\"], \"version\": \"V3\"}"),
	    "version");
	assert_400(PUT(h, "/mmds/config",
		       "{\"network_interfaces\": [\"eth0\"], \"ipv4_address\": \"224.0.0.1\"}"),
		   "unicast");
	assert_400(PUT(h, "/mmds/config",
		       "{\"network_interfaces\": [\"eth0\"], \"ipv4_address\": \"1.2.3\"}"),
		   "unicast");
	assert_int_equal(PUT(h, "/mmds/config",
			     "{\"network_interfaces\": [\"eth0\"], \"ipv4_address\": "
			     "\"169.254.170.2\", \"version\": \"V2\", \"imds_compat\": true}"),
			 204);
	assert_int_equal(api_mmds_get_config(h->mmds)->ipv4, 0xa9feaa02u);
	assert_int_equal(api_mmds_get_config(h->mmds)->version, API_MMDS_V2);
	assert_true(api_mmds_get_config(h->mmds)->imds_compat);
	assert_string_equal(api_mmds_get_config(h->mmds)->ifaces[0], "eth0");
	assert_int_equal(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 204);
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	assert_400(PUT(h, "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}"),
		   "after starting");
	/* the store stays writable while the VM runs */
	assert_int_equal(PUT(h, "/mmds", "{\"rotated\": \"yes\"}"), 204);
	h_stop(h);
}

/* PUT /cpu-config: Firecracker's custom template, each bitmap into the bits set and kept. */
static void cpu_config_is_parsed_and_validated(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(
	    PUT(h, "/cpu-config",
		"{\"cpuid_modifiers\": [{\"leaf\": \"0x7\", \"subleaf\": \"0x0\", \"flags\": 1, "
		"\"modifiers\": [{\"register\": \"ebx\", \"bitmap\": "
		"\"0bxxxxxxxxxxxxxxxx_xxxxxxxxxxxxxx0x\"}, {\"register\": \"ecx\", \"bitmap\": "
		"\"0b1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0\"}]}], \"msr_modifiers\": [{\"addr\": 266, "
		"\"bitmap\": "
		"\"0b00000000000000000000000000000000000000000000000000000000xxxxxx11\"}], "
		"\"kvm_capabilities\": []}"),
	    204);
	assert_int_equal(h->cpu_config.nr_cpuid, 2);
	assert_int_equal(h->cpu_config.cpuid[0].leaf, 7);
	assert_int_equal(h->cpu_config.cpuid[0].flags, 1);
	assert_int_equal(h->cpu_config.cpuid[0].reg, 1);
	assert_int_equal(h->cpu_config.cpuid[0].keep, 0xfffffffdu);
	assert_int_equal(h->cpu_config.cpuid[0].set, 0);
	assert_int_equal(h->cpu_config.cpuid[1].reg, 2);
	assert_int_equal(h->cpu_config.cpuid[1].keep, 0x7ffffffeu);
	assert_int_equal(h->cpu_config.cpuid[1].set, 0x80000000u);
	assert_int_equal(h->cpu_config.nr_msr, 1);
	assert_int_equal(h->cpu_config.msr[0].addr, 0x10a);
	assert_int_equal(h->cpu_config.msr[0].keep, 0xfcu);
	assert_int_equal(h->cpu_config.msr[0].set, 3);

	assert_400(
	    PUT(h, "/cpu-config",
		"{\"cpuid_modifiers\": [{\"leaf\": 1, \"modifiers\": [{\"register\": \"eax\", "
		"\"bitmap\": \"0b101\"}]}]}"),
	    "\"0b\" and 32 of");
	assert_400(
	    PUT(h, "/cpu-config",
		"{\"cpuid_modifiers\": [{\"leaf\": 1, \"modifiers\": [{\"register\": \"eip\", "
		"\"bitmap\": \"0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}]}"),
	    "register");
	assert_400(PUT(h, "/cpu-config", "{\"cpuid_modifiers\": [{\"modifiers\": []}]}"),
		   "Missing required field \"cpuid_modifiers[0].leaf\"");
	assert_400(PUT(h, "/cpu-config", "{\"kvm_capabilities\": [\"!56\"]}"), "kvm_capabilities");
	assert_400(PUT(h, "/cpu-config", "{\"reg_modifiers\": []}"), "aarch64");
	assert_int_equal(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 204);
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	assert_400(PUT(h, "/cpu-config", "{}"), "after starting");
	h_stop(h);
}

static void drives_are_parsed_and_validated(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(
	    PUT(h, "/drives/rootfs",
		"{\"drive_id\": \"rootfs\", \"path_on_host\": \"/img/rootfs.ext4\", "
		"\"is_root_device\": true, \"is_read_only\": false, \"partuuid\": "
		"\"abc\", \"cache_type\": \"Writeback\", \"io_engine\": \"Async\", "
		"\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}, "
		"\"ops\": {\"size\": 10, \"one_time_burst\": 5, \"refill_time\": 1}}}"),
	    204);
	assert_string_equal(h->drive.drive_id, "rootfs");
	assert_string_equal(h->drive.path_on_host, "/img/rootfs.ext4");
	assert_true(h->drive.is_root_device);
	assert_false(h->drive.is_read_only);
	assert_string_equal(h->drive.partuuid, "abc");
	assert_int_equal(h->drive.cache_type, API_CACHE_WRITEBACK);
	assert_int_equal(h->drive.io_engine, API_IO_ENGINE_ASYNC);
	assert_true(h->drive.rate_limiter.present);
	assert_true(h->drive.rate_limiter.bandwidth.present);
	assert_int_equal(h->drive.rate_limiter.bandwidth.size, 1000);
	assert_int_equal(h->drive.rate_limiter.ops.one_time_burst, 5);

	assert_400(
	    PUT(h, "/drives/rootfs",
		"{\"drive_id\": \"other\", \"path_on_host\": \"/r\", \"is_root_device\": true}"),
	    "does not match");
	assert_400(
	    PUT(h, "/drives/ro%20ot",
		"{\"drive_id\": \"ro ot\", \"path_on_host\": \"/r\", \"is_root_device\": true}"),
	    "Invalid drive id in the path");
	assert_400(PUT(h, "/drives/d1", "{\"drive_id\": \"d1\", \"is_root_device\": false}"),
		   "Missing required field \"path_on_host\"");
	assert_400(PUT(h, "/drives/d1", "{\"drive_id\": \"d1\", \"path_on_host\": \"/r\"}"),
		   "Missing required field \"is_root_device\"");
	assert_400(PUT(h, "/drives/d1",
		       "{\"drive_id\": \"d1\", \"path_on_host\": \"/r\", \"socket\": \"/s\", "
		       "\"is_root_device\": false}"),
		   "exclude each other");
	assert_400(
	    PUT(h, "/drives/d1",
		"{\"drive_id\": \"d1\", \"path_on_host\": \"/r\", \"is_root_device\": false, "
		"\"rate_limiter\": {\"bandwidth\": {\"size\": \"big\", \"refill_time\": 1}}}"),
	    "Field \"rate_limiter.bandwidth.size\" must be an integer");
	assert_400(
	    PUT(h, "/drives/d1",
		"{\"drive_id\": \"d1\", \"path_on_host\": \"/r\", \"is_root_device\": false, "
		"\"rate_limiter\": {\"bandwidth\": {\"size\": 1}}}"),
	    "Missing required field \"rate_limiter.bandwidth.refill_time\"");
	assert_400(
	    PUT(h, "/drives/d1",
		"{\"drive_id\": \"d1\", \"path_on_host\": \"/r\", \"is_root_device\": false, "
		"\"rate_limiter\": {\"burst\": {}}}"),
	    "Unknown field \"burst\" in rate_limiter");
	assert_400(
	    PUT(h, "/drives/d1",
		"{\"drive_id\": \"d1\", \"path_on_host\": \"/r\", \"is_root_device\": false, "
		"\"io_engine\": \"Turbo\"}"),
	    "Field \"io_engine\" must be one of Sync, Async; got \"Turbo\"");
	assert_400(
	    PUT(h, "/drives/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"{}"),
	    "1 to 64 characters");
	assert_int_equal(h->calls[OP_DRIVE], 1);
	h_stop(h);
}

static void network_interfaces_are_parsed_and_validated(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	static const uint8_t mac[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};

	assert_int_equal(PUT(h, "/network-interfaces/net1",
			     "{\"iface_id\": \"net1\", \"guest_mac\": \"06:00:AC:10:00:02\", "
			     "\"host_dev_name\": \"tap0\", \"mtu\": 1500}"),
			 204);
	assert_string_equal(h->net.iface_id, "net1");
	assert_string_equal(h->net.host_dev_name, "tap0");
	assert_true(h->net.has_guest_mac);
	assert_memory_equal(h->net.guest_mac, mac, 6);
	assert_int_equal(h->net.mtu, 1500);
	assert_false(h->net.rx_rate_limiter.present);

	assert_400(PUT(h, "/network-interfaces/net1",
		       "{\"iface_id\": \"net1\", \"host_dev_name\": \"tap0\", \"guest_mac\": "
		       "\"06:00:ac:10:00\"}"),
		   "Field \"guest_mac\" must look like");
	assert_400(PUT(h, "/network-interfaces/net1",
		       "{\"iface_id\": \"net1\", \"host_dev_name\": \"a-very-long-tap-name\"}"),
		   "Field \"host_dev_name\" is too long");
	assert_400(PUT(h, "/network-interfaces/net1", "{\"iface_id\": \"net1\"}"),
		   "Missing required field \"host_dev_name\"");
	assert_400(PUT(h, "/network-interfaces/net1",
		       "{\"iface_id\": \"net1\", \"host_dev_name\": \"tap0\", \"mtu\": 67}"),
		   "Field \"mtu\" must be between 68 and 65535");
	assert_400(PUT(h, "/network-interfaces/net1",
		       "{\"iface_id\": \"net2\", \"host_dev_name\": \"tap0\"}"),
		   "does not match");
	assert_int_equal(h->calls[OP_NET], 1);
	h_stop(h);
}

static void vsock_and_entropy(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(PUT(h, "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}"),
			 204);
	assert_int_equal(h->vsock.guest_cid, 3);
	assert_string_equal(h->vsock.uds_path, "/tmp/v.sock");
	assert_400(PUT(h, "/vsock", "{\"guest_cid\": 2, \"uds_path\": \"/v\"}"),
		   "Field \"guest_cid\" must be between 3 and");
	assert_400(PUT(h, "/vsock", "{\"guest_cid\": 3}"), "Missing required field \"uds_path\"");

	assert_int_equal(PUT(h, "/entropy", "{}"), 204);
	assert_false(h->entropy.rate_limiter.present);
	assert_int_equal(
	    PUT(h, "/entropy", "{\"rate_limiter\": {\"ops\": {\"size\": 5, \"refill_time\": 10}}}"),
	    204);
	assert_true(h->entropy.rate_limiter.ops.present);
	assert_int_equal(h->entropy.rate_limiter.ops.refill_time, 10);
	assert_400(PUT(h, "/entropy", "{\"rate_limiter\": 5}"),
		   "Field \"rate_limiter\" must be an object, got integer");
	h_stop(h);
}

static void logger_is_parsed(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(PUT(h, "/logger",
			     "{\"log_path\": \"/tmp/fc.log\", \"level\": \"debug\", "
			     "\"show_level\": true, \"show_log_origin\": true}"),
			 204);
	assert_string_equal(h->logger.log_path, "/tmp/fc.log");
	assert_true(h->logger.has_level);
	assert_int_equal(h->logger.level, API_LOG_DEBUG);
	assert_true(h->logger.show_level);
	assert_true(h->logger.show_log_origin);
	assert_400(PUT(h, "/logger", "{\"level\": \"Loud\"}"), "Field \"level\" must be one of");
	/* The logger does not count as configuration: a load is still allowed. */
	assert_int_equal(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"), 204);
	h_stop(h);
}

static void default_logger_redirects_stderr(void **state)
{
	static const struct api_ops none;
	struct harness *h = h_start_ops(&none, 0);
	char path[160], body[256], buf[256];
	int saved = dup(STDERR_FILENO), fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/thaw.log", h->dir);
	snprintf(body, sizeof(body), "{\"log_path\": \"%s\", \"level\": \"Warning\"}", path);
	assert_int_equal(PUT(h, "/logger", body), 204);
	/* The server's own warnings now land in the file. */
	assert_int_equal(H_RAW(h, "BROKEN\r\n\r\n", NULL), 400);
	dup2(saved, STDERR_FILENO);
	close(saved);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "Malformed HTTP request"));
	unlink(path);
	log_set_level(LOG_INFO);
	h_stop(h);
}

static void metrics_and_flush(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char path[160], body[256], buf[4096];
	json_object *o, *v, *w;
	ssize_t n;
	int fd;

	assert_400(PUT(h, "/actions", "{\"action_type\": \"FlushMetrics\"}"),
		   "metrics system is not configured");
	snprintf(path, sizeof(path), "%s/metrics.json", h->dir);
	snprintf(body, sizeof(body), "{\"metrics_path\": \"%s\"}", path);
	assert_int_equal(PUT(h, "/metrics", body), 204);
	assert_400(PUT(h, "/metrics", body), "already configured");
	assert_400(PUT(h, "/metrics", "{}"), "Missing required field \"metrics_path\"");
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"FlushMetrics\"}"), 204);
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"FlushMetrics\"}"), 204);
	assert_int_equal(h->calls[OP_METRICS], 2);

	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	/* Two lines, each one JSON object with the VMM's and the API's members. */
	assert_non_null(strchr(buf, '\n'));
	*strchr(buf, '\n') = '\0';
	o = json_tokener_parse(buf);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "latencies_us", &v));
	assert_true(json_object_object_get_ex(v, "load_snapshot", &w));
	assert_int_equal(json_object_get_int(w), 640);
	assert_true(json_object_object_get_ex(o, "utc_timestamp_ms", &v));
	/* Firecracker's groups, with its names... */
	assert_true(json_object_object_get_ex(o, "api_server", &v));
	assert_true(json_object_object_get_ex(v, "process_startup_time_us", &w));
	assert_true(json_object_object_get_ex(o, "put_api_requests", &v));
	assert_true(json_object_object_get_ex(v, "metrics_count", &w));
	assert_int_equal(json_object_get_int(w), 3); /* every PUT /metrics, refused ones too */
	assert_true(json_object_object_get_ex(v, "metrics_fails", &w));
	assert_int_equal(json_object_get_int(w), 2);
	/* The refused FlushMetrics; a request is counted once answered, so the flush that
	 * writes a line is in the next one. */
	assert_true(json_object_object_get_ex(v, "actions_count", &w));
	assert_int_equal(json_object_get_int(w), 1);
	assert_true(json_object_object_get_ex(o, "get_api_requests", &v));
	assert_true(json_object_object_get_ex(o, "patch_api_requests", &v));
	assert_true(json_object_object_get_ex(o, "logger", &v));
	assert_true(json_object_object_get_ex(v, "missed_metrics_count", &w));
	assert_true(json_object_object_get_ex(o, "latencies_us", &v));
	assert_true(json_object_object_get_ex(v, "pause_vm", &w));
	/* ...and thaw's own, cumulative, apart. */
	assert_true(json_object_object_get_ex(o, "thaw", &v));
	assert_true(json_object_object_get_ex(v, "api", &v));
	assert_true(json_object_object_get_ex(v, "requests", &w));
	assert_true(json_object_get_int(w) >= 5);
	json_object_put(o);

	/* The second line carries Firecracker's counters as changes since the first. */
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n] = '\0';
	o = json_tokener_parse(strchr(buf, '\n') + 1);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "put_api_requests", &v));
	assert_true(json_object_object_get_ex(v, "actions_count", &w));
	assert_int_equal(json_object_get_int(w), 1);
	assert_true(json_object_object_get_ex(v, "metrics_count", &w));
	assert_int_equal(json_object_get_int(w), 0);
	json_object_put(o);
	unlink(path);
	h_stop(h);
}

/* firecracker-go-sdk and firecracker-containerd create the log and metrics FIFOs and
 * start reading them only after the PUTs: opening must not need a reader yet. */
static void log_and_metrics_fifos_work_before_a_reader(void **state)
{
	static const struct api_ops none;
	struct harness *h = h_start_ops(&none, 0);
	char mpath[160], lpath[160], body[256], buf[8192];
	int saved = dup(STDERR_FILENO), mfd, lfd;
	json_object *o, *v;
	ssize_t n;

	snprintf(mpath, sizeof(mpath), "%s/metrics.fifo", h->dir);
	snprintf(lpath, sizeof(lpath), "%s/log.fifo", h->dir);
	assert_int_equal(mkfifo(mpath, 0600), 0);
	assert_int_equal(mkfifo(lpath, 0600), 0);
	snprintf(body, sizeof(body), "{\"log_path\": \"%s\", \"level\": \"Warning\"}", lpath);
	assert_int_equal(PUT(h, "/logger", body), 204);
	snprintf(body, sizeof(body), "{\"metrics_path\": \"%s\"}", mpath);
	assert_int_equal(PUT(h, "/metrics", body), 204);
	/* Nobody reads yet: the line waits in the pipe. */
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"FlushMetrics\"}"), 204);
	assert_int_equal(H_RAW(h, "BROKEN\r\n\r\n", NULL), 400);

	/* The readers come late and find what was written (before stderr is put back: a
	 * FIFO's contents go with its last open descriptor). */
	mfd = open(mpath, O_RDONLY | O_NONBLOCK);
	lfd = open(lpath, O_RDONLY | O_NONBLOCK);
	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_true(mfd >= 0 && lfd >= 0);
	n = read(mfd, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strchr(buf, '\n'));
	*strchr(buf, '\n') = '\0';
	o = json_tokener_parse(buf);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "utc_timestamp_ms", &v));
	json_object_put(o);
	n = read(lfd, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "Malformed HTTP request"));
	close(mfd);
	close(lfd);
	log_set_level(LOG_INFO);
	h_stop(h);
}

/* A metrics FIFO nobody ever reads fills up; flushing goes on answering 204 and never
 * blocks the server, and a reader then sees only whole lines. */
static void a_full_metrics_fifo_drops_whole_lines(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char mpath[160], body[256];
	static char buf[1 << 17];
	size_t total = 0;
	ssize_t n;
	int i, fd;

	snprintf(mpath, sizeof(mpath), "%s/metrics.fifo", h->dir);
	assert_int_equal(mkfifo(mpath, 0600), 0);
	snprintf(body, sizeof(body), "{\"metrics_path\": \"%s\"}", mpath);
	assert_int_equal(PUT(h, "/metrics", body), 204);
	for (i = 0; i < 400; i++)
		assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"FlushMetrics\"}"), 204);
	fd = open(mpath, O_RDONLY | O_NONBLOCK);
	assert_true(fd >= 0);
	while ((n = read(fd, buf + total, sizeof(buf) - 1 - total)) > 0)
		total += (size_t)n;
	close(fd);
	assert_true(total > 0);
	buf[total] = '\0';
	/* Every complete line parses; a cut-short line may end the pipe's contents. */
	for (char *line = buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		json_object *o;

		*nl = '\0';
		o = json_tokener_parse(line);
		assert_non_null(o);
		json_object_put(o);
	}
	h_stop(h);
}

static void metrics_are_flushed_periodically(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char path[160], body[256], buf[8192];
	int fd, lines = 0;
	ssize_t n, i;

	/* Set before the request that reads it: the socket orders the two threads. */
	api_server_set_metrics_period(h->srv, 100);
	snprintf(path, sizeof(path), "%s/metrics.json", h->dir);
	snprintf(body, sizeof(body), "{\"metrics_path\": \"%s\"}", path);
	assert_int_equal(PUT(h, "/metrics", body), 204);
	usleep(450 * 1000);
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	for (i = 0; i < n; i++)
		lines += buf[i] == '\n';
	assert_true(lines >= 2);
	assert_true(h->calls[OP_METRICS] >= 2);
	unlink(path);
	h_stop(h);
}

static void version_has_firecrackers_shape(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	json_object *o, *v;

	assert_int_equal(h_req(h, "GET", "/version", NULL), 200);
	o = json_tokener_parse(h_body());
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "firecracker_version", &v));
	assert_true(json_object_is_type(v, json_type_string));
	json_object_put(o);
	assert_400(h_req(h, "PUT", "/version", "{}"), "Invalid request method");
	assert_400(h_req(h, "GET", "/version", "{}"), "takes no body");
	assert_400(h_req(h, "GET", "/", "{\"a\": 1}"), "takes no body");
	h_stop(h);
}

/* GET /vm/config answers Firecracker's FullVmConfiguration: every member present, what
 * was configured as the client would PUT it again, the rest null or []. */
static void vm_config_lists_everything_configured(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);
	char body[2048], longp[1200];
	json_object *o, *v, *d, *w;

	assert_int_equal(h_req(h, "GET", "/vm/config", NULL), 200);
	o = json_tokener_parse(h_body());
	assert_non_null(o);
	for (const char *const *k =
		 (const char *const[]){"balloon", "boot-source", "cpu-config", "logger", "metrics",
				       "mmds-config", "vsock", "entropy", NULL};
	     *k; k++) {
		assert_true(json_object_object_get_ex(o, *k, &v));
		assert_null(v);
	}
	assert_true(json_object_object_get_ex(o, "drives", &v));
	assert_int_equal(json_object_array_length(v), 0);
	assert_true(json_object_object_get_ex(o, "machine-config", &v));
	assert_true(json_object_object_get_ex(v, "mem_size_mib", &w));
	assert_int_equal(json_object_get_int(w), 128);
	json_object_put(o);

	assert_int_equal(PUT(h, "/boot-source",
			     "{\"kernel_image_path\": \"/k\", \"boot_args\": "
			     "\"console=ttyS0\"}"),
			 204);
	memset(longp, 'p', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	/* Five long paths: a body larger than one reply buffer. */
	for (int i = 0; i < 5; i++) {
		char path[32];

		snprintf(path, sizeof(path), "/drives/d%d", i);
		snprintf(body, sizeof(body),
			 "{\"drive_id\": \"d%d\", \"path_on_host\": \"%s\", \"is_root_device\": "
			 "%s, \"is_read_only\": true}",
			 i, longp, i == 0 ? "true" : "false");
		assert_int_equal(PUT(h, path, body), 204);
	}
	/* A second PUT of a drive replaces it. */
	assert_int_equal(PUT(h, "/drives/d1",
			     "{\"drive_id\": \"d1\", \"path_on_host\": \"/d1\", "
			     "\"is_root_device\": false, \"rate_limiter\": "
			     "{\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}"),
			 204);
	assert_int_equal(PUT(h, "/network-interfaces/eth0",
			     "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": "
			     "\"06:00:AC:10:00:02\"}"),
			 204);
	assert_int_equal(PUT(h, "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/v.sock\"}"), 204);
	assert_int_equal(PUT(h, "/entropy", "{}"), 204);
	assert_int_equal(PUT(h, "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}"),
			 204);

	assert_int_equal(h_req(h, "GET", "/vm/config", NULL), 200);
	assert_true(strlen(h_body()) > 5000);
	o = json_tokener_parse(h_body());
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "boot-source", &v));
	assert_true(json_object_object_get_ex(v, "kernel_image_path", &w));
	assert_string_equal(json_object_get_string(w), "/k");
	assert_true(json_object_object_get_ex(v, "boot_args", &w));
	assert_string_equal(json_object_get_string(w), "console=ttyS0");
	assert_true(json_object_object_get_ex(o, "drives", &v));
	assert_int_equal(json_object_array_length(v), 5);
	d = json_object_array_get_idx(v, 1);
	assert_true(json_object_object_get_ex(d, "path_on_host", &w));
	assert_string_equal(json_object_get_string(w), "/d1");
	assert_true(json_object_object_get_ex(d, "rate_limiter", &w));
	assert_true(json_object_object_get_ex(w, "bandwidth", &w));
	assert_true(json_object_object_get_ex(w, "size", &w));
	assert_int_equal(json_object_get_int(w), 1000);
	d = json_object_array_get_idx(v, 0);
	assert_true(json_object_object_get_ex(d, "is_root_device", &w));
	assert_true(json_object_get_boolean(w));
	assert_true(json_object_object_get_ex(d, "cache_type", &w));
	assert_string_equal(json_object_get_string(w), "Unsafe");
	assert_true(json_object_object_get_ex(o, "network-interfaces", &v));
	assert_int_equal(json_object_array_length(v), 1);
	d = json_object_array_get_idx(v, 0);
	assert_true(json_object_object_get_ex(d, "guest_mac", &w));
	assert_string_equal(json_object_get_string(w), "06:00:ac:10:00:02");
	assert_true(json_object_object_get_ex(o, "vsock", &v));
	assert_true(json_object_object_get_ex(v, "guest_cid", &w));
	assert_int_equal(json_object_get_int(w), 3);
	assert_true(json_object_object_get_ex(o, "entropy", &v));
	assert_non_null(v);
	assert_true(json_object_object_get_ex(o, "machine-config", &v));
	assert_true(json_object_object_get_ex(v, "vcpu_count", &w));
	assert_int_equal(json_object_get_int(w), 2);
	json_object_put(o);
	/* The connection is still in step after a large body. */
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	h_stop(h);
}

/* Firecracker's --config-file: every member goes through its PUT (same ops, same checks),
 * then InstanceStart; what thaw lacks is refused by name. */
static void config_file_applies_each_member_then_starts(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct api_server *srv;
	char json[1024], err[512], mpath[64];
	int fd;

	assert_non_null(h);
	h->fail_op = -1;
	assert_int_equal(api_mmds_create(0, &h->mmds), 0);
	snprintf(mpath, sizeof(mpath), "/tmp/thaw-cfgtest-%d.metrics", (int)getpid());
	assert_int_equal(api_server_create_headless(&h_ops, h, &srv), 0);
	snprintf(json, sizeof(json),
		 "{\"boot-source\": {\"kernel_image_path\": \"/k\", \"boot_args\": \"ro\"},"
		 " \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 256},"
		 " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r\", "
		 "\"is_root_device\": true}, {\"drive_id\": \"d2\", \"path_on_host\": \"/d\", "
		 "\"is_root_device\": false}],"
		 " \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}],"
		 " \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/v\"}, \"entropy\": {},"
		 " \"logger\": {\"level\": \"Debug\"}, \"metrics\": {\"metrics_path\": \"%s\"},"
		 " \"mmds-config\": {\"network_interfaces\": [\"eth0\"], \"version\": \"V2\"},"
		 " \"balloon\": null}",
		 mpath);
	assert_int_equal(api_server_apply_config(srv, json, strlen(json), err, sizeof(err)), 0);
	assert_int_equal(h->calls[OP_BOOT], 1);
	assert_string_equal(h->boot.boot_args, "ro");
	assert_int_equal(h->calls[OP_PUT_MCFG], 1);
	assert_int_equal(h->mcfg.vcpu_count, 2);
	assert_int_equal(h->calls[OP_DRIVE], 2);
	assert_string_equal(h->drive.drive_id, "d2");
	assert_int_equal(h->calls[OP_NET], 1);
	assert_int_equal(h->calls[OP_VSOCK], 1);
	assert_int_equal(h->calls[OP_ENTROPY], 1);
	assert_int_equal(h->calls[OP_LOGGER], 1);
	assert_int_equal(h->calls[OP_START], 1);
	assert_string_equal(api_mmds_get_config(h->mmds)->ifaces[0], "eth0");
	assert_int_equal(api_mmds_get_config(h->mmds)->version, API_MMDS_V2);
	fd = open(mpath, O_RDONLY);
	assert_true(fd >= 0); /* the metrics file was opened (created) */
	close(fd);
	unlink(mpath);
	/* Started: a second file is refused as a PUT after start would be. */
	assert_int_equal(api_server_apply_config(srv, json, strlen(json), err, sizeof(err)),
			 -EINVAL);
	api_server_destroy(srv);

	memset(h->calls, 0, sizeof(h->calls));
	assert_int_equal(api_server_create_headless(&h_ops, h, &srv), 0);
	/* Without a boot source nothing starts. */
	snprintf(json, sizeof(json),
		 "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64}}");
	assert_int_equal(api_server_apply_config(srv, json, strlen(json), err, sizeof(err)), 0);
	assert_int_equal(h->calls[OP_START], 0);
	api_server_destroy(srv);

	static const struct {
		const char *json, *needle;
	} bad[] = {
	    /* mmds-config is applied after the interfaces: one it names must be among them */
	    {"{\"mmds-config\": {\"network_interfaces\": [\"eth0\"]}}",
	     "mmds-config: Invalid network interface ID - not found: eth0"},
	    {"{\"cpu-config\": \"/t.json\"}", "cpu-config: custom CPU templates"},
	    {"{\"balloon\": {\"amount_mib\": 1}}", "balloon: the balloon device"},
	    {"{\"drives\": {}}", "drives: must be an array"},
	    {"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/a\", \"is_root_device\": "
	     "true}, {\"drive_id\": \"b\"}]}",
	     "drives[1]: Missing required field \"is_root_device\""},
	    {"{\"boot-source\": {\"kernel_image_path\": 5}}",
	     "boot-source: Field \"kernel_image_path\" must be a string"},
	    {"{\"vcpus\": 2}", "Unknown field \"vcpus\" in the configuration file"},
	    {"[1]", "not one JSON object"},
	    {"{\"logger\": ", "not one JSON object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(api_server_create_headless(&h_ops, h, &srv), 0);
		err[0] = '\0';
		assert_int_equal(api_server_apply_config(srv, bad[i].json, strlen(bad[i].json), err,
							 sizeof(err)),
				 -EINVAL);
		if (!strstr(err, bad[i].needle))
			fail_msg("config %s: \"%s\" lacks \"%s\"", bad[i].json, err, bad[i].needle);
		api_server_destroy(srv);
	}
	api_mmds_destroy(h->mmds);
	free(h);
}

/* Every Firecracker endpoint thaw does not offer says which feature is missing. */
static void unoffered_endpoints_name_the_feature(void **state)
{
	static const struct {
		const char *method, *path, *needle;
	} cases[] = {
	    {"PUT", "/balloon", "balloon device"},
	    {"GET", "/balloon", "balloon device"},
	    {"PATCH", "/balloon", "balloon device"},
	    {"GET", "/balloon/statistics", "balloon device"},
	    {"PATCH", "/balloon/statistics", "balloon device"},
	    {"PATCH", "/balloon/hinting/start", "balloon device"},
	    {"GET", "/balloon/hinting/status", "balloon device"},
	    {"PATCH", "/balloon/hinting/stop", "balloon device"},
	    {"PUT", "/pmem/pmem0", "virtio-pmem"},
	    {"PATCH", "/pmem/pmem0", "virtio-pmem"},
	    {"PUT", "/serial", "serial reconfiguration"},
	    {"PUT", "/hotplug/memory", "memory hotplug"},
	    {"PATCH", "/hotplug/memory", "memory hotplug"},
	    {"GET", "/hotplug/memory", "memory hotplug"},
	};
	struct harness *h = h_start_ops(NULL, 0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *body = strcmp(cases[i].method, "GET") ? "{}" : NULL;

		assert_int_equal(h_req(h, cases[i].method, cases[i].path, body), 400);
		if (!strstr(h_fault(), cases[i].needle))
			fail_msg("%s %s: \"%s\" lacks \"%s\"", cases[i].method, cases[i].path,
				 h_fault(), cases[i].needle);
	}
	/* A path that only starts like one is just unknown. */
	assert_400(h_req(h, "PUT", "/balloonx", "{}"), "Invalid request method and/or path");
	assert_400(h_req(h, "GET", "/nope", NULL), "Invalid request method and/or path");
	h_stop(h);
}

static void actions_and_vm_state(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_400(
	    PUT(h, "/actions", "{\"action_type\": \"Reboot\"}"),
	    "Field \"action_type\" must be one of InstanceStart, SendCtrlAltDel, FlushMetrics");
	assert_400(PUT(h, "/actions", "{}"), "Missing required field \"action_type\"");
	assert_400(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"),
		   "without a boot source");
	assert_int_equal(h->calls[OP_START], 0);
	assert_400(PUT(h, "/actions", "{\"action_type\": \"SendCtrlAltDel\"}"),
		   "not supported before starting the microVM");
	assert_400(PATCH(h, "/vm", "{\"state\": \"Paused\"}"),
		   "not supported before starting the microVM");
	assert_400(PUT(h, "/snapshot/create", "{\"snapshot_path\": \"/s\"}"),
		   "not supported before starting the microVM");

	boot(h);
	assert_int_equal(h->calls[OP_START], 1);
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(h_body(), "\"state\": \"Running\""));

	/* Configuration is over. */
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"),
		   "The requested operation is not supported after starting the microVM.");
	assert_400(PUT(h, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}"),
		   "after starting");
	assert_400(PATCH(h, "/machine-config", "{\"vcpu_count\": 2}"), "after starting");
	assert_400(PUT(h, "/drives/d",
		       "{\"drive_id\": \"d\", \"path_on_host\": \"/d\", "
		       "\"is_root_device\": false}"),
		   "after starting");
	assert_400(
	    PUT(h, "/network-interfaces/n", "{\"iface_id\": \"n\", \"host_dev_name\": \"t\"}"),
	    "after starting");
	assert_400(PUT(h, "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/v\"}"), "after starting");
	assert_400(PUT(h, "/entropy", "{}"), "after starting");
	assert_400(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"), "after starting");
	assert_400(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"),
		   "not allowed after starting");
	assert_int_equal(h->calls[OP_BOOT], 1);

	assert_int_equal(PATCH(h, "/vm", "{\"state\": \"Paused\"}"), 204);
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(h_body(), "\"state\": \"Paused\""));
	assert_400(PATCH(h, "/vm", "{\"state\": \"Stopped\"}"), "Field \"state\" must be one of");
	assert_int_equal(PATCH(h, "/vm", "{\"state\": \"Resumed\"}"), 204);
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"SendCtrlAltDel\"}"), 204);
	assert_int_equal(h->calls[OP_PAUSE], 1);
	assert_int_equal(h->calls[OP_RESUME], 1);
	assert_int_equal(h->calls[OP_CAD], 1);
	/* GET stays available. */
	assert_int_equal(h_req(h, "GET", "/machine-config", NULL), 200);
	h_stop(h);
}

static void snapshot_create_is_parsed(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	boot(h);
	assert_int_equal(PATCH(h, "/vm", "{\"state\": \"Paused\"}"), 204);
	assert_int_equal(
	    PUT(h, "/snapshot/create",
		"{\"snapshot_type\": \"Full\", \"snapshot_path\": \"./snapshot_file\", "
		"\"mem_file_path\": \"./mem_file\"}"),
	    204);
	assert_string_equal(h->screate.snapshot_path, "./snapshot_file");
	assert_string_equal(h->screate.mem_file_path, "./mem_file");
	assert_int_equal(h->screate.snapshot_type, API_SNAPSHOT_FULL);
	/* mem_file_path is optional for thaw (memory inside the snapshot file). */
	assert_int_equal(
	    PUT(h, "/snapshot/create", "{\"snapshot_path\": \"/s\", \"snapshot_type\": \"Diff\"}"),
	    204);
	assert_string_equal(h->screate.mem_file_path, "");
	assert_int_equal(h->screate.snapshot_type, API_SNAPSHOT_DIFF);
	assert_400(PUT(h, "/snapshot/create", "{\"mem_file_path\": \"/m\"}"),
		   "Missing required field \"snapshot_path\"");
	assert_400(PUT(h, "/snapshot/create", "{\"snapshot_path\": \"/s\", \"version\": \"1.0\"}"),
		   "Unknown field \"version\"");
	/* A failing create is reported but does not end the VM. */
	h->fail_op = OP_SNAP_CREATE;
	snprintf(h->fail_msg, sizeof(h->fail_msg), "No space left on device");
	assert_400(PUT(h, "/snapshot/create", "{\"snapshot_path\": \"/s\"}"),
		   "No space left on device");
	assert_int_equal(PATCH(h, "/vm", "{\"state\": \"Resumed\"}"), 204);
	h_stop(h);
}

static void snapshot_load_is_parsed(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(PUT(h, "/snapshot/load",
			     "{\"snapshot_path\": \"./snapshot_file\", \"mem_backend\": "
			     "{\"backend_path\": \"/run/uffd.sock\", \"backend_type\": \"Uffd\"}, "
			     "\"enable_diff_snapshots\": true, \"resume_vm\": true, "
			     "\"clock_realtime\": true, \"network_overrides\": [{\"iface_id\": "
			     "\"eth0\", \"host_dev_name\": \"vmtap01\"}, {\"iface_id\": \"eth1\", "
			     "\"host_dev_name\": \"vmtap02\"}], \"vsock_override\": {\"uds_path\": "
			     "\"/run/v2.sock\"}}"),
			 204);
	assert_string_equal(h->sload.snapshot_path, "./snapshot_file");
	assert_int_equal(h->sload.backend_type, API_MEM_BACKEND_UFFD);
	assert_string_equal(h->sload.backend_path, "/run/uffd.sock");
	assert_true(h->sload.track_dirty_pages);
	assert_true(h->sload.resume_vm);
	assert_true(h->sload.clock_realtime);
	assert_int_equal(h->sload.n_net_overrides, 2);
	assert_string_equal(h->sload.net_overrides[1].iface_id, "eth1");
	assert_string_equal(h->sload.net_overrides[1].host_dev_name, "vmtap02");
	assert_true(h->sload.has_vsock_override);
	assert_string_equal(h->sload.vsock_uds_path, "/run/v2.sock");
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(h_body(), "\"state\": \"Running\""));
	/* After a load: no configuration, no second load; VM actions work. */
	assert_400(PUT(h, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}"),
		   "after starting");
	assert_400(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"),
		   "not allowed after starting");
	assert_int_equal(PATCH(h, "/vm", "{\"state\": \"Paused\"}"), 204);
	assert_int_equal(PUT(h, "/snapshot/create", "{\"snapshot_path\": \"/s2\"}"), 204);
	h_stop(h);
}

static void snapshot_load_variants_and_errors(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	/* Validation happens before the state check, so errors come first; no call succeeds. */
	assert_400(PUT(h, "/snapshot/load",
		       "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\", \"mem_backend\": "
		       "{\"backend_type\": \"File\", \"backend_path\": \"/m\"}}"),
		   "exclude each other");
	assert_400(PUT(h, "/snapshot/load",
		       "{\"snapshot_path\": \"/s\", \"mem_backend\": {\"backend_type\": \"Disk\", "
		       "\"backend_path\": \"/m\"}}"),
		   "Field \"mem_backend.backend_type\" must be one of File, Uffd");
	assert_400(
	    PUT(h, "/snapshot/load",
		"{\"snapshot_path\": \"/s\", \"mem_backend\": {\"backend_type\": \"File\"}}"),
	    "Missing required field \"mem_backend.backend_path\"");
	assert_400(PUT(h, "/snapshot/load",
		       "{\"snapshot_path\": \"/s\", \"network_overrides\": {\"iface_id\": \"a\"}}"),
		   "Field \"network_overrides\" must be an array, got object");
	assert_400(
	    PUT(h, "/snapshot/load",
		"{\"snapshot_path\": \"/s\", \"network_overrides\": [{\"iface_id\": \"a\"}]}"),
	    "Missing required field \"network_overrides[0].host_dev_name\"");
	assert_400(
	    PUT(h, "/snapshot/load",
		"{\"snapshot_path\": \"/s\", \"network_overrides\": [{\"iface_id\": \"a\", "
		"\"host_dev_name\": \"t\"}, {\"iface_id\": \"a\", \"host_dev_name\": \"u\"}]}"),
	    "names interface \"a\" twice");
	assert_400(PUT(h, "/snapshot/load",
		       "{\"snapshot_path\": \"/s\", \"vsock_override\": {\"path\": \"/v\"}}"),
		   "Unknown field \"path\" in vsock_override");
	assert_400(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\", \"resume_vm\": 1}"),
		   "Field \"resume_vm\" must be a boolean, got integer");
	assert_int_equal(h->calls[OP_SNAP_LOAD], 0);

	/* The deprecated mem_file_path arrives as a File backend; nothing means in-file. */
	h->fail_op = OP_SNAP_LOAD;
	h->fail_keep_state = true;
	assert_int_equal(
	    PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\", \"mem_file_path\": \"/m\"}"),
	    400);
	assert_int_equal(h->sload.backend_type, API_MEM_BACKEND_FILE);
	assert_string_equal(h->sload.backend_path, "/m");
	assert_int_equal(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"), 204);
	assert_int_equal(h->sload.backend_type, API_MEM_BACKEND_NONE);
	assert_false(h->sload.resume_vm);
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(h_body(), "\"state\": \"Paused\""));
	h_stop(h);
}

static void load_refused_after_configuration(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(PUT(h, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}"),
			 204);
	assert_400(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"),
		   "not allowed after configuring boot-specific resources");
	assert_int_equal(h->calls[OP_SNAP_LOAD], 0);
	/* A refused configuration call does not count as configuring. */
	h_stop(h);
	h = h_start_ops(NULL, 0);
	h->fail_op = OP_BOOT;
	assert_int_equal(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 400);
	assert_int_equal(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"), 204);
	h_stop(h);
}

static void failed_load_leaves_the_process_refusing(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	h->fail_op = OP_SNAP_LOAD;
	snprintf(h->fail_msg, sizeof(h->fail_msg),
		 "restoring vcpu.0: KVM_SET_MSRS: Invalid argument");
	assert_400(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"), "KVM_SET_MSRS");
	/* Every further action is refused with the reason... */
	assert_400(
	    PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"),
	    "failed state and refuses further actions (Snapshot load failed: restoring vcpu.0");
	assert_400(PATCH(h, "/vm", "{\"state\": \"Resumed\"}"), "failed state");
	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"), "failed state");
	assert_400(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"), "failed state");
	assert_400(PUT(h, "/snapshot/create", "{\"snapshot_path\": \"/s\"}"), "failed state");
	assert_int_equal(h->calls[OP_SNAP_LOAD], 1);
	assert_int_equal(h->calls[OP_RESUME], 0);
	/* ...while inspection still works. */
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_int_equal(h_req(h, "GET", "/machine-config", NULL), 200);
	h_stop(h);
}

static void failed_start_leaves_the_process_refusing(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	assert_int_equal(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"), 204);
	h->fail_op = OP_START;
	h->fail_status = 500;
	snprintf(h->fail_msg, sizeof(h->fail_msg), "KVM_CREATE_VCPU: Too many open files");
	assert_int_equal(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"), 500);
	assert_string_equal(h_fault(), "KVM_CREATE_VCPU: Too many open files");
	assert_400(PUT(h, "/actions", "{\"action_type\": \"InstanceStart\"}"),
		   "InstanceStart failed: KVM_CREATE_VCPU");
	assert_int_equal(h->calls[OP_START], 1);
	h_stop(h);
}

static void op_errors_become_fault_messages(void **state)
{
	struct harness *h = h_start_ops(NULL, 0);

	h->fail_op = OP_DRIVE;
	snprintf(h->fail_msg, sizeof(h->fail_msg), "open \"/nope\": No such file or \"directory\"");
	assert_int_equal(PUT(h, "/drives/d",
			     "{\"drive_id\": \"d\", \"path_on_host\": \"/nope\", "
			     "\"is_root_device\": false}"),
			 400);
	/* Quotes in the message survive JSON escaping. */
	assert_string_equal(h_fault(), "open \"/nope\": No such file or \"directory\"");
	assert_non_null(strstr(h_body(), "{\"fault_message\": "));
	/* No message: strerror of the return value. */
	h->fail_op = OP_VSOCK;
	h->fail_msg[0] = '\0';
	assert_400(PUT(h, "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/v\"}"),
		   "Input/output error");
	h_stop(h);
}

static void missing_ops_answer_not_supported(void **state)
{
	static const struct api_ops none;
	struct harness *h = h_start_ops(&none, 0);

	assert_400(PUT(h, "/boot-source", "{\"kernel_image_path\": \"/k\"}"),
		   "PUT /boot-source is not supported by this VMM");
	assert_400(PUT(h, "/snapshot/load", "{\"snapshot_path\": \"/s\"}"), "not supported");
	/* Unsupported is not a failure: the process is still fresh. */
	assert_int_equal(h_req(h, "GET", "/", NULL), 200);
	assert_non_null(strstr(h_body(), "Not started"));
	/* Without get_machine_config/put_machine_config GET still answers the defaults. */
	assert_int_equal(h_req(h, "GET", "/machine-config", NULL), 200);
	h_stop(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(boot_source_is_parsed),
	    cmocka_unit_test(boot_source_errors_name_the_field),
	    cmocka_unit_test(invalid_json_bodies_get_400),
	    cmocka_unit_test(machine_config_put_get_patch),
	    cmocka_unit_test(machine_config_validation),
	    cmocka_unit_test(drives_are_parsed_and_validated),
	    cmocka_unit_test(drive_and_net_patches_come_after_start),
	    cmocka_unit_test(mmds_store_and_config),
	    cmocka_unit_test(cpu_config_is_parsed_and_validated),
	    cmocka_unit_test(network_interfaces_are_parsed_and_validated),
	    cmocka_unit_test(vsock_and_entropy),
	    cmocka_unit_test(logger_is_parsed),
	    cmocka_unit_test(default_logger_redirects_stderr),
	    cmocka_unit_test(metrics_and_flush),
	    cmocka_unit_test(metrics_are_flushed_periodically),
	    cmocka_unit_test(log_and_metrics_fifos_work_before_a_reader),
	    cmocka_unit_test(a_full_metrics_fifo_drops_whole_lines),
	    cmocka_unit_test(version_has_firecrackers_shape),
	    cmocka_unit_test(vm_config_lists_everything_configured),
	    cmocka_unit_test(config_file_applies_each_member_then_starts),
	    cmocka_unit_test(unoffered_endpoints_name_the_feature),
	    cmocka_unit_test(actions_and_vm_state),
	    cmocka_unit_test(snapshot_create_is_parsed),
	    cmocka_unit_test(snapshot_load_is_parsed),
	    cmocka_unit_test(snapshot_load_variants_and_errors),
	    cmocka_unit_test(load_refused_after_configuration),
	    cmocka_unit_test(failed_load_leaves_the_process_refusing),
	    cmocka_unit_test(failed_start_leaves_the_process_refusing),
	    cmocka_unit_test(op_errors_become_fault_messages),
	    cmocka_unit_test(missing_ops_answer_not_supported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
