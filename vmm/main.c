/* thaw: one process per microVM. Parses the command line once into typed
 * configurations, builds or restores the VM, runs one thread per vCPU and an epoll main
 * loop for the console, signals, snapshots and the API. */
#include "vmm/vmm.h"
#include "restore/snapshot.h"
#include "api/api.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: thaw --api-sock PATH [--id ID] [--prepare mem-mib=M,vcpus=N]\n"
	    "            (configure, boot or load a snapshot over Firecracker's API)\n"
	    "            [--config-file FILE] [--no-api] (Firecracker's JSON configuration:\n"
	    "            boot from it; --no-api serves no socket and needs it)\n"
	    "            [--log-path FILE] [--level Error|Warning|Info|Debug|Trace|Off]\n"
	    "            [--show-level] [--show-log-origin] [--module M] [--metrics-path FILE]\n"
	    "            [--boot-timer] [--start-time-us US] [--start-time-cpu-us US]\n"
	    "            [--parent-cpu-time-us US] [--version] (Firecracker's flags)\n"
	    "            [--metadata FILE] [--mmds-size-limit BYTES] (MMDS's first contents\n"
	    "            and its size limit, docs/mmds.md)\n"
	    "       thaw --kernel FILE [--initrd FILE] [--cmdline STR] [--vcpus N]\n"
	    "            [--mem-mib M] [--cpu-template host|pvm] [--boot pvh|linux64]\n"
	    "            [--console-out FILE [--console-out-max BYTES]]\n"
	    "            [--console-in stdin|none|SOCKET]\n"
	    "            [--drive id=NAME,path=FILE,ro=on|off[,root=on]]...\n"
	    "            [--net id=NAME,tap=TAP[,mac=MAC]]... [--vsock cid=N,uds=PATH]\n"
	    "            [--rng] [--no-acpi]\n"
	    "       thaw --restore SNAPSHOT [--prepare mem-mib=M,vcpus=N] [--paused]\n"
	    "            [--clock-realtime] [--keep-generation]\n"
	    "            [--mem-backend file|uffd|uffd-ext]\n"
	    "            [--uffd-sock PATH] [--uffd-strategy S] [--uffd-record FILE]\n"
	    "            [--drive id=NAME,path=FILE[,ro=on|off][,overlay-of=BASE]]...\n"
	    "            [--net id=NAME,tap=TAP]... [--vsock uds=PATH] (the host side of the\n"
	    "            snapshot's devices; overlay-of: FILE is made a new qcow2 overlay of "
	    "BASE)\n"
	    "            [--snapshot-paths DIR] (or: the snapshot's own paths, inside DIR)\n"
	    "            [--uffd-stall-timeout-ms MS]\n"
	    "            [console options]\n"
	    "  snapshots: [--snapshot PATH [--snapshot-mem-file PATH]] [--snapshot-after STR]\n"
	    "             [--snapshot-then resume|pause|exit]: SIGUSR1, or the first console\n"
	    "             line containing STR, writes a snapshot to PATH; SIGUSR2 resumes a\n"
	    "             paused VM; [--snapshot-disks none|external|internal]: external\n"
	    "             makes each qcow2 drive's image the snapshot's base, the VM going on\n"
	    "             on a new overlay; internal snapshots each image (docs/disk.md)\n"
	    "            [--timing] [--log-level error|warn|info|debug]\n"
	    "            [--no-seccomp] (debugging only: no seccomp filters)\n"
	    "  --uffd-stall-timeout-ms MS: with memory through userfaultfd (also when loaded\n"
	    "             over the API), a vCPU left waiting this long for a guest page the\n"
	    "             handler does not serve (handler stopped or deadlocked) ends the VM\n"
	    "             with status 2; 0 turns the check off (default %u)\n"
	    "  A restored VM's devices are the snapshot's; thaw never opens a host path or tap\n"
	    "  a snapshot names unless --snapshot-paths allows it (docs/snapshot-format.md).\n"
	    "\n"
	    "exit status: 0 guest reset/halted, 1 usage, 2 host failure, 3 guest panic,\n"
	    "             4 triple fault, 5 emulation failure, 6 restore failure\n",
	    VMM_UFFD_STALL_DEFAULT_MS);
}

/* What the command line asks for. Device specs are kept as given until every option is
 * read: with --restore they are overrides of the snapshot's devices, else devices. */
