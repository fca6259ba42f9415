/* faults: see faults.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif

#include "faults.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct fault_spec {
	const char *name;
	enum fault f;
	long min, max; /* argument range; max == 0: the fault takes no argument */
} FAULTS[] = {
	{ "echo-key", F_ECHO_KEY, 0, 0 },
	{ "hang", F_HANG, 0, 0 },
	{ "garbage", F_GARBAGE, 0, 0 },
	{ "truncated-json", F_TRUNC_JSON, 0, 0 },
	{ "crlf", F_CRLF, 0, 0 },
	{ "cr", F_CR, 0, 0 },
	{ "split", F_SPLIT, 0, 0 },
	{ "unknown-event", F_UNKNOWN_EVENT, 0, 0 },
	{ "slow-first", F_SLOW_FIRST, 0, MS_MAX },
	{ "cut", F_CUT, 0, COUNT_MAX },
	{ "error-mid", F_ERROR_MID, 0, COUNT_MAX },
	{ "drip", F_DRIP, 0, MS_MAX },
	{ "huge", F_HUGE, 1, HUGE_MAX },
};
#define NFAULTS (sizeof FAULTS / sizeof FAULTS[0])

void faults_init(struct opts *o)
{
	memset(o, 0, sizeof *o);
	o->times = o->words = o->delay_ms = o->ttft_ms = o->thinking = -1;
	o->fault = F_NONE;
	o->should_retry = -1;
}

size_t faults_marker_len(const char *s, size_t n)
{
	const char *e;

	if (n < 8 || s[0] != '[' || memcmp(s, "[[emu:", 6) != 0)
		return 0;
	e = memmem(s + 6, n - 6, "]]", 2);
	return e ? (size_t)(e - s) + 2 : 0;
}

static bool key_is(const char *k, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(k, name, n) == 0;
}

static bool opt_id(struct opts *o, const char *v, size_t n)
{
	if (n == 0 || n > ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && !strchr("_.-", v[i]))
			return false;
	memcpy(o->id, v, n);
	o->id[n] = '\0';
	return true;
}

/* A retry header value: digits with at most one '.', copied verbatim. */
static bool opt_decimal(char *dst, size_t size, const char *v, size_t n)
{
	size_t digits = 0, dots = 0;

	if (n == 0 || n >= size)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '.')
			dots++;
		else if (v[i] >= '0' && v[i] <= '9')
			digits++;
		else
			return false;
	}
	if (!digits || dots > 1)
		return false;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return true;
}

static bool opt_fault(struct opts *o, const char *v, size_t n)
{
	const char *colon = memchr(v, ':', n);
	size_t name_len = colon ? (size_t)(colon - v) : n;
	long code;

	if (parse_long(v, n, 400, 599, &code)) {
		o->fault = F_STATUS;
		o->arg = code;
		return true;
	}
	for (size_t i = 0; i < NFAULTS; i++) {
		const struct fault_spec *s = &FAULTS[i];

		if (!key_is(v, name_len, s->name))
			continue;
		if (!s->max) {
			if (colon)
				return false;
			o->arg = 0;
		} else if (!colon ||
			   !parse_long(colon + 1, n - name_len - 1, s->min, s->max, &o->arg)) {
			return false;
		}
		o->fault = s->f;
		return true;
	}
	return false;
}

static bool opt_item(struct opts *o, const char *it, size_t n)
{
	const char *eq = memchr(it, '=', n);
	const char *v;
	size_t kn, vn;

	if (!eq)
		return false;
	kn = (size_t)(eq - it);
	v = eq + 1;
	vn = n - kn - 1;
	if (key_is(it, kn, "id"))
		return opt_id(o, v, vn);
	if (key_is(it, kn, "times"))
		return parse_long(v, vn, 0, COUNT_MAX, &o->times);
	if (key_is(it, kn, "words"))
		return parse_long(v, vn, 0, WORDS_MAX, &o->words);
	if (key_is(it, kn, "delay"))
		return parse_long(v, vn, 0, MS_MAX, &o->delay_ms);
	if (key_is(it, kn, "ttft"))
		return parse_long(v, vn, 0, MS_MAX, &o->ttft_ms);
	if (key_is(it, kn, "thinking"))
		return parse_long(v, vn, 0, COUNT_MAX, &o->thinking);
	if (key_is(it, kn, "fault"))
		return opt_fault(o, v, vn);
	if (key_is(it, kn, "retry_after"))
		return opt_decimal(o->retry_after, sizeof o->retry_after, v, vn);
	if (key_is(it, kn, "retry_after_ms"))
		return opt_decimal(o->retry_after_ms, sizeof o->retry_after_ms, v, vn);
	if (key_is(it, kn, "should_retry") && (key_is(v, vn, "true") || key_is(v, vn, "false"))) {
		o->should_retry = key_is(v, vn, "true");
		return true;
	}
	return false;
}

bool faults_parse(const char *s, size_t n, struct opts *o, char *err, size_t errsz)
{
	const char *end = s + n, *p = s;

	while ((p = memmem(p, (size_t)(end - p), "[[emu:", 6)) != NULL) {
		const char *it = p + 6;
		const char *close = memmem(it, (size_t)(end - it), "]]", 2);

		if (!close) {
			snprintf(err, errsz, "unknown emulator marker: unterminated %.*s",
				 (int)((end - p) < 60 ? (end - p) : 60), p);
			return false;
		}
		for (;;) {
			const char *comma = memchr(it, ',', (size_t)(close - it));
			const char *ie = comma ? comma : close;

			if (!opt_item(o, it, (size_t)(ie - it))) {
				snprintf(err, errsz, "unknown emulator marker: %.*s",
					 (int)((ie - it) < 80 ? (ie - it) : 80), it);
				return false;
			}
			if (!comma)
				break;
			it = comma + 1;
		}
		p = close + 2;
	}
	if (o->times >= 0 && !o->id[0]) {
		snprintf(err, errsz, "unknown emulator marker: times= needs an id=");
		return false;
	}
	return true;
}

void faults_describe(enum fault f, long arg, char *d, size_t n)
{
	d[0] = '\0';
	if (f == F_STATUS) {
		snprintf(d, n, "%ld", arg);
		return;
	}
	for (size_t i = 0; i < NFAULTS; i++) {
		if (FAULTS[i].f != f)
			continue;
		if (FAULTS[i].max)
			snprintf(d, n, "%s:%ld", FAULTS[i].name, arg);
		else
			snprintf(d, n, "%s", FAULTS[i].name);
	}
}

bool faults_applies(enum fault f, bool stream)
{
	switch (f) {
	case F_CRLF:
	case F_CR:
	case F_UNKNOWN_EVENT:
	case F_ERROR_MID:
		return stream;
	case F_TRUNC_JSON:
		return !stream;
	default:
		return f != F_NONE;
	}
}
