/* Host-side twin of the probe's checksums (PROTOCOL.md "Checksums"), so a test can check a
 * guest memory file or compute what the probe must answer.
 *   probesum sum FILE FILE_OFFSET START_MIB LEN_MIB   checksum of guest RAM in a file whose
 *                                                     byte FILE_OFFSET is guest address 0
 *   probesum touch START_MIB LEN_MIB SEED             expected answer of `touch`
 *   probesum scatter START_MIB LEN_MIB SEED           expected answer of `touchscatter`
 *   probesum compute N CPU                            per-CPU result of `compute N`
 * Prints the value as 0x%016lx. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#define K1  0x9E3779B97F4A7C15ULL
#define K2  0xD6E8FEB86659FD93ULL
#define MIB (1ULL << 20)

static uint64_t word_hash(uint64_t a, uint64_t w)
{
	uint64_t x = (w ^ a) * K1;
	return x ^ (x >> 32);
}

static uint64_t pattern(uint64_t seedk, uint64_t a)
{
	uint64_t z = a ^ seedk;
	z = (z ^ (z >> 32)) * K2;
	return z ^ (z >> 32);
}

static uint64_t num(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || !*s || *end) {
		fprintf(stderr, "probesum: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t s = 0;
	if (argc == 6 && !strcmp(argv[1], "sum")) {
		uint64_t off = num(argv[3]), start = num(argv[4]) * MIB, len = num(argv[5]) * MIB;
		int fd = open(argv[2], O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st)) {
			fprintf(stderr, "probesum: open %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		if (off + start + len > (uint64_t)st.st_size || off % 4096) {
			fprintf(stderr, "probesum: range outside %s or offset unaligned\n",
				argv[2]);
			return 1;
		}
		const uint8_t *m =
		    mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, (off_t)(off + start));
		if (m == MAP_FAILED) {
			fprintf(stderr, "probesum: mmap: %s\n", strerror(errno));
			return 1;
		}
		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t w;
			memcpy(&w, m + i, 8);
			s += word_hash(start + i, w);
		}
	} else if (argc == 5 && !strcmp(argv[1], "touch")) {
		uint64_t start = num(argv[2]) * MIB, len = num(argv[3]) * MIB,
			 seedk = num(argv[4]) * K2;
		for (uint64_t a = start; a < start + len; a += 8)
			s += word_hash(a, pattern(seedk, a));
	} else if (argc == 5 && !strcmp(argv[1], "scatter")) {
		uint64_t start = num(argv[2]) * MIB, len = num(argv[3]) * MIB,
			 seedk = num(argv[4]) * K2;
		for (uint64_t a = start; a < start + len; a += 4096)
			s += word_hash(a, pattern(seedk, a));
	} else if (argc == 4 && !strcmp(argv[1], "compute")) {
		uint64_t n = num(argv[2]), x = 0x243F6A8885A308D3ULL ^ num(argv[3]);
		for (uint64_t i = 0; i < n; i++)
			x = (x ^ (x >> 29)) * K1 + i;
		s = x;
	} else {
		fprintf(stderr, "usage: probesum sum FILE FILE_OFFSET START_MIB LEN_MIB\n"
				"       probesum touch START_MIB LEN_MIB SEED\n"
				"       probesum scatter START_MIB LEN_MIB SEED\n"
				"       probesum compute N CPU\n");
		return 2;
	}
	printf("0x%016" PRIx64 "\n", s);
	return 0;
}
