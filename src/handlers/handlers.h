/* The endpoint handlers: each answers one route family for a request whose method was checked
 * and whose body was read against the route's cap. */
#ifndef LLM_HANDLERS_H
#define LLM_HANDLERS_H

struct request;

void handle_summarize(struct request *rq);
void handle_stream(struct request *rq);
void handle_healthz(struct request *rq);

/* Shared by the handlers that spend upstream tokens: the cross-site check (403). Returns 0 when the
 * request may go on; otherwise it has already answered. */
int handlers_check_origin(struct request *rq);

#endif
