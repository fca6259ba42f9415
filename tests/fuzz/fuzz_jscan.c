/* libFuzzer target for jscan.c. The whole input is one JSON text (copied to its own allocation,
 * so ASan sees any read past it). Checked: jscan_parse agrees with jscan_check, and differs only
 * where json-c's UTF-8 check refuses a text the scan accepted; a text the scan accepts parses,
 * and its tree has no more objects, arrays, members and scalars than the scan counted, at a
 * cost within the budget. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* Adds o's nodes to c (json-c has a JSON null as a NULL value). */
static void count(struct json_object *o, struct jscan_counts *c)
{
	if (json_object_is_type(o, json_type_object)) {
		c->objects++;
		json_object_object_foreach(o, key, v)
		{
			(void)key;
			c->members++;
			count(v, c);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		c->arrays++;
		size_t n = json_object_array_length(o);
		for (size_t i = 0; i < n; i++)
			count(json_object_array_get_idx(o, i), c);
	} else {
		c->scalars++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size ? size : 1);
	CHECK(s);
	memcpy(s, data, size);
	struct jscan_counts c;
	enum jscan_result r = jscan_check(s, size, &c), why;
	struct json_object *o = jscan_parse(s, size, &why);
	if (r != JSCAN_OK) {
		CHECK(why == r && o == NULL);
	} else if (why != JSCAN_OK) {
		/* Only json-c's UTF-8 check can refuse what the scan accepted. */
		int high = 0;
		for (size_t i = 0; i < size; i++)
			high |= data[i] >= 0x80;
		CHECK(why == JSCAN_MALFORMED && o == NULL && high);
	} else {
		struct jscan_counts t = {0};
		count(o, &t);
		/* At most: a duplicate key replaces the earlier member and its value. */
		CHECK(t.objects <= c.objects && t.arrays <= c.arrays && t.members <= c.members &&
		      t.scalars <= c.scalars);
		CHECK(c.cost <= JSCAN_ALLOWANCE + (uint64_t)JSCAN_PER_BYTE * size);
	}
	json_object_put(o);
	free(s);
	return 0;
}
