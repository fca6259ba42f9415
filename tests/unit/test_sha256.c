/* SHA-256 against the FIPS 180-4 examples and the padding boundaries, fed whole and in pieces. */
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "tap.h"

static const char *hex_of(const void *p, size_t n)
{
	static char out[SHA256_HEX_SIZE];
	unsigned char d[SHA256_DIGEST_SIZE];
	sha256(p, n, d);
	sha256_hex(d, out);
	return out;
}

/* The same message fed in pieces of step bytes. */
static const char *hex_stepped(const char *p, size_t n, size_t step)
{
	static char out[SHA256_HEX_SIZE];
	unsigned char d[SHA256_DIGEST_SIZE];
	struct sha256 s;
	sha256_init(&s);
	for (size_t i = 0; i < n; i += step)
		sha256_update(&s, p + i, n - i < step ? n - i : step);
	sha256_final(&s, d);
	sha256_hex(d, out);
	return out;
}

int main(void)
{
	static const struct {
		const char *msg, *want, *name;
	} vectors[] = {
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "\"abc\""},
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "448 bits"},
		{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
		 "lmnopqrsmnopqrstnopqrstu",
		 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1", "896 bits"},
	};
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		size_t n = strlen(vectors[i].msg);
		tap_is_str(hex_of(vectors[i].msg, n), vectors[i].want, "FIPS 180-4: %s", vectors[i].name);
		tap_is_str(hex_stepped(vectors[i].msg, n, 1), vectors[i].want, "%s, byte by byte",
			   vectors[i].name);
		tap_is_str(hex_stepped(vectors[i].msg, n, 7), vectors[i].want, "%s, 7 bytes at a time",
			   vectors[i].name);
	}

	size_t million = 1000000;
	char *a = malloc(million);
	if (!a)
		return 1;
	memset(a, 'a', million);
	static const char want_million[] =
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	tap_is_str(hex_of(a, million), want_million, "FIPS 180-4: one million 'a'");
	tap_is_str(hex_stepped(a, million, 1000), want_million, "one million 'a', 1000 at a time");
	tap_is_str(hex_stepped(a, million, 64), want_million, "one million 'a', a block at a time");

	/* Where the padding needs one block or two: 55 bytes fit with the length, 56 do not. */
	static const struct {
		size_t n;
		const char *want;
	} edges[] = {
		{55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
		{56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
		{63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
		{64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
		{65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
		{119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
		{128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
	};
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
		tap_is_str(hex_of(a, edges[i].n), edges[i].want, "%zu x 'a'", edges[i].n);
		tap_is_str(hex_stepped(a, edges[i].n, 3), edges[i].want, "%zu x 'a', 3 at a time",
			   edges[i].n);
	}
	free(a);

	struct sha256 s;
	unsigned char d[SHA256_DIGEST_SIZE];
	sha256_init(&s);
	sha256_update(&s, "ab", 2);
	sha256_update(&s, "", 0);
	sha256_update(&s, "c", 1);
	sha256_final(&s, d);
	char h[SHA256_HEX_SIZE];
	sha256_hex(d, h);
	tap_is_str(h, vectors[0].want, "an empty update changes nothing");
	tap_is_int(s.bytes, 0, "final wipes the state");
	return tap_done();
}
