#include "responses.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "jx.h"
#include "store.h"

/* json-c ownership: the rules are in jx.h. */

#define ENCODE_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)


static int is_type(struct json_object *o, const char *type)
{
	const char *t = jx_string(o, "type");
	return t && strcmp(t, type) == 0;
}

static struct json_object *text_block(const char *text, size_t n)
{
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("text"));
	json_object_object_add(b, "text", json_object_new_string_len(text, (int)n));
	return b;
}

/* ---- turns ---- */

/* The Messages turns being built: blocks of one role in a row are one turn, as the Messages API
 * wants user and assistant to alternate. */
struct turns {
	struct json_object *messages; /* owned until handed to the request */
	struct json_object *blocks;   /* the last turn's content (borrowed from messages) */
	const char *role;             /* the last turn's role, or NULL */
	struct buf system;            /* system and developer text, joined */
	size_t images;
	int tools_last;   /* the last turn holds tool results */
	int thought_last; /* the last assistant turn holds a thinking block */
};

static void add_block(struct turns *t, const char *role, struct json_object *block)
{
	if (!t->role || strcmp(t->role, role) != 0) {
		struct json_object *m = json_object_new_object();
		t->blocks = json_object_new_array();
		json_object_object_add(m, "role", json_object_new_string(role));
		json_object_object_add(m, "content", t->blocks);
		json_object_array_add(t->messages, m);
		t->role = strcmp(role, "user") == 0 ? "user" : "assistant";
		t->tools_last = 0;
		if (strcmp(t->role, "assistant") == 0)
			t->thought_last = 0;
	}
	const char *type = jx_string(block, "type");
	if (strcmp(type, "tool_result") == 0)
		t->tools_last = 1;
	if (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0)
		t->thought_last = 1;
	json_object_array_add(t->blocks, block);
}

/* One content part of a message item. */
static int add_part(struct turns *t, const char *role, struct json_object *part, const char *at,
		    struct openai_error *e)
{
	char param[96];
	struct json_object *v;
	snprintf(param, sizeof param, "%s.type", at);
	if (is_type(part, "input_text") || is_type(part, "output_text") || is_type(part, "text")) {
		if (!json_object_object_get_ex(part, "text", &v) || !json_object_is_type(v, json_type_string))
			return openai_refuse(e, at, NULL, "%s.text: must be a string", at);
		if (strcmp(role, "system") == 0)
			return buf_append(&t->system, json_object_get_string(v),
					  (size_t)json_object_get_string_len(v)) < 0
				       ? openai_refuse(e, at, NULL, "%s: the system text is too long", at) : 0;
		if (json_object_get_string_len(v)) /* the Messages API refuses empty text */
			add_block(t, role, text_block(json_object_get_string(v),
						      (size_t)json_object_get_string_len(v)));
		return 0;
	}
	if (is_type(part, "input_image") && strcmp(role, "user") == 0) {
		snprintf(param, sizeof param, "%s.image_url", at);
		if (!json_object_object_get_ex(part, "image_url", &v) || !json_object_is_type(v, json_type_string))
			return openai_refuse(e, param, NULL, "%s: must be a string (file_id is not supported "
				      "by this server)", param);
		if (++t->images > OPENAI_IMAGES_MAX)
			return openai_refuse(e, param, "too_many_images", "%s: more than %d images in one "
				      "request", param, OPENAI_IMAGES_MAX);
		struct json_object *src = openai_image_source(json_object_get_string(v),
							     (size_t)json_object_get_string_len(v), param, e);
		if (!src)
			return -1;
		struct json_object *b = json_object_new_object();
		json_object_object_add(b, "type", json_object_new_string("image"));
		json_object_object_add(b, "source", src);
		add_block(t, role, b);
		return 0;
	}
	return openai_refuse(e, param, "unsupported_value", "%s: content of type '%.40s' is not supported "
		      "by this server in a %s message", param, jx_string(part, "type") ?
		      jx_string(part, "type") : "(none)", role);
}

static int add_message(struct turns *t, struct json_object *item, const char *at,
		       struct openai_error *e)
{
	char param[96];
	struct json_object *content;
	const char *role = jx_string(item, "role");
	snprintf(param, sizeof param, "%s.role", at);
	if (!role || (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system") &&
		      strcmp(role, "developer")))
		return openai_refuse(e, param, NULL, "%s: must be user, assistant, system or developer", param);
	if (strcmp(role, "developer") == 0)
		role = "system";
	if (strcmp(role, "system") == 0 && t->system.len && buf_appends(&t->system, "\n\n") < 0)
		return openai_refuse(e, at, NULL, "%s: the system text is too long", at);
	snprintf(param, sizeof param, "%s.content", at);
	if (!json_object_object_get_ex(item, "content", &content))
		return openai_refuse(e, param, NULL, "%s: is required", param);
	if (json_object_is_type(content, json_type_string)) {
		struct json_object *part = json_object_new_object();
		json_object_object_add(part, "type", json_object_new_string("input_text"));
		json_object_object_add(part, "text", json_object_get(content));
		int rc = add_part(t, role, part, param, e);
		json_object_put(part);
		return rc;
	}
	if (!json_object_is_type(content, json_type_array))
		return openai_refuse(e, param, NULL, "%s: must be a string or an array of parts", param);
	for (size_t j = 0; j < json_object_array_length(content); j++) {
		char pp[160];
		snprintf(pp, sizeof pp, "%s.[%zu]", param, j);
		if (add_part(t, role, json_object_array_get_idx(content, j), pp, e) < 0)
			return -1;
	}
	return 0;
}

static int add_call(struct turns *t, struct json_object *item, const char *at,
		    struct openai_error *e)
{
	const char *id = jx_string(item, "call_id"), *name = jx_string(item, "name");
	const char *args = jx_string(item, "arguments");
	if (!id || !*id || !openai_name_ok(name) || !args)
		return openai_refuse(e, at, NULL, "%s: a function_call needs call_id, name (1 to 64 letters, "
			      "digits, _ or -) and arguments (a string)", at);
	struct json_object *input = *args ? json_tokener_parse(args) : json_object_new_object();
	if (!json_object_is_type(input, json_type_object)) {
		char param[96];
		json_object_put(input);
		snprintf(param, sizeof param, "%s.arguments", at);
		return openai_refuse(e, param, NULL, "%s: must be a JSON object", param);
	}
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("tool_use"));
	json_object_object_add(b, "id", json_object_new_string(id));
	json_object_object_add(b, "name", json_object_new_string(name));
	json_object_object_add(b, "input", input);
	add_block(t, "assistant", b);
	return 0;
}

