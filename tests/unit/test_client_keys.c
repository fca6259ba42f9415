/* The client-key file's format, the constant-time match and the Bearer header. */
#include <string.h>

#include "client_keys.h"
#include "tap.h"

/* sha256("sk-client-test") and sha256("abc") */
#define H_CLIENT "ae09045e91a66c9c6b697433538340e418dd308d89d245910e68428b1a7cae63"
#define H_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static int parse(const char *text, struct client_keys *k, unsigned long *line, const char **why)
{
	return client_keys_parse(k, text, strlen(text), line, why);
}

int main(void)
{
	struct client_keys k;
	unsigned long line;
	const char *why = NULL;

	tap_is_int(parse("# keys of the team\n\n" H_CLIENT "  -\n  " H_ABC "\talice\r\n", &k, &line, &why),
		   0, "hashes with labels, comments, blank lines, CRLF");
	tap_is_int(k.n, 2, "two hashes");
	tap_is_int(client_keys_match(&k, "sk-client-test", 14), 1, "a listed key matches");
	tap_is_int(client_keys_match(&k, "abc", 3), 1, "the second one too");
	tap_is_int(client_keys_match(&k, "sk-client-tesT", 14), 0, "a different key does not");
	tap_is_int(client_keys_match(&k, "sk-client-test", 13), 0, "nor a prefix of a key");
	tap_is_int(client_keys_match(&k, "", 0), 0, "nor an empty key");
	client_keys_release(&k);

	tap_is_int(parse(H_ABC, &k, &line, &why), 0, "no final newline");
	tap_is_int(k.n, 1, "one hash");
	client_keys_release(&k);
	char upper[] = H_CLIENT;
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	tap_is_int(parse(upper, &k, &line, &why), 0, "upper-case hex");
	tap_is_int(client_keys_match(&k, "sk-client-test", 14), 1, "matches the same key");
	client_keys_release(&k);

	tap_is_int(parse("", &k, &line, &why), 0, "an empty file is valid");
	tap_is_int(k.n, 0, "and lists no key");
	tap_is_int(client_keys_match(&k, "abc", 3), 0, "so nothing matches");
	client_keys_release(&k);

	static const struct {
		const char *text;
		unsigned long line;
		const char *why, *name;
	} bad[] = {
		{"sk-ant-raw-key\n", 1, "expected a SHA-256", "a key instead of its hash"},
		{"\n" H_ABC "0\n", 2, "a label after it needs a blank", "65 hex digits"},
		{H_ABC "\n" "ba7816bf\n", 2, "expected a SHA-256", "a short hash"},
		{"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n", 1,
		 "the hash of an empty key", "the hash of the empty string"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		line = 0;
		int rc = parse(bad[i].text, &k, &line, &why);
		tap_ok(rc == -1 && line == bad[i].line && why && strstr(why, bad[i].why) && k.n == 0 &&
			       !k.hash,
		       "refused: %s (line %lu: %s)", bad[i].name, line, why ? why : "-");
	}
	static const char nul[] = H_ABC "\n\0\n";
	tap_ok(client_keys_parse(&k, nul, sizeof nul - 1, &line, &why) == -1 && line == 2,
	       "a NUL byte is refused");

	size_t n = 0;
	const char *t = client_keys_bearer("Bearer sk-client-test", &n);
	tap_ok(t && n == 14 && strncmp(t, "sk-client-test", n) == 0, "Bearer token");
	t = client_keys_bearer("  bearer \t tok  ", &n);
	tap_ok(t && n == 3 && strncmp(t, "tok", 3) == 0, "scheme in any case, blanks around");
	tap_ok(client_keys_bearer("Basic dXNlcjpwYXNz", &n) == NULL, "another scheme");
	tap_ok(client_keys_bearer("Bearertok", &n) == NULL, "no blank after the scheme");
	tap_ok(client_keys_bearer(NULL, &n) == NULL, "no header");
	t = client_keys_bearer("Bearer ", &n);
	tap_ok(t && n == 0, "an empty token has length 0");
	return tap_done();
}
