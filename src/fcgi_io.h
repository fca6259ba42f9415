/* fcgi_io: the only module that includes fcgiapp.h. It accepts FastCGI requests on the listening
 * socket (fd 0 when spawned, or one it opens for -s), and serves the single request of a plain
 * CGI invocation, both through struct io. */
#ifndef LLM_FCGI_IO_H
#define LLM_FCGI_IO_H

#include <signal.h>

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

/* A FastCGI connection slot accepting on listen_fd (which it makes non-blocking: the workers
 * sharing it wait in epoll, and one that loses the race for a connection must not block in
 * accept). Honours FCGI_WEB_SERVER_ADDRS as libfcgi does. */
struct fcgi_conn *fcgi_conn_new(int listen_fd);
/* Waits for the next request (finishing the previous one first). The wait is the only place
 * signals are taken: waitmask is the signal mask during it, so a caller that keeps its signals
 * blocked otherwise has none interrupting a request's reads and writes. Each read from the web
 * server (the params here, the body later) waits at most read_timeout seconds; a peer that stalls
 * loses its connection. Returns 0 with *io serving the request, 1 when a signal arrived (act on
 * it, then call again), -1 when the listening socket is unusable. */
int fcgi_conn_accept(struct fcgi_conn *c, struct io *io, const sigset_t *waitmask, double read_timeout);
/* Ends the current request (flushes, closes the connection unless kept). */
void fcgi_conn_finish(struct fcgi_conn *c);
void fcgi_conn_free(struct fcgi_conn *c);

/* The one request of a plain CGI process. */
void fcgi_io_cgi(struct io *io);
/* Ends the CGI request: flushes stdout and drains the rest of the body from stdin. */
void fcgi_io_cgi_finish(struct io *io);

#endif