static int add_output(struct turns *t, struct json_object *item, const char *at,
		      struct openai_error *e)
{
	struct json_object *out;
	const char *id = jx_string(item, "call_id");
	if (!id || !*id || !json_object_object_get_ex(item, "output", &out))
		return openai_refuse(e, at, NULL, "%s: a function_call_output needs call_id and output", at);
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("tool_result"));
	json_object_object_add(b, "tool_use_id", json_object_new_string(id));
	if (json_object_is_type(out, json_type_string)) {
		json_object_object_add(b, "content", json_object_get(out));
	} else if (json_object_is_type(out, json_type_array)) {
		struct json_object *blocks = json_object_new_array();
		for (size_t j = 0; j < json_object_array_length(out); j++) {
			struct json_object *p = json_object_array_get_idx(out, j), *v;
			if (!is_type(p, "input_text") || !json_object_object_get_ex(p, "text", &v) ||
			    !json_object_is_type(v, json_type_string)) {
				json_object_put(blocks);
				json_object_put(b);
				return openai_refuse(e, at, "unsupported_value", "%s.output.[%zu]: only "
					      "input_text parts are supported by this server", at, j);
			}
			json_object_array_add(blocks, text_block(json_object_get_string(v),
						(size_t)json_object_get_string_len(v)));
		}
		json_object_object_add(b, "content", blocks);
	} else {
		json_object_put(b);
		return openai_refuse(e, at, NULL, "%s.output: must be a string or an array of parts", at);
	}
	add_block(t, "user", b);
	return 0;
}

/* A reasoning item goes back as the thinking block its encrypted_content holds; one without
 * (a summary alone) cannot: the API takes thinking back only with its signature. */
static int add_reasoning(struct turns *t, struct json_object *item, const char *at,
			 struct openai_error *e)
{
	const char *enc = jx_string(item, "encrypted_content");
	if (!enc)
		return 0;
	struct json_object *b = json_tokener_parse(enc);
	int ok = (is_type(b, "thinking") && jx_string(b, "thinking") && jx_string(b, "signature")) ||
		 (is_type(b, "redacted_thinking") && jx_string(b, "data"));
	if (!ok) {
		char param[96];
		json_object_put(b);
		snprintf(param, sizeof param, "%s.encrypted_content", at);
		return openai_refuse(e, param, NULL, "%s: is not one this server gave", param);
	}
	add_block(t, "assistant", b);
	return 0;
}

/* ---- references to stored responses ---- */

/* The stored responses this request read, by key: each {"items": [...] or null, "output": [...]}. */
struct refs {
	const struct responses_lookup *look;
	struct json_object *cache; /* owned: key -> stored response */
};

/* The stored response under key (borrowed from the cache), NULL with *e set when there is none
 * (named by param) or the store cannot answer. */
static struct json_object *stored(struct refs *r, const char *key, const char *param,
				  struct openai_error *e)
{
	struct json_object *o;
	if (json_object_object_get_ex(r->cache, key, &o))
		return o;
	struct buf b;
	buf_init(&b, STORE_BLOB_MAX);
	int rc = r->look && r->look->get ? r->look->get(r->look->arg, key, &b) : 0;
	o = rc == 1 ? json_tokener_parse(buf_cstr(&b)) : NULL;
	buf_release(&b);
	if (rc < 0) {
		openai_refuse(e, param, NULL, "%s: the store of recent responses cannot be reached; try again "
		       "later or send the whole conversation", param);
		e->kind = ERR_UPSTREAM; /* a backend of the gateway failed: 502 */
		return NULL;
	}
	if (!o) {
		openai_refuse(e, param, "invalid_value", "%s: '%.80s' is not a response this server kept, or "
		       "it has expired: send the conversation's items in full (or store: false)",
		       param, key);
		return NULL;
	}
	json_object_object_add(r->cache, key, o);
	return o;
}

/* The key resp_TOKEN of an item id PREFIX_TOKEN_N (into key), or -1 when id is not one of ours. */
static int item_key(const char *id, char *key, size_t cap)
{
	const char *u = strchr(id, '_');
	if (!u || strspn(u + 1, "0123456789abcdef") != RESPONSES_TOKEN_LEN ||
	    u[1 + RESPONSES_TOKEN_LEN] != '_')
		return -1;
	snprintf(key, cap, "resp_%.*s", RESPONSES_TOKEN_LEN, u + 1);
	return 0;
}

/* The output item id refers to (borrowed), NULL with *e set naming param. */
static struct json_object *referred(struct refs *r, const char *id, const char *param,
				    struct openai_error *e)
{
	char key[64];
	struct json_object *out, *resp;
	if (!id || item_key(id, key, sizeof key) < 0) {
		openai_refuse(e, param, "invalid_value", "%s: '%.80s' is not an item id this server gave", param,
		       id ? id : "");
		return NULL;
	}
	if (!(resp = stored(r, key, param, e)))
		return NULL;
	json_object_object_get_ex(resp, "output", &out);
	for (size_t i = 0; out && i < json_object_array_length(out); i++) {
		struct json_object *it = json_object_array_get_idx(out, i);
		const char *iid = jx_string(it, "id");
		if (iid && strcmp(iid, id) == 0)
			return it;
	}
	openai_refuse(e, param, "invalid_value", "%s: '%.80s' is not an item this server kept", param, id);
	return NULL;
}

/* ---- input ---- */

static int add_item(struct turns *t, struct refs *r, struct json_object *item, const char *at,
		    int depth, struct json_object *items, struct openai_error *e);

/* An item_reference: the item it names, as if sent in full. */
static int add_reference(struct turns *t, struct refs *r, struct json_object *item, const char *at,
			 int depth, struct json_object *items, struct openai_error *e)
{
	char param[96];
	snprintf(param, sizeof param, "%s.id", at);
	struct json_object *it = depth ? NULL : referred(r, jx_string(item, "id"), param, e);
	if (depth)
		return openai_refuse(e, at, NULL, "%s: a reference to a reference", at);
	return it ? add_item(t, r, it, at, 1, items, e) : -1;
}

static int add_item(struct turns *t, struct refs *r, struct json_object *item, const char *at,
		    int depth, struct json_object *items, struct openai_error *e)
{
	char param[96];
	const char *type = jx_string(item, "type");
	int rc;
	if (!json_object_is_type(item, json_type_object))
		return openai_refuse(e, at, NULL, "%s: must be an object", at);
	if (type && strcmp(type, "item_reference") == 0)
		return add_reference(t, r, item, at, depth, items, e);
	if (!type || strcmp(type, "message") == 0)
		rc = add_message(t, item, at, e);
	else if (strcmp(type, "function_call") == 0)
		rc = add_call(t, item, at, e);
	else if (strcmp(type, "function_call_output") == 0)
		rc = add_output(t, item, at, e);
	else if (strcmp(type, "reasoning") == 0)
		rc = add_reasoning(t, item, at, e);
	else {
		snprintf(param, sizeof param, "%s.type", at);
		return openai_refuse(e, param, "unsupported_value", "%s: items of type '%.40s' are not "
			      "supported by this server", param, type);
	}
	if (rc == 0)
		json_object_array_add(items, json_object_get(item));
	return rc;
}

