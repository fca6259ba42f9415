/* fcgi_io: the only module that includes fcgiapp.h. It accepts FastCGI requests on the listening
 * socket (fd 0 when spawned, or one it opens for -s), and serves the single request of a plain
 * CGI invocation, both through struct io. */
#ifndef LLM_FCGI_IO_H
#define LLM_FCGI_IO_H

#include "io.h"

struct fcgi_conn;

/* Initialises libfcgi. Signal handlers the caller installed before this call are kept (libfcgi
 * only replaces default dispositions). Returns 0 or -1. */
int fcgi_io_init(void);
/* 1 when the process was started as plain CGI (fd 0 is not a listening socket). */
int fcgi_io_is_cgi(void);
/* Opens a listening socket: "PATH" (Unix, mode 0660) or "HOST:PORT" (TCP; a bare ":PORT" is
 * bound to 127.0.0.1, never to every address). Returns the fd or -1 with a message in log. */
int fcgi_io_listen(const char *spec, int backlog);

/* A FastCGI connection slot accepting on listen_fd. */
struct fcgi_conn *fcgi_conn_new(int listen_fd);
/* Blocks for the next request (finishing the previous one first). Returns 0, or -1 when the
 * process should stop (shutdown signal, or the socket is gone). *io serves the request. */
int fcgi_conn_accept(struct fcgi_conn *c, struct io *io);
/* Ends the current request (flushes, closes the connection unless kept). */
void fcgi_conn_finish(struct fcgi_conn *c);
void fcgi_conn_free(struct fcgi_conn *c);
/* Asks a blocked accept to return (for a signal handler's flag to take effect). */
void fcgi_io_shutdown_pending(void);

/* The one request of a plain CGI process. */
void fcgi_io_cgi(struct io *io);
/* Ends the CGI request: flushes stdout and drains the rest of the body from stdin. */
void fcgi_io_cgi_finish(struct io *io);

#endif
