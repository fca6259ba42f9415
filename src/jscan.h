/* jscan: the one strict parse of JSON that arrives from outside (pure).
 *
 * json-c builds a whole tree, and a tree costs far more than its text: an empty object is 3 bytes
 * of `[{},{},...]` and about 800 bytes of heap, so a 4 MB body became a 1 GB worker. json-c's
 * "strict" mode is also not RFC 8259: it takes raw control characters inside strings,
 * single-quoted keys, NaN, Infinity and "1.". So every body is first checked here in one pass
 * over its bytes, without allocating: RFC 8259 syntax, nothing but blanks after the value, no
 * NUL byte, nesting at most JSCAN_DEPTH, and an estimate of what its tree will cost that must
 * stay within JSCAN_ALLOWANCE + JSCAN_PER_BYTE x its length. Only then does json-c parse it
 * (with UTF-8 validation). */
#ifndef LLM_JSCAN_H
#define LLM_JSCAN_H

#include <stddef.h>

struct json_object;

/* Deeper than any sane request; past it the scan fails without recursing. */
#define JSCAN_DEPTH 64

/* The tree-cost budget, in estimated bytes of json-c heap (the costs are jscan.c's, measured
 * with json-c 0.16 and rounded up): a fixed allowance so that small, highly structured bodies
 * (tool schemas, many short turns) pass, plus a small multiple of the body's length. */
#define JSCAN_ALLOWANCE (16u << 20)
#define JSCAN_PER_BYTE 8u

enum jscan_result {
	JSCAN_OK = 0,
	JSCAN_MALFORMED, /* not RFC 8259 JSON (or too deep, or a NUL byte): a 400 */
	JSCAN_COSTLY,    /* valid so far, but its tree would cost more than the budget: a 413 */
};

/* What a scan saw (of a whole text when it returned JSCAN_OK). */
struct jscan_counts {
	size_t objects, arrays, members, scalars; /* scalars: strings, numbers, true/false/null */
	size_t cost;                              /* the estimated heap cost of the tree */
};

/* 1 for the four blanks RFC 8259 allows between tokens (c is a byte value). */
static inline int jscan_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Scans s[0..len). counts may be NULL. */
enum jscan_result jscan_check(const char *s, size_t len, struct jscan_counts *counts);

/* Checks s[0..len) with jscan_check, then parses it with json-c. Returns the new tree (caller
 * puts) and sets *why (why may be NULL): JSCAN_OK (the text null is a NULL tree, as json-c has
 * it), or the reason for NULL. A text that passes the scan but not json-c (invalid UTF-8) is
 * JSCAN_MALFORMED. */
struct json_object *jscan_parse(const char *s, size_t len, enum jscan_result *why);

#endif