struct cli {
	struct vm_config cfg;
	struct vm_restore_opts ro;
	struct vm_snapshot_opts snap; /* what SIGUSR1 or --snapshot-after writes */
	const char *snapshot_then;    /* "resume", "pause" or "exit" */
	const char *snapshot_after;
	const char *drive_specs[VMM_MAX_DRIVES], *net_specs[VMM_MAX_NETS], *vsock_spec;
	unsigned nr_drive_specs, nr_net_specs;
	bool start_paused, timing, no_seccomp, help;
	const char *api_sock, *api_id;
	/* Firecracker's process flags (docs/api.md, "Process flags") */
	struct vm_control_opts fc;
	bool no_api, version, boot_timer;
	bool has_start_time, has_start_cpu;
	uint64_t start_time_us, start_cpu_us, parent_cpu_us;
	unsigned long long prep_mib;
	unsigned prep_vcpus;
	unsigned stall_ms;
	uint64_t console_out_max;
};

/* The process: one VM and what the main loop's callbacks need. */
struct thaw {
	struct vm vm;
	struct cli cli;
};

/* ---------------------------------------------------------------- options */

/* Microseconds from t0 to t, 0 when t was never reached. */
static unsigned long long since(uint64_t t, uint64_t t0)
{
	return t ? (unsigned long long)(t - t0) / 1000 : 0;
}

