/* loadgen: an HTTP load generator for llm-fcgi's benchmark (bench/run).
 *
 * Closed loop: CONC clients; each sends its next request as soon as the previous one ends.
 * Open loop (--rate R): request i is due at start + i/R whatever happened to the others, on the
 * first of CONC connections that is free; its latency counts from that due time, so a server
 * (or a generator) that falls behind shows it in the latency instead of sending less (no
 * coordinated omission). The send lag (actual send minus due time) and the requests that found
 * no free connection are reported, to show that the generator kept the schedule. libcurl's multi
 * socket interface on epoll, so 1,000 concurrent streams cost only the sockets that are active.
 * Every received body chunk is timestamped: time to the first body byte, the time between
 * chunks (stream mode) and the number of chunks per response are reported, with percentiles.
 * Chunks that reach curl in the same wake-up of the event loop count as one arrival: the client
 * could not have told them apart.
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra -o loadgen loadgen.c $(pkg-config --cflags --libs libcurl) -lm
 * Usage: see usage() below; the result is one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BODY_KEEP (256 * 1024) /* the tail of each response kept for --expect */
#define MAX_HEADERS 32
#define MAX_ERRKINDS 64

struct samples {
	double *v;
	size_t n, cap;
};

struct slot {
	CURL *easy;
	int active;
	int aborted;
	double t_start, t_first, t_last;
	unsigned long gen_last; /* event-loop generation of the last arrival */
	unsigned chunks;
	size_t bytes;
	char *body;
	size_t body_len;
	struct samples gaps; /* committed to the totals only if the request succeeds */
};

static struct {
	const char *url, *method, *body, *expect, *label, *cacert, *mode_name;
	const char *headers[MAX_HEADERS];
	int nheaders;
	int conc;
	double dur;     /* seconds, or 0 */
	long count;     /* requests, or 0 */
	long abort_ms;  /* 0: never */
	long timeout_ms;
	long drain_ms;
	long status;
	long warm;      /* warm-up requests on the same connections, not counted */
	double rate;    /* open loop: requests per second; 0: closed loop */
	int rt;         /* the measured phase at real-time priority (SCHED_FIFO 1), if allowed */
	int rt_ok;
	int warm_pause; /* after the warm-up, print "warm" on stderr and wait for a line on stdin */
	int stream;
	int insecure;
} opt = {
	.method = "POST", .conc = 1, .timeout_ms = 60000, .drain_ms = 30000, .status = 200,
	.mode_name = "sync",
};

static struct {
	CURLM *multi;
	int epfd;
	double curl_due; /* monotonic seconds; < 0 none */
	unsigned long gen;
	struct slot *slots;
	long started, finished;
	long ok, failed, aborted, late, unfinished;
	double t0, t_stop, t_last_done, t_end;
	long count;     /* this phase: requests to start, or 0 */
	long abort_ms;  /* this phase */
	int recording;  /* 0 during the warm-up: nothing is counted */
	size_t bytes;
	long connects;
	struct samples lat, ttfb, gap, chunks;
	/* open loop */
	int open;           /* this phase runs on the schedule: a finished slot goes back to the free list */
	int *free_slots;    /* a stack of the indexes of idle slots */
	int nfree;
	long scheduled, sent, backlogged, unsent;
	long backlog_mark; /* requests before this index were already counted as backlogged */
	struct samples lag; /* send time minus due time, ms */
	struct { char name[32]; long n; } errs[MAX_ERRKINDS];
	int nerrs;
} G;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void push(struct samples *s, double v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (!s->v)
			die("out of memory");
	}
	s->v[s->n++] = v;
}

static void count_error(const char *fmt, long code)
{
	char name[32];
	snprintf(name, sizeof name, fmt, code);
	for (int i = 0; i < G.nerrs; i++)
		if (strcmp(G.errs[i].name, name) == 0) {
			G.errs[i].n++;
			return;
		}
	if (G.nerrs < MAX_ERRKINDS) {
		snprintf(G.errs[G.nerrs].name, sizeof G.errs[G.nerrs].name, "%s", name);
		G.errs[G.nerrs++].n = 1;
	}
}

