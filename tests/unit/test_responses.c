/* OpenAI Responses <-> Messages: requests, references to kept responses, answers, each stream
 * event, refusals; and the store's blobs those references live in. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "responses.h"
#include "store.h"
#include "tap.h"

static const struct openai_limits lim = {.max_tokens = 512, .max_tokens_limit = 8192};
#define TOKEN "0123456789abcdef0123456789abcdef"

/* JSON written with ' for " (the tests' texts hold no apostrophes); a new string. */
static char *q(const char *s)
{
	char *o = strdup(s);
	for (char *p = o; *p; p++)
		if (*p == '\'')
			*p = '"';
	return o;
}

/* The lookup of the tests: one kept response, resp_TOKEN, or a store that is down. */
static const char *kept;
static int down;

static int fake_get(void *arg, const char *key, struct buf *out)
{
	(void)arg;
	if (down)
		return -1;
	if (!kept || strcmp(key, "resp_" TOKEN) != 0)
		return 0;
	char *k = q(kept);
	int rc = buf_appends(out, k);
	free(k);
	return rc < 0 ? -1 : 1;
}

static const struct responses_lookup look = {.get = fake_get};

/* The Messages body for a responses body (caller frees), or NULL with *e set. */
static char *translate(const char *body, struct openai_error *e)
{
	struct responses_request rq;
	char *b = q(body), *out = NULL;
	if (responses_parse_request(b, strlen(b), &lim, &look, &rq, e) == 0) {
		if (openai_apply_model(&rq.o, NULL, e) == 0) {
			size_t n;
			out = openai_messages_body(&rq.o, "claude-x", &n);
		}
		responses_request_release(&rq);
	}
	free(b);
	return out;
}

static void is_translation(const char *body, const char *want, const char *what)
{
	struct openai_error e;
	char *got = translate(body, &e), *w = q(want);
	tap_is_str(got, w, "%s", what);
	if (!got)
		tap_diag("refused: %s (%s)", e.message, e.param);
	free(got);
	free(w);
}

static void is_refusal(const char *body, const char *param, const char *what)
{
	struct openai_error e;
	char *got = translate(body, &e);
	tap_ok(!got && strcmp(e.param, param) == 0 && e.kind == ERR_BAD_REQUEST, "%s", what);
	if (got || strcmp(e.param, param) != 0)
		tap_diag("got %s / param '%s': %s", got ? got : "(refused)", e.param, e.message);
	free(got);
}

