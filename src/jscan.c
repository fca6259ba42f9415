#include "jscan.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "hex.h"

/* Estimated json-c 0.16 heap per node, rounded up from a measurement (malloc's own accounting
 * over 100,000 of each): an object is a json_object and a 16-slot hash table (~790 bytes), a
 * member its key copy and entry, an array a json_object and a 32-slot list (~150), a scalar a
 * json_object (72 to 104; strings add their bytes, which the per-byte budget covers). */
#define COST_OBJECT 1024u
#define COST_MEMBER 128u
#define COST_ARRAY 256u
#define COST_SCALAR 128u

_Static_assert(JSCAN_DEPTH <= 64, "the container stack is the bits of a uint64_t");

/* What the next token may be. */
enum expect {
	X_VALUE,          /* after ':' or an array's ',', or at the start */
	X_VALUE_OR_CLOSE, /* after '[' */
	X_KEY,            /* after an object's ',' */
	X_KEY_OR_CLOSE,   /* after '{' */
	X_COLON,          /* after a key */
	X_AFTER,          /* after a value: ',', a close, or the end */
};

struct scan {
	const unsigned char *p;
	size_t i, n;
	unsigned depth;
	uint64_t objects; /* bit d-1 set: the container at depth d is an object */
	uint64_t cost, budget;
	struct jscan_counts c;
};

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* p[i] is the opening quote: moves past the closing one. Raw control characters (U+0000 to
 * U+001F) must be escaped in JSON; an unknown escape is an error. */
static int scan_string(struct scan *s)
{
	const unsigned char *p = s->p;
	size_t i = s->i + 1, n = s->n;
	for (;;) {
		while (i < n && p[i] != '"' && p[i] != '\\' && p[i] >= 0x20)
			i++;
		if (i >= n || p[i] < 0x20)
			return -1;
		if (p[i] == '"')
			break;
		if (++i >= n)
			return -1;
		unsigned char e = p[i++];
		if (e == 'u') {
			for (int k = 0; k < 4; k++, i++)
				if (i >= n || hex_value(p[i]) < 0)
					return -1;
		} else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
			   e != 'r' && e != 't') {
			return -1;
		}
	}
	s->i = i + 1;
	return 0;
}

/* Moves past one or more digits at p[i]; -1 when there is none. */
static int digits(struct scan *s)
{
	size_t start = s->i;
	while (s->i < s->n && is_digit(s->p[s->i]))
		s->i++;
	return s->i > start ? 0 : -1;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(struct scan *s)
{
	if (s->p[s->i] == '-')
		s->i++;
	if (s->i < s->n && s->p[s->i] == '0')
		s->i++;
	else if (digits(s) < 0)
		return -1;
	if (s->i < s->n && s->p[s->i] == '.') {
		s->i++;
		if (digits(s) < 0)
			return -1;
	}
	if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
		s->i++;
		if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
			s->i++;
		if (digits(s) < 0)
			return -1;
	}
	return 0;
}

static int scan_literal(struct scan *s)
{
	static const char *const words[] = {"true", "false", "null"};
	for (size_t w = 0; w < 3; w++) {
		size_t k = 0;
		while (words[w][k] && s->i + k < s->n && s->p[s->i + k] == (unsigned char)words[w][k])
			k++;
		if (!words[w][k]) {
			s->i += k;
			return 0;
		}
	}
	return -1;
}

/* Adds a node's cost; -1 once the total is over the budget. */
static int spend(struct scan *s, size_t *count, unsigned cost)
{
	(*count)++;
	s->cost += cost;
	return s->cost > s->budget ? -1 : 0;
}

/* Reads the value at p[i] and says what may follow it. */
static enum jscan_result value(struct scan *s, enum expect *next)
{
	unsigned char c = s->p[s->i];
	int bad;
	*next = X_AFTER;
	if (c == '{' || c == '[') {
		if (s->depth == JSCAN_DEPTH)
			return JSCAN_MALFORMED;
		int obj = c == '{';
		s->i++;
		s->objects = (s->objects & ~(UINT64_C(1) << s->depth)) |
			     ((uint64_t)obj << s->depth);
		s->depth++;
		*next = obj ? X_KEY_OR_CLOSE : X_VALUE_OR_CLOSE;
		if (obj ? spend(s, &s->c.objects, COST_OBJECT) : spend(s, &s->c.arrays, COST_ARRAY))
			return JSCAN_COSTLY;
		return JSCAN_OK;
	}
	if (c == '"')
		bad = scan_string(s);
	else if (c == '-' || is_digit(c))
		bad = scan_number(s);
	else
		bad = scan_literal(s);
	if (bad)
		return JSCAN_MALFORMED;
	return spend(s, &s->c.scalars, COST_SCALAR) ? JSCAN_COSTLY : JSCAN_OK;
}

