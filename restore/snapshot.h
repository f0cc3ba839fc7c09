/* thaw's snapshot file: the public interface of restore/ (the container format).
 *
 * One self-describing file: a 4 KiB header, a section table, state sections made of
 * tagged fields, and guest memory last, aligned to 2 MiB so the VMM can mmap it straight
 * from the file (or kept in a separate raw file). docs/snapshot-format.md is the byte-level
 * specification; this header is the C interface to the container: header, table, field
 * records, checksums, memory, merge and the generic sections. It knows nothing of KVM: the
 * KVM x86 state schema (machine, cpuid, vcpu.N, irqchip, pit, clock) is restore/snap_kvm.h,
 * and the CPU compatibility policy is vmm_cpu_compat_check (vmm/vmm.h).
 *
 * Save (VMM, VM paused; the machine, cpuid, vcpu and vm calls are snap_kvm.h's):
 *   snap_writer_create(path, &opts, &w)
 *   snap_put_machine(w, &machine); snap_put_cpuid(w, entries, n);
 *   snap_put_vcpu(w, i, &vcpu[i]) for each vCPU; snap_put_vm(w, &vm);
 *   per device: snap_device_begin(w, id, kind, version, &place, &sec) + snap_put_*(sec, ...)
 *   snap_put_config(w, json_text, len);
 *   snap_writer_set_memory(w, host_ptr, size)      (opts.mem_file_path: separate file)
 *   [diff: snap_writer_set_diff(w, base_snap, base_path, dirty_bitmap, npages)]
 *   snap_writer_commit(w, &stats) -> file appears atomically; or snap_writer_abort(w)
 *   (memory is read during commit: keep the VM paused until commit returns)
 *
 * Restore (hot path, no memory is read; machine, cpuid, vcpu, vm: snap_kvm.h):
 *   [at process start: snap_warm_up(), or snap_open of a snapshot named in advance]
 *   snap_open(path, &s, err, sizeof(err))            one fstat + one pread, checksums
 *   snap_get_machine(s, &machine); snap_get_cpuid(s, entries, cap, &n, ...)
 *   vmm_cpu_compat_check(snap_host_facts(s), entries, n, NULL, supported, nsup, ...)
 *   snap_memory(s, &loc); snap_memory_open(s, &fd, ...);
 *       mmap(fd, loc.offset, loc.size, MAP_PRIVATE)
 *   snap_get_vcpu(s, i, &vcpu, ...); snap_get_vm(s, &vm, ...);
 *   devices: snap_section_find(s, "device.<id>") + snap_device_get_place + snap_get_*
 *   snap_close(s)   (after mmap; the mapping stays valid)
 *
 * All functions return 0 or -errno unless stated. Nothing here needs /dev/kvm.
 */
#ifndef THAW_SNAPSHOT_H
#define THAW_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- format constants */

#define SNAP_MAGIC	  "THAWSNAP" /* 8 bytes, no NUL in the file */
#define SNAP_FORMAT_MAJOR 1
#define SNAP_FORMAT_MINOR 0
#define SNAP_HEADER_SIZE  4096u
#define SNAP_TABLE_ENTRY  64u	      /* bytes per section table entry */
#define SNAP_NAME_MAX	  32u	      /* name field incl. NUL padding: names are 1..31 */
#define SNAP_MAX_SECTIONS 1024u	      /* a reader refuses more */
#define SNAP_MAX_STATE	  (64u << 20) /* cap on the header+table+state area */
#define SNAP_MEM_ALIGN	  (2u << 20)  /* memory offset alignment in the file */
#define SNAP_MEM_CHUNK	  (2u << 20)  /* memory checksum chunk */
#define SNAP_PAGE_SIZE	  4096u

/* Header flags. Bits 0..15 are incompatible: a reader refuses a file with one it does not
 * know. Bits 16..31 are compatible: unknown ones are ignored. */
#define SNAP_HDR_MEM_EXTERNAL  (1u << 0) /* memory lives in a separate raw file */
#define SNAP_HDR_DIFF	       (1u << 1) /* a diff snapshot: needs its base (merge only) */
#define SNAP_HDR_INCOMPAT_MASK 0xffffu
#define SNAP_HDR_KNOWN	       (SNAP_HDR_MEM_EXTERNAL | SNAP_HDR_DIFF)

