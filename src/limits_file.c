#include "limits_file.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATTERN_MAX 256   /* bytes in a pattern */
#define RULES_MAX 100000  /* lines of rules */
#define VALUE_MAX 1000000000000LL /* rpm, tpm, concurrent */

enum match { MATCH_EXACT, MATCH_PREFIX, MATCH_CIDR };

struct limits_rule {
	char *pattern; /* without the '*' of a prefix, without the /bits of a range */
	size_t len;
	enum match match;
	int family; /* MATCH_CIDR: AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
	struct limits_set set;
};

static const char *const names[LIMITS__COUNT] = {
	[LIMITS_RPM] = "rpm",
	[LIMITS_TPM] = "tpm",
	[LIMITS_CONCURRENT] = "concurrent",
	[LIMITS_USD_DAY] = "usd_per_day",
	[LIMITS_USD_MONTH] = "usd_per_month",
};

const char *limits_name(enum limits_kind k)
{
	return (unsigned)k < LIMITS__COUNT ? names[k] : "?";
}

static void set_fill(struct limits_set *s, long long v)
{
	for (int i = 0; i < LIMITS__COUNT; i++)
		s->v[i] = v;
}

void limits_empty(struct limits *l)
{
	memset(l, 0, sizeof *l);
	set_fill(&l->def, LIMITS_NONE);
	set_fill(&l->server, LIMITS_NONE);
}

void limits_release(struct limits *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->rules[i].pattern);
	free(l->rules);
	limits_empty(l);
}

static int set_any(const struct limits_set *s)
{
	for (int i = 0; i < LIMITS__COUNT; i++)
		if (s->v[i] >= 0)
			return 1;
	return 0;
}

int limits_any(const struct limits *l)
{
	if (set_any(&l->def) || set_any(&l->server))
		return 1;
	for (size_t i = 0; i < l->n; i++)
		if (set_any(&l->rules[i].set))
			return 1;
	return 0;
}

/* ---- numbers ---- */

static int parse_count(const char *s, size_t n, long long *out)
{
	long long v = 0;
	if (n == 0 || n > 13)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > VALUE_MAX)
		return -1;
	*out = v;
	return 0;
}

int limits_parse_usd(const char *s, size_t n, long long *micro)
{
	long long whole = 0, frac = 0;
	size_t i = 0, digits = 0, decimals = 0;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		whole = whole * 10 + (s[i] - '0');
		if (whole > LIMITS_MAX_USD)
			return -1;
	}
	if (i < n && s[i] == '.') {
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, decimals++) {
			if (decimals == 6)
				return -1;
			frac = frac * 10 + (s[i] - '0');
		}
		if (!decimals)
			return -1;
	}
	if (i != n || !digits)
		return -1;
	for (; decimals < 6; decimals++)
		frac *= 10;
	*micro = whole * 1000000 + frac;
	return *micro > LIMITS_MAX_USD * 1000000 ? -1 : 0;
}

void limits_format_usd(long long micro, char *out, size_t cap)
{
	long long whole = micro / 1000000, frac = micro % 1000000;
	int decimals = 6;
	while (decimals > 2 && frac % 10 == 0) {
		frac /= 10;
		decimals--;
	}
	snprintf(out, cap, "%lld.%0*lld", whole, decimals, frac);
}

/* ---- patterns ---- */

static int parse_cidr(struct limits_rule *r, const char *addr, size_t n)
{
	const char *slash = memchr(addr, '/', n);
	char text[64];
	size_t alen = slash ? (size_t)(slash - addr) : n;
	if (alen == 0 || alen >= sizeof text)
		return -1;
	memcpy(text, addr, alen);
	text[alen] = '\0';
	if (inet_pton(AF_INET, text, r->addr) == 1)
		r->family = AF_INET;
	else if (inet_pton(AF_INET6, text, r->addr) == 1)
		r->family = AF_INET6;
	else
		return -1;
	unsigned max = r->family == AF_INET ? 32 : 128;
	long long bits = max;
	if (slash && parse_count(slash + 1, n - alen - 1, &bits) < 0)
		return -1;
	if (bits > max)
		return -1;
	r->bits = (unsigned)bits;
	return 0;
}

