/* serve: one request from the web server to the access log line, the top of the stack.
 *
 * Reads the CGI parameters, finds the route, checks the method and the client key, reads the body
 * against the route's cap and calls the route's handler: request -> route -> handler -> relay. */
#ifndef LLM_SERVE_H
#define LLM_SERVE_H

#include "io.h"
#include "request.h"

void serve_request(struct server *srv, struct io *io);

#endif