static void test_requests(void)
{
	is_translation("{'model':'gpt-4o','input':'Hi','max_output_tokens':64,'temperature':0.5,"
		       "'store':false,'user':'u','metadata':{},'truncation':'disabled'}",
		       "{'model':'claude-x','max_tokens':64,'messages':[{'role':'user','content':"
		       "[{'type':'text','text':'Hi'}]}],'temperature':0.5}",
		       "a string input is one user turn; max_output_tokens, temperature; harmless fields dropped");
	is_translation("{'model':'m','instructions':'Be brief.','input':[{'role':'developer','content':"
		       "'No lists.'},{'type':'message','role':'user','content':[{'type':'input_text','text':"
		       "'Look'},{'type':'input_image','image_url':'https://e.org/a.png','detail':'auto'}]},"
		       "{'role':'assistant','content':[{'type':'output_text','text':'A cat.'}]},"
		       "{'role':'user','content':'More?'}]}",
		       "{'model':'claude-x','max_tokens':512,'system':'Be brief.\\n\\nNo lists.','messages':"
		       "[{'role':'user','content':[{'type':'text','text':'Look'},{'type':'image','source':"
		       "{'type':'url','url':'https://e.org/a.png'}}]},{'role':'assistant','content':"
		       "[{'type':'text','text':'A cat.'}]},{'role':'user','content':[{'type':'text','text':"
		       "'More?'}]}]}",
		       "instructions then developer text as system; images; roles in order");
	is_translation("{'model':'m','tools':[{'type':'function','name':'get_weather','parameters':"
		       "{'type':'object'},'strict':true}],'tool_choice':'auto','input':[{'role':'user',"
		       "'content':'Oslo?'},{'type':'reasoning','id':'rs_1','summary':[],'encrypted_content':"
		       "'{\\'type\\':\\'thinking\\',\\'thinking\\':\\'hm\\',\\'signature\\':\\'sig\\'}'},"
		       "{'type':'function_call','id':'fc_1','call_id':'toolu_1','name':'get_weather',"
		       "'arguments':'{\\'city\\':\\'Oslo\\'}'},{'type':'function_call_output','call_id':"
		       "'toolu_1','output':'sunny'}]}",
		       "{'model':'claude-x','max_tokens':512,'messages':[{'role':'user','content':[{'type':"
		       "'text','text':'Oslo?'}]},{'role':'assistant','content':[{'type':'thinking','thinking':"
		       "'hm','signature':'sig'},{'type':'tool_use','id':'toolu_1','name':'get_weather',"
		       "'input':{'city':'Oslo'}}]},{'role':'user','content':[{'type':'tool_result',"
		       "'tool_use_id':'toolu_1','content':'sunny'}]}],'tools':[{'name':'get_weather',"
		       "'input_schema':{'type':'object'},'strict':true}],'tool_choice':{'type':'auto'}}",
		       "function tools; reasoning back as its thinking block (signature as given); a call "
		       "and its output as tool_use and tool_result");
	is_translation("{'model':'m','input':'x','text':{'format':{'type':'json_schema','name':'out',"
		       "'schema':{'type':'object','additionalProperties':false},'strict':true}}}",
		       "{'model':'claude-x','max_tokens':512,'messages':[{'role':'user','content':[{'type':"
		       "'text','text':'x'}]}],'output_config':{'format':{'type':'json_schema','schema':"
		       "{'type':'object','additionalProperties':false}}}}",
		       "text.format json_schema becomes structured output");

	is_refusal("{'model':'m','input':'x','tools':[{'type':'web_search'}]}", "tools.[0].type",
		   "a built-in tool is refused, named");
	is_refusal("{'model':'m','input':'x','tool_choice':{'type':'file_search'}}", "tool_choice",
		   "a built-in tool_choice is refused");
	is_refusal("{'model':'m','input':'x','include':['file_search_call.results']}", "include",
		   "an include that cannot be honoured is refused");
	is_refusal("{'model':'m','input':'x','conversation':'c1'}", "conversation",
		   "an unknown field is refused, named");
	is_refusal("{'model':'m','input':[{'type':'reasoning','encrypted_content':'{}'}]}",
		   "input.[0].encrypted_content", "encrypted_content this server did not give is refused");
	is_refusal("{'model':'m','input':[{'type':'function_call','call_id':'c','name':'f','arguments':"
		   "'[1]'}]}", "input.[0].arguments", "arguments that are not an object are refused");
	is_refusal("{'model':'m','input':[{'type':'computer_call_output'}]}", "input.[0].type",
		   "an item type without a counterpart is refused");
	is_refusal("{'model':'m','input':'x','max_output_tokens':9000}", "max_output_tokens",
		   "max_output_tokens over the limit");
	is_refusal("{'model':'m'}", "input", "input is required");
}

