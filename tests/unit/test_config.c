/* Unit tests for config: defaults, each value type, the file syntax (fixtures in
 * $srcdir/tests/unit/fixtures/config/), the precedence of arguments, environment, file and
 * defaults, the API key rules, config_dump (complete, round-trips, never shows the key) and the
 * example configuration $builddir/conf/llm-fcgi.conf (generated from conf/llm-fcgi.conf.in with
 * the build's paths), commented and uncommented.
 *
 * The environment is a table behind a fake getenv, so the real one never matters. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* mkstemp, open_memstream, fchmod, chown, mkfifo */
#endif
#include "config.h"

#include "buf.h"
#include "tap.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define TEXT_MAX ((size_t)1 << 24)

/* Every key, in table order: config_dump must print all of them. */
static const char *const keys[] = {
	"upstream_url",
	"api_key_file",
	"ca_file",
	"client_keys_file",
	"model",
	"models",
	"max_tokens",
	"max_tokens_limit",
	"summarize_thinking",
	"stream_thinking",
	"models_file",
	"models_override_file",
	"summarize_prompt",
	"max_retries",
	"retry_after_cap",
	"connect_timeout",
	"first_byte_timeout",
	"idle_timeout",
	"total_timeout",
	"keepalive_interval",
	"client_read_timeout",
	"max_body_bytes",
	"max_body_bytes_api",
	"max_response_bytes",
	"base_path",
	"allowed_origins",
	"workers",
	"max_requests",
	"grace_period",
	"when_full",
	"limits_file",
	"state_file",
	"state_counters",
	"limits_store",
	"limits_store_timeout",
	"limits_store_down",
	"trusted_proxies",
	"usage_days",
	"metrics_path",
	"status_path",
	"metrics_allow",
	"metrics_identities",
	"slow_request",
	"log_file",
	"log_level",
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *srcdir;

/* ---- helpers ---- */

__attribute__((format(printf, 1, 2))) static char *strf(const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	buf_init(&b, TEXT_MAX);
	va_start(ap, fmt);
	int rc = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (rc < 0)
		abort();
	return buf_detach(&b);
}

static char *fixture(const char *name)
{
	return strf("%s/tests/unit/fixtures/config/%s", srcdir, name);
}

/* A fake environment: a small table of name/value pairs; the latest setting of a name wins. */
#define ENV_MAX 16
static const char *env_name[ENV_MAX], *env_value[ENV_MAX];
static size_t env_n;

static void env_clear(void)
{
	env_n = 0;
}

static void env_set(const char *name, const char *value)
{
	if (env_n == ENV_MAX)
		abort();
	env_name[env_n] = name;
	env_value[env_n++] = value;
}

static const char *fake_getenv(const char *name)
{
	for (size_t i = env_n; i-- > 0;)
		if (strcmp(env_name[i], name) == 0)
			return env_value[i];
	return NULL;
}

/* Every error message seen, to check that no API key ever appears in one. */
static struct buf all_errors;

static void seen(const char *err)
{
	if (err && (buf_appends(&all_errors, err) < 0 || buf_appendc(&all_errors, '\n') < 0))
		abort();
}

static int load(struct config *cfg, const char *path, const struct config_arg *args, size_t nargs,
	char **err)
{
	int rc = config_load(cfg, path, args, nargs, fake_getenv, err);
	seen(*err);
	return rc;
}

/* Loads and expects success; on failure the message is shown and *cfg is released. */
static void load_ok(struct config *cfg, const char *path, const struct config_arg *args,
	size_t nargs, const char *what)
{
	char *err = NULL;
	int rc = load(cfg, path, args, nargs, &err);
	tap_ok(rc == 0 && !err, "%s", what);
	if (err)
		tap_diag("%s", err);
	free(err);
}

/* A config released by a failed load is all zeroes. */
static int is_released(const struct config *c)
{
	return !c->upstream_url && !c->api_key_file && !c->api_key && !c->model &&
	       !c->summarize_prompt && !c->base_path && !c->allowed_origins && !c->log_file &&
	       !c->source && c->max_tokens == 0 && c->max_body_bytes == 0 &&
	       c->connect_timeout == 0 && c->when_full == 0 && c->log_level == 0;
}

/* Loads path and expects the error want. */
static void load_fails(const char *path, const struct config_arg *args, size_t nargs,
	const char *want, const char *what)
{
	struct config c;
	char *err = NULL;
	int rc = load(&c, path, args, nargs, &err);
	tap_is_int(rc, -1, "%s: load fails", what);
	tap_is_str(err, want, "%s: message", what);
	tap_ok(is_released(&c), "%s: config left released", what);
	free(err);
}

/* Loads a fixture and expects the error "<path>:<suffix>". */
static void fixture_fails(const char *name, const char *suffix)
{
	char *path = fixture(name);
	char *want = strf("%s:%s", path, suffix);
	load_fails(path, NULL, 0, want, name);
	free(want);
	free(path);
}

static char *temp_file(const void *content, size_t len, mode_t mode)
{
	char *path = xstrdup("/tmp/test_config.XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, content, len) != (ssize_t)len || fchmod(fd, mode) < 0 ||
		close(fd) < 0)
		abort();
	return path;
}

static void remove_temp(char *path)
{
	if (unlink(path) < 0)
		abort();
	free(path);
}

static char *dump(const struct config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		abort();
	config_dump(cfg, f);
	if (ferror(f) || fclose(f) != 0)
		abort();
	return text;
}

/* The settings in a dump: without the first line (the source) and the last (the key). */
static char *settings(const char *text)
{
	const char *start = strchr(text, '\n'), *end = strstr(text, "# api key:");
	if (!start || !end || end < start)
		abort();
	return xstrndup(start + 1, (size_t)(end - start - 1));
}

/* Checks that two configs dump the same settings. */
static void same_settings(const struct config *got, const struct config *want, const char *what)
{
	char *g = dump(got), *w = dump(want);
	char *gs = settings(g), *ws = settings(w);
	tap_is_str(gs, ws, "%s", what);
	free(gs);
	free(ws);
	free(g);
	free(w);
}

/* A value fit for a TAP test name: one line, and '#' (a directive there) escaped. */
static char *label(const char *value)
{
	struct buf b;
	buf_init(&b, TEXT_MAX);
	for (const char *p = value; *p; p++) {
		int rc;
		if (*p == '#')
			rc = buf_appends(&b, "\\#");
		else if ((unsigned char)*p < 0x20)
			rc = buf_printf(&b, "\\x%02x", (unsigned char)*p);
		else
			rc = buf_appendc(&b, *p);
		if (rc < 0)
			abort();
	}
	return buf_detach(&b);
}

static void set_ok(struct config *c, const char *key, const char *value)
{
	char *err = NULL, *shown = label(value);
	int rc = config_set(c, key, value, &err);
	tap_ok(rc == 0 && !err, "set %s = '%s'", key, shown);
	if (err)
		tap_diag("%s", err);
	free(err);
	free(shown);
}

static void set_fails(struct config *c, const char *key, const char *value, const char *want)
{
	char *err = NULL, *shown = label(value);
	int rc = config_set(c, key, value, &err);
	tap_is_int(rc, -1, "set %s = '%s' fails", key, shown);
	tap_is_str(err, want, "set %s = '%s': message", key, shown);
	free(err);
	free(shown);
}

/* ---- defaults ---- */

static void test_defaults(void)
{
	struct config c;
	config_defaults(&c);
	tap_is_str(c.upstream_url, "https://api.anthropic.com", "default upstream_url");
	tap_ok(c.api_key_file == NULL, "default api_key_file unset");
	tap_ok(c.api_key == NULL, "defaults have no api key");
	tap_is_str(c.model, "claude-sonnet-5-5", "default model");
	tap_is_int(c.max_tokens, 1024, "default max_tokens");
	tap_is_int(c.max_tokens_limit, 8192, "default max_tokens_limit");
	tap_is_str(c.summarize_prompt,
		"Summarize the text the user sends in a few sentences. "
		"Reply with the summary only.",
		"default summarize_prompt");
	tap_is_int(c.max_retries, 2, "default max_retries");
	tap_ok(c.retry_after_cap == 60, "default retry_after_cap");
	tap_ok(c.connect_timeout == 10, "default connect_timeout");
	tap_ok(c.first_byte_timeout == 60, "default first_byte_timeout");
	tap_ok(c.idle_timeout == 60, "default idle_timeout");
	tap_ok(c.total_timeout == 600, "default total_timeout");
	tap_ok(c.keepalive_interval == 15, "default keepalive_interval");
	tap_ok(c.client_read_timeout == 30, "default client_read_timeout");
	tap_is_int(c.max_body_bytes, 1 << 20, "default max_body_bytes");
	tap_is_int(c.max_response_bytes, 8 << 20, "default max_response_bytes");
	tap_is_str(c.base_path, "", "default base_path");
	tap_is_str(c.allowed_origins, "", "default allowed_origins");
	tap_is_int(c.workers, 0, "default workers");
	tap_is_int(c.max_requests, 0, "default max_requests");
	tap_ok(c.grace_period == 30, "default grace_period");
	tap_is_int(c.when_full, WHEN_FULL_QUEUE, "default when_full");
	tap_is_str(c.log_file, "", "default log_file");
	tap_is_int(c.log_level, LOG_INFO, "default log_level");
	tap_ok(c.source == NULL, "defaults have no source");
	config_release(&c);
	tap_ok(is_released(&c), "release zeroes");
	config_release(&c);
	tap_ok(is_released(&c), "release twice is harmless");
}

/* ---- each type, through config_set ---- */

static void test_long(struct config *c)
{
	set_ok(c, "max_tokens", "1000");
	tap_is_int(c->max_tokens, 1000, "max_tokens parsed");
	set_ok(c, "max_tokens", "+7");
	tap_is_int(c->max_tokens, 7, "explicit plus sign");
	set_ok(c, "max_tokens", "1000000");
	tap_is_int(c->max_tokens, 1000000, "upper bound is inclusive");
	set_ok(c, "max_retries", "0");
	tap_is_int(c->max_retries, 0, "lower bound is inclusive");
	set_fails(c, "max_tokens", "abc", "max_tokens: 'abc' is not an integer");
	set_fails(c, "max_tokens", "12abc", "max_tokens: '12abc' is not an integer");
	set_fails(c, "max_tokens", "", "max_tokens: '' is not an integer");
	set_fails(c, "max_tokens", " 5", "max_tokens: ' 5' is not an integer");
	set_fails(c, "max_tokens", "1.5", "max_tokens: '1.5' is not an integer");
	set_fails(c, "max_tokens", "0x10", "max_tokens: '0x10' is not an integer");
	set_fails(c, "max_tokens", "0", "max_tokens: 0 is out of range (1..1000000)");
	set_fails(c, "max_tokens", "1000001", "max_tokens: 1000001 is out of range (1..1000000)");
	set_fails(c, "max_retries", "-1", "max_retries: -1 is out of range (0..10)");
	set_fails(c, "max_tokens", "99999999999999999999999",
		"max_tokens: 99999999999999999999999 is out of range (1..1000000)");
	set_fails(c, "max_requests", "1000000001",
		"max_requests: 1000000001 is out of range (0..1000000000)");
	tap_is_int(c->max_tokens, 1000000, "a refused value leaves the old one");
}

static void test_seconds(struct config *c)
{
	set_ok(c, "connect_timeout", "0.5");
	tap_ok(c->connect_timeout == 0.5, "decimal seconds");
	set_ok(c, "connect_timeout", ".25");
	tap_ok(c->connect_timeout == 0.25, "leading decimal point");
	set_ok(c, "total_timeout", "1e3");
	tap_ok(c->total_timeout == 1000, "exponent");
	set_ok(c, "grace_period", "-0");
	tap_ok(c->grace_period == 0 && !signbit(c->grace_period), "-0 is stored as 0");
	set_ok(c, "connect_timeout", "0.1");
	tap_ok(c->connect_timeout == 0.1, "lower bound 0.1 is inclusive");
	set_fails(c, "connect_timeout", "0.05",
		"connect_timeout: 0.05 is out of range (0.1..600)");
	set_fails(c, "connect_timeout", "601", "connect_timeout: 601 is out of range (0.1..600)");
	set_fails(c, "idle_timeout", "abc", "idle_timeout: 'abc' is not a number of seconds");
	set_fails(c, "idle_timeout", "", "idle_timeout: '' is not a number of seconds");
	set_fails(c, "idle_timeout", "5s", "idle_timeout: '5s' is not a number of seconds");
	set_fails(c, "idle_timeout", "inf", "idle_timeout: 'inf' is not a number of seconds");
	set_fails(c, "idle_timeout", "nan", "idle_timeout: 'nan' is not a number of seconds");
	set_fails(c, "idle_timeout", "0x1p3", "idle_timeout: '0x1p3' is not a number of seconds");
	set_fails(c, "idle_timeout", ".", "idle_timeout: '.' is not a number of seconds");
	set_fails(c, "idle_timeout", "1e999", "idle_timeout: 1e999 is out of range (0.1..3600)");
	set_fails(c, "grace_period", "-1", "grace_period: -1 is out of range (0..3600)");
	tap_ok(c->connect_timeout == 0.1, "a refused value leaves the old one");
}

static void test_size(struct config *c)
{
	static const struct {
		const char *text;
		size_t want;
	} good[] = {
		{"1024", 1024},
		{"64k", 64 << 10},
		{"64K", 64 << 10},
		{"2m", 2 << 20},
		{"3M", 3 << 20},
		{"1g", (size_t)1 << 30},
		{"1G", (size_t)1 << 30},
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		set_ok(c, "max_body_bytes", good[i].text);
		tap_is_int(c->max_body_bytes, good[i].want, "max_body_bytes = %s", good[i].text);
	}
	set_fails(c, "max_body_bytes", "1023",
		"max_body_bytes: 1023 is out of range (1K..1G)");
	set_fails(c, "max_body_bytes", "2G", "max_body_bytes: 2G is out of range (1K..1G)");
	set_fails(c, "max_body_bytes", "1073741825",
		"max_body_bytes: 1073741825 is out of range (1K..1G)");
	set_fails(c, "max_response_bytes", "63k",
		"max_response_bytes: 63k is out of range (64K..1G)");
	set_fails(c, "max_body_bytes", "99999999999999999999g",
		"max_body_bytes: 99999999999999999999g is out of range (1K..1G)");
	set_fails(c, "max_body_bytes", "17179869184g",
		"max_body_bytes: 17179869184g is out of range (1K..1G)");
	static const char *const bad[] = {"1.5M", "-1", "+1024", "1KB", "1 k", "k", "", "1t"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *want = strf("max_body_bytes: '%s' is not a size (bytes, with an optional k, "
				  "m or g suffix)",
			bad[i]);
		set_fails(c, "max_body_bytes", bad[i], want);
		free(want);
	}
}

static void test_enum(struct config *c)
{
	set_ok(c, "when_full", "shed");
	tap_is_int(c->when_full, WHEN_FULL_SHED, "when_full = shed");
	set_ok(c, "when_full", "queue");
	tap_is_int(c->when_full, WHEN_FULL_QUEUE, "when_full = queue");
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	static const enum log_level want[] = {LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG};
	for (size_t i = 0; i < 4; i++) {
		set_ok(c, "log_level", levels[i]);
		tap_is_int(c->log_level, want[i], "log_level = %s", levels[i]);
	}
	set_fails(c, "when_full", "Queue", "when_full: 'Queue' is not one of queue, shed");
	set_fails(c, "log_level", "verbose",
		"log_level: 'verbose' is not one of error, warn, info, debug");
	tap_is_int(c->log_level, LOG_DEBUG, "a refused value leaves the old one");
}

static void test_strings(struct config *c)
{
	set_ok(c, "upstream_url", "http://localhost:8080/");
	tap_is_str(c->upstream_url, "http://localhost:8080", "trailing '/' of the URL removed");
	set_ok(c, "upstream_url", "HTTPS://proxy.example/anthropic//");
	tap_is_str(c->upstream_url, "HTTPS://proxy.example/anthropic", "URL with a path");
	set_fails(c, "upstream_url", "ftp://example.org",
		"upstream_url: 'ftp://example.org' must start with http:// or https://");
	set_fails(c, "upstream_url", "api.anthropic.com",
		"upstream_url: 'api.anthropic.com' must start with http:// or https://");
	set_fails(c, "upstream_url", "https://", "upstream_url: 'https://' has no host");
	set_fails(c, "upstream_url", "https:///x", "upstream_url: 'https:///x' has no host");
	set_fails(c, "upstream_url", "https://a b",
		"upstream_url: 'https://a b' must not contain spaces or control characters");
	tap_is_str(c->upstream_url, "HTTPS://proxy.example/anthropic",
		"a refused URL leaves the old one");

	set_fails(c, "model", "", "model: '' must not be empty");
	set_fails(c, "model", "a\nb", "model: 'a\\nb' must not contain control characters");
	set_ok(c, "model", "claude-other");
	tap_is_str(c->model, "claude-other", "model set");

	set_fails(c, "summarize_prompt", "", "summarize_prompt: '' must not be empty");
	set_fails(c, "summarize_prompt", "a\rb",
		"summarize_prompt: 'a\\x0db' must not contain control characters other than "
		"newline and tab");
	set_ok(c, "summarize_prompt", "Line 1\n\tLine 2");
	tap_is_str(c->summarize_prompt, "Line 1\n\tLine 2", "a prompt may span lines");

	static const struct {
		const char *in, *out;
	} paths[] = {{"", ""}, {"/", ""}, {"//", ""}, {"/app/", "/app"}, {"/a/b//", "/a/b"},
		{"/app", "/app"}};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		set_ok(c, "base_path", paths[i].in);
		tap_is_str(c->base_path, paths[i].out, "base_path '%s' becomes '%s'", paths[i].in,
			paths[i].out);
	}
	set_fails(c, "base_path", "app", "base_path: 'app' must be empty or start with '/'");

	set_ok(c, "api_key_file", "/run/secrets/key");
	tap_is_str(c->api_key_file, "/run/secrets/key", "api_key_file set");
	set_ok(c, "api_key_file", "");
	tap_ok(c->api_key_file == NULL, "an empty api_key_file is unset");
	set_ok(c, "log_file", "/var/log/llm-fcgi.log");
	set_ok(c, "log_file", "");
	tap_is_str(c->log_file, "", "an empty log_file stays '' (stderr)");
	set_ok(c, "allowed_origins", "https://a.example, https://b.example");
	tap_is_str(c->allowed_origins, "https://a.example, https://b.example", "allowed_origins");

	set_fails(c, "nope", "1", "unknown key 'nope'");
	set_fails(c, "api_key", "secret", "unknown key 'api_key'");
	set_fails(c, "source", "x", "unknown key 'source'");

	/* Long values are cut in messages. */
	char long_value[200];
	memset(long_value, 'x', sizeof long_value - 1);
	long_value[sizeof long_value - 1] = '\0';
	char *err = NULL;
	tap_is_int(config_set(c, "max_tokens", long_value, &err), -1, "long bad value refused");
	tap_ok(err && strlen(err) < 120 && strstr(err, "...' is not an integer"),
		"a long value is cut in the message");
	free(err);
}