/* ---- libcurl callbacks ---- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct slot *s = arg;
	size_t n = size * nmemb;
	double t = now_s();
	if (s->chunks == 0) {
		s->t_first = t;
		s->chunks = 1;
	} else if (s->gen_last != G.gen) {
		push(&s->gaps, (t - s->t_last) * 1000.0);
		s->chunks++;
	}
	s->t_last = t;
	s->gen_last = G.gen;
	s->bytes += n;
	if (opt.expect) {
		if (n >= BODY_KEEP) {
			memcpy(s->body, p + n - BODY_KEEP, BODY_KEEP);
			s->body_len = BODY_KEEP;
		} else {
			if (s->body_len + n > BODY_KEEP) {
				size_t drop = s->body_len + n - BODY_KEEP;
				memmove(s->body, s->body + drop, s->body_len - drop);
				s->body_len -= drop;
			}
			memcpy(s->body + s->body_len, p, n);
			s->body_len += n;
		}
	}
	return n;
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)e, (void)userp, (void)socketp;
	struct epoll_event ev = {.data.fd = fd};
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(G.epfd, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(G.epfd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
		epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
	(void)m, (void)userp;
	G.curl_due = timeout_ms < 0 ? -1.0 : now_s() + (double)timeout_ms / 1000.0;
	return 0;
}

/* ---- requests ---- */

static struct curl_slist *header_list;

static void setup_slot(struct slot *s)
{
	CURL *e = curl_easy_init();
	if (!e)
		die("curl_easy_init failed");
	s->easy = e;
	s->body = malloc(BODY_KEEP);
	if (!s->body)
		die("out of memory");
	curl_easy_setopt(e, CURLOPT_URL, opt.url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, header_list);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opt.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
	if (strcmp(opt.method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		const char *b = opt.body ? opt.body : "";
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, b);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(b));
		if (strcmp(opt.method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, opt.method);
	}
	if (opt.cacert)
		curl_easy_setopt(e, CURLOPT_CAINFO, opt.cacert);
	if (opt.insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static int may_start(double t)
{
	if (G.count)
		return G.started < G.count;
	return t < G.t_stop;
}

static void start(struct slot *s, double t)
{
	s->active = 1;
	s->aborted = 0;
	s->t_start = t;
	s->t_first = s->t_last = 0;
	s->gen_last = 0;
	s->chunks = 0;
	s->bytes = 0;
	s->body_len = 0;
	s->gaps.n = 0;
	G.started++;
	CURLMcode rc = curl_multi_add_handle(G.multi, s->easy);
	if (rc != CURLM_OK)
		die("curl_multi_add_handle: %s", curl_multi_strerror(rc));
}

static int body_has(const struct slot *s, const char *needle)
{
	return memmem(s->body, s->body_len, needle, strlen(needle)) != NULL;
}

/* A request ended: curl finished it (rc), or we cut it (aborted), or the drain time ran out. */
static void finish(struct slot *s, CURLcode rc, int cut, int unfinished, double t)
{
	long code = 0, nconn = 0;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &nconn);
	curl_multi_remove_handle(G.multi, s->easy);
	s->active = 0;
	G.finished++;
	if (!G.recording)
		return;
	G.connects += nconn;
	G.bytes += s->bytes;
	if (unfinished) {
		G.unfinished++;
		count_error("unfinished", 0);
		return;
	}
	if (cut) {
		/* The client leaves mid-stream on purpose: fine if the stream had started well. */
		if (code == opt.status || code == 0) {
			G.aborted++;
			if (s->chunks)
				push(&G.ttfb, (s->t_first - s->t_start) * 1000.0);
		} else {
			G.failed++;
			count_error("http_%ld", code);
		}
		return;
	}
	int ok = 1;
	if (rc != CURLE_OK) {
		ok = 0;
		count_error("curl_%ld", (long)rc);
	} else if (code != opt.status) {
		ok = 0;
		count_error("http_%ld", code);
	} else if (opt.expect && !body_has(s, opt.expect)) {
		ok = 0;
		count_error("expect_mismatch", 0);
	}
	if (!ok) {
		G.failed++;
		return;
	}
	G.ok++;
	if (!G.count && t > G.t_stop)
		G.late++;
	G.t_last_done = t;
	push(&G.lat, (t - s->t_start) * 1000.0);
	if (s->chunks)
		push(&G.ttfb, (s->t_first - s->t_start) * 1000.0);
	push(&G.chunks, (double)s->chunks);
	for (size_t i = 0; i < s->gaps.n; i++)
		push(&G.gap, s->gaps.v[i]);
}

static void read_done(double t)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(G.multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct slot *s;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		finish(s, m->data.result, 0, 0, t);
		if (G.open)
			G.free_slots[G.nfree++] = (int)(s - G.slots);
		else if (may_start(t))
			start(s, t);
	}
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const struct samples *s, double p)
{
	if (!s->n)
		return 0;
	size_t k = (size_t)ceil(p / 100.0 * (double)s->n);
	if (k < 1)
		k = 1;
	return s->v[k - 1];
}