static void test_references(void)
{
	struct openai_error e;
	kept = "{'items':[{'role':'user','content':'Oslo?'}],'output':[{'id':'fc_" TOKEN "_0','type':"
	       "'function_call','call_id':'toolu_1','name':'f','arguments':'{}'}]}";
	is_translation("{'model':'m','input':[{'role':'user','content':'Oslo?'},{'type':'item_reference',"
		       "'id':'fc_" TOKEN "_0'},{'type':'function_call_output','call_id':'toolu_1',"
		       "'output':[{'type':'input_text','text':'sunny'}]}]}",
		       "{'model':'claude-x','max_tokens':512,'messages':[{'role':'user','content':[{'type':"
		       "'text','text':'Oslo?'}]},{'role':'assistant','content':[{'type':'tool_use','id':"
		       "'toolu_1','name':'f','input':{}}]},{'role':'user','content':[{'type':'tool_result',"
		       "'tool_use_id':'toolu_1','content':[{'type':'text','text':'sunny'}]}]}]}",
		       "an item_reference is the kept item, in its place");
	is_translation("{'model':'m','previous_response_id':'resp_" TOKEN "','input':'Thanks'}",
		       "{'model':'claude-x','max_tokens':512,'messages':[{'role':'user','content':[{'type':"
		       "'text','text':'Oslo?'}]},{'role':'assistant','content':[{'type':'tool_use','id':"
		       "'toolu_1','name':'f','input':{}}]},{'role':'user','content':[{'type':'text','text':"
		       "'Thanks'}]}]}",
		       "previous_response_id: its input and output come first");
	is_refusal("{'model':'m','input':[{'type':'item_reference','id':'msg_" TOKEN "_7'}]}",
		   "input.[0].id", "a reference to an item the kept response does not hold");
	is_refusal("{'model':'m','input':[{'type':'item_reference','id':'msg_abc'}]}", "input.[0].id",
		   "a reference that is not one of our ids");
	is_refusal("{'model':'m','previous_response_id':'resp_ffff','input':'x'}",
		   "previous_response_id", "an unknown or expired previous_response_id: 400 naming it");
	kept = "{'items':null,'output':[]}";
	is_refusal("{'model':'m','previous_response_id':'resp_" TOKEN "','input':'x'}",
		   "previous_response_id", "a conversation too long to keep is refused, said so");
	down = 1;
	char *out = translate("{'model':'m','previous_response_id':'resp_" TOKEN "','input':'x'}", &e);
	tap_ok(!out && e.kind == ERR_UPSTREAM && strcmp(e.param, "previous_response_id") == 0,
	       "a store that cannot answer: 502, naming the field");
	free(out);
	down = 0;
	kept = NULL;
}

static struct responses_request parsed(const char *body)
{
	struct responses_request rq;
	struct openai_error e;
	char *b = q(body);
	if (responses_parse_request(b, strlen(b), &lim, &look, &rq, &e) < 0 ||
	    openai_apply_model(&rq.o, NULL, &e) < 0)
		tap_diag("refused: %s", e.message);
	free(b);
	return rq;
}