static void test_types(void)
{
	struct config c;
	config_defaults(&c);
	test_long(&c);
	test_seconds(&c);
	test_size(&c);
	test_enum(&c);
	test_strings(&c);
	config_release(&c);
}

/* ---- the file ---- */

static void test_good_file(void)
{
	struct config c;
	char *path = fixture("good.conf");
	env_clear();
	load_ok(&c, path, NULL, 0, "good.conf loads");
	tap_is_str(c.source, path, "source is the file read");
	tap_is_str(c.upstream_url, "http://127.0.0.1:8080", "file: upstream_url");
	tap_is_str(c.model, "claude-test-1", "file: blanks around key and value trimmed");
	tap_is_int(c.max_tokens, 1024, "file: max_tokens");
	tap_is_int(c.max_tokens_limit, 4096, "file: max_tokens_limit");
	tap_ok(c.connect_timeout == 2.5, "file: connect_timeout");
	tap_is_int(c.max_body_bytes, 64 << 10, "file: max_body_bytes");
	tap_is_int(c.max_response_bytes, 2 << 20, "file: max_response_bytes");
	tap_is_str(c.base_path, "/llm", "file: base_path normalised");
	tap_is_int(c.when_full, WHEN_FULL_SHED, "file: when_full");
	tap_is_int(c.log_level, LOG_DEBUG, "file: comment after the value dropped");
	tap_is_int(c.max_retries, 3, "file: the later of two lines wins");
	tap_is_int(c.workers, 0, "file: keys not in the file keep their default");
	config_release(&c);
	free(path);
}

