/* log: the access line is one valid JSON object whatever the record holds: long strings cut at a
 * character and marked "...", bytes that are not UTF-8 read as Latin-1, fields in their order. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "self.h"
#include "tap.h"

static char path[] = "/tmp/test_log.XXXXXX";

/* Writes one access line for a and returns its JSON (caller puts), or NULL. */
static struct json_object *line_of(const struct access_record *a, char *raw, size_t cap)
{
	FILE *f = fopen(path, "w"); /* truncate: the log appends */
	if (f)
		fclose(f);
	log_access(a);
	f = fopen(path, "rb");
	size_t n = f ? fread(raw, 1, cap - 1, f) : 0;
	if (f)
		fclose(f);
	raw[n] = '\0';
	const char *j = strstr(raw, " access {");
	if (!j || n == 0 || raw[n - 1] != '\n' || memchr(raw, '\n', n) != raw + n - 1)
		return NULL;
	return json_tokener_parse(j + 8);
}

static const char *str(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* The log's pid comes from self_pid's cache: right in the parent, and in a child forked after
 * the parent asked (each forked worker's lines carry its own pid). */
static void self_pid_after_fork(void)
{
	tap_ok(self_pid() == getpid(), "self_pid: this process's");
	pid_t child = fork();
	if (child == 0)
		_exit(self_pid() == getpid() && self_pid() != getppid() ? 0 : 1);
	int st = -1;
	tap_ok(child > 0 && waitpid(child, &st, 0) == child && WIFEXITED(st) &&
		       WEXITSTATUS(st) == 0,
	       "self_pid: a forked child's own, not its parent's");
	tap_ok(self_pid() == getpid(), "self_pid: the parent's still");
}

int main(void)
{
	self_pid_after_fork();
	int fd = mkstemp(path);
	if (fd < 0 || log_open(path, LOG_INFO) < 0)
		return 1;
	close(fd);
	static char raw[32768];
	log_set_request_id("428ee77100000001");
	struct access_record a = {.method = "POST", .route = "/stream", .status = 200, .attempts = 1,
				  .ttft_ms = 310.25, .duration_ms = 2741.0, .input_tokens = 12,
				  .output_tokens = 60, .flushes = 61, .delta_flushes = 60,
				  .upstream_request_id = "req_1"};
	struct json_object *o = line_of(&a, raw, sizeof raw);
	tap_ok(o != NULL, "a plain record is one line of JSON");
	tap_ok(strstr(raw, "access {\"req\":\"428ee77100000001\",\"method\":\"POST\",\"route\":\"/stream\","
			   "\"status\":200,\"attempts\":1,\"ttft_ms\":310.2,\"duration_ms\":2741.0,"
			   "\"input_tokens\":12,\"output_tokens\":60,\"flushes\":61,\"delta_flushes\":60,"
			   "\"cancelled\":false,\"upstream_request_id\":\"req_1\"}\n") != NULL,
	       "fields in order, durations to a tenth, no spaces");
	json_object_put(o);

	a.ttft_ms = -1;
	a.cancelled = 1;
	a.error = "client_gone";
	a.upstream_request_id = "";
	a.method = "G\xe9T\x01";
	a.route = "/caf\xe9/\xff\xc0\xaf/\xed\xa0\x80/\"\\/\n\xf0\x9f\x8e\x89";
	o = line_of(&a, raw, sizeof raw);
	tap_ok(o != NULL, "odd bytes: still one line of JSON");
	tap_is_str(str(o, "method"), "G\xc3\xa9T\x01", "a non-UTF-8 byte is read as Latin-1; control kept");
	tap_is_str(str(o, "route"),
		   "/caf\xc3\xa9/\xc3\xbf\xc3\x80\xc2\xaf/\xc3\xad\xc2\xa0\xc2\x80/\"\\/\n\xf0\x9f\x8e\x89",
		   "overlong, surrogate and stray bytes each become one character; valid UTF-8 kept");
	tap_ok(strstr(raw, "\"ttft_ms\":null") && strstr(raw, "\"cancelled\":true") &&
		       strstr(raw, "\"error\":\"client_gone\"") && !strstr(raw, "upstream_request_id"),
	       "null ttft, cancelled, error; an empty upstream id is left out");
	tap_ok(strstr(raw, "\"route\":\"/caf") != NULL, "slashes are not escaped");
	json_object_put(o);

	/* 2000 bytes of a 4-byte character: cut at a character, within the 1 KiB bound. */
	struct buf long_path;
	buf_init(&long_path, 4096);
	BUF_MUST(buf_appendc(&long_path, '/'));
	for (int i = 0; i < 500; i++)
		BUF_MUST(buf_appends(&long_path, "\xf0\x9f\x8e\x89"));
	a.route = buf_cstr(&long_path);
	a.method = "GET";
	o = line_of(&a, raw, sizeof raw);
	const char *r = str(o, "route");
	size_t rl = r ? strlen(r) : 0;
	tap_ok(r && rl == 1 + 255 * 4 + 3 && strcmp(r + rl - 3, "...") == 0 && memcmp(r, "/\xf0", 2) == 0,
	       "a long path is cut at a character to 1024 bytes and marked ... (%zu)", rl);
	json_object_put(o);

	/* The worst case for the line's budget: every byte of every string escaped to 6. */
	buf_reset(&long_path);
	for (int i = 0; i < 3000; i++)
		BUF_MUST(buf_appendc(&long_path, '\x01'));
	char method[200], id[300];
	memset(method, '\x02', sizeof method - 1), method[sizeof method - 1] = '\0';
	memset(id, '\x03', sizeof id - 1), id[sizeof id - 1] = '\0';
	a.route = buf_cstr(&long_path);
	a.method = method;
	a.error = id;
	a.upstream_request_id = id;
	o = line_of(&a, raw, sizeof raw);
	tap_ok(o && str(o, "route") && strlen(str(o, "route")) == 1027 && str(o, "method") &&
		       strlen(str(o, "method")) == 67 && str(o, "upstream_request_id") &&
		       strlen(str(o, "upstream_request_id")) == 131,
	       "all control bytes: every field kept, each cut to its bound");
	json_object_put(o);
	buf_release(&long_path);

	/* Numbers are written without printf: each must read as printf wrote it. */
	static const double ms[] = {0, 0.04, 0.05, 0.15, 0.25, 0.95, 1.05, 9.96, 12.34, 310.25, 999.95,
				    123456.789, 1e12};
	int same = 1;
	a = (struct access_record){.method = "GET", .route = "/v1/models", .status = 200,
				   .input_tokens = -3, .who = "key:a\b\t\f\r",
				   .cost_micro_usd = 12000034, .attempts = 1};
	for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
		char want[64];
		a.ttft_ms = a.duration_ms = ms[i];
		o = line_of(&a, raw, sizeof raw);
		snprintf(want, sizeof want, "\"ttft_ms\":%.1f,\"duration_ms\":%.1f,", ms[i], ms[i]);
		same = same && o && strstr(raw, want);
		json_object_put(o);
	}
	tap_ok(same, "durations read as printf's %%.1f, ties and large values included");
	o = line_of(&a, raw, sizeof raw);
	tap_ok(strstr(raw, "\"input_tokens\":-3,") && strstr(raw, "\"cost_usd\":12.000034") &&
		       strstr(raw, "\"who\":\"key:a\\b\\t\\f\\r\""),
	       "negative counts, six-decimal dollars, short escapes as json-c wrote them");
	json_object_put(o);

	log_close();
	unlink(path);
	return tap_done();
}
