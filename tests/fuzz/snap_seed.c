/* Writes seed snapshots for the reader fuzzer: every section kind, small enough for
 * -max_len (no in-file memory: that starts at 2 MiB). usage: snap-seed DIR */
#include <stdio.h>
#include <string.h>

#include "restore/snap_kvm.h"

static struct snap_vcpu_state v;

int main(int argc, char **argv)
{
	char path[4096];
	struct snap_writer *w;
	struct snap_sec *s;
	struct snap_vm_state vm = {0};
	struct snap_machine m = {.mem_size = 1 << 20, .nr_vcpus = 1, .nr_regions = 1};
	struct kvm_cpuid_entry2 c[3] = {{.function = 1, .ecx = 1u << 26},
					{.function = 7, .flags = 1}};
	struct snap_device_place place = {0xd0000000, 0x1000, 5};
	uint64_t ws[] = {1, 2, 3};
	if (argc != 2)
		return 2;
	m.regions[0].size = 1 << 20;
	v.regs.rip = 0x100000;
	v.nmsrs = 2;
	v.msrs[0].index = 0x10;
	v.xcrs.nr_xcrs = 1;
	snprintf(path, sizeof(path), "%s/seed-state.snap", argv[1]);
	if (snap_writer_create(path, NULL, &w))
		return 1;
	snap_put_machine(w, &m);
	snap_put_cpuid(w, c, 3);
	snap_put_vcpu(w, 0, &v);
	snap_put_vm(w, &vm);
	snap_device_begin(w, "blk0", "virtio-blk", 1, 0, &place, &s);
	snap_put_u64(s, SNAP_DEV_OWN, 7);
	snap_put_config(w, "{\"a\":1}", 7);
	snap_put_workingset(w, ws, 3);
	if (snap_writer_commit(w, NULL))
		return 1;
	/* a working-set side file, as uffd/wsfile.c writes it */
	snprintf(path, sizeof(path), "%s/seed-wsfile.snap", argv[1]);
	if (snap_writer_create(path, NULL, &w))
		return 1;
	snap_put_workingset(w, ws, 3);
	if (snap_writer_section(w, "base", 1, 0, 0, &s))
		return 1;
	snap_put_bytes(s, 1, "0123456789abcdef", 16);
	snap_put_str(s, 2, "seed-state.snap");
	if (snap_writer_commit(w, NULL))
		return 1;
	/* external memory: the snapshot file is small and has the memory sections */
	static char mem[64 << 10];
	char mpath[4096];
	memset(mem + 8192, 0x5a, 4096);
	snprintf(path, sizeof(path), "%s/seed-extmem.snap", argv[1]);
	snprintf(mpath, sizeof(mpath), "%s/seed-extmem.mem", argv[1]);
	struct snap_writer_opts o = {.mem_file_path = mpath};
	if (snap_writer_create(path, &o, &w))
		return 1;
	/* a complete snapshot (what thaw-snap verify passes), memory beside it */
	m.mem_size = sizeof(mem);
	m.regions[0].size = sizeof(mem);
	snap_put_machine(w, &m);
	snap_put_cpuid(w, c, 3);
	snap_put_vcpu(w, 0, &v);
	snap_put_vm(w, &vm);
	snap_device_begin(w, "virtio0", "virtio-blk", 1, 0, &place, &s);
	snap_put_u64(s, SNAP_DEV_TRANSPORT, 0xf);
	snap_put_config(w, "{\"a\":1}", 7);
	snap_put_workingset(w, ws, 3);
	snap_writer_set_memory(w, mem, sizeof(mem));
	return snap_writer_commit(w, NULL) ? 1 : 0;
}
