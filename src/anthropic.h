/* anthropic: the provider's JSON in one place (pure): request bodies for the Messages API, and
 * reading its messages, stream events and errors. Nothing here does I/O. */
#ifndef LLM_ANTHROPIC_H
#define LLM_ANTHROPIC_H

#include <limits.h>
#include <stddef.h>

struct json_object;
struct catalogue_model;

/* The largest token count read from the upstream: far above any real answer, and four of them
 * still add up within a 32-bit long. */
#define ANTH_TOKENS_MAX 500000000L

struct buf;

/* A usage object's counts; -1 for one it does not have. */
struct anth_usage {
	long input_tokens;
	long output_tokens;
	long cache_creation_tokens; /* cache_creation_input_tokens */
	long cache_read_tokens;     /* cache_read_input_tokens */
};

/* How much a model may think before it answers, for our own endpoints (the summarize_thinking
 * and stream_thinking settings). */
enum anth_thinking {
	ANTH_THINKING_OFF = 0, /* none where the model allows it, else the least there is */
	ANTH_THINKING_LOW,
	ANTH_THINKING_MEDIUM,
	ANTH_THINKING_HIGH,
};
/* Reads a Messages usage object (borrowed; NULL reads as all absent). Counts are clamped to
 * 0..ANTH_TOKENS_MAX. */
void anthropic_read_usage(struct json_object *usage, struct anth_usage *u);
/* Appends the text of a message's content array (borrowed) to out: the text blocks joined,
 * every other kind (tool_use, thinking, ...) skipped, as the SDKs do. Returns 0, or -1 when out
 * is full. */
__attribute__((warn_unused_result)) int anthropic_content_text(struct json_object *content, struct buf *out);

/* A request we build from one of our own endpoints. */
struct anth_request {
	const char *model;
	long max_tokens;
	const char *system;             /* NULL for none */
	const char *text;               /* the single user turn, or NULL when messages is set */
	size_t text_len;
	struct json_object *messages;   /* borrowed array of turns, or NULL */
	int stream;
	/* The model's catalogue entry (borrowed), or NULL: then no thinking setting is sent and
	 * the model thinks as the API's default says. With it, thinking is set as below. */
	const struct catalogue_model *info;
	enum anth_thinking thinking;
};

/* Returns the request body as a new string (caller frees). With rq->info, thinking tokens count
 * against max_tokens, so the setting is one the model accepts and that leaves room for the text:
 * - adaptive model: OFF sends thinking {type:"disabled"}; LOW/MEDIUM/HIGH send
 *   {type:"adaptive"} and output_config.effort of that name (left out where the model refuses
 *   the level);
 * - always-on model (refuses "disabled"): OFF is LOW, since low effort is the least there is;
 * - extended model: OFF sends "disabled"; LOW/MEDIUM/HIGH send {type:"enabled"} with
 *   budget_tokens a quarter, half or three quarters of max_tokens, or "disabled" when that is
 *   below the API's minimum of 1024;
 * - a model that cannot think: nothing. */
char *anthropic_request_body(const struct anth_request *rq, size_t *len);

/* The effort level ANTH_THINKING_LOW..HIGH names ("low", "medium", "high"); NULL for OFF. */
const char *anthropic_thinking_effort(enum anth_thinking t);

/* 1 when reason is a stop_reason this gateway knows (end_turn, max_tokens, stop_sequence,
 * tool_use, pause_turn, refusal, model_context_window_exceeded), else 0. A newer one is still an
 * answer: callers relay it as it is. */
int anthropic_stop_reason_known(const char *reason);

/* A non-streaming answer. */
struct anth_message {
	char *text; /* the text blocks joined */
	char *model;
	char *stop_reason;
	struct anth_usage usage;
};

/* Parses a Messages API answer. Returns 0, or -1 when it is not one (invalid JSON, wrong type,
 * missing content). */
int anthropic_parse_message(const char *body, size_t len, struct anth_message *m);
void anthropic_message_release(struct anth_message *m);

/* Reads an API error body ({"type":"error","error":{"type","message"}}). Returns 0 and sets the
 * strings (caller frees), or -1 when the body is not in that shape. */
