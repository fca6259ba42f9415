/* fastdelta: the text deltas of a Messages stream, read without building a json-c tree (pure,
 * apart from one scratch buffer per process).
 *
 * Nearly every event of a long answer is
 *   {"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}
 * and parsing each into a json-c tree (tokener, three objects, a hash table, string copies) was
 * most of the cost of relaying it. This matches exactly that shape, byte by byte (JSON blanks
 * allowed between tokens), and is stricter than both json-c and jscan inside it: any other member
 * order, an extra member, a number that is not a plain small integer, a raw control character,
 * invalid UTF-8, an escaped surrogate (json-c 0.16 misreads some
 * pairs) or \u0000 is "not mine", and the caller parses the event the
 * general way. tests/fuzz/fuzz_fastdelta.c holds it equal to that way wherever it answers. */
#ifndef LLM_FASTDELTA_H
#define LLM_FASTDELTA_H

#include <stddef.h>

/* The index has at most this many digits: far above any block count, and well inside a long. */
#define FASTDELTA_INDEX_DIGITS 9

/* Reads data[0..len) (the data of a content_block_delta event). Returns 1 when it is a text delta
 * in the shape above and sets *index, and *text and *text_len to the unescaped text: either a
 * pointer into data, or into the process's scratch buffer, valid until the next call (workers are
 * single-threaded). Not NUL-terminated. Returns 0 otherwise, touching nothing. */
int fastdelta_parse(const char *data, size_t len, long long *index, const char **text, size_t *text_len);

#endif
