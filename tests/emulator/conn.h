/*
 * conn: one client connection and what is written to it.  Owns the
 * connection object and its request, the output queue (capped; a connection
 * that overflows it is dropped), the response head (status line, request-id,
 * rate-limit and retry headers), JSON and error bodies, chunked body pieces,
 * and the min-heap of connection deadlines.  Reading requests and the
 * connection lifecycle belong to the HTTP module; the answer in progress
 * (c->job) to the streaming module.  Depends on util, faults (the retry
 * headers of struct opts) and stats (errors_sent).
 */
#ifndef EMU_CONN_H
#define EMU_CONN_H

#include "faults.h"
#include "util.h"

#define HDRS_MAX 128

struct hdr {
	const char *name, *value;
};

struct req {
	char *head; /* private copy of the header block; the strings below point into it */
	const char *method, *path, *query;
	struct hdr h[HDRS_MAX];
	size_t nh;
	bool keep_alive, chunked;
	size_t clen;
	struct obuf body;
	int ch_state;
	size_t ch_left;
	char rid[ID_LEN];
	int status;                 /* for the log line */
	char log_id[ID_MAX + 1], log_fault[32];
};

enum pkind { P_LISTEN, P_SIGNAL, P_CONN };

/* What epoll hands back: the first member of every polled object. */
struct pollable {
	enum pkind kind;
	int fd;
};

/* C_CLOSING: answer the last bytes, shut our side, swallow input until EOF. */
enum cstate { C_HEAD, C_BODY, C_BUSY, C_CLOSING };

struct job; /* an answer in progress: see stream.h */

struct conn {
	struct pollable pl;
	enum cstate st;
	struct obuf in, out;
	size_t scanned; /* pending input already searched for the end of the headers */
	struct req rq;
	struct job *job;
	bool dead, peer_eof, shut_wr;
	size_t discarded;
	int64_t deadline;
	size_t heap_idx;
	struct conn *prev, *next;
};

struct conn *conn_alloc(int fd); /* state C_HEAD, no timer */
void conn_free(struct conn *c);  /* its buffers, its request and c; not the socket */

/* The value of a request header (names are lower-cased), or NULL. */
const char *conn_header(const struct conn *c, const char *name);
/* All request headers, lower-cased names; repeated headers joined by ", ". */
json_object *conn_headers_json(const struct conn *c);
/* The current request is answered: keep the connection for the next one, or wind down. */
void conn_request_done(struct conn *c);

/* Queues bytes (the connection is dropped if the queue would pass its cap). */
void conn_add(struct conn *c, const void *d, size_t n);
/* Writes what the socket takes now; EPOLLOUT (edge-triggered) resumes the rest. */
void conn_flush(struct conn *c);
/* One piece of a response body: a chunk of its own when chunked, and sent now. */
void conn_body(struct conn *c, bool chunked, const char *d, size_t n);

const char *conn_reason(int status); /* the reason phrase of a status code */
/*
 * Status line and headers.  clen < 0 means a chunked event stream.  o carries
 * the retry knobs of an injected error (NULL otherwise).
 */
void conn_head(struct conn *c, int status, const char *ctype, long long clen,
	       const struct opts *o);
void conn_send_json(struct conn *c, int status, json_object *body, const struct opts *o);
/* An error in the API's shape, with the request id; counted in errors_sent. */
void conn_send_error(struct conn *c, int status, const char *type, const char *msg,
		     const struct opts *o);
void conn_method_not_allowed(struct conn *c);

/* Deadlines: one per connection, kept in a min-heap. */
void conn_timer_set(struct conn *c, long ms);
void conn_timer_clear(struct conn *c);
int conn_timer_wait_ms(void);               /* for epoll_wait: -1 when none is set */
struct conn *conn_timer_pop(int64_t now);   /* the earliest one due by now, its timer cleared */
void conn_timers_free(void);

#endif