static void print_stats(const char *name, struct samples *s, int last)
{
	qsort(s->v, s->n, sizeof *s->v, cmp_double);
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += s->v[i];
	printf("\"%s\":{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"mean\":%.3f,\"min\":%.3f}%s",
	       name, s->n, pct(s, 50), pct(s, 90), pct(s, 99), s->n ? s->v[s->n - 1] : 0.0,
	       s->n ? sum / (double)s->n : 0.0, s->n ? s->v[0] : 0.0, last ? "" : ",");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: loadgen --url URL [-c CONC] [-d SECS | -n REQS] [--mode sync|stream]\n"
		"       [-X METHOD] [--body STR] [-H 'Name: value']... [--expect STR] [--status N]\n"
		"       [--abort-after-ms M] [--timeout-ms T] [--drain-ms D] [--cacert FILE] [-k]\n"
		"       [--warm N [--warm-pause]] [--rate R] [--rt] [--label L]\n"
		"Closed loop: CONC clients, each sends its next request when its last one ends.\n"
		"--rate R: open loop (with -d): request i is due at i/R s, sent on the first free of CONC\n"
		"connections; latency and TTFB count from the due time; send_lag_ms = sent - due.\n"
		"--rt: the measured phase at SCHED_FIFO priority 1 (if permitted; \"rt\" says).\n"
		"-d: no request starts after SECS; those in flight get --drain-ms (default 30000) to end.\n"
		"--abort-after-ms: every request is closed M ms after it started (client disconnect).\n"
		"--warm N: first N requests on the same connections, not counted; with --warm-pause,\n"
		"then \"warm\" on stderr and wait for a line on stdin before measuring.\n"
		"Prints one JSON object: counts, rps, latency_ms, ttfb_ms (first body byte),\n"
		"gap_ms (between arrivals of body chunks), chunks (arrivals per response).\n");
}

/* One turn of the event loop: wait for a socket or until DUE (monotonic seconds, or curl's own
 * timer if that is earlier), then let curl act on what is ready. The wait has nanosecond
 * resolution (epoll_pwait2): a schedule of one request every 333 µs cannot round to 1 ms. */
