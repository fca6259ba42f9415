#include "err.h"

#include <stddef.h>

static const struct {
	const char *name;
	int status;
	const char *type[DIALECT__COUNT];
} table[ERR__COUNT] = {
	[ERR_OK] = {"ok", 200, {"", "", ""}},
	[ERR_BAD_REQUEST] = {"bad_request", 400,
		{"invalid_request_error", "invalid_request_error", "invalid_request_error"}},
	[ERR_UNAUTHORIZED] = {"unauthorized", 401,
		{"authentication_error", "authentication_error", "invalid_request_error"}},
	[ERR_FORBIDDEN] = {"forbidden", 403,
		{"permission_error", "permission_error", "invalid_request_error"}},
	[ERR_NOT_FOUND] = {"not_found", 404,
		{"not_found_error", "not_found_error", "invalid_request_error"}},
	[ERR_METHOD] = {"method_not_allowed", 405,
		{"invalid_request_error", "invalid_request_error", "invalid_request_error"}},
	/* A header the client chose, like 405 and 415: the type those have. */
	[ERR_NOT_ACCEPTABLE] = {"not_acceptable", 406,
		{"invalid_request_error", "invalid_request_error", "invalid_request_error"}},
	[ERR_TOO_LARGE] = {"too_large", 413,
		{"request_too_large", "request_too_large", "invalid_request_error"}},
	[ERR_MEDIA_TYPE] = {"unsupported_media_type", 415,
		{"invalid_request_error", "invalid_request_error", "invalid_request_error"}},
	[ERR_RATE_LIMIT] = {"rate_limited", 429,
		{"rate_limit_error", "rate_limit_error", "rate_limit_exceeded"}},
	[ERR_OVERLOADED] = {"overloaded", 503,
		{"overloaded_error", "overloaded_error", "server_error"}},
	[ERR_POOL_FULL] = {"pool_full", 503,
		{"overloaded_error", "overloaded_error", "server_error"}},
	[ERR_UPSTREAM] = {"upstream_error", 502, {"api_error", "api_error", "server_error"}},
	[ERR_UPSTREAM_AUTH] = {"upstream_auth", 502, {"api_error", "api_error", "server_error"}},
	[ERR_TIMEOUT] = {"timeout", 504, {"timeout_error", "timeout_error", "timeout"}},
	[ERR_INTERNAL] = {"internal", 500, {"api_error", "api_error", "server_error"}},
	[ERR_CANCELLED] = {"cancelled", 499, {"cancelled", "cancelled", "cancelled"}},
};

int err_status(enum err_kind kind)
{
	return (unsigned)kind < ERR__COUNT ? table[kind].status : 500;
}

const char *err_type(enum err_kind kind, enum dialect d)
{
	if ((unsigned)kind >= ERR__COUNT || (unsigned)d >= DIALECT__COUNT)
		return "api_error";
	return table[kind].type[d];
}

const char *err_name(enum err_kind kind)
{
	return (unsigned)kind < ERR__COUNT ? table[kind].name : "unknown";
}

const char *err_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 499: return "Client Closed Request";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 529: return "Overloaded";
	default: return "Unknown";
	}
}
