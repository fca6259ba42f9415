/* bench/floor.c — the CPU floor of relaying one delta, by how the relay waits.
 *
 * A worker of llm-fcgi does per relayed delta: one wait (poll on the upstream socket and the
 * client's FastCGI connection), one read of the upstream's TCP socket, one write to the FastCGI
 * socket. This program does exactly that and nothing else (no parsing, no framing), with N
 * relays, so that what the kernel and the machine charge for the design itself can be compared
 * with the pool's measured CPU per delta:
 *
 *   process  N processes, one relay each (llm-fcgi's prefork pool: a process per stream)
 *   thread   N threads of one process, one relay each (a threaded pool)
 *   epoll    one thread relays all N with epoll (an event loop such as nginx's)
 *
 * The driver sends every relay one ~140-byte SSE event over loopback TCP, waits until each has
 * come out of its Unix socket, sleeps 10 ms (the emulator's pace), and again, ROUNDS times. The
 * relays' CPU (user + system, getrusage) ÷ deltas relayed is the figure. Prints one JSON object.
 *
 * Usage: floor process|thread|epoll N ROUNDS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char EVENT[] = "event: content_block_delta\n"
			    "data: {\"type\":\"content_block_delta\",\"index\":0,"
			    "\"delta\":{\"type\":\"text_delta\",\"text\":\" word\"}}\n\n";

struct relay {
	int up;    /* the "upstream" TCP socket it reads */
	int out;   /* the "FastCGI" Unix socket it writes */
	int watch; /* the "client" connection it watches too, never readable */
};

static int rounds;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* Writes all n bytes; the sockets are blocking, so anything short is an error. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

/* Relays what one read brought; 0 when the upstream closed. */
static int relay_once(const struct relay *r)
{
	char buf[16384];
	ssize_t k = recv(r->up, buf, sizeof buf, 0);
	if (k < 0 && errno == EINTR)
		return 1;
	if (k <= 0)
		return 0;
	write_all(r->out, buf, (size_t)k);
	return 1;
}

/* One relay as llm-fcgi's worker waits: poll on both of its connections, then read and write. */
static void *relay_blocking(void *arg)
{
	const struct relay *r = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = r->up, .events = POLLIN}, {.fd = r->watch, .events = POLLIN}};
		if (poll(p, 2, 5000) < 0 && errno != EINTR)
			die("poll");
		if (!relay_once(r))
			return NULL;
	}
}

/* All relays in one thread, woken once for however many are ready. */
static void relay_epoll(struct relay *rs, int n)
{
	int ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &rs[i]};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, rs[i].up, &ev) < 0)
			die("epoll_ctl");
	}
	for (int open = n; open > 0;) {
		struct epoll_event evs[256];
		int k = epoll_wait(ep, evs, 256, 5000);
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (int i = 0; i < k; i++) {
			struct relay *r = evs[i].data.ptr;
			if (!relay_once(r)) {
				epoll_ctl(ep, EPOLL_CTL_DEL, r->up, NULL);
				open--;
			}
		}
	}
}

/* In a child: the driver's ends are the driver's alone (an inherited copy would keep every
 * upstream open after the driver closed it, and the relays would never see the end). */
static void drop_driver_ends(const int *up, const int *out, int n)
{
	for (int i = 0; i < n; i++) {
		close(up[i]);
		close(out[i]);
	}
}

static double cpu_us(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e6 +
	       (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec);
}

/* A connected pair of loopback TCP sockets, as the emulator and a worker hold: *driver, *relay. */
static void tcp_pair(int listener, const struct sockaddr_in *sa, int *driver, int *relay)
{
	*relay = socket(AF_INET, SOCK_STREAM, 0);
	if (*relay < 0 || connect(*relay, (const struct sockaddr *)sa, sizeof *sa) < 0)
		die("connect");
	*driver = accept(listener, NULL, NULL);
	if (*driver < 0)
		die("accept");
	int one = 1;
	setsockopt(*driver, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int listener(struct sockaddr_in *sa)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t len = sizeof *sa;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ls < 0 || bind(ls, (struct sockaddr *)sa, sizeof *sa) < 0 || listen(ls, 4096) < 0 ||
	    getsockname(ls, (struct sockaddr *)sa, &len) < 0)
		die("listen");
	return ls;
}

