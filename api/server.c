/* The transport: a listening unix socket, non-blocking connections, http_parser, response
 * queues and a timer, all inside one private epoll set so the VMM polls a single fd.
 *
 * Each connection parses with its own http_parser into its own buffers, so a client that
 * stalls mid-request holds nothing but its own connection (and loses it after the request
 * timeout). A connection that completes no request for the idle timeout is closed, and at
 * the connection cap the one idle the longest makes room for the newcomer, so neither idle
 * nor CRLF-trickling sockets can lock clients out. Requests are executed as soon as they are
 * complete, in order; the parser is paused after each one so a pipelining client that does not read
 * its responses stops being read instead of growing a queue. */
#include "api/api_int.h"
#include "common/log.h"
#include "common/pages.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Room a request must find in `out` before it is processed: its response and a 100 Continue. */
#define OUT_NEEDED (API_REPLY_MAX + API_RESP_HEAD_MAX + 32)

/* ---- http_parser callbacks ------------------------------------------------------------------ */

static int header_bytes_add(struct api_req *r, size_t len)
{
	r->header_bytes += len;
	if (r->header_bytes > API_MAX_HEADER_BYTES) {
		r->reject = 431;
		return -1;
	}
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct api_conn *c = p->data;
	struct api_req *r = &c->req;

	r->url_len = 0;
	r->body_len = 0;
	r->header_bytes = 0;
	r->reject = 0;
	r->in_value = false;
	r->hname_len = 0;
	r->hval_len = 0;
	r->expect_continue = false;
	r->in_progress = true;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct api_req *r = &((struct api_conn *)p->data)->req;

	if (r->url_len + len > API_MAX_URL_BYTES) {
		r->reject = 414;
		return -1;
	}
	memcpy(r->url + r->url_len, at, len);
	r->url_len += len;
	return header_bytes_add(r, len);
}

/* Only Expect matters to us; its name and value may arrive in several pieces. */
static void header_done(struct api_req *r)
{
	if (r->hname_len == 6 && !strncasecmp(r->hname, "expect", 6) && r->hval_len == 12 &&
	    !strncasecmp(r->hval, "100-continue", 12))
		r->expect_continue = true;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct api_req *r = &((struct api_conn *)p->data)->req;
	size_t k;

	if (r->in_value) {
		header_done(r);
		r->in_value = false;
		r->hname_len = 0;
		r->hval_len = 0;
	}
	for (k = 0; k < len && r->hname_len < sizeof(r->hname); k++)
		r->hname[r->hname_len++] = at[k];
	if (k < len)
		r->hname_len = sizeof(r->hname); /* too long to be Expect */
	/* ": " and CRLF count against the cap too. */
	return header_bytes_add(r, len + 4);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct api_req *r = &((struct api_conn *)p->data)->req;
	size_t k;

	r->in_value = true;
	for (k = 0; k < len && r->hval_len < sizeof(r->hval); k++)
		r->hval[r->hval_len++] = at[k];
	if (k < len)
		r->hval_len = sizeof(r->hval);
	return header_bytes_add(r, len);
}

static int on_headers_complete(http_parser *p)
{
	struct api_conn *c = p->data;
	struct api_req *r = &c->req;
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	if (r->in_value)
		header_done(r);
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > API_MAX_BODY_BYTES) {
		r->reject = 413;
		return -1;
	}
	/* curl waits a second for this before sending a larger body. */
	if (r->expect_continue && API_OUT_CAP - c->out_len >= sizeof(cont) - 1) {
		memcpy(c->out + c->out_len, cont, sizeof(cont) - 1);
		c->out_len += sizeof(cont) - 1;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct api_req *r = &((struct api_conn *)p->data)->req;

	/* Chunked bodies announce no length: the cap applies as they arrive. */
	if (r->body_len + len > API_MAX_BODY_BYTES) {
		r->reject = 413;
		return -1;
	}
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct api_conn *c = p->data;

	c->req.in_progress = false;
	c->deadline_ns = 0;
	c->idle_since_ns = now_ns(); /* progress: a whole request */
	/* Hand control back after every request: the caller executes it, then resumes. */
	http_parser_pause(p, 1);
	return 0;
}

