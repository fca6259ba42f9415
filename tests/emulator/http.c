/* http: see http.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, memmem */
#endif

#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "api.h"
#include "conn.h"
#include "stats.h"
#include "stream.h"
#include "util.h"

#define HEAD_MAX       ((size_t)64 * 1024)          /* request line + headers: 431 above */
#define BODY_MAX       ((size_t)32 * 1024 * 1024)   /* the real API's 32 MB: 413 above */
#define DISCARD_MAX    ((size_t)40 * 1024 * 1024)   /* body bytes swallowed after a 413 */
#define CHUNK_LINE_MAX ((size_t)4096)               /* chunk-size and trailer lines */
#define READ_CHUNK     ((size_t)16 * 1024)
#define LINGER_MS      2000
#define MAX_EVENTS     512

static int epfd = -1;
static struct pollable listener = { P_LISTEN, -1 }, sigsrc = { P_SIGNAL, -1 };
static bool listen_paused;
static struct conn *conns;
static FILE *log_fp; /* request log; NULL unless -v or --log */

static void log_req(const struct conn *c)
{
	const struct req *r = &c->rq;
	char ts[32], status[8];

	if (!log_fp)
		return;
	rfc3339(ts, sizeof ts, time(NULL));
	if (r->status)
		snprintf(status, sizeof status, "%d", r->status);
	else
		snprintf(status, sizeof status, "-");
	fprintf(log_fp, "%s %s %s id=%s status=%s fault=%s\n", ts,
		r->method ? r->method : "-", r->path ? r->path : "-",
		r->log_id[0] ? r->log_id : "-", status, r->log_fault[0] ? r->log_fault : "-");
}

/* GET /stats, or GET /stats?id=NAME for one id (zeros when unknown). */
static void stats_get(struct conn *c)
{
	json_object *o = stats_query_json(c->rq.query);

	conn_send_json(c, 200, o, NULL);
	json_object_put(o);
}

static void stats_reset_endpoint(struct conn *c)
{
	json_object *o = jobj();

	stats_reset();
	jset(o, "reset", json_object_new_boolean(1));
	conn_send_json(c, 200, o, NULL);
	json_object_put(o);
}

static void dispatch(struct conn *c)
{
	struct req *r = &c->rq;
	bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;

	c->st = C_BUSY;
	if (strcmp(r->path, "/stats") == 0) {
		if (get)
			stats_get(c);
		else
			conn_method_not_allowed(c);
	} else if (strcmp(r->path, "/stats/reset") == 0) {
		if (post)
			stats_reset_endpoint(c);
		else
			conn_method_not_allowed(c);
	} else {
		stats.t.requests++; /* the test harness's own /stats calls are not counted */
		api_route(c, get, post);
	}
	log_req(c);
	if (!c->job)
		conn_request_done(c);
}

/* ---- HTTP input --------------------------------------------------------- */

/* A request that cannot be read further: answer it and close. */
static void reject(struct conn *c, int status, const char *type, const char *msg)
{
	c->st = C_CLOSING;
	obuf_free(&c->in);
	stats.t.requests++;
	conn_send_error(c, status, type, msg, NULL);
	log_req(c);
}

static bool has_token(const char *list, const char *tok)
{
	size_t tn = strlen(tok);

	for (const char *p = list; *p;) {
		const char *e, *t;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		for (e = p; *e && *e != ','; e++)
			;
		for (t = e; t > p && (t[-1] == ' ' || t[-1] == '\t'); t--)
			;
		if ((size_t)(t - p) == tn && strncasecmp(p, tok, tn) == 0)
			return true;
		p = e;
	}
	return false;
}

