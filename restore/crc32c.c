/* CRC32C for the snapshot file: the SSE4.2 crc32 instruction when the CPU has it (three
 * interleaved streams so the 3-cycle latency of the instruction is hidden), slicing-by-8
 * tables otherwise. "Shift" tables move a CRC register past N zero bytes without reading
 * them: they combine the three streams and checksum the holes of zero pages. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "restore/snapshot.h"

#define POLY	 0x82f63b78u /* reflected Castagnoli polynomial */
#define STREAM_L 1360u	     /* 3 * 1360 + 16 = 4096: one page = three streams + a tail */

static uint32_t sw_table[8][256];
/* register past STREAM_L zero bytes; every restore writes it (its first checksum):
 * one page of its own rather than parts of two, each kept dirty by each clone */
static uint32_t shift_stream[4][256] __attribute__((aligned(4096)));
static uint32_t shift_page[4][256]; /* register past 4096 zero bytes */
static uint32_t zero_ops[13][32];   /* register past 2^k zero bytes, as GF(2) matrices */
static int have_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static pthread_once_t ops_once = PTHREAD_ONCE_INIT;
static pthread_once_t page_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_apply(const uint32_t *mat, uint32_t vec)
{
	uint32_t r = 0;
	for (unsigned i = 0; vec; i++, vec >>= 1)
		if (vec & 1)
			r ^= mat[i];
	return r;
}

/* Register after `n` zero bytes, for n < 8192, from the power-of-two operators. */
static uint32_t shift_small(uint32_t reg, uint32_t n)
{
	for (unsigned k = 0; n; k++, n >>= 1)
		if (n & 1)
			reg = gf2_apply(zero_ops[k], reg);
	return reg;
}

static void tables_from_basis(uint32_t tab[4][256], const uint32_t basis[32])
{
	for (unsigned k = 0; k < 4; k++) {
		tab[k][0] = 0;
		for (unsigned b = 1; b < 256; b++)
			tab[k][b] = tab[k][b & (b - 1)] ^ basis[8 * k + (unsigned)__builtin_ctz(b)];
	}
}

static void build_shift(uint32_t tab[4][256], uint32_t n)
{
	uint32_t basis[32];
	for (unsigned i = 0; i < 32; i++)
		basis[i] = shift_small(1u << i, n);
	tables_from_basis(tab, basis);
}

/* The crc32 instruction on a zero word moves a register past 8 zero bytes: 32 independent
 * chains of that build a table in a few microseconds, which matters because the first
 * checksum is taken on the restore path. */
__attribute__((target("sse4.2"))) static void hw_build_shift(uint32_t tab[4][256], uint32_t n)
{
	uint64_t b[32];
	uint32_t basis[32];
	for (unsigned i = 0; i < 32; i++)
		b[i] = 1u << i;
	for (uint32_t j = 0; j < n / 8; j++)
		for (unsigned i = 0; i < 32; i++)
			b[i] = __builtin_ia32_crc32di(b[i], 0);
	for (unsigned i = 0; i < 32; i++)
		basis[i] = (uint32_t)b[i];
	tables_from_basis(tab, basis);
}

static inline uint32_t shift_apply(uint32_t tab[4][256], uint32_t reg)
{
	return tab[0][reg & 0xff] ^ tab[1][(reg >> 8) & 0xff] ^ tab[2][(reg >> 16) & 0xff] ^
	       tab[3][reg >> 24];
}

/* The power-of-two operators: only for zero runs that are not whole pages, and for the
 * tables when the CPU has no crc32 instruction. */
static void ops_init(void)
{
	/* One zero bit: reg >> 1, xor POLY when the bit shifted out was set; a byte is 8. */
	for (unsigned i = 0; i < 32; i++) {
		uint32_t r = 1u << i;
		for (int b = 0; b < 8; b++)
			r = (r >> 1) ^ (POLY & (0u - (r & 1)));
		zero_ops[0][i] = r;
	}
	for (unsigned k = 1; k < 13; k++)
		for (unsigned i = 0; i < 32; i++)
			zero_ops[k][i] = gf2_apply(zero_ops[k - 1], zero_ops[k - 1][i]);
}

