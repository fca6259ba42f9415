#include "fcgi_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

struct fcgi_conn {
	FCGX_Request req;
	int accepted;     /* a request is open and must be finished */
	int listen_fd;
	int epfd;         /* this worker's wait on listen_fd */
	const char *web_servers; /* FCGI_WEB_SERVER_ADDRS (borrowed from the environment), or NULL */
};

int fcgi_io_init(void)
{
	return FCGX_Init() == 0 ? 0 : -1;
}

int fcgi_io_is_cgi(void)
{
	return FCGX_IsCGI();
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
	/* 0 is the end of the body, unless the server dropped the connection mid-body or sent
	 * nothing for client_read_timeout (SO_RCVTIMEO: EAGAIN). */
	int err = FCGX_GetError(c->req.in);
	if (err == EAGAIN || err == EWOULDBLOCK)
		log_info("the body stalled: nothing from the web server within client_read_timeout");
	return err != 0 ? -1 : 0;
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
	/* libfcgi never accepts by itself (no listening socket): fcgi_conn_accept hands it each
	 * connection, with the read timeout set, and gets control back when one fails. */
	FCGX_InitRequest(&c->req, -1, 0);
	c->listen_fd = listen_fd;
	c->web_servers = getenv("FCGI_WEB_SERVER_ADDRS");
	if (c->web_servers && !*c->web_servers)
		c->web_servers = NULL;
	int fl = fcntl(listen_fd, F_GETFL);
	if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_error("cannot make the listening socket non-blocking: %s", strerror(errno));
	/* EPOLLEXCLUSIVE: a connection wakes one waiting worker, not the whole pool. */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = listen_fd};
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0 || epoll_ctl(c->epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
		log_error("cannot wait on the listening socket: %s", strerror(errno));
	return c;
}

/* Does one FCGI_WEB_SERVER_ADDRS entry (an IPv4 or IPv6 address) name this peer? */
static int addr_matches(const char *entry, const struct sockaddr_storage *sa)
{
	unsigned char want[sizeof(struct in6_addr)];
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return inet_pton(AF_INET, entry, want) == 1 && memcmp(want, &in->sin_addr, 4) == 0;
	}
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	if (inet_pton(AF_INET6, entry, want) == 1)
		return memcmp(want, &in6->sin6_addr, 16) == 0;
	/* An IPv4 entry matches the peer's IPv4-mapped address on a dual-stack socket. */
	return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && inet_pton(AF_INET, entry, want) == 1 &&
	       memcmp(want, &in6->sin6_addr.s6_addr[12], 4) == 0;
}

/* A TCP peer must be listed in FCGI_WEB_SERVER_ADDRS (comma-separated), when it is set. */
static int peer_allowed(const struct fcgi_conn *c, const struct sockaddr_storage *sa)
{
	if (!c->web_servers)
		return 1;
	char entry[INET6_ADDRSTRLEN];
	for (const char *p = c->web_servers; *p;) {
		size_t n = strcspn(p, ", ");
		if (n > 0 && n < sizeof entry) {
			memcpy(entry, p, n);
			entry[n] = '\0';
			if (addr_matches(entry, sa))
				return 1;
		}
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

/* The next connection on the listening socket: its fd, -1 when there is none to take (another
 * worker took it, the peer left, or it is not allowed), -2 when the socket is unusable. */
static int accept_peer(struct fcgi_conn *c, double read_timeout)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	int fd = accept4(c->listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
	if (fd < 0) {
		switch (errno) {
		case EAGAIN: case EINTR: case ECONNABORTED: case EPROTO: case ECONNRESET:
		case ETIMEDOUT: case EHOSTUNREACH: case ENETUNREACH:
			return -1;
		default:
			log_error("accept: %s", strerror(errno));
			return -2;
		}
	}
	if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) {
		if (!peer_allowed(c, &sa)) {
			close(fd);
			return -1;
		}
		/* Stream events go out as they come: no Nagle delay. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	/* Bounds every read libfcgi makes on this connection; a read that times out fails with
	 * EAGAIN, which libfcgi takes as an error: the connection is closed. Writes stay unbounded
	 * (the web server's own timeouts cover a client that stops reading). */
	struct timeval tv = {.tv_sec = (time_t)read_timeout,
			     .tv_usec = (suseconds_t)((read_timeout - (double)(time_t)read_timeout) * 1e6)};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	/* As libfcgi's own accept did: hand the connection over once its first bytes are there, so
	 * that a peer that connects and sends nothing is dropped before libfcgi allocates for it. */
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, (int)(read_timeout * 1000)) <= 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Until the web server sends the next request on a kept connection (FCGI_KEEP_CONN): 1 when it
 * did, 0 when it stayed silent for read_timeout (the connection is dropped then, so that an idle
 * kept connection does not pin the worker), -1 on a signal. */
static int wait_kept(struct fcgi_conn *c, const sigset_t *waitmask, double read_timeout)
{
	struct pollfd p = {.fd = c->req.ipcFd, .events = POLLIN};
	struct timespec ts = {.tv_sec = (time_t)read_timeout,
			      .tv_nsec = (long)((read_timeout - (double)(time_t)read_timeout) * 1e9)};
	int n = ppoll(&p, 1, &ts, waitmask);
	if (n < 0)
		return errno == EINTR ? -1 : 0;
	return n > 0;
}

/* Waits until a connection is ready (0 when it is, 1 on a signal, -1 on failure) and takes it
 * into c->req.ipcFd when it can. */
static int wait_connection(struct fcgi_conn *c, const sigset_t *waitmask, double read_timeout)
{
	if (c->req.ipcFd >= 0) {
		int r = wait_kept(c, waitmask, read_timeout);
		if (r < 0)
			return 1;
		if (r == 0)
			FCGX_Free(&c->req, 1);
		return 0;
	}
	struct epoll_event ev;
	if (epoll_pwait(c->epfd, &ev, 1, -1, waitmask) < 0) {
		if (errno == EINTR)
			return 1;
		log_error("epoll_pwait: %s", strerror(errno));
		return -1;
	}
	int fd = accept_peer(c, read_timeout);
	if (fd == -2)
		return -1;
	c->req.ipcFd = fd;
	return 0;
}

int fcgi_conn_accept(struct fcgi_conn *c, struct io *io, const sigset_t *waitmask, double read_timeout)
{
	fcgi_conn_finish(c);
	for (;;) {
		int r = wait_connection(c, waitmask, read_timeout);
		if (r != 0)
			return r;
		if (c->req.ipcFd < 0)
			continue;
		/* FCGX_Accept_r first "finishes" the previous request and closes the connection unless
		 * it was kept: keepConnection = 1 makes it leave the one just handed over alone; the
		 * BEGIN_REQUEST record then sets the flag the web server asked for. */
		c->req.keepConnection = 1;
		if (FCGX_Accept_r(&c->req) == 0)
			break;
		/* The peer stalled (read timeout), broke the protocol or left: libfcgi closed the
		 * connection, and with no listening socket of its own it returned. Next one. */
		log_debug("a FastCGI connection failed before its request was whole; closed");
	}
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
	if (c->epfd >= 0)
		close(c->epfd);
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