/* Section flags. */
#define SNAP_SEC_REQUIRED (1u << 0) /* a reader that does not know it must refuse the file */
#define SNAP_SEC_RAW	  (1u << 1) /* not tagged fields (only `memory`) */
#define SNAP_SEC_BULK	  (1u << 2) /* outside the state area; checksummed by memory.sums */

/* Field types. */
enum snap_type {
	SNAP_T_U64 = 1,	  /* 8 bytes little endian */
	SNAP_T_BYTES = 2, /* opaque bytes */
	SNAP_T_STR = 3,	  /* UTF-8 text, no NUL inside, not NUL terminated */
	SNAP_T_U64A = 4,  /* array of u64, length a multiple of 8 */
};

/* "u64", "bytes", "string", "u64[]" (as docs/snapshot-format.md and inspect name them),
 * or "unknown". */
const char *snap_type_name(uint16_t type);

/* ---------------------------------------------------------------- checksums */

/* CRC32C (Castagnoli, reflected poly 0x82F63B78, init 0xFFFFFFFF, final xor 0xFFFFFFFF):
 * snap_crc32c(0, "123456789", 9) == 0xE3069283. Chainable: pass the previous result as
 * `crc` to continue over more bytes. Uses the SSE4.2 instruction when present. */
uint32_t snap_crc32c(uint32_t crc, const void *buf, size_t len);
/* The first call builds a 4 KiB table (~25 us here, mostly first-touch faults): a VMM that
 * prepares ahead calls snap_crc32c(0, NULL, 0) then, so snap_open does not pay it. */
/* Same result as snap_crc32c(crc, zeros, n) for n zero bytes, in O(log n) without
 * touching memory. */
uint32_t snap_crc32c_zeros(uint32_t crc, uint64_t n);

/* ---------------------------------------------------------------- host facts */

struct snap_host_facts {
	char vendor[13]; /* CPUID leaf 0: "GenuineIntel", "AuthenticAMD", ... */
	uint32_t family; /* display family (base + extended) */
	uint32_t model;	 /* display model (with extended model) */
	uint32_t stepping;
	uint32_t cpuid_digest; /* CRC32C over the host's CPUID leaves, see the spec */
	char kernel[65];       /* uname -r */
};

/* Fills `f` from the cpuid instruction and uname(2). About 35 CPUID instructions: each
 * traps to the hypervisor in a VM (~175 us in all under PVM): keep it off restore paths. */
void snap_host_facts_current(struct snap_host_facts *f);

/* ---------------------------------------------------------------- building sections */

/* A growable buffer of tagged field records. Put functions never fail on their own
 * account: on error (allocation, too large, bad argument) the builder records the first
 * error in `err` and ignores later puts, so callers check once (snap_writer_commit
 * refuses a writer with a failed section). Usable stand-alone (zero-initialise, then
 * snap_sec_release) for encoding without a file. */
struct snap_sec {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err;
};

void snap_sec_release(struct snap_sec *sec);
int snap_put_u64(struct snap_sec *sec, uint16_t tag, uint64_t v);
int snap_put_bytes(struct snap_sec *sec, uint16_t tag, const void *p, size_t len);
/* `s` is NUL-terminated; stored without the NUL. */
int snap_put_str(struct snap_sec *sec, uint16_t tag, const char *s);
int snap_put_strn(struct snap_sec *sec, uint16_t tag, const char *s, size_t len);
int snap_put_u64a(struct snap_sec *sec, uint16_t tag, const uint64_t *v, size_t n);

/* ---------------------------------------------------------------- the writer */

struct snap_writer;
struct snap;

struct snap_writer_opts {
	/* Guest memory goes to this separate raw file instead of the snapshot (NULL: inside).
	 * It must be another file in the snapshot's own directory (snap_writer_create
	 * refuses anything else with -EINVAL): the snapshot records its name only, and
	 * readers look for it beside the snapshot. Appears atomically too, before the
	 * snapshot. */
	const char *mem_file_path;
	/* Skip fsync of file and directory (tests and benchmarks only: not crash safe). */
	bool no_fsync;
	/* Write through a named temporary even where O_TMPFILE works (tests of the
	 * fallback only). */
	bool named_temp;
	/* Compute the memory checksums on a helper thread while the calling thread writes
	 * (commit creates and joins it). Off by default: a seccomp filter on the caller's
	 * thread must allow clone for this. */
	bool checksum_thread;
	/* Permissions of the new file(s); 0 means 0600 (guest memory may hold secrets).
	 * Clones running under another uid (the jailer) need group or other read. */
	unsigned mode;
	/* Host facts to record; NULL: snap_host_facts_current(). */
	const struct snap_host_facts *facts;
};