void api_parser_settings_init(http_parser_settings *s)
{
	http_parser_settings_init(s);
	s->on_message_begin = on_message_begin;
	s->on_url = on_url;
	s->on_header_field = on_header_field;
	s->on_header_value = on_header_value;
	s->on_headers_complete = on_headers_complete;
	s->on_body = on_body;
	s->on_message_complete = on_message_complete;
}

/* ---- responses ------------------------------------------------------------------------------- */

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 409:
		return "Conflict";
	case 429:
		return "Too Many Requests";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return status < 500 ? "Bad Request" : "Internal Server Error";
	}
}

/* Queues srv->reply on `c`; the caller made sure OUT_NEEDED bytes are free. */
static void queue_reply(struct api_conn *c, bool close)
{
	struct api_server *srv = c->srv;
	const struct api_reply *r = &srv->reply;
	char *o = c->out + c->out_len;
	size_t room = API_OUT_CAP - c->out_len;
	int n;

	if (r->status < 300)
		srv->cnt.status_2xx++;
	else if (r->status < 500)
		srv->cnt.status_4xx++;
	else
		srv->cnt.status_5xx++;
	/* RFC 9110: no Content-Length on a 204. */
	if (r->status == 204)
		n = snprintf(o, room, "HTTP/1.1 204 No Content\r\nServer: thaw\r\n%s\r\n",
			     close ? "Connection: close\r\n" : "");
	else
		n = snprintf(o, room,
			     "HTTP/1.1 %d %s\r\nServer: thaw\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\n%s\r\n",
			     r->status, reason(r->status), r->len,
			     close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n + r->len > room)
		return; /* cannot happen with OUT_NEEDED free; never overflow if it does */
	memcpy(o + n, r->body, r->len);
	c->out_len += (size_t)n + r->len;
}

/* A reply body larger than srv->reply holds: its head goes in `out`, the body (malloc'd,
 * taken over) in c->big, sent after it. */
static void queue_big(struct api_conn *c, int status, char *body, size_t len, bool close)
{
	struct api_server *srv = c->srv;
	int n;

	if (status < 300)
		srv->cnt.status_2xx++;
	else if (status < 500)
		srv->cnt.status_4xx++;
	else
		srv->cnt.status_5xx++;
	n = snprintf(c->out + c->out_len, API_OUT_CAP - c->out_len,
		     "HTTP/1.1 %d %s\r\nServer: thaw\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n%s\r\n",
		     status, reason(status), len, close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n > API_OUT_CAP - c->out_len) {
		free(body); /* cannot happen with OUT_NEEDED free */
		return;
	}
	c->out_len += (size_t)n;
	c->big = body;
	c->big_off = 0;
	c->big_len = len;
}

/* Another router's request: its reply goes out through srv->reply when it fits, else as a
 * head in `out` and the body in c->big. */
static void route_other(struct api_conn *c, bool close)
{
	struct api_server *srv = c->srv;
	struct api_http_reply hr = {.status = 500};
	struct http_parser_url u;
	char path[API_MAX_URL_BYTES + 1];
	const char *method = http_method_str((enum http_method)c->parser.method);
	size_t plen;

	srv->cnt.requests++;
	c->req.body[c->req.body_len] = '\0';
	http_parser_url_init(&u);
	if (http_parser_parse_url(c->req.url, c->req.url_len, 0, &u) ||
	    !(u.field_set & (1 << UF_PATH)) ||
	    memchr(c->req.url + u.field_data[UF_PATH].off, '\0', u.field_data[UF_PATH].len)) {
		api_reply_fault(srv, 400, "Invalid request URL.");
		queue_reply(c, close);
		return;
	}
	plen = u.field_data[UF_PATH].len;
	memcpy(path, c->req.url + u.field_data[UF_PATH].off, plen);
	path[plen] = '\0';
	srv->router(srv->router_ctx, method, path, c->req.body, c->req.body_len, &hr);
	if (!hr.body)
		hr.len = 0;
	if (hr.len <= API_REPLY_MAX) {
		srv->reply.status = hr.status;
		srv->reply.len = hr.len;
		if (hr.len)
			memcpy(srv->reply.body, hr.body, hr.len);
		free(hr.body);
		queue_reply(c, close);
		return;
	}
	queue_big(c, hr.status, hr.body, hr.len, close);
}

