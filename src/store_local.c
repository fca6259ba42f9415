/* store_local: the two backends of one host, anonymous shared memory of the pool and a
 * memory-mapped file, which share one layout:
 *
 *   header (magic, version, capacity, holders, a checksum of those) | the lock and the redo
 *   record | capacity counter slots (open addressing, linear probing) | holder slots |
 *   BLOBS blob slots
 *
 * Every update runs under one lock, a word holding its owner's pid and start time (from
 * /proc/PID/stat). A process killed while it holds the lock cannot wedge the others: a waiter
 * that finds the owner dead (gone, a zombie, or its pid reused by a younger process) takes the
 * lock over with a compare-and-swap, so exactly one waiter does. Nor can it leave a half-written
 * slot: an update writes the slot's new image into the redo record, publishes the record, copies
 * it into the slot and clears it; whoever takes the lock next finishes a published record (the
 * copy is idempotent), and an unpublished one never happened. The lock is held for a table
 * probe and a copy, never across a system call but the liveness check of a dead owner.
 *
 * A counter keeps its newest bucket only: an older bucket reads as 0 and an add to it is
 * dropped, so windows roll over by themselves. Expired slots are reused by new names; slots are
 * never emptied, so probe chains stay whole and a name has one slot.
 *
 * Concurrency holders are slots of (owner, name hash), the owner again pid and start time:
 * counting them checks each owner alive (kill 0, then /proc when the count reaches the limit),
 * so a holder that died is dropped on the next count and nothing leaks.
 *
 * Blob slots are few and large, so they are scanned, not hashed, and written without the redo
 * record: a write clears the slot's hash, copies the key and the bytes, and sets the hash last, so
 * a writer that dies half way leaves a free slot, never a half blob under a key. A new key takes
 * a free or expired slot, else the one written longest ago. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* O_NOFOLLOW, MAP_ANONYMOUS under -std=c11 */
#endif

#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "self.h"

#define MAGIC "llmfcgi\x02" /* \x02: the blob slots were added */
#define LAYOUT_VERSION 1u
#define HOLDERS 4096u                  /* concurrent requests on one host, every pool together */
#define MAX_COUNTERS (1ull << 24)      /* 2.7 GB of slots: a bad header, not a real file */
#define START_BITS 40                  /* clock ticks since boot: 348 years at 100 Hz */
#define SPINS_BEFORE_CHECK 64
/* What a published redo record holds: a whole slot (a new counter), or only the numbers of a
 * slot whose hash and name stay. */
#define REDO_SLOT 1u
#define REDO_NUMBERS 2u
#define BLOBS 96u /* of STORE_BLOB_MAX bytes: 18 MiB, given memory only as they are written */

struct slot {
	uint64_t hash; /* 0: never used */
	long long bucket, value, expires;
	char name[STORE_NAME_MAX];
};

struct holder {
	_Atomic uint64_t owner; /* 0: free */
	uint64_t hash;
};

struct blob {
	_Atomic uint64_t hash; /* 0: free */
	uint64_t written; /* the header's blob_writes when written: oldest first out */
	long long expires;
	uint32_t len;
	char key[STORE_BLOB_KEY_MAX];
	char data[STORE_BLOB_MAX];
};

struct header {
	char magic[8];
	uint32_t version, slot_size;
	uint64_t capacity; /* counter slots, a power of two */
	uint64_t holders;
	uint64_t checksum; /* of the fields above */
	/* The mutable part, under the lock but the lock itself. */
	_Atomic uint64_t lock;
	_Atomic uint32_t redo_pending; /* REDO_SLOT, REDO_NUMBERS: redo is published and must be
					* copied to redo_slot; 0: none */
	uint32_t holders_used;         /* high-water mark of the holder slots ever taken */
	uint64_t redo_slot;
	struct slot redo;
	uint64_t blob_writes; /* blob writes ever: the order of the slots' writes */
};

struct local {
	struct store base;
	struct header *h;
	struct slot *slots;
	struct holder *holders;
	struct blob *blobs;
	size_t size;
	int fd; /* -1 for shared memory */
};

/* ---- layout ---- */

static size_t header_size(void)
{
	return (sizeof(struct header) + 63) & ~(size_t)63;
}

static size_t region_size(uint64_t capacity, uint64_t holders)
{
	return header_size() + capacity * sizeof(struct slot) + holders * sizeof(struct holder) +
	       BLOBS * sizeof(struct blob);
}