/* Starts a snapshot that will appear as `final_path`. The file is written unnamed
 * (O_TMPFILE in the target directory) and linked into place at commit, so a crash or
 * SIGKILL at any point leaves the old file (or none) and nothing else. Where O_TMPFILE
 * cannot be used (file system without it; neither CAP_DAC_READ_SEARCH for linkat's
 * AT_EMPTY_PATH nor /proc for /proc/self/fd), it writes `.<name>.tmp-XXXXXX` beside the
 * target instead and first removes such files a killed create of the same target left.
 * Syscalls used: openat (O_TMPFILE, O_PATH), linkat, rename, unlink, fstat; the
 * fallback also reads the directory (getdents64). `opts` may be NULL. */
int snap_writer_create(const char *final_path, const struct snap_writer_opts *opts,
		       struct snap_writer **out);

/* Adds a state section and returns its builder (owned by the writer, valid until
 * commit/abort). `name`: 1..31 chars of [a-z0-9._-], unique in the file (-EEXIST).
 * `flags`: SNAP_SEC_REQUIRED or 0. Section names `memory*` are reserved to the writer. */
int snap_writer_section(struct snap_writer *w, const char *name, uint16_t ver_major,
			uint16_t ver_minor, uint32_t flags, struct snap_sec **sec);

/* Declares guest memory: `len` bytes at `mem` (a non-zero multiple of 4 KiB; a snapshot
 * without memory simply does not call this). Nothing is copied
 * now: the memory is read during snap_writer_commit, so it must stay valid and unchanged
 * (VM paused) until then. All-zero pages become holes; a `memory.zero` bitmap and the
 * `memory.sums` chunk checksums are added. */
int snap_writer_set_memory(struct snap_writer *w, const void *mem, uint64_t len);

/* Writes everything (memory first, then header, table and state in one write), fsyncs,
 * renames over `final_path`, fsyncs the directory, and frees `w` whatever the outcome.
 * On any error (a section's builder error, ENOSPC, EFBIG, EIO...) the temporary file is
 * unlinked and `final_path` is left untouched. `stats` (may be NULL) gets timings. */
struct snap_write_stats {
	uint64_t mem_ns;     /* scanning, checksumming and writing memory */
	uint64_t state_ns;   /* writing header, table and state */
	uint64_t sync_ns;    /* fsync + rename + directory fsync */
	uint64_t zero_pages; /* pages left as holes */
	uint64_t data_pages; /* pages written */
};
int snap_writer_commit(struct snap_writer *w, struct snap_write_stats *stats);

/* Makes this a diff snapshot against `base` (open): only pages whose bit is set in `dirty`
 * (bit i % 8 of byte i / 8 = page i, the layout of KVM_GET_DIRTY_LOG) are written; the
 * others are holes meaning "as in the base". `npages` must equal the memory's page count
 * and the base's. `base_path` is recorded for people. Call before snap_writer_commit;
 * `dirty` must stay valid until then. A diff cannot be restored directly: snap_merge. */
int snap_writer_set_diff(struct snap_writer *w, const struct snap *base, const char *base_path,
			 const uint8_t *dirty, uint64_t npages);

/* Unlinks the temporary file(s) and frees `w`. Safe on NULL. */
void snap_writer_abort(struct snap_writer *w);

/* ---------------------------------------------------------------- the reader */

struct snap;

/* One section as found in the table. `data` points into the snapshot's state buffer for
 * state sections (valid until snap_close) and is NULL for `memory` (SNAP_SEC_BULK). */
struct snap_section {
	char name[SNAP_NAME_MAX];
	uint16_t ver_major;
	uint16_t ver_minor;
	uint32_t flags;
	uint64_t offset;
	uint64_t size;
	uint32_t crc;
	const uint8_t *data;
};

/* Open flags. */
#define SNAP_OPEN_NO_SECTION_CRC (1u << 0) /* skip per-section CRC checks (verify tool) */
#define SNAP_OPEN_DIFF		 (1u << 1) /* accept a diff snapshot (merge, inspect) */

