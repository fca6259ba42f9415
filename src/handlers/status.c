/* The operator's routes, whose paths come from the configuration (metrics_path, status_path):
 * the Prometheus exposition and the pool's JSON status, both for metrics_allow only. */
#include "handlers.h"

#include <json-c/json.h>
#include <string.h>

#include "../metrics.h"
#include "../request.h"

#define EXPOSE_MAX (16 << 20) /* bytes: state_counters at its largest, ~100 bytes a series */

static int allowed(struct request *rq)
{
	if (metrics_allowed(rq))
		return 1;
	log_info("metrics or status refused: the client is not in metrics_allow");
	request_fail(rq, ERR_FORBIDDEN, "This address may not read the metrics or the status");
	return 0;
}

void handle_metrics(struct request *rq)
{
	if (!allowed(rq))
		return;
	struct buf out;
	buf_init(&out, EXPOSE_MAX);
	if (metrics_expose(rq, &out) < 0)
		request_fail(rq, ERR_INTERNAL, "The metrics are larger than this server sends");
	else
		response_send(&rq->resp, 200, "text/plain; version=0.0.4; charset=utf-8",
			      out.data ? out.data : "", out.len);
	buf_release(&out);
}

/* ?full, alone or among other parameters, as php-fpm's status page takes it. */
static int wants_full(const char *query)
{
	size_t n = strlen("full");
	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
		if (!strncmp(p, "full", n) && (p[n] == '\0' || p[n] == '&' || p[n] == '='))
			return 1;
	return 0;
}

void handle_status(struct request *rq)
{
	if (!allowed(rq))
		return;
	struct json_object *o = metrics_status(rq, wants_full(io_param(rq->io, "QUERY_STRING")));
	response_add_header(&rq->resp, "Cache-Control", "no-store");
	response_json(&rq->resp, 200, o);
	json_object_put(o);
}