int anthropic_parse_error(const char *body, size_t len, char **type, char **message);

enum anth_event_kind {
	ANTH_EV_IGNORE = 0, /* ping, block starts/stops, unknown types */
	ANTH_EV_MESSAGE_START,
	ANTH_EV_TEXT,
	ANTH_EV_MESSAGE_DELTA,
	ANTH_EV_MESSAGE_STOP,
	ANTH_EV_ERROR,
	ANTH_EV_INVALID, /* data that is not the JSON the event name promises */
};

/* One stream event. Strings point into a json tree the event holds, or, for a text delta read by
 * fastdelta (root NULL), into the event's data or fastdelta's scratch: use them before the next
 * event, and release the event after use. */
struct anth_event {
	enum anth_event_kind kind;
	const char *text; /* ANTH_EV_TEXT: the delta */
	size_t text_len;
	long long index;  /* ANTH_EV_TEXT: the content block's index; ANTH_NO_INDEX when absent */
	const char *stop_reason;   /* ANTH_EV_MESSAGE_DELTA */
	const char *error_type;    /* ANTH_EV_ERROR */
	const char *error_message; /* ANTH_EV_ERROR */
	long input_tokens;         /* ANTH_EV_MESSAGE_START, and MESSAGE_DELTA when present; else -1 */
	long output_tokens;        /* cumulative, when present; else -1 */
	struct json_object *root;
};

/* No index member: matches no block (a block in progress is >= 0, none is -1). */
#define ANTH_NO_INDEX LLONG_MIN

/* Parses one SSE event of a Messages stream: name is the event: field, data its data. */
void anthropic_parse_event(const char *name, const char *data, size_t len, struct anth_event *ev);
/* The same with json-c alone, never fastdelta: what anthropic_parse_event falls back to, and what
 * the differential fuzz target holds fastdelta equal to. */
void anthropic_parse_event_tree(const char *name, const char *data, size_t len,
				struct anth_event *ev);
void anthropic_event_release(struct anth_event *ev);

/* Parses a JSON text strictly (jscan_parse: RFC 8259, valid UTF-8, no NUL byte, nothing but
 * blanks after the value, a tree within jscan's budget). Returns a new tree (caller puts), or
 * NULL. */
struct json_object *anthropic_json_parse_strict(const char *s, size_t len);

/* What a request's max_tokens member says, under a server's max_tokens_limit. */
enum anth_max_tokens {
	ANTH_MAX_TOKENS_OK,      /* *n is the count */
	ANTH_MAX_TOKENS_INVALID, /* not a JSON integer of at least 1 (1.0, 1e8, "10", null, 0) */
	ANTH_MAX_TOKENS_OVER,    /* an integer above limit (*n; json-c clamps huge ones to INT64_MAX) */
};

/* Reads v, a max_tokens value (NULL for a JSON null), into *n. Both API routes refuse anything
 * but ANTH_MAX_TOKENS_OK: a limit compared only when the value is an integer could be walked
 * around by writing 1e8. */
enum anth_max_tokens anthropic_max_tokens(struct json_object *v, long limit, long long *n);

/* The number of top-level "model" members of body, a JSON object that anthropic_json_parse_strict
 * accepted, or -1 when it is not one. A duplicate member would let the parser that checked the model and the upstream's disagree on
 * which one counts. */
int anthropic_model_members(const char *body, size_t len);

/* Returns a copy of body, a JSON object that anthropic_json_parse_strict accepted, with the value
 * of its top-level "model" member replaced by model as a JSON string and every other byte
 * unchanged (caller frees; *out_len is its length). NULL when body has not exactly one top-level
 * "model" member whose value is a string. */
char *anthropic_replace_model(const char *body, size_t len, const char *model, size_t model_len,
			      size_t *out_len);

/* anthropic_scrub over n bytes that may hold NUL bytes (an SSE frame, an error body). */
void anthropic_scrub_len(char *p, size_t n, const char *secret);

/* Replaces every occurrence of secret in s (NUL-terminated, modified in place) with asterisks, so
 * an upstream message that echoes the server's key never reaches a client or a log. */
void anthropic_scrub(char *s, const char *secret);

#endif
