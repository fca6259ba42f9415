/*
 * llm-emu: an emulator of Anthropic's Messages API for llm-fcgi's tests,
 * benchmarks and offline demo.
 *
 * One thread, one epoll loop (edge-triggered client sockets), non-blocking
 * I/O with an output queue per connection, and a min-heap of per-connection
 * deadlines for everything that happens later (stream deltas, delayed
 * answers, lingering closes).  Answers are deterministic, derived from the
 * last user message, so tests can predict every byte.  Faults are requested
 * with [[emu:...]] markers inside that message, because a gateway forwards
 * prompt text but not custom headers.
 *
 * The wire format follows /work/shared/reference/anthropic-api.md; the
 * command line, markers and /stats are described in tests/emulator/README.md,
 * and its Layout section lists the modules.
 *
 * main: startup and shutdown.  Owns the command line, the request log file,
 * the open-files limit, the signals (through a signalfd), the listening
 * socket and the port file; then hands over to the HTTP module.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "models.h"
#include "stats.h"
#include "util.h"

#define LISTEN_BACKLOG 4096

#ifndef EMU_MODELS_FILE
#define EMU_MODELS_FILE "data/models.json" /* the build passes the source tree's copy */
#endif
#define RETIRE_MAX 64

static struct {
	const char *listen, *port_file, *log_path, *models, *models_override;
	const char *retire[RETIRE_MAX];
	size_t nretire;
	bool verbose;
} cfg = { "127.0.0.1:0", NULL, NULL, EMU_MODELS_FILE, NULL, { NULL }, 0, false };

static void usage(FILE *f)
{
	fputs("usage: llm-emu [--listen HOST:PORT] [--port-file FILE] [--key KEY] [--words N]\n"
	      "               [--delay-ms MS] [--ttft-ms MS] [--log FILE] [-v]\n"
	      "               [--models FILE] [--models-override FILE] [--retire MODEL]...\n", f);
}

static long arg_long(const char *name, const char *v, long lo, long hi)
{
	long out;

	if (!parse_long(v, strlen(v), lo, hi, &out))
		die("%s: expected an integer in %ld..%ld, got '%s'", name, lo, hi, v);
	return out;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "key", required_argument, NULL, 'k' },
		{ "words", required_argument, NULL, 'w' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "ttft-ms", required_argument, NULL, 't' },
		{ "log", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "models", required_argument, NULL, 'm' },
		{ "models-override", required_argument, NULL, 'M' },
		{ "retire", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': cfg.listen = optarg; break;
		case 'p': cfg.port_file = optarg; break;
		case 'k': api_config.key = optarg; break;
		case 'w': api_config.words = arg_long("--words", optarg, 0, WORDS_MAX); break;
		case 'd': api_config.delay_ms = arg_long("--delay-ms", optarg, 0, MS_MAX); break;
		case 't': api_config.ttft_ms = arg_long("--ttft-ms", optarg, 0, MS_MAX); break;
		case 'L': cfg.log_path = optarg; break;
		case 'v': cfg.verbose = true; break;
		case 'm': cfg.models = optarg; break;
		case 'M': cfg.models_override = optarg; break;
		case 'r':
			if (cfg.nretire == RETIRE_MAX)
				die("--retire: at most %d models", RETIRE_MAX);
			cfg.retire[cfg.nretire++] = optarg;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
	if (api_config.key && !*api_config.key)
		die("--key must not be empty");
}

/* 1,000 concurrent streams need more descriptors than the usual soft limit. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		warnmsg("getrlimit: %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		warnmsg("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
}

/* SIGTERM/SIGINT arrive through epoll, so shutdown happens between events. */
static int signals_setup(void)
{
	struct sigaction sa;
	sigset_t set;
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		die("sigaction: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		die("sigprocmask: %s", strerror(errno));
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		die("signalfd: %s", strerror(errno));
	return fd;
}

/* Readers poll for the file, so it must appear complete or not at all. */
static void write_port_file(const char *path, const char *port)
{
	struct obuf tmp = { 0 };
	const char *t;
	FILE *f;
	int werr;

	obuf_fmt(&tmp, "%s.tmp", path);
	t = obuf_cstr(&tmp);
	if (!(f = fopen(t, "w")))
		die("%s: %s", t, strerror(errno));
	werr = fprintf(f, "%s\n", port) < 0;
	if (fclose(f) != 0 || werr)
		die("%s: write failed", t);
	if (rename(t, path) != 0)
		die("rename %s: %s", t, strerror(errno));
	obuf_free(&tmp);
}

static void announce(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[NI_MAXHOST], port[NI_MAXSERV];
	int rc;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		die("getsockname: %s", strerror(errno));
	rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
			 NI_NUMERICHOST | NI_NUMERICSERV);
	if (rc != 0)
		die("getnameinfo: %s", gai_strerror(rc));
	if (cfg.port_file)
		write_port_file(cfg.port_file, port);
	if (ss.ss_family == AF_INET6)
		printf("listening on [%s]:%s\n", host, port);
	else
		printf("listening on %s:%s\n", host, port);
	if (fflush(stdout) != 0)
		warnmsg("stdout: %s", strerror(errno));
}

/* A listening socket on the first address that takes one, else -1 with *err set. */
static int listen_first(const struct addrinfo *res, int *err)
{
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int one = 1, fd;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			*err = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
			return fd;
		*err = errno;
		xclose(fd);
	}
	return -1;
}

/* HOST:PORT or [V6]:PORT; an empty host means every address. */
static int listen_on(const char *spec)
{
	char host[256] = "";
	const char *colon = strrchr(spec, ':'), *port;
	struct addrinfo hints, *res;
	int fd, err = 0, rc;

	if (!colon || !colon[1])
		die("--listen %s: expected HOST:PORT", spec);
	port = colon + 1;
	if (spec[0] == '[' && colon > spec && colon[-1] == ']')
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec - 2), spec + 1);
	else
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0)
		die("--listen %s: %s", spec, gai_strerror(rc));
	fd = listen_first(res, &err);
	freeaddrinfo(res);
	if (fd < 0)
		die("--listen %s: %s", spec, strerror(err));
	announce(fd);
	return fd;
}

int main(int argc, char **argv)
{
	FILE *log_fp = NULL; /* request log; NULL unless -v or --log */
	int listen_fd, signal_fd;

	parse_args(argc, argv);
	if (cfg.log_path) {
		if (!(log_fp = fopen(cfg.log_path, "a")))
			die("%s: %s", cfg.log_path, strerror(errno));
	} else if (cfg.verbose) {
		log_fp = stderr;
	}
	if (log_fp && setvbuf(log_fp, NULL, _IOLBF, 0) != 0)
		warnmsg("setvbuf: cannot line-buffer the log");
	models_load(cfg.models, cfg.models_override);
	for (size_t i = 0; i < cfg.nretire; i++)
		models_retire(cfg.retire[i]);
	raise_nofile();
	signal_fd = signals_setup();
	rng_seed();
	listen_fd = listen_on(cfg.listen);

	http_serve(listen_fd, signal_fd, log_fp);

	stats_free();
	models_free();
	xclose(listen_fd);
	xclose(signal_fd);
	if (log_fp && log_fp != stderr && fclose(log_fp) != 0)
		warnmsg("%s: %s", cfg.log_path, strerror(errno));
	return 0;
}
