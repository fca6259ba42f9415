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
/* Escaped, a byte takes at most 6: 6 * (40 + 64 + 1024 + 2 * 128) plus the ~400 bytes of the
 * numeric fields fit, so no field is ever dropped for want of room. */
#define ACCESS_LINE_MAX 12288

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

static void stamp(struct buf *line)
{
	struct timespec ts;
	struct tm tm;
	char t[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
	buf_printf(line, "%s.%03ldZ", t, ts.tv_nsec / 1000000);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	struct buf line;
	buf_init(&line, LOG_LINE_MAX);
	stamp(&line);
	buf_printf(&line, " llm-fcgi[%ld] %s", (long)getpid(), level_names[level]);
	if (log_req_id[0])
		buf_printf(&line, " req=%s", log_req_id);
	buf_appends(&line, ": ");
	va_list ap;
	va_start(ap, fmt);
	if (buf_vprintf(&line, fmt, ap) < 0)
		buf_appends(&line, "(message too long)");
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

/* s as a JSON string of at most max bytes of s, cut at a character and marked "..." when
 * longer. A byte that is not UTF-8 becomes \u00XX (a JSON parser would reject it raw), so the
 * line stays valid JSON and the byte can still be told. Escaping makes a byte at most 6, which
 * the ACCESS_LINE_MAX budget counts on. */
static void json_str(struct buf *b, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t used = 0;
	buf_appendc(b, '"');
	while (*p) {
		size_t n = utf8_len(p);
		if (used + (n ? n : 1) > max) {
			buf_appends(b, "...");
			break;
		}
		if (n == 0 || *p < 0x20)
			buf_printf(b, "\\u%04x", *p);
		else if (*p == '"' || *p == '\\')
			buf_printf(b, "\\%c", *p);
		else
			buf_append(b, (const char *)p, n);
		used += n ? n : 1;
		p += n ? n : 1;
	}
	buf_appendc(b, '"');
}

void log_access(const struct access_record *a)
{
	if (!log_enabled(LOG_INFO))
		return;
	struct buf line;
	buf_init(&line, ACCESS_LINE_MAX);
	stamp(&line);
	buf_printf(&line, " llm-fcgi[%ld] access ", (long)getpid());
	buf_appends(&line, "{\"req\":");
	json_str(&line, log_req_id, sizeof log_req_id);
	buf_appends(&line, ",\"method\":");
	json_str(&line, a->method, ACCESS_METHOD_MAX);
	buf_appends(&line, ",\"route\":");
	json_str(&line, a->route, ACCESS_ROUTE_MAX);
	buf_printf(&line, ",\"status\":%d,\"attempts\":%d", a->status, a->attempts);
	if (a->ttft_ms >= 0)
		buf_printf(&line, ",\"ttft_ms\":%.1f", a->ttft_ms);
	else
		buf_appends(&line, ",\"ttft_ms\":null");
	buf_printf(&line, ",\"duration_ms\":%.1f,\"input_tokens\":%ld,\"output_tokens\":%ld",
		   a->duration_ms, a->input_tokens, a->output_tokens);
	buf_printf(&line, ",\"flushes\":%u,\"delta_flushes\":%u,\"cancelled\":%s", a->flushes,
		   a->delta_flushes, a->cancelled ? "true" : "false");
	if (a->error) {
		buf_appends(&line, ",\"error\":");
		json_str(&line, a->error, ACCESS_ID_MAX);
	}
	if (a->upstream_request_id && *a->upstream_request_id) {
		buf_appends(&line, ",\"upstream_request_id\":");
		json_str(&line, a->upstream_request_id, ACCESS_ID_MAX);
	}
	buf_appends(&line, "}");
	log_write(&line);
	buf_release(&line);
}