/* Opens and validates a snapshot (a diff snapshot is refused unless SNAP_OPEN_DIFF): magic, format
 * version, header flags, header and table checksums, reserved bytes and bits (zero in a file of a
 * minor this reader knows), every section's bounds (inside the file, in order, no overlap, no
 * overflow, no bytes between sections but zero padding, nothing after file_size), names and
 * flags (REQUIRED on the sections the format requires; RAW and BULK on `memory` only), every
 * state section's checksum and field framing (zero padding, no tag twice), the version of the
 * sections it interprets itself (memory, memory.file), and refuses unknown required sections.
 * docs/snapshot-format.md, "Rules a reader enforces", is the list. Reads header, table and state
 * with one pread (two if the state is larger than 64 KiB); never reads memory. On failure returns
 * -errno and writes a message that names the cause into `err` (may be NULL). *out is freed with
 * snap_close. */
int snap_open(const char *path, struct snap **out, char *err, size_t errlen);
int snap_open_flags(const char *path, unsigned flags, struct snap **out, char *err, size_t errlen);

/* Storage snap_open_in reuses: the state buffer and the snap of the last open. A VMM
 * keeps one for its life, reserved ahead, so a restore whose state area and section
 * count fit allocates nothing (it grows, once, for a larger file). One snapshot open
 * at a time per store: snap_close it before the next snap_open_in. Zero-initialise;
 * snap_store_free releases. */
struct snap_store {
	uint8_t *buf;
	size_t cap;
	struct snap *s;
	size_t nsecs;
};
/* Makes room for a state area of `state_bytes` and `sections` sections. 0 or -ENOMEM. */
int snap_store_reserve(struct snap_store *st, size_t state_bytes, size_t sections);
/* Between opens: gives the pages of the state buffer and the snap back to the kernel
 * (both are filled again by the next snap_open_in), keeping the reservation. */
void snap_store_trim(struct snap_store *st);
/* Before an open that must be quick: faults in the pages it writes first (the first
 * read of the state area, the section table). */
void snap_store_warm(struct snap_store *st);
void snap_store_free(struct snap_store *st);
/* snap_open_flags into `st` (NULL: allocate, as snap_open_flags does). */
int snap_open_in(struct snap_store *st, const char *path, unsigned flags, struct snap **out,
		 char *err, size_t errlen);
void snap_close(struct snap *s);

/* Format version, flags and host facts as recorded in the header. */
void snap_format_version(const struct snap *s, uint16_t *major, uint16_t *minor);
uint32_t snap_header_flags(const struct snap *s);
const struct snap_host_facts *snap_host_facts(const struct snap *s);
/* 16 random bytes identifying this snapshot (a diff names its base by it). */
const uint8_t *snap_id(const struct snap *s);

/* The version check every decoder of a section makes before reading a field. `major` is
 * the newest section major the decoder implements; it must decode every major from 1 up
 * to it (a decoder that drops an old major refuses that major itself). Returns 0 when
 * 1 <= sec->ver_major <= major (any minor), else -EPROTONOSUPPORT with a message naming
 * the section and both versions in `err` ("section 'device.virtio0' version 2.0 is newer
 * than this reader (1.x)"; major 0 is "older than any version this reader knows"). */
int snap_section_check_version(const struct snap_section *sec, unsigned major, char *err,
			       size_t errlen);

/* Framing of a tagged section (records exactly fill it, padding bytes zero, strings
 * without NUL) and no tag twice. snap_open runs it on every tagged state section, so
 * sections of an open snapshot need no second check; run it on a snap_section_view of
 * bytes that did not come through snap_open before decoding them. 0 or -EBADMSG with
 * the section, tag and offset named in `err`. */
int snap_section_check_fields(const struct snap_section *sec, char *err, size_t errlen);

/* Section lookup by exact name, or by index (0..count-1, table order). NULL if none. */
const struct snap_section *snap_section_find(const struct snap *s, const char *name);
size_t snap_section_count(const struct snap *s);
const struct snap_section *snap_section_at(const struct snap *s, size_t i);
/* The CRC check snap_open does for a state section, named in `err` on mismatch. */
int snap_section_verify(const struct snap_section *sec, char *err, size_t errlen);

/* Where guest memory is. In-file: `fd` is the snapshot's (owned by `s`; dup it to keep it
 * past snap_close) and `offset` is 2 MiB aligned. External: fd is -1 and `path` (owned
 * by `s`, for messages) is the memory file's name joined to the snapshot's directory;
 * open it with snap_memory_open, which looks it up beneath that directory without
 * following symlinks. size == 0: the snapshot has no memory. */
