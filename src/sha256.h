/* sha256: SHA-256 (FIPS 180-4), for the client-key hashes (pure).
 *
 * Small and self-contained rather than libcrypto: libcurl may be built against GnuTLS or another
 * TLS library, so linking OpenSSL would be a new run-time dependency for 100 lines of code. */
#ifndef LLM_SHA256_H
#define LLM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE (2 * SHA256_DIGEST_SIZE + 1) /* with the NUL */

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;    /* message length so far */
	unsigned char block[64];
	size_t used;       /* bytes waiting in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
/* Writes the digest and wipes the state. */
void sha256_final(struct sha256 *s, unsigned char out[SHA256_DIGEST_SIZE]);
/* One call: the digest of n bytes at p. */
void sha256(const void *p, size_t n, unsigned char out[SHA256_DIGEST_SIZE]);
/* Lower-case hex of a digest, NUL-terminated. */
void sha256_hex(const unsigned char digest[SHA256_DIGEST_SIZE], char out[SHA256_HEX_SIZE]);

#endif
