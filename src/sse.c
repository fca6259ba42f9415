#include "sse.h"

#include <string.h>

void sse_decoder_init(struct sse_decoder *d, size_t max_event, sse_event_fn fn, void *arg)
{
	d->on_event = fn;
	d->arg = arg;
	buf_init(&d->line, max_event);
	buf_init(&d->event, max_event);
	buf_init(&d->data, max_event);
	buf_init(&d->id, max_event);
	d->pending_cr = 0;
	d->has_data = 0;
	d->max_event = max_event;
}

static const char *find(const char *p, const char *end, char c)
{
	const char *q = memchr(p, c, (size_t)(end - p));
	return q ? q : end;
}

/* The next CR or LF in [p, end), or end. *lf and *cr remember the last hit of each, so a stream
 * that uses only one kind of line end does not rescan the rest of the chunk for the other kind on
 * every line: each byte is scanned at most once for each of the two characters. */
static const char *next_eol(const char *p, const char *end, const char **lf, const char **cr)
{
	if (*lf < p)
		*lf = find(p, end, '\n');
	if (*cr < p)
		*cr = find(p, end, '\r');
	return *lf < *cr ? *lf : *cr;
}

/* The cap counts the raw line (field name included) on top of what the event already holds, at
 * the moment both exist in memory. Checking the whole line whether it arrived in one chunk or was
 * buffered across several keeps the outcome independent of how the bytes were split. */
static int fits(const struct sse_decoder *d, size_t more)
{
	size_t used = d->line.len + d->event.len + d->data.len + d->id.len;
	return used <= d->max_event && more <= d->max_event - used;
}

static void clear_event(struct sse_decoder *d)
{
	buf_reset(&d->event);
	buf_reset(&d->data);
	buf_reset(&d->id);
	d->has_data = 0;
}

static enum sse_result dispatch(struct sse_decoder *d)
{
	int stop = 0;
	/* An empty "data:" still makes an event (has_data); an empty "event:" alone does not. */
	if (d->has_data || d->event.len) {
		const struct sse_event ev = {
			.event = buf_cstr(&d->event),
			.data = buf_cstr(&d->data),
			.data_len = d->data.len,
			.id = buf_cstr(&d->id),
		};
		stop = d->on_event(d->arg, &ev);
	}
	clear_event(d);
	return stop ? SSE_STOPPED : SSE_OK;
}

static int set_field(struct buf *b, const char *v, size_t n)
{
	buf_reset(b);
	return buf_append(b, v, n);
}

/* s is one complete line without its terminator; it may point into the caller's chunk. */
static enum sse_result process_line(struct sse_decoder *d, const char *s, size_t len)
{
	if (len == 0)
		return dispatch(d);
	if (s[0] == ':')
		return SSE_OK;

	const char *colon = memchr(s, ':', len);
	size_t nlen = colon ? (size_t)(colon - s) : len;
	const char *v = s + len;
	size_t vlen = 0;
	if (colon) {
		v = colon + 1;
		vlen = len - nlen - 1;
		if (vlen && *v == ' ') {
			v++;
			vlen--;
		}
	}

	int rc = 0;
	if (nlen == 4 && memcmp(s, "data", 4) == 0) {
		if (d->has_data)
			rc = buf_appendc(&d->data, '\n');
		if (rc == 0)
			rc = buf_append(&d->data, v, vlen);
		d->has_data = 1;
	} else if (nlen == 5 && memcmp(s, "event", 5) == 0) {
		rc = set_field(&d->event, v, vlen);
	} else if (nlen == 2 && memcmp(s, "id", 2) == 0 && !memchr(v, '\0', vlen)) {
		rc = set_field(&d->id, v, vlen);
	}
	/* "retry" and unknown fields are ignored: reconnection is not ours to schedule. */
	return rc ? SSE_TOO_LARGE : SSE_OK;
}

enum sse_result sse_decoder_feed(struct sse_decoder *d, const char *p, size_t n)
{
	if (n == 0)
		return SSE_OK;
	const char *end = p + n;
	if (d->pending_cr) {
		d->pending_cr = 0;
		if (*p == '\n')
			p++;
	}

	const char *lf = find(p, end, '\n');
	const char *cr = find(p, end, '\r');
	while (p < end) {
		const char *eol = next_eol(p, end, &lf, &cr);
		size_t k = (size_t)(eol - p);
		if (!fits(d, k))
			return SSE_TOO_LARGE;
		if (eol == end)
			return buf_append(&d->line, p, k) < 0 ? SSE_TOO_LARGE : SSE_OK;

		/* A line wholly inside this chunk is parsed where it lies; only one that began
		 * in an earlier chunk goes through d->line. */
		const char *s = p;
		size_t len = k;
		if (d->line.len) {
			if (buf_append(&d->line, p, k) < 0)
				return SSE_TOO_LARGE;
			s = d->line.data;
			len = d->line.len;
		}

		p = eol + 1;
		if (*eol == '\r') {
			if (p == end)
				d->pending_cr = 1;
			else if (*p == '\n')
				p++;
		}

		enum sse_result r = process_line(d, s, len);
		buf_reset(&d->line);
		if (r != SSE_OK)
			return r;
	}
	return SSE_OK;
}

void sse_decoder_reset(struct sse_decoder *d)
{
	buf_reset(&d->line);
	clear_event(d);
	d->pending_cr = 0;
}

void sse_decoder_release(struct sse_decoder *d)
{
	buf_release(&d->line);
	buf_release(&d->event);
	buf_release(&d->data);
	buf_release(&d->id);
}

static int has_eol(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

static int append_line(struct buf *out, const char *prefix, size_t plen, const char *v, size_t vlen)
{
	if (buf_append(out, prefix, plen) < 0 || buf_append(out, v, vlen) < 0 ||
	    buf_appendc(out, '\n') < 0)
		return -1;
	return 0;
}

/* A failed encode leaves out as it was, so a caller never sends half a frame. */
static int rollback(struct buf *out, size_t mark)
{
	out->len = mark;
	if (out->data)
		out->data[mark] = '\0';
	return -1;
}

int sse_encode(struct buf *out, const char *event, const char *id, const char *data, size_t len)
{
	size_t mark = out->len;
	/* A line end inside the name or id would end the field early and let the rest of the
	 * string be read as further fields, so such a frame is refused rather than written. */
	if ((event && has_eol(event)) || (id && has_eol(id)))
		return -1;
	if (event && append_line(out, "event: ", 7, event, strlen(event)) < 0)
		return rollback(out, mark);
	if (id && append_line(out, "id: ", 4, id, strlen(id)) < 0)
		return rollback(out, mark);

	const char *p = len ? data : "";
	const char *end = p + len;
	const char *lf = find(p, end, '\n');
	const char *cr = find(p, end, '\r');
	for (;;) {
		const char *eol = next_eol(p, end, &lf, &cr);
		if (append_line(out, "data: ", 6, p, (size_t)(eol - p)) < 0)
			return rollback(out, mark);
		if (eol == end)
			break;
		p = eol + 1;
		if (*eol == '\r' && p < end && *p == '\n')
			p++;
	}
	if (buf_appendc(out, '\n') < 0)
		return rollback(out, mark);
	return 0;
}

int sse_encode_comment(struct buf *out, const char *text)
{
	size_t mark = out->len;
	if (has_eol(text))
		return -1;
	if (append_line(out, ": ", 2, text, strlen(text)) < 0 || buf_appendc(out, '\n') < 0)
		return rollback(out, mark);
	return 0;
}