static void test_answer(void)
{
	struct responses_request rq = parsed("{'model':'gpt-4o','input':'x'}");
	struct openai_usage u;
	char *msg = q("{'id':'msg_1','type':'message','role':'assistant','content':[{'type':'thinking',"
		      "'thinking':'hm','signature':'sig'},{'type':'text','text':'Hi.'},{'type':'tool_use',"
		      "'id':'toolu_1','name':'f','input':{'a':1}}],'stop_reason':'tool_use','usage':"
		      "{'input_tokens':5,'cache_read_input_tokens':2,'output_tokens':7}}");
	struct json_object *r = responses_answer(msg, strlen(msg), &rq, TOKEN, 100, &u);
	size_t n;
	char *shown = responses_public(&rq, r, &n);
	char *want = q("{'id':'resp_" TOKEN "','object':'response','created_at':100,'status':'completed',"
		       "'error':null,'incomplete_details':null,'instructions':null,'max_output_tokens':512,"
		       "'model':'gpt-4o','output':[{'id':'rs_" TOKEN "_0','type':'reasoning','summary':[]},"
		       "{'id':'msg_" TOKEN "_1','type':'message','status':'completed','role':'assistant',"
		       "'content':[{'type':'output_text','text':'Hi.','annotations':[]}]},{'id':'fc_" TOKEN
		       "_2','type':'function_call','status':'completed','call_id':'toolu_1','name':'f',"
		       "'arguments':'{\\'a\\':1}'}],'parallel_tool_calls':true,'previous_response_id':null,"
		       "'store':true,'tools':[],'usage':{'input_tokens':7,'input_tokens_details':"
		       "{'cached_tokens':2},'output_tokens':7,'output_tokens_details':{'reasoning_tokens':0},"
		       "'total_tokens':14}}");
	tap_is_str(shown, want, "an answer: reasoning (encrypted_content not asked for), text, a call, usage");
	free(shown);
	free(want);
	char *stored = responses_stored(&rq, r, STORE_BLOB_MAX, &n);
	tap_ok(stored && strstr(stored, "\"encrypted_content\":\"{\\\"type\\\":\\\"thinking\\\"") &&
	       strstr(stored, "\"items\":[{"), "what is kept has the input and the thinking block");
	free(stored);
	stored = responses_stored(&rq, r, n - 1, &n);
	tap_ok(stored && strncmp(stored, "{\"items\":null", 13) == 0,
	       "too long to keep whole: the output only");
	free(stored);
	json_object_put(r);
	free(msg);

	msg = q("{'content':[{'type':'text','text':'cut'}],'stop_reason':'max_tokens','usage':{}}");
	r = responses_answer(msg, strlen(msg), &rq, TOKEN, 100, &u);
	tap_is_str(json_object_get_string(json_object_object_get(r, "status")), "incomplete",
		   "max_tokens: incomplete");
	json_object_put(r);
	free(msg);
	tap_ok(!responses_answer("[]", 2, &rq, TOKEN, 1, &u), "not a message: NULL");
	responses_request_release(&rq);
}

/* Feeds one event; returns the step and appends to out. */
static enum responses_step feed(struct responses_stream *s, const char *name, const char *data,
				struct buf *out)
{
	struct anth_event ev;
	char *d = q(data);
	anthropic_parse_event(name, d, strlen(d), &ev);
	enum responses_step st = responses_stream_event(s, name, d, strlen(d), &ev, out);
	anthropic_event_release(&ev);
	free(d);
	return st;
}

/* A thinking block at index 0: its start, a thinking_delta per piece, the signature 'sig', its
 * stop. */
static void feed_thinking(struct responses_stream *s, const char *const *pieces, struct buf *out)
{
	char ev[256];
	feed(s, "content_block_start", "{'type':'content_block_start','index':0,'content_block':"
	     "{'type':'thinking','thinking':'','signature':''}}", out);
	for (; *pieces; pieces++) {
		snprintf(ev, sizeof ev, "{'type':'content_block_delta','index':0,'delta':{'type':"
			 "'thinking_delta','thinking':'%s'}}", *pieces);
		feed(s, "content_block_delta", ev, out);
	}
	feed(s, "content_block_delta", "{'type':'content_block_delta','index':0,'delta':{'type':"
	     "'signature_delta','signature':'sig'}}", out);
	feed(s, "content_block_stop", "{'type':'content_block_stop','index':0}", out);
}

/* The event: names in out, joined by blanks. */
static void names(const struct buf *out, char *dst, size_t cap)
{
	const char *p = out->data ? out->data : "";
	dst[0] = 0;
	while ((p = strstr(p, "event: "))) {
		p += 7;
		size_t n = strcspn(p, "\n"), l = strlen(dst);
		snprintf(dst + l, cap - l, "%s%.*s", l ? " " : "", (int)n, p);
	}
}

