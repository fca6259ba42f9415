/* io: the small interface a request is served through.
 *
 * fcgi_io implements it over libfcgi (one FCGX_Request) and over plain CGI (environment, stdin,
 * stdout); the unit tests implement it over memory. Nothing above this layer knows which. */
#ifndef LLM_IO_H
#define LLM_IO_H

#include <stddef.h>
#include <sys/types.h>

struct io_ops {
	/* A CGI/FastCGI parameter ("REQUEST_METHOD", "HTTP_ACCEPT"), or NULL. Valid for the request. */
	const char *(*param)(void *ctx, const char *name);
	/* Reads up to n body bytes: > 0 bytes read, 0 at the end of the body, -1 on a broken stream. */
	ssize_t (*read)(void *ctx, char *p, size_t n);
	/* Queues n bytes for the client: 0, or -1 when the client is gone. */
	int (*write)(void *ctx, const char *p, size_t n);
	/* Sends what is queued now: 0, or -1 when the client is gone. */
	int (*flush)(void *ctx);
	/* Non-blocking: 1 when the web server has closed the connection (the client left). */
	int (*client_gone)(void *ctx);
	/* A descriptor that becomes readable or errors when the client leaves, or -1 (for poll). */
	int (*watch_fd)(void *ctx);
	/* 1 when plain CGI: the body must be read by CONTENT_LENGTH, not to EOF. */
	int is_cgi;
};

struct io {
	const struct io_ops *ops;
	void *ctx;
};

static inline const char *io_param(const struct io *io, const char *name)
{
	return io->ops->param(io->ctx, name);
}

#endif
