/* The i8042 model: the port protocol Linux's i8042 driver and reboot=k use, SendCtrlAltDel's
 * key presses and interrupt, the reset line, and its snapshot section. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/vmm.h"
#include "restore/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DATA   0
#define STATUS 4

struct fixture {
	struct i8042 k;
	int resets, irqs;
};

static void on_reset(void *opaque)
{
	((struct fixture *)opaque)->resets++;
}

static void on_irq(void *opaque)
{
	((struct fixture *)opaque)->irqs++;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	i8042_init(&f->k, on_reset, on_irq, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pthread_mutex_destroy(&f->k.lock);
	free(f);
	return 0;
}

static uint8_t rd(struct fixture *f, unsigned port)
{
	uint8_t v = 0;

	i8042_access(&f->k, port, &v, 1, false);
	return v;
}

static void wr(struct fixture *f, unsigned port, uint8_t v)
{
	i8042_access(&f->k, port, &v, 1, true);
}

static void test_idle_controller_has_no_data(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, STATUS) & 0x01, 0);
	assert_int_equal(rd(f, DATA), 0);
	assert_int_equal(f->irqs, 0);
}

static void test_ctrl_alt_del_is_pressed_in_scan_code_set_2(void **state)
{
	struct fixture *f = *state;
	static const uint8_t want[] = {0x14, 0x11, 0xe0, 0x71};

	assert_int_equal(i8042_send_ctrl_alt_del(&f->k), 0);
	assert_int_equal(f->irqs, 1);
	for (size_t i = 0; i < sizeof(want); i++) {
		assert_int_equal(rd(f, STATUS) & 0x01, 0x01);
		assert_int_equal(rd(f, DATA), want[i]);
	}
	assert_int_equal(rd(f, STATUS) & 0x01, 0);
	/* Each byte read with another waiting announced the next one. */
	assert_int_equal(f->irqs, 4);
}

static void test_ctrl_alt_del_refused_when_the_guest_does_not_read(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < I8042_BUF / 4; i++)
		assert_int_equal(i8042_send_ctrl_alt_del(&f->k), 0);
	assert_int_equal(i8042_send_ctrl_alt_del(&f->k), -ENOSPC);
	assert_int_equal(f->k.s.len, I8042_BUF);
}

static void test_masked_keyboard_interrupt_is_not_raised(void **state)
{
	struct fixture *f = *state;

	wr(f, STATUS, 0x60); /* write the command byte */
	wr(f, DATA, 0x04);   /* POST ok, keyboard interrupt off */
	assert_int_equal(i8042_send_ctrl_alt_del(&f->k), 0);
	assert_int_equal(f->irqs, 0);
	assert_int_equal(rd(f, DATA), 0x14);
}

static void test_command_byte_reads_back(void **state)
{
	struct fixture *f = *state;

	wr(f, STATUS, 0x60);
	wr(f, DATA, 0x47);
	wr(f, STATUS, 0x20);
	assert_int_equal(rd(f, STATUS) & 0x01, 0x01);
	assert_int_equal(rd(f, DATA), 0x47);
}

static void test_output_port_reads_back(void **state)
{
	struct fixture *f = *state;

	wr(f, STATUS, 0xd1);
	wr(f, DATA, 0x03);
	wr(f, STATUS, 0xd0);
	assert_int_equal(rd(f, DATA), 0x03);
}

static void test_keyboard_command_is_acknowledged(void **state)
{
	struct fixture *f = *state;

	wr(f, DATA, 0xf4); /* enable scanning */
	assert_int_equal(rd(f, DATA), 0xfa);
}

static void test_reset_command_pulses_the_reset_line(void **state)
{
	struct fixture *f = *state;

	wr(f, STATUS, 0xaa); /* self-test: ignored, no reset */
	assert_int_equal(f->resets, 0);
	wr(f, STATUS, 0xfe);
	assert_int_equal(f->resets, 1);
}

static void test_other_ports_and_widths_read_ff(void **state)
{
	struct fixture *f = *state;
	uint8_t v2[2] = {0, 0};

	assert_int_equal(rd(f, 1), 0xff);
	i8042_access(&f->k, STATUS, v2, 2, false);
	assert_int_equal(v2[0], 0xff);
	v2[0] = 0xfe;
	i8042_access(&f->k, STATUS, v2, 2, true);
	assert_int_equal(f->resets, 0);
}

/* Keys pressed but not yet read, the command byte and a half-written command come back
 * in a fresh controller. */
static void test_snapshot_file_roundtrip(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/thaw-test-i8042-XXXXXX", err[256] = "";
	static uint8_t mem[4096];
	struct snap_writer *w;
	struct snap *s;
	struct i8042 k2;
	struct i8042_state st;
	uint8_t v = 0;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	wr(f, STATUS, 0x60);
	wr(f, DATA, 0x05);
	assert_int_equal(i8042_send_ctrl_alt_del(&f->k), 0);
	assert_int_equal(rd(f, DATA), 0x14);
	wr(f, STATUS, 0xd1); /* its data byte comes after the restore */
	assert_int_equal(snap_writer_create(path, &(struct snap_writer_opts){.no_fsync = true}, &w),
			 0);
	assert_int_equal(i8042_save_section(&f->k, w), 0);
	assert_int_equal(snap_writer_set_memory(w, mem, sizeof(mem)), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(path, &s, err, sizeof(err)), 0);
	assert_int_equal(
	    i8042_decode_section(snap_section_find(s, "i8042"), &st, err, sizeof(err)), 0);
	i8042_init(&k2, NULL, NULL, NULL);
	i8042_restore(&k2, &st);
	assert_int_equal(k2.s.control, 0x05);
	i8042_access(&k2, DATA, &v, 1, true); /* completes the output port write */
	assert_int_equal(k2.s.outp, v);
	i8042_access(&k2, DATA, &v, 1, false);
	assert_int_equal(v, 0x11);
	i8042_access(&k2, DATA, &v, 1, false);
	assert_int_equal(v, 0xe0);
	i8042_access(&k2, DATA, &v, 1, false);
	assert_int_equal(v, 0x71);
	i8042_access(&k2, STATUS, &v, 1, false);
	assert_int_equal(v & 0x01, 0);
	snap_close(s);
	unlink(path);
	pthread_mutex_destroy(&k2.lock);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_idle_controller_has_no_data),
	    T(test_ctrl_alt_del_is_pressed_in_scan_code_set_2),
	    T(test_ctrl_alt_del_refused_when_the_guest_does_not_read),
	    T(test_masked_keyboard_interrupt_is_not_raised),
	    T(test_command_byte_reads_back),
	    T(test_output_port_reads_back),
	    T(test_keyboard_command_is_acknowledged),
	    T(test_reset_command_pulses_the_reset_line),
	    T(test_other_ports_and_widths_read_ff),
	    T(test_snapshot_file_roundtrip),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
