/* POST /v1/responses: the OpenAI Responses API, served by the Messages API. The translation
 * both ways is responses.c's (on openai.c's pieces); here are the store of recent responses, the
 * upstream call, the stream and the errors.
 *
 * The store: a response the client lets us keep (store, true by default as OpenAI's) is put in
 * the shared store (store_put_blob: this host's slots, or Redis) under its id for
 * RESPONSES_TTL_S, before the client can see its end, so that its next turn, which names earlier
 * items by id (item_reference) or the response itself (previous_response_id), finds them. Ids
 * hold 128 random bits: knowing one is what reading a kept response takes. */
#include "handlers.h"

#include <json-c/json.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../log.h"
#include "../relay.h"
#include "../responses.h"
#include "../store.h"
#include "../upstream.h"

/* How long a kept response can be referred to (OpenAI keeps them 30 days; a bounded store of one
 * host keeps the recent ones, and the oldest give way first when it is full). */
#define RESPONSES_TTL_S (24 * 3600)

struct resp {
	struct responses_stream st;
	struct responses_request *rrq;
	struct store *store;
	char token[RESPONSES_TOKEN_LEN + 1];
};

static void refuse(struct request *rq, const struct openai_error *e)
{
	struct json_object *o = openai_error_body(e->message, err_type(e->kind, DIALECT_OPENAI),
						  e->param, e->code);
	request_refuse(rq, e->kind, o);
	json_object_put(o);
}

static int lookup(void *arg, const char *key, struct buf *out)
{
	int found;
	struct store *st = arg;
	if (!st)
		return 0;
	enum store_result rc = store_get_blob(st, key, out, &found);
	if (rc == STORE_DOWN)
		log_error("responses: the store (%s) cannot be read", store_backend(st));
	return rc == STORE_DOWN ? -1 : found;
}

/* Keeps a finished response for later turns; a failure costs only those references. */
static void keep(struct resp *c, struct json_object *response)
{
	size_t len;
	char key[64];
	if (!c->rrq->store || !c->store)
		return;
	char *blob = responses_stored(c->rrq, response, STORE_BLOB_MAX, &len);
	snprintf(key, sizeof key, "resp_%s", c->token);
	enum store_result rc = blob ? store_put_blob(c->store, key, blob, len, RESPONSES_TTL_S)
				    : STORE_FULL;
	if (rc != STORE_OK)
		log_warn("responses: %s not kept (%s): later references to it will be refused", key,
			 rc == STORE_FULL ? "over STORE_BLOB_MAX" : "the store is down");
	free(blob);
}

static int on_event(struct relay *r, const struct sse_event *e, const struct anth_event *ev)
{
	struct resp *c = r->arg;
	switch (responses_stream_event(&c->st, e->event, e->data, e->data_len, ev, relay_frame(r))) {
	case RESPONSES_FAILED:
		return -1;
	case RESPONSES_INVALID:
		relay_fail(r, "api_error", "The upstream API sent an invalid stream event");
		return -1;
	case RESPONSES_DONE:
		keep(c, c->st.response);
		break;
	case RESPONSES_GO_ON:
		break;
	}
	return 0;
}

/* A stream that stops before message_stop ends with response.failed, never .completed. */
static void on_finish(struct relay *r, const struct relay_failure *f)
{
	struct resp *c = r->arg;
	if (f && responses_stream_error(&c->st, relay_frame(r), f->type, f->message) < 0)
		log_warn("responses: the response.failed event did not fit its frame");
}

static int on_whole(struct relay *r, char *body, size_t len)
{
	struct resp *c = r->arg;
	struct openai_usage u;
	size_t n;
	struct json_object *resp = responses_answer(body, len, c->rrq, c->token, (long)time(NULL), &u);
	if (!resp)
		return -1;
	relay_usage(r, u.input_tokens, u.output_tokens);
	keep(c, resp);
	char *out = responses_public(c->rrq, resp, &n);
	relay_answer(r, "application/json", out, n);
	free(out);
	json_object_put(resp);
	return 0;
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

/* 128 random bits as hex: a response's id must not be guessable, it is what reading it takes. */
static int new_token(char *out)
{
	unsigned char b[RESPONSES_TOKEN_LEN / 2];
	if (RAND_bytes(b, sizeof b) != 1)
		return -1;
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

void handle_responses(struct request *rq)
{
	if (handlers_check_json(rq) < 0 || handlers_check_origin(rq) < 0)
		return;
	struct openai_limits lim;
	handlers_openai_limits(rq, &lim);
	struct responses_lookup look = {.get = lookup, .arg = rq->srv->store};
	struct responses_request rrq;
	struct openai_error oe;
	if (responses_parse_request(rq->body.data ? rq->body.data : "", rq->body.len, &lim, &look,
				    &rrq, &oe) < 0) {
		refuse(rq, &oe);
		return;
	}
	struct resp c = {.rrq = &rrq, .store = rq->srv->store};
	char *target = new_token(c.token) < 0 ? NULL : handlers_openai_model(rq, &rrq.o);
	if (!target) {
		if (!c.token[0])
			request_fail(rq, ERR_INTERNAL, "no random bytes for a response id");
		responses_request_release(&rrq);
		return;
	}
	struct upstream_request ur = {.path = "/v1/messages", .stream = rrq.o.stream};
	char *body = openai_messages_body(&rrq.o, target, &ur.body_len);
	ur.body = body;
	responses_stream_init(&c.st, &rrq, c.token, (long)time(NULL));
	relay_run(rq, ur.stream ? &stream_ops : &whole_ops, &c, &ur);
	responses_stream_release(&c.st);
	responses_request_release(&rrq);
	free(body);
	free(target);
}
