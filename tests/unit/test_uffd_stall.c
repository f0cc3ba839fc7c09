/* The uffd stall detector's decisions (uffd_stall_step), over simulated vCPUs: which
 * ones get kicked, which are declared stuck, and when. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "uffd/uffd.h"

#define MS 1000000ull

/* How a simulated vCPU behaves between two checks. */
enum behaviour {
	EXITS,		/* exits by itself (port I/O, MMIO): progress */
	HALTED,		/* halted; a kick makes KVM_RUN return, a halted fingerprint */
	COMPUTES,	/* runs guest code without exits; a kick returns, registers move */
	SPINS_SAME,	/* runs without exits, always at the very same registers */
	STUCK_KILLABLE, /* in a fault: a kick does not return */
	STUCK_REFAULTS, /* in a fault: a kick returns, re-entry faults at the same place */
	PARKED,		/* parked by vm_pause */
};

struct sim {
	struct uffd_vcpu_sample s;
	bool kicked; /* a kick is pending since the last check */
	uint64_t pc;
};

/* Advances one vCPU by one check period, as its thread would. */
static void advance(struct sim *v, enum behaviour b)
{
	v->s.active = b != PARKED;
	switch (b) {
	case EXITS:
		v->s.seq += 2 * 50;
		v->s.exits += 50;
		break;
	case HALTED:
	case COMPUTES:
	case SPINS_SAME:
	case STUCK_REFAULTS:
		if (v->kicked) {
			v->s.seq += 2;
			v->s.fp_seq += 2;
			v->s.fp_halted = b == HALTED;
			v->s.fp = b == COMPUTES ? ++v->pc : 0x1234;
		}
		break;
	case STUCK_KILLABLE:
	case PARKED:
		break;
	}
	v->kicked = false;
}

/* Runs `n` checks of one vCPU behaving as `b`, from `*now` on; returns the verdict of
 * the last one, counting kicks and stopping at the first STUCK. */
static enum uffd_stall_verdict run(struct uffd_stall_vcpu *st, struct sim *v, enum behaviour b,
				   unsigned n, uint64_t *now, uint64_t period, uint64_t timeout,
				   bool waiting, unsigned *kicks)
{
	enum uffd_stall_verdict r = UFFD_STALL_OK;

	for (unsigned i = 0; i < n; i++) {
		advance(v, b);
		*now += period;
		r = uffd_stall_step(st, &v->s, *now, timeout, waiting);
		if (r == UFFD_STALL_KICK) {
			v->kicked = true;
			(*kicks)++;
		}
		if (r == UFFD_STALL_STUCK)
			break;
	}
	return r;
}

static void period_is_a_third_of_the_timeout_within_bounds(void **state)
{
	assert_int_equal(uffd_stall_period_ms(1500), 500);
	assert_int_equal(uffd_stall_period_ms(3000), 1000);
	assert_int_equal(uffd_stall_period_ms(60000), 1000);
	assert_int_equal(uffd_stall_period_ms(15), 10);
}

static void a_vcpu_that_exits_by_itself_is_never_kicked(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0;

	assert_int_equal(run(&st, &v, EXITS, 100, &now, 500 * MS, 1500 * MS, true, &kicks),
			 UFFD_STALL_OK);
	assert_int_equal(kicks, 0);
}

static void a_halted_vcpu_is_kicked_once_a_period_and_never_stuck(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0;

	/* even with a fault waiting in the uffd (another vCPU's, say) */
	assert_int_equal(run(&st, &v, HALTED, 100, &now, 500 * MS, 1500 * MS, true, &kicks),
			 UFFD_STALL_KICK);
	/* the first check only records; every later one kicks, once */
	assert_int_equal(kicks, 99);
}

static void a_computing_vcpu_is_never_stuck(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0;

	assert_int_not_equal(run(&st, &v, COMPUTES, 100, &now, 500 * MS, 1500 * MS, true, &kicks),
			     UFFD_STALL_STUCK);
}

static void a_parked_vcpu_is_neither_kicked_nor_stuck(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0;

	/* suspected (no exit of its own), then parked for a snapshot: no longer */
	run(&st, &v, STUCK_KILLABLE, 2, &now, 500 * MS, 1500 * MS, true, &kicks);
	assert_int_equal(kicks, 1);
	kicks = 0;
	assert_int_equal(run(&st, &v, PARKED, 100, &now, 500 * MS, 1500 * MS, true, &kicks),
			 UFFD_STALL_OK);
	assert_int_equal(kicks, 0);
	assert_int_equal(st.since_ns, 0);
}

static void a_vcpu_that_never_comes_back_is_stuck_after_the_timeout(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1, first_kick;
	unsigned kicks = 0;

	/* records, then kicks */
	run(&st, &v, STUCK_KILLABLE, 2, &now, 500 * MS, 1500 * MS, false, &kicks);
	first_kick = now;
	assert_int_equal(kicks, 1);
	/* kicked again each period until the timeout has passed since the first kick */
	assert_int_equal(run(&st, &v, STUCK_KILLABLE, 10, &now, 500 * MS, 1500 * MS, false, &kicks),
			 UFFD_STALL_STUCK);
	assert_int_equal(now - first_kick, 1500 * MS);
	assert_true(kicks >= 2);
	assert_false(st.refaults);
}

