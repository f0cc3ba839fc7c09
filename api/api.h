/* thaw's API: HTTP/1.1 over a unix socket, with Firecracker's resources, field names, status
 * codes and error shape, so Firecracker clients and its documentation's `curl --unix-socket`
 * examples drive thaw unchanged.
 *
 * The server is a library the VMM plugs into its own epoll loop: api_server_fd() is one
 * pollable descriptor (an internal epoll set holding the listener, every connection and a
 * timer), and api_server_dispatch() does all the work that is ready without ever blocking.
 * Requests are parsed (http_parser), validated (json-c) and checked against the VM's life
 * cycle here; what is left for the VMM is one callback per action in `struct api_ops`, each
 * receiving a plain, validated C struct. Everything runs on the thread that calls
 * api_server_dispatch(), so callbacks need no locking against the API.
 *
 * The client half (api_client_*) is what thawctl, the tests and the benchmark use.
 */
#ifndef THAW_API_H
#define THAW_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

/* thaw's version, as GET /, GET /version and `thaw --version` report it. */
#define API_VMM_VERSION "0.1.0"

/* Caps on what a client may send; larger requests get 431, 414 or 413. */
#define API_MAX_HEADER_BYTES 8192
#define API_MAX_URL_BYTES    1024
#define API_MAX_BODY_BYTES   65536
/* Concurrent connections; one more is accepted and the connection idle the longest (no
 * complete request for the longest time) is closed to make room. */
#define API_MAX_CONNS 32
/* A request that started arriving must be complete within this long (408 otherwise). */
#define API_DEFAULT_REQUEST_TIMEOUT_MS 5000
/* A connection with no complete request for this long (CRLFs alone do not count) and
 * nothing in progress is closed. */
#define API_DEFAULT_IDLE_TIMEOUT_MS 30000
/* Once `PUT /metrics` configured a destination, a line is written this often (as
 * Firecracker does), besides every FlushMetrics. */
#define API_DEFAULT_METRICS_PERIOD_MS 60000

/* String buffers in the request structs, NUL included. Longer strings are refused (400). */
#define API_PATH_LEN		4096 /* PATH_MAX */
#define API_ID_LEN		65   /* 64 characters of [A-Za-z0-9_] */
#define API_BOOT_ARGS_LEN	4096
#define API_IFNAME_LEN		16 /* IFNAMSIZ */
#define API_MAC_LEN		18 /* "aa:bb:cc:dd:ee:ff" */
#define API_MAX_NET_OVERRIDES	16
#define API_MAX_DRIVE_OVERRIDES 16
#define API_MAX_DRIVES		16 /* devices GET /vm/config and --config-file carry */
#define API_MAX_NETS		16
#define API_MAX_VCPUS		32
#define API_MAX_MEM_MIB		(1024u * 1024u) /* 1 TiB */

/* ---- request structs: what a validated request carries to the VMM ---------------------- */

/* `PUT /boot-source`. boot_args and initrd_path are "" when absent. */
struct api_boot_source {
	char kernel_image_path[API_PATH_LEN];
	char boot_args[API_BOOT_ARGS_LEN];
	char initrd_path[API_PATH_LEN];
};

enum api_cpu_template {
	API_CPU_TEMPLATE_NONE,
	API_CPU_TEMPLATE_C3,
	API_CPU_TEMPLATE_T2,
	API_CPU_TEMPLATE_T2S,
	API_CPU_TEMPLATE_T2CL,
	API_CPU_TEMPLATE_T2A,
	API_CPU_TEMPLATE_V1N1,
};

enum api_huge_pages { API_HUGE_PAGES_NONE, API_HUGE_PAGES_TRANSPARENT, API_HUGE_PAGES_2M };

/* `PUT|PATCH|GET /machine-config`. The API applies Firecracker's rules before the VMM sees
 * it: 1 <= vcpu_count <= 32, 1 <= mem_size_mib <= API_MAX_MEM_MIB, with smt the count is 1
 * or even, with 2M huge pages the size is even. A PATCH arrives already merged with the
 * current configuration, so the VMM always receives a complete one. */
