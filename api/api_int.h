/* Private to api/: the server's and a connection's state, shared by the transport
 * (server.c), the router (route.c) and the fuzz target. */
#ifndef THAW_API_INT_H
#define THAW_API_INT_H

#include "api/api.h"

#include <http_parser.h>
#include <json-c/json.h>
#include <sys/un.h>

/* Unparsed input kept between reads: at most one read's worth (http_parser consumes what it is
 * given, except after a complete request while its response waits for room). */
#define API_IN_CAP 16384
/* Queued responses; a request is processed only when a whole response fits. */
#define API_OUT_CAP 16384
/* The largest response body the router produces (escaped fault messages included). */
#define API_REPLY_MAX	  4096
#define API_RESP_HEAD_MAX 256

/* The life cycle as the API enforces it (docs/api.md, "State rules"). */
enum api_phase {
	API_PHASE_FRESH,       /* nothing configured but logger/metrics: load allowed */
	API_PHASE_CONFIGURING, /* some boot resource accepted: load refused */
	API_PHASE_STARTED,     /* booted or loaded: configuration refused */
	API_PHASE_FAILED,      /* a start or load failed midway: everything refused */
};

/* One request as http_parser hands it over, copied out of the read buffer. */
struct api_req {
	enum http_method method;
	size_t url_len;
	size_t body_len;
	size_t header_bytes;
	int reject;		     /* 413/414/431 decided while parsing; 0 when fine */
	bool in_value;		     /* the last header callback was a value */
	bool in_progress;	     /* message begun, not complete */
	uint8_t hname_len, hval_len; /* of the current header, saturating at the arrays' size */
	char hname[8];		     /* enough to recognise "Expect" */
	char hval[16];		     /* enough to recognise "100-continue" */
	bool expect_continue;
	char url[API_MAX_URL_BYTES + 1];
	char body[API_MAX_BODY_BYTES + 1];
};

struct api_conn {
	struct api_server *srv;
	int fd;	      /* -1 for the fuzz target's socketless connections */
	bool dead;    /* closed; freed at the end of the dispatch */
	bool closing; /* close once `out` is drained */
	bool peer_eof;
	uint32_t events;      /* current epoll interest */
	uint64_t deadline_ns; /* partial request or undrained output must finish by; 0: none */
	/* Accepted, or last request complete: the last progress. Bytes that make no
	 * request (CRLFs between requests) do not count; idle_timeout_ms after this an
	 * idle connection is closed, and at the cap the oldest makes room. */
	uint64_t idle_since_ns;
	struct api_conn *next_dead;
	/* A reply body too large for `out` (another router's): sent after `out`, and no
	 * further request is processed until it is gone. Owned; NULL when none. */
	char *big;
	size_t big_off, big_len;
	http_parser parser;
	struct api_req req;
	size_t in_len;
	size_t out_off, out_len;
	char in[API_IN_CAP];
	char out[API_OUT_CAP];
};

struct api_reply {
	int status;
	size_t len;
	char body[API_REPLY_MAX];
	/* A body larger than `body` (GET /vm/config): malloc'd, taken over by the transport;
	 * NULL for none. */
	char *big;
	size_t big_len;
};

/* Firecracker's per-resource request counters (get_api_requests, put_api_requests,
 * patch_api_requests): each is written as the change since the last metrics line, as
 * Firecracker's SharedIncMetric is. */
enum api_req_metric {
	RM_GET_INSTANCE_INFO,
	RM_GET_MACHINE_CFG,
	RM_GET_MMDS,
	RM_GET_VMM_VERSION,
	RM_GET_VM_CONFIG, /* not one of Firecracker's: reported under "thaw" */
	RM_PUT_ACTIONS,
	RM_PUT_BOOT_SOURCE,
	RM_PUT_DRIVE,
	RM_PUT_LOGGER,
	RM_PUT_MACHINE_CFG,
	RM_PUT_CPU_CFG,
	RM_PUT_METRICS,
	RM_PUT_NETWORK,
	RM_PUT_MMDS,
	RM_PUT_VSOCK,
	RM_PUT_ENTROPY,		/* thaw's */
	RM_PUT_SNAPSHOT_CREATE, /* thaw's */
	RM_PUT_SNAPSHOT_LOAD,	/* thaw's */
	RM_PATCH_DRIVE,
	RM_PATCH_NETWORK,
	RM_PATCH_MACHINE_CFG,
	RM_PATCH_MMDS,
	RM_PATCH_VM, /* thaw's */
	RM_COUNT,
};

struct api_inc {
	uint64_t cur, prev; /* total, and total at the last metrics line */
};

