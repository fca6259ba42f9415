/*
 * message: an answer as the Messages API returns it, the same for a JSON
 * answer and a stream.  The text is cut into deltas that concatenate to it;
 * the stop reason, the stop sequence and the token counts come with it.
 * Owns the Message object's JSON (a thinking block, then the text, then tool calls) (whole, or as
 * message_start carries it) and
 * the usage object.  The Messages API module fills a message; the streaming
 * module plays it.  Depends on util only.
 */
#ifndef EMU_MESSAGE_H
#define EMU_MESSAGE_H

#include "util.h"

#define SIG_LEN 23 /* "EmuSig", 16 hex digits, NUL */
/* The most bytes of a tool call's input (or of a structured answer) one stream delta carries, so
 * the pieces of input_json_delta are many and small, as the API's are. */
#define PIECE_MAX 8

/* One tool_use block of an answer: its input as JSON text, streamed in pieces. */
struct tool_call {
	char id[48];
	char *name;  /* owned */
	char *input; /* owned: the input object's JSON */
};

struct message {
	char msg_id[ID_LEN];
	char *model, *text, *stop_seq; /* owned; stop_seq NULL unless a stop sequence matched */
	size_t text_len;
	size_t *doff, ndeltas; /* delta i is text[doff[i] .. doff[i + 1]) */
	const char *stop_reason; /* a string literal */
	long in_tok, out_tok;    /* out_tok: thinking and text */
	/* A thinking block before the text: its text (owned; "" when the request asked for
	 * display "omitted", the default), signature and tokens. NULL when the answer has none. */
	char *thinking;
	char signature[SIG_LEN];
	long think_tok;
	/* tool_use blocks after the text (owned; ncalls 0 for none). An answer with calls has a
	 * text block only when it has text. */
	struct tool_call *calls;
	size_t ncalls;
};

/* Whether the answer has a text block: thinking that ran to max_tokens, or tool calls without
 * text, leave none. */
bool message_has_text(const struct message *m);

/* The length of the stream piece that starts s (n bytes left): at most PIECE_MAX bytes, never
 * ending inside a UTF-8 character. */
size_t message_piece_len(const char *s, size_t n);

/* The signature the emulator gives a thinking block: a hash of its text, so a block sent back
 * altered (or a signature invented) is caught. */
void message_signature(const char *thinking, size_t n, char out[SIG_LEN]);

/* The Message object: complete (start false) or as message_start carries it. */
json_object *message_json(const struct message *m, bool start);

/* usage with out_tokens (and the cache fields, zero); tier adds service_tier, which
 * message_delta leaves out. */
json_object *message_usage_json(const struct message *m, long out_tokens, bool tier);

void message_free(struct message *m); /* the members, not m */

#endif
