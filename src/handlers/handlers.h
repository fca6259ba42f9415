/* The endpoint handlers: each answers one route family for a request whose method was checked
 * and whose body was read against the route's cap. */
#ifndef LLM_HANDLERS_H
#define LLM_HANDLERS_H

#include "../buf.h"
#include "../sse.h"

struct request;
struct upstream_request;
struct upstream_result;

void handle_summarize(struct request *rq);
void handle_stream(struct request *rq);
void handle_healthz(struct request *rq);
/* The Anthropic-compatible routes: POST /v1/messages, POST /v1/messages/count_tokens,
 * GET /v1/models (messages.c). */
void handle_messages(struct request *rq);
void handle_count_tokens(struct request *rq);
void handle_models(struct request *rq);
/* The OpenAI-compatible POST /v1/chat/completions (chat.c). */
void handle_chat(struct request *rq);

/* Shared by the handlers that spend upstream tokens: the cross-site check (403). Returns 0 when the
 * request may go on; otherwise it has already answered. */
int handlers_check_origin(struct request *rq);
/* CORS for the origins allowed_origins lists (origin.c): adds Access-Control-Allow-Origin and the
 * exposed headers to whatever the request is answered with, when it comes from such an origin. */
void handlers_cors_headers(struct request *rq);
/* Answers a preflight (OPTIONS with Access-Control-Request-Method) on a known route: from a listed
 * origin 204 with the route's methods and the request headers it asked for; from any other 403;
 * for a method the route does not take 405. */
void handlers_preflight(struct request *rq);

/* ---- shared by the API-compatible handlers (api.c) ---- */

/* The body of an API request is JSON: a missing content type passes, any other gets 415.
 * Returns 0, or -1 when it has answered. */
int api_check_json(struct request *rq);

/* One upstream call relayed to the client. */
struct api_relay {
	struct request *rq;
	int stream;              /* the upstream answers with SSE events, fed to on_event */
	struct sse_decoder dec;
	struct buf body;         /* a whole answer (not streamed), up to max_response_bytes */
	struct buf frame;        /* the frame being sent, reused */
	double last_write;
	int gone;                /* the client left: nothing more can be written */
	int too_large;           /* the answer, or one of its events, over max_response_bytes */
};

/* Calls the upstream with ur. A stream commits the response (200, text/event-stream) when the
 * upstream answers 2xx and hands each upstream event to on_event(arg, ...), whose non-zero return
 * stops the transfer; other answers collect in r->body (an error's body is in res). A client that
 * leaves is noticed while the upstream is silent (then r->gone is set and the request logged as
 * cancelled), and a committed stream gets keep-alive comments. Release r and res after use. */
void api_relay_run(struct api_relay *r, struct request *rq, const struct upstream_request *ur,
		   sse_event_fn on_event, void *arg, struct upstream_result *res);
void api_relay_release(struct api_relay *r);
/* Sends r->frame with one write and one flush. Returns 0, or -1 when the client is gone. */
int api_relay_send(struct api_relay *r);
/* Records the attempts and relays the upstream's request id (request-id and x-request-id) while
 * the headers are open. */
void api_note_upstream(struct request *rq, const struct upstream_result *res);
/* Answers an upstream failure before commit. An upstream error status with the API's error body
 * goes to the client with that status (a 529 stays a 529) and its message, in the Anthropic
 * body as it came or, with openai set, in OpenAI's shape; the upstream's 401/403 (about the
 * server's key, not the client's) and every other failure map as request_fail_upstream says. */
void api_relay_error(struct request *rq, const struct upstream_result *res, int openai);
/* Why a committed stream ended without its last event: an error type and message (static). */
const char *api_failure(const struct api_relay *r, const struct upstream_result *res,
			const char **message);

#endif