static void poll_once(double due)
{
	struct epoll_event evs[256];
	double t = now_s();
	if (G.curl_due >= 0 && G.curl_due < due)
		due = G.curl_due;
	struct timespec ts = {0, 0};
	if (due > t) {
		double w = due - t;
		ts.tv_sec = (time_t)w;
		ts.tv_nsec = (long)((w - (double)ts.tv_sec) * 1e9);
	}
	int running = 0;
	int n = epoll_pwait2(G.epfd, evs, 256, &ts, NULL);
	if (n < 0 && errno != EINTR)
		die("epoll_pwait2: %s", strerror(errno));
	G.gen++;
	for (int i = 0; i < n; i++) {
		int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
			    (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
			    (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
		curl_multi_socket_action(G.multi, evs[i].data.fd, flags, &running);
	}
	if (G.curl_due >= 0 && now_s() >= G.curl_due) {
		G.curl_due = -1;
		curl_multi_socket_action(G.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* The requests in flight when the drain time ran out: counted as unfinished. */
static void cut_unfinished(double t)
{
	for (int i = 0; i < opt.conc; i++)
		if (G.slots[i].active)
			finish(&G.slots[i], CURLE_OK, 0, 1, t);
}

/* One closed-loop phase: COUNT requests, or DUR seconds plus the drain time. */
static void run_phase(long count, double dur, long abort_ms, int recording)
{
	G.count = count;
	G.abort_ms = abort_ms;
	G.recording = recording;
	G.started = G.finished = 0;
	G.t0 = now_s();
	G.t_stop = G.t0 + dur;
	G.t_last_done = G.t0;
	for (int i = 0; i < opt.conc && may_start(G.t0); i++)
		start(&G.slots[i], G.t0);
	int running = 0;
	curl_multi_socket_action(G.multi, CURL_SOCKET_TIMEOUT, 0, &running);

	double drain_until = -1;
	for (;;) {
		double t = now_s();
		long active = G.started - G.finished;
		if (active == 0 && !may_start(t))
			break;
		if (!G.count && t >= G.t_stop && drain_until < 0)
			drain_until = G.t_stop + (double)opt.drain_ms / 1000.0;
		if (drain_until >= 0 && t >= drain_until) {
			cut_unfinished(t);
			break;
		}
		/* The earliest of: curl's timer, the next client disconnect, the end of the run. */
		double due = t + 1.0;
		if (G.abort_ms)
			for (int i = 0; i < opt.conc; i++)
				if (G.slots[i].active) {
					double a = G.slots[i].t_start + (double)G.abort_ms / 1000.0;
					if (a < due)
						due = a;
				}
		if (drain_until >= 0 && drain_until < due)
			due = drain_until;
		poll_once(due);
		t = now_s();
		read_done(t);
		if (G.abort_ms) {
			for (int i = 0; i < opt.conc; i++) {
				struct slot *s = &G.slots[i];
				if (s->active && t - s->t_start >= (double)G.abort_ms / 1000.0) {
					finish(s, CURLE_OK, 1, 0, t);
					if (may_start(t))
						start(s, t);
				}
			}
			curl_multi_socket_action(G.multi, CURL_SOCKET_TIMEOUT, 0, &running);
			read_done(now_s());
		}
	}
	G.t_end = now_s();
}

/* Starts every request that is due, each on a free connection, its clock set to its due time.
 * Returns the due time of the next one still to send (or a second from now). */
static double send_due(double t)
{
	int running = 0, sent = 0;
	while (G.sent < G.scheduled) {
		double due = G.t0 + (double)G.sent / opt.rate;
		if (due > t)
			return due;
		if (G.nfree == 0) {
			/* Every connection busy: the request waits (and its latency grows) until one frees. */
			if (G.backlog_mark <= G.sent) {
				G.backlogged++;
				G.backlog_mark = G.sent + 1;
			}
			break;
		}
		struct slot *s = &G.slots[G.free_slots[--G.nfree]];
		start(s, due);
		push(&G.lag, (t - due) * 1000.0);
		G.sent++;
		sent = 1;
	}
	if (sent)
		curl_multi_socket_action(G.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	return t + 1.0;
}

/* The open-loop phase: DUR x RATE requests on a fixed schedule, then the drain time. */
static void run_open(double dur)
{
	G.open = 1;
	G.recording = 1;
	G.count = 0;
	G.started = G.finished = 0;
	G.nfree = 0;
	for (int i = opt.conc - 1; i >= 0; i--)
		G.free_slots[G.nfree++] = i;
	G.scheduled = (long)floor(dur * opt.rate);
	G.t0 = now_s();
	G.t_stop = G.t0 + dur;
	G.t_last_done = G.t0;
	double drain_until = G.t_stop + (double)opt.drain_ms / 1000.0;
	for (;;) {
		double t = now_s();
		if (G.sent == G.scheduled && G.started == G.finished)
			break;
		if (t >= drain_until) {
			cut_unfinished(t);
			G.unsent = G.scheduled - G.sent;
			if (G.unsent)
				count_error("unsent", 0);
			break;
		}
		double due = send_due(t);
		poll_once(due < drain_until ? due : drain_until);
		read_done(now_s());
	}
	G.t_end = now_s();
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'},
		{"mode", required_argument, NULL, 'm'},
		{"body", required_argument, NULL, 'b'},
		{"expect", required_argument, NULL, 'e'},
		{"status", required_argument, NULL, 's'},
		{"abort-after-ms", required_argument, NULL, 'a'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"drain-ms", required_argument, NULL, 'D'},
		{"cacert", required_argument, NULL, 'C'},
		{"label", required_argument, NULL, 'l'},
		{"warm", required_argument, NULL, 'w'},
		{"warm-pause", no_argument, NULL, 'P'},
		{"rate", required_argument, NULL, 'r'},
		{"rt", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "u:c:d:n:X:H:kh", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': opt.url = optarg; break;
		case 'c': opt.conc = atoi(optarg); break;
		case 'd': opt.dur = atof(optarg); break;
		case 'n': opt.count = atol(optarg); break;
		case 'X': opt.method = optarg; break;
		case 'H':
			if (opt.nheaders == MAX_HEADERS)
				die("too many -H");
			opt.headers[opt.nheaders++] = optarg;
			break;
		case 'k': opt.insecure = 1; break;
		case 'm':
			opt.mode_name = optarg;
			opt.stream = strcmp(optarg, "stream") == 0;
			if (!opt.stream && strcmp(optarg, "sync") != 0)
				die("--mode is sync or stream");
			break;
		case 'b': opt.body = optarg; break;
		case 'e': opt.expect = optarg; break;
		case 's': opt.status = atol(optarg); break;
		case 'a': opt.abort_ms = atol(optarg); break;
		case 't': opt.timeout_ms = atol(optarg); break;
		case 'D': opt.drain_ms = atol(optarg); break;
		case 'C': opt.cacert = optarg; break;
		case 'l': opt.label = optarg; break;
		case 'w': opt.warm = atol(optarg); break;
		case 'P': opt.warm_pause = 1; break;
		case 'r': opt.rate = atof(optarg); break;
		case 'R': opt.rt = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!opt.url || opt.conc < 1 || (!opt.dur && !opt.count) || opt.rate < 0 ||
	    (opt.rate > 0 && (!opt.dur || opt.count || opt.abort_ms))) {
		usage(stderr);
		return 2;
	}
	/* Timers as asked: the default slack of 50 µs is a sixth of the open loop's 333 µs step. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("curl_global_init failed");
	header_list = curl_slist_append(header_list, "Expect:");
	for (int i = 0; i < opt.nheaders; i++)
		header_list = curl_slist_append(header_list, opt.headers[i]);

	G.epfd = epoll_create1(EPOLL_CLOEXEC);
	G.multi = curl_multi_init();
	G.curl_due = -1;
	curl_multi_setopt(G.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(G.multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(G.multi, CURLMOPT_MAXCONNECTS, (long)opt.conc + 16);
	G.slots = calloc((size_t)opt.conc, sizeof *G.slots);
	G.free_slots = calloc((size_t)opt.conc, sizeof *G.free_slots);
	if (!G.slots || !G.free_slots)
		die("out of memory");
	for (int i = 0; i < opt.conc; i++)
		setup_slot(&G.slots[i]);

	if (opt.warm) {
		run_phase(opt.warm, 0, 0, 0);
		if (opt.warm_pause) {
			char line[16];
			fputs("warm\n", stderr);
			fflush(stderr);
			if (!fgets(line, sizeof line, stdin))
				die("no go-ahead on stdin after the warm-up");
		}
	}
	if (opt.rt) {
		/* The generator's own wake-ups ahead of the servers': on a loaded machine a send or a
		 * receive timestamp waiting for a core would otherwise count as the server's latency. */
		struct sched_param sp = {.sched_priority = 1};
		opt.rt_ok = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
	}
	if (opt.rate > 0)
		run_open(opt.dur);
	else
		run_phase(opt.count, opt.dur, opt.abort_ms, 1);
	double t_end = G.t_end;
	double span = (G.late || opt.count ? G.t_last_done : (G.t_stop < t_end ? G.t_stop : t_end)) - G.t0;
	if (span <= 0)
		span = t_end - G.t0;

	printf("{\"label\":");
	json_str(opt.label ? opt.label : "");
	printf(",\"url\":");
	json_str(opt.url);
	printf(",\"mode\":\"%s\",\"conc\":%d,\"duration_s\":%.3f,\"wall_s\":%.3f,", opt.mode_name, opt.conc,
	       opt.dur, t_end - G.t0);
	printf("\"requests_ok\":%ld,\"requests_failed\":%ld,\"aborted\":%ld,\"late\":%ld,\"unfinished\":%ld,",
	       G.ok, G.failed, G.aborted, G.late, G.unfinished + G.unsent);
	if (opt.rate > 0) {
		printf("\"rate\":%.3f,\"scheduled\":%ld,\"sent\":%ld,\"unsent\":%ld,\"backlogged\":%ld,",
		       opt.rate, G.scheduled, G.sent, G.unsent, G.backlogged);
		print_stats("send_lag_ms", &G.lag, 0);
	}
	printf("\"rt\":%s,", opt.rt_ok ? "true" : "false");
	printf("\"rps\":%.3f,\"bytes\":%zu,\"connects\":%ld,\"errors\":{", G.ok / span, G.bytes, G.connects);
	for (int i = 0; i < G.nerrs; i++)
		printf("%s\"%s\":%ld", i ? "," : "", G.errs[i].name, G.errs[i].n);
	printf("},");
	print_stats("latency_ms", &G.lat, 0);
	print_stats("ttfb_ms", &G.ttfb, 0);
	print_stats("gap_ms", &G.gap, 0);
	print_stats("chunks", &G.chunks, 1);
	printf("}\n");

	for (int i = 0; i < opt.conc; i++) {
		curl_easy_cleanup(G.slots[i].easy);
		free(G.slots[i].body);
		free(G.slots[i].gaps.v);
	}
	curl_multi_cleanup(G.multi);
	curl_slist_free_all(header_list);
	curl_global_cleanup();
	return 0;
}
