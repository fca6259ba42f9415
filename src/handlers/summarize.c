#include "handlers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../anthropic.h"
#include "../input.h"
#include "../relay.h"
#include "../upstream.h"

void handlers_no_text(char *out, size_t cap, long max_tokens, long limit)
{
	snprintf(out, cap, "The answer ended at max_tokens (%ld) before any text: the model spent "
		 "them thinking. Send a larger max_tokens (this server allows up to %ld)",
		 max_tokens, limit);
}

/* The summary: the text blocks only. Thinking, tool use and whatever blocks come next are never
 * shown as the answer. */
static int on_whole(struct relay *r, char *body, size_t len)
{
	const long *max_tokens = r->arg;
	struct anth_message m;
	if (anthropic_parse_message(body, len, &m) < 0)
		return -1;
	relay_usage(r, m.usage.input_tokens, m.usage.output_tokens);
	relay_stop_reason(r, m.stop_reason);
	if (!m.text[0] && strcmp(m.stop_reason, "max_tokens") == 0) {
		/* Not the upstream's fault and not worth a retry as it is: the request's max_tokens
		 * (or the default) left no room for text, which the client can change. */
		char msg[256];
		handlers_no_text(msg, sizeof msg, *max_tokens, r->rq->srv->cfg->max_tokens_limit);
		log_warn("answer ended at max_tokens (%ld) with no text", *max_tokens);
		response_add_header(&r->rq->resp, "x-should-retry", "false");
		request_fail(r->rq, ERR_BAD_REQUEST, msg);
		anthropic_message_release(&m);
		return 0;
	}
	struct json_object *o = json_object_new_object();
	struct json_object *usage = json_object_new_object();
	json_object_object_add(o, "summary", json_object_new_string(m.text));
	json_object_object_add(o, "model", json_object_new_string(m.model));
	json_object_object_add(o, "stop_reason", json_object_new_string(m.stop_reason));
	json_object_object_add(usage, "input_tokens", json_object_new_int64(m.usage.input_tokens));
	json_object_object_add(usage, "output_tokens", json_object_new_int64(m.usage.output_tokens));
	json_object_object_add(o, "usage", usage);
	relay_answer_json(r, o);
	json_object_put(o);
	anthropic_message_release(&m);
	return 0;
}

static const struct relay_ops ops = {.mode = RELAY_WHOLE, .on_whole = on_whole};

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

	struct upstream_request ur = {.path = "/v1/messages", .body = body, .body_len = body_len};
	relay_run(rq, &ops, &ar.max_tokens, &ur);
	free(body);
}