static void reply_bad_http(struct api_conn *c, enum http_errno e)
{
	struct api_server *srv = c->srv;
	char msg[160];
	int status = c->req.reject ? c->req.reject : 400;

	srv->cnt.bad_http++;
	switch (status) {
	case 413:
		snprintf(msg, sizeof(msg), "The request body exceeds %d bytes.",
			 API_MAX_BODY_BYTES);
		break;
	case 414:
		snprintf(msg, sizeof(msg), "The request URL exceeds %d bytes.", API_MAX_URL_BYTES);
		break;
	case 431:
		snprintf(msg, sizeof(msg), "The request headers exceed %d bytes.",
			 API_MAX_HEADER_BYTES);
		break;
	default:
		snprintf(msg, sizeof(msg), "Malformed HTTP request: %s.",
			 http_errno_description(e));
		break;
	}
	log_ratelimited(LOG_WARN, "api: %d on connection %d: %s", status, c->fd, msg);
	api_reply_fault(srv, status, msg);
	c->closing = true;
	queue_reply(c, true);
}

/* ---- connections ----------------------------------------------------------------------------- */

/* A connection is ~100 KiB, nearly all of it buffer room a request rarely fills (the
 * largest body the API takes, 64 KiB). It gets its own mapping rather than the heap, so
 * only the pages a request touches are ever used and all of them go back at close:
 * from the heap, each one was zeroed whole (calloc reuses what the last connection
 * freed) and stayed dirty in every idle clone (issue 17). */
static struct api_conn *conn_map(void)
{
	struct api_conn *c =
	    mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return c == MAP_FAILED ? NULL : c;
}

struct api_conn *api_conn_new(struct api_server *srv, int fd)
{
	/* A spare is as fresh as a new mapping: zero, never used. */
	struct api_conn *c = srv->spare ? srv->spare : conn_map();

	if (!c)
		return NULL;
	srv->spare = NULL;
	c->srv = srv;
	c->fd = fd;
	c->idle_since_ns = now_ns();
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	return c;
}

void api_conn_free(struct api_conn *c)
{
	struct api_server *srv;

	if (!c)
		return;
	free(c->big);
	srv = c->srv;
	/* A warm server keeps a closed connection as its spare, its pages still faulted
	 * in (a pool's readiness probe must not use up the one the load is to get): as
	 * fresh as a new mapping for everything that is not a buffer's contents. */
	if (srv && srv->warm && !srv->spare) {
		memset(c, 0, offsetof(struct api_conn, req.url));
		c->in_len = c->out_off = c->out_len = 0;
		srv->spare = c;
		return;
	}
	munmap(c, sizeof(*c));
}

