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
#include "../relay.h"
#include "../upstream.h"

struct chat {
	struct openai_stream st;
	const struct openai_request *orq; /* the model as the client named it (OpenAI answers with
					   * what was asked), reasoning shown, response_format */
};

/* A refusal before any upstream call, with OpenAI's param and code. */
static void refuse(struct request *rq, const struct openai_error *e)
{
	struct json_object *o = openai_error_body(e->message, err_type(e->kind, DIALECT_OPENAI),
						  e->param, e->code);
	request_refuse(rq, e->kind, o);
	json_object_put(o);
}

static int on_event(struct relay *r, const struct sse_event *e, const struct anth_event *ev)
{
	struct chat *c = r->arg;
	switch (openai_stream_event(&c->st, e->event, e->data, e->data_len, ev, relay_frame(r))) {
	case OPENAI_FAILED:
		return -1; /* the relay holds the error event's type and message */
	case OPENAI_INVALID:
		relay_fail(r, "api_error", "The upstream API sent an invalid stream event");
		return -1;
	case OPENAI_GO_ON:
	case OPENAI_DONE:
		break;
	}
	return 0;
}

/* A failed stream ends with an error chunk and without [DONE], which is how OpenAI's SDK tells
 * a cut answer from a whole one. */
static void on_finish(struct relay *r, const struct relay_failure *f)
{
	if (f)
		openai_stream_error(relay_frame(r), f->type, f->message);
}

static int on_whole(struct relay *r, char *body, size_t len)
{
	struct chat *c = r->arg;
	struct openai_usage u;
	size_t n;
	char *out = openai_completion(body, len, c->orq, (long)time(NULL), &u, &n);
	if (!out)
		return -1;
	relay_usage(r, u.input_tokens, u.output_tokens);
	relay_answer(r, "application/json", out, n);
	free(out);
	return 0;
}

/* An upstream error before commit keeps its status, in OpenAI's shape. */
int handlers_openai_upstream_error(struct relay *r, int status, const char *type,
				   const char *message, const char *body, size_t len)
{
	struct json_object *o = openai_error_body(message, openai_error_type(type), NULL, type);
	int rc = response_json(&r->rq->resp, status, o);
	json_object_put(o);
	return rc;
}

static const struct relay_ops stream_ops = {
	.mode = RELAY_STREAM,
	.fmt = RESP_SSE,
	.on_event = on_event,
	.on_finish = on_finish,
	.on_upstream_error = handlers_openai_upstream_error,
};

static const struct relay_ops whole_ops = {
	.mode = RELAY_WHOLE,
	.on_whole = on_whole,
	.on_upstream_error = handlers_openai_upstream_error,
};

char *handlers_openai_model(struct request *rq, struct openai_request *orq)
{
	const struct config *cfg = rq->srv->cfg;
	struct openai_error oe;
	struct config_model m;
	memset(&oe, 0, sizeof oe);
	if (handlers_model_retired(rq, orq->model, strlen(orq->model), oe.message, sizeof oe.message) ||
	    (config_model_find(cfg, orq->model, strlen(orq->model), &m) &&
	     handlers_model_retired(rq, m.target, m.target_len, oe.message, sizeof oe.message))) {
		/* OpenAI's answer for a model that is gone: 404 model_not_found, before the
		 * allowlist (the catalogue's suggestion is in the message). */
		oe.kind = ERR_NOT_FOUND;
		snprintf(oe.param, sizeof oe.param, "model");
		oe.code = "model_not_found";
		refuse(rq, &oe);
		return NULL;
	}
	if (!config_model_find(cfg, orq->model, strlen(orq->model), &m)) {
		oe.kind = ERR_BAD_REQUEST;
		snprintf(oe.message, sizeof oe.message, "The model '%.256s' does not exist or is not "
			 "served here (GET /v1/models lists the models it serves)", orq->model);
		snprintf(oe.param, sizeof oe.param, "model");
		oe.code = "model_not_found";
		refuse(rq, &oe);
		return NULL;
	}
	if (openai_apply_model(orq, config_model_info(cfg, m.target, m.target_len), &oe) < 0) {
		refuse(rq, &oe);
		return NULL;
	}
	return xstrndup(m.target, m.target_len);
}

void handle_chat(struct request *rq)
{
	const struct config *cfg = rq->srv->cfg;
	if (handlers_check_json(rq) < 0 || handlers_check_origin(rq) < 0)
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
	char *target = handlers_openai_model(rq, &orq);
	if (!target) {
		openai_request_release(&orq);
		return;
	}
	struct upstream_request ur = {.path = "/v1/messages", .stream = orq.stream};
	char *body = openai_messages_body(&orq, target, &ur.body_len);
	ur.body = body;

	struct chat c = {.orq = &orq};
	openai_stream_init(&c.st, &orq, (long)time(NULL));
	relay_run(rq, ur.stream ? &stream_ops : &whole_ops, &c, &ur);
	openai_stream_release(&c.st);
	openai_request_release(&orq);
	free(body);
	free(target);
}