/* An object member's key. */
static enum jscan_result key(struct scan *s, enum expect *next)
{
	if (s->p[s->i] != '"' || scan_string(s) < 0)
		return JSCAN_MALFORMED;
	*next = X_COLON;
	return spend(s, &s->c.members, COST_MEMBER) ? JSCAN_COSTLY : JSCAN_OK;
}

static int top_is_object(const struct scan *s)
{
	return (int)(s->objects >> (s->depth - 1) & 1);
}

/* One token after blanks, in state *x. */
static enum jscan_result step(struct scan *s, enum expect *x)
{
	unsigned char c = s->p[s->i];
	switch (*x) {
	case X_VALUE_OR_CLOSE:
	case X_KEY_OR_CLOSE:
		if (c == (*x == X_KEY_OR_CLOSE ? '}' : ']')) {
			s->i++;
			s->depth--;
			*x = X_AFTER;
			return JSCAN_OK;
		}
		return *x == X_VALUE_OR_CLOSE ? value(s, x) : key(s, x);
	case X_KEY:
		return key(s, x);
	case X_COLON:
		if (c != ':')
			return JSCAN_MALFORMED;
		s->i++;
		*x = X_VALUE;
		return JSCAN_OK;
	case X_VALUE:
		return value(s, x);
	case X_AFTER:
		break;
	}
	if (s->depth == 0)
		return JSCAN_MALFORMED; /* something after the whole value */
	int obj = top_is_object(s);
	s->i++;
	if (c == ',') {
		*x = obj ? X_KEY : X_VALUE;
		return JSCAN_OK;
	}
	if (c != (obj ? '}' : ']'))
		return JSCAN_MALFORMED;
	s->depth--;
	return JSCAN_OK;
}

enum jscan_result jscan_check(const char *text, size_t len, struct jscan_counts *counts)
{
	struct scan s = {.p = (const unsigned char *)text, .n = len};
	s.budget = JSCAN_ALLOWANCE + (uint64_t)JSCAN_PER_BYTE * len;
	enum expect x = X_VALUE;
	enum jscan_result r = JSCAN_OK;
	for (;;) {
		while (s.i < len && jscan_space(s.p[s.i]))
			s.i++;
		if (s.i == len) {
			if (x != X_AFTER || s.depth != 0)
				r = JSCAN_MALFORMED; /* empty, or cut short */
			break;
		}
		if ((r = step(&s, &x)) != JSCAN_OK)
			break;
	}
	s.c.cost = (size_t)s.cost;
	if (counts)
		*counts = s.c;
	return r;
}

/* Texts up to this long share the process's tokener; a longer one gets its own, freed after:
 * a tokener keeps the buffer its longest string needed, and a worker must not hold on to
 * megabytes for the rest of its life because one request carried an image. */
#define SHARED_TOKENER_MAX (64u << 10)

static struct json_tokener *new_strict_tokener(void)
{
	/* One level of slack: the scan is the depth limit that counts. */
	struct json_tokener *tok = json_tokener_new_ex(JSCAN_DEPTH + 2);
	if (!tok)
		abort(); /* out of memory: the xmalloc policy */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	return tok;
}

/* One strict tokener per process, reset before each use: allocating one (a zeroed kilobyte and
 * its buffer) was a seventh of the cost of checking and parsing a small request body. Workers are
 * single-threaded; it lives as long as the process. */
static struct json_tokener *shared_strict_tokener(void)
{
	static struct json_tokener *tok;
	if (!tok)
		tok = new_strict_tokener();
	else
		json_tokener_reset(tok); /* keeps the flags */
	return tok;
}

struct json_object *jscan_parse(const char *s, size_t len, enum jscan_result *why)
{
	enum jscan_result r = len > INT_MAX ? JSCAN_COSTLY : jscan_check(s, len, NULL);
	struct json_object *o = NULL;
	if (r == JSCAN_OK) {
		int shared = len <= SHARED_TOKENER_MAX;
		struct json_tokener *tok = shared ? shared_strict_tokener() : new_strict_tokener();
		o = json_tokener_parse_ex(tok, s, (int)len);
		/* A bare top-level number or literal could go on for json-c: a blank ends it. */
		if (json_tokener_get_error(tok) == json_tokener_continue)
			o = json_tokener_parse_ex(tok, " ", 1);
		/* The scan allowed nothing but blanks after the value, which json-c consumes or
		 * leaves; only its verdict on the value itself matters here. */
		if (json_tokener_get_error(tok) != json_tokener_success) {
			json_object_put(o);
			o = NULL;
			r = JSCAN_MALFORMED;
		}
		if (!shared)
			json_tokener_free(tok);
	}
	if (why)
		*why = r;
	return o;
}
