/* jx: the json-c lookups every module that reads JSON needs. Results are borrowed from o. */
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
