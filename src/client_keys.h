/* client_keys: the keys clients must present on the /v1/ routes when client_keys_file is set (pure).
 *
 * The file holds SHA-256 hashes, never keys: a leaked file or a core dump gives nobody a key.
 * A presented key is hashed and compared with every listed hash in constant time, so neither
 * the answer's timing nor an early exit tells how much of a hash matched or which one did. */
#ifndef LLM_CLIENT_KEYS_H
#define LLM_CLIENT_KEYS_H

#include <stddef.h>

#define CLIENT_KEYS_DIGEST_SIZE 32 /* SHA-256 */

struct client_keys {
	unsigned char (*hash)[CLIENT_KEYS_DIGEST_SIZE];
	char **label; /* per hash: the text after it, or NULL for none or "-" (sha256sum's) */
	size_t n;
};

/* Parses the file's text: per line one hash as 64 hex digits (either case), optionally followed
 * by a blank and a label ("sha256sum" output, "HASH  -", fits); blank lines and lines starting
 * with '#' are skipped. Returns 0 (k then owns an array, possibly empty), or -1 with *lineno and
 * *why (static text) set and k empty. */
int client_keys_parse(struct client_keys *k, const char *text, size_t len, unsigned long *lineno,
		      const char **why);
void client_keys_release(struct client_keys *k);

/* 1 when the n bytes at key hash to a listed hash, else 0. */
int client_keys_match(const struct client_keys *k, const char *key, size_t n);
/* The index of the listed hash the n bytes at key hash to, or -1; every hash is compared, as by
 * client_keys_match. */
long client_keys_find(const struct client_keys *k, const char *key, size_t n);

/* The token of an "Authorization: Bearer TOKEN" value (scheme case-insensitive, blanks around
 * the token ignored), or NULL when value is NULL or another scheme. *n is the token's length. */
const char *client_keys_bearer(const char *value, size_t *n);

#endif
