#include "tls.h"

#include <malloc.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string.h>

#include "log.h"

/* Built before the fork and only read afterwards: process state shared copy-on-write. */
static X509_STORE *store;

/* OpenSSL 3 builds a provider's algorithm objects on the first fetch of each kind of operation.
 * Done here, in the parent, that work lands in pages the workers share instead of in each
 * worker's private memory. A context fetches the ciphers, digests and the groups' key managers;
 * the handshake itself then needs the signatures (the server's CertificateVerify), the key
 * exchange, HKDF and HMAC: one fetch of each builds all of its kind. Measured with bench/tls-mem,
 * private memory per worker mid-stream over https: 1,128 KB without any warm-up, 536 KB with the
 * context alone, 448 KB with the four fetches. */
static void warm_up(void)
{
	SSL_CTX_free(SSL_CTX_new(TLS_client_method()));
	EVP_SIGNATURE_free(EVP_SIGNATURE_fetch(NULL, "RSA", NULL));
	EVP_KEYEXCH_free(EVP_KEYEXCH_fetch(NULL, "X25519", NULL));
	EVP_KDF_free(EVP_KDF_fetch(NULL, "HKDF", NULL));
	EVP_MAC_free(EVP_MAC_fetch(NULL, "HMAC", NULL));
	ERR_clear_error();
}

int tls_init(const char *ca_file)
{
	tls_cleanup();
	X509_STORE *s = X509_STORE_new();
	if (!s)
		return -1;
	int ok = ca_file && *ca_file ? X509_STORE_load_file(s, ca_file) : X509_STORE_set_default_paths(s);
	if (!ok) {
		unsigned long e = ERR_get_error();
		log_error("cannot load CA certificates from %s: %s",
			  ca_file && *ca_file ? ca_file : "the system's default locations",
			  e ? ERR_reason_error_string(e) : "unknown error");
		ERR_clear_error();
		X509_STORE_free(s);
		return -1;
	}
	store = s;
	warm_up();
	return 0;
}

int tls_shared(void)
{
	return store != NULL;
}

/* The connection whose handshake finished last: a worker has one at a time. */
static const SSL *handshaken;

/* At the end of each handshake: note the connection (tls_connection), and give memory back. The
 * handshake's transient allocations (certificate decoding, key exchange, the 16 KB handshake
 * buffer) are freed when it ends, but their pages stay in the worker's heap, dirty and private;
 * malloc_trim hands the whole free pages among them back to the kernel: once per connection. */
static void on_info(const SSL *ssl, int where, int ret)
{
	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE))
		return;
	handshaken = ssl;
	malloc_trim(0);
}

void tls_attach(void *ssl_ctx)
{
	/* set1 takes its own reference: the store outlives every context that uses it. */
	SSL_CTX_set1_cert_store(ssl_ctx, store);
}

void tls_read_ahead(void *ssl_ctx)
{
	SSL_CTX_set_read_ahead(ssl_ctx, 1);
	SSL_CTX_set_info_callback(ssl_ctx, on_info);
}

void tls_forget_connection(void)
{
	handshaken = NULL;
}

const void *tls_connection(void)
{
	return handshaken;
}

int tls_pending(const void *ssl)
{
	return SSL_has_pending(ssl);
}

void tls_cleanup(void)
{
	X509_STORE_free(store);
	store = NULL;
}
