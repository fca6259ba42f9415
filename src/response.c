#include "response.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* Header lines and error texts are small; a cap keeps a runaway caller from growing them. */
#define HEADERS_MAX (16 * 1024)
#define FRAME_MAX (64 * 1024 * 1024)

void response_init(struct response *r, struct io *io, enum dialect d)
{
	memset(r, 0, sizeof *r);
	r->io = io;
	r->dialect = d;
	buf_init(&r->headers, HEADERS_MAX);
	buf_init(&r->frame, FRAME_MAX);
}

void response_release(struct response *r)
{
	buf_release(&r->headers);
	buf_release(&r->frame);
}

int response_add_header(struct response *r, const char *name, const char *value)
{
	if (r->committed)
		return -1;
	if (strpbrk(value, "\r\n"))
		return 0;
	/* Whole or not at all: the room is checked before the first piece goes in. */
	struct buf *h = &r->headers;
	size_t n = strlen(name), v = strlen(value);
	if (n + v + 4 > h->max || h->len > h->max - (n + v + 4))
		return -1;
	BUF_MUST(buf_append(h, name, n) || buf_append(h, ": ", 2) || buf_append(h, value, v) ||
		 buf_append(h, "\r\n", 2)); /* the room is there: checked above */
	return 0;
}

static int io_write(struct response *r, const char *p, size_t n)
{
	if (r->client_gone)
		return -1;
	r->committed = 1;
	if (r->io->ops->write(r->io->ctx, p, n) < 0) {
		r->client_gone = 1;
		return -1;
	}
	return 0;
}

int response_flush(struct response *r)
{
	if (r->client_gone)
		return -1;
	r->flushes++;
	if (r->io->ops->flush(r->io->ctx) < 0) {
		r->client_gone = 1;
		return -1;
	}
	return 0;
}

static int write_head(struct response *r, int status, const char *content_type, long long length)
{
	struct buf *h = &r->frame;
	buf_reset(h);
	/* The headers are at most HEADERS_MAX, the rest a few short lines: far below FRAME_MAX.
	 * Appended, not printed: two buf_printf were 5,000 instructions a request (callgrind). */
	BUF_MUST(buf_appends(h, "Status: ") || buf_append_u(h, (unsigned)status) ||
		 buf_appendc(h, ' ') || buf_appends(h, err_reason(status)) ||
		 buf_appends(h, "\r\nContent-Type: ") || buf_appends(h, content_type) ||
		 buf_appends(h, "\r\n") ||
		 (length >= 0 && (buf_appends(h, "Content-Length: ") ||
				  buf_append_u(h, (unsigned long long)length) ||
				  buf_appends(h, "\r\n"))) ||
		 buf_append(h, r->headers.data ? r->headers.data : "", r->headers.len) ||
		 buf_appends(h, "\r\n"));
	r->status = status;
	return io_write(r, h->data, h->len);
}

int response_send(struct response *r, int status, const char *content_type, const char *body,
		  size_t len)
{
	if (r->committed)
		return -1;
	r->format = RESP_JSON;
	if (write_head(r, status, content_type, (long long)len) < 0)
		return -1;
	if (!r->head_only && len > 0) {
		if (io_write(r, body, len) < 0)
			return -1;
		r->body_bytes += len;
	}
	return response_flush(r);
}

int response_json(struct response *r, int status, struct json_object *obj)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(
		obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	return response_send(r, status, "application/json", s, len);
}

/* json-c ownership: the rules are in jx.h. */
static struct json_object *error_body(enum dialect d, const char *type, const char *message)
{
	struct json_object *root = json_object_new_object();
	struct json_object *e = json_object_new_object();
	if (d == DIALECT_OPENAI) {
		json_object_object_add(e, "message", json_object_new_string(message));
		json_object_object_add(e, "type", json_object_new_string(type));
		json_object_object_add(e, "param", NULL);
		json_object_object_add(e, "code", NULL);
	} else {
		json_object_object_add(e, "type", json_object_new_string(type));
		json_object_object_add(e, "message", json_object_new_string(message));
	}
	if (d == DIALECT_ANTHROPIC)
		json_object_object_add(root, "type", json_object_new_string("error"));
	json_object_object_add(root, "error", e);
	return root;
}

static const char *default_message(enum err_kind kind)
{
	switch (kind) {
	case ERR_NOT_FOUND: return "Not Found";
	case ERR_METHOD: return "Method Not Allowed";
	case ERR_TOO_LARGE: return "Request exceeds the maximum size";
	case ERR_MEDIA_TYPE: return "Unsupported content type";
	case ERR_UPSTREAM: return "The upstream API failed";
	case ERR_TIMEOUT: return "The upstream API timed out";
	case ERR_OVERLOADED: return "The upstream API is overloaded";
	case ERR_RATE_LIMIT: return "The upstream API is rate limiting this server";
	default: return err_reason(err_status(kind));
	}
}

int response_error(struct response *r, enum err_kind kind, const char *message)
{
	if (r->committed)
		return -1;
	struct json_object *body = error_body(r->dialect, err_type(kind, r->dialect),
					      message ? message : default_message(kind));
	int rc = response_json(r, err_status(kind), body);
	json_object_put(body);
	return rc;
}

int response_begin(struct response *r, int status, enum resp_format fmt)
{
	if (r->committed)
		return -1;
	static const char *const types[] = {
		[RESP_NONE] = "application/octet-stream",
		[RESP_JSON] = "application/json",
		[RESP_TEXT] = "text/plain; charset=utf-8",
		[RESP_SSE] = "text/event-stream; charset=utf-8",
	};
	r->format = fmt;
	/* Intermediaries must neither cache nor buffer a stream; nginx reads X-Accel-Buffering. */
	if (response_add_header(r, "Cache-Control", "no-cache") < 0 ||
	    response_add_header(r, "X-Accel-Buffering", "no") < 0)
		return -1;
	if (write_head(r, status, types[fmt], -1) < 0)
		return -1;
	if (fmt == RESP_SSE && io_write(r, ": ok\n\n", 6) < 0)
		return -1;
	return response_flush(r);
}

int response_write(struct response *r, const char *p, size_t n)
{
	if (r->head_only)
		return 0;
	if (io_write(r, p, n) < 0)
		return -1;
	r->body_bytes += n;
	return 0;
}
