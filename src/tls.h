/* tls: the CA store, built once before the workers fork and handed to every TLS context.
 *
 * Left to itself, every worker would parse the CA bundle on its first TLS connection: about a
 * megabyte of heap per process, for data that is the same everywhere. Built in the parent, the
 * store's pages are shared copy-on-write by all workers. The only includer of OpenSSL's TLS headers
 * (client_keys uses libcrypto's digests). The caller uses it only when libcurl's TLS backend is
 * OpenSSL (upstream_tls_is_openssl; otherwise libcurl loads the bundle itself), so that this
 * module knows nothing of libcurl. */
#ifndef LLM_TLS_H
#define LLM_TLS_H

/* Loads ca_file, or the system's default CA locations when ca_file is NULL or "". Returns 0, or
 * -1 when the certificates cannot be loaded (logged). Replaces a store loaded before. */
int tls_init(const char *ca_file);
/* 1 when a shared store is ready for tls_attach. */
int tls_shared(void);
/* Gives an OpenSSL SSL_CTX (as libcurl's CURLOPT_SSL_CTX_FUNCTION passes it) the shared store. */
void tls_attach(void *ssl_ctx);
/* Lets a context (an OpenSSL SSL_CTX) read ahead: a record comes in one read instead of two (its
 * header, then the rest), so a relayed delta costs one read. Whoever reads must then ask
 * tls_pending before waiting on the socket. */
void tls_read_ahead(void *ssl_ctx);
/* The connection (an OpenSSL SSL*) whose handshake finished last in this process, in a context
 * tls_read_ahead set up; NULL after tls_forget_connection (call it before connecting: a closed
 * connection's SSL* is freed). */
const void *tls_connection(void);
void tls_forget_connection(void);
/* 1 when the connection (an OpenSSL SSL*) holds bytes it read but has not handed out yet. */
int tls_pending(const void *ssl);
void tls_cleanup(void);

#endif