static void test_quoted_file(void)
{
	struct config c;
	char *path = fixture("quoted.conf");
	load_ok(&c, path, NULL, 0, "quoted.conf loads");
	tap_is_str(c.summarize_prompt, "  Line one # not a comment\nSay \"hi\" \\ bye  ",
		"quotes keep blanks and hashes, decode \\n, \\\" and \\\\");
	tap_is_str(c.allowed_origins, "https://a.example#frag", "a hash not after a blank is kept");
	tap_is_str(c.log_file, "/var/log/llm fcgi.log", "comment after a blank dropped");
	tap_is_str(c.model, "claude-quoted", "comment right after the closing quote");
	tap_is_str(c.base_path, "", "an empty value");
	tap_ok(c.api_key_file == NULL, "a value that is only a comment is empty");
	tap_is_str(c.upstream_url, "https://api.example.com", "a quoted URL");
	config_release(&c);
	free(path);
}

static void test_small_files(void)
{
	static const struct {
		const char *name;
		long max_tokens;
	} files[] = {{"crlf.conf", 77}, {"bom.conf", 78}, {"no-newline.conf", 79},
		{"empty.conf", 1024}};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct config c;
		char *path = fixture(files[i].name);
		load_ok(&c, path, NULL, 0, files[i].name);
		tap_is_int(c.max_tokens, files[i].max_tokens, "%s: max_tokens", files[i].name);
		if (i == 0)
			tap_is_str(c.model, "crlf-model", "crlf.conf: CR dropped");
		config_release(&c);
		free(path);
	}
}