static bool parse_size(const char *s, size_t *out)
{
	size_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* The request line, split in place (line ends at its NUL): false if malformed. */
static bool request_line(struct req *r, char *line)
{
	char *target, *version, *q;

	if (!(target = strchr(line, ' ')))
		return false;
	*target++ = '\0';
	if (!(version = strchr(target, ' ')))
		return false;
	*version++ = '\0';
	if (!*line || target[0] != '/')
		return false;
	if (strcmp(version, "HTTP/1.1") == 0)
		r->keep_alive = true;
	else if (strcmp(version, "HTTP/1.0") != 0)
		return false;
	if ((q = strchr(target, '?')) != NULL)
		*q++ = '\0';
	r->method = line;
	r->path = target;
	r->query = q ? q : "";
	return true;
}

/* One header field (its line ends at its NUL), name lower-cased: 0, or a status. */
static int header_field(struct req *r, char *p)
{
	char *colon, *v, *end;

	if (!(colon = strchr(p, ':')) || colon == p)
		return 400;
	for (char *k = p; k < colon; k++) {
		if (*k == ' ' || *k == '\t')
			return 400;
		*k = (char)tolower((unsigned char)*k);
	}
	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	if (r->nh == HDRS_MAX)
		return 431;
	r->h[r->nh].name = p;
	r->h[r->nh].value = v;
	r->nh++;
	return 0;
}

/* Splits the private header copy in place: 0, or the status to reject with. */
static int head_fields(struct req *r)
{
	char *eol = strstr(r->head, "\r\n"), *p;

	if (!eol)
		return 400;
	*eol = '\0';
	if (!request_line(r, r->head))
		return 400;
	for (p = eol + 2; *p; p = eol + 2) {
		int rc;

		if (!(eol = strstr(p, "\r\n")))
			return 400;
		*eol = '\0';
		if ((rc = header_field(r, p)) != 0)
			return rc;
	}
	return 0;
}

/* Connection handling and body framing of a parsed head; false after a reject. */
static bool head_framing(struct conn *c)
{
	struct req *r = &c->rq;
	const char *te = conn_header(c, "transfer-encoding"), *cl = conn_header(c, "content-length");
	const char *cn = conn_header(c, "connection"), *ex = conn_header(c, "expect");

	if (cn && has_token(cn, "close"))
		r->keep_alive = false;
	else if (cn && has_token(cn, "keep-alive"))
		r->keep_alive = true;
	if (te) {
		if (strcasecmp(te, "chunked") != 0) {
			reject(c, 501, "api_error", "Unsupported transfer-encoding");
			return false;
		}
		r->chunked = true;
	} else if (cl && !parse_size(cl, &r->clen)) {
		reject(c, 400, "invalid_request_error", "Invalid Content-Length");
		return false;
	}
	if (!r->chunked && r->clen > BODY_MAX) {
		reject(c, 413, "request_too_large", "Request exceeds the maximum size");
		return false;
	}
	if (ex && strcasecmp(ex, "100-continue") == 0 && (r->chunked || r->clen)) {
		conn_add(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		conn_flush(c);
	}
	c->st = C_BODY;
	return true;
}

/* Looks for a complete head; true when the connection's state changed. */
static bool head_parse(struct conn *c)
{
	struct obuf *in = &c->in;
	const char *base, *end;
	size_t avail, from, hlen;
	int rc;

	/* Stray CRLFs between requests are allowed (RFC 9112 section 2.2). */
	while (obuf_pending(in) && (in->p[in->off] == '\r' || in->p[in->off] == '\n')) {
		obuf_consume(in, 1);
		c->scanned = 0;
	}
	if (!c->rq.rid[0])
		make_id(c->rq.rid, "req_");
	avail = obuf_pending(in);
	if (!avail)
		return false;
	base = in->p + in->off;
	from = c->scanned > 3 ? c->scanned - 3 : 0;
	end = memmem(base + from, avail - from, "\r\n\r\n", 4);
	if (!end) {
		c->scanned = avail;
		if (avail < HEAD_MAX)
			return false;
		reject(c, 431, "invalid_request_error", "Request header fields too large");
		return true;
	}
	hlen = (size_t)(end - base) + 4;
	c->rq.head = xstrndup(base, hlen - 2); /* keep the CRLF ending the last field */
	obuf_consume(in, hlen);
	c->scanned = 0;
	rc = head_fields(&c->rq);
	if (rc == 431)
		reject(c, 431, "invalid_request_error", "Too many request header fields");
	else if (rc)
		reject(c, 400, "invalid_request_error", "Malformed HTTP request");
	else
		head_framing(c);
	return true;
}

enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };
enum { FEED_MORE = 0, FEED_DONE = 1 }; /* or an HTTP status to reject with */

static int chunk_line(struct req *r, const char *p, size_t n)
{
	size_t v = 0, i = 0;

	switch (r->ch_state) {
	case CH_SIZE:
		for (; i < n && isxdigit((unsigned char)p[i]); i++) {
			if (v > BODY_MAX)
				return 413;
			v = v * 16 + (size_t)(isdigit((unsigned char)p[i]) ? p[i] - '0'
							: (tolower((unsigned char)p[i]) - 'a' + 10));
		}
		if (i == 0 || (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
			return 400;
		if (v > BODY_MAX - obuf_pending(&r->body))
			return 413;
		r->ch_left = v;
		r->ch_state = v ? CH_DATA : CH_TRAILER;
		return FEED_MORE;
	case CH_DATA_END:
		if (n)
			return 400;
		r->ch_state = CH_SIZE;
		return FEED_MORE;
	case CH_TRAILER: /* trailer fields are read and ignored */
		return n ? FEED_MORE : FEED_DONE;
	default:
		return 400;
	}
}

static int chunked_feed(struct conn *c)
{
	struct req *r = &c->rq;
	struct obuf *in = &c->in;

	for (;;) {
		size_t avail = obuf_pending(in), ln;
		const char *p, *nl;
		int rc;

		if (!avail)
			return FEED_MORE;
		p = in->p + in->off;
		if (r->ch_state == CH_DATA) {
			size_t take = avail < r->ch_left ? avail : r->ch_left;

			obuf_add(&r->body, p, take);
			obuf_consume(in, take);
			r->ch_left -= take;
			if (!r->ch_left)
				r->ch_state = CH_DATA_END;
			continue;
		}
		if (!(nl = memchr(p, '\n', avail)))
			return avail > CHUNK_LINE_MAX ? 400 : FEED_MORE;
		ln = (size_t)(nl - p);
		if (ln > CHUNK_LINE_MAX)
			return 400;
		rc = chunk_line(r, p, ln && p[ln - 1] == '\r' ? ln - 1 : ln);
		obuf_consume(in, ln + 1);
		if (rc != FEED_MORE)
			return rc;
	}
}

static int plain_feed(struct conn *c)
{
	struct req *r = &c->rq;
	size_t take = obuf_pending(&c->in), need = r->clen - obuf_pending(&r->body);

	if (take > need)
		take = need;
	if (take) {
		obuf_add(&r->body, c->in.p + c->in.off, take);
		obuf_consume(&c->in, take);
	}
	return obuf_pending(&r->body) == r->clen ? FEED_DONE : FEED_MORE;
}

/* Moves body bytes out of the input buffer; true when the state changed. */
static bool body_read(struct conn *c)
{
	int rc = c->rq.chunked ? chunked_feed(c) : plain_feed(c);

	if (rc == FEED_MORE)
		return false;
	if (rc == 413)
		reject(c, 413, "request_too_large", "Request exceeds the maximum size");
	else if (rc == 400)
		reject(c, 400, "invalid_request_error", "Malformed chunked request body");
	else
		dispatch(c);
	return true;
}

/* Parses and answers buffered requests until one is busy or input runs out. */
static void conn_process(struct conn *c)
{
	for (;;) {
		if (c->dead)
			return;
		if (c->st == C_HEAD) {
			if (!head_parse(c))
				return;
		} else if (c->st == C_BODY) {
			if (!body_read(c))
				return;
		} else {
			return;
		}
	}
}

/*
 * The client sent FIN.  An answer it has completely received counts as
 * completed (clients close as soon as they have it all); one still in
 * progress is aborted.  Queued output of a finished request may still go.
 */
static void conn_eof(struct conn *c)
{
	stream_finish(c);
	c->peer_eof = true;
	if (c->job || c->st == C_CLOSING || !obuf_pending(&c->out))
		c->dead = true;
	else
		c->st = C_CLOSING;
}

static void conn_read(struct conn *c)
{
	static char scratch[READ_CHUNK];

	while (!c->dead && !c->peer_eof) {
		ssize_t n;

		if (c->st == C_CLOSING) {
			n = recv(c->pl.fd, scratch, sizeof scratch, 0);
			if (n > 0)
				c->discarded += (size_t)n;
			if (c->discarded > DISCARD_MAX)
				c->dead = true;
		} else {
			size_t room = HEAD_MAX - obuf_pending(&c->in);

			/* Only a busy connection with a pipelined request can fill up;
			 * reading resumes once the current answer is done. */
			if (!room)
				return;
			if (room > READ_CHUNK)
				room = READ_CHUNK;
			obuf_reserve(&c->in, room);
			n = recv(c->pl.fd, c->in.p + c->in.len, room, 0);
			if (n > 0) {
				c->in.len += (size_t)n;
				conn_process(c);
			}
		}
		if (n == 0)
			conn_eof(c);
		else if (n < 0 && errno != EINTR) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			return;
		}
	}
}

/* ---- connection lifecycle ----------------------------------------------- */

static void listener_events(uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = &listener };

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, listener.fd, &ev) != 0)
		die("epoll_ctl(listener): %s", strerror(errno));
}

