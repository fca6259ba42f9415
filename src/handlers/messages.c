/* The Anthropic-compatible routes: POST /v1/messages and /v1/messages/count_tokens pass the
 * client's request through with the server's key (its body byte for byte, but for the model name
 * when an alias is used), and relay the answer as it came: the JSON, every stream event, or the
 * upstream's error with its status. GET /v1/models lists the models this server accepts. */
#include "handlers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../anthropic.h"
#include "../catalogue.h"
#include "../jscan.h"
#include "../relay.h"
#include "../upstream.h"

/* The headers a client may pass on are short: real values are a date and a few beta names. */
#define VERSION_MAX 64
#define BETA_MAX 2048

struct pass {
	int count;         /* count_tokens: any JSON object is the answer */
	int error_relayed; /* the upstream's own error event went out */
};

static int header_ok(const char *v, size_t max)
{
	size_t n = strlen(v);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return 0;
	return 1;
}

/* anthropic-version and anthropic-beta are the client's to choose: they select the wire format
 * and features of its request. Returns 0, or -1 when it has answered. */
static int client_headers(struct request *rq, struct upstream_request *ur)
{
	const char *v = io_param(rq->io, "HTTP_ANTHROPIC_VERSION");
	const char *b = io_param(rq->io, "HTTP_ANTHROPIC_BETA");
	if (v && !header_ok(v, VERSION_MAX)) {
		request_fail(rq, ERR_BAD_REQUEST, "anthropic-version: is not a valid version");
		return -1;
	}
	if (b && *b && !header_ok(b, BETA_MAX)) {
		request_fail(rq, ERR_BAD_REQUEST, "anthropic-beta: is not a valid list of betas");
		return -1;
	}
	ur->anthropic_version = v;
	ur->anthropic_beta = b && *b ? b : NULL;
	return 0;
}

/* max_tokens, when the request has one (the upstream requires it; count_tokens has none): an
 * integer from 1 to max_tokens_limit. Returns 0, or -1 when it has answered. */
static int check_max_tokens(struct request *rq, struct json_object *root, long limit)
{
	struct json_object *v;
	long long n = 0;
	char msg[160];
	if (!json_object_object_get_ex(root, "max_tokens", &v))
		return 0;
	switch (anthropic_max_tokens(v, limit, &n)) {
	case ANTH_MAX_TOKENS_OK:
		return 0;
	case ANTH_MAX_TOKENS_INVALID:
		request_fail(rq, ERR_BAD_REQUEST, "max_tokens: must be an integer of at least 1");
		return -1;
	case ANTH_MAX_TOKENS_OVER:
		break;
	}
	snprintf(msg, sizeof msg, "max_tokens: %lld is more than this server allows (%ld)", n, limit);
	request_fail(rq, ERR_BAD_REQUEST, msg);
	return -1;
}

/* The UTC date as YYYYMMDD, the form the catalogue's lifecycle dates take: a deprecated model
 * counts as retired from its date on, with no change to the files. */
static int today(void)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

int handlers_model_retired(const struct request *rq, const char *name, size_t n, char *out,
			   size_t cap)
{
	const struct config *cfg = rq->srv->cfg;
	const struct catalogue_model *m = config_model_info(cfg, name, n);
	if (!m || catalogue_status_on(m, today()) != CATALOGUE_RETIRED)
		return 0;
	const struct catalogue_model *s = catalogue_suggest(&cfg->catalogue, m);
	int d = m->retires_on;
	snprintf(out, cap, "model: '%.*s' was retired on %04d-%02d-%02d; use '%s' instead",
		 (int)(n > 256 ? 256 : n), name, d / 10000, d / 100 % 100, d % 100,
		 s ? s->id : "a current model");
	return 1;
}

int handlers_identified(const struct request *rq)
{
	const char *w = rq->acc.who;
	return w && (strncmp(w, "key:", 4) == 0 || strncmp(w, "user:", 5) == 0);
}