struct api_machine_config {
	uint32_t vcpu_count;
	uint32_t mem_size_mib;
	bool smt;
	bool track_dirty_pages;
	enum api_cpu_template cpu_template;
	enum api_huge_pages huge_pages;
};

/* Firecracker's token bucket; `present` false when the field was absent. */
struct api_token_bucket {
	bool present;
	uint64_t size;
	uint64_t one_time_burst;
	uint64_t refill_time; /* ms */
};

struct api_rate_limiter {
	bool present;
	struct api_token_bucket bandwidth; /* bytes */
	struct api_token_bucket ops;	   /* operations */
};

enum api_cache_type { API_CACHE_UNSAFE, API_CACHE_WRITEBACK };
enum api_io_engine { API_IO_ENGINE_SYNC, API_IO_ENGINE_ASYNC };

/* `PUT /drives/{drive_id}`. drive_id is the path id, checked equal to the body's. Either
 * path_on_host is set (virtio-block) or socket is (vhost-user-block; the VMM may refuse). */
struct api_drive {
	char drive_id[API_ID_LEN];
	char path_on_host[API_PATH_LEN];
	char socket[API_PATH_LEN];
	char partuuid[API_ID_LEN];
	bool is_root_device;
	bool is_read_only;
	enum api_cache_type cache_type;
	enum api_io_engine io_engine;
	struct api_rate_limiter rate_limiter;
};

/* `PUT /network-interfaces/{iface_id}`. has_guest_mac says whether guest_mac[] is set;
 * mtu is 0 when absent (else 68..65535). */
struct api_net {
	char iface_id[API_ID_LEN];
	char host_dev_name[API_IFNAME_LEN];
	bool has_guest_mac;
	uint8_t guest_mac[6];
	uint32_t mtu;
	struct api_rate_limiter rx_rate_limiter;
	struct api_rate_limiter tx_rate_limiter;
};

/* `PUT /cpu-config` (pre-boot): Firecracker's custom CPU template for x86. Each register
 * or MSR becomes (value & keep) | set: the bitmap's '1's are `set`, its 'x's `keep`. */
#define API_CPUID_MODS_MAX 64
#define API_MSR_MODS_MAX   32
struct api_cpu_config {
	uint32_t nr_cpuid, nr_msr;
	struct {
		uint32_t leaf, subleaf, flags; /* flags bit 0: the subleaf is significant */
		uint8_t reg;		       /* 0 eax, 1 ebx, 2 ecx, 3 edx */
		uint32_t keep, set;
	} cpuid[API_CPUID_MODS_MAX];
	struct {
		uint32_t addr;
		uint64_t keep, set;
	} msr[API_MSR_MODS_MAX];
};

/* `PATCH /drives/{drive_id}` (after start or load): what changes. An empty path_on_host
 * keeps the file; a rate limiter bucket whose `present` is false keeps its setting, one
 * of size or refill_time 0 lifts it (Firecracker's semantics). */
struct api_drive_patch {
	char drive_id[API_ID_LEN];
	char path_on_host[API_PATH_LEN];
	struct api_rate_limiter rate_limiter;
};

/* `PATCH /network-interfaces/{iface_id}` (after start or load): the rate limiters, as
 * for a drive's. */
struct api_net_patch {
	char iface_id[API_ID_LEN];
	struct api_rate_limiter rx_rate_limiter;
	struct api_rate_limiter tx_rate_limiter;
};

/* `PUT /vsock`. guest_cid >= 3. */
struct api_vsock {
	uint32_t guest_cid;
	char uds_path[API_PATH_LEN];
	char vsock_id[API_ID_LEN]; /* deprecated by Firecracker; "" when absent */
};

/* `PUT /entropy`. */
struct api_entropy {
	struct api_rate_limiter rate_limiter;
};

enum api_log_level {
	API_LOG_OFF,
	API_LOG_ERROR,
	API_LOG_WARNING,
	API_LOG_INFO,
	API_LOG_DEBUG,
	API_LOG_TRACE,
};

/* `PUT /logger`. Every field optional; log_path "" keeps the current destination. */
struct api_logger {
	char log_path[API_PATH_LEN];
	bool has_level;
	enum api_log_level level;
	bool show_level;
	bool show_log_origin;
	char module[256];
};

