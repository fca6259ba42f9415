#include "fake.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "serve.h"

struct fake_upstream fake_up;

/* ---- the client side: an io over memory ---- */

static const char *mem_param(void *ctx, const char *name)
{
	struct fake_client *c = ctx;
	for (const char *const *p = c->params; p && *p; p += 2)
		if (strcmp(*p, name) == 0)
			return p[1];
	return NULL;
}

static ssize_t mem_read(void *ctx, char *p, size_t n)
{
	struct fake_client *c = ctx;
	size_t left = c->body_len - c->body_off;
	if (n > left)
		n = left;
	memcpy(p, c->body + c->body_off, n);
	c->body_off += n;
	return (ssize_t)n;
}

static int mem_write(void *ctx, const char *p, size_t n)
{
	struct fake_client *c = ctx;
	if (c->writes_left == 0)
		return -1;
	if (c->writes_left > 0)
		c->writes_left--;
	return buf_append(&c->out, p, n);
}

static int mem_flush(void *ctx)
{
	struct fake_client *c = ctx;
	c->flushes++;
	return c->writes_left == 0 ? -1 : 0;
}

static int mem_gone(void *ctx)
{
	struct fake_client *c = ctx;
	if (c->gone_after_ticks == 0)
		c->gone = 1;
	else if (c->gone_after_ticks > 0)
		c->gone_after_ticks--;
	return c->gone;
}

static int mem_fd(void *ctx)
{
	return -1;
}

static const struct io_ops mem_ops = {mem_param, mem_read, mem_write, mem_flush, mem_gone,
				      mem_fd, 0};

/* ---- the upstream: upstream.c's interface, scripted by fake_up ---- */

const char *upstream_outcome_name(enum upstream_outcome o)
{
	static const char *const names[] = {"done", "connect_failed", "broken", "first_byte_timeout",
					    "idle_timeout", "total_timeout", "aborted", "too_large"};
	return names[o];
}

void upstream_result_release(struct upstream_result *res)
{
	buf_release(&res->error_body);
}

static int ticks(const struct upstream_sink *sink, int n)
{
	for (int i = 0; i < n; i++)
		if (sink->on_tick && sink->on_tick(sink->arg))
			return -1;
	return 0;
}

/* The 2xx answer's body, piece by piece. Returns 0, or -1 when the sink stopped it. */
static int feed(const struct upstream_sink *sink)
{
	const char *p = fake_up.body ? fake_up.body : "";
	size_t n = strlen(p);
	size_t step = fake_up.chunk ? fake_up.chunk : (n ? n : 1);
	for (size_t off = 0; off < n; off += step) {
		size_t k = n - off < step ? n - off : step;
		if (sink->on_body(sink->arg, p + off, k) || ticks(sink, fake_up.ticks_between))
			return -1;
	}
	return 0;
}

static enum upstream_outcome answer(const struct upstream_sink *sink, struct upstream_result *res)
{
	if (ticks(sink, fake_up.ticks_before))
		return UP_ABORTED;
	if (fake_up.before != UP_DONE)
		return fake_up.before;
	res->h.status = fake_up.status ? fake_up.status : 200;
	snprintf(res->h.request_id, sizeof res->h.request_id, "%s",
		 fake_up.request_id ? fake_up.request_id : "");
	res->h.retry_after = fake_up.retry_after > 0 ? fake_up.retry_after : -1;
	if (res->h.status < 200 || res->h.status > 299) {
		BUF_MUST(buf_appends(&res->error_body, fake_up.body ? fake_up.body : ""));
		return UP_DONE;
	}
	if (sink->on_headers(sink->arg, &res->h) || feed(sink))
		return UP_ABORTED;
	return fake_up.after;
}

