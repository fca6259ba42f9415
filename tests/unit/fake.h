/* A request served from memory: an io over a table of parameters and a body, with the client's
 * side recorded (and made to leave on cue), and a scripted upstream in place of upstream.c, so
 * that the relay and the handlers run whole without a web server, a socket or libcurl. */
#ifndef LLM_TEST_FAKE_H
#define LLM_TEST_FAKE_H

#include "buf.h"
#include "config.h"
#include "io.h"
#include "request.h"
#include "upstream.h"

/* The client and its web server. */
struct fake_client {
	const char *const *params; /* name, value, ..., NULL */
	const char *body;
	size_t body_len, body_off;
	struct buf out;     /* every byte written */
	int writes_left;    /* writes before a write fails (the client left); -1 = never */
	int gone;           /* what client_gone reports */
	int gone_after_ticks; /* client_gone turns 1 after this many ticks; -1 = never */
	unsigned flushes;
};

/* What the upstream does. */
struct fake_upstream {
	long status;            /* the answer's status (0: 200) */
	const char *request_id; /* "" or NULL: none */
	double retry_after;     /* -1 or 0: none */
	const char *body;       /* the answer (a 2xx) or the error body */
	size_t chunk;           /* a 2xx body goes to the sink in pieces of this size; 0: whole */
	int ticks_before;       /* silent ticks before the headers */
	int ticks_between;      /* silent ticks after each piece */
	enum upstream_outcome before; /* not UP_DONE: the call fails so before any answer */
	enum upstream_outcome after;  /* after a 2xx body: UP_DONE, or how it broke off */
	/* Recorded: */
	int calls;
	int aborted;            /* a sink callback stopped the transfer */
	struct buf sent;        /* the request body the upstream got */
	const char *path;
	int stream;
};

extern struct fake_upstream fake_up;

struct fake {
	struct config cfg;
	struct server srv;
	struct fake_client client;
	struct io io;
	char log_path[64];
	struct buf log;
};

/* A config with the defaults, the given key and keep-alive interval (0: due at once), and
 * a fresh client with params (borrowed) and body. Also resets fake_up. */
void fake_init(struct fake *f, const char *api_key, double keepalive, const char *const *params,
	       const char *body);
void fake_release(struct fake *f);
/* Serves one request through serve_request, logging to a file of its own. */
void fake_serve(struct fake *f);
/* The request's access line, parsed (the caller puts it), and the whole log of the request. */
struct json_object *fake_access(const struct fake *f);
const char *fake_log(const struct fake *f);

/* The response's body (after the header block), NUL-terminated. */
const char *fake_body(const struct fake *f);
/* The status of the response ("Status: 502 ..."), or 0. */
int fake_status(const struct fake *f);
/* 1 when the response's header block has this line ("request-id: req_1"). */
int fake_has_header(const struct fake *f, const char *line);
/* How many times needle occurs in the whole output. */
int fake_count(const struct fake *f, const char *needle);

#endif