static void conn_close(struct conn *c)
{
	if (c->job)
		stream_abort(c);
	conn_timer_clear(c);
	xclose(c->pl.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	conn_free(c);
	stats.connections_active--;
	if (listen_paused) {
		listen_paused = false;
		listener_events(EPOLLIN);
	}
}

/*
 * Run after every event on c: finish the answer whose bytes are all out,
 * move on to the next pipelined request, and close what is finished.
 */
static void conn_settle(struct conn *c)
{
	while (!c->dead && !obuf_pending(&c->out)) {
		if (stream_finish(c)) {
			conn_process(c);
			conn_read(c);
			continue;
		}
		if (c->st == C_CLOSING && !c->shut_wr) {
			/* Lingering close: shut our side, then swallow input briefly so
			 * the client reads the answer instead of a reset. */
			if (c->peer_eof || shutdown(c->pl.fd, SHUT_WR) != 0) {
				c->dead = true;
				break;
			}
			c->shut_wr = true;
			conn_timer_set(c, LINGER_MS);
		}
		break;
	}
	if (c->dead)
		conn_close(c);
}

static void conn_event(struct conn *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		c->dead = true;
	} else {
		if (ev & (EPOLLIN | EPOLLRDHUP))
			conn_read(c);
		/* FIN behind a full input buffer (pipelining while busy) */
		if ((ev & EPOLLRDHUP) && !c->peer_eof && !c->dead)
			conn_eof(c);
		if (ev & EPOLLOUT)
			conn_flush(c);
	}
	conn_settle(c);
}

