/* Integration-test harness: runs real `thaw` processes and talks to their serial
 * console through pipes. */
#ifndef THAW_TEST_HARNESS_H
#define THAW_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vmproc {
	pid_t pid;
	int in_fd;  /* the guest's console input (thaw's stdin) */
	int out_fd; /* the guest's console output (thaw's stdout) */
	int err_fd; /* thaw's own messages (stderr) */
	char out[1 << 20];
	size_t out_len, out_seen; /* bytes received; bytes already matched past */
	char err[16384];
	size_t err_len;
	int status; /* exit status once exited, or -1 */
	bool exited;
};

/* Path of a built program or guest from the environment (THAW_BIN, THAW_PROBE,
 * THAW_KERNEL, ...); fails the test when unset. */
const char *harness_env(const char *name);

/* True when /dev/kvm can be opened; otherwise prints a loud SKIPPED line. */
bool harness_have_kvm(void);
/* True when this host runs KVM through PVM (vmm_host_is_pvm's rule: a CPU with neither
 * VMX nor SVM), for tests whose expectation depends on it. */
bool harness_host_is_pvm(void);

/* Starts argv[0] with pipes on stdin, stdout and stderr. */
int vmproc_start(struct vmproc *p, const char *const argv[]);

/* vmproc_start on a new vmproc; fails the test when it could not start. */
struct vmproc *harness_start(const char *const argv[]);
/* vmproc_stop, then frees it. */
void harness_end(struct vmproc *p);

/* Waits until a console line containing `needle` arrives after everything matched
 * before; copies the line into `line` (may be NULL). Returns 0, or -ETIMEDOUT, or
 * -EPIPE when the process ended first. */
int vmproc_expect(struct vmproc *p, const char *needle, int timeout_ms, char *line, size_t linelen);

/* Sends one line (a newline is added). */
int vmproc_send(struct vmproc *p, const char *line);

/* Sends `request` and waits for a line starting with `prefix`; the rest of that line
 * goes to `answer`. */
int vmproc_ask(struct vmproc *p, const char *request, const char *prefix, int timeout_ms,
	       char *answer, size_t len);

/* Waits for the process to exit; returns its exit status (128+signal if killed), or
 * -ETIMEDOUT. */
int vmproc_wait(struct vmproc *p, int timeout_ms);

/* Kills the process (if still running), reaps it and closes the pipes. */
void vmproc_stop(struct vmproc *p);

/* Prints what the process wrote (console and stderr) to help diagnose a failure. */
void vmproc_dump(struct vmproc *p, const char *why);

/* A probe snapshot at `path`: THAW_PROBE booted by THAW_BIN with 1 vCPU and `mem_mib`
 * MiB (and the thaw arguments in `extra`, NULL-terminated, NULL for none), written when
 * the probe answers `info`, thaw exiting after it; the file is made 0644 (a jailed thaw
 * reads it as its own uid). Returns 0, or -1 after dumping the process. */
int harness_probe_snapshot(const char *path, unsigned mem_mib, const char *const *extra);

/* Milliseconds on the monotonic clock. */
long long harness_ms(void);

/* One HTTP request to thaw's API on unix socket `sock` (through curl, a client that is
 * not ours); `json` is the body or NULL. Returns the HTTP status (-1 when curl could
 * not run) and the response body in `body` when it is not NULL. */
int harness_http(const char *sock, const char *method, const char *path, const char *json,
		 char *body, size_t len);
/* Waits up to 5 s for the API socket `sock` to appear; 0 when it did. */
int harness_wait_socket(const char *sock);
/* A test program's scratch directory: made from the mkdtemp(3) template `tmpl` (in
 * place), and removed with everything in it. 0 or -1 (for cmocka's group setup and
 * teardown). */
int harness_tmpdir_make(char *tmpl);
int harness_tmpdir_remove(const char *dir);
/* PUT `json` to `path` on `sock`; fails the test (naming the answer) unless 204. */
void harness_put(const char *sock, const char *path, const char *json);
/* THAW_BIN serving its API on `sock` (an old socket file removed first), once the socket
 * is there; fails the test otherwise. */
struct vmproc *harness_start_api(const char *sock);
/* Boots THAW_PROBE through the API on `sock` of `p` (a boot source, InstanceStart) and
 * waits for it; fails the test, dumping `p` with `why`, when it does not come up. */
void harness_boot_probe(const char *sock, struct vmproc *p, const char *why);

/* The Linux guest's agent (guest/linux/AGENT.md) and this process exchange one UDP
 * datagram each way over a tap: from host_ip:7001 to guest_ip:7000, where the agent
 * has already done "net bind 7000", then back. Host to guest goes first, so an ARP
 * request from the host refreshes whatever the guest remembers of the host's MAC.
 * Returns 0, or -1 after printing what went wrong and dumping the process. */
int harness_udp_both_ways(struct vmproc *p, const char *host_ip, const char *guest_ip,
			  int timeout_ms);

/* The probe's raw access requests (guest/probe/PROTOCOL.md, section 4) driving a
 * virtio-mmio device by hand. Each fails the test (after dumping the process) when the
 * probe answers an error or a fault, or does not answer within 60 s. */
void harness_probe_cmd(struct vmproc *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* `bits` 8, 16, 32 or 64: the value the probe reads at guest-physical `addr`. */
uint64_t harness_probe_read(struct vmproc *p, unsigned bits, uint64_t addr);
/* Resets the device at `base` and negotiates VIRTIO_F_VERSION_1 alone (FEATURES_OK
 * must stick), then brings up queue `q` with size `n`: descriptors at `ring`, avail at
 * `ring` + 0x1000, used at `ring` + 0x2000. harness_probe_queue_up does all of it for
 * queue 0 and sets DRIVER_OK. */
void harness_probe_virtio_start(struct vmproc *p, uint64_t base);
void harness_probe_queue(struct vmproc *p, uint64_t base, unsigned q, unsigned n, uint64_t ring);
void harness_probe_driver_ok(struct vmproc *p, uint64_t base);
void harness_probe_queue_up(struct vmproc *p, uint64_t base, unsigned n, uint64_t ring);
/* Descriptor i of the table at `ring`. */
void harness_probe_desc(struct vmproc *p, uint64_t ring, unsigned i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next);
/* Publishes avail entry `slot` = head and avail idx = idx, then notifies queue q. */
void harness_probe_kick(struct vmproc *p, unsigned q, uint64_t base, uint64_t ring, unsigned slot,
			unsigned head, unsigned idx);

#endif
