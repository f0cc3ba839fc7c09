/* 8250/16550A UART register model: enough of it for Linux's 8250 driver (autoconfig
 * loopback probe, FIFO, RX and THRE interrupts) and for polled use by the probe guest. */
#include "vmm/vmm.h"
#include "restore/snapshot.h"

#include <errno.h>
#include <stdio.h>

#include <string.h>

#define UART_RBR 0 /* DLAB=0 read: receive buffer */
#define UART_IER 1
#define UART_IIR 2 /* read: interrupt identification; write: FIFO control */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI	 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS	 0x10
#define MSR_DSR	 0x20
#define MSR_RI	 0x40
#define MSR_DCD	 0x80

void uart_init(struct uart *u, void (*out)(void *, uint8_t), void (*irq)(void *, int), void *opaque)
{
	memset(&u->s, 0, sizeof(u->s));
	u->s.iir = IIR_NONE;
	u->s.lsr = LSR_THRE | LSR_TEMT;
	u->s.msr = MSR_DCD | MSR_DSR | MSR_CTS;
	u->s.dll = 12; /* 9600 baud */
	pthread_mutex_init(&u->lock, NULL);
	u->out = out;
	u->irq = irq;
	u->opaque = opaque;
	u->irq_level = 0;
	u->n_write = u->n_read = u->n_missed_read = 0;
}

struct uart_counts uart_counts(struct uart *u)
{
	struct uart_counts c;

	pthread_mutex_lock(&u->lock);
	c = (struct uart_counts){u->n_write, u->n_read, u->n_missed_read};
	pthread_mutex_unlock(&u->lock);
	return c;
}

/* Recomputes IIR and the line level from the state; called after every change. */
static void update_irq(struct uart *u)
{
	struct uart_state *s = &u->s;
	uint8_t iir = IIR_NONE;
	int level;

	if ((s->ier & IER_RDI) && s->rx_len)
		iir = IIR_RDI;
	else if ((s->ier & IER_THRI) && s->thr_ipending)
		iir = IIR_THRI;
	s->iir = iir | (s->fcr & 1 ? IIR_FIFO : 0);
	level = iir != IIR_NONE;
	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->irq)
			u->irq(u->opaque, level);
	}
}

static void rx_push(struct uart_state *s, uint8_t b)
{
	if (s->rx_len == UART_FIFO)
		return;
	s->rx[(s->rx_head + s->rx_len) % UART_FIFO] = b;
	s->rx_len++;
	s->lsr |= LSR_DR;
}

static uint8_t rx_pop(struct uart_state *s)
{
	uint8_t b;

	if (!s->rx_len)
		return 0;
	b = s->rx[s->rx_head];
	s->rx_head = (uint8_t)((s->rx_head + 1) % UART_FIFO);
	if (--s->rx_len == 0)
		s->lsr &= (uint8_t)~LSR_DR;
	return b;
}

static uint8_t reg_read(struct uart *u, unsigned reg)
{
	struct uart_state *s = &u->s;
	uint8_t v;

	switch (reg) {
	case UART_RBR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_len)
			u->n_read++;
		else
			u->n_missed_read++;
		return rx_pop(s);
	case UART_IER:
		return s->lcr & LCR_DLAB ? s->dlm : s->ier;
	case UART_IIR:
		v = s->iir;
		/* Reading IIR acknowledges a THRE interrupt it reports. */
		if ((v & 0x0f) == IIR_THRI)
			s->thr_ipending = false;
		return v;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return s->lsr;
	case UART_MSR:
		if (s->mcr & MCR_LOOP) {
			/* Loopback wires the modem control outputs to the status inputs;
			 * Linux's autoconfig checks exactly this. */
			v = 0;
			if (s->mcr & MCR_DTR)
				v |= MSR_DSR;
			if (s->mcr & MCR_RTS)
				v |= MSR_CTS;
			if (s->mcr & MCR_OUT1)
				v |= MSR_RI;
			if (s->mcr & MCR_OUT2)
				v |= MSR_DCD;
			return v;
		}
		return s->msr;
	case UART_SCR:
		return s->scr;
	default:
		return 0xff;
	}
}

static void reg_write(struct uart *u, unsigned reg, uint8_t v)
{
	struct uart_state *s = &u->s;

	switch (reg) {
	case UART_RBR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			break;
		}
		if (s->mcr & MCR_LOOP) {
			rx_push(s, v);
		} else if (u->out) {
			u->out(u->opaque, v);
			u->n_write++;
		}
		/* The byte left at once: THR is empty again. */
		s->thr_ipending = true;
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			break;
		}
		/* Enabling the THRE interrupt while THR is empty raises it (16550). */
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thr_ipending = true;
		s->ier = v & 0x0f;
		break;
	case UART_IIR:
		s->fcr = v & 0xc9;
		if (v & 0x02) { /* clear the receive FIFO */
			s->rx_len = 0;
			s->lsr &= (uint8_t)~LSR_DR;
		}
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

