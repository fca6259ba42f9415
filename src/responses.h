/* responses: the OpenAI Responses API expressed in the Messages API, both ways (pure).
 *
 * A responses request (input as a string or items: messages with text and images, function
 * calls and their outputs, reasoning, references to earlier items) becomes an openai_request, so
 * that the model's rules, the tools, the structured output and the Messages body are openai.c's.
 * The Messages answer, whole or as stream events, becomes a response object or the Responses
 * stream's events. Earlier turns a client refers to by id (item_reference, previous_response_id)
 * come through a lookup the caller provides (the handler's store of recent responses); nothing
 * here does I/O.
 *
 * Ids: a response is resp_TOKEN, its output items msg_TOKEN_N, fc_TOKEN_N, rs_TOKEN_N, so an
 * item's id names the stored response that holds it. Thinking travels in a reasoning item's
 * encrypted_content as the thinking block's JSON, signature included (never invented). */
#ifndef LLM_RESPONSES_H
#define LLM_RESPONSES_H

#include <stddef.h>

#include "anthropic.h"
#include "buf.h"
#include "openai.h"

struct json_object;

#define RESPONSES_TOKEN_LEN 32 /* hex digits of a response's token */

/* What a stored response is looked up by: returns 1 and appends the blob stored under key
 * ("resp_TOKEN") to out, 0 when there is none (unknown, expired, evicted), -1 when the store
 * cannot answer. */
struct responses_lookup {
	int (*get)(void *arg, const char *key, struct buf *out);
	void *arg;
};

struct responses_request {
	struct openai_request o;   /* what openai_apply_model and openai_messages_body take */
	struct json_object *items; /* owned: the input items, references resolved, in order */
	int store;                 /* store: keep the answer for later turns (default 1) */
	int encrypted;             /* include has reasoning.encrypted_content */
	const char *instructions;  /* borrowed from o.root, or NULL */
};

/* Reads and checks a responses request body, resolving references through look. Returns 0
 * (release rq after use), or -1 with *e set (a store that cannot answer is ERR_UNAVAILABLE). */
int responses_parse_request(const char *body, size_t len, const struct openai_limits *lim,
			    const struct responses_lookup *look, struct responses_request *rq,
			    struct openai_error *e);
void responses_request_release(struct responses_request *rq);

/* The response object (new reference) for a Messages answer to rq, with id resp_TOKEN (token:
 * RESPONSES_TOKEN_LEN hex digits), created at the Unix time created; fills *u. NULL when body is
 * not a message. */
struct json_object *responses_answer(const char *body, size_t len,
				     const struct responses_request *rq, const char *token,
				     long created, struct openai_usage *u);

/* The response as the client sees it, JSON text (caller frees; *len set): reasoning items carry
 * encrypted_content only when include asked for it. */
char *responses_public(const struct responses_request *rq, struct json_object *response,
		       size_t *len);

/* What to keep of a finished response (caller frees; *len set): its input items and output, or,
 * when that is more than max bytes, the output only (previous_response_id then answers that the
 * conversation was too long to keep). NULL when even the output is too long. */
char *responses_stored(const struct responses_request *rq, struct json_object *response,
		       size_t max, size_t *len);

/* One streamed response: Messages events in, Responses events out. */
struct responses_stream {
	const struct responses_request *rq; /* borrowed for the stream's life */
	struct json_object *response;       /* owned: the response as it stands */
	long seq;                           /* sequence_number of the next event */
	char token[RESPONSES_TOKEN_LEN + 1];
	long block;                         /* the Messages block in progress, -1 for none */
	int kind;                           /* what that block became (responses.c's enum) */
	long index;                         /* its output_index */
	char item_id[96];                   /* its item's id */
	struct json_object *start;          /* owned: its content_block_start block */
	int overflow;                       /* an event or a block was over its buffer's cap */
	struct buf text;                    /* its text, arguments or thinking so far */
	struct buf signature;               /* a thinking block's signature */
	char stop_reason[64];
	struct openai_usage usage;
	int finished; /* message_stop arrived: response.completed (or .incomplete) is out */
};

enum responses_step {
	RESPONSES_GO_ON = 0,
	RESPONSES_DONE,    /* message_stop: the last events are in out */
	RESPONSES_FAILED,  /* an error event (ev holds its type and message) */
	RESPONSES_INVALID, /* data that is not the JSON its event name promises */
};

void responses_stream_init(struct responses_stream *s, const struct responses_request *rq,
			   const char *token, long created);
void responses_stream_release(struct responses_stream *s);
/* Translates one upstream event into the events to send, appended to out. */
enum responses_step responses_stream_event(struct responses_stream *s, const char *name,
					   const char *data, size_t len,
					   const struct anth_event *ev, struct buf *out);
/* Appends response.failed for a stream cut by an error (never response.completed). */
int responses_stream_error(struct responses_stream *s, struct buf *out, const char *anthropic_type,
			   const char *message);

#endif
