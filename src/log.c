#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

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
	snprintf(log_req_id, sizeof log_req_id, "%s", id ? id : "");
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

static int stamp(struct buf *line)
{
	struct timespec ts;
	struct tm tm;
	char t[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
	return buf_printf(line, "%s.%03ldZ", t, ts.tv_nsec / 1000000);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	struct buf line;
	buf_init(&line, LOG_LINE_MAX);
	/* The prefix (a time, a pid, a level, a request id of 40 bytes at most) and the notice
	 * instead of a message are far shorter than LOG_LINE_MAX. */
	BUF_MUST(stamp(&line) ||
		 buf_printf(&line, " llm-fcgi[%ld] %s%s%s: ", (long)getpid(), level_names[level],
			    log_req_id[0] ? " req=" : "", log_req_id));
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

/* A string field of the access line: s cut to at most max of its bytes, at a character, and
 * marked "..." when longer. A byte that is not UTF-8 becomes the character U+00XX (the byte read
 * as Latin-1), so the line stays valid UTF-8 JSON (a parser would reject the raw byte) and the
 * byte can still be told. json-c escapes quotes, backslashes and control characters; a byte takes
 * at most 6 there, which the ACCESS_LINE_MAX budget counts on. scratch holds the copy. */
static struct json_object *access_str(const char *s, size_t max, struct buf *scratch)
{
	const char *text = s ? s : "";
	const unsigned char *p = (const unsigned char *)text, *run = p;
	size_t used = 0;
	int overflow = 0;
	buf_reset(scratch);
	/* Runs of good characters are copied whole: most strings are one run, cut or not. */
	while (*p) {
		size_t n = utf8_len(p);
		if (used + (n ? n : 1) > max)
			break;
		used += n ? n : 1;
		if (n) {
			p += n;
			continue;
		}
		const char latin1[2] = {(char)(0xc0 | *p >> 6), (char)(0x80 | (*p & 0x3f))};
		overflow = overflow || buf_append(scratch, run, (size_t)(p - run)) ||
			   buf_append(scratch, latin1, 2);
		run = ++p;
	}
	if (run == (const unsigned char *)text && !*p)
		return json_object_new_string(text); /* clean and whole: no copy needed */
	/* Each of the at most max bytes kept takes 2 at most, and "..." 3: the caller's scratch holds
	 * 2 * max + 3. */
	BUF_MUST(overflow || buf_append(scratch, run, (size_t)(p - run)) ||
		 (*p && buf_appends(scratch, "...")));
	return json_object_new_string_len(buf_cstr(scratch), (int)scratch->len);
}

/* Adds a member whose key is a literal: json-c neither copies it nor looks for a duplicate. */
static void add(struct json_object *o, const char *key, struct json_object *v)
{
	json_object_object_add_ex(o, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW | JSON_C_OBJECT_KEY_IS_CONSTANT);
}

/* A duration in milliseconds to a tenth, as "%.1f" (json-c's own doubles print 17 digits). */
static struct json_object *access_ms(double ms)
{
	char t[48];
	snprintf(t, sizeof t, "%.1f", ms);
	return json_object_new_double_s(ms, t);
}

/* Micro-dollars as dollars with six decimals, exact. */
static struct json_object *access_usd(long long micro)
{
	char t[48];
	snprintf(t, sizeof t, "%lld.%06lld", micro / 1000000, micro % 1000000);
	return json_object_new_double_s((double)micro / 1e6, t);
}

/* The record as a JSON object, fields in the order the access line has always had. */
static struct json_object *access_json(const struct access_record *a, struct buf *scratch)
{
	struct json_object *o = json_object_new_object();
	add(o, "req", access_str(log_req_id, sizeof log_req_id, scratch));
	add(o, "method", access_str(a->method, ACCESS_METHOD_MAX, scratch));
	add(o, "route", access_str(a->route, ACCESS_ROUTE_MAX, scratch));
	add(o, "status", json_object_new_int(a->status));
	add(o, "attempts", json_object_new_int(a->attempts));
	add(o, "ttft_ms", a->ttft_ms >= 0 ? access_ms(a->ttft_ms) : NULL);
	add(o, "duration_ms", access_ms(a->duration_ms));
	add(o, "input_tokens", json_object_new_int64(a->input_tokens));
	add(o, "output_tokens", json_object_new_int64(a->output_tokens));
	if (a->output_tokens_estimated)
		add(o, "output_tokens_estimated", json_object_new_boolean(1));
	if (a->cache_write_5m_tokens || a->cache_write_1h_tokens || a->cache_read_tokens) {
		add(o, "cache_write_5m_tokens", json_object_new_int64(a->cache_write_5m_tokens));
		add(o, "cache_write_1h_tokens", json_object_new_int64(a->cache_write_1h_tokens));
		add(o, "cache_read_tokens", json_object_new_int64(a->cache_read_tokens));
	}
	add(o, "flushes", json_object_new_int64(a->flushes));
	add(o, "delta_flushes", json_object_new_int64(a->delta_flushes));
	add(o, "cancelled", json_object_new_boolean(a->cancelled));
	if (a->error)
		add(o, "error", access_str(a->error, ACCESS_ID_MAX, scratch));
	if (a->upstream_request_id && *a->upstream_request_id)
		add(o, "upstream_request_id", access_str(a->upstream_request_id, ACCESS_ID_MAX, scratch));
	if (a->who)
		add(o, "who", access_str(a->who, ACCESS_ID_MAX, scratch));
	if (a->model[0])
		add(o, "model", access_str(a->model, ACCESS_ID_MAX, scratch));
	if (a->who && a->cost_micro_usd >= 0 && a->attempts > 0)
		add(o, "cost_usd", access_usd(a->cost_micro_usd));
	if (a->refused)
		add(o, "refused", access_str(a->refused, ACCESS_ID_MAX, scratch));
	return o;
}

void log_access(const struct access_record *a)
{
	if (!log_enabled(LOG_INFO))
		return;
	struct buf line, scratch;
	buf_init(&line, ACCESS_LINE_MAX);
	buf_init(&scratch, 2 * ACCESS_ROUTE_MAX + 3);
	struct json_object *o = access_json(a, &scratch);
	size_t len;
	const char *js = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	/* The fields' cuts keep the line within ACCESS_LINE_MAX (see there). */
	BUF_MUST(stamp(&line) || buf_printf(&line, " llm-fcgi[%ld] access ", (long)getpid()) ||
		 buf_append(&line, js, len));
	log_write(&line);
	json_object_put(o);
	buf_release(&scratch);
	buf_release(&line);
}