enum api_snapshot_type { API_SNAPSHOT_FULL, API_SNAPSHOT_DIFF };

/* `PUT /snapshot/create`. mem_file_path "" means guest memory goes inside the snapshot file
 * (thaw's one-file format); Firecracker's separate memory file when set. */
struct api_snapshot_create {
	char snapshot_path[API_PATH_LEN];
	char mem_file_path[API_PATH_LEN];
	enum api_snapshot_type snapshot_type;
	/* thaw's "disk_checkpoint": "External" (1): each qcow2 drive's image becomes the
	 * snapshot's read-only base and the VM goes on on a new overlay over it;
	 * "Internal" (2): an internal snapshot in each qcow2 image, reverted to when the
	 * snapshot is loaded; "None" (0). */
	int disk_checkpoint;
};

enum api_mem_backend {
	API_MEM_BACKEND_NONE, /* memory is inside the snapshot file */
	API_MEM_BACKEND_FILE, /* backend_path: a separate memory file */
	API_MEM_BACKEND_UFFD, /* backend_path: the page-fault handler's unix socket */
};

struct api_net_override {
	char iface_id[API_ID_LEN];
	char host_dev_name[API_IFNAME_LEN];
};

/* thaw's addition to `PUT /snapshot/load`: a drive's new host file. */
struct api_drive_override {
	char drive_id[API_ID_LEN];
	char path_on_host[API_PATH_LEN];
	bool has_read_only; /* is_read_only given (it must then match the snapshot's) */
	bool is_read_only;
	/* thaw's: path_on_host is made a new qcow2 overlay over this file ("": none) */
	char overlay_of[API_PATH_LEN];
};

/* `PUT /snapshot/load`. The deprecated `mem_file_path` arrives as backend FILE; giving it
 * together with `mem_backend` is refused. track_dirty_pages is true when either
 * `track_dirty_pages` or the deprecated `enable_diff_snapshots` was true. */
struct api_snapshot_load {
	char snapshot_path[API_PATH_LEN];
	enum api_mem_backend backend_type;
	char backend_path[API_PATH_LEN];
	bool track_dirty_pages;
	bool resume_vm;
	bool clock_realtime;
	bool keep_generation; /* thaw's addition: keep the snapshot's VMGenID */
	uint32_t n_net_overrides;
	struct api_net_override net_overrides[API_MAX_NET_OVERRIDES];
	bool has_vsock_override;
	char vsock_uds_path[API_PATH_LEN];
	uint32_t n_drive_overrides;
	struct api_drive_override drive_overrides[API_MAX_DRIVE_OVERRIDES];
	/* "" or a directory: take the snapshot's own device paths, beneath it */
	char snapshot_paths[API_PATH_LEN];
};

/* `GET /vm/config` (and what `--config-file` configures): the boot source and devices, as
 * the API accepted them before boot or, after a snapshot load, as the VMM reports them. */
struct api_vm_config {
	/* The counts and flags first, together: a reset writes them, and spread between
	 * the arrays they kept five pages of 150 KiB dirty in every clone (issue 17). */
	bool has_boot_source, has_vsock, has_entropy;
	uint32_t n_drives, n_nets;
	struct api_boot_source boot;
	struct api_drive drives[API_MAX_DRIVES];
	struct api_net nets[API_MAX_NETS];
	struct api_vsock vsock;
	struct api_entropy entropy;
};

/* ---- what the VMM implements -------------------------------------------------------------- */

enum api_vm_state { API_VM_NOT_STARTED, API_VM_RUNNING, API_VM_PAUSED };

/* Filled by a failing callback. The message becomes the response's `fault_message`. */
struct api_error {
	/* HTTP status of the response; preset to 400 (Firecracker answers 400 for refused
	 * actions). Set 500 for faults of the VMM itself. */
	int status;
	/* For instance_start and snapshot_load only: a failure normally leaves the API in the
	 * failed state, refusing every further action, because the VM may be half built. Set
	 * this when the callback failed before changing anything (e.g. the snapshot file does
	 * not open or fails validation), so the process stays usable. */
	bool keep_state;
	char message[512];
};

