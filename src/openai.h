/* openai: the OpenAI Chat Completions API expressed in the Messages API, both ways (pure).
 *
 * A chat.completions request is checked and translated into a Messages request; the Messages
 * answer, whole or as stream events, is translated back into a chat.completion or
 * chat.completion.chunk frames: text, tool calls (streamed piece by piece as the upstream's
 * input_json_delta events arrive), images, structured output and reasoning. The model's rules
 * come from the catalogue (openai_apply_model): a sampling parameter, a forced tool_choice, a
 * response_format or a reasoning_effort the model cannot honour is refused with the field named
 * rather than silently dropped. What the Messages API cannot do (n > 1, log probabilities, audio)
 * is refused too; fields that do not change the answer are ignored; anything else is refused as
 * unknown, as OpenAI's own API does. Nothing here does I/O. */
#ifndef LLM_OPENAI_H
#define LLM_OPENAI_H

#include <stddef.h>

#include "anthropic.h"
#include "buf.h"
#include "catalogue.h"
#include "err.h"

struct json_object;

/* Why a request was refused, in OpenAI's terms. */
struct openai_error {
	enum err_kind kind;
	char message[512];
	char param[96]; /* the field at fault ("messages.[2].content"), "" for none */
	const char *code; /* "model_not_found", "unknown_parameter", ... or NULL */
};
/* Fills e as a 400 naming param (may be NULL) with code (static, may be NULL) and the message;
 * returns -1, so a parser can "return openai_refuse(...)". */
int openai_refuse(struct openai_error *e, const char *param, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));


struct openai_limits {
	long max_tokens;       /* for a request that names none */
	long max_tokens_limit; /* more is refused */
};

/* The largest image the Messages API takes (decoded bytes), and the most images per request. */
#define OPENAI_IMAGE_MAX (5u * 1024 * 1024)
#define OPENAI_IMAGES_MAX 100

enum openai_format {
	OPENAI_FORMAT_TEXT = 0,
	OPENAI_FORMAT_JSON_OBJECT,
	OPENAI_FORMAT_JSON_SCHEMA,
};

enum openai_tool_choice {
	OPENAI_TC_UNSET = 0,
	OPENAI_TC_NONE,
	OPENAI_TC_AUTO,
	OPENAI_TC_REQUIRED,
	OPENAI_TC_NAMED,
};

/* A checked request. The strings point into root. */
struct openai_request {
	struct json_object *root;     /* the client's body */
	const char *model;            /* as the client named it */
	int stream;
	int include_usage;            /* stream_options.include_usage */
	long max_tokens;              /* asked for, or the default */
	char *system;                 /* system and developer turns joined, or NULL */
	struct json_object *messages; /* the user and assistant turns, in Messages form */
	struct json_object *temperature, *top_p; /* borrowed from root, or NULL */
	struct json_object *stop_sequences;      /* owned, or NULL */
	struct json_object *tools;    /* owned: the Messages tool definitions, or NULL for none */
	enum openai_tool_choice tool_choice;
	const char *tool_name;        /* OPENAI_TC_NAMED: the function's name */
	int parallel;                 /* parallel_tool_calls: -1 not given, 0, 1 */
	enum openai_format format;    /* response_format */
	struct json_object *format_schema; /* borrowed: json_schema.schema, or NULL */
	const char *format_name;      /* json_schema.name, or NULL */
	const char *reasoning;        /* reasoning_effort as sent, or NULL */
	int ends_with_results;        /* the last turn hands tool results back */
	int thinking_back;            /* the thinking of the turn that called those tools was kept
				       * here (openai_thinking_wanted): it goes back with them */
	/* Set by openai_apply_model for the model the request goes to: */
	struct json_object *tool_choice_out; /* owned: the Messages tool_choice, or NULL */
	struct json_object *thinking;        /* owned: the thinking member, or NULL */
	const char *effort;                  /* output_config.effort, or NULL */
	struct json_object *output_format;   /* owned: output_config.format, or NULL */
	char format_tool[72]; /* the forced tool that stands in for response_format, or "" */
	int show_reasoning;   /* thinking goes to the client as reasoning_content */
};

/* Pieces the Responses API's translation (responses.c) shares. */
/* A function or tool name as both APIs take it: 1 to 64 of [A-Za-z0-9_-]. */
int openai_name_ok(const char *s);
/* The source of an image block for an image URL (an https URL, or a data: URL of base64 JPEG, PNG,
 * GIF or WebP of at most OPENAI_IMAGE_MAX bytes): a new reference, or NULL with *e naming param. */
struct json_object *openai_image_source(const char *url, size_t len, const char *param,
					struct openai_error *e);
/* root's temperature or top_p (name): a number from 0 to 1, borrowed into *out (NULL when
 * absent). Returns 0, or -1 with *e set. */
int openai_parse_unit(struct json_object *root, const char *name, struct json_object **out,
		      struct openai_error *e);

/* Reads and checks a Chat Completions request body. Returns 0 (release rq after use), or -1
 * with *e set and rq empty. */
int openai_parse_request(const char *body, size_t len, const struct openai_limits *lim,
			 struct openai_request *rq, struct openai_error *e);
void openai_request_release(struct openai_request *rq);

/* Applies the rules of the model the request goes to (info, borrowed: its catalogue entry, or
 * NULL when there is no catalogue: then the fields pass as sent and no thinking is set):
 * sampling parameters, tool_choice, response_format, reasoning_effort and thinking. Must run
 * once before openai_messages_body. Returns 0, or -1 with *e naming the field (release rq). */
int openai_apply_model(struct openai_request *rq, const struct catalogue_model *info,
		       struct openai_error *e);

