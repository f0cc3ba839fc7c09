/* The 8250/16550A register model, driven through its bus handler the way a guest
 * driver does, with the output and IRQ callbacks recorded. */
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

#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI	 0x04

struct rec {
	uint8_t out[256];
	size_t out_len;
	int level;
	unsigned raises, lowers;
};

struct fixture {
	struct uart u;
	struct rec r;
};

static void on_out(void *opaque, uint8_t b)
{
	struct rec *r = opaque;

	if (r->out_len < sizeof(r->out))
		r->out[r->out_len++] = b;
}

static void on_irq(void *opaque, int level)
{
	struct rec *r = opaque;

	/* the model reports transitions only */
	assert_int_not_equal(level, r->level);
	r->level = level;
	if (level)
		r->raises++;
	else
		r->lowers++;
}

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	uart_init(&f.u, on_out, on_irq, &f.r);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	pthread_mutex_destroy(&f->u.lock);
	return 0;
}

static void wr(struct fixture *f, unsigned reg, uint8_t v)
{
	uart_access(&f->u, reg, &v, 1, true);
}

static uint8_t rd(struct fixture *f, unsigned reg)
{
	uint8_t v = 0x5a;

	uart_access(&f->u, reg, &v, 1, false);
	return v;
}

static void input(struct fixture *f, const char *s)
{
	assert_int_equal(uart_input(&f->u, (const uint8_t *)s, strlen(s)), strlen(s));
}

/* ---- transmit and line status */

static void test_thr_write_reaches_output(void **state)
{
	struct fixture *f = *state;

	wr(f, THR, 'o');
	wr(f, THR, 'k');
	wr(f, THR, '\n');
	assert_int_equal(f->r.out_len, 3);
	assert_memory_equal(f->r.out, "ok\n", 3);
}

static void test_thr_write_without_output_callback_is_dropped(void **state)
{
	struct uart u;
	uint8_t v = 'x';

	uart_init(&u, NULL, NULL, NULL);
	uart_access(&u, THR, &v, 1, true);
	uart_access(&u, LSR, &v, 1, false);
	assert_int_equal(v & 0x60, 0x60);
	pthread_mutex_destroy(&u.lock);
}

static void test_lsr_idle_transmitter_empty_no_data(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, LSR), 0x60); /* THRE | TEMT, no DR */
	wr(f, THR, 'a');
	assert_int_equal(rd(f, LSR), 0x60); /* the byte leaves at once */
}

static void test_lsr_is_read_only(void **state)
{
	struct fixture *f = *state;

	wr(f, LSR, 0x00);
	assert_int_equal(rd(f, LSR), 0x60);
}

/* ---- receive */

static void test_rx_input_sets_data_ready(void **state)
{
	struct fixture *f = *state;

	input(f, "a");
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
}

static void test_rx_reads_in_order_and_clears_data_ready(void **state)
{
	struct fixture *f = *state;

	input(f, "abc");
	assert_int_equal(rd(f, RBR), 'a');
	assert_int_equal(rd(f, RBR), 'b');
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	assert_int_equal(rd(f, RBR), 'c');
	assert_int_equal(rd(f, LSR) & 0x01, 0);
}

static void test_rx_read_of_empty_fifo_gives_zero(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, RBR), 0);
	assert_int_equal(rd(f, LSR) & 0x01, 0);
}

static void test_rx_fifo_overflow_takes_what_fits(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[UART_FIFO + 36];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(uart_rx_room(&f->u), UART_FIFO);
	assert_int_equal(uart_input(&f->u, buf, sizeof(buf)), UART_FIFO);
	assert_int_equal(uart_rx_room(&f->u), 0);
	assert_int_equal(uart_input(&f->u, buf, 1), 0);
	for (unsigned i = 0; i < UART_FIFO; i++)
		assert_int_equal(rd(f, RBR), (uint8_t)i); /* the first ones, in order */
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	assert_int_equal(uart_rx_room(&f->u), UART_FIFO);
}

/* Input offered while the guest drains keeps its order across the ring's wrap. */
static void test_rx_order_kept_across_wrap(void **state)
{
	struct fixture *f = *state;
	uint8_t next_in = 0, next_out = 0;

	for (int round = 0; round < 10; round++) {
		uint8_t buf[40];

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)(next_in + i);
		next_in = (uint8_t)(next_in + uart_input(&f->u, buf, sizeof(buf)));
		for (int i = 0; i < 30; i++)
			assert_int_equal(rd(f, RBR), next_out++);
	}
}