static void conn_on_timer(struct conn *c)
{
	if (c->st == C_CLOSING)
		c->dead = true; /* the linger time is over */
	else
		stream_step(c);
	conn_settle(c);
}

static void conn_new(int fd)
{
	struct conn *c = conn_alloc(fd);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
	int one = 1;

	/* Every SSE event must leave at once, not wait for Nagle. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		warnmsg("TCP_NODELAY: %s", strerror(errno));
	ev.data.ptr = &c->pl;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		warnmsg("epoll_ctl(ADD): %s", strerror(errno));
		xclose(fd);
		conn_free(c);
		return;
	}
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	stats.t.connections_accepted++;
	stats.connections_active++;
}

static void accept_all(void)
{
	for (;;) {
		int fd = accept4(listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_new(fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: stop polling the listener (level-triggered,
			 * it would spin) until a connection closes. */
			warnmsg("accept: %s; pausing until a connection closes", strerror(errno));
			listen_paused = true;
			listener_events(0);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			warnmsg("accept: %s", strerror(errno));
		}
		return;
	}
}

static void run_timers(void)
{
	int64_t now = mono_us();
	struct conn *c;

	while ((c = conn_timer_pop(now)) != NULL)
		conn_on_timer(c);
}

static void poll_add(struct pollable *p, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = p };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void event_loop(void)
{
	struct epoll_event evs[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(epfd, evs, MAX_EVENTS, conn_timer_wait_ms());

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			struct pollable *p = evs[i].data.ptr;

			if (p->kind == P_SIGNAL)
				return;
			if (p->kind == P_LISTEN)
				accept_all();
			else
				conn_event((struct conn *)p, evs[i].events);
		}
		run_timers();
	}
}

void http_serve(int listen_fd, int signal_fd, FILE *log)
{
	log_fp = log;
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	listener.fd = listen_fd;
	sigsrc.fd = signal_fd;
	poll_add(&listener, EPOLLIN);
	poll_add(&sigsrc, EPOLLIN);

	event_loop();

	/* Free everything, so a leak checker sees a clean exit. */
	while (conns)
		conn_close(conns);
	conn_timers_free();
	xclose(epfd);
}