struct snap_memory_loc {
	int fd;
	uint64_t offset;
	uint64_t size;
	const char *path;
	bool external;
};
int snap_memory(const struct snap *s, struct snap_memory_loc *loc);
/* Opens the memory file read-only (external: the recorded name in the snapshot's
 * directory, opened O_NOFOLLOW|O_NONBLOCK, -ELOOP for a symlink) or dups the snapshot fd
 * (in-file), and checks an external file is a regular file of exactly the memory size
 * (a short file would SIGBUS the VMM). The caller closes *fd. */
int snap_memory_open(const struct snap *s, int *fd, char *err, size_t errlen);

/* Optional sections for the uffd backend. Pointers into the state buffer (8-byte aligned,
 * valid until snap_close). -ENOENT when the snapshot has none, -EPROTONOSUPPORT when its
 * section major is newer than this reader's (use it as absent), -EBADMSG when it is
 * incomplete or does not match the memory.
 * Zero bitmap: bit (i % 8) of byte i / 8 set = page i of memory is all zeros. */
int snap_memory_zero_bitmap(const struct snap *s, const uint8_t **bits, uint64_t *npages);
/* Working set: page numbers are checked against the snapshot's memory (-EBADMSG when one
 * lies outside); in a side file without memory the caller checks them against the base. */
int snap_workingset(const struct snap *s, const uint64_t **pages, size_t *n);

/* Offline check of the memory chunk checksums (reads all memory: never on the restore
 * path). Calls `report` for each bad chunk (may be NULL); returns 0 if all good,
 * -EBADMSG if any chunk (or a page the zero bitmap calls zero) is bad, or -errno. */
typedef void (*snap_report_fn)(void *opaque, const char *msg);
int snap_memory_verify(const struct snap *s, snap_report_fn report, void *opaque,
		       uint64_t *chunks_checked);

/* ---------------------------------------------------------------- offline checking */

/* A per-section check for snap_check: `check` runs on every section whose name starts
 * with `prefix` ("device.virtio" matches "device.virtio0"). It decodes the section as
 * the restore path would, refusing what the restore path refuses, and returns 0 or
 * -errno with a message naming the section in `err`. */
struct snap_checker {
	const char *prefix;
	int (*check)(const struct snap *s, const struct snap_section *sec, char *err,
		     size_t errlen);
};

/* Checks an open snapshot as a restore would, without KVM and without reading memory:
 * decodes every section restore/ defines (machine layout, cpuid, every vcpu, irqchip,
 * pit, clock, config, memory.*, workingset, base, device placement) and the rules
 * between sections (required sections present, one vcpu section per machine.nr_vcpus
 * and no more, memory size equal to machine.mem_size). A working-set side file (no
 * `machine`, no memory, a `workingset`) is checked as one. For each section the
 * built-in checker of the longest matching prefix runs, then every checker of `extra`
 * whose prefix matches (the VMM's device decoders, a layout check of its own). Calls
 * `report` once per problem (may be NULL). Returns 0 when all is good, -EBADMSG
 * otherwise; *sections_checked (may be NULL) counts the sections a checker decoded. */
int snap_check(const struct snap *s, const struct snap_checker *extra, size_t nextra,
	       snap_report_fn report, void *opaque, size_t *sections_checked);

/* Writes OUT = BASE with DIFF applied: DIFF's state sections, memory pages from DIFF where
 * its `base` bitmap says so and from BASE elsewhere; new memory checksums and zero
 * bitmap. Refuses a DIFF taken against another snapshot than BASE (ids differ). OUT
 * appears atomically. Offline tool: reads all memory. */
int snap_merge(const char *base_path, const char *diff_path, const char *out_path, char *err,
	       size_t errlen);

/* ---------------------------------------------------------------- reading fields */

struct snap_field {
	uint16_t tag;
	uint16_t type;
	uint32_t len;
	const uint8_t *val; /* 8-byte aligned inside the state buffer */
};

/* Iterates the fields of a state section: start with *pos = 0; returns 1 and fills `f`,
 * 0 at the end, -EBADMSG on a malformed record (snap_open already refused those). */
int snap_field_next(const struct snap_section *sec, size_t *pos, struct snap_field *f);
/* The field with `tag` (snap_open refuses a tag twice, so "first" is "only"): -ENOENT if
 * absent, -EPROTO if it has another type. */
