/*
 * message: an answer as the Messages API returns it, the same for a JSON
 * answer and a stream.  The text is cut into deltas that concatenate to it;
 * the stop reason, the stop sequence and the token counts come with it.
 * Owns the Message object's JSON (a thinking block, then the text) (whole, or as message_start carries it) and
 * the usage object.  The Messages API module fills a message; the streaming
 * module plays it.  Depends on util only.
 */
#ifndef EMU_MESSAGE_H
#define EMU_MESSAGE_H

#include "util.h"

#define SIG_LEN 23 /* "EmuSig", 16 hex digits, NUL */

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
};

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