/* Only writers skip zero pages: the restore path does not pay for this table. */
static void page_init(void)
{
	if (have_hw) {
		hw_build_shift(shift_page, 4096);
		return;
	}
	pthread_once(&ops_once, ops_init);
	build_shift(shift_page, 4096);
}

static void crc_init(void)
{
	__builtin_cpu_init();
	have_hw = __builtin_cpu_supports("sse4.2");
#ifdef SNAP_CRC_FORCE_SW /* tests build the table path with this */
	have_hw = 0;
#endif
	if (have_hw) {
		hw_build_shift(shift_stream, STREAM_L);
		return;
	}
	for (unsigned i = 0; i < 256; i++) {
		uint32_t r = i;
		for (int b = 0; b < 8; b++)
			r = (r >> 1) ^ (POLY & (0u - (r & 1)));
		sw_table[0][i] = r;
	}
	for (unsigned i = 0; i < 256; i++)
		for (unsigned t = 1; t < 8; t++)
			sw_table[t][i] =
			    (sw_table[t - 1][i] >> 8) ^ sw_table[0][sw_table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t reg, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		reg = (reg >> 8) ^ sw_table[0][(reg ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= reg;
		reg = sw_table[7][w & 0xff] ^ sw_table[6][(w >> 8) & 0xff] ^
		      sw_table[5][(w >> 16) & 0xff] ^ sw_table[4][(w >> 24) & 0xff] ^
		      sw_table[3][(w >> 32) & 0xff] ^ sw_table[2][(w >> 40) & 0xff] ^
		      sw_table[1][(w >> 48) & 0xff] ^ sw_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		reg = (reg >> 8) ^ sw_table[0][(reg ^ *p++) & 0xff];
	return reg;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t reg, const uint8_t *p, size_t len)
{
	uint64_t r = reg;
	while (len && ((uintptr_t)p & 7)) {
		r = __builtin_ia32_crc32qi((uint32_t)r, *p++);
		len--;
	}
	/* Three independent streams of STREAM_L bytes, merged by shifting the earlier ones
	 * past the later ones' length: crc(A||B) = shift(crc(A), |B|) ^ crc0(B). */
	while (len >= 3 * STREAM_L) {
		uint64_t a = r, b = 0, c = 0, w;
		const uint8_t *pb = p + STREAM_L, *pc = p + 2 * STREAM_L;
		for (unsigned i = 0; i < STREAM_L; i += 8) {
			memcpy(&w, p + i, 8);
			a = __builtin_ia32_crc32di(a, w);
			memcpy(&w, pb + i, 8);
			b = __builtin_ia32_crc32di(b, w);
			memcpy(&w, pc + i, 8);
			c = __builtin_ia32_crc32di(c, w);
		}
		r = shift_apply(shift_stream, (uint32_t)a) ^ (uint32_t)b;
		r = shift_apply(shift_stream, (uint32_t)r) ^ (uint32_t)c;
		p += 3 * STREAM_L;
		len -= 3 * STREAM_L;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		r = __builtin_ia32_crc32di(r, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		r = __builtin_ia32_crc32qi((uint32_t)r, *p++);
	return (uint32_t)r;
}

uint32_t snap_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	uint32_t reg = ~crc;
	reg = have_hw ? crc_hw(reg, buf, len) : crc_sw(reg, buf, len);
	return ~reg;
}

uint32_t snap_crc32c_zeros(uint32_t crc, uint64_t n)
{
	pthread_once(&crc_once, crc_init);
	pthread_once(&page_once, page_init);
	uint32_t reg = ~crc;
	for (; n >= 4096; n -= 4096)
		reg = shift_apply(shift_page, reg);
	if (n) {
		pthread_once(&ops_once, ops_init);
		reg = shift_small(reg, (uint32_t)n);
	}
	return ~reg;
}