static void test_bad_files(void)
{
	fixture_fails("bad-unknown.conf", "3: unknown key 'foo'");
	fixture_fails("bad-range.conf", "3: max_tokens: 0 is out of range (1..1000000)");
	fixture_fails("bad-type.conf", "2: max_tokens: 'abc' is not an integer");
	fixture_fails("bad-syntax.conf", "2: expected 'key = value'");
	fixture_fails("bad-quote.conf", "1: missing closing quote");
	fixture_fails("bad-escape.conf", "1: unknown escape in quotes (use \\\", \\\\ or \\n)");
	fixture_fails("bad-after-quote.conf", "1: text after the closing quote");
	fixture_fails("bad-enum.conf",
		"1: log_level: 'verbose' is not one of error, warn, info, debug");
	fixture_fails("bad-nokey.conf", "1: missing key before '='");

	/* A NUL byte, a line at the cap and one byte over it. */
	static const char nul[] = "model = a\0b\n";
	char *path = temp_file(nul, sizeof nul - 1, 0600);
	char *want = strf("%s:1: NUL byte in line", path);
	load_fails(path, NULL, 0, want, "NUL byte");
	free(want);
	remove_temp(path);

	size_t cap = 65536;
	char *line = xmalloc(cap + 2);
	memcpy(line, "model = ", 8);
	memset(line + 8, 'x', cap - 8);
	line[cap] = '\n';
	path = temp_file(line, cap + 1, 0600);
	struct config c;
	load_ok(&c, path, NULL, 0, "a line of 64 KiB loads");
	tap_ok(c.model && strlen(c.model) == cap - 8, "and its value is whole");
	config_release(&c);
	remove_temp(path);

	memcpy(line + cap, "x\n", 2);
	path = temp_file(line, cap + 2, 0600);
	want = strf("%s:1: line longer than 65536 bytes", path);
	load_fails(path, NULL, 0, want, "line over 64 KiB");
	free(want);
	remove_temp(path);
	free(line);

	path = strf("%s/tests/unit/fixtures/config", srcdir);
	want = strf("cannot read %s: %s", path, strerror(EISDIR));
	load_fails(path, NULL, 0, want, "a directory as the file");
	free(want);
	free(path);
}

static void test_file_choice(void)
{
	struct config c;
	char *good = fixture("good.conf"), *bom = fixture("bom.conf");
	char *missing = fixture("missing.conf");
	char *want = strf("cannot open %s: %s", missing, strerror(ENOENT));

	env_clear();
	load_fails(missing, NULL, 0, want, "missing named file");
	env_set("LLM_FCGI_CONFIG", missing);
	load_fails(NULL, NULL, 0, want, "missing LLM_FCGI_CONFIG file");

	env_clear();
	env_set("LLM_FCGI_CONFIG", good);
	load_ok(&c, NULL, NULL, 0, "LLM_FCGI_CONFIG loads");
	tap_is_str(c.source, good, "LLM_FCGI_CONFIG names the file");
	config_release(&c);
	load_ok(&c, bom, NULL, 0, "a path argument loads");
	tap_is_str(c.source, bom, "a path argument beats LLM_FCGI_CONFIG");
	config_release(&c);

	/* The built-in path may be missing; test that only where it is. */
	env_clear();
	env_set("LLM_FCGI_CONFIG", "");
	if (access(SYSCONFDIR "/llm-fcgi/llm-fcgi.conf", F_OK) < 0 && errno == ENOENT &&
	    access(SYSCONFDIR "/llm-fcgi.conf", F_OK) < 0 && access("/etc/llm-fcgi.conf", F_OK) < 0) {
		load_ok(&c, NULL, NULL, 0, "missing default file: defaults");
		tap_ok(c.source == NULL, "missing default file: no source");
		config_release(&c);
	} else {
		tap_ok(1, "missing default file # SKIP a default settings file exists");
		tap_ok(1, "missing default file: no source # SKIP");
	}
	free(want);
	free(missing);
	free(bom);
	free(good);
}

/* ---- precedence ---- */

static void test_precedence(void)
{
	static const char text[] = "max_tokens = 100\n"
				   "log_level = warn\n"
				   "connect_timeout = 3\n"
				   "base_path = /file\n";
	char *path = temp_file(text, sizeof text - 1, 0600);
	const struct config_arg args[] = {
		{"max_tokens", "300"},
		{"log_level", "error"},
		{"base_path", "/arg/"},
		{"connect_timeout", "5.5"},
	};
	struct config c;

	env_clear();
	env_set("LLM_FCGI_MAX_TOKENS", "200");
	env_set("LLM_FCGI_LOG_LEVEL", "debug");
	env_set("LLM_FCGI_BASE_PATH", "");
	env_set("LLM_FCGI_IDLE_TIMEOUT", "7");
	load_ok(&c, path, args, 4, "file, environment and arguments load");
	tap_is_int(c.max_tokens, 300, "argument beats environment and file");
	tap_is_int(c.log_level, LOG_ERROR, "argument beats environment (enum)");
	tap_is_str(c.base_path, "/arg", "argument beats environment (string)");
	tap_ok(c.connect_timeout == 5.5, "argument beats file (seconds)");
	tap_ok(c.idle_timeout == 7, "environment beats default");
	config_release(&c);

	load_ok(&c, path, NULL, 0, "file and environment load");
	tap_is_int(c.max_tokens, 200, "environment beats file");
	tap_is_int(c.log_level, LOG_DEBUG, "environment beats file (enum)");
	tap_is_str(c.base_path, "", "an empty variable is a value");
	tap_ok(c.connect_timeout == 3, "file beats default");
	config_release(&c);

	env_clear();
	load_ok(&c, path, args + 2, 1, "file and one argument load");
	tap_is_int(c.max_tokens, 100, "file beats default");
	tap_is_str(c.base_path, "/arg", "argument beats file");
	tap_is_int(c.max_retries, 2, "default stays");
	config_release(&c);
	remove_temp(path);
}

