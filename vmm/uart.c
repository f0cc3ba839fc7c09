/* 8250/16550A UART register model: enough of it for Linux's 8250 driver (autoconfig
 * loopback probe, FIFO, RX and THRE interrupts) and for polled use by the probe guest. */
#include "vmm/vmm.h"

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
		return s->lcr & LCR_DLAB ? s->dll : rx_pop(s);
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
		if (s->mcr & MCR_LOOP)
			rx_push(s, v);
		else if (u->out)
			u->out(u->opaque, v);
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
