/* Console output through the guest's own path: bytes written to COM1's transmit
 * register on the port bus, as a guest driver does, arrive in the console output, and
 * a regular file stops at its cap with the rest dropped and counted. No /dev/kvm. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/vmm.h"

#define COM1 0x3f8

static int setup(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm || vm_init(vm) || vm_setup_legacy_devices(vm))
		return -1;
	*state = vm;
	return 0;
}

static int teardown(void **state)
{
	struct vm *vm = *state;

	if (vm->console_out_fd > STDERR_FILENO)
		close(vm->console_out_fd);
	vm_destroy(vm);
	free(vm);
	return 0;
}

/* The guest prints `n` bytes ('a'..'z' over and over) through COM1's THR. */
static void guest_prints(struct vm *vm, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b = (uint8_t)('a' + i % 26);

		assert_true(vmm_bus_access(&vm->pio, COM1, &b, 1, true));
	}
}

static int temp_file(void)
{
	char path[] = "/tmp/thaw-console-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static void vm_init_caps_console_output_by_default(void **state)
{
	struct vm *vm = *state;

	assert_int_equal(vm->console_out_max, VMM_CONSOLE_OUT_MAX_DEFAULT);
	assert_true(VMM_CONSOLE_OUT_MAX_DEFAULT >= (1u << 20));
}

static void output_file_stops_at_the_cap_and_counts_the_rest(void **state)
{
	struct vm *vm = *state;
	char buf[512];
	struct stat st;

	vm->console_out_fd = temp_file();
	vm->console_out_max = 100;
	vmm_console_out_prepare(vm); /* as vm_launch does */
	guest_prints(vm, 250);
	assert_int_equal(fstat(vm->console_out_fd, &st), 0);
	assert_int_equal(st.st_size, 100);
	assert_int_equal(pread(vm->console_out_fd, buf, sizeof(buf), 0), 100);
	/* the first bytes are kept: a boot log's start is what explains the rest */
	for (size_t i = 0; i < 100; i++)
		assert_int_equal(buf[i], 'a' + i % 26);
	assert_int_equal(vm->console_out_bytes, 100);
	assert_int_equal(vm->console_out_dropped, 150);
}

/* A pipe's reader drains it: nothing accumulates on the host, so nothing is dropped. */
static void output_to_a_pipe_is_not_capped(void **state)
{
	struct vm *vm = *state;
	char buf[512];
	int p[2];

	assert_int_equal(pipe(p), 0);
	vm->console_out_fd = p[1];
	vm->console_out_max = 100;
	vmm_console_out_prepare(vm);
	guest_prints(vm, 250);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 250);
	close(p[0]);
	assert_int_equal(vm->console_out_bytes, 250);
	assert_int_equal(vm->console_out_dropped, 0);
}

static void cap_zero_means_no_cap(void **state)
{
	struct vm *vm = *state;
	struct stat st;

	vm->console_out_fd = temp_file();
	vm->console_out_max = 0;
	vmm_console_out_prepare(vm);
	guest_prints(vm, 250);
	assert_int_equal(fstat(vm->console_out_fd, &st), 0);
	assert_int_equal(st.st_size, 250);
	assert_int_equal(vm->console_out_dropped, 0);
}

/* The exit report names the count (stderr, where thaw's log goes). */
static void report_names_the_dropped_bytes(void **state)
{
	struct vm *vm = *state;
	int err = temp_file(), saved = dup(STDERR_FILENO);
	char buf[1024] = "";
	ssize_t n;

	vm->console_out_fd = temp_file();
	vm->console_out_max = 10;
	vmm_console_out_prepare(vm);
	assert_int_equal(dup2(err, STDERR_FILENO), STDERR_FILENO);
	guest_prints(vm, 30);
	vmm_console_report(vm);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(err, buf, sizeof(buf) - 1, 0);
	close(err);
	assert_true(n > 0);
	assert_non_null(strstr(buf, "reached its cap of 10 bytes"));
	assert_non_null(strstr(buf, "20 bytes of guest output dropped"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(vm_init_caps_console_output_by_default, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(output_file_stops_at_the_cap_and_counts_the_rest, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(output_to_a_pipe_is_not_capped, setup, teardown),
	    cmocka_unit_test_setup_teardown(cap_zero_means_no_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(report_names_the_dropped_bytes, setup, teardown),
	};

	return cmocka_run_group_tests_name("vmm console output", tests, NULL, NULL);
}