static void test_upstream_env(void)
{
	static const char text[] = "upstream_url = http://file.example\n";
	char *path = temp_file(text, sizeof text - 1, 0600);
	struct config c;

	env_clear();
	env_set("ANTHROPIC_BASE_URL", "http://base.example");
	load_ok(&c, path, NULL, 0, "ANTHROPIC_BASE_URL loads");
	tap_is_str(c.upstream_url, "http://base.example", "ANTHROPIC_BASE_URL beats the file");
	config_release(&c);

	env_set("LLM_FCGI_UPSTREAM_URL", "http://ours.example");
	load_ok(&c, path, NULL, 0, "both variables load");
	tap_is_str(c.upstream_url, "http://ours.example",
		"LLM_FCGI_UPSTREAM_URL beats ANTHROPIC_BASE_URL");
	config_release(&c);

	const struct config_arg arg = {"upstream_url", "http://arg.example"};
	load_ok(&c, path, &arg, 1, "variables and argument load");
	tap_is_str(c.upstream_url, "http://arg.example", "argument beats both variables");
	config_release(&c);

	env_clear();
	env_set("ANTHROPIC_BASE_URL", "");
	load_ok(&c, path, NULL, 0, "empty ANTHROPIC_BASE_URL loads");
	tap_is_str(c.upstream_url, "http://file.example", "an empty ANTHROPIC_BASE_URL is ignored");
	config_release(&c);

	env_set("ANTHROPIC_BASE_URL", "ftp://x");
	load_fails(path, NULL, 0,
		"environment ANTHROPIC_BASE_URL: 'ftp://x' must start with http:// or https://",
		"bad ANTHROPIC_BASE_URL");
	remove_temp(path);
}

static void test_env_and_arg_errors(void)
{
	char *empty = fixture("empty.conf");
	env_clear();
	env_set("LLM_FCGI_MAX_TOKENS", "abc");
	load_fails(empty, NULL, 0, "environment LLM_FCGI_MAX_TOKENS: 'abc' is not an integer",
		"bad environment value");
	env_clear();
	env_set("LLM_FCGI_WHEN_FULL", "drop");
	load_fails(empty, NULL, 0,
		"environment LLM_FCGI_WHEN_FULL: 'drop' is not one of queue, shed",
		"bad environment enum");
	env_clear();
	const struct config_arg zero = {"max_tokens", "0"};
	load_fails(empty, &zero, 1, "argument max_tokens=0: 0 is out of range (1..1000000)",
		"bad argument value");
	const struct config_arg unknown = {"max_token", "5"};
	load_fails(empty, &unknown, 1, "argument max_token=5: unknown key 'max_token'",
		"unknown argument key");
	char *bad_file = fixture("bad-range.conf");
	const struct config_arg fix = {"max_tokens", "5"};
	char *want = strf("%s:3: max_tokens: 0 is out of range (1..1000000)", bad_file);
	load_fails(bad_file, &fix, 1, want, "a bad file line is an error even if overridden");
	free(want);
	free(bad_file);
	free(empty);
}

static void test_limits(void)
{
	char *path = fixture("tokens-over-limit.conf");
	env_clear();
	load_fails(path, NULL, 0, "max_tokens (9000) is greater than max_tokens_limit (8192)",
		"max_tokens over max_tokens_limit");
	struct config c;
	env_set("LLM_FCGI_MAX_TOKENS_LIMIT", "9000");
	load_ok(&c, path, NULL, 0, "max_tokens equal to max_tokens_limit");
	config_release(&c);
	env_clear();
	const struct config_arg lower = {"max_tokens_limit", "100"};
	char *empty = fixture("empty.conf");
	load_fails(empty, &lower, 1, "max_tokens (1024) is greater than max_tokens_limit (100)",
		"a limit below the default max_tokens");
	free(empty);
	free(path);
}

/* ---- the API key ---- */

static void key_file_fails(const char *content, size_t len, mode_t mode, const char *reason,
	const char *what)
{
	char *path = temp_file(content, len, mode);
	const struct config_arg arg = {"api_key_file", path};
	char *want = strf("api_key_file %s: %s", path, reason);
	char *empty = fixture("empty.conf");
	load_fails(empty, &arg, 1, want, what);
	free(empty);
	free(want);
	remove_temp(path);
}

