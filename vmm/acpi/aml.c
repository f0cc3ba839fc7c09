/* A small AML writer: the terms thaw's DSDT uses and no more (ACPI 6.5, chapter 20).
 * Opcodes are named where they are written; the encodings are the spec's. */
#include "vmm/acpi/acpi_int.h"

#include <string.h>

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	*a = (struct aml){.buf = buf, .cap = cap};
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* Little-endian, as every multi-byte field in AML and the tables. */
static void put_le(struct aml *a, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

void aml_u16(struct aml *a, uint16_t v)
{
	put_le(a, v, 2);
}

void aml_u32(struct aml *a, uint32_t v)
{
	put_le(a, v, 4);
}

void aml_u64(struct aml *a, uint64_t v)
{
	put_le(a, v, 8);
}

/* ---- names */

static void nameseg(struct aml *a, const char *seg, size_t len)
{
	for (size_t i = 0; i < 4; i++)
		aml_byte(a, i < len ? (uint8_t)seg[i] : '_');
}

void aml_namestring(struct aml *a, const char *path)
{
	const char *segs[8];
	size_t lens[8], n = 0;
	const char *p = path;

	if (*p == '\\') {
		aml_byte(a, '\\'); /* RootChar */
		p++;
	}
	while (*p && n < 8) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);

		segs[n] = p;
		lens[n++] = len > 4 ? 4 : len;
		p += len + (dot ? 1 : 0);
	}
	if (n == 0) {
		aml_byte(a, 0x00); /* NullName */
		return;
	}
	if (n == 2) {
		aml_byte(a, 0x2e); /* DualNamePrefix */
	} else if (n > 2) {
		aml_byte(a, 0x2f); /* MultiNamePrefix */
		aml_byte(a, (uint8_t)n);
	}
	for (size_t i = 0; i < n; i++)
		nameseg(a, segs[i], lens[i]);
}

/* ---- data */

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, 0x00); /* ZeroOp */
	} else if (v == 1) {
		aml_byte(a, 0x01); /* OneOp */
	} else if (v <= 0xff) {
		aml_byte(a, 0x0a); /* BytePrefix */
		put_le(a, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(a, 0x0b); /* WordPrefix */
		put_le(a, v, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, 0x0c); /* DWordPrefix */
		put_le(a, v, 4);
	} else {
		aml_byte(a, 0x0e); /* QWordPrefix */
		put_le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, 0x0d); /* StringPrefix */
	aml_bytes(a, s, strlen(s) + 1);
}

/* "PNP0501": three letters of five bits each (A = 1), then four hex digits, stored
 * big-endian as ASL's EisaId() does. */
void aml_eisaid(struct aml *a, const char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	uint32_t v = 0;

	for (int i = 0; i < 3; i++)
		v = (v << 5) | ((uint32_t)(id[i] - 'A' + 1) & 0x1f);
	for (int i = 3; i < 7; i++) {
		const char *h = strchr(hex, id[i]);

		v = (v << 4) | (uint32_t)(h && *h ? h - hex : 0);
	}
	aml_byte(a, 0x0c); /* DWordPrefix; always a DWord, as iasl writes it */
	aml_byte(a, (uint8_t)(v >> 24));
	aml_byte(a, (uint8_t)(v >> 16));
	aml_byte(a, (uint8_t)(v >> 8));
	aml_byte(a, (uint8_t)v);
}

void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, 0x08); /* NameOp */
	aml_namestring(a, name);
}

void aml_buffer(struct aml *a, const uint8_t *bytes, size_t n)
{
	size_t mark;

	aml_byte(a, 0x11); /* BufferOp */
	mark = a->len;
	aml_integer(a, n); /* BufferSize */
	aml_bytes(a, bytes, n);
	aml_close(a, mark);
}

void aml_arg(struct aml *a, unsigned n)
{
	aml_byte(a, (uint8_t)(0x68 + n)); /* Arg0Op .. Arg6Op */
}

void aml_return(struct aml *a)
{
	aml_byte(a, 0xa4); /* ReturnOp */
}

void aml_lequal(struct aml *a)
{
	aml_byte(a, 0x93); /* LEqualOp */
}

