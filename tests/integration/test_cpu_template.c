/* Firecracker's static CPU templates (`cpu_template` in PUT /machine-config) against a real
 * thaw: refused with the reason on a host that cannot honour them (another CPU vendor,
 * PVM); where it can (the nested host: AMD, hardware-virt KVM), the probe boots with T2A,
 * thaw having checked with KVM_GET_CPUID2 that the guest sees the template's CPUID, and
 * GET /machine-config and GET /vm/config report it, also after a snapshot load. */
#include <cpuid.h>
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

#include "tests/integration/harness.h"

#define TMO 60000

static char dir[] = "/tmp/thaw-tmpltest-XXXXXX";

static bool host_is_amd(void)
{
	unsigned a, b, c, d;
	char v[13] = "";

	__cpuid(0, a, b, c, d);
	memcpy(v, &b, 4);
	memcpy(v + 4, &d, 4);
	memcpy(v + 8, &c, 4);
	return strcmp(v, "AuthenticAMD") == 0;
}

/* PUT /machine-config with `tmpl`: the status, the body in `body`. */
static int put_template(const char *sock, const char *tmpl, char *body, size_t len)
{
	char json[256];

	snprintf(json, sizeof(json),
		 "{\"vcpu_count\": 1, \"mem_size_mib\": 64, \"cpu_template\": \"%s\"}", tmpl);
	return harness_http(sock, "PUT", "/machine-config", json, body, len);
}

static void template_of_the_other_vendor_is_refused_naming_it(void **state)
{
	const char *other = host_is_amd() ? "T2CL" : "T2A";
	char sock[256], body[8192];
	struct vmproc *a;

	snprintf(sock, sizeof(sock), "%s/v.sock", dir);
	a = harness_start_api(sock);
	assert_int_equal(put_template(sock, other, body, sizeof(body)), 400);
	assert_non_null(strstr(body, host_is_amd() ? "AuthenticAMD" : "GenuineIntel"));
	assert_non_null(strstr(body, other));
	/* the refusal changed nothing: still no template */
	assert_int_equal(harness_http(sock, "GET", "/machine-config", NULL, body, sizeof(body)),
			 200);
	assert_non_null(strstr(body, "\"cpu_template\": \"None\""));
	harness_end(a);
}

static void aarch64_template_is_refused_naming_it(void **state)
{
	char sock[256], body[8192];
	struct vmproc *a;

	snprintf(sock, sizeof(sock), "%s/n.sock", dir);
	a = harness_start_api(sock);
	assert_int_equal(put_template(sock, "V1N1", body, sizeof(body)), 400);
	assert_non_null(strstr(body, "aarch64"));
	harness_end(a);
}

/* On PVM the template of the host's own vendor is refused naming PVM; elsewhere the
 * probe boots with it and keeps it through a snapshot. */
static void own_vendor_template_boots_or_is_refused_on_pvm(void **state)
{
	const char *own = host_is_amd() ? "T2A" : "T2CL";
	char s1[256], s2[256], snap[256], mem[256], json[1024], body[16384];
	struct vmproc *a, *b;

	snprintf(s1, sizeof(s1), "%s/a.sock", dir);
	snprintf(s2, sizeof(s2), "%s/b.sock", dir);
	snprintf(snap, sizeof(snap), "%s/snap", dir);
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	a = harness_start_api(s1);
	if (harness_host_is_pvm()) {
		assert_int_equal(put_template(s1, own, body, sizeof(body)), 400);
		assert_non_null(strstr(body, "PVM replaces the CPUID"));
		harness_end(a);
		return;
	}
	assert_int_equal(put_template(s1, own, body, sizeof(body)), 204);
	harness_boot_probe(s1, a, "boot with a static CPU template");
	assert_int_equal(harness_http(s1, "GET", "/vm/config", NULL, body, sizeof(body)), 200);
	snprintf(json, sizeof(json), "\"cpu_template\": \"%s\"", own);
	if (!strstr(body, json))
		fail_msg("GET /vm/config after boot lacks %s: %s", json, body);

	assert_int_equal(
	    harness_http(s1, "PATCH", "/vm", "{\"state\": \"Paused\"}", body, sizeof(body)), 204);
	snprintf(json, sizeof(json),
		 "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"%s\", \"mem_file_path\": "
		 "\"%s\"}",
		 snap, mem);
	harness_put(s1, "/snapshot/create", json);
	harness_end(a);

	b = harness_start_api(s2);
	snprintf(json, sizeof(json),
		 "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_type\": \"File\", "
		 "\"backend_path\": \"%s\"}, \"resume_vm\": true}",
		 snap, mem);
	harness_put(s2, "/snapshot/load", json);
	assert_int_equal(harness_http(s2, "GET", "/machine-config", NULL, body, sizeof(body)), 200);
	snprintf(json, sizeof(json), "\"cpu_template\": \"%s\"", own);
	if (!strstr(body, json))
		fail_msg("GET /machine-config after the load lacks %s: %s", json, body);
	assert_int_equal(vmproc_ask(b, "ping", "PROBE pong", TMO, NULL, 0), 0);
	harness_end(b);
}

/* Firecracker applies whichever template was configured last: a custom one after a
 * static one replaces it (GET then says None), and the probe boots with the custom one. */
static void custom_template_after_static_one_replaces_it(void **state)
{
	const char *own = host_is_amd() ? "T2A" : "T2CL";
	char sock[256], body[8192];
	struct vmproc *a;

	if (harness_host_is_pvm())
		skip(); /* both kinds are refused there, each tested above and in test_api */
	snprintf(sock, sizeof(sock), "%s/l.sock", dir);
	a = harness_start_api(sock);
	assert_int_equal(put_template(sock, own, body, sizeof(body)), 204);
	harness_put(
	    sock, "/cpu-config",
	    "{\"cpuid_modifiers\": [{\"leaf\": \"0x7\", \"subleaf\": \"0x0\", \"flags\": 1, "
	    "\"modifiers\": [{\"register\": \"ebx\", \"bitmap\": "
	    "\"0bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0x\"}]}]}");
	assert_int_equal(harness_http(sock, "GET", "/machine-config", NULL, body, sizeof(body)),
			 200);
	assert_non_null(strstr(body, "\"cpu_template\": \"None\""));
	harness_boot_probe(sock, a, "boot with the custom template that replaced a static one");
	harness_end(a);
}

static int setup(void **state)
{
	return harness_tmpdir_make(dir);
}

static int teardown(void **state)
{
	return harness_tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(template_of_the_other_vendor_is_refused_naming_it),
	    cmocka_unit_test(aarch64_template_is_refused_naming_it),
	    cmocka_unit_test(own_vendor_template_boots_or_is_refused_on_pvm),
	    cmocka_unit_test(custom_template_after_static_one_replaces_it),
	};

	if (!harness_have_kvm())
		return 0;
	return cmocka_run_group_tests_name("cpu_template", tests, setup, teardown);
}