/* previous_response_id: the stored conversation comes first. */
static int add_previous(struct turns *t, struct refs *r, const char *id, struct json_object *items,
			struct openai_error *e)
{
	struct json_object *resp = stored(r, id, "previous_response_id", e), *in, *out;
	if (!resp)
		return -1;
	if (!json_object_object_get_ex(resp, "items", &in) || !in)
		return openai_refuse(e, "previous_response_id", "invalid_value", "previous_response_id: the "
			      "conversation of '%.80s' was too long to keep; send its items in full", id);
	json_object_object_get_ex(resp, "output", &out);
	struct json_object *lists[] = {in, out};
	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; lists[l] && i < json_object_array_length(lists[l]); i++)
			if (add_item(t, r, json_object_array_get_idx(lists[l], i),
				     "previous_response_id", 1, items, e) < 0)
				return -1;
	return 0;
}

static int parse_input(struct responses_request *rq, struct json_object *input, const char *prev,
		       const struct responses_lookup *look, struct openai_error *e)
{
	struct turns t = {.messages = json_object_new_array()};
	struct refs r = {.look = look, .cache = json_object_new_object()};
	int rc = 0;
	buf_init(&t.system, (size_t)1 << 24);
	rq->items = json_object_new_array();
	if (prev)
		rc = add_previous(&t, &r, prev, rq->items, e);
	if (rc == 0 && json_object_is_type(input, json_type_string)) {
		struct json_object *m = json_object_new_object();
		json_object_object_add(m, "role", json_object_new_string("user"));
		json_object_object_add(m, "content", json_object_get(input));
		rc = add_item(&t, &r, m, "input", 0, rq->items, e);
		json_object_put(m);
	} else if (rc == 0 && json_object_is_type(input, json_type_array)) {
		for (size_t i = 0; rc == 0 && i < json_object_array_length(input); i++) {
			char at[32];
			snprintf(at, sizeof at, "input.[%zu]", i);
			rc = add_item(&t, &r, json_object_array_get_idx(input, i), at, 0, rq->items, e);
		}
	} else if (rc == 0) {
		rc = openai_refuse(e, "input", NULL, "input: must be a string or an array of items");
	}
	if (rc == 0 && !t.role)
		rc = openai_refuse(e, "input", NULL, "input: holds no user or assistant content");
	if (rc == 0) {
		rq->o.messages = json_object_get(t.messages);
		rq->o.ends_with_results = t.tools_last && !t.thought_last;
		if (rq->instructions || t.system.len) {
			struct buf s;
			buf_init(&s, (size_t)1 << 25);
			BUF_MUST(buf_appends(&s, rq->instructions ? rq->instructions : "") ||
				 buf_appends(&s, rq->instructions && t.system.len ? "\n\n" : "") ||
				 buf_append(&s, t.system.data ? t.system.data : "", t.system.len));
			rq->o.system = buf_detach(&s);
		}
	}
	json_object_put(t.messages);
	json_object_put(r.cache);
	buf_release(&t.system);
	return rc;
}

/* ---- the request as a whole ---- */

/* Fields that neither change the answer nor can be honoured here: accepted and not sent on. */
static const char *const ignored_fields[] = {
	"user", "metadata", "service_tier", "prompt_cache_key", "safety_identifier",
	"stream_options", "truncation", "prompt_cache_retention", NULL,
};

static int listed(const char *const *list, const char *key)
{
	for (; *list; list++)
		if (strcmp(*list, key) == 0)
			return 1;
	return 0;
}

/* tools: function tools only; a built-in tool is named in the refusal. */
static int parse_tools(struct responses_request *rq, struct json_object *v, struct openai_error *e)
{
	char param[64];
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return openai_refuse(e, "tools", NULL, "tools: must be an array of function tools");
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *t = json_object_array_get_idx(v, i), *p = NULL, *d = NULL, *s = NULL;
		const char *type = jx_string(t, "type");
		snprintf(param, sizeof param, "tools.[%zu].type", i);
		if (!type || strcmp(type, "function") != 0)
			return openai_refuse(e, param, "unsupported_value", "%s: the built-in tool '%.40s' is not "
				      "supported by this server; only function tools are", param,
				      type ? type : "(none)");
		snprintf(param, sizeof param, "tools.[%zu]", i);
		json_object_object_get_ex(t, "parameters", &p);
		json_object_object_get_ex(t, "description", &d);
		json_object_object_get_ex(t, "strict", &s);
		if (!openai_name_ok(jx_string(t, "name")) || (p && !json_object_is_type(p, json_type_object)) ||
		    (d && !json_object_is_type(d, json_type_string)) ||
		    (s && !json_object_is_type(s, json_type_boolean)))
			return openai_refuse(e, param, NULL, "%s: needs a name of 1 to 64 letters, digits, _ or -; "
				      "parameters must be an object, description a string, strict a "
				      "boolean", param);
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(jx_string(t, "name")));
		if (d && json_object_get_string_len(d))
			json_object_object_add(o, "description", json_object_get(d));
		json_object_object_add(o, "input_schema", p ? json_object_get(p)
				       : json_tokener_parse("{\"type\":\"object\",\"properties\":{}}"));
		if (s && json_object_get_boolean(s))
			json_object_object_add(o, "strict", json_object_new_boolean(1));
		if (!rq->o.tools)
			rq->o.tools = json_object_new_array();
		json_object_array_add(rq->o.tools, o);
	}
	return 0;
}

static int parse_tool_choice(struct responses_request *rq, struct json_object *v,
			     struct openai_error *e)
{
	static const char *const modes[] = {"none", "auto", "required"};
	static const enum openai_tool_choice tcs[] = {OPENAI_TC_NONE, OPENAI_TC_AUTO,
						      OPENAI_TC_REQUIRED};
	if (!v)
		return 0;
	for (size_t i = 0; json_object_is_type(v, json_type_string) && i < 3; i++)
		if (strcmp(json_object_get_string(v), modes[i]) == 0) {
			rq->o.tool_choice = tcs[i];
			return 0;
		}
	if (is_type(v, "function") && openai_name_ok(jx_string(v, "name"))) {
		rq->o.tool_choice = OPENAI_TC_NAMED;
		rq->o.tool_name = jx_string(v, "name");
		return 0;
	}
	return openai_refuse(e, "tool_choice", "unsupported_value", "tool_choice: must be \"none\", \"auto\", "
		      "\"required\" or {\"type\": \"function\", \"name\": ...} (built-in tools are not "
		      "supported by this server)");
}

