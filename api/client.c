/* The client half of the API: one request at a time (or read pipelined responses) on a
 * blocking unix socket, responses parsed with http_parser. Used by thawctl, the tests and the
 * benchmark, so it stays free of printing and exiting. */
#include "api/api.h"

#include <errno.h>
#include <http_parser.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

int api_client_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

struct reader {
	struct api_response *resp;
	size_t want, done;
};

static int rd_begin(http_parser *p)
{
	struct reader *rd = p->data;
	struct api_response *r = &rd->resp[rd->done];

	r->status = 0;
	r->body_len = 0;
	r->body[0] = '\0';
	return 0;
}

static int rd_body(http_parser *p, const char *at, size_t len)
{
	struct reader *rd = p->data;
	struct api_response *r = &rd->resp[rd->done];
	size_t room = API_MAX_BODY_BYTES - r->body_len;

	if (len > room)
		len = room;
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

static int rd_complete(http_parser *p)
{
	struct reader *rd = p->data;
	struct api_response *r = &rd->resp[rd->done];

	/* An interim 100 Continue is not the answer. */
	if (p->status_code >= 100 && p->status_code < 200)
		return 0;
	r->status = (int)p->status_code;
	r->keep_alive = http_should_keep_alive(p);
	rd->done++;
	if (rd->done == rd->want)
		http_parser_pause(p, 1);
	return 0;
}

int api_client_read_responses(int fd, struct api_response *resp, size_t n)
{
	http_parser_settings s;
	struct reader rd = {.resp = resp, .want = n};
	http_parser p;
	char buf[16384];

	if (n == 0)
		return 0;
	http_parser_settings_init(&s);
	s.on_message_begin = rd_begin;
	s.on_body = rd_body;
	s.on_message_complete = rd_complete;
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &rd;
	while (rd.done < rd.want) {
		ssize_t got = recv(fd, buf, sizeof(buf), 0);
		enum http_errno e;

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Zero bytes tells the parser about EOF (ends a body delimited by close). */
		http_parser_execute(&p, &s, buf, (size_t)got);
		e = HTTP_PARSER_ERRNO(&p);
		if (rd.done == rd.want)
			break;
		if (e != HPE_OK && e != HPE_PAUSED)
			return -EPROTO;
		if (got == 0)
			return -ECONNRESET;
	}
	return 0;
}

int api_client_read_response(int fd, struct api_response *resp)
{
	return api_client_read_responses(fd, resp, 1);
}

int api_client_send(int fd, const char *method, const char *path, const char *body)
{
	char head[1024];
	struct iovec iov[2];
	struct msghdr msg = {.msg_iov = iov};
	size_t blen = body ? strlen(body) : 0;
	int n;

	if (body)
		n = snprintf(head, sizeof(head),
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
			     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			     method, path, blen);
	else
		n = snprintf(
		    head, sizeof(head),
		    "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n", method,
		    path);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENAMETOOLONG;
	iov[0].iov_base = head;
	iov[0].iov_len = (size_t)n;
	iov[1].iov_base = (void *)(uintptr_t)body;
	iov[1].iov_len = blen;
	msg.msg_iovlen = blen ? 2 : 1;
	while (msg.msg_iovlen) {
		ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Advance past what was sent (short writes on big bodies). */
		while (msg.msg_iovlen && (size_t)w >= msg.msg_iov->iov_len) {
			w -= (ssize_t)msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + w;
			msg.msg_iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int api_client_request(int fd, const char *method, const char *path, const char *body,
		       struct api_response *resp)
{
	int ret = api_client_send(fd, method, path, body);

	return ret ? ret : api_client_read_response(fd, resp);
}

void api_client_fault_message(const struct api_response *resp, char *buf, size_t len)
{
	json_object *o = json_tokener_parse(resp->body), *m;

	if (o && json_object_object_get_ex(o, "fault_message", &m) &&
	    json_object_is_type(m, json_type_string))
		snprintf(buf, len, "%s", json_object_get_string(m));
	else
		snprintf(buf, len, "%s", resp->body);
	json_object_put(o);
}
