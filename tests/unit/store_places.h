/* store_places: taking a place among a name's holders and giving it back, as the store tests
 * (test_store, test_store_redis) ask for them: one-operation batches. */
#ifndef LLM_TEST_STORE_PLACES_H
#define LLM_TEST_STORE_PLACES_H

#include "store.h"

static enum store_result acquire(struct store *s, const char *name, unsigned limit, int *taken,
				 unsigned *holders)
{
	struct store_op op = {.kind = STORE_OP_ACQUIRE, .name = name, .limit = limit};
	size_t refused;
	enum store_result rc = store_batch(s, &op, 1, &refused);
	*taken = rc == STORE_OK && refused == 1;
	*holders = (unsigned)op.value;
	return rc;
}

static void release(struct store *s, const char *name)
{
	struct store_op op = {.kind = STORE_OP_RELEASE, .name = name};
	size_t refused;
	store_batch(s, &op, 1, &refused);
}

#endif
