/* The stall detector's decisions (uffd.h): pure, so every case is unit tested without a
 * VM. The control thread in backend.c samples, kicks and ends the VM. */
#include "uffd/uffd.h"

uint64_t uffd_stall_period_ms(uint64_t timeout_ms)
{
	uint64_t p = timeout_ms / 3;

	return p < 10 ? 10 : p > 1000 ? 1000 : p;
}

/* Forget any suspicion and remember where the vCPU is now. */
static void settle(struct uffd_stall_vcpu *st, const struct uffd_vcpu_sample *s)
{
	st->known = true;
	st->seq = s->seq;
	st->exits = s->exits;
	st->fp_seq = s->fp_seq;
	st->fp_valid = false;
	st->since_ns = 0;
	st->kicks = 0;
	st->refaults = false;
}

/* Starts (or restarts) a suspicion with a kick. */
static enum uffd_stall_verdict suspect(struct uffd_stall_vcpu *st, const struct uffd_vcpu_sample *s,
				       uint64_t now_ns)
{
	st->seq = s->seq;
	st->fp_seq = s->fp_seq;
	st->since_ns = now_ns;
	st->kicks = 1;
	st->refaults = false;
	return UFFD_STALL_KICK;
}

enum uffd_stall_verdict uffd_stall_step(struct uffd_stall_vcpu *st,
					const struct uffd_vcpu_sample *s, uint64_t now_ns,
					uint64_t timeout_ns, bool fault_waiting)
{
	bool fresh_fp, same;

	/* Parked on purpose (pause, snapshot), not started, ended, or it exited by
	 * itself since the last check: nothing to suspect. The first sample only
	 * records. */
	if (!s->active || !st->known || s->exits != st->exits) {
		settle(st, s);
		return UFFD_STALL_OK;
	}
	if (!st->since_ns)
		return suspect(st, s, now_ns);

	if (s->seq == st->seq) {
		/* Not back from KVM_RUN (nor anywhere else) since the suspicion began: the
		 * kicks did not reach it. Kick again each period, so a kick lost to a race
		 * cannot make a healthy vCPU look stuck. */
		if (now_ns - st->since_ns >= timeout_ns && st->kicks >= 2)
			return UFFD_STALL_STUCK;
		st->kicks++;
		return UFFD_STALL_KICK;
	}

	/* It came back, but only because of kicks (no exit of its own). */
	fresh_fp = s->fp_seq != st->fp_seq;
	same = fresh_fp && st->fp_valid && s->fp == st->fp && !s->fp_halted && fault_waiting;
	if (fresh_fp) {
		st->fp = s->fp;
		st->fp_valid = true;
	}
	if (!same) {
		/* Halted, running guest code, or a return we did not fingerprint: healthy
		 * so far. Watch on from the next kick. */
		bool keep = fresh_fp;

		suspect(st, s, now_ns);
		st->fp_valid = keep;
		return UFFD_STALL_KICK;
	}
	/* The same place, not halted, a fault waiting unread: it only re-enters the
	 * fault it cannot leave. */
	st->seq = s->seq;
	st->fp_seq = s->fp_seq;
	st->refaults = true;
	if (now_ns - st->since_ns >= timeout_ns && st->kicks >= 2)
		return UFFD_STALL_STUCK;
	st->kicks++;
	return UFFD_STALL_KICK;
}

bool uffd_stall_restore_step(struct uffd_stall_restore *st, bool restoring, bool fault_waiting,
			     uint64_t now_ns, uint64_t timeout_ns)
{
	/* A check that finds the queue empty means the handler reads: start over. */
	if (!restoring || !fault_waiting) {
		st->since_ns = 0;
		return false;
	}
	if (!st->since_ns)
		st->since_ns = now_ns;
	return now_ns - st->since_ns >= timeout_ns;
}