static const char *parse_pattern(struct limits_rule *r, const char *p, size_t n)
{
	if (n > PATTERN_MAX)
		return "the pattern is longer than 256 bytes";
	const char *colon = memchr(p, ':', n);
	if (!colon || (strncmp(p, "key:", 4) && strncmp(p, "user:", 5) && strncmp(p, "addr:", 5)))
		return "a pattern is *, server, or starts with key:, user: or addr:";
	if (n > 1 && p[n - 1] == '*') {
		r->match = MATCH_PREFIX;
		n--;
	} else if (strncmp(p, "addr:", 5) == 0 && memchr(p, '/', n)) {
		r->match = MATCH_CIDR;
		if (parse_cidr(r, p + 5, n - 5) < 0)
			return "not an address range (addr:192.0.2.0/24, addr:2001:db8::/32)";
	}
	if (memchr(p, '*', n))
		return "'*' may only end a pattern";
	r->pattern = malloc(n + 1);
	if (!r->pattern)
		abort();
	memcpy(r->pattern, p, n);
	r->pattern[n] = '\0';
	r->len = n;
	return NULL;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, whole) != 0)
		return 0;
	if (!rest)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static int rule_matches(const struct limits_rule *r, const char *who)
{
	switch (r->match) {
	case MATCH_EXACT:
		return strcmp(r->pattern, who) == 0;
	case MATCH_PREFIX:
		return strncmp(r->pattern, who, r->len) == 0;
	case MATCH_CIDR: {
		unsigned char a[16];
		if (strncmp(who, "addr:", 5) != 0 || inet_pton(r->family, who + 5, a) != 1)
			return 0;
		return prefix_match(a, r->addr, r->bits);
	}
	}
	return 0;
}

#define LIST_SEPARATORS " ,\t"

int limits_addr_listed(const char *list, const char *addr)
{
	struct limits_rule r;
	for (const char *p = list ? list : ""; *(p += strspn(p, LIST_SEPARATORS));) {
		size_t n = strcspn(p, LIST_SEPARATORS);
		memset(&r, 0, sizeof r);
		int ok = parse_cidr(&r, p, n) == 0;
		p += n;
		if (!ok)
			continue;
		unsigned char a[16];
		if (inet_pton(r.family, addr, a) == 1 && prefix_match(a, r.addr, r.bits))
			return 1;
	}
	return 0;
}

const char *limits_check_addr_list(const char *list)
{
	struct limits_rule r;
	for (const char *p = list; *(p += strspn(p, LIST_SEPARATORS));) {
		size_t n = strcspn(p, LIST_SEPARATORS);
		if (parse_cidr(&r, p, n) < 0)
			return "must be addresses or ranges (192.0.2.1, 10.0.0.0/8, ::1), separated by "
			       "blanks or commas";
		p += n;
	}
	return NULL;
}

/* ---- lines ---- */

