/* thaw: one process per microVM. Parses the command line, builds the VM, runs one
 * thread per vCPU and an epoll main loop for the console, signals and (later) the API. */
#include "vmm/vmm.h"
#include "vmm/virtio/virtio.h"
#include "restore/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: thaw --api-sock PATH [--id ID] [--prepare mem-mib=M,vcpus=N]\n"
		"            (configure, boot or load a snapshot over Firecracker's API)\n"
		"       thaw --kernel FILE [--initrd FILE] [--cmdline STR] [--vcpus N]\n"
		"            [--mem-mib M] [--cpu-template host|pvm] [--boot pvh|linux64]\n"
		"            [--console-out FILE] [--console-in stdin|none|SOCKET]\n"
		"            [--drive id=NAME,path=FILE,ro=on|off[,root=on]]...\n"
		"            [--net id=NAME,tap=TAP[,mac=MAC]]... [--vsock cid=N,uds=PATH]\n"
		"            [--rng]\n"
		"       thaw --restore SNAPSHOT [--prepare mem-mib=M,vcpus=N] [--paused]\n"
		"            [--clock-realtime] [--mem-backend file|uffd|uffd-ext]\n"
		"            [--uffd-sock PATH] [--uffd-strategy S] [--uffd-record FILE]\n"
		"            [--drive id=NAME,path=FILE]... [--net id=NAME,tap=TAP]...\n"
		"            [--vsock uds=PATH] (new host side for the snapshot's devices)\n"
		"            [--uffd-stall-timeout-ms MS]\n"
		"            [console options]\n"
		"  snapshots: [--snapshot PATH [--snapshot-mem-file PATH]] [--snapshot-after STR]\n"
		"             [--snapshot-then resume|pause|exit]: SIGUSR1, or the first console\n"
		"             line containing STR, writes a snapshot to PATH; SIGUSR2 resumes a\n"
		"             paused VM\n"
		"            [--timing] [--log-level error|warn|info|debug]\n"
		"            [--no-seccomp] (debugging only: no seccomp filters)\n"
		"  --uffd-stall-timeout-ms MS: with memory through userfaultfd (also when loaded\n"
		"             over the API), a vCPU left waiting this long for a guest page the\n"
		"             handler does not serve (handler stopped or deadlocked) ends the VM\n"
		"             with status 2; 0 turns the check off (default %u)\n"
		"\n"
		"exit status: 0 guest reset/halted, 1 usage, 2 host failure, 3 guest panic,\n"
		"             4 triple fault, 5 emulation failure, 6 restore failure\n",
		VMM_UFFD_STALL_DEFAULT_MS);
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

static void no_op_handler(int sig)
{
	(void)sig;
}

/* What SIGUSR1 or the --snapshot-after line does. */
struct snap_trigger {
	struct vm_snapshot_opts opts;
	const char *then; /* "resume", "pause" or "exit" */
};

static struct snap_trigger trigger;

static void take_snapshot(struct vm *vm)
{
	int ret;

	if (!trigger.opts.path) {
		log_warn("snapshot requested, but no --snapshot PATH was given");
		return;
	}
	trigger.opts.stay_paused = strcmp(trigger.then, "resume") != 0;
	ret = vm_snapshot_create(vm, &trigger.opts);
	if (ret == 0)
		fprintf(stderr, "thaw: snapshot: %s in %llu us\n", trigger.opts.path,
			(unsigned long long)vm->last_create_us);
	if (strcmp(trigger.then, "exit") == 0)
		vmm_loop_stop(&vm->loop, ret ? VMM_EXIT_INTERNAL : VMM_EXIT_OK);
}

static void on_trigger(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t n;

	if (read(vm->trigger_fd, &n, sizeof(n)) == sizeof(n))
		take_snapshot(vm);
}

static void on_exit_request(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;

	vmm_loop_stop(&vm->loop, vm->exit_status);
}

static void on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo si;

	if (read(vm->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGUSR1) {
		take_snapshot(vm);
	} else if (si.ssi_signo == SIGUSR2) {
		if (vm->paused)
			vm_resume(vm);
	} else {
		log_info("signal %u: stopping the VM", si.ssi_signo);
		vmm_loop_stop(&vm->loop, VMM_EXIT_OK);
	}
}