/* text: {format: {type: text | json_object | json_schema (name, schema, strict)}, verbosity}. */
static int parse_text(struct responses_request *rq, struct json_object *v, struct openai_error *e)
{
	struct json_object *f = NULL, *schema = NULL, *verb = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return openai_refuse(e, "text", NULL, "text: must be an object");
	json_object_object_get_ex(v, "verbosity", &verb);
	if (verb && !(json_object_is_type(verb, json_type_string) &&
		      strcmp(json_object_get_string(verb), "medium") == 0))
		return openai_refuse(e, "text.verbosity", "unsupported_parameter", "text.verbosity: only "
			      "medium (the default) is supported by this server");
	if (!json_object_object_get_ex(v, "format", &f) || !f || is_type(f, "text"))
		return 0;
	if (is_type(f, "json_object")) {
		rq->o.format = OPENAI_FORMAT_JSON_OBJECT;
		return 0;
	}
	if (!is_type(f, "json_schema") || !openai_name_ok(jx_string(f, "name")) ||
	    !json_object_object_get_ex(f, "schema", &schema) ||
	    !json_object_is_type(schema, json_type_object))
		return openai_refuse(e, "text.format", "unsupported_value", "text.format: must be text, "
			      "json_object, or json_schema with a name of 1 to 64 letters, digits, _ or - "
			      "and a schema object");
	rq->o.format = OPENAI_FORMAT_JSON_SCHEMA;
	rq->o.format_schema = schema;
	rq->o.format_name = jx_string(f, "name");
	return 0;
}

static int parse_reasoning(struct responses_request *rq, struct json_object *v,
			   struct openai_error *e)
{
	static const char *const levels[] = {"none", "minimal", "low", "medium", "high", "xhigh",
					      "max", NULL};
	struct json_object *effort = NULL;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return openai_refuse(e, "reasoning", NULL, "reasoning: must be an object");
	json_object_object_get_ex(v, "effort", &effort);
	if (effort && !(json_object_is_type(effort, json_type_string) &&
			listed(levels, json_object_get_string(effort))))
		return openai_refuse(e, "reasoning.effort", "unsupported_value", "reasoning.effort: must be "
			      "none, minimal, low, medium, high, xhigh or max");
	rq->o.reasoning = effort ? json_object_get_string(effort) : NULL;
	return 0;
}

/* include: what the answer carries beyond the default; only reasoning.encrypted_content adds
 * anything here, and log probabilities or search results cannot be given. */
static int parse_include(struct responses_request *rq, struct json_object *v,
			 struct openai_error *e)
{
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return openai_refuse(e, "include", NULL, "include: must be an array of strings");
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(v, i));
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string) ||
		    strcmp(s, "reasoning.encrypted_content") != 0)
			return openai_refuse(e, "include", "unsupported_value", "include: '%.60s' is not "
				      "supported by this server; only reasoning.encrypted_content is",
				      s ? s : "");
		rq->encrypted = 1;
	}
	return 0;
}

static int parse_flag(struct json_object *v, const char *name, int *out, struct openai_error *e)
{
	if (v && !json_object_is_type(v, json_type_boolean))
		return openai_refuse(e, name, NULL, "%s: must be a boolean", name);
	if (v)
		*out = json_object_get_boolean(v);
	return 0;
}

/* One top-level member not read after the loop. */
static int parse_member(struct responses_request *rq, const char *key, struct json_object *v,
			struct openai_error *e)
{
	static const char *const later[] = {"model", "input", "instructions", "previous_response_id",
					    "max_output_tokens", "temperature", "top_p", NULL};
	int off = 0;
	if (listed(later, key) || listed(ignored_fields, key))
		return 0;
	if (strcmp(key, "stream") == 0)
		return parse_flag(v, key, &rq->o.stream, e);
	if (strcmp(key, "store") == 0)
		return parse_flag(v, key, &rq->store, e);
	if (strcmp(key, "parallel_tool_calls") == 0)
		return parse_flag(v, key, &rq->o.parallel, e);
	if (strcmp(key, "background") == 0) /* accepted off only: nothing runs in the background */
		return parse_flag(v, key, &off, e) < 0 ? -1 : !off ? 0
		       : openai_refuse(e, key, "unsupported_parameter", "background: is not supported by "
				"this server");
	if (strcmp(key, "tools") == 0)
		return parse_tools(rq, v, e);
	if (strcmp(key, "tool_choice") == 0)
		return parse_tool_choice(rq, v, e);
	if (strcmp(key, "text") == 0)
		return parse_text(rq, v, e);
	if (strcmp(key, "reasoning") == 0)
		return parse_reasoning(rq, v, e);
	if (strcmp(key, "include") == 0)
		return parse_include(rq, v, e);
	if (!v)
		return 0;
	return openai_refuse(e, key, "unknown_parameter", "Unknown parameter: '%.60s'.", key);
}

/* model, instructions, max_output_tokens, the sampling parameters, and the input. */
static int parse_rest(struct responses_request *rq, const struct openai_limits *lim,
		      const struct responses_lookup *look, struct openai_error *e)
{
	struct json_object *root = rq->o.root, *v, *input = NULL;
	long long n;
	rq->o.model = jx_string(root, "model");
	if (!rq->o.model || !*rq->o.model)
		return openai_refuse(e, "model", NULL, "model: must be a non-empty string");
	if (json_object_object_get_ex(root, "instructions", &v) && v &&
	    !(rq->instructions = jx_string(root, "instructions")))
		return openai_refuse(e, "instructions", NULL, "instructions: must be a string");
	const char *prev = NULL;
	if (json_object_object_get_ex(root, "previous_response_id", &v) && v &&
	    !(prev = jx_string(root, "previous_response_id")))
		return openai_refuse(e, "previous_response_id", NULL, "previous_response_id: must be a string");
	rq->o.max_tokens = lim->max_tokens;
	if (json_object_object_get_ex(root, "max_output_tokens", &v) && v) {
		switch (anthropic_max_tokens(v, lim->max_tokens_limit, &n)) {
		case ANTH_MAX_TOKENS_OK:
			rq->o.max_tokens = (long)n;
			break;
		case ANTH_MAX_TOKENS_INVALID:
			return openai_refuse(e, "max_output_tokens", NULL, "max_output_tokens: must be an "
				      "integer of at least 1");
		case ANTH_MAX_TOKENS_OVER:
			return openai_refuse(e, "max_output_tokens", "invalid_value", "max_output_tokens: %lld "
				      "is more than this server allows (%ld)", n, lim->max_tokens_limit);
		}
	}
	if (openai_parse_unit(root, "temperature", &rq->o.temperature, e) < 0 ||
	    openai_parse_unit(root, "top_p", &rq->o.top_p, e) < 0)
		return -1;
	if (!json_object_object_get_ex(root, "input", &input) && !prev)
		return openai_refuse(e, "input", NULL, "input: is required");
	struct json_object *none = input ? NULL : json_object_new_array();
	int rc = parse_input(rq, input ? input : none, prev, look, e);
	json_object_put(none);
	return rc;
}