/* Parses and executes what is buffered, as far as the output queue has room. */
static void conn_process(struct api_conn *c)
{
	struct api_server *srv = c->srv;
	size_t off = 0;

	while (off < c->in_len && !c->closing && !c->big) {
		enum http_errno e;
		size_t n;

		if (API_OUT_CAP - c->out_len < OUT_NEEDED) {
			if (c->out_off == 0)
				break;
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
			if (API_OUT_CAP - c->out_len < OUT_NEEDED)
				break;
		}
		n = http_parser_execute(&c->parser, &srv->settings, c->in + off, c->in_len - off);
		off += n;
		e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			bool keep = http_should_keep_alive(&c->parser);

			http_parser_pause(&c->parser, 0);
			if (!keep)
				c->closing = true;
			if (srv->router) {
				route_other(c, !keep);
				continue;
			}
			api_route(srv, (enum http_method)c->parser.method, c->req.url,
				  c->req.url_len, c->req.body, c->req.body_len);
			if (srv->reply.big) {
				queue_big(c, srv->reply.status, srv->reply.big, srv->reply.big_len,
					  !keep);
				srv->reply.big = NULL;
			} else {
				queue_reply(c, !keep);
			}
		} else if (e != HPE_OK || n == 0) {
			/* n == 0 without an error would loop forever; http_parser stops like
			 * that after an Upgrade/CONNECT it hands over, which we do not speak. */
			reply_bad_http(c, e);
			off = c->in_len;
		}
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

static void conn_kill(struct api_conn *c)
{
	struct api_server *srv = c->srv;
	unsigned int i;

	if (c->dead)
		return;
	c->dead = true;
	if (c->fd >= 0) {
		epoll_ctl(srv->ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	for (i = 0; i < srv->n_conns; i++)
		if (srv->conns[i] == c) {
			srv->conns[i] = srv->conns[--srv->n_conns];
			/* Later events of this epoll batch may still name c: free it after. */
			c->next_dead = srv->dead;
			srv->dead = c;
			break;
		}
	/* Not in the table: a socketless (fuzz) connection, freed by its owner. */
}

/* Sends buf[*off, len) as far as the socket takes it: 1 when all of it is out, 0 when
 * the socket is full (the rest waits for EPOLLOUT), -1 when the connection died. */
static int conn_send(struct api_conn *c, const char *buf, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n;

		if (c->fd < 0) { /* the fuzz target's connections have nowhere to send */
			*off = len;
			break;
		}
		n = send(c->fd, buf + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			log_ratelimited(LOG_INFO, "api: send on connection %d: %s", c->fd,
					strerror(errno));
			conn_kill(c);
			return -1;
		}
		*off += (size_t)n;
		/* A client that reads is making progress: its output deadline starts over. */
		if (!c->req.in_progress)
			c->deadline_ns = 0;
	}
	return 1;
}

/* Sends what is queued (the buffered responses, then a large body behind them); 0, or
 * -1 when the connection died. */
static int conn_flush(struct api_conn *c)
{
	int ret = conn_send(c, c->out, c->out_len, &c->out_off);

	if (ret <= 0)
		return ret;
	c->out_off = c->out_len = 0;
	if (!c->big)
		return 0;
	ret = conn_send(c, c->big, c->big_len, &c->big_off);
	if (ret <= 0)
		return ret;
	free(c->big);
	c->big = NULL;
	return 0;
}

static void conn_update_events(struct api_conn *c)
{
	uint32_t ev = 0;
	struct epoll_event e;

	if (!c->closing && !c->peer_eof && c->in_len < API_IN_CAP &&
	    API_OUT_CAP - c->out_len >= OUT_NEEDED && !c->big)
		ev |= EPOLLIN;
	if (c->out_off < c->out_len || c->big)
		ev |= EPOLLOUT;
	if (ev == c->events || c->fd < 0)
		return;
	e.events = ev;
	e.data.ptr = c;
	if (epoll_ctl(c->srv->ep_fd, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
	else
		conn_kill(c);
}

/* Processes and sends until blocked on the client; closes when the exchange is over. */
static void conn_service(struct api_conn *c)
{
	for (;;) {
		conn_process(c);
		if (conn_flush(c) < 0)
			return;
		/* Input left over means output was full; now that it drained, go on. */
		if (!c->in_len || c->closing || c->out_len || c->big)
			break;
	}
	if (c->out_len == 0 && !c->big && (c->closing || (c->peer_eof && c->in_len == 0))) {
		conn_kill(c);
		return;
	}
	if (c->req.in_progress || c->out_len || c->big) {
		if (!c->deadline_ns)
			c->deadline_ns = now_ns() + (uint64_t)c->srv->timeout_ms * 1000000ull;
	} else {
		c->deadline_ns = 0;
	}
	conn_update_events(c);
}

void api_conn_feed(struct api_conn *c, const char *data, size_t len)
{
	while (len && !c->dead && !c->closing) {
		size_t n = API_IN_CAP - c->in_len;

		if (n > len)
			n = len;
		memcpy(c->in + c->in_len, data, n);
		c->in_len += n;
		data += n;
		len -= n;
		conn_service(c);
	}
}

static void conn_readable(struct api_conn *c)
{
	ssize_t n;

	if (c->in_len < API_IN_CAP && !c->peer_eof) {
		n = recv(c->fd, c->in + c->in_len, API_IN_CAP - c->in_len, MSG_DONTWAIT);
		if (n > 0) {
			c->in_len += (size_t)n;
		} else if (n == 0) {
			c->peer_eof = true;
			/* A request cut short by the client's close is dropped unanswered. */
			if (c->req.in_progress && c->in_len == 0)
				c->closing = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			conn_kill(c);
			return;
		}
	}
	conn_service(c);
}

/* Closes the connection idle the longest: refusing the newcomer instead would let
 * API_MAX_CONNS idle sockets lock every client out. */
static void make_room(struct api_server *srv)
{
	struct api_conn *oldest = srv->conns[0];

	for (unsigned int i = 1; i < srv->n_conns; i++)
		if (srv->conns[i]->idle_since_ns < oldest->idle_since_ns)
			oldest = srv->conns[i];
	srv->cnt.conns_refused++;
	log_ratelimited(LOG_WARN,
			"api: %d connections open, closing connection %d (idle %llu ms) for a "
			"new one",
			API_MAX_CONNS, oldest->fd,
			(unsigned long long)((now_ns() - oldest->idle_since_ns) / 1000000));
	conn_kill(oldest);
}

static void accept_all(struct api_server *srv)
{
	for (;;) {
		struct epoll_event e;
		struct api_conn *c;
		int fd;

		fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_ratelimited(LOG_WARN, "api: accept4: %s", strerror(errno));
			return;
		}
		if (srv->n_conns >= API_MAX_CONNS)
			make_room(srv);
		c = api_conn_new(srv, fd);
		if (!c) {
			close(fd);
			continue;
		}
		e.events = EPOLLIN;
		e.data.ptr = c;
		if (epoll_ctl(srv->ep_fd, EPOLL_CTL_ADD, fd, &e) < 0) {
			log_ratelimited(LOG_WARN, "api: epoll_ctl add: %s", strerror(errno));
			close(fd);
			api_conn_free(c);
			continue;
		}
		c->events = EPOLLIN;
		srv->conns[srv->n_conns++] = c;
		srv->cnt.conns_accepted++;
	}
}

/* When `c` is closed unless something changes: its request or output deadline while it
 * has one, else the idle timeout after its last progress. */
static uint64_t conn_due(const struct api_conn *c)
{
	if (c->deadline_ns)
		return c->deadline_ns;
	return c->idle_since_ns + (uint64_t)c->srv->idle_timeout_ms * 1000000ull;
}

static void expire(struct api_server *srv)
{
	uint64_t now = now_ns(), ticks;
	unsigned int i;

	if (read(srv->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_WARN, "api: read timerfd: %s", strerror(errno));
	srv->timer_armed_ns = 0; /* one-shot: spent */
	for (i = 0; i < srv->n_conns;) {
		struct api_conn *c = srv->conns[i];

		if (conn_due(c) > now) {
			i++;
			continue;
		}
		srv->cnt.timeouts++;
		if (!c->deadline_ns) {
			/* Idle: HTTP lets a server close a kept-alive connection between
			 * requests, without an answer. */
			log_ratelimited(LOG_INFO, "api: connection %d idle for %u ms, closing",
					c->fd, srv->idle_timeout_ms);
			conn_kill(c);
			continue;
		}
		log_ratelimited(LOG_INFO, "api: connection %d timed out %s", c->fd,
				c->req.in_progress ? "mid-request" : "not reading its responses");
		if (c->req.in_progress && API_OUT_CAP - c->out_len >= OUT_NEEDED) {
			char msg[96];

			snprintf(msg, sizeof(msg),
				 "The request did not arrive in full within %u ms.",
				 srv->timeout_ms);
			api_reply_fault(srv, 408, msg);
			queue_reply(c, true);
			conn_flush(c);
		}
		conn_kill(c); /* removes conns[i]; the same index now holds another */
	}
}

static int ep_add(int ep, int fd, void *tag)
{
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = tag};

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static void metrics_tick(struct api_server *srv)
{
	uint64_t ticks;
	int ret;

	if (read(srv->metrics_timer_fd, &ticks, sizeof(ticks)) < 0)
		return;
	ret = api_server_flush_metrics(srv);
	if (ret < 0)
		log_ratelimited(LOG_WARN, "api: periodic metrics flush: %s", strerror(-ret));
}

int api_metrics_timer_start(struct api_server *srv)
{
	struct itimerspec its;
	int fd, ret;

	if (!srv->metrics_period_ms || srv->metrics_timer_fd >= 0 || srv->ep_fd < 0)
		return 0;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = srv->metrics_period_ms / 1000;
	its.it_value.tv_nsec = (long)(srv->metrics_period_ms % 1000) * 1000000;
	its.it_interval = its.it_value;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = ep_add(srv->ep_fd, fd, &srv->metrics_timer_fd);
	if (ret) {
		close(fd);
		return ret;
	}
	srv->metrics_timer_fd = fd;
	return 0;
}

void api_server_set_metrics_period(struct api_server *srv, unsigned int ms)
{
	srv->metrics_period_ms = ms;
	if (srv->metrics_timer_fd >= 0) {
		epoll_ctl(srv->ep_fd, EPOLL_CTL_DEL, srv->metrics_timer_fd, NULL);
		close(srv->metrics_timer_fd);
		srv->metrics_timer_fd = -1;
		if (srv->metrics_fd >= 0 && api_metrics_timer_start(srv) < 0)
			log_warn("api: periodic metrics flush not available");
	}
}

static void update_timer(struct api_server *srv)
{
	struct itimerspec its;
	uint64_t min = 0;
	unsigned int i;

	for (i = 0; i < srv->n_conns; i++) {
		uint64_t d = conn_due(srv->conns[i]);

		if (!min || d < min)
			min = d;
	}
	/* A timer already set no later than needed stays: it may fire early (expire then
	 * finds nothing due and this sets it again), but a request completing, which moves
	 * its connection's idle deadline later, costs no timerfd_settime. */
	if (min == srv->timer_armed_ns ||
	    (srv->timer_armed_ns && (!min || srv->timer_armed_ns <= min)))
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(min / 1000000000ull);
	its.it_value.tv_nsec = (long)(min % 1000000000ull);
	/* All zero disarms; an absolute time in the past fires at once. */
	if (timerfd_settime(srv->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		log_ratelimited(LOG_WARN, "api: timerfd_settime: %s", strerror(errno));
		return;
	}
	srv->timer_armed_ns = min;
}

int api_server_dispatch(struct api_server *srv)
{
	struct epoll_event ev[16];
	int n, i, rounds = 0;

again:
	n = epoll_wait(srv->ep_fd, ev, 16, 0);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		log_err("api: epoll_wait: %s", strerror(errno));
		return -errno;
	}
	for (i = 0; i < n; i++) {
		void *p = ev[i].data.ptr;
		struct api_conn *c;

		if (p == &srv->listen_fd) {
			accept_all(srv);
			continue;
		}
		if (p == &srv->timer_fd) {
			expire(srv);
			continue;
		}
		if (p == &srv->metrics_timer_fd) {
			metrics_tick(srv);
			continue;
		}
		c = p;
		if (c->dead)
			continue;
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_readable(c);
		else if (ev[i].events & EPOLLOUT)
			conn_service(c);
	}
	while (srv->dead) {
		struct api_conn *c = srv->dead;

		srv->dead = c->next_dead;
		api_conn_free(c);
	}
	/* A full batch may have left events behind: take a few more rounds, so a caller
	 * whose loop is edge-triggered is not left waiting, but bounded so the VMM's other
	 * work is not starved by a busy client. */
	if (n == 16 && ++rounds < 4)
		goto again;
	update_timer(srv);
	return 0;
}

/* ---- the server ------------------------------------------------------------------------------ */

/* Refuses to steal a live socket; removes one nobody listens on any more. */
static int clear_stale(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("api: %s exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (ret == 0) {
		log_err("api: another process is serving %s", path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED) {
		ret = -errno;
		log_err("api: probing %s: %s", path, strerror(errno));
		return ret;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		ret = -errno;
		log_err("api: unlink stale %s: %s", path, strerror(errno));
		return ret;
	}
	return 0;
}

static int server_new(const char *path, const struct api_ops *ops, void *ctx, api_router_fn router,
		      void *router_ctx, struct api_server **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct api_server *srv;
	int ret;

	/* path NULL: a server without a socket (--no-api), for the configuration file and
	 * the metrics. */
	if (!(ops || router) || !out)
		return -EINVAL;
	if (path && (strlen(path) == 0 || strlen(path) >= sizeof(sa.sun_path)))
		return -ENAMETOOLONG;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->ops = ops;
	srv->ctx = ctx;
	srv->router = router;
	srv->router_ctx = router_ctx;
	srv->listen_fd = srv->ep_fd = srv->timer_fd = srv->metrics_fd = -1;
	srv->metrics_timer_fd = -1;
	srv->metrics_period_ms = API_DEFAULT_METRICS_PERIOD_MS;
	srv->timeout_ms = API_DEFAULT_REQUEST_TIMEOUT_MS;
	srv->idle_timeout_ms = API_DEFAULT_IDLE_TIMEOUT_MS;
	if (path)
		memcpy(srv->path, path, strlen(path) + 1);
	api_parser_settings_init(&srv->settings);
	srv->vmcfg = calloc(1, sizeof(*srv->vmcfg));
	if (!srv->vmcfg) {
		ret = -ENOMEM;
		goto err;
	}
	api_state_init(srv);

	/* Depth 16 is plenty for our resources and bounds json-c's recursion. */
	srv->tok = json_tokener_new_ex(16);
	if (!srv->tok) {
		ret = -ENOMEM;
		goto err;
	}
	json_tokener_set_flags(srv->tok, JSON_TOKENER_STRICT);

	srv->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->ep_fd < 0) {
		ret = -errno;
		log_err("api: epoll_create1: %s", strerror(errno));
		goto err;
	}
	srv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (srv->timer_fd < 0) {
		ret = -errno;
		log_err("api: timerfd_create: %s", strerror(errno));
		goto err;
	}
	if (!path) {
		ret = ep_add(srv->ep_fd, srv->timer_fd, &srv->timer_fd);
		if (ret)
			goto err;
		*out = srv;
		return 0;
	}
	ret = clear_stale(path);
	if (ret)
		goto err;
	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0) {
		ret = -errno;
		log_err("api: socket: %s", strerror(errno));
		goto err;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		log_err("api: bind %s: %s", path, strerror(errno));
		goto err;
	}
	if (listen(srv->listen_fd, 64) < 0) {
		ret = -errno;
		log_err("api: listen %s: %s", path, strerror(errno));
		goto err_unlink;
	}
	ret = ep_add(srv->ep_fd, srv->listen_fd, &srv->listen_fd);
	if (!ret)
		ret = ep_add(srv->ep_fd, srv->timer_fd, &srv->timer_fd);
	if (ret) {
		log_err("api: epoll_ctl: %s", strerror(-ret));
		goto err_unlink;
	}
	*out = srv;
	return 0;

err_unlink:
	unlink(path);
err:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->timer_fd >= 0)
		close(srv->timer_fd);
	if (srv->ep_fd >= 0)
		close(srv->ep_fd);
	if (srv->tok)
		json_tokener_free(srv->tok);
	free(srv->vmcfg);
	free(srv);
	return ret;
}

int api_server_create(const char *path, const struct api_ops *ops, void *ctx,
		      struct api_server **out)
{
	if (!ops || !path)
		return -EINVAL;
	return server_new(path, ops, ctx, NULL, NULL, out);
}

int api_server_create_headless(const struct api_ops *ops, void *ctx, struct api_server **out)
{
	if (!ops)
		return -EINVAL;
	return server_new(NULL, ops, ctx, NULL, NULL, out);
}

/* The router's server has no thaw resources: an empty ops table keeps every use of
 * srv->ops (metrics, describe) well defined should one be reached. */
static const struct api_ops no_ops;

int api_server_create_router(const char *path, api_router_fn route, void *ctx,
			     struct api_server **out)
{
	if (!route)
		return -EINVAL;
	return server_new(path, &no_ops, NULL, route, ctx, out);
}

void api_http_reply_json(struct api_http_reply *r, int status, struct json_object *o)
{
	const char *s;
	size_t len;

	r->body = NULL;
	r->len = 0;
	r->status = 500;
	if (!o)
		return;
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	if (s) {
		r->body = malloc(len + 1);
		if (r->body) {
			memcpy(r->body, s, len + 1);
			r->len = len;
			r->status = status;
		}
	}
	json_object_put(o);
}

void api_http_reply_fault(struct api_http_reply *r, int status, const char *fmt, ...)
{
	char msg[1024];
	json_object *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_object_new_object();
	if (o)
		json_object_object_add(o, "fault_message", json_object_new_string(msg));
	api_http_reply_json(r, status, o);
}

int api_server_fd(const struct api_server *srv)
{
	return srv->ep_fd;
}

void api_server_set_request_timeout(struct api_server *srv, unsigned int ms)
{
	srv->timeout_ms = ms ? ms : 1;
}

void api_server_set_idle_timeout(struct api_server *srv, unsigned int ms)
{
	srv->idle_timeout_ms = ms ? ms : 1;
}

/* Ends api_server_warm: the spare goes, and closed connections are unmapped again. */
static void drop_spare(struct api_server *srv)
{
	srv->warm = false;
	if (srv->spare)
		munmap(srv->spare, sizeof(*srv->spare));
	srv->spare = NULL;
}

void api_server_trim(struct api_server *srv)
{
	if (!srv)
		return;
	drop_spare(srv);
	pages_release(&srv->scratch, sizeof(srv->scratch));
	pages_release(srv->reply.body, sizeof(srv->reply.body));
}

void api_server_warm(struct api_server *srv)
{
	struct api_snapshot_load *l;

	if (!srv)
		return;
	srv->warm = true;
	/* Only the pages a load writes: the structs are mostly arrays it leaves alone. */
	if (!srv->spare && (srv->spare = conn_map())) {
		pages_touch(srv->spare, offsetof(struct api_conn, req.body) + 4096);
		pages_touch(srv->spare->in, 4096);
		pages_touch(srv->spare->out, 4096);
	}
	l = &srv->scratch.sload; /* what parse_snapshot_load resets */
	pages_touch(l, offsetof(struct api_snapshot_load, net_overrides));
	pages_touch(&l->has_vsock_override, 1);
	pages_touch(&l->n_drive_overrides, 1);
	pages_touch(l->snapshot_paths, 1);
	pages_touch(srv->reply.body, 4096);
}

void api_server_destroy(struct api_server *srv)
{
	if (!srv)
		return;
	drop_spare(srv); /* and no closing connection becomes one */
	while (srv->n_conns)
		conn_kill(srv->conns[0]);
	while (srv->dead) {
		struct api_conn *c = srv->dead;

		srv->dead = c->next_dead;
		api_conn_free(c);
	}
	if (srv->listen_fd >= 0) {
		close(srv->listen_fd);
		unlink(srv->path);
	}
	close(srv->timer_fd);
	close(srv->ep_fd);
	if (srv->metrics_fd >= 0)
		close(srv->metrics_fd);
	free(srv->metrics_pending);
	if (srv->metrics_timer_fd >= 0)
		close(srv->metrics_timer_fd);
	json_tokener_free(srv->tok);
	free(srv->vmcfg);
	free(srv);
}
