#include "client_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "hex.h"

/* libcrypto's SHA-256: a hard dependency already (libcurl and tls.c use OpenSSL), and a
 * maintained, optimised implementation beats a private copy. */
static void digest(const void *p, size_t n, unsigned char out[CLIENT_KEYS_DIGEST_SIZE])
{
	unsigned len = 0;
	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) || len != CLIENT_KEYS_DIGEST_SIZE)
		abort(); /* only a broken libcrypto fails here; no key may match then */
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line without its '\n'. Returns 1 with out filled and *label (a copy, or NULL), 0 for a
 * line without a hash, or -1. */
static int parse_line(const char *p, size_t n, unsigned char out[CLIENT_KEYS_DIGEST_SIZE],
		      char **label, const char **why)
{
	while (n > 0 && is_blank((unsigned char)*p)) {
		p++;
		n--;
	}
	while (n > 0 && is_blank((unsigned char)p[n - 1]))
		n--;
	if (n == 0 || *p == '#')
		return 0;
	for (size_t i = 0; i < 2 * CLIENT_KEYS_DIGEST_SIZE; i++) {
		if (i >= n || hex_value((unsigned char)p[i]) < 0) {
			*why = "expected a SHA-256 hash of a key: 64 hex digits "
			       "(printf %s KEY | sha256sum)";
			return -1;
		}
	}
	if (n > 2 * CLIENT_KEYS_DIGEST_SIZE && !is_blank((unsigned char)p[2 * CLIENT_KEYS_DIGEST_SIZE])) {
		*why = "a hash has 64 hex digits; a label after it needs a blank in between";
		return -1;
	}
	for (size_t i = 0; i < CLIENT_KEYS_DIGEST_SIZE; i++)
		out[i] = (unsigned char)(hex_value((unsigned char)p[2 * i]) << 4 |
					 hex_value((unsigned char)p[2 * i + 1]));
	/* What "printf %s "$UNSET" | sha256sum" writes: it would let an empty key in. */
	unsigned char empty[CLIENT_KEYS_DIGEST_SIZE];
	digest("", 0, empty);
	if (memcmp(out, empty, sizeof empty) == 0) {
		*why = "this is the hash of an empty key";
		return -1;
	}
	const char *l = p + 2 * CLIENT_KEYS_DIGEST_SIZE;
	size_t ln = n - 2 * CLIENT_KEYS_DIGEST_SIZE;
	while (ln > 0 && is_blank((unsigned char)*l)) {
		l++;
		ln--;
	}
	*label = ln == 0 || (ln == 1 && *l == '-') ? NULL : xstrndup(l, ln);
	return 1;
}

int client_keys_parse(struct client_keys *k, const char *text, size_t len, unsigned long *lineno,
		      const char **why)
{
	k->hash = NULL;
	k->label = NULL;
	k->n = 0;
	size_t cap = 0;
	*lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *p = text + pos;
		const char *nl = memchr(p, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - p) : len - pos;
		pos += n + (nl != NULL);
		++*lineno;
		if (memchr(p, '\0', n)) {
			*why = "NUL byte in line";
			client_keys_release(k);
			return -1;
		}
		unsigned char h[CLIENT_KEYS_DIGEST_SIZE];
		char *label = NULL;
		int got = parse_line(p, n, h, &label, why);
		if (got < 0) {
			client_keys_release(k);
			return -1;
		}
		if (got == 0)
			continue;
		if (k->n == cap) {
			cap = cap ? 2 * cap : 8;
			k->hash = xrealloc(k->hash, cap * sizeof *k->hash);
			k->label = xrealloc(k->label, cap * sizeof *k->label);
		}
		k->label[k->n] = label;
		memcpy(k->hash[k->n++], h, CLIENT_KEYS_DIGEST_SIZE);
	}
	return 0;
}

void client_keys_release(struct client_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->label[i]);
	free(k->label);
	k->label = NULL;
	free(k->hash);
	k->hash = NULL;
	k->n = 0;
}

long client_keys_find(const struct client_keys *k, const char *key, size_t n)
{
	unsigned char h[CLIENT_KEYS_DIGEST_SIZE];
	digest(key, n, h);
	/* No early exit: every listed hash is compared in full (CRYPTO_memcmp's time does not
	 * depend on the contents), whatever matched; the index is picked without a branch. */
	long found = -1;
	for (size_t i = 0; i < k->n; i++) {
		long eq = CRYPTO_memcmp(h, k->hash[i], CLIENT_KEYS_DIGEST_SIZE) == 0;
		found = (found & ~(-eq)) | ((long)i & -eq);
	}
	return found;
}

int client_keys_match(const struct client_keys *k, const char *key, size_t n)
{
	return client_keys_find(k, key, n) >= 0;
}

const char *client_keys_bearer(const char *value, size_t *n)
{
	if (!value)
		return NULL;
	while (is_blank((unsigned char)*value))
		value++;
	if (strncasecmp(value, "Bearer", 6) != 0 || !is_blank((unsigned char)value[6]))
		return NULL;
	const char *p = value + 6;
	while (is_blank((unsigned char)*p))
		p++;
	size_t len = strlen(p);
	while (len > 0 && is_blank((unsigned char)p[len - 1]))
		len--;
	*n = len;
	return p;
}