int responses_parse_request(const char *body, size_t len, const struct openai_limits *lim,
			    const struct responses_lookup *look, struct responses_request *rq,
			    struct openai_error *e)
{
	enum jscan_result why;
	memset(rq, 0, sizeof *rq);
	memset(e, 0, sizeof *e);
	rq->o.parallel = -1;
	rq->store = 1; /* OpenAI's default */
	rq->o.root = jscan_parse(body, len, &why);
	if (why == JSCAN_COSTLY) {
		openai_refuse(e, NULL, NULL, "The request body holds too many JSON values for its size");
		e->kind = ERR_TOO_LARGE;
		goto fail;
	}
	if (why != JSCAN_OK || !json_object_is_type(rq->o.root, json_type_object)) {
		openai_refuse(e, NULL, NULL, "The request body must be a JSON object");
		goto fail;
	}
	json_object_object_foreach(rq->o.root, key, v)
	{
		if (parse_member(rq, key, v, e) < 0)
			goto fail;
	}
	if (parse_rest(rq, lim, look, e) < 0)
		goto fail;
	return 0;
fail:
	responses_request_release(rq);
	return -1;
}

void responses_request_release(struct responses_request *rq)
{
	openai_request_release(&rq->o);
	json_object_put(rq->items);
	memset(rq, 0, sizeof *rq);
}

/* ---- the answer ---- */

static struct json_object *usage_json(const struct openai_usage *u)
{
	long in = u->input_tokens + u->cache_creation_tokens + u->cache_read_tokens;
	struct json_object *o = json_object_new_object(), *d = json_object_new_object();
	struct json_object *od = json_object_new_object();
	json_object_object_add(o, "input_tokens", json_object_new_int64(in));
	json_object_object_add(d, "cached_tokens", json_object_new_int64(u->cache_read_tokens));
	json_object_object_add(o, "input_tokens_details", d);
	json_object_object_add(o, "output_tokens", json_object_new_int64(u->output_tokens));
	json_object_object_add(od, "reasoning_tokens", json_object_new_int64(0));
	json_object_object_add(o, "output_tokens_details", od);
	json_object_object_add(o, "total_tokens", json_object_new_int64(in + u->output_tokens));
	return o;
}

static void item_id(char *out, size_t cap, const char *prefix, const char *token, size_t n)
{
	snprintf(out, cap, "%s_%s_%zu", prefix, token, n);
}

static struct json_object *message_item(const char *id, const char *text, size_t n, int done)
{
	struct json_object *it = json_object_new_object(), *content = json_object_new_array();
	json_object_object_add(it, "id", json_object_new_string(id));
	json_object_object_add(it, "type", json_object_new_string("message"));
	json_object_object_add(it, "status", json_object_new_string(done ? "completed" : "in_progress"));
	json_object_object_add(it, "role", json_object_new_string("assistant"));
	if (done) {
		struct json_object *p = json_object_new_object();
		json_object_object_add(p, "type", json_object_new_string("output_text"));
		json_object_object_add(p, "text", json_object_new_string_len(text, (int)n));
		json_object_object_add(p, "annotations", json_object_new_array());
		json_object_array_add(content, p);
	}
	json_object_object_add(it, "content", content);
	return it;
}

static struct json_object *call_item(const char *id, const char *call_id, const char *name,
				     const char *args, size_t n, int done)
{
	struct json_object *it = json_object_new_object();
	json_object_object_add(it, "id", json_object_new_string(id));
	json_object_object_add(it, "type", json_object_new_string("function_call"));
	json_object_object_add(it, "status", json_object_new_string(done ? "completed" : "in_progress"));
	json_object_object_add(it, "call_id", json_object_new_string(call_id));
	json_object_object_add(it, "name", json_object_new_string(name));
	json_object_object_add(it, "arguments", json_object_new_string_len(args, (int)n));
	return it;
}

/* A reasoning summary's one part: the thinking as text. */
static struct json_object *summary_part(const char *text, size_t n)
{
	struct json_object *p = json_object_new_object();
	json_object_object_add(p, "type", json_object_new_string("summary_text"));
	json_object_object_add(p, "text", json_object_new_string_len(text, (int)n));
	return p;
}

/* A reasoning item for a thinking block (block: its JSON, NULL while it streams): the thinking
 * shown as a summary only when the client asked for reasoning. */
static struct json_object *reasoning_item(const char *id, struct json_object *block, int show)
{
	struct json_object *it = json_object_new_object(), *summary = json_object_new_array();
	const char *thinking = block ? jx_string(block, "thinking") : NULL;
	json_object_object_add(it, "id", json_object_new_string(id));
	json_object_object_add(it, "type", json_object_new_string("reasoning"));
	if (show && thinking && *thinking)
		json_object_array_add(summary, summary_part(thinking, strlen(thinking)));
	json_object_object_add(it, "summary", summary);
	if (block)
		json_object_object_add(it, "encrypted_content", json_object_new_string(
			json_object_to_json_string_ext(block, ENCODE_FLAGS)));
	return it;
}

/* The item as the client sees it: encrypted_content only when include asked for it (the store
 * keeps it either way). A new reference. */
static struct json_object *shown(const struct responses_request *rq, struct json_object *item)
{
	if (rq->encrypted || !is_type(item, "reasoning"))
		return json_object_get(item);
	struct json_object *c = NULL;
	json_object_deep_copy(item, &c, NULL);
	json_object_object_del(c, "encrypted_content");
	return c;
}