static void test_api_key(void)
{
	static const char secret[] = "sk-ant-test-SECRET-0123";
	struct config c;
	char *empty = fixture("empty.conf");
	char *text;

	env_clear();
	load_ok(&c, empty, NULL, 0, "no key is not an error");
	tap_ok(c.api_key == NULL, "no key: api_key is NULL");
	text = dump(&c);
	tap_ok(strstr(text, "# api key: not set\n") != NULL, "dump: key not set");
	free(text);
	config_release(&c);

	env_set("ANTHROPIC_API_KEY", "");
	load_ok(&c, empty, NULL, 0, "an empty ANTHROPIC_API_KEY loads");
	tap_ok(c.api_key == NULL, "an empty ANTHROPIC_API_KEY is no key");
	config_release(&c);

	env_clear();
	env_set("ANTHROPIC_API_KEY", secret);
	load_ok(&c, empty, NULL, 0, "ANTHROPIC_API_KEY loads");
	tap_is_str(c.api_key, secret, "key from the environment");
	text = dump(&c);
	tap_ok(strstr(text, "# api key: set (from environment)\n") != NULL,
		"dump: key from the environment");
	tap_ok(strstr(text, secret) == NULL, "dump does not show the key");
	free(text);
	config_release(&c);

	/* The environment wins: a broken api_key_file is not even opened. */
	const struct config_arg nowhere = {"api_key_file", "/nonexistent/key"};
	load_ok(&c, empty, &nowhere, 1, "ANTHROPIC_API_KEY and a missing api_key_file load");
	tap_is_str(c.api_key, secret, "ANTHROPIC_API_KEY beats api_key_file");
	config_release(&c);

	env_set("ANTHROPIC_API_KEY", "sk-ant-line1\r\nX-Evil: 1");
	load_fails(empty, NULL, 0,
		"environment ANTHROPIC_API_KEY: the key contains a control character (CR, LF or "
		"NUL would break the request headers)",
		"key with CRLF in the environment");
	env_set("ANTHROPIC_API_KEY", " \t ");
	load_fails(empty, NULL, 0, "environment ANTHROPIC_API_KEY: the key is empty",
		"blank key in the environment");
	env_clear();

	/* From a file: trimmed, mode and ownership checked. */
	static const char content[] = "\n  sk-ant-test-SECRET-0123 \r\n\n";
	char *path = temp_file(content, sizeof content - 1, 0600);
	const struct config_arg arg = {"api_key_file", path};
	load_ok(&c, empty, &arg, 1, "api_key_file with mode 600 loads");
	tap_is_str(c.api_key, secret, "key from the file, trimmed");
	text = dump(&c);
	tap_ok(strstr(text, "# api key: set (from file)\n") != NULL, "dump: key from the file");
	tap_ok(strstr(text, secret) == NULL, "dump does not show the key");
	free(text);
	config_release(&c);

	static const mode_t modes[] = {0644, 0640, 0604, 0660, 0700 | 0010};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char *what = strf("api_key_file with mode %03o", (unsigned)modes[i]);
		key_file_fails(content, sizeof content - 1, modes[i],
			"must be readable only by its owner (chmod 600)", what);
		free(what);
	}
	if (geteuid() == 0) {
		/* Root can read anything, so only the owner check stands between a key file made by
		 * someone else and the server. */
		if (chown(path, 65534, (gid_t)-1) < 0)
			abort();
		char *want = strf("api_key_file %s: must be owned by the user the server runs as "
				  "(uid 0)",
			path);
		load_fails(empty, &arg, 1, want, "api_key_file owned by another user");
		free(want);
	} else {
		tap_ok(1, "api_key_file owned by another user # SKIP needs root to chown");
	}
	remove_temp(path);

	key_file_fails("sk-ant-one\nsk-ant-two\n", 22, 0600,
		"the key contains a control character (CR, LF or NUL would break the request "
		"headers)",
		"key file with two lines");
	key_file_fails("sk-ant-\0nul", 11, 0600,
		"the key contains a control character (CR, LF or NUL would break the request "
		"headers)",
		"key file with a NUL byte");
	key_file_fails(" \n\n", 3, 0600, "the key is empty", "blank key file");
	key_file_fails("", 0, 0600, "the key is empty", "empty key file");

	char *big = xmalloc(4097);
	memset(big, 'k', 4097);
	path = temp_file(big, 4096, 0600);
	const struct config_arg at_cap = {"api_key_file", path};
	load_ok(&c, empty, &at_cap, 1, "a 4096-byte key file loads");
	tap_ok(c.api_key && strlen(c.api_key) == 4096, "and the key is whole");
	config_release(&c);
	remove_temp(path);
	key_file_fails(big, 4097, 0600, "larger than 4096 bytes", "key file over 4 KiB");
	free(big);

	char *missing = fixture("missing-key");
	const struct config_arg missing_arg = {"api_key_file", missing};
	char *want = strf("api_key_file %s: %s", missing, strerror(ENOENT));
	load_fails(empty, &missing_arg, 1, want, "missing key file");
	free(want);
	free(missing);

	char *dir = strf("%s/tests/unit/fixtures/config", srcdir);
	const struct config_arg dir_arg = {"api_key_file", dir};
	want = strf("api_key_file %s: not a regular file", dir);
	load_fails(empty, &dir_arg, 1, want, "a directory as key file");
	free(want);
	free(dir);

	char *fifo = xstrdup("/tmp/test_config.fifo.XXXXXX");
	int fd = mkstemp(fifo);
	if (fd < 0 || close(fd) < 0 || unlink(fifo) < 0 || mkfifo(fifo, 0600) < 0)
		abort();
	const struct config_arg fifo_arg = {"api_key_file", fifo};
	want = strf("api_key_file %s: not a regular file", fifo);
	load_fails(empty, &fifo_arg, 1, want, "a FIFO as key file (no hang)");
	free(want);
	remove_temp(fifo);

	tap_ok(strstr(buf_cstr(&all_errors), "SECRET") == NULL &&
		       strstr(buf_cstr(&all_errors), "sk-ant") == NULL,
		"no error message shows a key");
	free(empty);
}

/* ---- the /v1/ settings: models, client keys ---- */

