#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string.h>

#include "log.h"

/* Built before the fork and only read afterwards: process state shared copy-on-write. */
static X509_STORE *store;

/* OpenSSL 3 sets up its providers and algorithm tables on first use. Done here, in the parent,
 * that work lands in pages the workers share instead of in each worker's private memory (about
 * 150 KB per worker, measured). */
static void warm_up(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_free(ctx);
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

void tls_attach(void *ssl_ctx)
{
	/* set1 takes its own reference: the store outlives every context that uses it. */
	SSL_CTX_set1_cert_store(ssl_ctx, store);
}

void tls_read_ahead(void *ssl_ctx)
{
	SSL_CTX_set_read_ahead(ssl_ctx, 1);
}

int tls_pending(void *ssl)
{
	return SSL_has_pending(ssl);
}

void tls_cleanup(void)
{
	X509_STORE_free(store);
	store = NULL;
}
