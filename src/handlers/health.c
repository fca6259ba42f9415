#include "handlers.h"

#include <json-c/json.h>

#include "../pool.h"
#include "../request.h"

/* Answers without touching the upstream: a health check must not spend tokens or depend on the
 * remote API being up. */
void handle_healthz(struct request *rq)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ok"));
	if (rq->srv->shared) {
		/* With blocking workers a full pool leaves requests waiting in the backlog: say so. */
		struct json_object *w = json_object_new_object();
		json_object_object_add(w, "busy", json_object_new_int64(pool_busy(rq->srv->shared)));
		json_object_object_add(w, "total", json_object_new_int64(pool_total(rq->srv->shared)));
		json_object_object_add(o, "workers", w);
	}
	response_json(&rq->resp, 200, o);
	json_object_put(o);
}