/* printf into err->message (truncated to fit). */
void api_error_set(struct api_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* GET / */
struct api_instance_info {
	char id[API_ID_LEN];
	enum api_vm_state state;
};

/*
 * One callback per resource or action, all called on the thread that runs
 * api_server_dispatch(), one at a time, only for requests that parsed, validated and are
 * allowed in the current life-cycle phase (see docs/api.md). The struct pointers are valid for
 * the call only. Each `int` callback returns 0 on success, or a negative errno and fills `err`
 * (an empty message is replaced with strerror). A NULL callback makes its resource answer 400
 * "... is not supported by this VMM", so the VMM can fill the table as features land.
 * A callback must not call api_server_dispatch() or api_server_destroy(); it may call
 * api_server_flush_metrics(). Callbacks run on the API's thread and block it: the response
 * goes out when the callback returns.
 */
struct api_ops {
	/* GET /: identity and run state. Optional: without it the id is "thaw" and the state is
	 * what the API has seen (started/loaded, paused/resumed). */
	void (*describe)(void *ctx, struct api_instance_info *info);

	/* GET /machine-config, and the base a PATCH is merged onto. Optional: without it the
	 * API reports the last configuration accepted (defaults: 1 vCPU, 128 MiB). Implement
	 * it when a snapshot load changes the shape. */
	int (*get_machine_config)(void *ctx, struct api_machine_config *cfg, struct api_error *err);

	/* Pre-boot configuration (before InstanceStart, never after a load). Each call carries
	 * the complete resource; a second call for the same resource or id replaces it. */
	int (*put_machine_config)(void *ctx, const struct api_machine_config *cfg,
				  struct api_error *err);
	int (*put_boot_source)(void *ctx, const struct api_boot_source *boot,
			       struct api_error *err);
	int (*put_drive)(void *ctx, const struct api_drive *drive, struct api_error *err);
	int (*put_net)(void *ctx, const struct api_net *net, struct api_error *err);
	/* PATCH /drives/{id}, PATCH /network-interfaces/{id}: only after start or load (the
	 * VM may be paused or running). An id naming no device answers 400. */
	/* The MMDS store the VMM serves its guest from (PUT/PATCH/GET /mmds and PUT
	 * /mmds/config act on it directly). Optional: without it /mmds answers 400. */
	struct api_mmds *(*mmds)(void *ctx);
	int (*patch_drive)(void *ctx, const struct api_drive_patch *patch, struct api_error *err);
	int (*patch_net)(void *ctx, const struct api_net_patch *patch, struct api_error *err);
	int (*put_vsock)(void *ctx, const struct api_vsock *vsock, struct api_error *err);
	int (*put_entropy)(void *ctx, const struct api_entropy *entropy, struct api_error *err);
	/* PUT /cpu-config: a custom CPU template for the boot (a later PUT replaces it). */
	int (*put_cpu_config)(void *ctx, const struct api_cpu_config *cfg, struct api_error *err);

	/* `PUT /logger`, in any phase (the failed one too). Optional: without it the API redirects
	 * stderr (where vmm/log.h writes) to log_path and sets the level. */
	int (*put_logger)(void *ctx, const struct api_logger *logger, struct api_error *err);

	/* InstanceStart: boot the configured VM and run it; called only after a boot source
	 * was accepted. Success moves the API to Running; failure to the failed state unless
	 * err->keep_state. */
	int (*instance_start)(void *ctx, struct api_error *err);
	/* SendCtrlAltDel: only while started. */
	int (*send_ctrl_alt_del)(void *ctx, struct api_error *err);

	/* PATCH /vm {"state":"Paused"|"Resumed"}: only after start or load. Must be idempotent
	 * (pausing a paused VM succeeds). */
	int (*pause)(void *ctx, struct api_error *err);
	int (*resume)(void *ctx, struct api_error *err);

	/* PUT /snapshot/create: only after start or load. The VMM decides whether the VM must
	 * be paused first (Firecracker requires it) and whether Diff is supported. */
	int (*snapshot_create)(void *ctx, const struct api_snapshot_create *req,
			       struct api_error *err);
	/* PUT /snapshot/load: only in a fresh process (nothing but logger and metrics
	 * configured). On success the VM is running if req->resume_vm, else paused. Failure
	 * moves the API to the failed state unless err->keep_state. */
	int (*snapshot_load)(void *ctx, const struct api_snapshot_load *req, struct api_error *err);

	/* GET /vm/config after a snapshot load: fills `cfg` (zeroed by the caller) with the
	 * snapshot's boot command line and devices with their host sides. Optional: without
	 * it, or before a load, the API answers what it accepted itself. */
	int (*get_vm_config)(void *ctx, struct api_vm_config *cfg, struct api_error *err);

	/* FlushMetrics (and api_server_flush_metrics): a new json object whose members are
	 * written, with the API's own counters and a timestamp, as one line to the metrics
	 * file. The API takes the reference. Optional. Expected members include
	 * "latencies_us": {"load_snapshot": N, ...phases...}. */
	struct json_object *(*metrics)(void *ctx);
};

/* ---- the server --------------------------------------------------------------------------- */

struct api_server;

/* Binds and listens on `path` (non-blocking, close-on-exec). A stale socket file (nobody
 * accepting) is unlinked first; a socket something is listening on is refused with
 * -EADDRINUSE, any other existing file with -EEXIST. `ops` and `ctx` must outlive the
 * server. Returns 0 and *out, or -errno. */
int api_server_create(const char *path, const struct api_ops *ops, void *ctx,
		      struct api_server **out);

/* As api_server_create, without a socket (Firecracker's --no-api): the life cycle, the
 * configuration file, the logger and the metrics (with their periodic flush) work; no
 * client can connect. */
int api_server_create_headless(const struct api_ops *ops, void *ctx, struct api_server **out);

/* Firecracker's --config-file: `json` (len bytes) is a JSON object with the members of
 * GET /vm/config ("boot-source", "drives", "machine-config", "network-interfaces",
 * "vsock", "entropy", "logger", "metrics"; "balloon", "cpu-config" and "mmds-config"
 * are refused, naming the feature), each applied as its PUT would be (same validation,
 * same ops, same life cycle), logger and metrics first; with a boot source, the VM is
 * then started (InstanceStart). Call before the first api_server_dispatch(). 0, or
 * -errno with `err` naming the member and the reason; a failure leaves the process to
 * exit (the VM may be half configured). */
int api_server_apply_config(struct api_server *srv, const char *json, size_t len, char *err,
			    size_t errlen);

/* Firecracker's --log-path/--level/--show-level/--show-log-origin/--module and
 * --metrics-path: what PUT /logger and PUT /metrics do, before any request. 0 or -errno
 * with `err` filled. */
int api_server_put_logger(struct api_server *srv, const struct api_logger *l,
			  struct api_error *err);
int api_server_put_metrics(struct api_server *srv, const char *path, struct api_error *err);

/* A log level's name as Firecracker takes it ("Error", "warning", ...: any case) into
 * `out`; -EINVAL when it is none of them. */
int api_log_level_parse(const char *name, enum api_log_level *out);

/* The one descriptor to add to the caller's epoll set (EPOLLIN, level-triggered); readable
 * whenever api_server_dispatch() has work. Owned by the server. */
int api_server_fd(const struct api_server *srv);

/* Does everything that is ready (accepts, reads, runs complete requests through the ops,
 * writes, expires stalled requests) without blocking, then returns 0; a negative errno only
 * for a failure of the server itself (its epoll set). Clients' faults are answered and
 * logged rate-limited, never returned. */
int api_server_dispatch(struct api_server *srv);

/* Writes one metrics line now if `PUT /metrics` configured a destination (e.g. right
 * after a restore). 0, -ENOENT when not configured, or -errno of the write. */
int api_server_flush_metrics(struct api_server *srv);
/* The metrics destination's fd (-1 before PUT /metrics); for a VMM's last line written
 * from a signal handler as the process dies. Owned by the server. */
int api_server_metrics_fd(const struct api_server *srv);

/* Firecracker's api_server.process_startup_time_us and process_startup_time_cpu_us: how
 * long the process took to serve its API (wall clock and CPU, the parent's CPU time
 * included when the caller counted it), as `--start-time-us` and friends let it tell. */
void api_server_set_startup_times(struct api_server *srv, uint64_t wall_us, uint64_t cpu_us);

/* The periodic metrics flush's period (default API_DEFAULT_METRICS_PERIOD_MS); 0 turns it
 * off, for a VMM that calls api_server_flush_metrics() on its own schedule. */
void api_server_set_metrics_period(struct api_server *srv, unsigned int ms);

/* How long a started request may take to arrive in full (default
 * API_DEFAULT_REQUEST_TIMEOUT_MS). Call before the first api_server_dispatch(). */
void api_server_set_request_timeout(struct api_server *srv, unsigned int ms);

/* How long a connection may go without a complete request (default
 * API_DEFAULT_IDLE_TIMEOUT_MS; 0 means 1 ms) before it is closed; bytes that start no
 * request, such as CRLFs, do not reset it. Call before the first api_server_dispatch(). */
void api_server_set_idle_timeout(struct api_server *srv, unsigned int ms);

/* Gives the pages of the per-request scratch (the parsed request, the reply body) back
 * to the kernel: for a process that expects few requests from now on (thaw after a
 * launch), so an idle one keeps none of them. Call between dispatches; the next
 * request touches again what it uses. NULL is fine. */
void api_server_trim(struct api_server *srv);

/* The opposite, for a process whose next request is latency-critical (a prepared thaw
 * waiting for its load): faults in the pages that request will write (the load's parsed
 * request, the reply body's first page) and keeps a connection mapped and faulted in
 * for the next accept. NULL is fine. */
void api_server_warm(struct api_server *srv);

/* Closes every connection and the listener, unlinks the socket file, frees. NULL is fine. */
void api_server_destroy(struct api_server *srv);

/* ---- the same transport with another router (thaw-pool) ------------------------------------ */

/* What a router answers. `body` is malloc'd (or NULL for none, e.g. with 204) and owned by
 * the transport once the router returns. Its size is not capped here, but our client
 * (api_client_request) keeps API_MAX_BODY_BYTES of it: routers bound their replies. */
struct api_http_reply {
	int status;
	char *body;
	size_t len;
};

/* One complete request: the method's name ("GET"), the URL's path (query dropped,
 * NUL-terminated, at most API_MAX_URL_BYTES) and the body (NUL-terminated, `body_len`
 * bytes, at most API_MAX_BODY_BYTES). The router fills `reply`; runs on the thread of
 * api_server_dispatch() and must not call it or api_server_destroy(). */
typedef void (*api_router_fn)(void *ctx, const char *method, const char *path, const char *body,
			      size_t body_len, struct api_http_reply *reply);

/* As api_server_create(), but every request goes to `route`: the connection handling,
 * caps, timeouts and malformed-request replies are thaw's API's; resources, life cycle
 * and metrics are the router's (PUT /metrics and friends are not served). */
int api_server_create_router(const char *path, api_router_fn route, void *ctx,
			     struct api_server **out);

/* Fills `r` with {"fault_message": "..."} and `status`. On allocation failure the reply
 * is a 500 without a body. */
void api_http_reply_fault(struct api_http_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills `r` with `o` serialised (takes the reference to `o`) and `status`. */
void api_http_reply_json(struct api_http_reply *r, int status, struct json_object *o);

/* ---- the client (thawctl, tests, benchmarks) ----------------------------------------------- */

struct api_response {
	int status;
	char body[API_MAX_BODY_BYTES + 1]; /* NUL-terminated; truncated past the cap */
	size_t body_len;
	bool keep_alive;
};

/* Connects to the API socket (blocking, close-on-exec). Returns the fd or -errno. */
int api_client_connect(const char *path);

/* Sends one request (`body` NULL for none; JSON bodies get Content-Type) and reads its
 * response on `fd`, keeping the connection open. Returns 0 or -errno (-EPROTO for a
 * response http_parser rejects, -ECONNRESET when the server closed first). */
int api_client_request(int fd, const char *method, const char *path, const char *body,
		       struct api_response *resp);
/* Its first half: the request, head and body in one sendmsg (a server reading the head
 * alone would wait a round trip for the body). 0 or -errno. */
int api_client_send(int fd, const char *method, const char *path, const char *body);

/* Reads one response from `fd` (for callers that wrote raw bytes themselves). Bytes read
 * past the end of that response are lost, so pipelining callers read with one
 * api_client_read_responses() instead. */
int api_client_read_response(int fd, struct api_response *resp);

/* Reads exactly `n` pipelined responses from `fd` into resp[0..n-1]. */
int api_client_read_responses(int fd, struct api_response *resp, size_t n);

/* The fault_message of an error body, copied into buf (the whole body when it has none). */
void api_client_fault_message(const struct api_response *resp, char *buf, size_t len);

/* ---- MMDS (api/mmds.c): the metadata store and the guest's HTTP service ---------------- */

/* Firecracker's default limit on the store (its API payload limit), bytes serialized. */
#define API_MMDS_DEFAULT_LIMIT 51200
#define API_MMDS_DEFAULT_IPV4  0xa9fea9feu /* 169.254.169.254, host order */
#define API_MMDS_MAX_IFACES    8

enum api_mmds_version { API_MMDS_V1, API_MMDS_V2 };

/* `PUT /mmds/config`: which interfaces reach MMDS, at which address, which version. */
struct api_mmds_config {
	enum api_mmds_version version;
	uint32_t ipv4;	  /* host order */
	bool imds_compat; /* always the IMDS text format, whatever Accept says */
	unsigned nr_ifaces;
	char ifaces[API_MMDS_MAX_IFACES][API_ID_LEN];
};

struct api_mmds;

/* An empty store (an object, answering 404 to the guest until the first PUT or PATCH)
 * of at most `limit` bytes (0: API_MMDS_DEFAULT_LIMIT), V1 at 169.254.169.254. */
int api_mmds_create(size_t limit, struct api_mmds **out);
void api_mmds_destroy(struct api_mmds *m);
const struct api_mmds_config *api_mmds_get_config(const struct api_mmds *m);
/* Takes `cfg` (validated by the caller) and forgets every V2 session token. */
void api_mmds_set_config(struct api_mmds *m, const struct api_mmds_config *cfg);
/* PUT /mmds: `o` (an object; the store takes a reference) replaces the store. PATCH
 * /mmds: `o` is merged into it as RFC 7396 says. Either fails, changing nothing, on
 * something other than an object or when the result would pass the limit; `err` says
 * which. 0 or -errno. */
int api_mmds_put(struct api_mmds *m, struct json_object *o, struct api_error *err);
int api_mmds_patch(struct api_mmds *m, struct json_object *o, struct api_error *err);
/* GET /mmds: the store (borrowed: valid until the next put or patch). */
struct json_object *api_mmds_get(const struct api_mmds *m);
/* One guest HTTP request from the start of `in` (untrusted bytes from the guest's TCP
 * stream). Returns the bytes it took (then *out is a complete HTTP/1.1 response of
 * *out_len bytes, malloc'd, for the caller to send and free), 0 when `in` holds no
 * complete request yet, or -ENOMEM. A malformed request gets a 400 response and takes
 * all of `in`. `now_ns` is CLOCK_MONOTONIC, for V2 token lifetimes. */
ssize_t api_mmds_http(struct api_mmds *m, const char *in, size_t in_len, uint64_t now_ns,
		      char **out, size_t *out_len);
/* Guest requests served, and of those the ones answered with an error. */
void api_mmds_counts(const struct api_mmds *m, uint64_t *requests, uint64_t *rejected);

/* ---- JSON records on disk (api/jsonfile.c) ---------------------------------------------- */

/* Writes `o` (json_object_to_json_string_ext `flags`) and a newline to `path` atomically:
 * into "<path>.tmp", fsync'd when `durable`, renamed over `path`. Not durable is for
 * records of processes, which a machine crash ends anyway: a crash of the writer still
 * leaves one whole record. 0 or -errno (no file left under either name on failure). */
int api_json_write_file(const char *path, struct json_object *o, int flags, bool durable);
/* Copies string member `key` of `o` into `dst` (capacity `cap`, NUL included). -EINVAL
 * when it is missing or not a string, -ENAMETOOLONG when it does not fit. */
int api_json_get_str(struct json_object *o, const char *key, char *dst, size_t cap);

#endif