static void test_stream(void)
{
	struct responses_request rq = parsed("{'model':'gpt-4o','input':'x','stream':true}");
	struct responses_stream s;
	struct buf out;
	char got[2048];
	buf_init(&out, 1 << 20);
	responses_stream_init(&s, &rq, TOKEN, 100);
	feed(&s, "message_start", "{'type':'message_start','message':{'id':'m','usage':{'input_tokens':3}}}", &out);
	feed_thinking(&s, (const char *const[]){"hm", NULL}, &out);
	feed(&s, "content_block_start", "{'type':'content_block_start','index':1,'content_block':"
	     "{'type':'text','text':''}}", &out);
	feed(&s, "content_block_delta", "{'type':'content_block_delta','index':1,'delta':{'type':"
	     "'text_delta','text':'Hi'}}", &out);
	feed(&s, "content_block_stop", "{'type':'content_block_stop','index':1}", &out);
	feed(&s, "content_block_start", "{'type':'content_block_start','index':2,'content_block':"
	     "{'type':'tool_use','id':'toolu_1','name':'f','input':{}}}", &out);
	feed(&s, "content_block_delta", "{'type':'content_block_delta','index':2,'delta':{'type':"
	     "'input_json_delta','partial_json':'{\\'a\\''}}", &out);
	feed(&s, "content_block_delta", "{'type':'content_block_delta','index':2,'delta':{'type':"
	     "'input_json_delta','partial_json':':1}'}}", &out);
	feed(&s, "content_block_stop", "{'type':'content_block_stop','index':2}", &out);
	feed(&s, "message_delta", "{'type':'message_delta','delta':{'stop_reason':'tool_use'},"
	     "'usage':{'output_tokens':9}}", &out);
	names(&out, got, sizeof got);
	tap_is_str(got, "response.created response.in_progress response.output_item.added "
		   "response.output_item.done response.output_item.added response.content_part.added "
		   "response.output_text.delta response.output_text.done response.content_part.done "
		   "response.output_item.done response.output_item.added "
		   "response.function_call_arguments.delta response.function_call_arguments.delta "
		   "response.function_call_arguments.done response.output_item.done",
		   "the event sequence of a reasoning item, a message and a function call");
	tap_ok(strstr(out.data, "\"delta\":\"Hi\",\"logprobs\":[],\"type\":\"response.output_text.delta\""
		      ",\"sequence_number\":6") != NULL, "a text delta, numbered");
	tap_ok(strstr(out.data, "{\"item_id\":\"fc_" TOKEN "_2\",\"output_index\":2,\"delta\":\":1}\","
		      "\"type\":\"response.function_call_arguments.delta\"") != NULL,
	       "an arguments delta as it came");
	tap_ok(strstr(out.data, "\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\",\"type\":"
		      "\"response.function_call_arguments.done\"") != NULL, "the arguments whole");
	tap_ok(!strstr(out.data, "encrypted_content") && !strstr(out.data, "response.completed"),
	       "no encrypted_content unasked; nothing completed before message_stop");
	struct json_object *o0 = json_object_array_get_idx(json_object_object_get(s.response, "output"), 0);
	tap_is_str(json_object_get_string(json_object_object_get(o0, "encrypted_content")),
		   "{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"sig\"}",
		   "the kept reasoning item holds the thinking block and its signature");
	buf_reset(&out);
	tap_is_int(feed(&s, "message_stop", "{'type':'message_stop'}", &out), RESPONSES_DONE, "message_stop: done");
	names(&out, got, sizeof got);
	tap_is_str(got, "response.completed", "then response.completed");
	tap_ok(strstr(out.data, "\"status\":\"completed\"") &&
	       strstr(out.data, "\"output_tokens\":9") && strstr(out.data, "\"input_tokens\":3"),
	       "with the whole response and its usage");
	responses_stream_release(&s);

	/* A client that asked for reasoning sees the thinking as it comes, as a reasoning summary. */
	rq.o.show_reasoning = 1;
	responses_stream_init(&s, &rq, TOKEN, 100);
	buf_reset(&out);
	feed(&s, "message_start", "{'type':'message_start','message':{'id':'m','usage':{}}}", &out);
	feed_thinking(&s, (const char *const[]){"h", "m", NULL}, &out);
	names(&out, got, sizeof got);
	tap_is_str(got, "response.created response.in_progress response.output_item.added "
		   "response.reasoning_summary_part.added response.reasoning_summary_text.delta "
		   "response.reasoning_summary_text.delta response.reasoning_summary_text.done "
		   "response.reasoning_summary_part.done response.output_item.done",
		   "reasoning asked for: the summary part opens, a delta per thinking piece, then done");
	tap_ok(strstr(out.data, "{\"item_id\":\"rs_" TOKEN "_0\",\"output_index\":0,\"summary_index\":0,"
		      "\"delta\":\"m\",\"type\":\"response.reasoning_summary_text.delta\"") != NULL,
	       "a summary delta names its item, output and summary index");
	tap_ok(strstr(out.data, "\"summary_index\":0,\"text\":\"hm\",\"type\":"
		      "\"response.reasoning_summary_text.done\"") &&
		       strstr(out.data, "\"part\":{\"type\":\"summary_text\",\"text\":\"hm\"},\"type\":"
			      "\"response.reasoning_summary_part.done\"") &&
		       strstr(out.data, "\"summary\":[{\"type\":\"summary_text\",\"text\":\"hm\"}]"),
	       "the summary whole in its .done events and in the item");
	responses_stream_release(&s);
	rq.o.show_reasoning = 0;

	responses_stream_init(&s, &rq, TOKEN, 100);
	buf_reset(&out);
	feed(&s, "message_start", "{'type':'message_start','message':{'id':'m','usage':{}}}", &out);
	tap_is_int(feed(&s, "error", "{'type':'error','error':{'type':'overloaded_error','message':'busy'}}",
			&out), RESPONSES_FAILED, "an error event: failed");
	tap_ok(responses_stream_error(&s, &out, "overloaded_error", "busy") == 0, "ends the stream");
	names(&out, got, sizeof got);
	tap_is_str(got, "response.created response.in_progress response.failed",
		   "a cut stream ends with response.failed, never completed");
	tap_ok(strstr(out.data, "\"status\":\"failed\",\"error\":{\"code\":\"overloaded_error\","
		      "\"message\":\"busy\"}") != NULL, "naming the error");
	responses_stream_release(&s);
	buf_release(&out);
	responses_request_release(&rq);
}