/* The main thread waits here for the guest, the console, signals and the API. */
static int main_loop(struct vm *vm, const sigset_t *sigs)
{
	vm->signal_fd = signalfd(-1, sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->signal_fd < 0) {
		log_err("signalfd: %s", strerror(errno));
		return VMM_EXIT_INTERNAL;
	}
	if (vmm_loop_add(&vm->loop, vm->exit_fd, EPOLLIN, on_exit_request, vm) ||
	    vmm_loop_add(&vm->loop, vm->signal_fd, EPOLLIN, on_signal, vm) ||
	    vmm_loop_add(&vm->loop, vm->trigger_fd, EPOLLIN, on_trigger, vm))
		return VMM_EXIT_INTERNAL;
	return vmm_loop_run(&vm->loop);
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

/* With --restore, --drive, --net and --vsock name the host side of the snapshot's
 * devices, as the API's overrides do (the rest comes from the snapshot). The values
 * live here for the process's lifetime. */
static char override_ids[VMM_MAX_DRIVES + VMM_MAX_NETS][VIRTIO_ID_MAX];
static char override_values[VMM_MAX_DRIVES + VMM_MAX_NETS + 1][VIRTIO_PATH_MAX];

static int restore_override(const char *opt, const char *spec, const char *key, unsigned slot,
			    struct vm_override *o)
{
	const char *const known[] = {"id", key, NULL};

	if (virtio_opt_check(opt, spec, known) ||
	    virtio_opt(spec, "id", override_ids[slot], sizeof(override_ids[slot])) != 1 ||
	    virtio_opt(spec, key, override_values[slot], sizeof(override_values[slot])) != 1 ||
	    !override_ids[slot][0] || !override_values[slot][0]) {
		log_err("%s %s: with --restore it takes id=NAME,%s=... (the device's id in the "
			"snapshot and its new %s)",
			opt, spec, key, key);
		return -1;
	}
	o->id = override_ids[slot];
	o->value = override_values[slot];
	return 0;
}

static int restore_overrides(const struct vm_config *cfg, struct vm_restore_opts *ro)
{
	static const char *const vsock_keys[] = {"uds", NULL};
	unsigned slot = 0;

	for (unsigned i = 0; i < cfg->nr_drives; i++)
		if (restore_override("--drive", cfg->drives[i], "path", slot++,
				     &ro->drive_path[ro->nr_drive_path++]))
			return -1;
	for (unsigned i = 0; i < cfg->nr_nets; i++)
		if (restore_override("--net", cfg->nets[i], "tap", slot++,
				     &ro->net_tap[ro->nr_net_tap++]))
			return -1;
	if (cfg->vsock) {
		char *uds = override_values[slot];

		if (virtio_opt_check("--vsock", cfg->vsock, vsock_keys) ||
		    virtio_opt(cfg->vsock, "uds", uds, VIRTIO_PATH_MAX) != 1 || !uds[0]) {
			log_err("--vsock %s: with --restore it takes uds=PATH (the guest's CID is "
				"the snapshot's)",
				cfg->vsock);
			return -1;
		}
		ro->vsock_uds = uds;
	}
	if (cfg->rng) {
		log_err("--rng: a restored VM has the snapshot's devices; leave it out");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"vcpus", required_argument, NULL, 'n'},
	    {"mem-mib", required_argument, NULL, 'm'},
	    {"cpu-template", required_argument, NULL, 't'},
	    {"boot", required_argument, NULL, 'b'},
	    {"console-out", required_argument, NULL, 'o'},
	    {"console-in", required_argument, NULL, 'I'},
	    {"timing", no_argument, NULL, 'T'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"drive", required_argument, NULL, 'D'},
	    {"net", required_argument, NULL, 'N'},
	    {"vsock", required_argument, NULL, 'V'},
	    {"rng", no_argument, NULL, 'R'},
	    {"restore", required_argument, NULL, 'r'},
	    {"api-sock", required_argument, NULL, 'a'},
	    {"id", required_argument, NULL, 'd'},
	    {"prepare", required_argument, NULL, 'p'},
	    {"mem-backend", required_argument, NULL, 'B'},
	    {"uffd-sock", required_argument, NULL, 'U'},
	    {"uffd-strategy", required_argument, NULL, 'S'},
	    {"uffd-record", required_argument, NULL, 'W'},
	    {"uffd-stall-timeout-ms", required_argument, NULL, 'O'},
	    {"paused", no_argument, NULL, 'P'},
	    {"clock-realtime", no_argument, NULL, 'C'},
	    {"snapshot", required_argument, NULL, 's'},
	    {"snapshot-mem-file", required_argument, NULL, 'M'},
	    {"snapshot-after", required_argument, NULL, 'A'},
	    {"snapshot-then", required_argument, NULL, 'H'},
	    {"snapshot-no-fsync", no_argument, NULL, 'F'},
	    {"no-seccomp", no_argument, NULL, 'Z'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct vm_config cfg = {.vcpus = 1, .mem_mib = 128};
	struct vm_restore_opts ro = {0};
	const char *snapshot_after = NULL;
	bool start_paused = false;
	const char *api_sock = NULL, *api_id = "thaw";
	unsigned long long prep_mib = 0;
	unsigned prep_vcpus = 0;
	char err[512];
	static struct vm vm;
	uint64_t v, t0 = now_ns();
	bool timing = false, seccomp = true;
	unsigned stall_ms = VMM_UFFD_STALL_DEFAULT_MS;
	int c, status;
	sigset_t sigs;

	log_set_prefix("thaw");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg.kernel = optarg;
			break;
		case 'i':
			cfg.initrd = optarg;
			break;
		case 'c':
			cfg.cmdline = optarg;
			break;
		case 'n':
			if (parse_uint("--vcpus", optarg, VMM_MAX_VCPUS * 16, &v))
				return VMM_EXIT_USAGE;
			cfg.vcpus = (unsigned)v;
			break;
		case 'm':
			if (parse_uint("--mem-mib", optarg, 1ull << 30, &v))
				return VMM_EXIT_USAGE;
			cfg.mem_mib = v;
			break;
		case 't':
			cfg.cpu_template = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "pvh") == 0)
				cfg.protocol = VMM_BOOT_PVH;
			else if (strcmp(optarg, "linux64") == 0)
				cfg.protocol = VMM_BOOT_LINUX64;
			else {
				log_err("--boot: '%s' is not pvh or linux64", optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'o':
			cfg.console_out = optarg;
			break;
		case 'I':
			cfg.console_in = optarg;
			break;
		case 'T':
			timing = true;
			break;
		case 'L':
			if (strcmp(optarg, "error") == 0)
				log_set_level(LOG_ERROR);
			else if (strcmp(optarg, "warn") == 0)
				log_set_level(LOG_WARN);
			else if (strcmp(optarg, "info") == 0)
				log_set_level(LOG_INFO);
			else if (strcmp(optarg, "debug") == 0)
				log_set_level(LOG_DEBUG);
			else {
				log_err("--log-level: '%s' is not error, warn, info or debug",
					optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'D':
			if (add_spec("--drive", cfg.drives, &cfg.nr_drives, VMM_MAX_DRIVES, optarg))
				return VMM_EXIT_USAGE;
			break;
		case 'N':
			if (add_spec("--net", cfg.nets, &cfg.nr_nets, VMM_MAX_NETS, optarg))
				return VMM_EXIT_USAGE;
			break;
		case 'V':
			cfg.vsock = optarg;
			break;
		case 'R':
			cfg.rng = true;
			break;
		case 'r':
			ro.path = optarg;
			break;
		case 'a':
			api_sock = optarg;
			break;
		case 'd':
			api_id = optarg;
			break;
		case 'B':
			if (strcmp(optarg, "file") == 0)
				ro.backend = VM_MEM_FILE;
			else if (strcmp(optarg, "uffd") == 0)
				ro.backend = VM_MEM_UFFD;
			else if (strcmp(optarg, "uffd-ext") == 0)
				ro.backend = VM_MEM_UFFD_EXT;
			else {
				log_err("--mem-backend: '%s' is not file, uffd or uffd-ext",
					optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'U':
			ro.uffd_sock = optarg;
			break;
		case 'S':
			ro.uffd_strategy = optarg;
			break;
		case 'W':
			ro.uffd_record = optarg;
			break;
		case 'O':
			if (parse_uint("--uffd-stall-timeout-ms", optarg, VMM_UFFD_STALL_MAX_MS,
				       &v))
				return VMM_EXIT_USAGE;
			stall_ms = (unsigned)v;
			break;
		case 'p':
			if (sscanf(optarg, "mem-mib=%llu,vcpus=%u", &prep_mib, &prep_vcpus) != 2 ||
			    prep_mib == 0 || prep_vcpus == 0) {
				log_err("--prepare: '%s' is not mem-mib=M,vcpus=N", optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'P':
			start_paused = true;
			break;
		case 'C':
			ro.clock_realtime = true;
			break;
		case 's':
			trigger.opts.path = optarg;
			break;
		case 'M':
			trigger.opts.mem_file_path = optarg;
			break;
		case 'A':
			snapshot_after = optarg;
			break;
		case 'F':
			trigger.opts.no_fsync = true;
			break;
		case 'H':
			if (strcmp(optarg, "resume") && strcmp(optarg, "pause") &&
			    strcmp(optarg, "exit")) {
				log_err("--snapshot-then: '%s' is not resume, pause or exit",
					optarg);
				return VMM_EXIT_USAGE;
			}
			trigger.then = optarg;
			break;
		case 'Z':
			seccomp = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return VMM_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		log_err("unexpected argument '%s'", argv[optind]);
		return VMM_EXIT_USAGE;
	}
	trigger.then = trigger.then ? trigger.then : "resume";
	if (snapshot_after && !trigger.opts.path) {
		log_err("--snapshot-after needs --snapshot PATH");
		return VMM_EXIT_USAGE;
	}
	if (ro.path && cfg.kernel) {
		log_err("--restore and --kernel exclude each other");
		return VMM_EXIT_USAGE;
	}
	if (api_sock && (cfg.kernel || ro.path)) {
		log_err("--api-sock configures the VM over the API: leave out --kernel and "
			"--restore");
		return VMM_EXIT_USAGE;
	}
	if (ro.path && restore_overrides(&cfg, &ro))
		return VMM_EXIT_USAGE;
	if (!cfg.kernel && !ro.path && !api_sock) {
		log_err("--kernel, --restore or --api-sock is required");
		usage(stderr);
		return VMM_EXIT_USAGE;
	}

	if (ro.backend == VM_MEM_UFFD_EXT && !ro.uffd_sock) {
		log_err("--mem-backend uffd-ext needs --uffd-sock PATH");
		return VMM_EXIT_USAGE;
	}
	if (prep_mib && !ro.path && !api_sock) {
		log_err("--prepare is for restores: give --restore, or load over --api-sock");
		return VMM_EXIT_USAGE;
	}

	/* The main thread takes these through a signalfd; block them before any thread
	 * exists so every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* As PID 1 of a PID namespace (thaw-jailer --new-pid-ns) signals without a
	 * handler are dropped, signalfd or not: give each one a handler. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(&sigs, sig))
			sigaction(sig, &(struct sigaction){.sa_handler = no_op_handler}, NULL);

	/* First-touch costs of the snapshot reader, paid before a restore is asked for. */
	if (ro.path || api_sock)
		snap_warm_up();
	if (vm_init(&vm)) {
		status = VMM_EXIT_INTERNAL;
		goto out;
	}
	vm.t_process_start_ns = t0;
	vm.snapshot_after = snapshot_after;
	vm.console_in_spec = cfg.console_in;
	vm.timing = timing;
	vm.uffd_stall_ms = stall_ms;
	if (cfg.console_out) {
		vm.console_out_fd =
		    open(cfg.console_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (vm.console_out_fd < 0) {
			log_err("--console-out %s: %s", cfg.console_out, strerror(errno));
			status = VMM_EXIT_USAGE;
			goto out;
		}
	}
	/* The main thread's seccomp filter goes on before anything untrusted is read:
	 * the snapshot, the kernel, API requests. Every thread is created after this and
	 * inherits it; vCPU threads add their own (docs/jailer.md). */
	if (seccomp && (vmm_seccomp_prepare() || vmm_seccomp_install(VMM_SECCOMP_MAIN))) {
		status = VMM_EXIT_INTERNAL;
		goto out;
	}
	if (api_sock && vm_control_start(&vm, api_sock, api_id)) {
		status = VMM_EXIT_USAGE;
		goto out;
	}
	/* A prepared VM is built now, before any restore request arrives. */
	if (prep_mib && vm_prepare(&vm, prep_vcpus, prep_mib)) {
		status = VMM_EXIT_INTERNAL;
		goto out;
	}
	if (ro.path) {
		if (vm_restore(&vm, &ro, err, sizeof(err))) {
			log_err("restore %s: %s", ro.path, err);
			status = VMM_EXIT_RESTORE;
			goto out;
		}
	} else if (cfg.kernel) {
		status = vm_boot(&vm, &cfg);
		if (status != VMM_EXIT_OK)
			goto out;
	}
	if ((ro.path || cfg.kernel) && vm_launch(&vm, start_paused)) {
		status = VMM_EXIT_INTERNAL;
		goto out;
	}
	status = main_loop(&vm, &sigs);
	if (timing)
		fprintf(stderr, "thaw: timing: first_run_us=%llu first_line_us=%llu\n",
			vm.t_first_run_ns ? (unsigned long long)(vm.t_first_run_ns - t0) / 1000 : 0,
			vm.t_first_line_ns ? (unsigned long long)(vm.t_first_line_ns - t0) / 1000
					   : 0);
out:
	/* The uffd handler writes a recorded working set and its counters here. */
	vm_uffd_stop(&vm);
	/* vCPU threads may still be inside KVM_RUN; the process exit ends them. Tearing
	 * the VM down first would only add milliseconds (closing a VM takes 1-16 ms). */
	_exit(status);
}
