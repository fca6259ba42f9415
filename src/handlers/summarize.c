#include "handlers.h"

#include <string.h>

#include <json-c/json.h>
#include <stdlib.h>

#include "../anthropic.h"
#include "../input.h"
#include "../request.h"
#include "../upstream.h"

struct collect {
	struct request *rq;
	struct buf body;
	int too_large;
};

static int collect_body(void *arg, const char *p, size_t n)
{
	struct collect *c = arg;
	if (buf_append(&c->body, p, n) < 0) {
		c->too_large = 1;
		return -1;
	}
	return 0;
}

/* A retry after a body cut off in the middle starts the body over. */
static int collect_start(void *arg, const struct upstream_headers *h)
{
	struct collect *c = arg;
	buf_reset(&c->body);
	return 0;
}

static int collect_tick(void *arg)
{
	struct collect *c = arg;
	return c->rq->io->ops->client_gone(c->rq->io->ctx);
}

static int never_committed(void *arg)
{
	return 0;
}

static void answer(struct request *rq, const struct anth_message *m)
{
	struct json_object *o = json_object_new_object();
	struct json_object *usage = json_object_new_object();
	json_object_object_add(o, "summary", json_object_new_string(m->text));
	json_object_object_add(o, "model", json_object_new_string(m->model));
	json_object_object_add(o, "stop_reason", json_object_new_string(m->stop_reason));
	json_object_object_add(usage, "input_tokens", json_object_new_int64(m->usage.input_tokens));
	json_object_object_add(usage, "output_tokens", json_object_new_int64(m->usage.output_tokens));
	json_object_object_add(o, "usage", usage);
	if (response_json(&rq->resp, 200, o) < 0)
		rq->acc.cancelled = 1;
	json_object_put(o);
}

/* POST /summarize, /sync-summarize, /async-summarize: one non-streaming Messages call with the
 * configured prompt as system and the client's text as the user turn. */
void handle_summarize(struct request *rq)
{
	const struct config *cfg = rq->srv->cfg;
	struct input in;
	const char *msg = NULL;
	enum err_kind e = input_parse(io_param(rq->io, "CONTENT_TYPE"), rq->body.data, rq->body.len,
				      io_param(rq->io, "QUERY_STRING"), 0, &in, &msg);
	if (e != ERR_OK) {
		request_fail(rq, e, msg);
		return;
	}
	if (handlers_check_origin(rq) < 0) {
		input_release(&in);
		return;
	}
	struct anth_request ar = {
		.model = cfg->model,
		.max_tokens = request_max_tokens(rq, in.max_tokens),
		.system = cfg->summarize_prompt,
		.text = in.text,
		.text_len = in.text_len,
		.info = config_model_info(cfg, cfg->model, strlen(cfg->model)),
		.thinking = cfg->summarize_thinking,
	};
	size_t body_len;
	char *body = anthropic_request_body(&ar, &body_len);
	input_release(&in);

	struct collect c = {.rq = rq};
	buf_init(&c.body, cfg->max_response_bytes);
	struct upstream_sink sink = {
		.on_headers = collect_start,
		.on_body = collect_body,
		.on_tick = collect_tick,
		.committed = never_committed,
		.watch_fd = rq->io->ops->watch_fd(rq->io->ctx),
		.arg = &c,
	};
	struct upstream_request ur = {.path = "/v1/messages", .body = body, .body_len = body_len};
	struct upstream_result res;
	upstream_call(rq->srv->up, &ur, &sink, &res);
	request_note_upstream(rq, &res);

	struct anth_message m;
	if (res.outcome == UP_DONE && res.h.status >= 200 && res.h.status < 300) {
		if (anthropic_parse_message(c.body.data ? c.body.data : "", c.body.len, &m) == 0) {
			rq->acc.input_tokens = m.usage.input_tokens;
			rq->acc.output_tokens = m.usage.output_tokens;
			answer(rq, &m);
			anthropic_message_release(&m);
		} else {
			log_warn("upstream answered %ld with a body that is not a message", res.h.status);
			response_add_header(&rq->resp, "x-should-retry", "false");
			request_fail(rq, ERR_UPSTREAM, "The upstream API sent an invalid answer");
		}
	} else if (c.too_large) {
		log_warn("upstream answer over max_response_bytes (%zu)", cfg->max_response_bytes);
		response_add_header(&rq->resp, "x-should-retry", "false");
		request_fail(rq, ERR_UPSTREAM, "The upstream API sent an answer larger than this server accepts");
	} else {
		request_fail_upstream(rq, &res);
	}
	upstream_result_release(&res);
	buf_release(&c.body);
	free(body);
}
