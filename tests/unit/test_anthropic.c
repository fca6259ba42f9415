/* The Messages API's JSON: request bodies, answers, errors, stream events, key scrubbing. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic.h"
#include "tap.h"

int main(void)
{
	struct anth_request rq = {.model = "m1", .max_tokens = 7, .system = "be brief",
				  .text = "hi \"there\"\n/", .text_len = 12, .stream = 1};
	size_t n;
	char *body = anthropic_request_body(&rq, &n);
	tap_is_str(body, "{\"model\":\"m1\",\"max_tokens\":7,\"system\":\"be brief\",\"messages\":"
			 "[{\"role\":\"user\",\"content\":\"hi \\\"there\\\"\\n/\"}],\"stream\":true}",
		   "request body");
	tap_is_int(n, strlen(body), "length");
	free(body);

	struct json_object *turns = json_tokener_parse(
		"[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
		"{\"role\":\"user\",\"content\":\"c\"}]");
	struct anth_request mr = {.model = "m", .max_tokens = 1, .messages = turns};
	body = anthropic_request_body(&mr, NULL);
	tap_ok(strstr(body, "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\"") != NULL,
	       "messages passed through");
	tap_ok(strstr(body, "system") == NULL && strstr(body, "stream") == NULL, "no system, no stream");
	free(body);
	tap_ok(json_object_array_length(turns) == 3, "the caller's array is intact");
	json_object_put(turns);

	const char *msg = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m9\","
			  "\"content\":[{\"type\":\"text\",\"text\":\"Hello\"},{\"type\":\"tool_use\",\"id\":\"t\"},"
			  "{\"type\":\"text\",\"text\":\" world\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
			  "\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}";
	struct anth_message m;
	tap_is_int(anthropic_parse_message(msg, strlen(msg), &m), 0, "message parses");
	tap_is_str(m.text, "Hello world", "text blocks joined, others skipped");
	tap_is_str(m.model, "m9", "model");
	tap_is_str(m.stop_reason, "end_turn", "stop_reason");
	tap_is_int(m.usage.input_tokens, 12, "input tokens");
	tap_is_int(m.usage.output_tokens, 3, "output tokens");
	anthropic_message_release(&m);
	tap_is_int(anthropic_parse_message("{\"type\":\"message\",\"content\":[", 30, &m), -1, "truncated JSON");
	tap_is_int(anthropic_parse_message("{\"type\":\"error\"}", 16, &m), -1, "not a message");
	tap_is_int(anthropic_parse_message("<html>", 6, &m), -1, "not JSON");

	char *type, *text;
	const char *err = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
	tap_is_int(anthropic_parse_error(err, strlen(err), &type, &text), 0, "error parses");
	tap_is_str(type, "overloaded_error", "error type");
	tap_is_str(text, "Overloaded", "error message");
	free(type);
	free(text);
	tap_is_int(anthropic_parse_error("nope", 4, &type, &text), -1, "error body not JSON");

	struct anth_event ev;
	const char *d = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"T\\u00e9\"}}";
	anthropic_parse_event("content_block_delta", d, strlen(d), &ev);
	tap_is_int(ev.kind, ANTH_EV_TEXT, "text delta");
	tap_ok(ev.text_len == 3 && memcmp(ev.text, "T\xc3\xa9", 3) == 0, "delta text decoded");
	anthropic_event_release(&ev);
	d = "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}";
	anthropic_parse_event("content_block_delta", d, strlen(d), &ev);
	tap_is_int(ev.kind, ANTH_EV_IGNORE, "tool input delta is not text");
	anthropic_event_release(&ev);
	d = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":41}}";
	anthropic_parse_event("message_delta", d, strlen(d), &ev);
	tap_ok(ev.kind == ANTH_EV_MESSAGE_DELTA && ev.output_tokens == 41 && ev.input_tokens == -1 &&
		       strcmp(ev.stop_reason, "max_tokens") == 0, "message_delta");
	anthropic_event_release(&ev);
	d = "{\"type\":\"message_start\",\"message\":{\"id\":\"x\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}";
	anthropic_parse_event("message_start", d, strlen(d), &ev);
	tap_ok(ev.kind == ANTH_EV_MESSAGE_START && ev.input_tokens == 9, "message_start");
	anthropic_event_release(&ev);
	anthropic_parse_event("message_stop", "{\"type\":\"message_stop\"}", 23, &ev);
	tap_is_int(ev.kind, ANTH_EV_MESSAGE_STOP, "message_stop");
	anthropic_event_release(&ev);
	d = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
	anthropic_parse_event("error", d, strlen(d), &ev);
	tap_ok(ev.kind == ANTH_EV_ERROR && strcmp(ev.error_type, "overloaded_error") == 0, "error event");
	anthropic_event_release(&ev);
	anthropic_parse_event("ping", "{\"type\": \"ping\"}", 16, &ev);
	tap_is_int(ev.kind, ANTH_EV_IGNORE, "ping ignored");
	anthropic_event_release(&ev);
	anthropic_parse_event("future_event", "not json", 8, &ev);
	tap_is_int(ev.kind, ANTH_EV_IGNORE, "unknown event ignored unparsed");
	anthropic_event_release(&ev);
	anthropic_parse_event("content_block_delta", "{\"type\":\"content_block_de", 25, &ev);
	tap_is_int(ev.kind, ANTH_EV_INVALID, "truncated data is invalid");
	anthropic_event_release(&ev);
	anthropic_parse_event("message_stop", "{\"type\":\"ping\"}", 15, &ev);
	tap_is_int(ev.kind, ANTH_EV_INVALID, "data type must match the event name");
	anthropic_event_release(&ev);

	char s[] = "invalid x-api-key: sk-secret-123 (sk-secret-123)";
	anthropic_scrub(s, "sk-secret-123");
	tap_ok(strstr(s, "sk-secret") == NULL, "key scrubbed everywhere: %s", s);
	anthropic_scrub(s, NULL);
	anthropic_scrub(s, "");
	tap_ok(1, "scrub tolerates no key");
	return tap_done();
}