static void test_api_settings(void)
{
	struct config c;
	struct config_model m;
	const char *pos = NULL;
	config_defaults(&c);
	tap_is_int(c.max_body_bytes_api, 32 * 1024 * 1024, "default max_body_bytes_api");
	tap_ok(c.client_keys_file == NULL && c.client_keys.n == 0, "default: no client keys");
	tap_ok(config_model_next(&c, &pos, &m) == 1 && m.name == c.model && m.target == c.model &&
		       config_model_next(&c, &pos, &m) == 0,
	       "models empty: the configured model only");
	tap_ok(config_model_find(&c, "claude-sonnet-5-5", 17, &m) == 1, "it is found");
	tap_ok(config_model_find(&c, "claude-sonnet-5", 15, &m) == 0, "a prefix of it is not");

	set_ok(&c, "models", " m1, fast=m2 ,gpt-4o=m1 ");
	static const char *const names[] = {"m1", "fast", "gpt-4o"}, *const targets[] = {"m1", "m2", "m1"};
	pos = NULL;
	size_t i = 0;
	while (config_model_next(&c, &pos, &m)) {
		tap_ok(i < 3 && m.name_len == strlen(names[i]) && strncmp(m.name, names[i], m.name_len) == 0 &&
			       m.target_len == strlen(targets[i]) &&
			       strncmp(m.target, targets[i], m.target_len) == 0,
		       "models entry %zu: %s -> %s", i, i < 3 ? names[i] : "?", i < 3 ? targets[i] : "?");
		i++;
	}
	tap_is_int(i, 3, "three names");
	tap_ok(config_model_find(&c, "fast", 4, &m) == 1 && m.target_len == 2 && memcmp(m.target, "m2", 2) == 0,
	       "an alias resolves");
	tap_ok(config_model_find(&c, "m2", 2, &m) == 0, "an alias target alone is not a listed name");
	tap_ok(config_model_find(&c, "claude-sonnet-5-5", 17, &m) == 0,
	       "with a list, model is not implied");
	set_fails(&c, "models", "a=", "models: 'a=' must be model ids or alias=id, separated by spaces or commas");
	set_fails(&c, "models", "=b", "models: '=b' must be model ids or alias=id, separated by spaces or commas");
	set_fails(&c, "models", "a=b=c", "models: 'a=b=c' must be model ids or alias=id, separated by spaces or commas");
	set_fails(&c, "models", "m1 x=m2 m1", "models: 'm1 x=m2 m1' names a model twice");
	set_fails(&c, "models", "x=m1,x=m2", "models: 'x=m1,x=m2' names a model twice");
	set_fails(&c, "models", "a\nb", "models: 'a\\nb' must not contain control characters");
	tap_ok(!config_models_any(&c), "no '*' in models: nothing more for anybody");

	/* "*": more for identified clients (the handlers' business), no name of its own. */
	set_ok(&c, "models", "* fast=m2");
	pos = NULL;
	tap_ok(config_models_any(&c) && config_model_next(&c, &pos, &m) == 1 && m.name_len == 4 &&
		       config_model_next(&c, &pos, &m) == 0,
	       "'*' with an alias: the alias is the one listed name");
	tap_ok(config_model_find(&c, "*", 1, &m) == 0, "'*' is no model name");
	set_ok(&c, "models", "*");
	pos = NULL;
	tap_ok(config_models_any(&c) && config_model_next(&c, &pos, &m) == 1 && m.name == c.model &&
		       config_model_next(&c, &pos, &m) == 0,
	       "'*' alone: the configured model is the one listed name");
	set_fails(&c, "models", "*=m1", "models: '*=m1' has '*' in an alias: '*' stands alone");
	set_fails(&c, "models", "x=*", "models: 'x=*' has '*' in an alias: '*' stands alone");
	set_fails(&c, "models", "* *", "models: '* *' names a model twice");
	config_release(&c);

	/* client_keys_file: read once at load, with api_key_file's ownership and mode rule. */
	char *empty = fixture("empty.conf");
	static const char hashes[] =
		"# two keys\n"
		"ae09045e91a66c9c6b697433538340e418dd308d89d245910e68428b1a7cae63  -\n"
		"\n"
		"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD bob\n";
	char *path = temp_file(hashes, sizeof hashes - 1, 0600);
	const struct config_arg arg = {"client_keys_file", path};
	env_clear();
	load_ok(&c, empty, &arg, 1, "client_keys_file with mode 600 loads");
	tap_is_int(c.client_keys.n, 2, "two hashes loaded");
	tap_ok(client_keys_match(&c.client_keys, "sk-client-test", 14) && client_keys_match(&c.client_keys, "abc", 3),
	       "both keys match");
	char *text = dump(&c);
	tap_ok(strstr(text, "# client keys: 2 hash(es) loaded\n") != NULL, "dump: the number of hashes");
	free(text);
	config_release(&c);
	tap_ok(c.client_keys.hash == NULL && c.client_keys.n == 0, "released");
	if (chmod(path, 0640) < 0)
		abort();
	char *want = strf("client_keys_file %s: must be readable only by its owner (chmod 600)", path);
	load_fails(empty, &arg, 1, want, "client_keys_file readable by the group");
	free(want);
	remove_temp(path);

	static const char bad[] = "ae09045e91a66c9c6b697433538340e418dd308d89d245910e68428b1a7cae63\nsk-raw-key\n";
	path = temp_file(bad, sizeof bad - 1, 0600);
	const struct config_arg bad_arg = {"client_keys_file", path};
	want = strf("client_keys_file %s:2: expected a SHA-256 hash of a key: 64 hex digits "
		    "(printf %%s KEY | sha256sum)", path);
	load_fails(empty, &bad_arg, 1, want, "a key instead of a hash");
	free(want);
	remove_temp(path);
	const struct config_arg missing = {"client_keys_file", "/nonexistent/client-keys"};
	load_fails(empty, &missing, 1, "client_keys_file /nonexistent/client-keys: No such file or directory",
		   "a missing client_keys_file");
	tap_ok(strstr(buf_cstr(&all_errors), "sk-raw-key") == NULL, "no error message shows a key");
	free(empty);
}

/* ---- dump ---- */

static void test_dump(void)
{
	struct config c;
	config_defaults(&c);
	char *text = dump(&c);
	for (size_t i = 0; i < NKEYS; i++) {
		char *line = strf("\n%s = ", keys[i]);
		tap_ok(strstr(text, line) != NULL, "dump has %s", keys[i]);
		free(line);
	}
	size_t lines = 0;
	for (const char *p = text; *p; p += strcspn(p, "\n") + 1)
		lines += *p != '#';
	tap_is_int(lines, NKEYS, "dump has one setting per key, the rest are comments");
	static const char *const want[] = {
		"# settings: no file read\n",
		"\nupstream_url = https://api.anthropic.com\n",
		"\napi_key_file = \"\"\n",
		"\nsummarize_prompt = Summarize the text the user sends in a few sentences.",
		"\nconnect_timeout = 10\n",
		"\nmax_body_bytes = 1M\n",
		"\nmax_response_bytes = 8M\n",
		"\nbase_path = \"\"\n",
		"\nwhen_full = queue\n",
		"\nlog_level = info\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		tap_ok(strstr(text, want[i]) != NULL, "dump shows '%.*s'",
			(int)strcspn(want[i] + 1, "\n"), want[i] + 1);
	free(text);

	/* What the dump says, the parser reads back unchanged. */
	set_ok(&c, "summarize_prompt", "  a \"quoted\" # not a comment\\ \nsecond line\t");
	set_ok(&c, "allowed_origins", "https://a.example#x");
	set_ok(&c, "log_file", " leading blank");
	set_ok(&c, "model", "m\\n");
	set_ok(&c, "connect_timeout", "0.123456789");
	set_ok(&c, "max_body_bytes", "1536");
	set_ok(&c, "max_response_bytes", "512m");
	set_ok(&c, "api_key_file", "/run/key");
	text = dump(&c);
	tap_ok(strstr(text, "\nmax_body_bytes = 1536\n") &&
		       strstr(text, "\nmax_response_bytes = 512M\n"),
		"sizes dumped with the largest exact suffix");
	char *path = temp_file(text, strlen(text), 0600);
	struct config back;
	env_clear();
	/* A key in the environment keeps the missing api_key_file from being read. */
	env_set("ANTHROPIC_API_KEY", "sk-ant-roundtrip");
	load_ok(&back, path, NULL, 0, "a dump loads back");
	same_settings(&back, &c, "and dumps the same");
	tap_is_str(back.summarize_prompt, c.summarize_prompt, "the prompt survives");
	tap_is_str(back.log_file, c.log_file, "a leading blank survives");
	config_release(&back);
	free(text);
	remove_temp(path);

	/* A key set by hand has no known origin. */
	c.api_key = xstrdup("sk-ant-by-hand");
	text = dump(&c);
	tap_ok(strstr(text, "# api key: set (from caller)\n") && !strstr(text, "sk-ant"),
		"dump: key set by hand");
	free(text);
	config_release(&c);
}

/* ---- the example configuration ---- */

/* "# key = value" -> "key = value": uncomments the example's default settings. */
static char *uncomment(const char *text, size_t *count)
{
	struct buf out;
	buf_init(&out, TEXT_MAX);
	*count = 0;
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		size_t name = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz_");
		int setting = strncmp(p, "# ", 2) == 0 && name > 0 &&
			      strncmp(p + 2 + name, " = ", 3) == 0;
		if (setting)
			++*count;
		if (buf_append(&out, p + (setting ? 2 : 0), len - (setting ? 2 : 0)) < 0 ||
			buf_appendc(&out, '\n') < 0)
			abort();
		p += len + (p[len] == '\n');
	}
	return buf_detach(&out);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	struct buf b;
	char chunk[4096];
	size_t n;
	buf_init(&b, TEXT_MAX);
	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(&b, chunk, n) < 0)
			abort();
	if (ferror(f) || fclose(f) != 0)
		abort();
	return buf_detach(&b);
}

