/* openai: the OpenAI Chat Completions API expressed in the Messages API, both ways (pure).
 *
 * A chat.completions request is checked and translated into a Messages request; the Messages
 * answer, whole or as stream events, is translated back into a chat.completion or
 * chat.completion.chunk frames. What the Messages API cannot do (n > 1, tools, JSON mode, log
 * probabilities, images) is refused with the field named rather than silently dropped; fields
 * that do not change the answer are ignored; anything else is refused as unknown, as OpenAI's
 * own API does. Nothing here does I/O. */
#ifndef LLM_OPENAI_H
#define LLM_OPENAI_H

#include <stddef.h>

#include "anthropic.h"
#include "buf.h"
#include "err.h"

struct json_object;

/* Why a request was refused, in OpenAI's terms. */
struct openai_error {
	enum err_kind kind;
	char message[512];
	char param[96]; /* the field at fault ("messages.[2].content"), "" for none */
	const char *code; /* "model_not_found", "unknown_parameter", ... or NULL */
};

struct openai_limits {
	long max_tokens;       /* for a request that names none */
	long max_tokens_limit; /* more is refused */
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
};

/* Reads and checks a Chat Completions request body. Returns 0 (release rq after use), or -1
 * with *e set and rq empty. */
int openai_parse_request(const char *body, size_t len, const struct openai_limits *lim,
			 struct openai_request *rq, struct openai_error *e);
void openai_request_release(struct openai_request *rq);

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

/* Translates a Messages API answer into a chat.completion naming model (what the client asked
 * for), created at the Unix time created. Returns the JSON text (caller frees; *len set) and
 * fills *u, or NULL when body is not a message. */
char *openai_completion(const char *body, size_t len, const char *model, long created,
			struct openai_usage *u, size_t *out_len);

/* One streamed completion: Messages events in, chat.completion.chunk frames out. */
struct openai_stream {
	char *model;
	long created;
	int include_usage;
	char id[160];          /* "chatcmpl-..." from the message id */
	char stop_reason[64];  /* from message_delta */
	struct openai_usage usage;
	int finished;          /* message_stop arrived and [DONE] was produced */
};

enum openai_step {
	OPENAI_GO_ON = 0,
	OPENAI_DONE,    /* message_stop: the last frames, ending in [DONE], are in out */
	OPENAI_FAILED,  /* an error event (ev holds its type and message): nothing was added */
	OPENAI_INVALID, /* data that is not the JSON its event name promises */
};

void openai_stream_init(struct openai_stream *s, const char *model, long created,
			int include_usage);
void openai_stream_release(struct openai_stream *s);
/* Translates one parsed upstream event (name is its event: field) into the frames to send, which
 * are appended to out (nothing for events without a counterpart). */
enum openai_step openai_stream_event(struct openai_stream *s, const char *name,
				     const struct anth_event *ev, struct buf *out);
/* Appends the frame that ends a failed stream, data: {"error":{...}} (never [DONE]). */
int openai_stream_error(struct buf *out, const char *anthropic_type, const char *message);

#endif