/* The response object around output (taken over), as status says. */
static struct json_object *response_object(const struct responses_request *rq, const char *token,
					   long created, const char *status,
					   struct json_object *output)
{
	struct json_object *r = json_object_new_object(), *v;
	char id[64];
	snprintf(id, sizeof id, "resp_%s", token);
	json_object_object_add(r, "id", json_object_new_string(id));
	json_object_object_add(r, "object", json_object_new_string("response"));
	json_object_object_add(r, "created_at", json_object_new_int64(created));
	json_object_object_add(r, "status", json_object_new_string(status));
	json_object_object_add(r, "error", NULL);
	json_object_object_add(r, "incomplete_details", NULL);
	json_object_object_add(r, "instructions", rq->instructions ?
			       json_object_new_string(rq->instructions) : NULL);
	json_object_object_add(r, "max_output_tokens", json_object_new_int64(rq->o.max_tokens));
	json_object_object_add(r, "model", json_object_new_string(rq->o.model));
	json_object_object_add(r, "output", output);
	json_object_object_add(r, "parallel_tool_calls", json_object_new_boolean(rq->o.parallel != 0));
	json_object_object_add(r, "previous_response_id",
			       json_object_object_get_ex(rq->o.root, "previous_response_id", &v) && v
			       ? json_object_get(v) : NULL);
	json_object_object_add(r, "store", json_object_new_boolean(rq->store));
	json_object_object_add(r, "tools", json_object_object_get_ex(rq->o.root, "tools", &v) && v
			       ? json_object_get(v) : json_object_new_array());
	json_object_object_add(r, "usage", NULL);
	return r;
}

/* status and incomplete_details for a stop_reason: max_tokens (and a full context window) end
 * the response incomplete, as OpenAI's max_output_tokens does. */
static void finish(struct json_object *r, const char *stop_reason, const struct openai_usage *u)
{
	int cut = stop_reason && (strcmp(stop_reason, "max_tokens") == 0 ||
				  strcmp(stop_reason, "model_context_window_exceeded") == 0);
	json_object_object_add(r, "status", json_object_new_string(cut ? "incomplete" : "completed"));
	if (cut) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "reason", json_object_new_string("max_output_tokens"));
		json_object_object_add(r, "incomplete_details", d);
	}
	if (stop_reason && strcmp(stop_reason, "refusal") == 0) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "reason", json_object_new_string("content_filter"));
		json_object_object_add(r, "incomplete_details", d);
		json_object_object_add(r, "status", json_object_new_string("incomplete"));
	}
	json_object_object_add(r, "usage", usage_json(u));
}

/* One Messages content block → an output item appended to output (n: its index). */
static void add_output_item(const struct responses_request *rq, const char *token,
			    struct json_object *b, struct json_object *output)
{
	char id[96];
	size_t n = json_object_array_length(output);
	struct json_object *v;
	if (is_type(b, "text") && json_object_object_get_ex(b, "text", &v)) {
		item_id(id, sizeof id, "msg", token, n);
		json_object_array_add(output, message_item(id, json_object_get_string(v),
							   (size_t)json_object_get_string_len(v), 1));
	} else if (is_type(b, "tool_use") && jx_string(b, "name") && jx_string(b, "id")) {
		json_object_object_get_ex(b, "input", &v);
		const char *args = v ? json_object_to_json_string_ext(v, ENCODE_FLAGS) : "{}";
		if (rq->o.format_tool[0] && strcmp(jx_string(b, "name"), rq->o.format_tool) == 0) {
			item_id(id, sizeof id, "msg", token, n);
			json_object_array_add(output, message_item(id, args, strlen(args), 1));
			return;
		}
		item_id(id, sizeof id, "fc", token, n);
		json_object_array_add(output, call_item(id, jx_string(b, "id"), jx_string(b, "name"),
							args, strlen(args), 1));
	} else if (is_type(b, "thinking") || is_type(b, "redacted_thinking")) {
		item_id(id, sizeof id, "rs", token, n);
		json_object_array_add(output, reasoning_item(id, b, rq->o.show_reasoning));
	}
}

struct json_object *responses_answer(const char *body, size_t len,
				     const struct responses_request *rq, const char *token,
				     long created, struct openai_usage *u)
{
	struct json_object *root = anthropic_json_parse_strict(body, len), *content, *usage;
	memset(u, 0, sizeof *u);
	if (!root || !json_object_object_get_ex(root, "content", &content) ||
	    !json_object_is_type(content, json_type_array)) {
		json_object_put(root);
		return NULL;
	}
	struct json_object *output = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(content); i++)
		add_output_item(rq, token, json_object_array_get_idx(content, i), output);
	if (json_object_object_get_ex(root, "usage", &usage))
		openai_read_usage(usage, u);
	struct json_object *r = response_object(rq, token, created, "completed", output);
	finish(r, jx_string(root, "stop_reason"), u);
	json_object_put(root);
	return r;
}

/* The response as the client sees it (a new reference). */
static struct json_object *public_response(const struct responses_request *rq,
					   struct json_object *response)
{
	struct json_object *c = NULL, *out, *shown_out = json_object_new_array();
	json_object_object_get_ex(response, "output", &out);
	for (size_t i = 0; out && i < json_object_array_length(out); i++)
		json_object_array_add(shown_out, shown(rq, json_object_array_get_idx(out, i)));
	json_object_deep_copy(response, &c, NULL);
	json_object_object_add(c, "output", shown_out);
	return c;
}

char *responses_public(const struct responses_request *rq, struct json_object *response,
		       size_t *len)
{
	struct json_object *c = public_response(rq, response);
	const char *s = json_object_to_json_string_length(c, ENCODE_FLAGS, len);
	char *out = xstrndup(s, *len);
	json_object_put(c);
	return out;
}

char *responses_stored(const struct responses_request *rq, struct json_object *response,
		       size_t max, size_t *len)
{
	struct json_object *o = json_object_new_object(), *out;
	json_object_object_get_ex(response, "output", &out);
	json_object_object_add(o, "items", json_object_get(rq->items));
	json_object_object_add(o, "output", json_object_get(out));
	const char *s = json_object_to_json_string_length(o, ENCODE_FLAGS, len);
	if (*len > max) {
		json_object_object_add(o, "items", NULL);
		s = json_object_to_json_string_length(o, ENCODE_FLAGS, len);
	}
	char *text = *len > max ? NULL : xstrndup(s, *len);
	json_object_put(o);
	return text;
}

/* ---- the stream ---- */

enum block_kind {
	BLOCK_NONE = 0,
	BLOCK_TEXT,   /* a message item */
	BLOCK_FORMAT, /* the forced tool that stands in for text.format: a message item too */
	BLOCK_CALL,   /* a function_call item */
	BLOCK_THINK,  /* a reasoning item */
	BLOCK_OTHER,  /* nothing the client sees */
};

void responses_stream_init(struct responses_stream *s, const struct responses_request *rq,
			   const char *token, long created)
{
	memset(s, 0, sizeof *s);
	s->rq = rq;
	s->block = -1;
	snprintf(s->token, sizeof s->token, "%s", token);
	s->response = response_object(rq, token, created, "in_progress", json_object_new_array());
	buf_init(&s->text, STORE_BLOB_MAX);
	buf_init(&s->signature, STORE_BLOB_MAX);
}