/* Sends ROUNDS events to every relay, 10 ms apart, each round drained before the next. */
static void drive(const int *up, const int *out, int n)
{
	char buf[4096];
	for (int round = 0; round < rounds; round++) {
		for (int i = 0; i < n; i++)
			write_all(up[i], EVENT, sizeof EVENT - 1);
		for (int i = 0; i < n; i++)
			for (size_t got = 0; got < sizeof EVENT - 1;) {
				ssize_t k = read(out[i], buf, sizeof buf);
				if (k <= 0)
					die("read");
				got += (size_t)k;
			}
		struct timespec pace = {0, 10 * 1000 * 1000};
		nanosleep(&pace, NULL);
	}
	for (int i = 0; i < n; i++)
		close(up[i]);
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "process") && strcmp(argv[1], "thread") &&
			  strcmp(argv[1], "epoll"))) {
		fprintf(stderr, "usage: floor process|thread|epoll N ROUNDS\n");
		return 2;
	}
	const char *mode = argv[1];
	int n = atoi(argv[2]);
	rounds = atoi(argv[3]);
	if (n < 1 || n > 4096 || rounds < 1)
		return 2;
	struct sockaddr_in sa;
	int ls = listener(&sa);
	int *up = calloc((size_t)n, sizeof *up), *out = calloc((size_t)n, sizeof *out);
	struct relay *rs = calloc((size_t)n, sizeof *rs);
	pthread_t *th = calloc((size_t)n, sizeof *th);
	if (!up || !out || !rs || !th)
		die("calloc");
	for (int i = 0; i < n; i++) {
		int o[2], w[2];
		tcp_pair(ls, &sa, &up[i], &rs[i].up);
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, o) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, w) < 0)
			die("socketpair");
		out[i] = o[0];
		rs[i].out = o[1];
		rs[i].watch = w[1];
	}
	/* The relays' CPU: the children's for processes and epoll; for threads, the process's minus
	 * the driver thread's. */
	struct rusage drv, all;
	if (!strcmp(mode, "process")) {
		for (int i = 0; i < n; i++) {
			pid_t p = fork();
			if (p < 0)
				die("fork");
			if (p == 0) {
				drop_driver_ends(up, out, n);
				relay_blocking(&rs[i]);
				_exit(0);
			}
		}
	} else if (!strcmp(mode, "thread")) {
		for (int i = 0; i < n; i++)
			if (pthread_create(&th[i], NULL, relay_blocking, &rs[i]) != 0)
				die("pthread_create");
	} else {
		pid_t p = fork(); /* its own process, so that its CPU is counted apart from the driver's */
		if (p < 0)
			die("fork");
		if (p == 0) {
			drop_driver_ends(up, out, n);
			relay_epoll(rs, n);
			_exit(0);
		}
	}
	drive(up, out, n);
	double relays;
	if (!strcmp(mode, "thread")) {
		for (int i = 0; i < n; i++)
			pthread_join(th[i], NULL);
		getrusage(RUSAGE_THREAD, &drv);
		getrusage(RUSAGE_SELF, &all);
		relays = cpu_us(&all) - cpu_us(&drv); /* the set-up ran on the driver's thread */
	} else {
		while (wait(NULL) > 0)
			;
		getrusage(RUSAGE_CHILDREN, &all);
		relays = cpu_us(&all);
	}
	printf("{\"mode\":\"%s\",\"relays\":%d,\"rounds\":%d,\"us_per_delta\":%.2f}\n", mode, n, rounds,
	       relays / ((double)n * rounds));
	return 0;
}
