/* message: see message.h. */
#include "message.h"

#include <stdio.h>
#include <stdlib.h>

json_object *message_usage_json(const struct message *m, long out_tokens, bool tier)
{
	json_object *u = jobj();

	jset(u, "input_tokens", jint(m->in_tok));
	json_object *cc = jobj();

	jset(cc, "ephemeral_5m_input_tokens", jint(0));
	jset(cc, "ephemeral_1h_input_tokens", jint(0));
	jset(u, "cache_creation_input_tokens", jint(0));
	jset(u, "cache_read_input_tokens", jint(0));
	jset(u, "cache_creation", cc);
	jset(u, "output_tokens", jint(out_tokens));
	if (tier)
		jset(u, "service_tier", jstr("standard"));
	return u;
}

json_object *message_json(const struct message *m, bool start)
{
	json_object *o = jobj(), *content = json_object_new_array();

	jset(o, "id", jstr(m->msg_id));
	jset(o, "type", jstr("message"));
	jset(o, "role", jstr("assistant"));
	jset(o, "model", jstr(m->model));
	if (!start && m->thinking) {
		json_object *b = jobj();

		jset(b, "type", jstr("thinking"));
		jset(b, "thinking", jstr(m->thinking));
		jset(b, "signature", jstr(m->signature));
		if (json_object_array_add(content, b) != 0)
			die("out of memory");
	}
	if (!start && message_has_text(m)) {
		json_object *b = jobj();

		jset(b, "type", jstr("text"));
		jset(b, "text", json_object_new_string_len(m->text, (int)m->text_len));
		if (json_object_array_add(content, b) != 0)
			die("out of memory");
	}
	for (size_t i = 0; !start && i < m->ncalls; i++) {
		json_object *b = jobj();

		jset(b, "type", jstr("tool_use"));
		jset(b, "id", jstr(m->calls[i].id));
		jset(b, "name", jstr(m->calls[i].name));
		jset(b, "input", json_tokener_parse(m->calls[i].input));
		if (json_object_array_add(content, b) != 0)
			die("out of memory");
	}
	jset(o, "content", content);
	jset(o, "stop_reason", start ? NULL : jstr(m->stop_reason));
	jset(o, "stop_sequence", !start && m->stop_seq ? jstr(m->stop_seq) : NULL);
	jset(o, "usage", message_usage_json(m, start ? 1 : m->out_tok, true));
	return o;
}

void message_signature(const char *thinking, size_t n, char out[SIG_LEN])
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: deterministic, and enough for a test */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)thinking[i]) * 0x100000001b3ull;
	snprintf(out, SIG_LEN, "EmuSig%016llx", (unsigned long long)h);
}

bool message_has_text(const struct message *m)
{
	return m->ndeltas || (!m->thinking && !m->ncalls);
}

size_t message_piece_len(const char *s, size_t n)
{
	size_t k = n < PIECE_MAX ? n : PIECE_MAX;

	while (k < n && k > 1 && ((unsigned char)s[k] & 0xc0) == 0x80)
		k--;
	while (k < n && ((unsigned char)s[k] & 0xc0) == 0x80)
		k++; /* one character longer than a piece: it goes whole */
	return k;
}

void message_free(struct message *m)
{
	for (size_t i = 0; i < m->ncalls; i++) {
		free(m->calls[i].name);
		free(m->calls[i].input);
	}
	free(m->calls);
	free(m->thinking);
	free(m->model);
	free(m->text);
	free(m->stop_seq);
	free(m->doff);
}
