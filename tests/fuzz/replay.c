/* Replays a fuzz target's seed corpus with the normal compiler, as a TAP test in make check: the
 * inputs that once mattered keep being checked without libFuzzer. CORPUS names the directory
 * under $srcdir/tests/fuzz/corpus/. A failing input aborts, which the TAP driver reports. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Seeds are small; a larger file is not a seed. */
#define SEED_MAX (4u << 20)

static int read_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	char chunk[8192];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(out, chunk, n) < 0) {
			rc = -1;
			break;
		}
	if (ferror(f))
		rc = -1;
	fclose(f);
	return rc;
}

static int regular(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int main(void)
{
	const char *srcdir = getenv("srcdir");
	struct buf dir;
	buf_init(&dir, 4096);
	BUF_MUST(buf_printf(&dir, "%s/tests/fuzz/corpus/%s", srcdir ? srcdir : ".", CORPUS));
	struct dirent **names;
	int n = scandir(buf_cstr(&dir), &names, regular, alphasort);
	if (n <= 0) {
		printf("not ok 1 - no seeds in %s\n1..1\n", buf_cstr(&dir));
		buf_release(&dir);
		return 1;
	}
	int failed = 0;
	for (int i = 0; i < n; i++) {
		struct buf path, data;
		buf_init(&path, 4096);
		buf_init(&data, SEED_MAX);
		BUF_MUST(buf_printf(&path, "%s/%s", buf_cstr(&dir), names[i]->d_name));
		int ok = read_file(buf_cstr(&path), &data) == 0;
		if (ok)
			LLVMFuzzerTestOneInput((const uint8_t *)(data.data ? data.data : ""), data.len);
		printf("%s %d - %s/%s\n", ok ? "ok" : "not ok", i + 1, CORPUS, names[i]->d_name);
		failed += !ok;
		buf_release(&path);
		buf_release(&data);
		free(names[i]);
	}
	free(names);
	printf("1..%d\n", n);
	buf_release(&dir);
	return failed ? 1 : 0;
}
