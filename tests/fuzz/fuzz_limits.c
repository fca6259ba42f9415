/* libFuzzer target for the limits file parser: any text parses or fails with "line N: ...",
 * never crashes or leaks; what parses answers limits_for for a few identities. */
#include "limits_file.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const who[] = {"key:alice", "user:bob", "addr:10.1.2.3",
					  "addr:2001:db8::1", "addr:unknown"};
	struct limits l;
	struct buf err;
	buf_init(&err, 4096);
	if (limits_parse(&l, (const char *)data, size, &err) == 0) {
		for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
			struct limits_set s;
			limits_for(&l, who[i], &s);
			for (int k = 0; k < LIMITS__COUNT; k++)
				if (s.v[k] < LIMITS_NONE)
					abort(); /* an unset limit leaked out */
		}
		limits_release(&l);
	} else if (strncmp(buf_cstr(&err), "line ", 5) != 0 &&
		   strncmp(buf_cstr(&err), "the file", 8) != 0) {
		abort();
	}
	buf_release(&err);
	return 0;
}
