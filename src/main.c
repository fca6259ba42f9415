/* llm-fcgi: AI endpoints served by a FastCGI responder (or plain CGI). */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json_c_version.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "config.h"
#include "fcgi_io.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "serve.h"
#include "store.h"
#include "tls.h"
#include "upstream.h"

#define MAX_ARGS 64

struct options {
	const char *config_file;
	const char *socket; /* -s: listen here instead of on fd 0 */
	int backlog;
	int check;
	struct config_arg args[MAX_ARGS];
	size_t nargs;
	char *owned[MAX_ARGS]; /* copies of -o texts the args point into */
};

/* What the process runs on: the options, and the configuration they produced (replaced whole on
 * a reload). */
struct app {
	struct options opts;
	struct config cfg;
	int listen_fd;
	struct store *store; /* spend control's counters, opened before the fork */
};

/* Set from signal handlers, read between requests: the only process-wide mutable state. */
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;
static volatile sig_atomic_t reopen_requested;

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: llm-fcgi [options]\n"
		"Serves AI endpoints (/summarize, /stream, /healthz) to a web server over FastCGI,\n"
		"or answers one request as plain CGI when not started by a FastCGI spawner.\n"
		"\n"
		"  -f FILE        configuration file (default: $LLM_FCGI_CONFIG, else\n"
		"                 %s/llm-fcgi/llm-fcgi.conf)\n"
		"  -o KEY=VALUE   set a configuration key (overrides the environment and the file)\n"
		"  -s SOCKET      listen on SOCKET (a path, or HOST:PORT) instead of fd 0\n"
		"  -b N           listen backlog for -s (default 1024)\n"
		"  -c N           prefork N workers (same as -o workers=N)\n"
		"      --check    validate the configuration, print it, check its models against\n"
		"                 the catalogue and exit (1 when one is retired)\n"
		"  -h, --help     show this help\n"
		"  -V, --version  show the version and the libraries, as built and as running\n"
		"\n"
		"       llm-fcgi usage [--by who|model|day] [--since YYYY-MM-DD] [--json] [-f FILE]\n"
		"       llm-fcgi budget WHO reset [day|month] [-f FILE]\n"
		"       llm-fcgi budget WHO raise USD [day|month] [-f FILE]\n"
		"                 spend and tokens from state_file or limits_store; reset or raise\n"
		"                 one identity's budget (WHO = * for the server) this period\n"
		"\n"
		"The API key comes from ANTHROPIC_API_KEY or api_key_file, never from the command line.\n"
		"Signals: TERM stops gracefully, HUP reloads, USR1 reopens log_file.\n"
		"See llm-fcgi(8) and llm-fcgi.conf(5).\n",
		SYSCONFDIR);
}

/* A bug report needs both sides: the headers a binary was compiled against and the shared
 * libraries the loader found (Debian upgrades a library under an installed binary). libfcgi
 * has no version call, so only pkg-config's word at build time. */
static void print_version(void)
{
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
	printf("llm-fcgi %s\n", PACKAGE_VERSION);
	printf("%-8s built with %-10s running %s%s%s\n", "libcurl", LIBCURL_VERSION, curl->version,
		curl->ssl_version ? " TLS " : "", curl->ssl_version ? curl->ssl_version : "");
	printf("%-8s built with %-10s running %s\n", "json-c", JSON_C_VERSION, json_c_version());
	printf("%-8s built with %-10s running %s\n", "OpenSSL", OPENSSL_FULL_VERSION_STR,
		OpenSSL_version(OPENSSL_FULL_VERSION_STRING));
	printf("%-8s built with %-10s running the shared library (it reports no version)\n",
		"libfcgi", FCGI_MODVERSION);
}

static int add_arg(struct options *o, const char *key, const char *text)
{
	if (o->nargs >= MAX_ARGS) {
		fprintf(stderr, "llm-fcgi: too many -o options\n");
		return -1;
	}
	char *copy = xstrdup(text);
	o->owned[o->nargs] = copy;
	if (key) {
		o->args[o->nargs].key = key;
		o->args[o->nargs].value = copy;
	} else {
		char *eq = strchr(copy, '=');
		if (!eq) {
			fprintf(stderr, "llm-fcgi: -o needs KEY=VALUE, got '%s'\n", text);
			free(copy);
			return -1;
		}
		*eq = '\0';
		o->args[o->nargs].key = copy;
		o->args[o->nargs].value = eq + 1;
	}
	o->nargs++;
	return 0;
}

static void release_options(struct options *o)
{
	for (size_t i = 0; i < o->nargs; i++)
		free(o->owned[i]);
	o->nargs = 0;
}