int handlers_model_find(const struct request *rq, const char *name, size_t n,
			struct config_model *m)
{
	const struct config *cfg = rq->srv->cfg;
	if (config_model_find(cfg, name, n, m))
		return 1;
	if (!handlers_identified(rq) || !config_models_any(cfg))
		return 0;
	const struct catalogue_model *c = config_model_info(cfg, name, n);
	if (!c || catalogue_status_on(c, today()) != CATALOGUE_CURRENT)
		return 0;
	m->name = m->target = name;
	m->name_len = m->target_len = n;
	return 1;
}

long handlers_max_tokens_limit(const struct request *rq, const char *target, size_t n)
{
	const struct config *cfg = rq->srv->cfg;
	const struct catalogue_model *c = handlers_identified(rq) ? config_model_info(cfg, target, n) : NULL;
	return c && c->max_output > 0 ? c->max_output : cfg->max_tokens_limit;
}

/* Checks what the server decides on (the model allowlist, max_tokens_limit) and sets the body to
 * send: the client's bytes, or a copy with the alias resolved (*owned, caller frees). Returns 0,
 * or -1 when it has answered. */
static int check_body(struct request *rq, int count, struct upstream_request *ur, char **owned)
{
	const char *body = rq->body.data ? rq->body.data : "";
	enum jscan_result why;
	struct json_object *root = jscan_parse(body, rq->body.len, &why), *v = NULL;
	char msg[512];
	int rc = -1;
	*owned = NULL;
	if (why == JSCAN_COSTLY) {
		request_fail(rq, ERR_TOO_LARGE, "The request body holds too many JSON values for its "
						"size");
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		request_fail(rq, ERR_BAD_REQUEST, "The request body is not a valid JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(root, "model", &v)) {
		request_fail(rq, ERR_BAD_REQUEST, "model: Field required");
		goto out;
	}
	if (!json_object_is_type(v, json_type_string)) {
		request_fail(rq, ERR_BAD_REQUEST, "model: Input should be a valid string");
		goto out;
	}
	const char *name = json_object_get_string(v);
	size_t name_len = (size_t)json_object_get_string_len(v);
	struct config_model m;
	if (handlers_model_retired(rq, name, name_len, msg, sizeof msg)) {
		request_fail(rq, ERR_NOT_FOUND, msg);
		goto out;
	}
	if (!handlers_model_find(rq, name, name_len, &m)) {
		snprintf(msg, sizeof msg, "model: '%.256s' is not available on this server "
			 "(GET /v1/models lists the models it serves)", name);
		request_fail(rq, ERR_BAD_REQUEST, msg);
		goto out;
	}
	/* An alias of ours whose target the catalogue lists as retired: the same answer. */
	if (handlers_model_retired(rq, m.target, m.target_len, msg, sizeof msg)) {
		request_fail(rq, ERR_NOT_FOUND, msg);
		goto out;
	}
	if (!count && check_max_tokens(rq, root, handlers_max_tokens_limit(rq, m.target,
									   m.target_len)) < 0)
		goto out;
	if (anthropic_model_members(body, rq->body.len) != 1) {
		request_fail(rq, ERR_BAD_REQUEST, "The request body must be a JSON object naming the "
						  "model once");
		goto out;
	}
	ur->stream = !count && json_object_object_get_ex(root, "stream", &v) &&
		     json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
	ur->body = body;
	ur->body_len = rq->body.len;
	if (m.target_len != m.name_len || memcmp(m.target, m.name, m.name_len) != 0) {
		*owned = anthropic_replace_model(body, rq->body.len, m.target, m.target_len,
						 &ur->body_len);
		if (!*owned) {
			request_fail(rq, ERR_INTERNAL, NULL); /* scanned just above */
			goto out;
		}
		ur->body = *owned;
	}
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

/* Relays one upstream event as it came (comments aside: the decoder drops them and the relay
 * adds its own). */
static int on_event(struct relay *r, const struct sse_event *e, const struct anth_event *ev)
{
	struct pass *p = r->arg;
	if (ev->kind == ANTH_EV_ERROR)
		p->error_relayed = 1;
	if (sse_encode(relay_frame(r), e->event[0] ? e->event : NULL, e->id[0] ? e->id : NULL,
		       e->data, e->data_len) < 0) {
		relay_fail(r, "api_error", "The upstream API sent an invalid stream event");
		return -1;
	}
	return 0;
}

/* After commit the status is gone: the failure becomes the API's own error event, never a
 * message_stop; unless the upstream's error event already went out. */
static void on_finish(struct relay *r, const struct relay_failure *f)
{
	struct pass *p = r->arg;
	if (!f || p->error_relayed)
		return;
	struct json_object *o = json_object_new_object();
	struct json_object *e = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string("error"));
	json_object_object_add(e, "type", json_object_new_string(f->type));
	json_object_object_add(e, "message", json_object_new_string(f->message));
	json_object_object_add(o, "error", e);
	size_t n;
	const char *js = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	sse_encode(relay_frame(r), "error", NULL, js, n);
	json_object_put(o);
}

/* A whole answer, relayed as it came once it is known to be what was asked for. */
static int on_whole(struct relay *r, char *body, size_t len)
{
	struct pass *p = r->arg;
	if (p->count) {
		struct json_object *o = anthropic_json_parse_strict(body, len);
		int good = json_object_is_type(o, json_type_object);
		json_object_put(o);
		if (!good)
			return -1;
	} else {
		struct anth_message m;
		if (anthropic_parse_message(body, len, &m) < 0)
			return -1;
		relay_usage(r, m.usage.input_tokens, m.usage.output_tokens);
		relay_stop_reason(r, m.stop_reason[0] ? m.stop_reason : NULL);
		anthropic_message_release(&m);
	}
	relay_answer(r, "application/json", body, len);
	return 0;
}

/* An upstream error before commit: the status and the API's own error body go to the client as
 * they came, since this client speaks the same API. */
static int on_upstream_error(struct relay *r, int status, const char *type, const char *message,
			     const char *body, size_t len)
{
	return response_send(&r->rq->resp, status, "application/json", body, len);
}

static const struct relay_ops stream_ops = {
	.mode = RELAY_STREAM,
	.fmt = RESP_SSE,
	.on_event = on_event,
	.on_finish = on_finish,
	.on_upstream_error = on_upstream_error,
};

static const struct relay_ops whole_ops = {
	.mode = RELAY_WHOLE,
	.on_whole = on_whole,
	.on_upstream_error = on_upstream_error,
};

static void pass_through(struct request *rq, const char *path, int count)
{
	if (handlers_check_json(rq) < 0 || handlers_check_origin(rq) < 0)
		return;
	struct upstream_request ur = {.path = path};
	char *owned;
	if (client_headers(rq, &ur) < 0 || check_body(rq, count, &ur, &owned) < 0)
		return;
	struct pass p = {.count = count};
	relay_run(rq, ur.stream ? &stream_ops : &whole_ops, &p, &ur);
	free(owned);
}

void handle_messages(struct request *rq)
{
	pass_through(rq, "/v1/messages", 0);
}

void handle_count_tokens(struct request *rq)
{
	pass_through(rq, "/v1/messages/count_tokens", 1);
}

/* The snapshot date at the end of an id ("claude-haiku-4-5-20251001"): the nearest thing to a
 * creation time the server knows. 0 when the id has none. */
static time_t model_date(const char *id, size_t n)
{
	if (n < 9 || id[n - 9] != '-')
		return 0;
	int v[8];
	for (int i = 0; i < 8; i++) {
		char c = id[n - 8 + i];
		if (c < '0' || c > '9')
			return 0;
		v[i] = c - '0';
	}
	struct tm tm = {
		.tm_year = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3] - 1900,
		.tm_mon = v[4] * 10 + v[5] - 1,
		.tm_mday = v[6] * 10 + v[7],
	};
	if (tm.tm_year < 100 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return 0;
	return timegm(&tm);
}

/* One model in both APIs' shapes: Anthropic's (type, id, display_name, created_at) and
 * OpenAI's (object, created, owned_by). New reference. */
static struct json_object *model_entry(const struct config_model *m)
{
	time_t t = model_date(m->target, m->target_len);
	char created[32];
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
	struct buf display;
	/* Sized to the most it holds: "name (target)". */
	buf_init(&display, m->name_len + m->target_len + 3);
	BUF_MUST(buf_append(&display, m->name, m->name_len) ||
		 (m->name != m->target &&
		  (buf_appends(&display, " (") || buf_append(&display, m->target, m->target_len) ||
		   buf_appends(&display, ")"))));
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "type", json_object_new_string("model"));
	json_object_object_add(e, "id", json_object_new_string_len(m->name, (int)m->name_len));
	json_object_object_add(e, "display_name", json_object_new_string(buf_cstr(&display)));
	json_object_object_add(e, "created_at", json_object_new_string(created));
	json_object_object_add(e, "object", json_object_new_string("model"));
	json_object_object_add(e, "created", json_object_new_int64((int64_t)t));
	json_object_object_add(e, "owned_by", json_object_new_string("anthropic"));
	buf_release(&display);
	return e;
}

