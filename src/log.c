#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "self.h"

/* Per process: a worker inherits the parent's descriptor and level across fork. */
static int log_fd = STDERR_FILENO;
static char *log_path;
static enum log_level log_level_now = LOG_INFO;
static char log_req_id[40];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* One log line must never grow without bound, whatever a caller formats into it. */
#define LOG_LINE_MAX 8192
/* Bytes kept of each string in an access line (the path and method come from the client). */
#define ACCESS_ROUTE_MAX 1024
#define ACCESS_METHOD_MAX 64
#define ACCESS_ID_MAX 128
/* Escaped, a byte takes at most 6: 6 * (40 + 64 + 1024 + 5 * 128) plus the ~600 bytes of the
 * numeric fields fit, so no field is ever dropped for want of room. */
#define ACCESS_LINE_MAX 16384

/* On failure nothing changes: the old descriptor and path stay, so the log goes on where it was
 * and a later SIGUSR1 still reopens it. */
int log_open(const char *path, enum log_level level)
{
	log_level_now = level;
	int fd = STDERR_FILENO;
	if (path && *path) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -1;
	}
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = fd;
	free(log_path);
	log_path = fd == STDERR_FILENO ? NULL : xstrdup(path);
	return 0;
}

int log_reopen(void)
{
	if (!log_path)
		return 0;
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	/* dup2 keeps the descriptor number, so a line being written elsewhere never sees a gap. */
	if (dup2(fd, log_fd) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

void log_close(void)
{
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	log_fd = STDERR_FILENO;
	free(log_path);
	log_path = NULL;
}

void log_set_request_id(const char *id)
{
	size_t n = id ? strnlen(id, sizeof log_req_id - 1) : 0;
	memcpy(log_req_id, id ? id : "", n);
	log_req_id[n] = '\0';
}

int log_enabled(enum log_level level)
{
	return level <= log_level_now;
}

static void log_write(struct buf *line)
{
	if (line->len == 0 || line->data[line->len - 1] != '\n') {
		if (buf_appendc(line, '\n') < 0)
			line->data[line->len - 1] = '\n';
	}
	size_t off = 0;
	while (off < line->len) {
		ssize_t n = write(log_fd, line->data + off, line->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere left to report a failing log */
		off += (size_t)n;
	}
}

/* n digits of v, zero-padded (v < 10^n). */
static int put_padded(struct buf *b, unsigned long v, size_t n)
{
	char t[8];
	for (size_t i = n; i-- > 0; v /= 10)
		t[i] = (char)('0' + v % 10);
	return buf_append(b, t, n);
}

/* The time as 2026-01-31T12:34:56.789Z. The part down to the second is formatted once per second
 * (gmtime_r and strftime were a tenth of an access line's cost, and a busy worker writes many
 * lines in one second). */
static int stamp(struct buf *line)
{
	static time_t sec = (time_t)-1;
	static char text[32];
	static size_t text_len;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		text_len = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S.", &tm);
		sec = ts.tv_sec;
	}
	return buf_append(line, text, text_len) ||
	       put_padded(line, (unsigned long)(ts.tv_nsec / 1000000), 3) || buf_appendc(line, 'Z');
}

/* " llm-fcgi[PID] ": the pid is asked for each time (a forked worker has its own), its text is
 * made only when it changes. */
static int put_pid(struct buf *line)
{
	static long pid = -1;
	static char text[48]; /* " llm-fcgi[", a long's 20 digits, "] " */
	static size_t text_len;
	long now = (long)self_pid();
	if (now != pid) {
		text_len = (size_t)snprintf(text, sizeof text, " llm-fcgi[%ld] ", now);
		pid = now;
	}
	return buf_append(line, text, text_len);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	struct buf line;
	buf_init(&line, LOG_LINE_MAX);
	/* The prefix (a time, a pid, a level, a request id of 40 bytes at most) and the notice
	 * instead of a message are far shorter than LOG_LINE_MAX. */
	BUF_MUST(stamp(&line) || put_pid(&line) ||
		 buf_printf(&line, "%s%s%s: ", level_names[level], log_req_id[0] ? " req=" : "",
			    log_req_id));
	va_list ap;
	va_start(ap, fmt);
	if (buf_vprintf(&line, fmt, ap) < 0)
		BUF_MUST(buf_appends(&line, "(message too long)"));
	va_end(ap);
	/* A message must stay one line, whatever text it quotes. */
	for (size_t i = 0; i < line.len; i++)
		if (line.data[i] == '\n' || line.data[i] == '\r')
			line.data[i] = ' ';
	log_write(&line);
	buf_release(&line);
}

/* The length of the valid UTF-8 sequence at s (NUL-terminated), or 0 when it is not one:
 * overlong forms, surrogates and code points past U+10FFFF included. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0], cp, min;
	size_t n;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000;
	else
		return 0;
	cp = c & (0x3fu >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* The JSON escape of byte c (a quote, a backslash or a control character), as json-c writes it
 * (short forms where JSON has them, else \u00XX): the shape the access line always had. */
static int put_escape(struct buf *b, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char t[6] = {'\\', (char)c, 0, 0, 0, 0};
	switch (c) {
	case '"': case '\\': return buf_append(b, t, 2);
	case '\b': t[1] = 'b'; return buf_append(b, t, 2);
	case '\f': t[1] = 'f'; return buf_append(b, t, 2);
	case '\n': t[1] = 'n'; return buf_append(b, t, 2);
	case '\r': t[1] = 'r'; return buf_append(b, t, 2);
	case '\t': t[1] = 't'; return buf_append(b, t, 2);
	default:
		memcpy(t + 1, "u00", 3);
		t[4] = hex[c >> 4];
		t[5] = hex[c & 0xf];
		return buf_append(b, t, 6);
	}
}

/* A string field of the access line, quoted: s cut to at most max of its bytes, at a character,
 * and marked "..." when longer. A byte that is not UTF-8 becomes the character U+00XX (the byte
 * read as Latin-1), so the line stays valid UTF-8 JSON (a parser would reject the raw byte) and
 * the byte can still be told. Quotes, backslashes and control characters are escaped; a byte
 * takes at most 6, which the ACCESS_LINE_MAX budget counts on. Runs of characters that need
 * nothing are copied whole: most fields are one run. */
static int put_str(struct buf *b, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s ? s : ""), *run = p;
	size_t used = 0;
	int bad = buf_appendc(b, '"');
	while (*p && !bad) {
		size_t n = *p >= 0x20 && *p < 0x80 ? 1 : utf8_len(p);
		if (used + (n ? n : 1) > max)
			break;
		used += n ? n : 1;
		if (n > 1 || (n == 1 && *p != '"' && *p != '\\' && *p >= 0x20)) {
			p += n;
			continue;
		}
		bad = buf_append(b, run, (size_t)(p - run));
		if (n) {
			bad = bad || put_escape(b, *p);
		} else {
			const char latin1[2] = {(char)(0xc0 | *p >> 6), (char)(0x80 | (*p & 0x3f))};
			bad = bad || buf_append(b, latin1, 2);
		}
		run = ++p;
	}
	return bad || buf_append(b, run, (size_t)(p - run)) || (*p && buf_appends(b, "...")) ||
	       buf_appendc(b, '"');
}

/* A member's key after the first, with its comma: one literal, its length known. */
#define PUT_KEY(b, key) buf_append((b), ",\"" key "\":", sizeof(",\"" key "\":") - 1)

/* A duration in milliseconds to a tenth, as "%.1f" prints it; snprintf only for a value near a
 * half tenth, where rounding ms * 10 could differ from printf's exact rounding, or out of range. */
static int put_ms(struct buf *b, double ms)
{
	double t = ms * 10, frac = t >= 0 && t < 1e15 ? t - (double)(unsigned long long)t : 0.5;
	if (frac > 0.5 - 1e-6 && frac < 0.5 + 1e-6) {
		char s[48];
		int n = snprintf(s, sizeof s, "%.1f", ms);
		return buf_append(b, s, n > 0 && (size_t)n < sizeof s ? (size_t)n : 0);
	}
	unsigned long long tenths = (unsigned long long)(t + 0.5);
	return buf_append_u(b, tenths / 10) || buf_appendc(b, '.') ||
	       buf_appendc(b, (char)('0' + tenths % 10));
}

/* Micro-dollars (>= 0) as dollars with six decimals, exact. */
static int put_usd(struct buf *b, long long micro)
{
	return buf_append_i(b, micro / 1000000) || buf_appendc(b, '.') ||
	       put_padded(b, (unsigned long)(micro % 1000000), 6);
}

static int put_bool(struct buf *b, int v)
{
	return v ? buf_append(b, "true", 4) : buf_append(b, "false", 5);
}

/* The record as a JSON object, fields in the order the access line has always had. Written by
 * hand rather than through a json-c tree: the tree, its serialisation and its release cost about
 * 25,000 instructions a line, a tenth of a whole synchronous request (see README, Performance). */
static int access_json(struct buf *b, const struct access_record *a)
{
	int bad = buf_append(b, "{\"req\":", 7) || put_str(b, log_req_id, sizeof log_req_id) ||
		  PUT_KEY(b, "method") || put_str(b, a->method, ACCESS_METHOD_MAX) ||
		  PUT_KEY(b, "route") || put_str(b, a->route, ACCESS_ROUTE_MAX) ||
		  PUT_KEY(b, "status") || buf_append_i(b, a->status) || PUT_KEY(b, "attempts") ||
		  buf_append_i(b, a->attempts) || PUT_KEY(b, "ttft_ms") ||
		  (a->ttft_ms >= 0 ? put_ms(b, a->ttft_ms) : buf_append(b, "null", 4)) ||
		  PUT_KEY(b, "duration_ms") || put_ms(b, a->duration_ms) ||
		  PUT_KEY(b, "input_tokens") || buf_append_i(b, a->input_tokens) ||
		  PUT_KEY(b, "output_tokens") || buf_append_i(b, a->output_tokens);
	if (a->output_tokens_estimated)
		bad = bad || PUT_KEY(b, "output_tokens_estimated") || put_bool(b, 1);
	if (a->cache_write_5m_tokens || a->cache_write_1h_tokens || a->cache_read_tokens)
		bad = bad || PUT_KEY(b, "cache_write_5m_tokens") ||
		      buf_append_i(b, a->cache_write_5m_tokens) || PUT_KEY(b, "cache_write_1h_tokens") ||
		      buf_append_i(b, a->cache_write_1h_tokens) || PUT_KEY(b, "cache_read_tokens") ||
		      buf_append_i(b, a->cache_read_tokens);
	bad = bad || PUT_KEY(b, "flushes") || buf_append_u(b, a->flushes) ||
	      PUT_KEY(b, "delta_flushes") || buf_append_u(b, a->delta_flushes) ||
	      PUT_KEY(b, "cancelled") || put_bool(b, a->cancelled);
	if (a->error)
		bad = bad || PUT_KEY(b, "error") || put_str(b, a->error, ACCESS_ID_MAX);
	if (a->upstream_request_id && *a->upstream_request_id)
		bad = bad || PUT_KEY(b, "upstream_request_id") ||
		      put_str(b, a->upstream_request_id, ACCESS_ID_MAX);
	if (a->who)
		bad = bad || PUT_KEY(b, "who") || put_str(b, a->who, ACCESS_ID_MAX);
	if (a->model[0])
		bad = bad || PUT_KEY(b, "model") || put_str(b, a->model, ACCESS_ID_MAX);
	if (a->who && a->cost_micro_usd >= 0 && a->attempts > 0)
		bad = bad || PUT_KEY(b, "cost_usd") || put_usd(b, a->cost_micro_usd);
	if (a->refused)
		bad = bad || PUT_KEY(b, "refused") || put_str(b, a->refused, ACCESS_ID_MAX);
	return bad || buf_appendc(b, '}');
}

void log_access(const struct access_record *a)
{
	if (!log_enabled(LOG_INFO))
		return;
	/* One line buffer per process, kept between requests: its memory is allocated once. */
	static struct buf line = {.max = ACCESS_LINE_MAX};
	buf_reset(&line);
	/* The fields' cuts keep the line within ACCESS_LINE_MAX (see there). */
	BUF_MUST(stamp(&line) || put_pid(&line) || buf_append(&line, "access ", 7) ||
		 access_json(&line, a));
	log_write(&line);
}