void aml_notify(struct aml *a, const char *path, uint8_t value)
{
	aml_byte(a, 0x86); /* NotifyOp */
	aml_namestring(a, path);
	aml_integer(a, value);
}

/* ---- terms with a PkgLength */

/* The mark is where the PkgLength goes: right after the opcode. The contents are
 * written first, then shifted to make room for the length once it is known. */
size_t aml_scope_open(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, 0x10); /* ScopeOp */
	mark = a->len;
	aml_namestring(a, path);
	return mark;
}

size_t aml_device_open(struct aml *a, const char *name)
{
	size_t mark;

	aml_byte(a, 0x5b); /* ExtOpPrefix */
	aml_byte(a, 0x82); /* DeviceOp */
	mark = a->len;
	aml_namestring(a, name);
	return mark;
}

size_t aml_method_open(struct aml *a, const char *name, unsigned nargs, bool serialized)
{
	size_t mark;

	aml_byte(a, 0x14); /* MethodOp */
	mark = a->len;
	aml_namestring(a, name);
	/* MethodFlags: ArgCount in bits 0-2, SerializeFlag bit 3, SyncLevel 0 */
	aml_byte(a, (uint8_t)((nargs & 7) | (serialized ? 8 : 0)));
	return mark;
}

size_t aml_if_open(struct aml *a)
{
	aml_byte(a, 0xa0); /* IfOp */
	return a->len;
}

size_t aml_package_open(struct aml *a, uint8_t nelems)
{
	size_t mark;

	aml_byte(a, 0x12); /* PackageOp */
	mark = a->len;
	aml_byte(a, nelems); /* NumElements */
	return mark;
}

/* PkgLength (20.2.4) counts its own bytes: one byte up to 63, else a lead byte holding
 * the count of following bytes in bits 6-7 and the low nibble in bits 0-3. */
void aml_close(struct aml *a, size_t mark)
{
	size_t body, n, total;
	uint8_t enc[4];

	if (a->overflow)
		return;
	body = a->len - mark;
	if (body + 1 < 0x40)
		n = 1;
	else if (body + 2 < 0x1000)
		n = 2;
	else if (body + 3 < 0x100000)
		n = 3;
	else
		n = 4;
	total = body + n;
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (size_t i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	if (n > a->cap - a->len || total >= 0x10000000) {
		a->overflow = true;
		return;
	}
	memmove(a->buf + mark + n, a->buf + mark, body);
	memcpy(a->buf + mark, enc, n);
	a->len += n;
}

/* ---- resource descriptors (6.4.2 small, 6.4.3 large) */

void res_io(struct aml *r, uint16_t base, uint8_t len)
{
	aml_byte(r, 0x47); /* I/O port descriptor, 7 bytes follow */
	aml_byte(r, 0x01); /* decodes 16 address bits */
	aml_u16(r, base);  /* minimum */
	aml_u16(r, base);  /* maximum */
	aml_byte(r, 0x00); /* alignment */
	aml_byte(r, len);
}

void res_irq_noflags(struct aml *r, unsigned irq)
{
	aml_byte(r, 0x22); /* IRQ descriptor, 2 bytes follow: no flags (edge, high) */
	aml_u16(r, (uint16_t)(1u << (irq & 15)));
}

void res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len)
{
	aml_byte(r, 0x86); /* Memory32Fixed */
	aml_u16(r, 9);
	aml_byte(r, 0x01); /* read-write */
	aml_u32(r, base);
	aml_u32(r, len);
}

void res_interrupt_edge(struct aml *r, uint32_t gsi)
{
	aml_byte(r, 0x89); /* Extended Interrupt */
	aml_u16(r, 6);
	/* bit 0 consumer, bit 1 edge, bit 2 clear: active high, bit 3 clear: exclusive */
	aml_byte(r, 0x03);
	aml_byte(r, 1); /* one interrupt */
	aml_u32(r, gsi);
}

void res_end(struct aml *r)
{
	aml_byte(r, 0x79); /* End Tag */
	aml_byte(r, 0x00); /* checksum 0: treated as valid */
}