void responses_stream_release(struct responses_stream *s)
{
	json_object_put(s->response);
	json_object_put(s->start);
	buf_release(&s->text);
	buf_release(&s->signature);
	memset(s, 0, sizeof *s);
}

/* event: TYPE / data: {o, type, sequence_number} (o taken over). */
static void put_event(struct responses_stream *s, struct buf *out, const char *type,
		      struct json_object *o)
{
	size_t n;
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "sequence_number", json_object_new_int64(s->seq++));
	const char *j = json_object_to_json_string_length(o, ENCODE_FLAGS, &n);
	/* out is the relay's frame buffer, bounded by max_response_bytes like every event */
	if (buf_printf(out, "event: %s\ndata: ", type) < 0 || buf_append(out, j, n) < 0 ||
	    buf_appends(out, "\n\n") < 0)
		s->overflow = 1;
	json_object_put(o);
}

/* An event about the item in progress: item_id, output_index (and content_index for text). */
static struct json_object *item_event(const struct responses_stream *s, int content)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "item_id", json_object_new_string(s->item_id));
	json_object_object_add(o, "output_index", json_object_new_int64(s->index));
	if (content)
		json_object_object_add(o, "content_index", json_object_new_int(0));
	return o;
}

static void put_item(struct responses_stream *s, struct buf *out, const char *type,
		     struct json_object *item)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "output_index", json_object_new_int64(s->index));
	json_object_object_add(o, "item", shown(s->rq, item));
	put_event(s, out, type, o);
}

static struct json_object *text_part(const char *text, size_t n)
{
	struct json_object *p = json_object_new_object();
	json_object_object_add(p, "type", json_object_new_string("output_text"));
	json_object_object_add(p, "text", json_object_new_string_len(text, (int)n));
	json_object_object_add(p, "annotations", json_object_new_array());
	return p;
}

static struct json_object *output_of(struct responses_stream *s)
{
	struct json_object *out;
	json_object_object_get_ex(s->response, "output", &out);
	return out;
}

static int block_start(struct responses_stream *s, struct json_object *root, struct buf *out)
{
	struct json_object *b, *idx, *item;
	if (!json_object_object_get_ex(root, "content_block", &b) ||
	    !json_object_object_get_ex(root, "index", &idx) || !jx_string(b, "type"))
		return -1;
	s->block = json_object_get_int64(idx);
	s->index = (long)json_object_array_length(output_of(s));
	buf_reset(&s->text);
	buf_reset(&s->signature);
	json_object_put(s->start);
	s->start = json_object_get(b);
	const char *name = jx_string(b, "name");
	if (is_type(b, "text") || (is_type(b, "tool_use") && name && s->rq->o.format_tool[0] &&
				   strcmp(name, s->rq->o.format_tool) == 0)) {
		s->kind = is_type(b, "text") ? BLOCK_TEXT : BLOCK_FORMAT;
		item_id(s->item_id, sizeof s->item_id, "msg", s->token, (size_t)s->index);
		item = message_item(s->item_id, "", 0, 0);
		put_item(s, out, "response.output_item.added", item);
		json_object_put(item);
		struct json_object *o = item_event(s, 1);
		json_object_object_add(o, "part", text_part("", 0));
		put_event(s, out, "response.content_part.added", o);
	} else if (is_type(b, "tool_use") && name && jx_string(b, "id")) {
		s->kind = BLOCK_CALL;
		item_id(s->item_id, sizeof s->item_id, "fc", s->token, (size_t)s->index);
		item = call_item(s->item_id, jx_string(b, "id"), name, "", 0, 0);
		put_item(s, out, "response.output_item.added", item);
		json_object_put(item);
	} else if (is_type(b, "thinking") || is_type(b, "redacted_thinking")) {
		s->kind = BLOCK_THINK;
		item_id(s->item_id, sizeof s->item_id, "rs", s->token, (size_t)s->index);
		item = reasoning_item(s->item_id, NULL, 0);
		put_item(s, out, "response.output_item.added", item);
		json_object_put(item);
	} else {
		s->kind = BLOCK_OTHER;
	}
	return 0;
}

/* An event of the reasoning item's one summary part (the thinking, when the client asked for
 * reasoning): item_id, output_index, summary_index. */
static struct json_object *summary_event(const struct responses_stream *s)
{
	struct json_object *o = item_event(s, 0);
	json_object_object_add(o, "summary_index", json_object_new_int(0));
	return o;
}

/* Thinking as it comes, for a client that asked for reasoning: the summary part opens with the
 * first piece, then one response.reasoning_summary_text.delta per piece (the Responses API's
 * own events for a reasoning summary; clients show it while the model thinks). */
static void thinking_piece(struct responses_stream *s, const char *p, size_t n, int first,
			   struct buf *out)
{
	struct json_object *o;
	if (first) {
		o = summary_event(s);
		json_object_object_add(o, "part", summary_part("", 0));
		put_event(s, out, "response.reasoning_summary_part.added", o);
	}
	o = summary_event(s);
	json_object_object_add(o, "delta", json_object_new_string_len(p, (int)n));
	put_event(s, out, "response.reasoning_summary_text.delta", o);
}

/* A piece of the block in progress; field is the delta's member it came in. */
static void block_piece(struct responses_stream *s, const char *field, const char *p, size_t n,
			struct buf *out)
{
	if (!n)
		return;
	int first = s->text.len == 0;
	if (buf_append(strcmp(field, "signature") == 0 ? &s->signature : &s->text, p, n) < 0) {
		s->overflow = 1;
		return;
	}
	if (s->kind == BLOCK_THINK && strcmp(field, "thinking") == 0 && s->rq->o.show_reasoning) {
		thinking_piece(s, p, n, first, out);
	} else if (s->kind == BLOCK_TEXT || s->kind == BLOCK_FORMAT) {
		struct json_object *o = item_event(s, 1);
		json_object_object_add(o, "delta", json_object_new_string_len(p, (int)n));
		json_object_object_add(o, "logprobs", json_object_new_array());
		put_event(s, out, "response.output_text.delta", o);
	} else if (s->kind == BLOCK_CALL) {
		struct json_object *o = item_event(s, 0);
		json_object_object_add(o, "delta", json_object_new_string_len(p, (int)n));
		put_event(s, out, "response.function_call_arguments.delta", o);
	}
}

/* A piece of the block in progress: arguments, thinking or its signature (text deltas come as
 * ANTH_EV_TEXT, maybe without a tree: text_delta). */
