#include "fcgi_io.h"

#include <errno.h>
#include <fcgiapp.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

struct fcgi_conn {
	FCGX_Request req;
	int accepted; /* a request is open and must be finished */
};

int fcgi_io_init(void)
{
	return FCGX_Init() == 0 ? 0 : -1;
}

int fcgi_io_is_cgi(void)
{
	return FCGX_IsCGI();
}

void fcgi_io_shutdown_pending(void)
{
	FCGX_ShutdownPending();
}

static int listen_unix(const char *path, int backlog)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		log_error("socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	/* A stale file from a crashed run would make bind fail; a live one is not ours to take. */
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		if (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(probe);
			close(fd);
			log_error("socket %s is already in use", path);
			return -1;
		}
		close(probe);
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
		log_error("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* The web server usually runs as another user of the same group. */
	if (chmod(path, 0660) < 0)
		log_warn("chmod %s: %s", path, strerror(errno));
	return fd;
}

static int listen_tcp(const char *spec, int backlog)
{
	const char *colon = strrchr(spec, ':');
	char *host = xstrndup(spec, (size_t)(colon - spec));
	const char *port = colon + 1;
	/* A bare ":PORT" means loopback: the FastCGI socket must never face untrusted peers. */
	const char *node = *host ? host : "127.0.0.1";
	if (node[0] == '[') { /* [::1]:9000 */
		node++;
		host[strlen(host) - 1] = '\0';
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(node, port, &hints, &res);
	if (rc != 0) {
		log_error("cannot resolve %s: %s", spec, gai_strerror(rc));
		free(host);
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		log_error("cannot listen on %s: %s", spec, strerror(errno));
	freeaddrinfo(res);
	free(host);
	return fd;
}

int fcgi_io_listen(const char *spec, int backlog)
{
	const char *colon = strrchr(spec, ':');
	if (spec[0] == '/' || spec[0] == '.' || !colon)
		return listen_unix(spec, backlog);
	return listen_tcp(spec, backlog);
}

/* ---- FastCGI requests ---- */

static const char *fcgi_param(void *ctx, const char *name)
{
	struct fcgi_conn *c = ctx;
	return FCGX_GetParam(name, c->req.envp);
}

static ssize_t fcgi_read(void *ctx, char *p, size_t n)
{
	struct fcgi_conn *c = ctx;
	int want = n > 65536 ? 65536 : (int)n;
	int got = FCGX_GetStr(p, want, c->req.in);
	if (got > 0)
		return got;
	/* 0 is the end of the body, unless the server dropped the connection mid-body. */
	return FCGX_GetError(c->req.in) != 0 ? -1 : 0;
}

static int fcgi_write(void *ctx, const char *p, size_t n)
{
	struct fcgi_conn *c = ctx;
	while (n > 0) {
		int chunk = n > 65536 ? 65536 : (int)n;
		if (FCGX_PutStr(p, chunk, c->req.out) != chunk)
			return -1;
		p += chunk;
		n -= (size_t)chunk;
	}
	return 0;
}

static int fcgi_flush(void *ctx)
{
	struct fcgi_conn *c = ctx;
	return FCGX_FFlush(c->req.out) == 0 ? 0 : -1;
}

/* No web server sends FCGI_ABORT_REQUEST: a client that leaves shows up as the server closing the
 * connection, which poll sees as readable with a zero-byte peek. */
static int fcgi_client_gone(void *ctx)
{
	struct fcgi_conn *c = ctx;
	struct pollfd p = {.fd = c->req.ipcFd, .events = POLLIN | POLLRDHUP};
	if (c->req.ipcFd < 0)
		return 1;
	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP))
		return 1;
	char ch;
	ssize_t n = recv(c->req.ipcFd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int fcgi_watch_fd(void *ctx)
{
	struct fcgi_conn *c = ctx;
	return c->req.ipcFd;
}

static const struct io_ops fcgi_ops = {
	.param = fcgi_param,
	.read = fcgi_read,
	.write = fcgi_write,
	.flush = fcgi_flush,
	.client_gone = fcgi_client_gone,
	.watch_fd = fcgi_watch_fd,
	.is_cgi = 0,
};

struct fcgi_conn *fcgi_conn_new(int listen_fd)
{
	struct fcgi_conn *c = xcalloc(1, sizeof *c);
	FCGX_InitRequest(&c->req, listen_fd, 0);
	return c;
}

int fcgi_conn_accept(struct fcgi_conn *c, struct io *io)
{
	c->accepted = 0;
	int rc = FCGX_Accept_r(&c->req);
	if (rc < 0)
		return -1;
	c->accepted = 1;
	io->ops = &fcgi_ops;
	io->ctx = c;
	return 0;
}

void fcgi_conn_finish(struct fcgi_conn *c)
{
	if (c->accepted)
		FCGX_Finish_r(&c->req);
	c->accepted = 0;
}

void fcgi_conn_free(struct fcgi_conn *c)
{
	if (!c)
		return;
	fcgi_conn_finish(c);
	FCGX_Free(&c->req, 1);
	free(c);
}

/* ---- plain CGI: one request on the environment, stdin and stdout ---- */

struct cgi {
	unsigned long long consumed; /* body bytes read from stdin */
};

static const char *cgi_param(void *ctx, const char *name)
{
	return getenv(name);
}

static ssize_t cgi_read(void *ctx, char *p, size_t n)
{
	struct cgi *c = ctx;
	for (;;) {
		ssize_t got = read(STDIN_FILENO, p, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got > 0)
			c->consumed += (unsigned long long)got;
		return got;
	}
}

static int cgi_write(void *ctx, const char *p, size_t n)
{
	return fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

static int cgi_flush(void *ctx)
{
	return fflush(stdout) == 0 ? 0 : -1;
}

/* The web server reads our stdout through a pipe or socket; when it gives up on the client it
 * closes that, and poll reports an error on our end. */
static int cgi_client_gone(void *ctx)
{
	struct pollfd p = {.fd = STDOUT_FILENO, .events = 0};
	if (poll(&p, 1, 0) <= 0)
		return 0;
	return (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0;
}

/* Poll can only report the error on stdout, which it does without being asked for events; a
 * readable descriptor is what upstream waits on, so CGI relies on client_gone checks instead. */
static int cgi_watch_fd(void *ctx)
{
	return -1;
}

static const struct io_ops cgi_ops = {
	.param = cgi_param,
	.read = cgi_read,
	.write = cgi_write,
	.flush = cgi_flush,
	.client_gone = cgi_client_gone,
	.watch_fd = cgi_watch_fd,
	.is_cgi = 1,
};

void fcgi_io_cgi(struct io *io)
{
	io->ops = &cgi_ops;
	io->ctx = xcalloc(1, sizeof(struct cgi));
}

/* A body refused unread (413 from CONTENT_LENGTH) must still be drained: Apache writes the whole
 * body before it reads the answer, and a CGI that exits with the body unread makes that write
 * fail, so the client would get no answer at all. The wait for each piece is bounded. */
static void cgi_drain(struct cgi *c)
{
	const char *cl = getenv("CONTENT_LENGTH");
	unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
	char chunk[16384];
	while (c->consumed < want) {
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			return;
		unsigned long long left = want - c->consumed;
		ssize_t got = cgi_read(c, chunk, left < sizeof chunk ? (size_t)left : sizeof chunk);
		if (got <= 0)
			return;
	}
}

void fcgi_io_cgi_finish(struct io *io)
{
	fflush(stdout);
	cgi_drain(io->ctx);
	free(io->ctx);
	io->ctx = NULL;
}