struct api_counters {
	struct api_inc req_count[RM_COUNT], req_fails[RM_COUNT];
	uint64_t last_pause_us, last_resume_us; /* PATCH /vm, request to reply */
	bool last_create_was_diff;
	uint64_t requests;
	uint64_t status_2xx, status_4xx, status_5xx;
	uint64_t bad_http; /* malformed or oversized requests */
	uint64_t timeouts; /* request, output and idle timeouts */
	uint64_t conns_accepted;
	uint64_t conns_refused;		/* closed at the cap to make room for a new one */
	uint64_t last_load_snapshot_us; /* request handling of PUT /snapshot/load, parse included */
	uint64_t last_create_snapshot_us;
	uint64_t last_instance_start_us;
	uint64_t metrics_missed; /* lines dropped: the metrics pipe was full */
	uint64_t metrics_fails;	 /* lines whose write failed otherwise */
	/* What the process measured of its start (Firecracker's api_server group); set by
	 * api_server_set_startup_times, 0 when not. */
	uint64_t startup_us, startup_cpu_us;
};

struct api_server {
	/* What every request or reply writes comes first, the large and rarely written
	 * arrays (the failure text, the logger's and the metrics' paths, the request
	 * scratch) last: an idle clone keeps one or two pages of the 160 KiB dirty
	 * instead of every page a scalar lands in (issue 17). */
	const struct api_ops *ops;
	void *ctx;
	/* Another router than thaw's (api_server_create_router); NULL for api_route. */
	api_router_fn router;
	void *router_ctx;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd, ep_fd, timer_fd;
	uint64_t timer_armed_ns; /* deadline the timerfd is set to; 0: disarmed */
	unsigned int timeout_ms;
	unsigned int idle_timeout_ms;
	unsigned int n_conns;
	struct api_conn *conns[API_MAX_CONNS];
	http_parser_settings settings;
	struct json_tokener *tok;

	enum api_phase phase;
	bool boot_source_set;
	bool paused;
	bool loaded;			/* started by a snapshot load, not InstanceStart */
	struct api_machine_config mcfg; /* last accepted, for GET without get_machine_config */
	struct api_vm_config *vmcfg;	/* what pre-boot PUTs were accepted, for GET /vm/config */
	bool has_logger;
	int metrics_fd;
	/* The tail of a metrics line a full pipe cut short (owned); written first next time. */
	char *metrics_pending;
	size_t metrics_pending_off, metrics_pending_len;
	int metrics_timer_fd;		/* periodic flush; -1 until PUT /metrics */
	unsigned int metrics_period_ms; /* 0: no periodic flush */
	struct api_counters cnt;

	struct api_conn *dead;	/* closed this dispatch, freed at its end */
	struct api_conn *spare; /* api_server_warm's, taken by the next accept */
	bool warm;		/* api_server_warm until api_server_trim: keep a spare */
	struct api_reply reply;
	char failed_reason[600];
	struct api_logger logger; /* the last PUT /logger accepted */
	char metrics_path[API_PATH_LEN];
	/* Request structs are large (paths): one scratch area instead of the stack. */
	union {
		struct api_boot_source boot;
		struct api_machine_config mcfg;
		struct api_drive drive;
		struct api_net net;
		struct api_drive_patch drive_patch;
		struct api_cpu_config cpu_config;
		struct api_net_patch net_patch;
		struct api_vsock vsock;
		struct api_entropy entropy;
		struct api_logger logger;
		struct api_snapshot_create screate;
		struct api_snapshot_load sload;
	} scratch;
};

/* route.c: one complete request to a reply in srv->reply. */
void api_route(struct api_server *srv, enum http_method method, const char *url, size_t url_len,
	       const char *body, size_t body_len);
/* server.c: starts the periodic metrics flush once a destination is configured. */
int api_metrics_timer_start(struct api_server *srv);
/* route.c: opens a log or metrics destination as Firecracker does (read-write,
 * non-blocking, created if missing): an fd, or -errno with err filled. */
int api_open_output(const char *path, struct api_error *err, const char *what);
/* route.c: a {"fault_message"} reply. */
void api_reply_fault(struct api_server *srv, int status, const char *msg);
/* route.c: defaults of the state machine and the counters. */
void api_state_init(struct api_server *srv);

/* server.c, for the fuzz target: a connection without a socket; api_conn_feed() parses
 * bytes and queues responses in conn->out (drained by the caller). */
struct api_conn *api_conn_new(struct api_server *srv, int fd);
void api_conn_feed(struct api_conn *c, const char *data, size_t len);
void api_conn_free(struct api_conn *c);
/* The parser settings every connection uses. */
void api_parser_settings_init(http_parser_settings *s);

#endif