static const char *parse_pair(struct limits_set *s, const char *p, size_t n)
{
	const char *eq = memchr(p, '=', n);
	if (!eq)
		return "expected name=value";
	size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
	const char *v = eq + 1;
	for (int k = 0; k < LIMITS__COUNT; k++) {
		if (strlen(names[k]) != klen || memcmp(names[k], p, klen) != 0)
			continue;
		if (s->v[k] != LIMITS_UNSET)
			return "a limit is named twice";
		if (vlen == 4 && memcmp(v, "none", 4) == 0) {
			s->v[k] = LIMITS_NONE;
			return NULL;
		}
		int bad = k >= LIMITS_USD_DAY ? limits_parse_usd(v, vlen, &s->v[k])
					       : parse_count(v, vlen, &s->v[k]);
		if (bad)
			return k >= LIMITS_USD_DAY
				? "a budget is dollars with at most 6 decimals (0.50), or none"
				: "a limit is a whole number, or none";
		return NULL;
	}
	return "unknown limit (rpm, tpm, concurrent, usd_per_day, usd_per_month)";
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The next blank-separated word of [*p, end), or 0 at the end or a comment. */
static size_t next_word(const char **p, const char *end, const char **word)
{
	while (*p < end && is_blank(**p))
		(*p)++;
	if (*p == end || **p == '#')
		return 0;
	*word = *p;
	while (*p < end && !is_blank(**p))
		(*p)++;
	return (size_t)(*p - *word);
}

static const char *parse_line(struct limits *l, const char *p, const char *end)
{
	const char *w;
	size_t n = next_word(&p, end, &w);
	if (!n)
		return NULL;
	for (const char *c = p; c < end; c++)
		if ((unsigned char)*c < 0x20 && !is_blank(*c))
			return "control character";
	struct limits_rule r;
	memset(&r, 0, sizeof r);
	set_fill(&r.set, LIMITS_UNSET);
	struct limits_set *target = &r.set;
	const char *why = NULL;
	int deflt = n == 1 && *w == '*';
	int special = deflt || (n == 6 && memcmp(w, "server", 6) == 0);
	if (!special && (why = parse_pattern(&r, w, n)) != NULL)
		return why;
	while (!why && (n = next_word(&p, end, &w)) != 0)
		why = parse_pair(target, w, n);
	if (!why && !special && l->n >= RULES_MAX)
		why = "too many rules";
	if (why) {
		free(r.pattern);
		return why;
	}
	if (special) {
		struct limits_set *dst = deflt ? &l->def : &l->server;
		for (int k = 0; k < LIMITS__COUNT; k++)
			if (r.set.v[k] != LIMITS_UNSET)
				dst->v[k] = r.set.v[k];
		return NULL;
	}
	struct limits_rule *grown = realloc(l->rules, (l->n + 1) * sizeof *grown);
	if (!grown)
		abort();
	l->rules = grown;
	l->rules[l->n++] = r;
	return NULL;
}

int limits_parse(struct limits *l, const char *text, size_t len, struct buf *err)
{
	limits_empty(l);
	if (len > LIMITS_FILE_MAX) {
		buf_note(err, "the file is larger than %d bytes", LIMITS_FILE_MAX);
		return -1;
	}
	const char *p = text, *end = text + len;
	for (unsigned long line = 1; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		const char *why = memchr(p, '\0', (size_t)(eol - p)) ? "NUL byte"
								     : parse_line(l, p, eol);
		if (why) {
			buf_note(err, "line %lu: %s", line, why);
			limits_release(l);
			return -1;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

void limits_for(const struct limits *l, const char *who, struct limits_set *out)
{
	*out = l->def;
	for (size_t i = 0; i < l->n; i++) {
		const struct limits_rule *r = &l->rules[i];
		if (!rule_matches(r, who))
			continue;
		for (int k = 0; k < LIMITS__COUNT; k++)
			if (r->set.v[k] != LIMITS_UNSET)
				out->v[k] = r->set.v[k];
		return;
	}
}

/* ---- periods ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil): timegm
 * is not C11, and this is exact for every year a time_t here can hold. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

void limits_when(time_t now, struct limits_when *w)
{
	struct tm tm;
	gmtime_r(&now, &tm);
	long long y = tm.tm_year + 1900, ym = y * 100 + tm.tm_mon + 1;
	unsigned next = (unsigned)tm.tm_mon + 2;
	w->bucket[LIMITS_MINUTE] = (long long)(now / 60);
	w->end[LIMITS_MINUTE] = (long long)(now / 60 + 1) * 60;
	w->bucket[LIMITS_DAY] = ym * 100 + tm.tm_mday;
	w->end[LIMITS_DAY] =
		(days_from_civil(y, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday) + 1) * 86400;
	w->bucket[LIMITS_MONTH] = ym;
	w->end[LIMITS_MONTH] = days_from_civil(next == 13 ? y + 1 : y, next == 13 ? 1 : next, 1) * 86400;
}

long long limits_bucket(enum limits_period p, time_t now)
{
	struct limits_when w;
	limits_when(now, &w);
	return w.bucket[p];
}

time_t limits_period_end(enum limits_period p, time_t now)
{
	struct limits_when w;
	limits_when(now, &w);
	return (time_t)w.end[p];
}

enum limits_period limits_period_of(enum limits_kind k)
{
	switch (k) {
	case LIMITS_USD_DAY:
		return LIMITS_DAY;
	case LIMITS_USD_MONTH:
		return LIMITS_MONTH;
	default:
		return LIMITS_MINUTE;
	}
}