static void test_blobs(void)
{
	struct buf err, out;
	int found;
	buf_init(&err, 1024);
	buf_init(&out, STORE_BLOB_MAX);
	struct store *st = store_open_shm(16, &err);
	tap_ok(st != NULL, "the store opens");
	if (!st)
		return;
	tap_is_int(store_put_blob(st, "resp_a", "one", 3, 60), STORE_OK, "put");
	tap_is_int(store_put_blob(st, "resp_a", "two", 3, 60), STORE_OK, "put again: replaced");
	tap_ok(store_get_blob(st, "resp_a", &out, &found) == STORE_OK && found &&
	       strcmp(buf_cstr(&out), "two") == 0, "get: the newest");
	buf_reset(&out);
	tap_ok(store_get_blob(st, "resp_b", &out, &found) == STORE_OK && !found, "an unknown key");
	tap_is_int(store_put_blob(st, "resp_c", "x", 1, -1), STORE_OK, "put an expired one");
	tap_ok(store_get_blob(st, "resp_c", &out, &found) == STORE_OK && !found, "expired: none");
	char *big = calloc(1, STORE_BLOB_MAX + 1);
	tap_is_int(store_put_blob(st, "resp_d", big, STORE_BLOB_MAX + 1, 60), STORE_FULL, "too long");
	char key[32];
	for (int i = 0; i < 200; i++) { /* more than the slots: the oldest give way */
		snprintf(key, sizeof key, "k%d", i);
		if (store_put_blob(st, key, big, 10, 60) != STORE_OK)
			break;
	}
	tap_ok(store_get_blob(st, "resp_a", &out, &found) == STORE_OK && !found &&
	       store_get_blob(st, "k199", &out, &found) == STORE_OK && found,
	       "a full store evicts the least recently written");
	free(big);
	store_close(st);
	buf_release(&out);
	buf_release(&err);
}

int main(void)
{
	test_requests();
	test_references();
	test_answer();
	test_stream();
	test_blobs();
	return tap_done();
}
