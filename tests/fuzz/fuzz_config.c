/* libFuzzer target for the config file parser. The input is the file: loading it must fail with a
 * message or succeed, never crash or leak. A config that loads is dumped, the dump loaded again
 * and dumped again: the two dumps must match, since config_dump promises text the parser reads
 * back unchanged. The environment is empty, so nothing but the input matters. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memfd_create, open_memstream */
#endif
#include "config.h"

#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *no_env(const char *name)
{
	(void)name;
	return NULL;
}

/* One memory file per run of the fuzzer, rewritten for each input and opened by its /proc name,
 * so that config_load reads it like any file. */
struct memfile {
	int fd;
	char *path;
};

static void memfile_put(struct memfile *m, const char *name, const void *p, size_t n)
{
	if (!m->path) {
		struct buf b;
		m->fd = memfd_create(name, MFD_CLOEXEC);
		buf_init(&b, 64);
		if (m->fd < 0 || buf_printf(&b, "/proc/self/fd/%d", m->fd) < 0)
			abort();
		m->path = buf_detach(&b);
	}
	if (ftruncate(m->fd, 0) < 0 || (n && pwrite(m->fd, p, n, 0) != (ssize_t)n))
		abort();
}

static char *dump(const struct config *cfg, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	if (!f)
		abort();
	config_dump(cfg, f);
	if (ferror(f) || fclose(f) != 0)
		abort();
	return text;
}

/* The dump without its first line, which names the file read. */
static const char *settings(const char *text)
{
	const char *nl = strchr(text, '\n');
	if (!nl)
		abort();
	return nl + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct memfile input, again;
	struct config cfg;
	char *err = NULL;

	memfile_put(&input, "fuzz_config", data, size);
	if (config_load(&cfg, input.path, NULL, 0, no_env, &err) < 0) {
		if (!err || !*err)
			abort();
		free(err);
		return 0;
	}
	if (err)
		abort();

	size_t len1, len2;
	char *first = dump(&cfg, &len1);
	memfile_put(&again, "fuzz_config_again", first, len1);
	struct config back;
	if (config_load(&back, again.path, NULL, 0, no_env, &err) < 0) {
		fprintf(stderr, "dump does not load back: %s\n%s", err, first);
		abort();
	}
	char *second = dump(&back, &len2);
	if (strcmp(settings(first), settings(second)) != 0) {
		fprintf(stderr, "dump changed on the way back:\n%s---\n%s", first, second);
		abort();
	}
	free(second);
	free(first);
	config_release(&back);
	config_release(&cfg);
	return 0;
}