/* Returns 0 to go on, 1 to exit successfully, -1 on a usage error. */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"check", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	memset(o, 0, sizeof *o);
	o->backlog = 1024;
	int c;
	while ((c = getopt_long(argc, argv, "f:o:s:b:c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o->config_file = optarg; break;
		case 'o': if (add_arg(o, NULL, optarg) < 0) return -1; break;
		case 's': o->socket = optarg; break;
		case 'b': o->backlog = atoi(optarg) > 0 ? atoi(optarg) : 1024; break;
		case 'c': if (add_arg(o, "workers", optarg) < 0) return -1; break;
		case 'C': o->check = 1; break;
		case 'h': usage(stdout); return 1;
		case 'V': print_version(); return 1;
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "llm-fcgi: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

#define KEY_VAR "ANTHROPIC_API_KEY"

/* The key from the environment, taken out of it at startup (env_take_key) and kept here for
 * every configuration load, the reloads included. Owned for the life of the process. */
static char *env_key;

/* Any process of the same user reads /proc/PID/environ (PHP under the same web server, say),
 * and that file shows the block the kernel set up at exec: unsetenv only drops the pointer to
 * it. So the value's bytes are overwritten where they are, then the variable is removed. */
static void env_take_key(void)
{
	char *v = getenv(KEY_VAR);
	if (!v)
		return;
	env_key = xstrdup(v);
	explicit_bzero(v, strlen(v));
	unsetenv(KEY_VAR);
}

static const char *env(const char *name)
{
	if (strcmp(name, KEY_VAR) == 0)
		return env_key;
	return getenv(name);
}

static int load_config(const struct options *o, struct config *cfg)
{
	char *err = NULL;
	if (config_load(cfg, o->config_file, o->args, o->nargs, env, &err) < 0) {
		fprintf(stderr, "llm-fcgi: %s\n", err ? err : "invalid configuration");
		free(err);
		return -1;
	}
	return 0;
}

static void on_stop(int sig)
{
	stop_requested = 1;
}

static void on_reload(int sig)
{
	reload_requested = 1;
}

static void on_reopen(int sig)
{
	reopen_requested = 1;
}

/* Installed before libfcgi initialises, so it keeps ours. All are only noted: a FastCGI worker
 * keeps them blocked while it serves a request and takes them while it waits for the next one
 * (see serve_fastcgi). */
static void install_signals(int prefork_worker)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_flags = SA_RESTART;
	/* A prefork worker is replaced, not reloaded: its parent handles SIGHUP. */
	sa.sa_handler = prefork_worker ? SIG_IGN : on_reload;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_reopen;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* The CA store is built here, before any fork, and only for an https upstream through an
 * OpenSSL-backed libcurl. */
static int load_ca(const struct config *cfg)
{
	if (strncmp(cfg->upstream_url, "https://", 8) != 0 || !upstream_tls_is_openssl()) {
		tls_cleanup();
		return 0;
	}
	return tls_init(cfg->ca_file);
}

/* Between requests: act on the signals that arrived during the last one. */
static void between_requests(const struct options *o, struct config *cfg, struct server *srv)
{
	if (reopen_requested) {
		reopen_requested = 0;
		if (log_reopen() < 0)
			log_error("cannot reopen the log: %s", strerror(errno));
	}
	if (reload_requested) {
		reload_requested = 0;
		struct config next;
		if (load_config(o, &next) < 0) {
			log_error("reload refused: the new configuration is invalid; keeping the old one");
			return;
		}
		upstream_free(srv->up);
		config_release(cfg);
		*cfg = next;
		srv->up = upstream_new(cfg);
		srv->cfg = cfg;
		if (load_ca(cfg) < 0)
			log_error("no shared CA store: libcurl loads the CA certificates itself");
		if (log_open(cfg->log_file, cfg->log_level) < 0)
			log_error("cannot open log_file %s: %s", cfg->log_file, strerror(errno));
		log_info("configuration reloaded");
	}
}

/* The signals a worker acts on between requests. Blocked while it serves one, they can interrupt
 * no read or write of the request: libfcgi retries neither after EINTR, so a reload's SIGTERM
 * would turn a body still arriving into a 400 and a back-pressured stream into a client that
 * left. They are taken only inside fcgi_conn_accept's wait. */
static void block_signals(sigset_t *waitmask)
{
	sigset_t block;
	pool_signals(&block);
	sigprocmask(SIG_BLOCK, &block, waitmask);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&block, s))
			sigdelset(waitmask, s);
}

static int serve_fastcgi(struct app *app, struct pool_shared *shared, struct pool_slot *self)
{
	struct server srv;
	server_init(&srv, &app->cfg, upstream_new(&app->cfg));
	srv.shared = shared;
	srv.store = app->store;
	store_after_fork(app->store);
	metrics_worker_start(&srv, self);
	struct fcgi_conn *conn = fcgi_conn_new(app->listen_fd);
	struct io io;
	sigset_t waitmask;
	block_signals(&waitmask);
	/* Only a prefork worker may retire itself: its parent replaces it at once, whereas lighttpd
	 * answers 503 for a while after a bin-path worker exits. */
	unsigned long max_requests = shared ? (unsigned long)app->cfg.max_requests : 0;
	log_debug("worker ready");
	while (!stop_requested) {
		int rc = fcgi_conn_accept(conn, &io, &waitmask, app->cfg.client_read_timeout);
		if (rc < 0)
			break;
		between_requests(&app->opts, &app->cfg, &srv);
		if (rc > 0)
			continue; /* a signal: its flag is acted on above or by the loop */
		if (self)
			pool_slot_enter(self);
		serve_request(&srv, &io);
		/* Idle before the web server learns the request ended (END_REQUEST goes out in
		 * fcgi_conn_finish): its next request may reach another worker at once, and with
		 * when_full = shed that worker must not count this one as still busy. */
		if (self)
			pool_slot_leave(self);
		fcgi_conn_finish(conn);
		if (max_requests && srv.served >= max_requests)
			break;
	}
	log_debug("worker stopping after %lu request(s)", srv.served);
	fcgi_conn_free(conn);
	upstream_free(srv.up);
	return 0;
}

static int serve_cgi(struct config *cfg, struct store *store)
{
	struct server srv;
	server_init(&srv, cfg, upstream_new(cfg));
	srv.store = store;
	struct io io;
	fcgi_io_cgi(&io);
	serve_request(&srv, &io);
	fcgi_io_cgi_finish(&io);
	upstream_free(srv.up);
	return 0;
}

static int pool_worker(void *arg, struct pool_shared *shared, struct pool_slot *self)
{
	struct app *app = arg;
	install_signals(1);
	return serve_fastcgi(app, shared, self);
}

static int pool_reload(void *arg)
{
	struct app *app = arg;
	struct config next;
	if (load_config(&app->opts, &next) < 0) {
		log_error("reload refused: the new configuration is invalid; keeping the old one");
		return -1;
	}
	/* workers = 0 means "this process is the one worker", which a running pool cannot become:
	 * taking it would leave the pool with no workers at all. */
	if (next.workers == 0) {
		log_error("reload refused: workers = 0 would leave the pool without workers; "
			  "keeping the old configuration");
		config_release(&next);
		return -1;
	}
	config_release(&app->cfg);
	app->cfg = next;
	if (log_open(app->cfg.log_file, app->cfg.log_level) < 0)
		log_error("cannot open log_file %s: %s", app->cfg.log_file, strerror(errno));
	/* The next generation of workers forks from this store. */
	if (load_ca(&app->cfg) < 0)
		log_error("no shared CA store: each worker loads the CA certificates itself");
	return 0;
}

static unsigned pool_size(void *arg)
{
	struct app *app = arg;
	return (unsigned)app->cfg.workers;
}

static double pool_grace(void *arg)
{
	struct app *app = arg;
	return app->cfg.grace_period;
}

static void pool_reopen(void *arg)
{
	if (log_reopen() < 0)
		log_error("cannot reopen the log: %s", strerror(errno));
}

static int run_pool(struct app *app)
{
	struct pool_shared *shared = pool_shared_new();
	metrics_init();
	if (!shared) {
		log_error("cannot map the shared pool counters: %s", strerror(errno));
		return 1;
	}
	const struct pool_ops ops = {
		.worker = pool_worker,
		.reload = pool_reload,
		.size = pool_size,
		.grace = pool_grace,
		.reopen_logs = pool_reopen,
		.arg = app,
	};
	return pool_run(&ops, shared);
}

/* The counters live as long as the process: the file or the store the start named (a reload
 * that names another is logged and waits for a restart), the pool's memory otherwise. */
static struct store *open_store(const struct config *cfg)
{
	struct buf err;
	buf_init(&err, 4096);
	struct store *st = NULL;
	if ((cfg->limits_store && *cfg->limits_store) || cfg->state_file)
		st = admin_open_store(cfg, &err);
	else
		st = store_open_shm((size_t)cfg->state_counters, &err);
	if (!st)
		log_error("cannot open the counters: %s", buf_cstr(&err));
	else
		log_debug("counters: %s", store_backend(st));
	buf_release(&err);
	return st;
}

/* --check: the store the settings name must open (a state file that does not exist yet is
 * created by the first start, not here). */
static int check_store(const struct config *cfg)
{
	if (!(cfg->limits_store && *cfg->limits_store) &&
	    (!cfg->state_file || access(cfg->state_file, F_OK) < 0))
		return 0;
	struct buf err;
	buf_init(&err, 4096);
	struct store *st = admin_open_store(cfg, &err);
	if (!st)
		fprintf(stderr, "llm-fcgi: %s\n", buf_cstr(&err));
	store_close(st);
	buf_release(&err);
	return st ? 0 : 1;
}

/* llm-fcgi usage|budget ...: -f and -o pick the configuration, the rest is the command's. */
static int admin_main(int argc, char **argv)
{
	struct options o;
	struct config cfg;
	char *rest[MAX_ARGS];
	int n = 0;
	memset(&o, 0, sizeof o);
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "-o")) && i + 1 < argc) {
			if (argv[i][1] == 'f')
				o.config_file = argv[++i];
			else if (add_arg(&o, NULL, argv[++i]) < 0)
				return 2;
		} else if (n < MAX_ARGS) {
			rest[n++] = argv[i];
		}
	}
	if (load_config(&o, &cfg) < 0) {
		release_options(&o);
		return 2;
	}
	struct buf err;
	buf_init(&err, 4096);
	struct store *st = admin_open_store(&cfg, &err);
	int rc = 1;
	if (!st)
		fprintf(stderr, "llm-fcgi: %s\n", buf_cstr(&err));
	else if (!strcmp(rest[0], "usage"))
		rc = admin_usage(st, n, rest, stdout);
	else
		rc = admin_budget(st, n, rest, stdout);
	store_close(st);
	buf_release(&err);
	config_release(&cfg);
	release_options(&o);
	return rc;
}