void uart_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart *u = opaque;

	if (len != 1 || offset > 7) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&u->lock);
	if (is_write)
		reg_write(u, (unsigned)offset, data[0]);
	else
		data[0] = reg_read(u, (unsigned)offset);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

size_t uart_input(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	while (n < len && u->s.rx_len < UART_FIFO)
		rx_push(&u->s, buf[n++]);
	if (n)
		update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

size_t uart_rx_room(struct uart *u)
{
	size_t room;

	pthread_mutex_lock(&u->lock);
	room = UART_FIFO - u->s.rx_len;
	pthread_mutex_unlock(&u->lock);
	return room;
}

/* ---------------------------------------------------------------- snapshot */

/* Section device.com1 (docs/snapshot-format.md): the one legacy device with state worth
 * keeping (its FIFO, IER, LCR). */
enum {
	UART_TAG_REGS = SNAP_DEV_OWN, /* bytes: ier iir fcr lcr mcr lsr msr scr dll dlm */
	UART_TAG_RX,		      /* bytes: pending receive FIFO contents, in order */
	UART_TAG_THR_IPENDING,	      /* u64: 0 or 1 */
};
#define UART_SECTION_MAJOR 1
#define UART_NR_REGS	   10

int uart_save_section(struct uart *u, struct snap_writer *w)
{
	struct snap_device_place place = {COM1_BASE, 8, COM1_IRQ};
	uint8_t regs[UART_NR_REGS], rx[UART_FIFO];
	struct snap_sec *sec;
	int ret;

	ret = snap_device_begin(w, "com1", "serial", UART_SECTION_MAJOR, 0, &place, &sec);
	if (ret)
		return ret;
	pthread_mutex_lock(&u->lock);
	regs[0] = u->s.ier, regs[1] = u->s.iir, regs[2] = u->s.fcr, regs[3] = u->s.lcr;
	regs[4] = u->s.mcr, regs[5] = u->s.lsr, regs[6] = u->s.msr, regs[7] = u->s.scr;
	regs[8] = u->s.dll, regs[9] = u->s.dlm;
	for (unsigned k = 0; k < u->s.rx_len; k++)
		rx[k] = u->s.rx[(u->s.rx_head + k) % UART_FIFO];
	snap_put_bytes(sec, UART_TAG_REGS, regs, sizeof(regs));
	snap_put_bytes(sec, UART_TAG_RX, rx, u->s.rx_len);
	snap_put_u64(sec, UART_TAG_THR_IPENDING, u->s.thr_ipending);
	pthread_mutex_unlock(&u->lock);
	return sec->err;
}

int uart_decode_section(const struct snap_section *sec, struct uart_state *st, char *err,
			size_t errlen)
{
	struct snap_device_place place;
	char kind[16];
	const void *p;
	size_t len;
	uint64_t v = 0;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = snap_section_check_version(sec, UART_SECTION_MAJOR, err, errlen);
	if (ret)
		return ret;
	if (snap_device_get_place(sec, kind, sizeof(kind), &place) || strcmp(kind, "serial") ||
	    place.mmio_base != COM1_BASE || place.mmio_size != 8 || place.irq != COM1_IRQ)
		return errf(err, errlen, -EBADMSG,
			    "%s: not a serial port at COM1's place (0x%x, 8 ports, IRQ %d)",
			    sec->name, COM1_BASE, COM1_IRQ);
	if (snap_get_bytes(sec, UART_TAG_REGS, &p, &len) || len != UART_NR_REGS)
		return errf(err, errlen, -EBADMSG, "%s: no %d register bytes", sec->name,
			    UART_NR_REGS);
	{
		const uint8_t *r = p;

		/* Bits the model does not implement are dropped, as a write would. */
		st->ier = r[0] & 0x0f, st->iir = r[1], st->fcr = r[2], st->lcr = r[3];
		st->mcr = r[4] & 0x1f, st->lsr = r[5], st->msr = r[6], st->scr = r[7];
		st->dll = r[8], st->dlm = r[9];
	}
	ret = snap_get_bytes(sec, UART_TAG_RX, &p, &len);
	if (ret == 0) {
		if (len > UART_FIFO)
			return errf(err, errlen, -EBADMSG,
				    "%s: receive FIFO of %zu bytes (at most %d)", sec->name, len,
				    UART_FIFO);
		memcpy(st->rx, p, len);
		st->rx_len = (uint8_t)len;
	} else if (ret != -ENOENT) {
		return errf(err, errlen, -EBADMSG, "%s: malformed receive FIFO", sec->name);
	}
	if (snap_get_u64_def(sec, UART_TAG_THR_IPENDING, 1, 0, &v, err, errlen))
		return -EBADMSG;
	st->thr_ipending = v != 0;
	return 0;
}

void uart_restore(struct uart *u, const struct uart_state *st)
{
	pthread_mutex_lock(&u->lock);
	u->s = *st;
	pthread_mutex_unlock(&u->lock);
}
