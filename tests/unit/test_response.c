/* The response writer over a memory io: status, headers, error shapes per dialect, commit rules. */
#include <json-c/json.h>
#include <string.h>

#include "response.h"
#include "tap.h"

struct mem {
	struct buf out;
	int fail_after; /* writes allowed before the client "leaves"; -1 = never */
	int flushes;
};

static const char *mem_param(void *ctx, const char *name) { return NULL; }
static ssize_t mem_read(void *ctx, char *p, size_t n) { return 0; }
static int mem_write(void *ctx, const char *p, size_t n)
{
	struct mem *m = ctx;
	if (m->fail_after == 0)
		return -1;
	if (m->fail_after > 0)
		m->fail_after--;
	return buf_append(&m->out, p, n);
}
static int mem_flush(void *ctx)
{
	struct mem *m = ctx;
	m->flushes++;
	return m->fail_after == 0 ? -1 : 0;
}
static int mem_gone(void *ctx) { return 0; }
static int mem_fd(void *ctx) { return -1; }

static const struct io_ops mem_ops = {mem_param, mem_read, mem_write, mem_flush, mem_gone, mem_fd, 0};

static void setup(struct mem *m, struct io *io, struct response *r, enum dialect d, int fail_after)
{
	buf_init(&m->out, 1 << 20);
	m->fail_after = fail_after;
	m->flushes = 0;
	io->ops = &mem_ops;
	io->ctx = m;
	response_init(r, io, d);
}

static void teardown(struct mem *m, struct response *r)
{
	response_release(r);
	buf_release(&m->out);
}

int main(void)
{
	struct mem m;
	struct io io;
	struct response r;

	setup(&m, &io, &r, DIALECT_NATIVE, -1);
	response_add_header(&r, "Allow", "GET, HEAD");
	response_add_header(&r, "X-Bad", "a\r\nInjected: yes");
	tap_is_int(response_error(&r, ERR_METHOD, NULL), 0, "error sent");
	tap_is_str(buf_cstr(&m.out),
		   "Status: 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 73\r\n"
		   "Allow: GET, HEAD\r\n\r\n"
		   "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Method Not Allowed\"}}",
		   "native error shape, Allow header, no injected header");
	tap_ok(r.committed && r.status == 405, "committed with its status");
	tap_is_int(response_error(&r, ERR_INTERNAL, NULL), -1, "nothing more after commit");
	tap_is_int(response_add_header(&r, "X", "y"), -1, "no header after commit");
	teardown(&m, &r);

	setup(&m, &io, &r, DIALECT_ANTHROPIC, -1);
	response_error(&r, ERR_OVERLOADED, "busy");
	tap_ok(strstr(buf_cstr(&m.out), "\r\n\r\n{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}") != NULL,
	       "Anthropic error shape");
	tap_ok(strncmp(buf_cstr(&m.out), "Status: 503 ", 12) == 0, "529 upstream becomes 503 here");
	teardown(&m, &r);

	setup(&m, &io, &r, DIALECT_OPENAI, -1);
	response_error(&r, ERR_BAD_REQUEST, "n: only 1 is supported");
	tap_ok(strstr(buf_cstr(&m.out), "{\"error\":{\"message\":\"n: only 1 is supported\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}") != NULL,
	       "OpenAI error shape");
	teardown(&m, &r);

	setup(&m, &io, &r, DIALECT_NATIVE, -1);
	tap_is_int(response_begin(&r, 200, RESP_SSE), 0, "SSE begins");
	tap_is_str(buf_cstr(&m.out),
		   "Status: 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
		   "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n: ok\n\n",
		   "SSE headers without Content-Length, then a comment");
	tap_is_int(m.flushes, 1, "flushed at once");
	response_write(&r, "data: x\n\n", 9);
	response_flush(&r);
	tap_is_int(r.flushes, 2, "one flush per call");
	teardown(&m, &r);

	setup(&m, &io, &r, DIALECT_NATIVE, 1);
	tap_is_int(response_begin(&r, 200, RESP_TEXT), -1, "a failed flush means the client is gone");
	tap_ok(r.client_gone, "client_gone set");
	tap_is_int(response_write(&r, "x", 1), -1, "later writes fail at once");
	teardown(&m, &r);

	setup(&m, &io, &r, DIALECT_NATIVE, -1);
	r.head_only = 1;
	struct json_object *o = json_tokener_parse("{\"status\":\"ok\"}");
	response_json(&r, 200, o);
	json_object_put(o);
	tap_is_str(buf_cstr(&m.out), "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n",
		   "HEAD: headers only, with the body's length");
	teardown(&m, &r);
	return tap_done();
}