#define FNV_PRIME 0x100000001b3ull

/* FNV-1a. Four bytes a turn, the same hash: every store operation hashes its counter's name, and
 * the loop's own counting was a third of that (bench/spend-cost). */
static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const unsigned char *b = p;
	size_t i = 0;
	for (; i + 4 <= n; i += 4) {
		h = (h ^ b[i]) * FNV_PRIME;
		h = (h ^ b[i + 1]) * FNV_PRIME;
		h = (h ^ b[i + 2]) * FNV_PRIME;
		h = (h ^ b[i + 3]) * FNV_PRIME;
	}
	for (; i < n; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

static uint64_t header_checksum(const struct header *h)
{
	return fnv(h, offsetof(struct header, checksum), 0xcbf29ce484222325ull);
}

static uint64_t name_hash_n(const char *name, size_t len)
{
	uint64_t h = fnv(name, len, 0xcbf29ce484222325ull);
	return h ? h : 1;
}

static uint64_t name_hash(const char *name)
{
	return name_hash_n(name, strlen(name));
}

static void header_init(struct header *h, uint64_t capacity)
{
	memcpy(h->magic, MAGIC, 8);
	h->version = LAYOUT_VERSION;
	h->slot_size = sizeof(struct slot);
	h->capacity = capacity;
	h->holders = HOLDERS;
	h->checksum = header_checksum(h);
}

static void attach(struct local *l, void *region, size_t size)
{
	l->h = region;
	l->size = size;
	l->slots = (struct slot *)((char *)region + header_size());
	l->holders = (struct holder *)(l->slots + l->h->capacity);
	l->blobs = (struct blob *)(l->holders + l->h->holders);
}

static uint64_t round_capacity(size_t counters)
{
	uint64_t c = 1024;
	while (c < counters && c < MAX_COUNTERS)
		c <<= 1;
	return c;
}

/* ---- who we are, and whether another process still is ---- */

/* The state and start time (clock ticks since boot) in /proc/PID/stat; -1 when unreadable. */
static int proc_stat(pid_t pid, char *state, unsigned long long *start)
{
	char path[64], text[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	/* The command name may hold blanks and parentheses: the fields start after the last ')'. */
	char *p = strrchr(text, ')');
	if (!p || sscanf(p + 1, " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
				"%*s %*s %*s %llu", state, start) != 2)
		return -1;
	return 0;
}

static uint64_t owner_word(pid_t pid, unsigned long long start)
{
	return (uint64_t)pid << START_BITS | (start & ((1ull << START_BITS) - 1));
}

/* This process's owner word, read again after a fork. */
static uint64_t self_owner(void)
{
	static pid_t pid;
	static uint64_t word;
	pid_t now = self_pid();
	if (now != pid) {
		char state;
		unsigned long long start = 0;
		if (proc_stat(now, &state, &start) < 0)
			start = 0; /* no /proc: the pid alone still tells the dead from the living */
		word = owner_word(now, start);
		pid = now;
	}
	return word;
}

/* 0 when the process an owner word names has died: gone, a zombie, or its pid now another
 * process's. full = 0 trusts kill(pid, 0) alone (cheap; a zombie or a reused pid passes). */
static int owner_alive(uint64_t word, int full)
{
	pid_t pid = (pid_t)(word >> START_BITS);
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	if (!full)
		return 1;
	char state;
	unsigned long long start;
	if (proc_stat(pid, &state, &start) < 0)
		return errno == ENOENT ? 0 : 1;
	if (state == 'Z' || state == 'X')
		return 0;
	return (word & ((1ull << START_BITS) - 1)) == 0 ||
	       owner_word(pid, start) == word;
}

/* ---- the lock and the redo record ---- */

static void redo_finish(struct local *l)
{
	struct header *h = l->h;
	uint32_t pending = atomic_load_explicit(&h->redo_pending, memory_order_acquire);
	if (!pending)
		return;
	if (h->redo_slot < h->capacity) {
		struct slot *s = &l->slots[h->redo_slot];
		if (pending == REDO_NUMBERS) {
			s->bucket = h->redo.bucket;
			s->value = h->redo.value;
			s->expires = h->redo.expires;
		} else {
			*s = h->redo;
		}
	}
	atomic_store_explicit(&h->redo_pending, 0, memory_order_release);
}

static void lock(struct local *l)
{
	uint64_t me = self_owner();
	for (unsigned spins = 1;; spins++) {
		uint64_t cur = 0;
		if (atomic_compare_exchange_weak_explicit(&l->h->lock, &cur, me, memory_order_acquire,
							  memory_order_relaxed))
			break;
		if (cur && spins % SPINS_BEFORE_CHECK == 0 && !owner_alive(cur, 1) &&
		    atomic_compare_exchange_strong_explicit(&l->h->lock, &cur, me,
							    memory_order_acquire,
							    memory_order_relaxed)) {
			log_warn("state: took over the lock of dead process %llu",
				 (unsigned long long)(cur >> START_BITS));
			break;
		}
		if (spins > 8)
			sched_yield();
	}
	redo_finish(l);
}

static void unlock(struct local *l)
{
	atomic_store_explicit(&l->h->lock, 0, memory_order_release);
}

/* Writes image into slot i through the redo record. */
static void commit_slot(struct local *l, uint64_t i, const struct slot *image)
{
	struct header *h = l->h;
	h->redo = *image;
	h->redo_slot = i;
	atomic_store_explicit(&h->redo_pending, REDO_SLOT, memory_order_release);
	redo_finish(l);
}

/* The same for a slot whose name stays: only its numbers go through the redo record, not the
 * 160 bytes of a whole slot three times (most of what an add to a known counter cost). */
static void commit_numbers(struct local *l, uint64_t i, long long bucket, long long value,
			   long long expires)
{
	struct header *h = l->h;
	h->redo.bucket = bucket;
	h->redo.value = value;
	h->redo.expires = expires;
	h->redo_slot = i;
	atomic_store_explicit(&h->redo_pending, REDO_NUMBERS, memory_order_release);
	redo_finish(l);
}

/* ---- the table ---- */

/* The slot of name, or where it goes (an empty slot, else the first expired one on its chain);
 * NULL when the table has neither. *found says which. */
static struct slot *probe(struct local *l, const char *name, uint64_t hash, int *found)
{
	uint64_t mask = l->h->capacity - 1;
	struct slot *reuse = NULL;
	long long now = -1;
	*found = 0;
	for (uint64_t n = 0, i = hash & mask; n <= mask; n++, i = (i + 1) & mask) {
		struct slot *s = &l->slots[i];
		if (!s->hash)
			return reuse ? reuse : s;
		if (s->hash == hash && strcmp(s->name, name) == 0) {
			*found = 1;
			return s;
		}
		if (!reuse) {
			if (now < 0)
				now = (long long)time(NULL);
			if (s->expires && s->expires < now)
				reuse = s;
		}
	}
	return reuse;
}

/* The new image of name's slot s after writing value in bucket. */
static void image_of(struct slot *img, const struct slot *s, int found, const char *name,
		     uint64_t hash, long long bucket, long long value, long long expires_at)
{
	if (found) {
		*img = *s;
	} else {
		memset(img, 0, sizeof *img);
		img->hash = hash;
		snprintf(img->name, sizeof img->name, "%s", name);
	}
	img->bucket = bucket;
	img->value = value;
	if (!found || expires_at > img->expires)
		img->expires = expires_at;
}

/* A counter's operation of a batch, under the lock. Returns 1 when it refuses; *rc is STORE_FULL
 * when a new counter found no slot (the operation is skipped). */
static int counter_op(struct local *l, struct store_op *op, enum store_result *rc)
{
	uint64_t hash = name_hash_n(op->name, op->name_len);
	int found;
	struct slot *s = probe(l, op->name, hash, &found);
	long long cur = found && s->bucket == op->bucket ? s->value : 0;
	op->value = cur;
	if (op->kind == STORE_OP_GET)
		return op->limit >= 0 && cur >= op->limit;
	if (!s) {
		*rc = STORE_FULL;
		return 0;
	}
	/* A late add to a window already rolled over no longer counts (nor takes a place). */
	if (found && op->bucket < s->bucket)
		return op->kind == STORE_OP_ADD_CAPPED;
	if (op->kind == STORE_OP_ADD_CAPPED && cur + op->delta > op->limit)
		return 1;
	uint64_t at = (uint64_t)(s - l->slots);
	if (found) {
		commit_numbers(l, at, op->bucket, cur + op->delta,
			       op->expires_at > s->expires ? op->expires_at : s->expires);
	} else {
		struct slot img;
		image_of(&img, s, found, op->name, hash, op->bucket, cur + op->delta,
			 op->expires_at);
		commit_slot(l, at, &img);
	}
	op->value = cur + op->delta;
	return 0;
}

static enum store_result local_set(struct store *st, const char *name, long long bucket,
				   long long value, long long expires_at)
{
	struct local *l = (struct local *)st;
	uint64_t hash = name_hash(name);
	int found;
	enum store_result rc = STORE_OK;
	lock(l);
	struct slot *s = probe(l, name, hash, &found);
	if (s) {
		struct slot img;
		image_of(&img, s, found, name, hash, bucket, value, expires_at);
		commit_slot(l, (uint64_t)(s - l->slots), &img);
	} else {
		rc = STORE_FULL;
	}
	unlock(l);
	return rc;
}

/* Live holders of hash; with full, also frees the slots of dead ones. *free_slot is a free
 * slot (or UINT32_MAX). */
static unsigned count_holders(struct local *l, uint64_t hash, int full, uint32_t *free_slot)
{
	unsigned n = 0;
	*free_slot = UINT32_MAX;
	for (uint32_t i = 0; i < l->h->holders_used; i++) {
		struct holder *hd = &l->holders[i];
		uint64_t o = atomic_load_explicit(&hd->owner, memory_order_relaxed);
		if (o && hd->hash == hash && !owner_alive(o, full)) {
			atomic_store_explicit(&hd->owner, 0, memory_order_relaxed);
			o = 0;
		}
		if (!o) {
			if (*free_slot == UINT32_MAX)
				*free_slot = i;
			continue;
		}
		n += hd->hash == hash;
	}
	return n;
}

/* STORE_OP_ACQUIRE under the lock. Returns 1 when it refuses; *rc is STORE_FULL when every
 * holder slot is taken (the operation is skipped, its value 0). */
static int acquire(struct local *l, struct store_op *op, enum store_result *rc)
{
	uint64_t hash = name_hash_n(op->name, op->name_len);
	unsigned limit = op->limit < 0 ? 0 : op->limit > UINT32_MAX ? UINT32_MAX
								     : (unsigned)op->limit;
	uint32_t i;
	unsigned n = count_holders(l, hash, 0, &i);
	if (n >= limit) /* refusing: make sure every holder counted is really alive */
		n = count_holders(l, hash, 1, &i);
	op->value = n;
	if (n >= limit)
		return 1;
	if (i == UINT32_MAX && l->h->holders_used < l->h->holders)
		i = l->h->holders_used++;
	if (i == UINT32_MAX) {
		op->value = 0;
		*rc = STORE_FULL;
		return 0;
	}
	l->holders[i].hash = hash;
	atomic_store_explicit(&l->holders[i].owner, self_owner(), memory_order_release);
	op->value = n + 1;
	return 0;
}

/* STORE_OP_RELEASE under the lock. */
static void release(struct local *l, const struct store_op *op)
{
	uint64_t hash = name_hash_n(op->name, op->name_len), me = self_owner();
	for (uint32_t i = 0; i < l->h->holders_used; i++) {
		struct holder *hd = &l->holders[i];
		if (atomic_load_explicit(&hd->owner, memory_order_relaxed) == me && hd->hash == hash) {
			atomic_store_explicit(&hd->owner, 0, memory_order_release);
			break;
		}
	}
}

/* The whole batch under one lock. A refusal gives back the places taken before it (an ACQUIRE
 * that ran has a value of at least 1). A process killed in the middle leaves the operations
 * before it done, each one whole: the lock's next owner finishes the slot it was writing. */
static enum store_result local_batch(struct store *st, struct store_op *ops, size_t n,
				     size_t *refused)
{
	struct local *l = (struct local *)st;
	enum store_result rc = STORE_OK;
	lock(l);
	for (size_t i = 0; i < n; i++) {
		struct store_op *op = &ops[i];
		int no = 0;
		if (op->kind == STORE_OP_ACQUIRE)
			no = acquire(l, op, &rc);
		else if (op->kind == STORE_OP_RELEASE)
			release(l, op);
		else
			no = counter_op(l, op, &rc);
		if (no) {
			*refused = i;
			for (size_t j = 0; j < i; j++)
				if (ops[j].kind == STORE_OP_ACQUIRE && ops[j].value > 0)
					release(l, &ops[j]);
			break;
		}
	}
	unlock(l);
	return rc;
}

struct each_item {
	char name[STORE_NAME_MAX];
	long long bucket, value;
};

/* The matching counters are copied under the lock and handed to fn after it: fn may be slow
 * (it prints) and must not hold up the workers. */
static enum store_result local_each(struct store *st, const char *prefix, store_each_fn fn,
				    void *arg)
{
	struct local *l = (struct local *)st;
	size_t plen = strlen(prefix), n = 0, cap = 0;
	struct each_item *items = NULL;
	lock(l);
	for (uint64_t i = 0; i < l->h->capacity; i++) {
		const struct slot *s = &l->slots[i];
		if (!s->hash || strncmp(s->name, prefix, plen) != 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			items = realloc(items, cap * sizeof *items);
			if (!items)
				abort();
		}
		memcpy(items[n].name, s->name, sizeof items[n].name);
		items[n].name[STORE_NAME_MAX - 1] = '\0';
		items[n].bucket = s->bucket;
		items[n++].value = s->value;
	}
	unlock(l);
	for (size_t i = 0; i < n; i++)
		fn(arg, items[i].name, items[i].bucket, items[i].value);
	free(items);
	return STORE_OK;
}

/* ---- blobs ---- */

/* The slot holding key (*found 1), else where it goes: a free or expired slot, else the one
 * written longest ago. */
static struct blob *blob_find(struct local *l, const char *key, uint64_t hash, long long now,
			      int *found)
{
	struct blob *spare = NULL;
	uint64_t spare_age = UINT64_MAX;
	*found = 0;
	for (unsigned i = 0; i < BLOBS; i++) {
		struct blob *b = &l->blobs[i];
		uint64_t h = atomic_load_explicit(&b->hash, memory_order_relaxed);
		if (h == hash && strcmp(b->key, key) == 0) {
			*found = 1;
			return b;
		}
		uint64_t age = !h || b->expires < now ? 0 : b->written;
		if (age < spare_age || !spare) {
			spare = b;
			spare_age = age;
		}
	}
	return spare;
}

static enum store_result local_put_blob(struct store *st, const char *key, const void *data,
					size_t len, long long ttl_s)
{
	struct local *l = (struct local *)st;
	long long now = (long long)time(NULL);
	uint64_t hash = name_hash(key);
	int found;
	lock(l);
	struct blob *b = blob_find(l, key, hash, now, &found);
	atomic_store_explicit(&b->hash, 0, memory_order_release);
	snprintf(b->key, sizeof b->key, "%s", key);
	memcpy(b->data, data, len);
	b->len = (uint32_t)len;
	b->written = ++l->h->blob_writes;
	b->expires = now + ttl_s;
	atomic_store_explicit(&b->hash, hash, memory_order_release);
	unlock(l);
	return STORE_OK;
}

static enum store_result local_get_blob(struct store *st, const char *key, struct buf *out,
					int *found)
{
	struct local *l = (struct local *)st;
	long long now = (long long)time(NULL);
	char *copy = xmalloc(STORE_BLOB_MAX); /* before the lock: no allocation under it */
	size_t len = 0;
	lock(l);
	struct blob *b = blob_find(l, key, name_hash(key), now, found);
	if (*found && b->expires >= now) {
		len = b->len;
		memcpy(copy, b->data, len);
	} else {
		*found = 0;
	}
	unlock(l);
	int rc = *found ? buf_append(out, copy, len) : 0;
	free(copy);
	return rc < 0 ? STORE_FULL : STORE_OK;
}

static void local_close(struct store *st)
{
	struct local *l = (struct local *)st;
	munmap(l->h, l->size);
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

static const struct store_ops shm_ops = {
	.backend = "shm",
	.batch = local_batch,
	.set = local_set,
	.each = local_each,
	.put_blob = local_put_blob,
	.get_blob = local_get_blob,
	.close = local_close,
};

static const struct store_ops file_ops = {
	.backend = "file",
	.batch = local_batch,
	.set = local_set,
	.each = local_each,
	.put_blob = local_put_blob,
	.get_blob = local_get_blob,
	.close = local_close,
};

static struct local *local_new(const struct store_ops *ops, int fd)
{
	struct local *l = calloc(1, sizeof *l);
	if (!l)
		abort();
	l->base.ops = ops;
	l->fd = fd;
	return l;
}

struct store *store_open_shm(size_t counters, struct buf *err)
{
	uint64_t cap = round_capacity(counters);
	size_t size = region_size(cap, HOLDERS);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		buf_note(err, "shared memory of %zu bytes: %s", size, strerror(errno));
		return NULL;
	}
	header_init(p, cap);
	struct local *l = local_new(&shm_ops, -1);
	attach(l, p, size);
	return &l->base;
}

/* ---- the file: checked, created or recreated under flock, so two processes starting at once
 * (a pool and a CGI request) agree on one ---- */

static int file_refuse(struct buf *err, const char *path, const char *why)
{
	buf_note(err, "state_file %s: %s", path, why);
	return -1;
}

/* Owner, type and mode: the counters are the operator's, and a file others can write lets them
 * spend the budget or wedge the pool. */
static int file_check_stat(int fd, const char *path, struct buf *err, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return file_refuse(err, path, strerror(errno));
	if (!S_ISREG(st->st_mode))
		return file_refuse(err, path, "is not a regular file");
	if (st->st_uid != geteuid()) {
		buf_note(err, "state_file %s: owned by uid %ld, not by this process's uid %ld "
				"(every process that shares it must run as its owner)",
			   path, (long)st->st_uid, (long)geteuid());
		return -1;
	}
	if (st->st_mode & 077) {
		buf_note(err, "state_file %s: mode %03o: it must be readable and writable by its "
				"owner only (chmod 600)", path, (unsigned)(st->st_mode & 0777));
		return -1;
	}
	return 0;
}

/* 0 when the header is ours and whole (*cap set), 1 when the file must be (re)created (empty or
 * truncated), -1 when it is refused. */
static int file_check_header(int fd, const char *path, off_t size, uint64_t *cap, struct buf *err)
{
	struct header h;
	if (size == 0)
		return 1;
	ssize_t n = pread(fd, &h, sizeof h, 0);
	if (n < 0)
		return file_refuse(err, path, strerror(errno));
	if ((size_t)n < sizeof h.magic || memcmp(h.magic, MAGIC, sizeof h.magic) != 0) {
		if ((size_t)n >= sizeof h.magic && memcmp(h.magic, MAGIC, 7) == 0)
			return file_refuse(err, path, "was written by another version of llm-fcgi; "
						      "remove it to start the counters over");
		return file_refuse(err, path, "is not an llm-fcgi state file; move it away or "
					      "name another state_file");
	}
	if ((size_t)n < sizeof h) {
		log_warn("state_file %s: truncated to %lld bytes: recreated, counters start over",
			 path, (long long)size);
		return 1;
	}
	if (h.checksum != header_checksum(&h) || h.version != LAYOUT_VERSION ||
	    h.slot_size != sizeof(struct slot) || h.holders != HOLDERS || h.capacity < 1024 ||
	    h.capacity > MAX_COUNTERS || (h.capacity & (h.capacity - 1)))
		return file_refuse(err, path, "has a damaged header; remove it to start the "
					      "counters over");
	if ((uint64_t)size < region_size(h.capacity, h.holders)) {
		log_warn("state_file %s: truncated to %lld bytes: recreated, counters start over",
			 path, (long long)size);
		return 1;
	}
	*cap = h.capacity;
	return 0;
}

static int file_create(int fd, const char *path, uint64_t cap, struct buf *err)
{
	struct header h;
	memset(&h, 0, sizeof h);
	header_init(&h, cap);
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)region_size(cap, HOLDERS)) < 0 ||
	    pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
		return file_refuse(err, path, strerror(errno));
	return 0;
}

static int file_prepare(int fd, const char *path, size_t counters, uint64_t *cap, struct buf *err)
{
	struct stat st;
	if (file_check_stat(fd, path, err, &st) < 0)
		return -1;
	int rc = file_check_header(fd, path, st.st_size, cap, err);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		*cap = round_capacity(counters);
		return file_create(fd, path, *cap, err);
	}
	return 0;
}

struct store *store_open_file(const char *path, size_t counters, struct buf *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		buf_note(err, "state_file %s: %s", path, strerror(errno));
		return NULL;
	}
	uint64_t cap = 0;
	void *p = MAP_FAILED;
	if (flock(fd, LOCK_EX) < 0) {
		file_refuse(err, path, strerror(errno));
	} else if (file_prepare(fd, path, counters, &cap, err) == 0) {
		p = mmap(NULL, region_size(cap, HOLDERS), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			file_refuse(err, path, strerror(errno));
	}
	flock(fd, LOCK_UN);
	if (p == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	struct local *l = local_new(&file_ops, fd);
	attach(l, p, region_size(cap, HOLDERS));
	return &l->base;
}
