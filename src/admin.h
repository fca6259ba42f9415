/* admin: the operator's commands on the counters of a stopped or running server.
 *
 *   llm-fcgi usage [--by who|model|day] [--since YYYY-MM-DD] [--json] [-f FILE] [-o K=V]
 *   llm-fcgi budget WHO reset [day|month]
 *   llm-fcgi budget WHO raise USD [day|month]
 *
 * usage prints spend and tokens from the state file or the store (the counters "u|..." spend.c
 * keeps per day, identity and model), as a table or JSON; budget resets one identity's (or the
 * server's, WHO = "*") spend of the current period, or lets it spend USD more in it. */
#ifndef LLM_ADMIN_H
#define LLM_ADMIN_H

#include <stdio.h>

#include "config.h"

struct store;

/* Opens the store the configuration names (Redis, the state file, or with neither NULL and a
 * message: the pool's memory is no one else's to read). */
struct store *admin_open_store(const struct config *cfg, struct buf *err);

/* The commands: argv[0] is "usage" or "budget"; options already consumed by the caller are
 * not in argv. Return the exit code. */
int admin_usage(struct store *st, int argc, char **argv, FILE *out);
int admin_budget(struct store *st, int argc, char **argv, FILE *out);

#endif