static void block_delta(struct responses_stream *s, const struct anth_event *ev, struct buf *out)
{
	struct json_object *d, *idx, *v = NULL;
	if (!json_object_object_get_ex(ev->root, "delta", &d) ||
	    !json_object_object_get_ex(ev->root, "index", &idx) ||
	    json_object_get_int64(idx) != s->block)
		return;
	const char *type = jx_string(d, "type");
	const char *field = !type ? NULL : strcmp(type, "input_json_delta") == 0 ? "partial_json"
			    : strcmp(type, "thinking_delta") == 0 ? "thinking"
			    : strcmp(type, "signature_delta") == 0 ? "signature" : NULL;
	if (!field || !json_object_object_get_ex(d, field, &v) ||
	    !json_object_is_type(v, json_type_string))
		return;
	block_piece(s, field, json_object_get_string(v), (size_t)json_object_get_string_len(v), out);
}

static void text_delta(struct responses_stream *s, const struct anth_event *ev, struct buf *out)
{
	if (ev->index == s->block)
		block_piece(s, "text", ev->text, ev->text_len, out);
}

/* The block is whole: its .done events, and its item joins the response's output. */
static void block_stop(struct responses_stream *s, struct buf *out)
{
	const char *t = s->text.data ? s->text.data : "";
	struct json_object *item = NULL, *o;
	if (s->kind == BLOCK_TEXT || s->kind == BLOCK_FORMAT) {
		o = item_event(s, 1);
		json_object_object_add(o, "text", json_object_new_string_len(t, (int)s->text.len));
		json_object_object_add(o, "logprobs", json_object_new_array());
		put_event(s, out, "response.output_text.done", o);
		o = item_event(s, 1);
		json_object_object_add(o, "part", text_part(t, s->text.len));
		put_event(s, out, "response.content_part.done", o);
		item = message_item(s->item_id, t, s->text.len, 1);
	} else if (s->kind == BLOCK_CALL) {
		const char *args = s->text.len ? t : "{}";
		o = item_event(s, 0);
		json_object_object_add(o, "name", json_object_new_string(jx_string(s->start, "name")));
		json_object_object_add(o, "arguments", json_object_new_string(args));
		put_event(s, out, "response.function_call_arguments.done", o);
		item = call_item(s->item_id, jx_string(s->start, "id"), jx_string(s->start, "name"),
				 args, strlen(args), 1);
	} else if (s->kind == BLOCK_THINK) {
		if (s->rq->o.show_reasoning && s->text.len) { /* the summary part is open */
			o = summary_event(s);
			json_object_object_add(o, "text", json_object_new_string_len(t, (int)s->text.len));
			put_event(s, out, "response.reasoning_summary_text.done", o);
			o = summary_event(s);
			json_object_object_add(o, "part", summary_part(t, s->text.len));
			put_event(s, out, "response.reasoning_summary_part.done", o);
		}
		struct json_object *b = json_object_get(s->start);
		if (is_type(b, "thinking")) {
			json_object_object_add(b, "thinking", json_object_new_string_len(t, (int)s->text.len));
			json_object_object_add(b, "signature", json_object_new_string_len(
				s->signature.data ? s->signature.data : "", (int)s->signature.len));
		}
		item = reasoning_item(s->item_id, b, s->rq->o.show_reasoning);
		json_object_put(b);
	}
	if (item) {
		put_item(s, out, "response.output_item.done", item);
		json_object_array_add(output_of(s), item);
	}
	s->block = -1;
	s->kind = BLOCK_NONE;
}

static void put_response(struct responses_stream *s, struct buf *out, const char *type)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "response", public_response(s->rq, s->response));
	put_event(s, out, type, o);
}

enum responses_step responses_stream_event(struct responses_stream *s, const char *name,
					   const char *data, size_t len,
					   const struct anth_event *ev, struct buf *out)
{
	struct json_object *v;
	if (ev->kind == ANTH_EV_INVALID ||
	    (!ev->root && ev->kind != ANTH_EV_IGNORE && ev->kind != ANTH_EV_TEXT))
		return RESPONSES_INVALID;
	switch (ev->kind) {
	case ANTH_EV_MESSAGE_START:
		if (json_object_object_get_ex(ev->root, "message", &v) &&
		    json_object_object_get_ex(v, "usage", &v))
			openai_read_usage(v, &s->usage);
		put_response(s, out, "response.created");
		put_response(s, out, "response.in_progress");
		break;
	case ANTH_EV_TEXT:
		text_delta(s, ev, out);
		break;
	case ANTH_EV_MESSAGE_DELTA:
		if (ev->stop_reason)
			snprintf(s->stop_reason, sizeof s->stop_reason, "%s", ev->stop_reason);
		if (json_object_object_get_ex(ev->root, "usage", &v))
			openai_read_usage(v, &s->usage);
		break;
	case ANTH_EV_MESSAGE_STOP:
		finish(s->response, s->stop_reason[0] ? s->stop_reason : NULL, &s->usage);
		put_response(s, out, strcmp(json_object_get_string(json_object_object_get(
			s->response, "status")), "completed") == 0 ? "response.completed"
			: "response.incomplete");
		s->finished = 1;
		return RESPONSES_DONE;
	case ANTH_EV_ERROR:
		return RESPONSES_FAILED;
	case ANTH_EV_IGNORE:
		if (!name)
			break;
		if (strcmp(name, "content_block_start") == 0) {
			/* the event parser leaves block starts to us */
			struct json_object *root = anthropic_json_parse_strict(data, len);
			int rc = root ? block_start(s, root, out) : -1;
			json_object_put(root);
			if (rc < 0)
				return RESPONSES_INVALID;
		}
		if (strcmp(name, "content_block_delta") == 0 && ev->root)
			block_delta(s, ev, out);
		if (strcmp(name, "content_block_stop") == 0 && s->block >= 0)
			block_stop(s, out);
		break;
	case ANTH_EV_INVALID:
		return RESPONSES_INVALID;
	}
	return s->overflow ? RESPONSES_INVALID : RESPONSES_GO_ON;
}

int responses_stream_error(struct responses_stream *s, struct buf *out, const char *anthropic_type,
			   const char *message)
{
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "code", json_object_new_string(anthropic_type ? anthropic_type
								 : "api_error"));
	json_object_object_add(e, "message", json_object_new_string(message ? message : ""));
	json_object_object_add(s->response, "status", json_object_new_string("failed"));
	json_object_object_add(s->response, "error", e);
	json_object_object_add(s->response, "usage", usage_json(&s->usage));
	put_response(s, out, "response.failed");
	return s->overflow ? -1 : 0;
}