static void test_rx_room_counts_down(void **state)
{
	struct fixture *f = *state;

	input(f, "12345");
	assert_int_equal(uart_rx_room(&f->u), UART_FIFO - 5);
	rd(f, RBR);
	assert_int_equal(uart_rx_room(&f->u), UART_FIFO - 4);
}

/* ---- interrupts */

static void test_no_interrupt_after_reset(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, IIR) & 0x0f, IIR_NONE);
	input(f, "x"); /* IER is 0: no interrupt */
	wr(f, THR, 'y');
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_NONE);
	assert_int_equal(f->r.raises, 0);
}

static void test_rdi_raised_by_input_and_lowered_when_drained(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x01);
	assert_int_equal(f->r.raises, 0);
	input(f, "ab");
	assert_int_equal(f->r.level, 1);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_RDI);
	rd(f, RBR);
	assert_int_equal(f->r.level, 1); /* one byte left */
	rd(f, RBR);
	assert_int_equal(f->r.level, 0);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_NONE);
}

static void test_rdi_enabled_with_data_waiting_raises(void **state)
{
	struct fixture *f = *state;

	input(f, "a");
	assert_int_equal(f->r.raises, 0);
	wr(f, IER, 0x01);
	assert_int_equal(f->r.level, 1);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_RDI);
}

static void test_rdi_has_priority_over_thri(void **state)
{
	struct fixture *f = *state;

	input(f, "a");
	wr(f, IER, 0x03);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_RDI);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_RDI); /* reading it acknowledges nothing */
	rd(f, RBR);
	/* the THRE interrupt was pending underneath all along */
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_THRI);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_NONE);
}

static void test_thri_raised_when_enabled(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x02);
	assert_int_equal(f->r.level, 1);
	assert_int_equal(f->r.raises, 1);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_THRI);
}

static void test_thri_cleared_by_iir_read(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x02);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_THRI);
	assert_int_equal(f->r.level, 0);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_NONE);
}

/* A THR write clears THRE, and since the byte leaves at once the interrupt comes back:
 * what the 8250 driver's transmit loop waits for. */
static void test_thr_write_rearms_thri(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x02);
	rd(f, IIR);
	assert_int_equal(f->r.level, 0);
	wr(f, THR, 'z');
	assert_int_equal(f->r.level, 1);
	assert_int_equal(f->r.raises, 2);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_THRI);
}

static void test_thri_not_raised_again_by_reenabling_it(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x02);
	rd(f, IIR);
	wr(f, IER, 0x02); /* already enabled: no new edge */
	assert_int_equal(f->r.level, 0);
	assert_int_equal(f->r.raises, 1);
}

static void test_disabling_ier_lowers_line(void **state)
{
	struct fixture *f = *state;

	input(f, "a");
	wr(f, IER, 0x03);
	assert_int_equal(f->r.level, 1);
	wr(f, IER, 0x00);
	assert_int_equal(f->r.level, 0);
	assert_int_equal(rd(f, IIR) & 0x0f, IIR_NONE);
}

static void test_irq_line_raised_once_and_lowered_once(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x01);
	input(f, "a");
	input(f, "b");
	input(f, "c");
	rd(f, LSR);
	rd(f, IIR);
	assert_int_equal(f->r.raises, 1);
	assert_int_equal(f->r.lowers, 0);
	rd(f, RBR);
	rd(f, RBR);
	rd(f, RBR);
	rd(f, RBR); /* one too many */
	assert_int_equal(f->r.raises, 1);
	assert_int_equal(f->r.lowers, 1);
}

/* Linux's 8250 startup: a UART that does not reassert THRE after IER's THRI bit is
 * toggled gets UART_BUG_THRE and a polling timer; a real 16550A reasserts it. */
static void test_thri_reasserted_after_ier_toggle_as_linux_startup_checks(void **state)
{
	struct fixture *f = *state;
	uint8_t iir1, iir2;

	wr(f, IER, 0x02);
	iir1 = rd(f, IIR);
	wr(f, IER, 0x00);
	wr(f, IER, 0x02);
	iir2 = rd(f, IIR);
	wr(f, IER, 0x00);
	assert_int_equal(iir1 & 0x01, 0);
	assert_int_equal(iir2 & 0x01, 0);
	assert_int_equal(f->r.level, 0);
}

/* Linux's autoconfig: IER written 0 reads 0, written 0x0f reads 0x0f. */
static void test_ier_probe_as_linux_autoconfig_expects(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x00);
	assert_int_equal(rd(f, IER) & 0x0f, 0x00);
	wr(f, IER, 0x0f);
	assert_int_equal(rd(f, IER) & 0x0f, 0x0f);
	wr(f, IER, 0xff);
	assert_int_equal(rd(f, IER), 0x0f); /* the upper bits do not exist */
}

