/* http1: an HTTP/1.1 response parser, pure (no I/O, no allocation), fed the bytes of one
 * connection in any split. It reads the status line, the headers upstream needs, and the body as
 * Content-Length, chunked or read-until-close framing says (RFC 9112 section 6.3), skipping
 * interim 1xx responses, and hands out body bytes as slices of the input: the body is never
 * copied. upstream.c sends the request and moves the bytes; libcurl only connects.
 *
 * Why our own: libcurl's HTTP layer cannot be told which socket is ready and checks it with a
 * poll(0) before and after every read, two system calls per relayed delta on top of the wait, the
 * read and the write (README, Performance). */
#ifndef LLM_HTTP1_H
#define LLM_HTTP1_H

#include <stddef.h>

/* One header line (status line, header, chunk-size line, trailer) longer than this is not an
 * answer we take; libcurl's own limit is 100 KB for a whole block. */
#define HTTP1_LINE_MAX 8192
/* The whole header block, interim responses included. */
#define HTTP1_HEAD_MAX (64 * 1024)

enum http1_event {
	HTTP1_MORE,  /* all input consumed; feed more (or tell of the end with http1_eof) */
	HTTP1_HEAD,  /* the final status line and headers are in (fields below) */
	HTTP1_BODY,  /* *body / *body_len: body bytes, a slice of the input */
	HTTP1_DONE,  /* the response is complete */
	HTTP1_ERROR, /* not HTTP/1.x, or past a cap: see error */
};

struct http1 {
	/* the final response's head, valid from HTTP1_HEAD on */
	int minor;   /* HTTP/1.minor */
	long status;
	/* Header values (blanks around them stripped, the last of repeated headers, cut to fit);
	 * "" when absent. */
	char request_id[128];
	char content_type[128];
	char retry_after[64];
	char retry_after_ms[64];
	char should_retry[16];
	/* 1 when this connection may carry the next request: HTTP/1.1 without "Connection: close"
	 * (or 1.0 with keep-alive), a body with a known end, and nothing after it. */
	int reusable;
	const char *error; /* why HTTP1_ERROR, for logs */

	/* parser state: private */
	int state;
	int head_done;
	int close;      /* Connection: close */
	int keep_alive; /* Connection: keep-alive (matters for HTTP/1.0) */
	int chunked;    /* Transfer-Encoding's last coding is chunked */
	int te_seen;
	int length_seen;
	unsigned long long length; /* Content-Length, then what is left of a body or chunk */
	size_t head_bytes;
	size_t line_len;
	char line[HTTP1_LINE_MAX];
};

/* Starts a parser for one response. */
void http1_init(struct http1 *p);
/* Parses from *in (*n bytes), advancing both past what it consumed, up to the next event. Call
 * again with what is left after each event but HTTP1_MORE; after HTTP1_DONE anything left is not
 * part of this response (p->reusable says so). */
enum http1_event http1_parse(struct http1 *p, const char **in, size_t *n, const char **body,
			     size_t *body_len);
/* The connection ended: HTTP1_DONE when that ends the response (a body read until close),
 * HTTP1_ERROR when the response was cut off. */
enum http1_event http1_eof(struct http1 *p);
/* 1 once any byte of a response was parsed (a reused connection that closes before that may be
 * retried with the same request). */
int http1_started(const struct http1 *p);

#endif
