/* err: the kinds of failure a request can end in, and one table that maps each kind to an HTTP
 * status and an error type string per dialect (our own JSON endpoints, the Anthropic-compatible
 * /v1/messages, the OpenAI-compatible /v1/chat/completions). The dialect is chosen from the route
 * before the body is read, so every error of a request answers in one shape. */
#ifndef LLM_ERR_H
#define LLM_ERR_H

enum err_kind {
	ERR_OK = 0,
	ERR_BAD_REQUEST,    /* malformed JSON, missing/empty/non-string text, invalid UTF-8 */
	ERR_UNAUTHORIZED,   /* client key missing or not listed */
	ERR_FORBIDDEN,      /* cross-site request */
	ERR_NOT_FOUND,      /* unknown route */
	ERR_METHOD,         /* method not allowed on a known route */
	ERR_NOT_ACCEPTABLE, /* GET /stream without Accept: text/event-stream */
	ERR_TOO_LARGE,      /* body over the route's limit */
	ERR_MEDIA_TYPE,     /* unsupported content type */
	ERR_RATE_LIMIT,     /* upstream 429 after retries */
	ERR_OVERLOADED,     /* upstream 529 after retries */
	ERR_POOL_FULL,      /* every worker busy and when_full = shed */
	ERR_UPSTREAM,       /* refused, unreachable, invalid answer, 5xx */
	ERR_UPSTREAM_AUTH,  /* upstream rejected the server's credentials (401/403) */
	ERR_TIMEOUT,        /* first-byte, idle or total timeout */
	ERR_INTERNAL,       /* a bug or an impossible state */
	ERR_CANCELLED,      /* the client went away: nothing more is written (logged as 499) */
	ERR__COUNT
};

enum dialect {
	DIALECT_NATIVE = 0, /* {"error":{"type","message"}} */
	DIALECT_ANTHROPIC,  /* {"type":"error","error":{"type","message"}} */
	DIALECT_OPENAI,     /* {"error":{"message","type","param","code"}} */
	DIALECT__COUNT
};

int err_status(enum err_kind kind);
const char *err_type(enum err_kind kind, enum dialect d);
/* The reason phrase for a status line ("Not Found"); "Unknown" for codes we never send. */
const char *err_reason(int status);
/* A short name for logs ("bad_request"). */
const char *err_name(enum err_kind kind);

#endif
