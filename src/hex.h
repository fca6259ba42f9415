/* hex: one hexadecimal digit's value, for the decoders of %XX escapes and of hex key digests. */
#ifndef LLM_HEX_H
#define LLM_HEX_H

/* 0 to 15, or -1 when c is not a hex digit (either case). c is a byte value (unsigned char). */
static inline int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