static void a_lost_kick_does_not_make_a_vcpu_stuck(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0;

	run(&st, &v, HALTED, 2, &now, 500 * MS, 1500 * MS, true, &kicks);
	/* the kick raced with KVM_RUN entry and did nothing: same as not coming back */
	v.kicked = false;
	run(&st, &v, STUCK_KILLABLE, 1, &now, 500 * MS, 1500 * MS, true, &kicks);
	/* the next kick lands */
	assert_int_equal(run(&st, &v, HALTED, 20, &now, 500 * MS, 1500 * MS, true, &kicks),
			 UFFD_STALL_KICK);
}

static void a_vcpu_that_only_refaults_is_stuck_when_a_fault_waits(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0, n;

	for (n = 0; n < 20; n++) {
		advance(&v, STUCK_REFAULTS);
		now += 500 * MS;
		enum uffd_stall_verdict r = uffd_stall_step(&st, &v.s, now, 1500 * MS, true);

		if (r == UFFD_STALL_STUCK)
			break;
		v.kicked = r == UFFD_STALL_KICK;
		kicks += v.kicked;
	}
	assert_true(n < 20);
	assert_true(st.refaults);
	/* record, first kick, first fingerprint, then the timeout of identical ones */
	assert_true(n * 500 >= 1500 + 1000);
	assert_true(n * 500 <= 1500 + 1500);
	assert_true(kicks >= 3);
}

static void refaulting_without_an_unread_fault_is_not_stuck(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0;

	/* same registers each kick but no fault waits in the uffd: a guest spinning on
	 * one instruction, not a stalled handler */
	assert_int_equal(run(&st, &v, STUCK_REFAULTS, 50, &now, 500 * MS, 1500 * MS, false, &kicks),
			 UFFD_STALL_KICK);
	memset(&st, 0, sizeof(st));
	memset(&v, 0, sizeof(v));
	assert_int_equal(run(&st, &v, SPINS_SAME, 50, &now, 500 * MS, 1500 * MS, false, &kicks),
			 UFFD_STALL_KICK);
}

static void an_exit_ends_a_suspicion(void **state)
{
	struct uffd_stall_vcpu st = {0};
	struct sim v = {0};
	uint64_t now = 1;
	unsigned kicks = 0;

	run(&st, &v, STUCK_KILLABLE, 3, &now, 500 * MS, 1500 * MS, false, &kicks);
	assert_int_not_equal(st.since_ns, 0);
	/* the handler served the page: the vCPU goes on and exits by itself */
	assert_int_equal(run(&st, &v, EXITS, 1, &now, 500 * MS, 1500 * MS, false, &kicks),
			 UFFD_STALL_OK);
	assert_int_equal(st.since_ns, 0);
	/* a new stall is timed from its own first kick */
	kicks = 0;
	assert_int_equal(run(&st, &v, STUCK_KILLABLE, 3, &now, 500 * MS, 1500 * MS, false, &kicks),
			 UFFD_STALL_KICK);
	assert_int_equal(run(&st, &v, STUCK_KILLABLE, 1, &now, 500 * MS, 1500 * MS, false, &kicks),
			 UFFD_STALL_STUCK);
}

static void a_restore_waiting_on_an_unread_fault_is_stuck_after_the_timeout(void **state)
{
	struct uffd_stall_restore st = {0};
	uint64_t now = 1;

	/* faults waiting, restore unfinished: stuck once the timeout has passed */
	for (int i = 0; i < 3; i++, now += 500 * MS)
		assert_false(uffd_stall_restore_step(&st, true, true, now, 1500 * MS));
	assert_true(uffd_stall_restore_step(&st, true, true, now, 1500 * MS));

	/* one check with the queue empty (the handler reads) starts the count over */
	memset(&st, 0, sizeof(st));
	for (int i = 0; i < 10; i++, now += 500 * MS)
		assert_false(uffd_stall_restore_step(&st, true, i % 3 != 2, now, 1500 * MS));
	/* once the VM runs, the vCPU checks take over */
	for (int i = 0; i < 10; i++, now += 500 * MS)
		assert_false(uffd_stall_restore_step(&st, false, true, now, 1500 * MS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(period_is_a_third_of_the_timeout_within_bounds),
	    cmocka_unit_test(a_vcpu_that_exits_by_itself_is_never_kicked),
	    cmocka_unit_test(a_halted_vcpu_is_kicked_once_a_period_and_never_stuck),
	    cmocka_unit_test(a_computing_vcpu_is_never_stuck),
	    cmocka_unit_test(a_parked_vcpu_is_neither_kicked_nor_stuck),
	    cmocka_unit_test(a_vcpu_that_never_comes_back_is_stuck_after_the_timeout),
	    cmocka_unit_test(a_lost_kick_does_not_make_a_vcpu_stuck),
	    cmocka_unit_test(a_vcpu_that_only_refaults_is_stuck_when_a_fault_waits),
	    cmocka_unit_test(refaulting_without_an_unread_fault_is_not_stuck),
	    cmocka_unit_test(an_exit_ends_a_suspicion),
	    cmocka_unit_test(a_restore_waiting_on_an_unread_fault_is_stuck_after_the_timeout),
	};

	return cmocka_run_group_tests_name("uffd-stall", tests, NULL, NULL);
}