/* GET /v1/models/{id}: one name this client may send, as the list shows it; any other is a 404. */
static void model_one(struct request *rq)
{
	struct config_model m;
	char msg[400];
	if (!handlers_model_find(rq, rq->route_id, rq->route_id_len, &m)) {
		snprintf(msg, sizeof msg, "model: '%.*s' is not served here (GET /v1/models lists the "
			 "models it serves)", (int)(rq->route_id_len > 256 ? 256 : rq->route_id_len),
			 rq->route_id);
		request_fail(rq, ERR_NOT_FOUND, msg);
		return;
	}
	struct json_object *o = model_entry(&m);
	response_json(&rq->resp, 200, o);
	json_object_put(o);
}

/* One entry of the list, with its first and last ids kept for the list's first_id/last_id. */
static void list_add(struct json_object *data, struct config_model *first, struct config_model *last,
		     const struct config_model *m)
{
	if (!first->name)
		*first = *m;
	*last = *m;
	json_object_array_add(data, model_entry(m));
}

/* GET /v1/models: answered here, not upstream: the list is what this server accepts. Each entry
 * has the Anthropic API's fields and OpenAI's, so both SDKs' models.list() read it. */
void handle_models(struct request *rq)
{
	if (rq->route_id) {
		model_one(rq);
		return;
	}
	const struct config *cfg = rq->srv->cfg;
	struct json_object *o = json_object_new_object();
	struct json_object *data = json_object_new_array();
	const char *pos = NULL;
	struct config_model m, first = {0}, last = {0};
	while (config_model_next(cfg, &pos, &m))
		list_add(data, &first, &last, &m);
	/* With "*", an identified client may also send any current catalogue model: its list says
	 * so, or a model picker (Open WebUI, LibreChat) would offer only the configured names. */
	if (handlers_identified(rq) && config_models_any(cfg) && cfg->have_catalogue) {
		int day = today();
		for (size_t i = 0; i < cfg->catalogue.n; i++) {
			const struct catalogue_model *c = &cfg->catalogue.models[i];
			size_t n = strlen(c->id);
			if (catalogue_status_on(c, day) != CATALOGUE_CURRENT ||
			    config_model_find(cfg, c->id, n, &m))
				continue;
			m = (struct config_model){.name = c->id, .name_len = n, .target = c->id,
						  .target_len = n};
			list_add(data, &first, &last, &m);
		}
	}
	json_object_object_add(o, "object", json_object_new_string("list"));
	json_object_object_add(o, "data", data);
	json_object_object_add(o, "has_more", json_object_new_boolean(0));
	json_object_object_add(o, "first_id", first.name ? json_object_new_string_len(first.name, (int)first.name_len) : NULL);
	json_object_object_add(o, "last_id", last.name ? json_object_new_string_len(last.name, (int)last.name_len) : NULL);
	response_json(&rq->resp, 200, o);
	json_object_put(o);
}
