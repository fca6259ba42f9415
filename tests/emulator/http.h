/*
 * http: HTTP/1.1 connection handling.  Owns the epoll loop, the listening
 * socket's events (paused while descriptors run out), the list of open
 * connections, reading request heads and bodies (Content-Length or chunked,
 * Expect: 100-continue, size caps answered with 431/413), keep-alive and
 * pipelining, the lingering close, routing (the /stats endpoints here, /v1 to
 * the Messages API) and the request log.  Depends on api, stream, conn,
 * stats and util.
 */
#ifndef EMU_HTTP_H
#define EMU_HTTP_H

#include <stdio.h>

/*
 * Serves listen_fd (listening, non-blocking) until signal_fd (a signalfd for
 * SIGTERM/SIGINT) is readable, then closes every connection.  log gets one
 * line per request (NULL: no log).  The caller still owns both descriptors.
 */
void http_serve(int listen_fd, int signal_fd, FILE *log);

#endif