void upstream_call(struct upstream *u, const struct upstream_request *rq,
		   const struct upstream_sink *sink, struct upstream_result *res)
{
	memset(res, 0, sizeof *res);
	buf_init(&res->error_body, 1 << 20);
	res->attempts = 1;
	res->first_byte_ms = -1;
	fake_up.calls++;
	fake_up.path = rq->path;
	fake_up.stream = rq->stream;
	buf_reset(&fake_up.sent);
	BUF_MUST(buf_append(&fake_up.sent, rq->body, rq->body_len));
	res->outcome = answer(sink, res);
	fake_up.aborted = res->outcome == UP_ABORTED;
}

/* ---- one request ---- */

void fake_init(struct fake *f, const char *api_key, double keepalive, const char *const *params,
	       const char *body)
{
	char *err = NULL;
	memset(f, 0, sizeof *f);
	config_defaults(&f->cfg);
	if (config_set(&f->cfg, "models", "claude-test alias=claude-test", &err) < 0 ||
	    config_set(&f->cfg, "model", "claude-test", &err) < 0) {
		fprintf(stderr, "fake config: %s\n", err);
		abort();
	}
	free(f->cfg.api_key);
	f->cfg.api_key = api_key ? xstrdup(api_key) : NULL;
	f->cfg.keepalive_interval = keepalive;
	server_init(&f->srv, &f->cfg, NULL);
	f->client.params = params;
	f->client.body = body ? body : "";
	f->client.body_len = strlen(f->client.body);
	f->client.writes_left = -1;
	f->client.gone_after_ticks = -1;
	buf_init(&f->client.out, 1 << 24);
	f->io.ops = &mem_ops;
	f->io.ctx = &f->client;
	buf_release(&fake_up.sent);
	memset(&fake_up, 0, sizeof fake_up);
	fake_up.after = UP_DONE;
	buf_init(&fake_up.sent, 1 << 24);
	buf_init(&f->log, 1 << 24);
}

void fake_release(struct fake *f)
{
	buf_release(&f->client.out);
	buf_release(&f->log);
	config_release(&f->cfg);
}

void fake_serve(struct fake *f)
{
	snprintf(f->log_path, sizeof f->log_path, "/tmp/llm-fcgi-unit-%ld.log", (long)getpid());
	unlink(f->log_path);
	if (log_open(f->log_path, LOG_INFO) < 0)
		abort();
	serve_request(&f->srv, &f->io);
	log_close();
	FILE *fp = fopen(f->log_path, "r");
	char chunk[4096];
	size_t n;
	buf_reset(&f->log);
	while (fp && (n = fread(chunk, 1, sizeof chunk, fp)) > 0)
		BUF_MUST(buf_append(&f->log, chunk, n));
	if (fp)
		fclose(fp);
	unlink(f->log_path);
}

const char *fake_log(const struct fake *f)
{
	return buf_cstr(&f->log);
}

struct json_object *fake_access(const struct fake *f)
{
	const char *p = strstr(fake_log(f), " access {");
	if (!p)
		return NULL;
	p += strlen(" access ");
	return json_tokener_parse(p);
}

const char *fake_body(const struct fake *f)
{
	const char *out = buf_cstr(&f->client.out);
	const char *p = strstr(out, "\r\n\r\n");
	return p ? p + 4 : "";
}

int fake_status(const struct fake *f)
{
	const char *out = buf_cstr(&f->client.out);
	return strncmp(out, "Status: ", 8) == 0 ? atoi(out + 8) : 0;
}

int fake_has_header(const struct fake *f, const char *line)
{
	const char *out = buf_cstr(&f->client.out);
	const char *end = strstr(out, "\r\n\r\n");
	size_t n = strlen(line);
	for (const char *p = strstr(out, line); p && (!end || p < end); p = strstr(p + 1, line))
		if ((p == out || p[-1] == '\n') && p[n] == '\r')
			return 1;
	return 0;
}

int fake_count(const struct fake *f, const char *needle)
{
	int k = 0;
	const char *out = buf_cstr(&f->client.out);
	for (const char *p = strstr(out, needle); p; p = strstr(p + strlen(needle), needle))
		k++;
	return k;
}
