/* POST /v1/chat/completions: the OpenAI Chat Completions API, served by the Messages API. The
 * translation both ways is openai.c's; here are the upstream call, the stream and the errors,
 * and the thinking kept across a tool round trip.
 *
 * That thinking: the Messages API wants the thinking blocks of a turn that called tools back,
 * signatures intact, with the results, and Chat Completions clients drop them. An answer that
 * calls tools after thinking has its blocks kept in the shared store (as the Responses API's
 * kept responses: this host's slots, or Redis) under "think_" + its first call's id for
 * OPENAI_KEEP_TTL_S, tagged with who asked; the request that hands those calls' results back
 * gets them put back in front of the calls. Gone (expired, evicted, another identity's): the
 * request runs without thinking where the model allows it, else a 400 saying so. */
#include "handlers.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../anthropic.h"
#include "../log.h"
#include "../openai.h"
#include "../relay.h"
#include "../store.h"
#include "../upstream.h"

struct chat {
	struct request *rq;
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

/* The store key of a tool call's thinking. */
static void thinking_key(char key[STORE_BLOB_KEY_MAX], const char *id)
{
	snprintf(key, STORE_BLOB_KEY_MAX, "think_%s", id);
}

/* Keeps blocks (JSON text, taken over; NULL: nothing to keep) for the turn that hands the results
 * of call id back, after a line naming who asked: nobody else gets them back. Before the client
 * sees the answer's end, so its next turn finds them; a failure costs only that turn's thinking. */
static void keep_thinking(struct request *rq, const char *id, char *blocks, size_t len)
{
	struct store *st = rq->srv->store;
	char key[STORE_BLOB_KEY_MAX];
	struct buf b;
	if (!blocks || !st) {
		free(blocks);
		return;
	}
	buf_init(&b, STORE_BLOB_MAX);
	thinking_key(key, id);
	enum store_result rc = buf_printf(&b, "%s\n", rq->acc.who ? rq->acc.who : "") ||
			       buf_append(&b, blocks, len)
			       ? STORE_FULL : store_put_blob(st, key, b.data, b.len, OPENAI_KEEP_TTL_S);
	if (rc != STORE_OK)
		log_warn("chat: the thinking of %s not kept (%s): its tool results will come back "
			 "without it", key, rc == STORE_FULL ? "over STORE_BLOB_MAX" : "the store is down");
	buf_release(&b);
	free(blocks);
}

/* The thinking kept for the tool calls whose results the request hands back, read into out:
 * sets orq->thinking_back and *blocks to the blocks' JSON text (in out) when there are some for
 * this identity, else leaves them. Returns 0, or -1 when it has answered (the store is down: a
 * 502, as for the Responses API's kept responses, rather than a 400 saying they expired). */
static int thinking_back(struct request *rq, struct openai_request *orq, struct buf *out,
			 const char **blocks)
{
	const char *id = openai_thinking_wanted(orq);
	const char *who = rq->acc.who ? rq->acc.who : "";
	char key[STORE_BLOB_KEY_MAX];
	int found = 0;
	*blocks = NULL;
	if (!id || !rq->srv->store)
		return 0;
	thinking_key(key, id);
	if (store_get_blob(rq->srv->store, key, out, &found) == STORE_DOWN) {
		log_error("chat: the store (%s) cannot be read for %s", store_backend(rq->srv->store),
			  key);
		struct openai_error oe = {.kind = ERR_UPSTREAM, .code = "store_unavailable"};
		snprintf(oe.message, sizeof oe.message, "The store that keeps the thinking of tool "
			 "calls cannot be read; retry shortly");
		refuse(rq, &oe);
		return -1;
	}
	const char *nl = found ? memchr(out->data, '\n', out->len) : NULL;
	if (!nl || (size_t)(nl - out->data) != strlen(who) || memcmp(out->data, who, strlen(who)))
		return 0;
	orq->thinking_back = 1;
	*blocks = nl + 1;
	return 0;
}

static int on_event(struct relay *r, const struct sse_event *e, const struct anth_event *ev)
{
	struct chat *c = r->arg;
	size_t n = 0;
	char *kept;
	switch (openai_stream_event(&c->st, e->event, e->data, e->data_len, ev, relay_frame(r))) {
	case OPENAI_FAILED:
		return -1; /* the relay holds the error event's type and message */
	case OPENAI_INVALID:
		relay_fail(r, "api_error", "The upstream API sent an invalid stream event");
		return -1;
	case OPENAI_DONE:
		kept = openai_stream_kept(&c->st, &n);
		keep_thinking(c->rq, c->st.kept_id, kept, n);
		break;
	case OPENAI_GO_ON:
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
	size_t n, kn = 0;
	char id[OPENAI_CALL_ID_MAX + 1];
	char *out = openai_completion(body, len, c->orq, (long)time(NULL), &u, &n);
	if (!out)
		return -1;
	char *kept = openai_thinking_kept(body, len, id, &kn);
	keep_thinking(c->rq, id, kept, kn);
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

/* An identified request was parsed without max_tokens_limit (handlers_openai_limits): its limit
 * is the model's maximum output, known only now. Returns 1 with *oe set when it asks for more. */
static int over_limit(const struct request *rq, const struct openai_request *orq,
		      const struct config_model *m, struct openai_error *oe)
{
	long limit = handlers_max_tokens_limit(rq, m->target, m->target_len);
	if (orq->max_tokens <= limit)
		return 0;
	/* The field it came from, as the parser reads them (a null one is not given). */
	static const char *const fields[] = {"max_completion_tokens", "max_output_tokens"};
	const char *f = "max_tokens";
	struct json_object *v;
	for (size_t i = 0; i < 2 && strcmp(f, "max_tokens") == 0; i++)
		if (json_object_object_get_ex(orq->root, fields[i], &v) && v)
			f = fields[i];
	openai_refuse(oe, f, "invalid_value", "%s: %ld is more than this server allows (%ld)", f,
		      orq->max_tokens, limit);
	return 1;
}

void handlers_openai_limits(const struct request *rq, struct openai_limits *lim)
{
	const struct config *cfg = rq->srv->cfg;
	lim->max_tokens = cfg->max_tokens;
	lim->max_tokens_limit = handlers_identified(rq) ? LONG_MAX : cfg->max_tokens_limit;
}

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
	if (!handlers_model_find(rq, orq->model, strlen(orq->model), &m)) {
		oe.kind = ERR_BAD_REQUEST;
		snprintf(oe.message, sizeof oe.message, "The model '%.256s' does not exist or is not "
			 "served here (GET /v1/models lists the models it serves)", orq->model);
		snprintf(oe.param, sizeof oe.param, "model");
		oe.code = "model_not_found";
		refuse(rq, &oe);
		return NULL;
	}
	if (over_limit(rq, orq, &m, &oe) ||
	    openai_apply_model(orq, config_model_info(cfg, m.target, m.target_len), &oe) < 0) {
		refuse(rq, &oe);
		return NULL;
	}
	return xstrndup(m.target, m.target_len);
}

void handle_chat(struct request *rq)
{
	if (handlers_check_json(rq) < 0 || handlers_check_origin(rq) < 0)
		return;
	struct openai_limits lim;
	handlers_openai_limits(rq, &lim);
	struct openai_request orq;
	struct openai_error oe;
	if (openai_parse_request(rq->body.data ? rq->body.data : "", rq->body.len, &lim, &orq,
				 &oe) < 0) {
		refuse(rq, &oe);
		return;
	}
	struct buf kept;
	const char *blocks;
	buf_init(&kept, STORE_BLOB_MAX);
	char *target = thinking_back(rq, &orq, &kept, &blocks) < 0 ? NULL
		       : handlers_openai_model(rq, &orq);
	if (!target) {
		buf_release(&kept);
		openai_request_release(&orq);
		return;
	}
	if (blocks && openai_thinking_insert(&orq, blocks, kept.len - (size_t)(blocks - kept.data)) < 0)
		log_warn("chat: kept thinking that is not thinking blocks: the results go without it");
	buf_release(&kept);
	struct upstream_request ur = {.path = "/v1/messages", .stream = orq.stream};
	char *body = openai_messages_body(&orq, target, &ur.body_len);
	ur.body = body;

	struct chat c = {.rq = rq, .orq = &orq};
	openai_stream_init(&c.st, &orq, (long)time(NULL));
	if (rq->srv->store)
		openai_stream_keep(&c.st, STORE_BLOB_MAX);
	relay_run(rq, ur.stream ? &stream_ops : &whole_ops, &c, &ur);
	openai_stream_release(&c.st);
	openai_request_release(&orq);
	free(body);
	free(target);
}