static void test_example(void)
{
	const char *top = getenv("builddir");
	char *path = strf("%s/conf/llm-fcgi.conf", top && *top ? top : ".");
	struct config c, defaults;
	env_clear();
	config_defaults(&defaults);

	load_ok(&c, path, NULL, 0, "the example configuration loads");
	same_settings(&c, &defaults, "and changes nothing");
	config_release(&c);

	char *text = read_text(path);
	tap_ok(text != NULL, "the example configuration is readable");
	size_t count = 0;
	char *open = uncomment(text ? text : "", &count);
	tap_is_int(count, NKEYS, "the example lists every key once");
	for (size_t i = 0; i < NKEYS; i++) {
		char *line = strf("\n%s = ", keys[i]);
		tap_ok(strstr(open, line) != NULL, "the example lists %s", keys[i]);
		free(line);
	}
	char *tmp = temp_file(open, strlen(open), 0600);
	load_ok(&c, tmp, NULL, 0, "the example with every default uncommented loads");
	same_settings(&c, &defaults, "and its defaults are the built-in ones");
	config_release(&c);
	remove_temp(tmp);
	free(open);
	free(text);
	config_release(&defaults);
	free(path);
}

/* What config_check_models writes for cfg on a day, and its result. */
static char *check_models_text(const struct config *cfg, int day, int *errors)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	if (!f)
		abort();
	*errors = config_check_models(cfg, day, f);
	if (fclose(f) != 0)
		abort();
	return text;
}

static void test_catalogue(void)
{
	char *models = strf("%s/data/models.json", srcdir);
	/* Sonnet 5.5 deprecated from the override: the date decides warning or error. */
	static const char over[] = "{\"models\": {\"claude-sonnet-5-5\": {\"status\": \"deprecated\", "
				   "\"retires\": \"2027-01-10\", \"replacement\": \"claude-opus-5-5\"}}}";
	char *over_path = temp_file(over, sizeof over - 1, 0600);
	struct config c;
	int errors;
	env_clear();
	const struct config_arg shipped[] = {{"models_file", models}, {"models_override_file", ""}};
	load_ok(&c, NULL, shipped, 2, "the shipped catalogue loads");
	tap_ok(c.have_catalogue && config_model_info(&c, "claude-sonnet-5-5", 17) != NULL,
	       "the default model is in it");
	tap_ok(config_model_info(&c, "claude-sonnet-4-0", 17) != NULL, "an alias is found");
	tap_ok(config_model_info(&c, "claude-nonesuch", 15) == NULL, "an unknown name is not");
	char *text = check_models_text(&c, 20261204, &errors);
	tap_is_str(text, "", "--check: the defaults are current: nothing to say");
	tap_is_int(errors, 0, "and no error");
	free(text);
	config_release(&c);

	const struct config_arg old[] = {{"models_file", models}, {"models_override_file", ""},
		{"model", "claude-sonnet-4-20250514"},
		{"models", "claude-haiku-5-5 fast=claude-3-5-haiku-latest claude-sonnet-4-20250514 claude-x"}};
	load_ok(&c, NULL, old, 4, "retired models load (the check is --check's)");
	text = check_models_text(&c, 20261204, &errors);
	char *want = strf(
		   "llm-fcgi: error: model 'claude-sonnet-4-20250514' was retired on 2026-06-15 (the API "
		   "answers 404); use 'claude-sonnet-4-6'\n"
		   "llm-fcgi: error: model 'claude-3-5-haiku-latest' was retired on 2026-02-19 (the API "
		   "answers 404); use 'claude-haiku-4-5-20251001'\n"
		   "llm-fcgi: warning: model 'claude-x' is not in the catalogue %s\n", models);
	tap_is_str(text, want, "--check: retired model and alias target");
	free(want);
	free(text);
	tap_is_int(errors, 2, "two errors");
	config_release(&c);

	const struct config_arg dep[] = {{"models_file", models}, {"models_override_file", over_path}};
	load_ok(&c, NULL, dep, 2, "an override is merged");
	text = check_models_text(&c, 20261204, &errors);
	tap_is_str(text, "llm-fcgi: warning: model 'claude-sonnet-5-5' is deprecated and retires on "
			 "2027-01-10; use 'claude-opus-5-5'\n", "--check: a deprecated model is a warning");
	tap_is_int(errors, 0, "and not an error");
	free(text);
	text = check_models_text(&c, 20270110, &errors);
	tap_ok(strstr(text, "error: model 'claude-sonnet-5-5' was retired on 2027-01-10") != NULL,
	       "from its retirement date it is an error, with no edit of the file");
	tap_is_int(errors, 1, "one error");
	free(text);
	config_release(&c);

	const struct config_arg missing[] = {{"models_file", "/nonexistent/models.json"}};
	load_fails(NULL, missing, 1, "/nonexistent/models.json: cannot open: No such file or directory",
		   "a models_file the settings name must exist");
	const struct config_arg bad_over[] = {{"models_file", models}, {"models_override_file", models}};
	load_ok(&c, NULL, bad_over, 2, "an override that repeats the base whole is fine");
	config_release(&c);
	const struct config_arg none[] = {{"models_file", ""}};
	load_ok(&c, NULL, none, 1, "models_file empty: no catalogue");
	text = check_models_text(&c, 20261204, &errors);
	tap_ok(!c.have_catalogue && strstr(text, "no model catalogue") != NULL && errors == 0,
	       "--check says the models are not checked");
	free(text);
	config_release(&c);

	const struct config_arg think[] = {{"summarize_thinking", "low"}, {"stream_thinking", "high"},
		{"models_file", ""}};
	load_ok(&c, NULL, think, 3, "thinking settings");
	tap_ok(c.summarize_thinking == ANTH_THINKING_LOW && c.stream_thinking == ANTH_THINKING_HIGH,
	       "are read");
	config_release(&c);
	config_defaults(&c);
	tap_ok(c.summarize_thinking == ANTH_THINKING_OFF && c.stream_thinking == ANTH_THINKING_OFF,
	       "default: off");
	config_release(&c);
	const struct config_arg bad_think[] = {{"stream_thinking", "max"}};
	load_fails(NULL, bad_think, 1,
		   "argument stream_thinking=max: 'max' is not one of off, low, medium, high",
		   "an unknown thinking level");
	remove_temp(over_path);
	free(models);
}

int main(void)
{
	const char *dir = getenv("srcdir");
	srcdir = dir && *dir ? dir : ".";
	buf_init(&all_errors, TEXT_MAX);

	test_defaults();
	test_types();
	test_good_file();
	test_quoted_file();
	test_small_files();
	test_bad_files();
	test_file_choice();
	test_precedence();
	test_upstream_env();
	test_env_and_arg_errors();
	test_limits();
	test_api_key();
	test_api_settings();
	test_dump();
	test_example();
	test_catalogue();

	buf_release(&all_errors);
	return tap_done();
}