/* ---- divisor latch, loopback, FIFO control, scratch */

static void test_dlab_exposes_divisor_latch(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x05);
	wr(f, LCR, 0x83);
	wr(f, DLL, 0x01); /* 115200 baud */
	wr(f, DLM, 0x00);
	assert_int_equal(rd(f, DLL), 0x01);
	assert_int_equal(rd(f, DLM), 0x00);
	assert_int_equal(f->r.out_len, 0); /* divisor writes are not output */
	wr(f, LCR, 0x03);
	assert_int_equal(rd(f, LCR), 0x03);
	assert_int_equal(rd(f, IER), 0x05); /* IER untouched by the DLM write */
	wr(f, LCR, 0x83);
	assert_int_equal(rd(f, DLL), 0x01); /* latch kept */
}

static void test_dlab_hides_receive_buffer(void **state)
{
	struct fixture *f = *state;

	input(f, "q");
	wr(f, LCR, 0x80);
	assert_int_equal(rd(f, DLL), 12); /* reset divisor, 9600 baud */
	wr(f, LCR, 0x00);
	assert_int_equal(rd(f, RBR), 'q'); /* still queued */
}

/* Linux's autoconfig: MCR = LOOP | 0x0A must read back MSR & 0xf0 == 0x90. */
static void test_loopback_msr_as_linux_autoconfig_expects(void **state)
{
	struct fixture *f = *state;

	wr(f, MCR, 0x1a);
	assert_int_equal(rd(f, MSR) & 0xf0, 0x90);
	wr(f, MCR, 0x10);
	assert_int_equal(rd(f, MSR) & 0xf0, 0x00);
	wr(f, MCR, 0x1f);
	assert_int_equal(rd(f, MSR) & 0xf0, 0xf0);
	wr(f, MCR, 0x11); /* DTR -> DSR */
	assert_int_equal(rd(f, MSR) & 0xf0, 0x20);
	wr(f, MCR, 0x14); /* OUT1 -> RI */
	assert_int_equal(rd(f, MSR) & 0xf0, 0x40);
}

static void test_msr_outside_loopback_reports_carrier(void **state)
{
	struct fixture *f = *state;

	wr(f, MCR, 0x0b);
	assert_int_equal(rd(f, MSR) & 0xf0, 0xb0); /* DCD | DSR | CTS */
	assert_int_equal(rd(f, MCR), 0x0b);
}

static void test_loopback_thr_goes_to_receiver(void **state)
{
	struct fixture *f = *state;

	wr(f, MCR, 0x10);
	wr(f, THR, 0x55);
	assert_int_equal(f->r.out_len, 0);
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	assert_int_equal(rd(f, RBR), 0x55);
}

static void test_fcr_clears_receive_fifo(void **state)
{
	struct fixture *f = *state;

	wr(f, IER, 0x01);
	input(f, "abc");
	assert_int_equal(f->r.level, 1);
	wr(f, FCR, 0x03); /* enable, clear receive FIFO */
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	assert_int_equal(uart_rx_room(&f->u), UART_FIFO);
	assert_int_equal(f->r.level, 0);
	input(f, "d");
	assert_int_equal(rd(f, RBR), 'd'); /* nothing stale ahead of new input */
}

static void test_fcr_enable_shows_in_iir(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, IIR) & 0xc0, 0x00);
	wr(f, FCR, 0x01);
	assert_int_equal(rd(f, IIR), 0xc1); /* 16550A: FIFOs enabled, no interrupt */
	wr(f, FCR, 0x00);
	assert_int_equal(rd(f, IIR) & 0xc0, 0x00);
}

static void test_scratch_register_holds_value(void **state)
{
	struct fixture *f = *state;

	wr(f, SCR, 0xa5);
	assert_int_equal(rd(f, SCR), 0xa5);
	wr(f, SCR, 0x5a);
	assert_int_equal(rd(f, SCR), 0x5a);
}

static void test_wide_or_out_of_range_access_ignored(void **state)
{
	struct fixture *f = *state;
	uint8_t v2[2] = {0, 0}, v = 0;

	uart_access(&f->u, SCR, v2, 2, false);
	assert_int_equal(v2[0], 0xff);
	assert_int_equal(v2[1], 0xff);
	v2[0] = 'w';
	uart_access(&f->u, THR, v2, 2, true);
	assert_int_equal(f->r.out_len, 0);
	uart_access(&f->u, 8, &v, 1, false);
	assert_int_equal(v, 0xff);
}