static int parse_uint(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max) {
		log_err("%s: '%s' is not a number between 0 and %llu", opt, s,
			(unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

/* One of `names` (NULL-terminated): its index, or -1 after naming the choices. */
static int parse_choice(const char *opt, const char *s, const char *const *names)
{
	char list[128] = "";
	size_t k = 0;

	for (int i = 0; names[i]; i++) {
		if (strcmp(s, names[i]) == 0)
			return i;
		k += (size_t)snprintf(list + k, sizeof(list) - k, "%s%s", i ? ", " : "", names[i]);
		k = k < sizeof(list) ? k : sizeof(list) - 1;
	}
	log_err("%s: '%s' is not one of %s", opt, s, list);
	return -1;
}

static int add_spec(const char *opt, const char **arr, unsigned *nr, unsigned max, const char *s)
{
	if (*nr == max) {
		log_err("%s: at most %u allowed", opt, max);
		return -1;
	}
	arr[(*nr)++] = s;
	return 0;
}

/* Each option's effect on `struct cli`; -1 is a usage error (already logged). */
typedef int (*opt_fn)(struct cli *c, const char *arg);

static int o_kernel(struct cli *c, const char *a)
{
	return c->cfg.kernel = a, 0;
}
static int o_initrd(struct cli *c, const char *a)
{
	return c->cfg.initrd = a, 0;
}
static int o_cmdline(struct cli *c, const char *a)
{
	return c->cfg.cmdline = a, 0;
}
static int o_cpu_template(struct cli *c, const char *a)
{
	return c->cfg.cpu_template = a, 0;
}
static int o_console_out(struct cli *c, const char *a)
{
	return c->cfg.console_out = a, 0;
}
static int o_console_in(struct cli *c, const char *a)
{
	return c->cfg.console_in = a, 0;
}
static int o_timing(struct cli *c, const char *a)
{
	return c->timing = true, 0;
}
static int o_keep_generation(struct cli *c, const char *a)
{
	return c->ro.keep_generation = true, 0;
}

static int o_no_acpi(struct cli *c, const char *a)
{
	return c->cfg.no_acpi = true, 0;
}

static int o_rng(struct cli *c, const char *a)
{
	return c->cfg.rng = true, 0;
}
static int o_restore(struct cli *c, const char *a)
{
	return c->ro.path = a, 0;
}
static int o_api_sock(struct cli *c, const char *a)
{
	return c->api_sock = a, 0;
}
/* Firecracker's instance id rule (its jailer's too): 1 to 64 letters, digits, hyphens. */
static int o_id(struct cli *c, const char *a)
{
	size_t n = strlen(a);

	if (n == 0 || n > 64 ||
	    strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789-") != n) {
		log_err("--id '%s': 1 to 64 letters, digits and hyphens", a);
		return -1;
	}
	return c->api_id = a, 0;
}
static int o_uffd_sock(struct cli *c, const char *a)
{
	return c->ro.uffd_sock = a, 0;
}
static int o_uffd_strategy(struct cli *c, const char *a)
{
	return c->ro.uffd_strategy = a, 0;
}
static int o_uffd_record(struct cli *c, const char *a)
{
	return c->ro.uffd_record = a, 0;
}
static int o_paused(struct cli *c, const char *a)
{
	return c->start_paused = true, 0;
}
static int o_clock_realtime(struct cli *c, const char *a)
{
	return c->ro.clock_realtime = true, 0;
}
static int o_snapshot_paths(struct cli *c, const char *a)
{
	return c->ro.snapshot_paths = a, 0;
}
static int o_snapshot(struct cli *c, const char *a)
{
	return c->snap.path = a, 0;
}
static int o_snapshot_mem(struct cli *c, const char *a)
{
	return c->snap.mem_file_path = a, 0;
}
static int o_snapshot_after(struct cli *c, const char *a)
{
	return c->snapshot_after = a, 0;
}
static int o_snapshot_no_fsync(struct cli *c, const char *a)
{
	return c->snap.no_fsync = true, 0;
}
static int o_snapshot_disks(struct cli *c, const char *a)
{
	static const char *const names[] = {"none", "external", "internal", NULL};
	int i = parse_choice("--snapshot-disks", a, names);

	if (i < 0)
		return -1;
	c->snap.disk_checkpoint = (enum vmm_disk_checkpoint)i;
	return 0;
}
static int o_no_seccomp(struct cli *c, const char *a)
{
	return c->no_seccomp = true, 0;
}
static int o_help(struct cli *c, const char *a)
{
	return c->help = true, 0;
}
static int o_vsock(struct cli *c, const char *a)
{
	return c->vsock_spec = a, 0;
}

/* ---- Firecracker's flags ---- */
static int o_config_file(struct cli *c, const char *a)
{
	return c->fc.config_file = a, 0;
}
static int o_no_api(struct cli *c, const char *a)
{
	return c->no_api = true, 0;
}
static int o_log_path(struct cli *c, const char *a)
{
	return c->fc.log_path = a, 0;
}
static int o_module(struct cli *c, const char *a)
{
	return c->fc.module = a, 0;
}
static int o_show_level(struct cli *c, const char *a)
{
	return c->fc.show_level = true, 0;
}
static int o_show_log_origin(struct cli *c, const char *a)
{
	return c->fc.show_log_origin = true, 0;
}
static int o_metrics_path(struct cli *c, const char *a)
{
	return c->fc.metrics_path = a, 0;
}
static int o_boot_timer(struct cli *c, const char *a)
{
	return c->boot_timer = true, 0;
}
static int o_version(struct cli *c, const char *a)
{
	return c->version = true, 0;
}

static int o_level(struct cli *c, const char *a)
{
	enum api_log_level l;

	if (api_log_level_parse(a, &l)) {
		log_err("--level: '%s' is not one of Error, Warning, Info, Debug, Trace, Off", a);
		return -1;
	}
	c->fc.log_level = (int)l;
	return 0;
}

static int o_start_time_us(struct cli *c, const char *a)
{
	c->has_start_time = true;
	return parse_uint("--start-time-us", a, UINT64_MAX, &c->start_time_us);
}

static int o_start_time_cpu_us(struct cli *c, const char *a)
{
	c->has_start_cpu = true;
	return parse_uint("--start-time-cpu-us", a, UINT64_MAX, &c->start_cpu_us);
}

static int o_parent_cpu_time_us(struct cli *c, const char *a)
{
	return parse_uint("--parent-cpu-time-us", a, UINT64_MAX, &c->parent_cpu_us);
}

/* Firecracker's flags thaw cannot honour: refused, naming why, rather than ignored. */
static int o_seccomp_filter(struct cli *c, const char *a)
{
	log_err("--seccomp-filter %s: thaw cannot honour a Firecracker seccomp filter file: its "
		"BPF programs are compiled for Firecracker's threads (vmm, api, vcpu) and "
		"syscalls, not thaw's. thaw installs its own per-thread allowlists "
		"(docs/jailer.md): leave the option out to have them, or give --no-seccomp",
		a);
	return -1;
}

static int o_metadata(struct cli *c, const char *a)
{
	return c->fc.metadata = a, 0;
}

static int o_mmds_size_limit(struct cli *c, const char *a)
{
	char *end;
	unsigned long long v = strtoull(a, &end, 10);

	if (!*a || *end || v == 0 || v > (64ull << 20)) {
		log_err("--mmds-size-limit %s: bytes, 1 to %llu", a, 64ull << 20);
		return -1;
	}
	c->fc.mmds_size_limit = (size_t)v;
	return 0;
}

static int o_enable_pci(struct cli *c, const char *a)
{
	log_err("--enable-pci: thaw offers no PCI: its devices are virtio-mmio");
	return -1;
}

static int o_http_api_max_payload_size(struct cli *c, const char *a)
{
	uint64_t v;

	if (parse_uint("--http-api-max-payload-size", a, UINT64_MAX, &v))
		return -1;
	if (v != API_MAX_BODY_BYTES) {
		log_err(
		    "--http-api-max-payload-size %s: thaw's API takes bodies of up to %d bytes, "
		    "fixed (larger ones are answered 413)",
		    a, API_MAX_BODY_BYTES);
		return -1;
	}
	return 0;
}

static int o_snapshot_format(struct cli *c, const char *a)
{
	log_err("--describe-snapshot / --snapshot-version: thaw's snapshots are its own format "
		"(docs/snapshot-format.md): `thaw-snap inspect FILE` describes one");
	return -1;
}

static int o_vcpus(struct cli *c, const char *a)
{
	uint64_t v;

	if (parse_uint("--vcpus", a, VMM_MAX_VCPUS * 16, &v))
		return -1;
	c->cfg.vcpus = (unsigned)v;
	return 0;
}

static int o_mem_mib(struct cli *c, const char *a)
{
	return parse_uint("--mem-mib", a, 1ull << 30, &c->cfg.mem_mib);
}

static int o_boot(struct cli *c, const char *a)
{
	static const char *const names[] = {"pvh", "linux64", NULL};
	int i = parse_choice("--boot", a, names);

	c->cfg.protocol = i == 0 ? VMM_BOOT_PVH : VMM_BOOT_LINUX64;
	return i < 0 ? -1 : 0;
}

static int o_log_level(struct cli *c, const char *a)
{
	return log_set_level_name("--log-level", a);
}

static int o_drive(struct cli *c, const char *a)
{
	return add_spec("--drive", c->drive_specs, &c->nr_drive_specs, VMM_MAX_DRIVES, a);
}

static int o_net(struct cli *c, const char *a)
{
	return add_spec("--net", c->net_specs, &c->nr_net_specs, VMM_MAX_NETS, a);
}

static int o_mem_backend(struct cli *c, const char *a)
{
	static const char *const names[] = {"file", "uffd", "uffd-ext", NULL};
	static const enum vm_mem_backend backends[] = {VM_MEM_FILE, VM_MEM_UFFD, VM_MEM_UFFD_EXT};
	int i = parse_choice("--mem-backend", a, names);

	if (i < 0)
		return -1;
	c->ro.backend = backends[i];
	return 0;
}

static int o_stall(struct cli *c, const char *a)
{
	uint64_t v;

	if (parse_uint("--uffd-stall-timeout-ms", a, VMM_UFFD_STALL_MAX_MS, &v))
		return -1;
	c->stall_ms = (unsigned)v;
	return 0;
}

static int o_console_out_max(struct cli *c, const char *a)
{
	return parse_uint("--console-out-max", a, UINT64_MAX, &c->console_out_max);
}

static int o_prepare(struct cli *c, const char *a)
{
	char end;

	if (sscanf(a, "mem-mib=%llu,vcpus=%u%c", &c->prep_mib, &c->prep_vcpus, &end) != 2 ||
	    c->prep_mib == 0 || c->prep_vcpus == 0) {
		log_err("--prepare: '%s' is not mem-mib=M,vcpus=N", a);
		return -1;
	}
	return 0;
}

static int o_snapshot_then(struct cli *c, const char *a)
{
	static const char *const names[] = {"resume", "pause", "exit", NULL};
	int i = parse_choice("--snapshot-then", a, names);

	c->snapshot_then = i < 0 ? NULL : names[i];
	return i < 0 ? -1 : 0;
}

static const struct opt {
	const char *name;
	int has_arg;
	opt_fn fn;
} options[] = {
    {"kernel", required_argument, o_kernel},
    {"initrd", required_argument, o_initrd},
    {"cmdline", required_argument, o_cmdline},
    {"vcpus", required_argument, o_vcpus},
    {"mem-mib", required_argument, o_mem_mib},
    {"cpu-template", required_argument, o_cpu_template},
    {"boot", required_argument, o_boot},
    {"console-out", required_argument, o_console_out},
    {"console-in", required_argument, o_console_in},
    {"console-out-max", required_argument, o_console_out_max},
    {"timing", no_argument, o_timing},
    {"log-level", required_argument, o_log_level},
    {"drive", required_argument, o_drive},
    {"net", required_argument, o_net},
    {"vsock", required_argument, o_vsock},
    {"rng", no_argument, o_rng},
    {"no-acpi", no_argument, o_no_acpi},
    {"restore", required_argument, o_restore},
    {"api-sock", required_argument, o_api_sock},
    {"id", required_argument, o_id},
    {"prepare", required_argument, o_prepare},
    {"mem-backend", required_argument, o_mem_backend},
    {"uffd-sock", required_argument, o_uffd_sock},
    {"uffd-strategy", required_argument, o_uffd_strategy},
    {"uffd-record", required_argument, o_uffd_record},
    {"uffd-stall-timeout-ms", required_argument, o_stall},
    {"paused", no_argument, o_paused},
    {"clock-realtime", no_argument, o_clock_realtime},
    {"keep-generation", no_argument, o_keep_generation},
    {"snapshot-paths", required_argument, o_snapshot_paths},
    {"snapshot", required_argument, o_snapshot},
    {"snapshot-mem-file", required_argument, o_snapshot_mem},
    {"snapshot-after", required_argument, o_snapshot_after},
    {"snapshot-then", required_argument, o_snapshot_then},
    {"snapshot-no-fsync", no_argument, o_snapshot_no_fsync},
    {"snapshot-disks", required_argument, o_snapshot_disks},
    {"no-seccomp", no_argument, o_no_seccomp},
    {"help", no_argument, o_help},
    {"config-file", required_argument, o_config_file},
    {"no-api", no_argument, o_no_api},
    {"log-path", required_argument, o_log_path},
    {"level", required_argument, o_level},
    {"module", required_argument, o_module},
    {"show-level", no_argument, o_show_level},
    {"show-log-origin", no_argument, o_show_log_origin},
    {"metrics-path", required_argument, o_metrics_path},
    {"boot-timer", no_argument, o_boot_timer},
    {"start-time-us", required_argument, o_start_time_us},
    {"start-time-cpu-us", required_argument, o_start_time_cpu_us},
    {"parent-cpu-time-us", required_argument, o_parent_cpu_time_us},
    {"version", no_argument, o_version},
    {"seccomp-filter", required_argument, o_seccomp_filter},
    {"metadata", required_argument, o_metadata},
    {"mmds-size-limit", required_argument, o_mmds_size_limit},
    {"enable-pci", no_argument, o_enable_pci},
    {"http-api-max-payload-size", required_argument, o_http_api_max_payload_size},
    {"describe-snapshot", required_argument, o_snapshot_format},
    {"snapshot-version", no_argument, o_snapshot_format},
};
#define NR_OPTIONS (sizeof(options) / sizeof(options[0]))

/* The device specs, as devices to boot with. */
static int boot_devices(struct cli *c)
{
	char err[256];
	unsigned given;

	for (unsigned i = 0; i < c->nr_drive_specs; i++) {
		struct vmm_drive_cfg *d = &c->cfg.drives[c->cfg.nr_drives++];

		if (vmm_parse_drive(c->drive_specs[i], NULL, d, &given, err, sizeof(err)))
			goto bad;
		if (!(given & VMM_KEY_PATH)) {
			log_err("--drive %s: needs path=FILE", c->drive_specs[i]);
			return -1;
		}
	}
	for (unsigned i = 0; i < c->nr_net_specs; i++) {
		struct vmm_net_cfg *n = &c->cfg.nets[c->cfg.nr_nets++];

		if (vmm_parse_net(c->net_specs[i], NULL, n, &given, err, sizeof(err)))
			goto bad;
		if (!(given & VMM_KEY_PATH)) {
			log_err("--net %s: needs tap=TAP", c->net_specs[i]);
			return -1;
		}
	}
	if (c->vsock_spec) {
		if (vmm_parse_vsock(c->vsock_spec, NULL, &c->cfg.vsock, &given, err, sizeof(err)))
			goto bad;
		if (given != (VMM_KEY_CID | VMM_KEY_PATH)) {
			log_err("--vsock %s: needs cid=N and uds=PATH", c->vsock_spec);
			return -1;
		}
	}
	return 0;
bad:
	log_err("%s", err);
	return -1;
}

/* The device specs, as overrides of a snapshot's devices: the id names the device, the
 * rest is its new host side. */
static int restore_overrides(struct cli *c)
{
	static const char *const drive_keys[] = {"id", "path", "ro", "overlay-of", NULL};
	static const char *const net_keys[] = {"id", "tap", NULL};
	static const char *const vsock_keys[] = {"uds", NULL};
	struct vm_restore_opts *ro = &c->ro;
	char err[256];
	unsigned given;

	for (unsigned i = 0; i < c->nr_drive_specs; i++) {
		if (vmm_parse_drive(c->drive_specs[i], drive_keys, &ro->drives[i], &given, err,
				    sizeof(err)))
			goto bad;
		if (!(given & VMM_KEY_PATH)) {
			log_err("--drive %s: with --restore it takes id=NAME,path=FILE[,ro=on|off]"
				"[,overlay-of=BASE] (the snapshot's drive and its new file, or a "
				"new qcow2 overlay made at FILE over BASE)",
				c->drive_specs[i]);
			return -1;
		}
		ro->drive_ro_given[i] = given & VMM_KEY_RO;
	}
	ro->nr_drives = c->nr_drive_specs;
	for (unsigned i = 0; i < c->nr_net_specs; i++) {
		if (vmm_parse_net(c->net_specs[i], net_keys, &ro->nets[i], &given, err,
				  sizeof(err)))
			goto bad;
		if (!(given & VMM_KEY_PATH)) {
			log_err("--net %s: with --restore it takes id=NAME,tap=TAP",
				c->net_specs[i]);
			return -1;
		}
	}
	ro->nr_nets = c->nr_net_specs;
	if (c->vsock_spec) {
		struct vmm_vsock_cfg v;

		if (vmm_parse_vsock(c->vsock_spec, vsock_keys, &v, &given, err, sizeof(err))) {
			log_err("%s (with --restore --vsock takes uds=PATH: the guest's CID is the "
				"snapshot's)",
				err);
			return -1;
		}
		memcpy(ro->vsock_uds, v.uds, sizeof(v.uds));
		ro->has_vsock = given & VMM_KEY_PATH;
	}
	if (c->cfg.rng) {
		log_err("--rng: a restored VM has the snapshot's devices; leave it out");
		return -1;
	}
	return 0;
bad:
	log_err("%s", err);
	return -1;
}

/* Reads argv into `c` and checks what goes together. 0, or a usage error logged. */
static int parse_cli(int argc, char **argv, struct cli *c)
{
	struct option longopts[NR_OPTIONS + 1];
	int k;

	for (unsigned i = 0; i < NR_OPTIONS; i++)
		longopts[i] = (struct option){options[i].name, options[i].has_arg, NULL, (int)i};
	longopts[NR_OPTIONS] = (struct option){NULL, 0, NULL, 0};
	while ((k = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (k == 'h') {
			c->help = true;
			continue;
		}
		if (k < 0 || k >= (int)NR_OPTIONS) {
			usage(stderr); /* getopt said what it did not understand */
			return -1;
		}
		if (options[k].fn(c, optarg))
			return -1;
	}
	if (c->help || c->version)
		return 0;
	if (optind != argc) {
		log_err("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (c->snapshot_after && !c->snap.path) {
		log_err("--snapshot-after needs --snapshot PATH");
		return -1;
	}
	if (c->ro.path && c->cfg.kernel) {
		log_err("--restore and --kernel exclude each other");
		return -1;
	}
	if (c->no_api && !c->fc.config_file) {
		log_err("--no-api needs --config-file FILE (nothing else could start the VM)");
		return -1;
	}
	/* Firecracker's default socket, when its configuration file comes alone. */
	if (c->fc.config_file && !c->api_sock && !c->no_api && !c->cfg.kernel && !c->ro.path)
		c->api_sock = "/run/firecracker.socket";
	if (c->no_api)
		c->api_sock = NULL;
	if ((c->fc.config_file || c->fc.log_path || c->fc.metrics_path || c->fc.log_level >= 0 ||
	     c->fc.module || c->fc.show_level || c->fc.show_log_origin || c->fc.metadata ||
	     c->fc.mmds_size_limit) &&
	    !c->api_sock && !c->no_api) {
		log_err("--config-file, --log-path, --level, --metrics-path and the other "
			"Firecracker flags go with --api-sock PATH or --no-api");
		return -1;
	}
	if ((c->api_sock || c->no_api) && (c->cfg.kernel || c->ro.path)) {
		log_err("--api-sock configures the VM over the API: leave out --kernel and "
			"--restore");
		return -1;
	}
	if (!c->cfg.kernel && !c->ro.path && !c->api_sock && !c->no_api) {
		log_err("--kernel, --restore or --api-sock is required");
		usage(stderr);
		return -1;
	}
	if (c->ro.snapshot_paths && !c->ro.path) {
		log_err("--snapshot-paths is for --restore (over the API: snapshot_paths)");
		return -1;
	}
	if (c->ro.backend == VM_MEM_UFFD_EXT && !c->ro.uffd_sock) {
		log_err("--mem-backend uffd-ext needs --uffd-sock PATH");
		return -1;
	}
	if (c->prep_mib && !c->ro.path && !c->api_sock && !c->no_api) {
		log_err("--prepare is for restores: give --restore, or load over --api-sock");
		return -1;
	}
	return c->ro.path ? restore_overrides(c) : boot_devices(c);
}

/* ---------------------------------------------------------------- the main loop */

static void no_op_handler(int sig)
{
	(void)sig;
}

static void take_snapshot(struct thaw *t)
{
	struct vm_snapshot_opts o = t->cli.snap;
	int ret;

	if (!o.path) {
		log_warn("snapshot requested, but no --snapshot PATH was given");
		return;
	}
	o.stay_paused = strcmp(t->cli.snapshot_then, "resume") != 0;
	ret = vm_snapshot_create(&t->vm, &o);
	if (ret == 0)
		fprintf(stderr, "thaw: snapshot: %s in %llu us\n", o.path,
			(unsigned long long)t->vm.last_create_us);
	if (strcmp(t->cli.snapshot_then, "exit") == 0)
		vmm_loop_stop(&t->vm.loop, ret ? VMM_EXIT_INTERNAL : VMM_EXIT_OK);
}

static void on_trigger(void *opaque, uint32_t events)
{
	struct thaw *t = opaque;
	uint64_t n;

	if (read(t->vm.trigger_fd, &n, sizeof(n)) == sizeof(n))
		take_snapshot(t);
}

static void on_exit_request(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;

	vmm_loop_stop(&vm->loop, vm->exit_status);
}

static void on_signal(void *opaque, uint32_t events)
{
	struct thaw *t = opaque;
	struct signalfd_siginfo si;

	if (read(t->vm.signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGUSR1) {
		take_snapshot(t);
	} else if (si.ssi_signo == SIGUSR2) {
		if (t->vm.paused)
			vm_resume(&t->vm);
	} else {
		vmm_signal_count((int)si.ssi_signo); /* SIGHUP, for the signals metrics */
		log_info("signal %u: stopping the VM", si.ssi_signo);
		vmm_loop_stop(&t->vm.loop, VMM_EXIT_OK);
	}
}

/* The main thread waits here for the guest, the console, signals and the API. */
static int main_loop(struct thaw *t, const sigset_t *sigs)
{
	struct vm *vm = &t->vm;

	vm->signal_fd = signalfd(-1, sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->signal_fd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return VMM_EXIT_INTERNAL;
	}
	if (vmm_loop_add(&vm->loop, vm->exit_fd, EPOLLIN, on_exit_request, vm) ||
	    vmm_loop_add(&vm->loop, vm->signal_fd, EPOLLIN, on_signal, t) ||
	    vmm_loop_add(&vm->loop, vm->trigger_fd, EPOLLIN, on_trigger, t))
		return VMM_EXIT_INTERNAL;
	return vmm_loop_run(&vm->loop);
}

/* Signals the main thread takes through a signalfd: blocked before any thread exists so
 * every thread inherits the mask. */
static void block_signals(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGHUP);
	sigaddset(sigs, SIGUSR1);
	sigaddset(sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	/* SIGPIPE counted and otherwise ignored; the fatal ones counted before they end the
	 * process (Firecracker's signals metrics). */
	if (vmm_signals_install() < 0) {
		log_warn("signals: no counting handlers (%s): SIGPIPE ignored", strerror(errno));
		signal(SIGPIPE, SIG_IGN);
	}
	/* As PID 1 of a PID namespace (thaw-jailer --new-pid-ns) signals without a
	 * handler are dropped, signalfd or not: give each one a handler. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(sigs, sig))
			sigaction(sig, &(struct sigaction){.sa_handler = no_op_handler}, NULL);
}

static uint64_t clock_us(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

/* Firecracker's process_startup_time_us and _cpu_us, taken as the API begins: from
 * --start-time-us (the jailer's start, monotonic) or else this process's own start, and
 * the CPU time since --start-time-cpu-us plus --parent-cpu-time-us, or else all of this
 * process's CPU time. */
static void startup_times(const struct cli *c, uint64_t t0_ns, uint64_t *wall, uint64_t *cpu)
{
	uint64_t now = clock_us(CLOCK_MONOTONIC), now_cpu = clock_us(CLOCK_PROCESS_CPUTIME_ID);
	uint64_t start = c->has_start_time ? c->start_time_us : t0_ns / 1000;

	*wall = now > start ? now - start : 0;
	if (c->has_start_cpu)
		*cpu =
		    (now_cpu > c->start_cpu_us ? now_cpu - c->start_cpu_us : 0) + c->parent_cpu_us;
	else
		*cpu = now_cpu + c->parent_cpu_us;
}

/* Everything after the command line: returns the process's exit status. */
static int run(struct thaw *t, uint64_t t0)
{
	struct cli *c = &t->cli;
	struct vm *vm = &t->vm;
	char err[512];
	sigset_t sigs;
	int status;

	block_signals(&sigs);
	/* First-touch costs of the snapshot reader, paid before a restore is asked for. */
	if (c->ro.path || c->api_sock)
		snap_warm_up();
	if (vm_init(vm))
		return VMM_EXIT_INTERNAL;
	vm->t_process_start_ns = t0;
	vm->boot_timer = c->boot_timer;
	vm->snapshot_after = c->snapshot_after;
	vm->console_in_spec = c->cfg.console_in;
	vm->timing = c->timing;
	vm->uffd_stall_ms = c->stall_ms;
	vm->console_out_max = c->console_out_max;
	if (c->cfg.console_out) {
		vm->console_out_fd =
		    open(c->cfg.console_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (vm->console_out_fd < 0) {
			log_err("--console-out %s: %s", c->cfg.console_out, strerror(errno));
			return VMM_EXIT_USAGE;
		}
	}
	/* The main thread's seccomp filter goes on before anything untrusted is read:
	 * the snapshot, the kernel, API requests. Every thread is created after this and
	 * inherits it; vCPU threads add their own (docs/jailer.md). */
	if (!c->no_seccomp && (vmm_seccomp_prepare() || vmm_seccomp_install(VMM_SECCOMP_MAIN)))
		return VMM_EXIT_INTERNAL;
	if (c->api_sock || c->no_api) {
		c->fc.sock = c->api_sock;
		c->fc.id = c->api_id;
		startup_times(c, t0, &c->fc.startup_us, &c->fc.startup_cpu_us);
		if (vm_control_start(vm, &c->fc))
			return VMM_EXIT_USAGE;
	}
	/* A prepared VM is built now, before any restore request arrives. */
	if (c->prep_mib && vm_prepare(vm, c->prep_vcpus, c->prep_mib))
		return VMM_EXIT_INTERNAL;
	if (c->ro.path) {
		if (vm_restore(vm, &c->ro, err, sizeof(err))) {
			log_err("restore %s: %s", c->ro.path, err);
			return VMM_EXIT_RESTORE;
		}
	} else if (c->cfg.kernel) {
		status = vm_boot(vm, &c->cfg);
		if (status != VMM_EXIT_OK)
			return status;
	}
	if ((c->ro.path || c->cfg.kernel) && vm_launch(vm, c->start_paused))
		return VMM_EXIT_INTERNAL;
	status = main_loop(t, &sigs);
	if (c->timing)
		fprintf(stderr,
			"thaw: timing: first_run_us=%llu first_line_us=%llu "
			"vcpu0_filtered_us=%llu\n",
			since(vm->t_first_run_ns, t0), since(vm->t_first_line_ns, t0),
			since(vm->t_vcpu0_filtered_ns, t0));
	return status;
}

int main(int argc, char **argv)
{
	uint64_t t0 = now_ns();
	struct thaw *t;
	int status;

	/* Blocks of 8 KiB and more come from their own mapping, not the heap: calloc then
	 * needs no memset (a fresh mapping is zero), only the pages a block really uses
	 * are ever touched, and free gives them back. Heap blocks that size (an API
	 * connection is ~100 KiB, mostly buffer room; struct thaw, the restore plan, the
	 * API's pre-boot configuration, 20-35 KiB each) were zeroed whole and stayed
	 * dirty: what every idle clone holds (issue 17). glibc takes a block from the
	 * heap's free top whatever its size, and libc's start left ~130 KiB there: the
	 * top goes back (malloc_trim) and grows by at most a page beyond a request from
	 * now on, so no block of the threshold fits in it. A restore allocates nothing,
	 * so no mmap is added to it. A fixed threshold also stops glibc from raising it
	 * after the first such free. */
	mallopt(M_MMAP_THRESHOLD, 8 << 10);
	mallopt(M_TOP_PAD, 4 << 10);
	malloc_trim(0);
	t = calloc(1, sizeof(*t));

	log_set_prefix("thaw");
	if (!t) {
		log_err("out of memory");
		return VMM_EXIT_INTERNAL;
	}
	/* Field by field on calloc's zeroes: assigning a whole struct cli (13 KiB) would
	 * write, and so keep dirty, every page of it in each clone. */
	t->cli.cfg.vcpus = 1;
	t->cli.cfg.mem_mib = 128;
	t->cli.snapshot_then = "resume";
	t->cli.api_id = "thaw";
	t->cli.fc.log_level = -1;
	t->cli.stall_ms = VMM_UFFD_STALL_DEFAULT_MS;
	t->cli.console_out_max = VMM_CONSOLE_OUT_MAX_DEFAULT;
	if (parse_cli(argc, argv, &t->cli))
		return VMM_EXIT_USAGE;
	if (t->cli.help) {
		usage(stdout);
		return 0;
	}
	if (t->cli.version) {
		printf("thaw v%s (Firecracker's API)\n", API_VMM_VERSION);
		return 0;
	}
	status = run(t, t0);
	/* The uffd handler writes a recorded working set and its counters here. */
	vm_uffd_stop(&t->vm);
	vmm_console_report(&t->vm);
	/* The API socket file goes with the process (docs/api.md); _exit skips the server's
	 * destroy. Only a server this process created: a refused path is someone else's. */
	if (t->vm.control && t->cli.api_sock)
		unlink(t->cli.api_sock);
	/* vCPU threads may still be inside KVM_RUN; the process exit ends them. Tearing
	 * the VM down first would only add milliseconds (closing a VM takes 1-16 ms). */
	_exit(status);
}
