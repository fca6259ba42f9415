/* POST /v1/chat/completions: the OpenAI Chat Completions API, served by the Messages API. The
 * translation both ways is openai.c's; here are the upstream call, the stream and the errors. */
#include "handlers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../anthropic.h"
#include "../openai.h"
#include "../request.h"
#include "../upstream.h"

struct chat {
	struct api_relay relay;
	struct openai_stream st;
	char fail_type[64]; /* an upstream error event, or "" */
	char fail_message[512];
	int invalid;
};

/* A refusal before any upstream call, with OpenAI's param and code. */
static void refuse(struct request *rq, const struct openai_error *e)
{
	struct json_object *o = openai_error_body(e->message, err_type(e->kind, DIALECT_OPENAI),
						  e->param, e->code);
	rq->acc.error = err_name(e->kind);
	if (response_json(&rq->resp, err_status(e->kind), o) < 0)
		rq->acc.cancelled = 1;
	json_object_put(o);
}

static int on_event(void *arg, const struct sse_event *e)
{
	struct chat *c = arg;
	struct api_relay *r = &c->relay;
	struct request *rq = r->rq;
	struct anth_event ev;
	anthropic_parse_event(e->event, e->data, e->data_len, &ev);
	buf_reset(&r->frame);
	enum openai_step step = openai_stream_event(&c->st, e->event, &ev, &r->frame);
	int rc = 0;
	switch (step) {
	case OPENAI_FAILED:
		snprintf(c->fail_type, sizeof c->fail_type, "%s", ev.error_type);
		snprintf(c->fail_message, sizeof c->fail_message, "%s", ev.error_message);
		rc = -1;
		break;
	case OPENAI_INVALID:
		c->invalid = 1;
		rc = -1;
		break;
	case OPENAI_GO_ON:
	case OPENAI_DONE:
		if (ev.kind == ANTH_EV_TEXT) {
			if (rq->acc.ttft_ms < 0)
				rq->acc.ttft_ms = (request_now() - rq->started) * 1000.0;
			rq->acc.delta_flushes++;
		}
		rq->acc.input_tokens = c->st.usage.input_tokens;
		rq->acc.output_tokens = c->st.usage.output_tokens;
		break;
	}
	anthropic_event_release(&ev);
	if (rc == 0 && r->frame.len) {
		anthropic_scrub_len(r->frame.data, r->frame.len, rq->srv->cfg->api_key);
		rc = api_relay_send(r);
	}
	return rc;
}

/* A failed stream ends with an error chunk and without [DONE], which is how OpenAI's SDK tells
 * a cut answer from a whole one. */
static void stream_failed(struct chat *c, const struct upstream_result *res)
{
	struct request *rq = c->relay.rq;
	const char *type, *msg;
	if (c->fail_type[0]) {
		type = c->fail_type;
		msg = c->fail_message;
		anthropic_scrub(c->fail_type, rq->srv->cfg->api_key);
		anthropic_scrub(c->fail_message, rq->srv->cfg->api_key);
	} else if (c->invalid) {
		type = "api_error";
		msg = "The upstream API sent an invalid stream event";
	} else {
		type = api_failure(&c->relay, res, &msg);
	}
	log_warn("stream failed after commit: %s: %s (%s)", type, msg,
		 res->detail[0] ? res->detail : upstream_outcome_name(res->outcome));
	rq->acc.error = "stream_failed";
	buf_reset(&c->relay.frame);
	if (openai_stream_error(&c->relay.frame, type, msg) == 0)
		api_relay_send(&c->relay);
}

static void answer(struct request *rq, struct api_relay *r, const char *model)
{
	struct openai_usage u;
	size_t n;
	char *out = openai_completion(r->body.data ? r->body.data : "", r->body.len, model,
				      (long)time(NULL), &u, &n);
	if (!out) {
		log_warn("upstream answered 2xx with a body that is not a message");
		response_add_header(&rq->resp, "x-should-retry", "false");
		request_fail(rq, ERR_UPSTREAM, "The upstream API sent an invalid answer");
		return;
	}
	rq->acc.input_tokens = u.input_tokens;
	rq->acc.output_tokens = u.output_tokens;
	anthropic_scrub_len(out, n, rq->srv->cfg->api_key);
	if (response_send(&rq->resp, 200, "application/json", out, n) < 0)
		rq->acc.cancelled = 1;
	free(out);
}

void handle_chat(struct request *rq)
{
	const struct config *cfg = rq->srv->cfg;
	if (api_check_json(rq) < 0 || handlers_check_origin(rq) < 0)
		return;
	struct openai_limits lim = {.max_tokens = cfg->max_tokens,
				    .max_tokens_limit = cfg->max_tokens_limit};
	struct openai_request orq;
	struct openai_error oe;
	if (openai_parse_request(rq->body.data ? rq->body.data : "", rq->body.len, &lim, &orq,
				 &oe) < 0) {
		refuse(rq, &oe);
		return;
	}
	struct config_model m;
	if (!config_model_find(cfg, orq.model, strlen(orq.model), &m)) {
		oe.kind = ERR_BAD_REQUEST;
		snprintf(oe.message, sizeof oe.message, "The model '%.256s' does not exist or is not "
			 "served here (GET /v1/models lists the models it serves)", orq.model);
		snprintf(oe.param, sizeof oe.param, "model");
		oe.code = "model_not_found";
		refuse(rq, &oe);
		openai_request_release(&orq);
		return;
	}
	char *target = xstrndup(m.target, m.target_len);
	struct upstream_request ur = {.path = "/v1/messages", .stream = orq.stream};
	char *body = openai_messages_body(&orq, target, &ur.body_len);
	ur.body = body;

	struct chat c;
	struct upstream_result res;
	memset(&c, 0, sizeof c);
	/* The client's name for the model goes back to it, as OpenAI answers with what was asked. */
	openai_stream_init(&c.st, orq.model, (long)time(NULL), orq.include_usage);
	api_relay_run(&c.relay, rq, &ur, on_event, &c, &res);
	if (rq->acc.cancelled) {
		/* nothing more can reach the client */
	} else if (rq->resp.committed) {
		if (!c.st.finished)
			stream_failed(&c, &res);
		if (c.relay.gone)
			rq->acc.cancelled = 1;
	} else {
		api_note_upstream(rq, &res);
		if (ur.stream || res.outcome != UP_DONE || res.h.status < 200 || res.h.status > 299) {
			if (c.relay.too_large) {
				response_add_header(&rq->resp, "x-should-retry", "false");
				request_fail(rq, ERR_UPSTREAM, "The upstream API sent an answer larger "
							       "than this server accepts");
			} else {
				api_relay_error(rq, &res, 1);
			}
		} else {
			answer(rq, &c.relay, orq.model);
		}
	}
	upstream_result_release(&res);
	api_relay_release(&c.relay);
	openai_stream_release(&c.st);
	openai_request_release(&orq);
	free(body);
	free(target);
}