/* COM1 through a snapshot file: registers and the pending receive FIFO come back in a
 * fresh UART, in order, and a section that is not COM1's is refused. */
/* Firecracker's uart metrics: THR writes that reach the output, RBR reads that take a
 * byte and those that find the FIFO empty; loopback bytes are not output. */
static void test_counts_writes_reads_and_empty_reads(void **state)
{
	struct fixture *f = *state;
	struct uart_counts c;

	wr(f, THR, 'h');
	wr(f, THR, 'i');
	input(f, "ab");
	rd(f, RBR);
	rd(f, RBR);
	rd(f, RBR);	  /* empty */
	wr(f, MCR, 0x10); /* loopback */
	wr(f, THR, 'x');
	wr(f, LCR, 0x80); /* DLAB: the divisor, not the FIFO */
	rd(f, RBR);
	c = uart_counts(&f->u);
	assert_int_equal(c.write_count, 2);
	assert_int_equal(c.read_count, 2);
	assert_int_equal(c.missed_read_count, 1);
	assert_int_equal(f->r.out_len, 2);
}

static void test_snapshot_file_roundtrip(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/thaw-test-uart-XXXXXX", err[256] = "";
	static uint8_t mem[4096];
	struct snap_writer *w;
	struct snap *s;
	struct uart u2;
	struct uart_state st;
	uint8_t b = 0;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	uart_input(&f->u, (const uint8_t *)"abc", 3);
	b = 0x0f;
	uart_access(&f->u, 1, &b, 1, true);  /* IER */
	uart_access(&f->u, 0, &b, 1, false); /* takes 'a' */
	assert_int_equal(snap_writer_create(path, &(struct snap_writer_opts){.no_fsync = true}, &w),
			 0);
	assert_int_equal(uart_save_section(&f->u, w), 0);
	assert_int_equal(snap_writer_set_memory(w, mem, sizeof(mem)), 0);
	assert_int_equal(snap_writer_commit(w, NULL), 0);
	assert_int_equal(snap_open(path, &s, err, sizeof(err)), 0);
	assert_int_equal(
	    uart_decode_section(snap_section_find(s, "device.com1"), &st, err, sizeof(err)), 0);
	uart_init(&u2, NULL, NULL, NULL);
	uart_restore(&u2, &st);
	assert_int_equal(u2.s.ier, 0x0f);
	assert_int_equal(u2.s.rx_len, 2);
	uart_access(&u2, 0, &b, 1, false);
	assert_int_equal(b, 'b');
	uart_access(&u2, 0, &b, 1, false);
	assert_int_equal(b, 'c');
	snap_close(s);
	unlink(path);
	pthread_mutex_destroy(&u2.lock);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_thr_write_reaches_output),
	    T(test_counts_writes_reads_and_empty_reads),
	    T(test_snapshot_file_roundtrip),
	    cmocka_unit_test(test_thr_write_without_output_callback_is_dropped),
	    T(test_lsr_idle_transmitter_empty_no_data),
	    T(test_lsr_is_read_only),
	    T(test_rx_input_sets_data_ready),
	    T(test_rx_reads_in_order_and_clears_data_ready),
	    T(test_rx_read_of_empty_fifo_gives_zero),
	    T(test_rx_fifo_overflow_takes_what_fits),
	    T(test_rx_order_kept_across_wrap),
	    T(test_rx_room_counts_down),
	    T(test_no_interrupt_after_reset),
	    T(test_rdi_raised_by_input_and_lowered_when_drained),
	    T(test_rdi_enabled_with_data_waiting_raises),
	    T(test_rdi_has_priority_over_thri),
	    T(test_thri_raised_when_enabled),
	    T(test_thri_cleared_by_iir_read),
	    T(test_thr_write_rearms_thri),
	    T(test_thri_not_raised_again_by_reenabling_it),
	    T(test_disabling_ier_lowers_line),
	    T(test_irq_line_raised_once_and_lowered_once),
	    T(test_thri_reasserted_after_ier_toggle_as_linux_startup_checks),
	    T(test_ier_probe_as_linux_autoconfig_expects),
	    T(test_dlab_exposes_divisor_latch),
	    T(test_dlab_hides_receive_buffer),
	    T(test_loopback_msr_as_linux_autoconfig_expects),
	    T(test_msr_outside_loopback_reports_carrier),
	    T(test_loopback_thr_goes_to_receiver),
	    T(test_fcr_clears_receive_fifo),
	    T(test_fcr_enable_shows_in_iir),
	    T(test_scratch_register_holds_value),
	    T(test_wide_or_out_of_range_access_ignored),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