int snap_get_u64(const struct snap_section *sec, uint16_t tag, uint64_t *v);
int snap_get_bytes(const struct snap_section *sec, uint16_t tag, const void **p, size_t *len);
/* A u64 field decoded into a narrower destination: as snap_get_u64, plus -ERANGE when
 * the value is above `max`, with a message naming section, tag, value and limit in `err`
 * (-EPROTO also gets a message; -ENOENT, a missing field, does not: callers default it).
 * Use it for every u64 that does not go into a uint64_t unchanged (a device status of
 * 1<<32 must be refused, not stored as 0). */
int snap_get_u64_max(const struct snap_section *sec, uint16_t tag, uint64_t max, uint64_t *v,
		     char *err, size_t errlen);
/* Same, with `def` stored in *v and 0 returned when the field is missing (the format's
 * default for a missing field). */
int snap_get_u64_def(const struct snap_section *sec, uint16_t tag, uint64_t max, uint64_t def,
		     uint64_t *v, char *err, size_t errlen);
/* Pointer + length (not NUL terminated). */
int snap_get_str(const struct snap_section *sec, uint16_t tag, const char **p, size_t *len);
/* Copies into `buf` with a NUL; -ENAMETOOLONG if it does not fit. */
int snap_get_strbuf(const struct snap_section *sec, uint16_t tag, char *buf, size_t size);
int snap_get_u64a(const struct snap_section *sec, uint16_t tag, const uint64_t **v, size_t *n);
/* Section view over a buffer that did not come from a file (tests, codecs), version 1.0.
 * Nothing is checked: run snap_section_check_fields on untrusted bytes first. */
void snap_section_view(struct snap_section *sec, const char *name, const void *data, size_t len);

/* ---------------------------------------------------------------- generic sections */

/* The VM configuration as JSON text (checked to parse); optional section `config`. */
int snap_put_config(struct snap_writer *w, const char *json, size_t len);
/* The ordered list of page numbers touched first after restore (optional `workingset`). */
int snap_put_workingset(struct snap_writer *w, const uint64_t *pages, size_t n);

/* Takes the first-use costs of the reader (checksum table, code and heap page faults:
 * ~0.3-0.5 ms in a fresh process on this PVM host) off the restore path. Call once at
 * process start; safe to call again. Opening the snapshot itself ahead of time, when
 * its name is known, is better still. */
void snap_warm_up(void);

/* Pointer + length into the state buffer; -ENOENT if the snapshot has no config. */
int snap_get_config(const struct snap *s, const char **json, size_t *len);

/* ---------------------------------------------------------------- devices
 *
 * A device saves itself into section `device.<id>` (id: 1..24 chars of [a-z0-9_-]) with
 * its own version, using the field API. Convention (see the spec): tags 1..0xff are the
 * common header (kind, placement), 0x100..0x1ff the transport layer (virtio-mmio
 * registers), 0x200..0x2ff the generic virtio layer (features, queues), 0x1000.. the
 * device's own state. A device's decoder calls snap_section_check_version(sec, its
 * newest major, ...) first, reads every u64 that goes into a narrower field with
 * snap_get_u64_max / snap_get_u64_def, and can rely on snap_open having refused a tag
 * twice. docs/snapshot-format.md 6.7 specifies thaw's devices tag by tag. */
#define SNAP_DEV_KIND	   1 /* string: "virtio-blk", "virtio-net", "virtio-vsock", "serial" */
#define SNAP_DEV_MMIO_BASE 2 /* u64 */
#define SNAP_DEV_MMIO_SIZE 3 /* u64 */
#define SNAP_DEV_IRQ	   4 /* u64 (GSI) */
#define SNAP_DEV_TRANSPORT 0x100
#define SNAP_DEV_VIRTIO	   0x200
#define SNAP_DEV_OWN	   0x1000

struct snap_device_place {
	uint64_t mmio_base;
	uint64_t mmio_size;
	uint32_t irq;
};

/* Adds required section `device.<id>` with kind and placement already put. */
int snap_device_begin(struct snap_writer *w, const char *id, const char *kind, uint16_t ver_major,
		      uint16_t ver_minor, const struct snap_device_place *place,
		      struct snap_sec **sec);
/* Reads kind (into `kind`, NUL terminated) and placement; -ENOENT if any is missing. */
int snap_device_get_place(const struct snap_section *sec, char *kind, size_t kind_size,
			  struct snap_device_place *place);

/* ---------------------------------------------------------------- field names (tools) */

/* Name of a field tag in a known section kind ("vcpu.0" -> "rax" for tag 1), or NULL.
 * Used by thaw-snap inspect; the tag tables are the specification's. */
const char *snap_field_name(const char *section, uint16_t tag);

#endif