/* The Messages API request for rq, sent to model (caller frees; *len is its length). */
char *openai_messages_body(const struct openai_request *rq, const char *model, size_t *len);

/* An error body {"error":{"message","type","param","code"}} (new reference; param and code may
 * be NULL or "" for null). */
struct json_object *openai_error_body(const char *message, const char *type, const char *param,
				      const char *code);
/* OpenAI's error type for an Anthropic error type ("overloaded_error" -> "server_error"). */
const char *openai_error_type(const char *anthropic_type);
/* finish_reason for a Messages stop_reason (NULL -> "stop"). */
const char *openai_finish_reason(const char *stop_reason);

/* Token counts as OpenAI reports them: prompt tokens include the cache reads and writes. */
struct openai_usage {
	long input_tokens;
	long cache_creation_tokens;
	long cache_read_tokens;
	long output_tokens;
};

/* Counts from a Messages usage object; absent counts leave *u as it was. */
void openai_read_usage(struct json_object *usage, struct openai_usage *u);

/* Translates a Messages API answer to rq (borrowed: the model the client asked for, whether
 * reasoning is shown, the response_format tool) into a chat.completion created at the Unix time
 * created: text blocks joined into content, tool_use blocks into tool_calls, thinking into
 * reasoning_content when asked for. Returns the JSON text (caller frees; *len set) and fills *u,
 * or NULL when body is not a message. */
char *openai_completion(const char *body, size_t len, const struct openai_request *rq,
			long created, struct openai_usage *u, size_t *out_len);

/* The longest tool call id whose thinking is kept (the store's key is "think_" + id), and how
 * long it is kept: a tool round trip takes seconds to minutes, a person's approval longer. */
#define OPENAI_CALL_ID_MAX 56
#define OPENAI_KEEP_TTL_S (24 * 3600)

/* Thinking across a tool round trip. The Messages API wants the thinking blocks of the turn that
 * called tools, signatures intact, back with the results; Chat Completions clients drop them. So
 * the gateway keeps them (chat.c, in the store) under the first call's id and puts them back:
 *
 * The blocks to keep from a whole answer: a JSON array of its thinking and redacted_thinking
 * blocks before its first tool call, as they came (caller frees; *len set), and that call's id
 * in id; NULL when the answer calls no tool after thinking or the id is not plain or too long. */
char *openai_thinking_kept(const char *body, size_t len, char id[OPENAI_CALL_ID_MAX + 1],
			   size_t *out_len);
/* For a request that hands tool results back: the id of the first call of the assistant turn
 * they answer, when that turn has no thinking of its own; else NULL. Points into rq. */
const char *openai_thinking_wanted(const struct openai_request *rq);
/* Puts kept blocks (openai_thinking_kept's text) at the start of that assistant turn, unless the
 * request runs with thinking disabled (run after openai_apply_model). Returns 0, or -1 when
 * blocks is not an array of thinking blocks (nothing changed). Signatures are never made up:
 * the blocks are the upstream's own. */
int openai_thinking_insert(struct openai_request *rq, const char *blocks, size_t len);

/* One streamed completion: Messages events in, chat.completion.chunk frames out. */
struct openai_stream {
	char *model;
	long created;
	int include_usage;
	int show_reasoning;
	char format_tool[72];  /* from the request: its input is the answer's content */
	long block;            /* the index of the content block in progress, -1 for none */
	int block_kind;        /* what that block is (openai.c's enum) */
	int n_tools;           /* tool calls started: the next one's index */
	char id[160];          /* "chatcmpl-..." from the message id */
	char stop_reason[64];  /* from message_delta */
	struct openai_usage usage;
	int finished;          /* message_stop arrived and [DONE] was produced */
	/* The thinking blocks before the first tool call, kept for the turn that hands its results
	 * back (openai_stream_kept): collected only when keep_cap (bytes) is set. */
	size_t keep_cap;
	struct json_object *kept;      /* owned: the blocks so far, or NULL */
	struct json_object *thinking;  /* owned: the thinking block in progress, or NULL */
	struct buf think_text, think_sig; /* its thinking and signature deltas, joined */
	size_t kept_bytes;
	char kept_id[OPENAI_CALL_ID_MAX + 1]; /* the first tool call's id, "" before it */
};

enum openai_step {
	OPENAI_GO_ON = 0,
	OPENAI_DONE,    /* message_stop: the last frames, ending in [DONE], are in out */
	OPENAI_FAILED,  /* an error event (ev holds its type and message): nothing was added */
	OPENAI_INVALID, /* data that is not the JSON its event name promises */
};

/* Starts a stream answering rq (borrowed for the call only). */
void openai_stream_init(struct openai_stream *s, const struct openai_request *rq, long created);
void openai_stream_release(struct openai_stream *s);
/* Translates one upstream event (name is its event: field, data its len bytes of data, ev its
 * parse) into the frames to send, appended to out (nothing for events without a counterpart).
 * Each text, tool-argument or reasoning piece becomes one chunk as it arrives. */
enum openai_step openai_stream_event(struct openai_stream *s, const char *name, const char *data,
				     size_t len, const struct anth_event *ev, struct buf *out);
/* Collects the thinking blocks before the first tool call, up to cap bytes of thinking (more
 * could not be kept: the stream then keeps none). */
void openai_stream_keep(struct openai_stream *s, size_t cap);
/* After OPENAI_DONE: the blocks to keep, as openai_thinking_kept's (caller frees), or NULL. */
char *openai_stream_kept(struct openai_stream *s, size_t *len);
/* Appends the frame that ends a failed stream, data: {"error":{...}} (never [DONE]). */
int openai_stream_error(struct buf *out, const char *anthropic_type, const char *message);

#endif
