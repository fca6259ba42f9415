/*
 * faults: the [[emu:key=value,...]] markers of the last user message, read
 * into per-request settings (struct opts): the statistics id, times=, answer
 * length and timing overrides, retry headers, and the fault to inject.  Owns
 * the fault table (names, argument ranges) and which faults fit which mode.
 * What a fault does to an answer is the streaming module's business.  Depends
 * on util only.
 */
#ifndef EMU_FAULTS_H
#define EMU_FAULTS_H

#include "util.h"

enum fault {
	F_NONE, F_STATUS, F_ECHO_KEY, F_HANG, F_SLOW_FIRST, F_CUT, F_ERROR_MID,
	F_GARBAGE, F_TRUNC_JSON, F_DRIP, F_HUGE, F_CRLF, F_CR, F_SPLIT, F_UNKNOWN_EVENT
};

/* Per-request settings parsed from [[emu:...]] markers; -1 means "not given". */
struct opts {
	char id[ID_MAX + 1];
	long times, words, delay_ms, ttft_ms;
	long thinking; /* thinking=N: the thinking tokens of a thinking request */
	enum fault fault;
	long arg; /* status code, milliseconds, delta count or byte count */
	char retry_after[24], retry_after_ms[24];
	int should_retry;
};

void faults_init(struct opts *o); /* nothing given, no fault */

/* Length of a complete [[emu:...]] marker starting at s, else 0. */
size_t faults_marker_len(const char *s, size_t n);

/*
 * Applies every marker of s (later keys win).  Anything malformed is an
 * error rather than text, so a typo in a test fails loudly: false, with the
 * 400 message in err.
 */
bool faults_parse(const char *s, size_t n, struct opts *o, char *err, size_t errsz);

/* The fault as a marker spells it ("cut:3", "529"), for the request log; "" for none. */
void faults_describe(enum fault f, long arg, char *d, size_t n);

/* Faults that make no sense for the request's mode are ignored. */
bool faults_applies(enum fault f, bool stream);

#endif