/* The UTC date as YYYYMMDD, the form the catalogue's lifecycle dates take. */
static int today(void)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

int main(int argc, char **argv)
{
	static struct app app;
	env_take_key();
	/* No core file or ptrace by other processes of the user: both would show the key. Inherited
	 * by every worker. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (argc > 1 && (!strcmp(argv[1], "usage") || !strcmp(argv[1], "budget")))
		return admin_main(argc, argv);
	int rc = parse_options(argc, argv, &app.opts);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	if (load_config(&app.opts, &app.cfg) < 0) {
		release_options(&app.opts);
		return 2;
	}
	if (app.opts.check) {
		config_dump(&app.cfg, stdout);
		/* Deprecated models are a warning; a retired one fails: every request would get 404. */
		int retired = config_check_models(&app.cfg, today(), stderr);
		int bad_store = check_store(&app.cfg);
		config_release(&app.cfg);
		release_options(&app.opts);
		return retired || bad_store ? 1 : 0;
	}
	if (log_open(app.cfg.log_file, app.cfg.log_level) < 0) {
		fprintf(stderr, "llm-fcgi: cannot open log_file %s: %s\n", app.cfg.log_file, strerror(errno));
		return 1;
	}
	if (!app.cfg.api_key)
		log_warn("no API key: set ANTHROPIC_API_KEY or api_key_file");
	/* Everything shareable is set up once, before any worker forks; no upstream connection is
	 * opened here (each worker creates its own handle on first use). */
	/* One malloc arena: libcurl resolves a host name (api.anthropic.com) in a thread, whose
	 * allocations would otherwise open a second arena in every worker (23 KB of private memory
	 * each, measured with bench/tls-mem --http-host); workers are single-threaded apart from
	 * that thread, so the one arena's lock is never contended. */
	mallopt(M_ARENA_MAX, 1);
	install_signals(0);
	if (upstream_global_init() < 0 || fcgi_io_init() < 0) {
		log_error("cannot initialise libcurl or libfcgi");
		return 1;
	}
	if (load_ca(&app.cfg) < 0)
		return 1;
	/* A state file that is foreign or damaged stops the start with the reason. */
	if (!(app.store = open_store(&app.cfg)))
		return 1;
	if (app.opts.socket && (app.listen_fd = fcgi_io_listen(app.opts.socket, app.opts.backlog)) < 0)
		return 1;
	if (!app.opts.socket && fcgi_io_is_cgi())
		rc = serve_cgi(&app.cfg, app.store);
	else if (app.cfg.workers > 0)
		rc = run_pool(&app);
	else {
		/* Started one process at a time (spawn-fcgi -F, mod_fcgid, lighttpd's bin-path): the
		 * pool's memory is this process's alone, and so would be every limit. */
		if (app.cfg.limits_file && !strcmp(store_backend(app.store), "shm"))
			log_warn("limits_file without state_file or limits_store, and no -c: this "
				 "process counts alone, apart from the others the web server or "
				 "spawn-fcgi started; set state_file to share the counters");
		rc = serve_fastcgi(&app, NULL, NULL);
	}
	tls_cleanup();
	upstream_global_cleanup();
	store_close(app.store);
	config_release(&app.cfg);
	release_options(&app.opts);
	log_close();
	return rc;
}
