/* jx: the json-c lookups every module that reads JSON needs. Results are borrowed from o.
 *
 * json-c ownership, once for the project:
 * - json_object_new_*, json_tokener_parse_ex and jscan_parse return a new reference owned by the
 *   caller; one json_object_put on a root frees every node under it.
 * - json_object_object_add and json_object_array_add take over the value's reference (no put
 *   after adding).
 * - json_object_object_get_ex and json_object_array_get_idx borrow: the pointers, and the bytes
 *   json_object_get_string points at, die with the tree, so text that must outlive it is copied
 *   out first. get_ex yields a NULL value for a JSON null.
 * - json_object_get adds a reference: that is how a borrowed value of one tree (the client's)
 *   goes into another (the upstream request) and still belongs to its owner after the put on the
 *   other's root. */
#ifndef LLM_JX_H
#define LLM_JX_H

#include <json-c/json.h>

/* The string at key, or NULL when absent or not a string. */
static inline const char *jx_string(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

#endif
