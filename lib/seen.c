/*
 * seen.c -- the bounded identity set of seen.h and its journal.
 *
 * Memory: a ring of hashes {lo, hi} in the order they were added (head
 * = oldest), beside it a ring of first-seen times (only when an age
 * window or a state file needs them), and an htab.h index over the
 * ring.  Adding evicts from the head (by age, then by count) before it
 * inserts at the tail, so both costs are O(1).  The index fingerprint is
 * the low 32 bits of hash lo; the full 128 bits are compared in the ring.
 *
 * Growth.  Capacity doubles from 4096 up to max_count (straight to
 * max_count once a doubling would pass half of it), so a small input
 * costs little.  Memory that is touched is what costs here (the kernel
 * clears every page on first use), so growing touches as little as it
 * can: the rings are extended in place with mremap (no copy; their new
 * part is cleared only as it fills), and the index is rebuilt from the
 * old index alone, slot by slot, which streams through both tables
 * instead of missing the cache once an entry (see htab.h).
 *
 * State file (all integers little-endian):
 *
 *   header, 88 bytes (version 1 files, still read: 56, without the mark):
 *     0  magic "MQ-SEEN\n"       8  u32 version (2)     12  u32 header size (88)
 *    16  u64 max_count          24  i64 max_age_ms      32  u64 k0, 40 u64 k1 (hash key)
 *    48  u32 CRC-32C of bytes 0..47                      52  u32 zero
 *    the delivery mark (rewritten in place, so outside the header's CRC):
 *    56  u64 known: entries, from the first, that may have left the process
 *    64  16 bytes: the boot id (Linux's /proc/sys/kernel/random/boot_id) it was written in
 *    80  u32 CRC-32C of bytes 56..79                     84  u32 zero
 *   then blocks:
 *     0  u32 count (1..65536)    4  u32 CRC-32C of the count and the entries
 *     8  count entries of 24 bytes: u64 hash lo, u64 hash hi, i64 first-seen ms
 *
 * Entries are in the order they were added, so replaying the file
 * rebuilds the set, windows included.  The window in the header is the
 * one the file was written with; the window given at open is the one
 * applied.  The hash key lives in the header: hashes written by one run
 * must match the next run's.
 *
 * Crash rules.  Every block is followed by fdatasync before the next
 * block is written, so a crash can damage only the last block.  On open,
 * a block that is short, has an impossible count or fails its CRC is a
 * torn tail when it starts within one largest block of the end: it is
 * cut off (like the log's torn batch).  Anywhere earlier, or in the
 * header, it is corruption: open fails and says at which byte, and only
 * a reset (a new, empty file) goes past it.  With a report callback (the
 * broker) corruption is cut off like a torn tail, a bad header starts an
 * empty file, and each cut is reported: there, a window with some ids
 * forgotten beats a broker that does not start.
 *
 * Size bound.  When the file holds more than 2 x (entries in the set) +
 * 4096 entries, sync writes the set afresh to FILE.tmp, fsyncs it,
 * renames it over FILE and fsyncs the directory: the file stays within
 * about twice the window, and a crash during the rewrite leaves either
 * the old or the new file whole.  Each rewrite follows at least as many
 * additions as it copies, so the cost per addition is O(1).
 *
 * The delivery mark (mq_seen_confirm; opts.confirm).  A filter records
 * an identity before the record leaves (so a record printed before a
 * crash is known after it), but a kill -9 between the record's sync and
 * its write would then leave it known and never printed: lost, with a
 * whole batch beside it (a sync takes milliseconds; a full pipe can hold
 * the writer for as long as its reader likes).  So the filter also says,
 * right before each write(2), up to which addition the records are
 * about to leave, and the mark keeps that count in the page cache (a
 * pwrite, no sync).  After a kill -9 the page cache is whole: on open in
 * the same boot, entries past the mark are taken back (their records
 * never left) and the file is rewritten without them.  After a reboot
 * the page cache may have lost the mark's latest value, which could only
 * take back too much: a mark from another boot is ignored and every
 * entry is known, as without marks.  A mark that fails its CRC is
 * corruption (at byte 56), like a damaged header.  Files written
 * without confirm carry known = all (UINT64_MAX) and are read so.
 *
 * The file is locked (flock) while open, so two processes never append
 * to one journal; a rewrite locks FILE.tmp before it becomes FILE.
 */
#include "seen.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "htab.h"

#define HDR_SIZE 88
#define HDR1_SIZE 56
#define HDR_CRC_AT 48
#define MARK_AT 56
#define MARK_SIZE 32
#define BOOT_LEN 16
#define ENT_SIZE 24
#define BLK_HDR 8
#define BLOCK_MAX 65536u
#define BLOCK_MAX_BYTES ((uint64_t)BLK_HDR + (uint64_t)BLOCK_MAX * ENT_SIZE)
#define RING_MIN 4096u
#define SLACK 4096u
#define VERSION 2
static const char magic[8] = {'M', 'Q', '-', 'S', 'E', 'E', 'N', '\n'};

typedef struct ent {
	uint64_t lo, hi;
	int64_t ts;
} ent_t;

struct mq_seen {
	mq_hashkey_t key;
	uint64_t max_count;
	int64_t max_age_ms;
	mq_hash128_t *ring;
	int64_t *ts;                /* first-seen times, or NULL when nothing needs them */
	size_t ring_size, ts_size;  /* bytes mapped for each */
	uint64_t cap, head, count;
	mq_htab_t tab;
	uint64_t forced;
	/* journal */
	char *path;
	int fd;                /* -1: no state file */
	uint64_t file_entries; /* entries in the file, written and synced */
	mq_buf_t pend;         /* BLK_HDR bytes of room, then entries not yet written */
	uint32_t npend;
	mq_report_fn report;   /* NULL: damage is refused */
	void *report_ctx;
	/* delivery mark */
	int confirm;           /* opts.confirm */
	int have_boot;         /* boot[] is this boot's id */
	uint8_t boot[BOOT_LEN];
	uint64_t added;        /* additions since open */
	uint64_t known_add;    /* of them, the first this many may have left */
	uint64_t mark;         /* the known count the file's mark holds */
	uint64_t hdr_size;     /* where the loaded file's blocks start */
	int must_rewrite;      /* open: entries were taken back, or an old format */
};

/* ---- the set ---- */

static long find(const mq_seen_t *s, mq_hash128_t h, size_t *pos)
{
	uint32_t fp = (uint32_t)h.lo;
	long i;
	*pos = mq_htab_home(&s->tab, fp);
	while ((i = mq_htab_next(&s->tab, fp, pos)) >= 0)
		if (s->ring[i].lo == h.lo && s->ring[i].hi == h.hi)
			return i;
	return -1;
}

/* Evictions go in ring order, so the slot of the one PREFETCH_AHEAD
 * later is known now: asking for it early hides that cache miss. */
#define PREFETCH_AHEAD 64

static void evict_oldest(mq_seen_t *s)
{
	const mq_hash128_t *e = &s->ring[s->head];
	if (s->count > PREFETCH_AHEAD) {
		uint64_t a = s->head + PREFETCH_AHEAD;
		a = a >= s->cap ? a - s->cap : a;
		__builtin_prefetch(&s->tab.slot[mq_htab_home(&s->tab, (uint32_t)s->ring[a].lo)], 1);
	}
	mq_htab_remove_at(&s->tab, mq_htab_slot_of(&s->tab, (uint32_t)e->lo, (uint32_t)s->head));
	s->head = s->head + 1 == s->cap ? 0 : s->head + 1;
	s->count--;
}

static void evict_expired(mq_seen_t *s, int64_t now_ms)
{
	if (s->max_age_ms <= 0)
		return;
	while (s->count && now_ms - s->ts[s->head] >= s->max_age_ms)
		evict_oldest(s);
}

/* Extends a mapping of *size bytes to n in place or by moving its pages
 * (never copying them); the new part reads as zero until written. */
static int extend_array(void **p, size_t *size, size_t n)
{
	void *q = mremap(*p, *size, n, MREMAP_MAYMOVE);
	if (q == MAP_FAILED)
		return -1;
#ifdef MADV_HUGEPAGE
	if (n >= ((size_t)2 << 20))
		madvise(q, n, MADV_HUGEPAGE); /* a hint, as in mq_big_alloc */
#endif
	*p = q;
	*size = n;
	return 0;
}

/* Where the entry at old index i of a ring of cap stands in one of cap2
 * (> cap) when the ring holds count entries from head: the entries that
 * had wrapped round to the front move up to follow the others. */
static uint64_t moved_index(uint64_t i, uint64_t head, uint64_t count, uint64_t cap, uint64_t cap2)
{
	if (i >= head || head + count <= cap)
		return i;
	uint64_t j = cap + i;
	return j >= cap2 ? j - cap2 : j;
}

/* Grows capacity (doubling, or straight to max_count once a doubling
 * would pass half of it): the rings are extended in place, the entries
 * that had wrapped round move up behind the others, and the index is
 * rebuilt from the old one, in slot order. */
static int grow(mq_seen_t *s, mq_err_t *err)
{
	uint64_t cap = s->cap * 4 > s->max_count ? s->max_count : s->cap * 2;
	mq_htab_t tab;
	if (mq_htab_init(&tab, cap, err))
		return -MQ_ENOMEM;
	if (extend_array((void **)&s->ring, &s->ring_size, (size_t)cap * sizeof *s->ring) < 0 ||
	    (s->ts && extend_array((void **)&s->ts, &s->ts_size, (size_t)cap * sizeof *s->ts) < 0)) {
		mq_htab_free(&tab);
		return mq_err_set(err, MQ_ENOMEM, "identity set: out of memory for %" PRIu64 " identities", cap);
	}
	/* The wrapped entries, in ascending order: each goes to a place
	 * above the ring's old end or, past the new end, below its own. */
	if (s->head + s->count > s->cap) {
		for (uint64_t i = 0; i < s->head + s->count - s->cap; i++) {
			uint64_t j = moved_index(i, s->head, s->count, s->cap, cap);
			s->ring[j] = s->ring[i];
			if (s->ts)
				s->ts[j] = s->ts[i];
		}
	}
	/* Start past an empty slot, so that no run is entered midway. */
	size_t start = 0;
	while (s->tab.slot[start])
		start++;
	for (size_t k = 0, p = start; k < s->tab.n; k++, p = mq_htab_succ(&s->tab, p)) {
		uint64_t v = s->tab.slot[p];
		if (v)
			mq_htab_add(&tab, mq_htab_slot_fp(v),
				    (uint32_t)moved_index(mq_htab_slot_idx(v), s->head, s->count, s->cap, cap));
	}
	mq_htab_free(&s->tab);
	s->tab = tab;
	s->cap = cap;
	return 0;
}

/* Inserts h (known to be absent; pos from find) at the tail. */
static int insert(mq_seen_t *s, mq_hash128_t h, int64_t ts, size_t pos, mq_err_t *err)
{
	if (s->count == s->max_count) {
		if (s->max_age_ms > 0)
			s->forced++;
		evict_oldest(s);
		long i = find(s, h, &pos); /* the eviction may have moved the empty slot */
		(void)i;
	} else if (s->count == s->cap) {
		int rc = grow(s, err);
		if (rc < 0)
			return rc;
		long i = find(s, h, &pos);
		(void)i;
	}
	uint64_t t = s->head + s->count;
	if (t >= s->cap)
		t -= s->cap;
	s->ring[t] = h;
	if (s->ts)
		s->ts[t] = ts;
	mq_htab_put(&s->tab, pos, (uint32_t)h.lo, (uint32_t)t);
	s->count++;
	return 0;
}

/* ---- journal ---- */

/* The i-th entry from the head (the set keeps times when it has a file). */
static ent_t ent_at(const mq_seen_t *s, uint64_t i)
{
	uint64_t t = s->head + i;
	if (t >= s->cap)
		t -= s->cap;
	return (ent_t){s->ring[t].lo, s->ring[t].hi, s->ts ? s->ts[t] : 0};
}

static void put_ent(uint8_t *p, const ent_t *e)
{
	mq_put_u64(p, e->lo);
	mq_put_u64(p + 8, e->hi);
	mq_put_u64(p + 16, (uint64_t)e->ts);
}

static ent_t get_ent(const uint8_t *p)
{
	return (ent_t){mq_get_u64(p), mq_get_u64(p + 8), (int64_t)mq_get_u64(p + 16)};
}

/* Fills the block header in front of n entries at b[BLK_HDR...]. */
static size_t seal_block(uint8_t *b, uint32_t n)
{
	size_t len = BLK_HDR + (size_t)n * ENT_SIZE;
	mq_put_u32(b, n);
	uint32_t crc = mq_crc32c(0, b, 4);
	mq_put_u32(b + 4, mq_crc32c(crc, b + BLK_HDR, len - BLK_HDR));
	return len;
}

/* The 32 bytes of a mark saying known. */
static void make_mark(const mq_seen_t *s, uint64_t known, uint8_t *m)
{
	memset(m, 0, MARK_SIZE);
	mq_put_u64(m, known);
	if (s->confirm && s->have_boot)
		memcpy(m + 8, s->boot, BOOT_LEN);
	mq_put_u32(m + 24, mq_crc32c(0, m, 24));
}

static void make_header(const mq_seen_t *s, uint8_t *h, uint64_t known)
{
	memset(h, 0, HDR_SIZE);
	memcpy(h, magic, sizeof magic);
	mq_put_u32(h + 8, VERSION);
	mq_put_u32(h + 12, HDR_SIZE);
	mq_put_u64(h + 16, s->max_count);
	mq_put_u64(h + 24, (uint64_t)s->max_age_ms);
	mq_put_u64(h + 32, s->key.k0);
	mq_put_u64(h + 40, s->key.k1);
	mq_put_u32(h + HDR_CRC_AT, mq_crc32c(0, h, HDR_CRC_AT));
	make_mark(s, known, h + MARK_AT);
}

/* Entries of the file, from the first, whose records may have left: all
 * but the most recent additions not confirmed (those still pending are
 * not in the file yet). */
static uint64_t file_known(const mq_seen_t *s)
{
	if (!s->confirm)
		return UINT64_MAX;
	uint64_t unknown = s->added - s->known_add;
	uint64_t in_file = unknown > s->npend ? unknown - s->npend : 0;
	return in_file < s->file_entries ? s->file_entries - in_file : 0;
}

/* Puts the mark in step (a pwrite to the page cache; see the top). */
static int write_mark(mq_seen_t *s, mq_err_t *err)
{
	uint8_t m[MARK_SIZE];
	if (!s->confirm || !s->have_boot || s->hdr_size != HDR_SIZE)
		return 0;
	uint64_t known = file_known(s);
	if (known == s->mark)
		return 0;
	make_mark(s, known, m);
	if (pwrite(s->fd, m, MARK_SIZE, MARK_AT) != MARK_SIZE)
		return mq_err_sys(err, "writing the delivery mark of state file '%s'", s->path);
	s->mark = known;
	return 0;
}

/* This boot's id, as 16 bytes; 0 when it cannot be read. */
static int read_boot_id(uint8_t *out)
{
	char txt[64];
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (!f)
		return 0;
	size_t n = fread(txt, 1, sizeof txt - 1, f), k = 0;
	fclose(f);
	for (size_t i = 0; i < n && k < 2 * BOOT_LEN; i++) {
		int c = txt[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			continue;
		out[k / 2] = (uint8_t)(k % 2 ? out[k / 2] | v : v << 4);
		k++;
	}
	return k == 2 * BOOT_LEN;
}

static int write_pending(mq_seen_t *s, mq_err_t *err)
{
	if (!s->npend)
		return 0;
	size_t len = seal_block(s->pend.p, s->npend);
	if (mq_write_all(s->fd, s->pend.p, len) < 0)
		return mq_err_sys(err, "writing state file '%s'", s->path);
	s->file_entries += s->npend;
	s->npend = 0;
	s->pend.len = BLK_HDR;
	int rc = write_mark(s, err); /* confirmed before they were written */
	if (rc < 0)
		return rc;
	if (fdatasync(s->fd) < 0)
		return mq_err_sys(err, "syncing state file '%s'", s->path);
	return 0;
}

/* Writes the set as a new file and puts it in place of the old one. */
static int rewrite(mq_seen_t *s, mq_err_t *err)
{
	char tmp[4096];
	uint8_t hdr[HDR_SIZE];
	uint8_t *blk = NULL;
	int rc, fd;
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", s->path) >= sizeof tmp)
		return mq_err_set(err, MQ_EINVAL, "state file '%s': path too long", s->path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return mq_err_sys(err, "creating '%s'", tmp);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = mq_err_sys(err, "locking '%s'", tmp);
		goto fail;
	}
	/* The set is the most recent additions, so its unconfirmed ones are
	 * its last (npend is 0 here: a sync wrote them, or none were made). */
	uint64_t unknown = s->added - s->known_add, known = UINT64_MAX;
	if (s->confirm)
		known = s->count - (unknown < s->count ? unknown : s->count);
	make_header(s, hdr, known);
	if (mq_write_all(fd, hdr, HDR_SIZE) < 0) {
		rc = mq_err_sys(err, "writing '%s'", tmp);
		goto fail;
	}
	if (s->count && !(blk = malloc(BLOCK_MAX_BYTES))) {
		rc = mq_err_set(err, MQ_ENOMEM, "state file '%s': out of memory for a rewrite", s->path);
		goto fail;
	}
	for (uint64_t i = 0; i < s->count;) {
		uint32_t n = 0;
		for (; n < BLOCK_MAX && i < s->count; n++, i++) {
			ent_t e = ent_at(s, i);
			put_ent(blk + BLK_HDR + (size_t)n * ENT_SIZE, &e);
		}
		if (mq_write_all(fd, blk, seal_block(blk, n)) < 0) {
			rc = mq_err_sys(err, "writing '%s'", tmp);
			goto fail;
		}
	}
	if (fsync(fd) < 0) {
		rc = mq_err_sys(err, "syncing '%s'", tmp);
		goto fail;
	}
	if (rename(tmp, s->path) < 0) {
		rc = mq_err_sys(err, "renaming '%s' to '%s'", tmp, s->path);
		goto fail;
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", s->path);
	if ((rc = mq_fsync_dir(dirname(dir), err)) < 0) {
		close(fd);
		return rc;
	}
	free(blk);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	s->file_entries = s->count;
	s->mark = known;
	s->hdr_size = HDR_SIZE;
	return 0;
fail:
	free(blk);
	close(fd);
	unlink(tmp);
	return rc;
}

static int corrupt(const mq_seen_t *s, uint64_t at, const char *why, mq_err_t *err)
{
	return mq_err_set(err, MQ_ECORRUPT, "state file '%s' is corrupt at byte %" PRIu64 " (%s)", s->path, at,
			  why);
}

static int check_header(mq_seen_t *s, const uint8_t *h, uint64_t size, mq_err_t *err)
{
	if (size < HDR1_SIZE)
		return corrupt(s, size, "shorter than its header", err);
	if (memcmp(h, magic, sizeof magic) != 0)
		return corrupt(s, 0, "not an mq-dedup state file", err);
	if (mq_get_u32(h + HDR_CRC_AT) != mq_crc32c(0, h, HDR_CRC_AT))
		return corrupt(s, HDR_CRC_AT, "header checksum mismatch", err);
	uint32_t v = mq_get_u32(h + 8), hs = mq_get_u32(h + 12);
	if (!(v == 1 && hs == HDR1_SIZE) && !(v == VERSION && hs == HDR_SIZE))
		return corrupt(s, 8, "unknown format version", err);
	if (size < hs)
		return corrupt(s, size, "shorter than its header", err);
	s->hdr_size = hs;
	s->key.k0 = mq_get_u64(h + 32);
	s->key.k1 = mq_get_u64(h + 40);
	return 0;
}

/* Replays the blocks of an open, locked file into the set.  1 when the
 * header is damaged and s->report took the loss: start afresh. */
static int load(mq_seen_t *s, int fd, int64_t now_ms, mq_err_t *err)
{
	struct stat st;
	uint8_t hdr[HDR_SIZE];
	uint8_t *blk = NULL;
	int rc = 0;
	if (fstat(fd, &st) < 0)
		return mq_err_sys(err, "state file '%s'", s->path);
	uint64_t size = (uint64_t)st.st_size, off, limit = UINT64_MAX;
	memset(hdr, 0, sizeof hdr);
	long long got = mq_pread_full(fd, hdr, HDR_SIZE, 0);
	if (got < 0)
		return mq_err_sys(err, "reading state file '%s'", s->path);
	if ((rc = check_header(s, hdr, size, err)) < 0) {
		if (!s->report)
			return rc;
		char line[sizeof err->msg + 96];
		mq_err_t e;
		check_header(s, hdr, size, &e); /* err may be NULL */
		snprintf(line, sizeof line, "%s; kept 0 ids, dropped all %" PRIu64 " bytes", e.msg, size);
		s->report(s->report_ctx, line);
		return 1;
	}
	off = s->hdr_size;
	if (s->confirm && off == HDR1_SIZE) {
		s->must_rewrite = 1; /* no room for a mark: write it anew */
	} else if (s->confirm) {
		/* A mark is one pwrite within a sector: a bad checksum is damage,
		 * not a torn write. */
		const uint8_t *m = hdr + MARK_AT;
		if (mq_get_u32(m + 24) != mq_crc32c(0, m, 24))
			return corrupt(s, MARK_AT, "delivery mark checksum mismatch", err);
		if (s->have_boot && memcmp(m + 8, s->boot, BOOT_LEN) == 0)
			limit = mq_get_u64(m); /* else from another boot: all known */
	}
	s->mark = limit; /* UINT64_MAX: none of this boot's, write one */
	if (size > off && !(blk = malloc(BLOCK_MAX_BYTES)))
		return mq_err_set(err, MQ_ENOMEM, "state file '%s': out of memory", s->path);
	while (off < size) {
		const char *bad = NULL;
		uint64_t left = size - off;
		uint32_t n = 0;
		if (left < BLK_HDR || mq_pread_full(fd, blk, BLK_HDR, off) != BLK_HDR) {
			bad = "short block header";
		} else if ((n = mq_get_u32(blk)) == 0 || n > BLOCK_MAX) {
			bad = "impossible entry count";
		} else if (left < BLK_HDR + (uint64_t)n * ENT_SIZE) {
			bad = "block runs past the end";
		} else {
			size_t len = BLK_HDR + (size_t)n * ENT_SIZE;
			if (mq_pread_full(fd, blk + BLK_HDR, len - BLK_HDR, off + BLK_HDR) != (long long)(len - BLK_HDR)) {
				rc = mq_err_sys(err, "reading state file '%s'", s->path);
				goto out;
			}
			if (mq_crc32c(mq_crc32c(0, blk, 4), blk + BLK_HDR, len - BLK_HDR) != mq_get_u32(blk + 4))
				bad = "block checksum mismatch";
		}
		if (bad && left > BLOCK_MAX_BYTES && !s->report) {
			rc = corrupt(s, off, bad, err);
			goto out;
		}
		if (bad) { /* torn tail of a crash, or damage the caller takes: cut it */
			if (ftruncate(fd, (off_t)off) < 0 || fdatasync(fd) < 0) {
				rc = mq_err_sys(err, "cutting the torn end of state file '%s' at byte %" PRIu64,
						s->path, off);
				goto out;
			}
			if (s->report) {
				char line[4200];
				snprintf(line, sizeof line,
					 "state file '%s' is damaged at byte %" PRIu64 " (%s); kept %" PRIu64
					 " ids before it, dropped the %" PRIu64 " bytes from there on",
					 s->path, off, bad, s->file_entries, left);
				s->report(s->report_ctx, line);
			}
			goto out;
		}
		for (uint32_t i = 0; i < n; i++) {
			ent_t e = get_ent(blk + BLK_HDR + (size_t)i * ENT_SIZE);
			mq_hash128_t h = {e.lo, e.hi};
			size_t pos;
			if (s->file_entries + i >= limit) { /* its record never left: take it back */
				s->must_rewrite = 1;
				continue;
			}
			if (s->max_age_ms > 0 && now_ms - e.ts >= s->max_age_ms)
				continue;
			evict_expired(s, e.ts > now_ms ? now_ms : e.ts);
			if (find(s, h, &pos) < 0 && (rc = insert(s, h, e.ts, pos, err)) < 0)
				goto out;
		}
		s->file_entries += n;
		off += BLK_HDR + (uint64_t)n * ENT_SIZE;
	}
out:
	free(blk);
	return rc;
}

static int open_state(mq_seen_t *s, int reset, int64_t now_ms, mq_err_t *err)
{
	char dir[4096];
	struct stat st;
	snprintf(dir, sizeof dir, "%s", s->path);
	const char *d = dirname(dir);
	if (stat(d, &st) < 0 || !S_ISDIR(st.st_mode))
		return mq_err_set(err, MQ_ENOENT, "state file '%s': directory '%s' does not exist (create it first)",
				  s->path, d);
	int fd = open(s->path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		return mq_err_sys(err, "opening state file '%s'", s->path);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rc = errno == EWOULDBLOCK
				 ? mq_err_set(err, MQ_EBUSY, "state file '%s' is in use by another process", s->path)
				 : mq_err_sys(err, "locking state file '%s'", s->path);
		close(fd);
		return rc;
	}
	if (fd >= 0 && !reset) {
		int rc = load(s, fd, now_ms, err);
		if (rc < 0) {
			close(fd);
			return rc;
		}
		if (rc == 1) /* a damaged header, reported: as a reset */
			goto fresh;
		s->fd = fd;
		if (lseek(fd, 0, SEEK_END) < 0)
			return mq_err_sys(err, "state file '%s'", s->path);
		if (s->file_entries > 2 * s->count + SLACK || s->must_rewrite)
			return rewrite(s, err);
		return write_mark(s, err);
	}
	/* New or reset: a fresh key and an empty file, put in place whole. */
fresh:;
	int rc = mq_hashkey_random(&s->key, err);
	s->fd = fd; /* the old file, if any, stays locked until replaced */
	return rc < 0 ? rc : rewrite(s, err);
}

/* ---- API ---- */

int mq_seen_open(const mq_seen_opts_t *o, int64_t now_ms, mq_seen_t **out, mq_err_t *err)
{
	mq_seen_t *s;
	int rc;
	*out = NULL;
	uint64_t max = o->max_count ? o->max_count : MQ_SEEN_DEFAULT_COUNT;
	if (max > MQ_SEEN_MAX_COUNT)
		return mq_err_set(err, MQ_EINVAL, "window of %" PRIu64 " identities: at most %llu", max,
				  MQ_SEEN_MAX_COUNT);
	if (o->max_age_ms < 0)
		return mq_err_set(err, MQ_EINVAL, "window of %" PRId64 " ms: must not be negative", o->max_age_ms);
	if (!(s = calloc(1, sizeof *s)))
		return mq_err_set(err, MQ_ENOMEM, "identity set: out of memory");
	s->fd = -1;
	s->report = o->report;
	s->report_ctx = o->report_ctx;
	s->confirm = o->confirm;
	if (o->confirm && o->boot_id) {
		memcpy(s->boot, o->boot_id, BOOT_LEN);
		s->have_boot = 1;
	} else if (o->confirm) {
		s->have_boot = read_boot_id(s->boot);
	}
	s->max_count = max;
	s->max_age_ms = o->max_age_ms;
	s->cap = max < RING_MIN ? max : RING_MIN;
	s->ring_size = (size_t)s->cap * sizeof *s->ring;
	if (o->max_age_ms > 0 || o->state)
		s->ts_size = (size_t)s->cap * sizeof *s->ts;
	if (!(s->ring = mq_big_alloc(s->ring_size)) || (s->ts_size && !(s->ts = mq_big_alloc(s->ts_size)))) {
		rc = mq_err_set(err, MQ_ENOMEM, "identity set: out of memory");
		goto fail;
	}
	if ((rc = mq_htab_init(&s->tab, s->cap, err)) < 0)
		goto fail;
	if (!o->state) {
		if ((rc = mq_hashkey_random(&s->key, err)) < 0)
			goto fail;
		*out = s;
		return 0;
	}
	if (!(s->path = strdup(o->state)) || mq_buf_reserve(&s->pend, BLK_HDR + 64 * ENT_SIZE) < 0) {
		rc = mq_err_set(err, MQ_ENOMEM, "identity set: out of memory");
		goto fail;
	}
	s->pend.len = BLK_HDR;
	if ((rc = open_state(s, o->reset, now_ms, err)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	mq_seen_close(s);
	return rc;
}

void mq_seen_close(mq_seen_t *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	mq_big_free(s->ring, s->ring_size);
	mq_big_free(s->ts, s->ts_size);
	mq_htab_free(&s->tab);
	mq_buf_free(&s->pend);
	free(s->path);
	free(s);
}

mq_hash128_t mq_seen_hash(const mq_seen_t *s, const void *id, size_t n)
{
	return mq_hash128(&s->key, id, n);
}

void mq_seen_prefetch(const mq_seen_t *s, mq_hash128_t h)
{
	__builtin_prefetch(&s->tab.slot[mq_htab_home(&s->tab, (uint32_t)h.lo)], 1);
}

int mq_seen_add(mq_seen_t *s, mq_hash128_t h, int64_t now_ms, mq_err_t *err)
{
	size_t pos;
	evict_expired(s, now_ms);
	if (find(s, h, &pos) >= 0)
		return 1;
	int rc = insert(s, h, now_ms, pos, err);
	if (rc < 0 || s->fd < 0)
		return rc;
	s->added++;
	if ((rc = mq_buf_reserve(&s->pend, ENT_SIZE)) < 0)
		return mq_err_set(err, MQ_ENOMEM, "state file '%s': out of memory", s->path);
	ent_t e = {h.lo, h.hi, now_ms};
	put_ent(s->pend.p + s->pend.len, &e);
	s->pend.len += ENT_SIZE;
	if (++s->npend == BLOCK_MAX)
		return write_pending(s, err);
	return 0;
}

uint64_t mq_seen_unadd(mq_seen_t *s, uint64_t n)
{
	uint64_t k = 0;
	for (; k < n && s->count; k++) {
		uint64_t t = s->head + s->count - 1;
		if (t >= s->cap)
			t -= s->cap;
		mq_htab_remove_at(&s->tab, mq_htab_slot_of(&s->tab, (uint32_t)s->ring[t].lo, (uint32_t)t));
		s->count--;
	}
	uint64_t drop = k < s->npend ? k : s->npend;
	s->npend -= (uint32_t)drop;
	s->pend.len -= drop * ENT_SIZE;
	s->added -= k < s->added ? k : s->added;
	if (s->known_add > s->added)
		s->known_add = s->added;
	return k;
}

int mq_seen_contains(mq_seen_t *s, mq_hash128_t h, int64_t now_ms)
{
	size_t pos;
	evict_expired(s, now_ms);
	return find(s, h, &pos) >= 0;
}

int mq_seen_sync(mq_seen_t *s, mq_err_t *err)
{
	if (s->fd < 0)
		return 0;
	int rc = write_pending(s, err);
	if (rc == 0 && s->file_entries > 2 * s->count + SLACK)
		rc = rewrite(s, err);
	return rc;
}

uint64_t mq_seen_added(const mq_seen_t *s)
{
	return s->added;
}

int mq_seen_confirm(mq_seen_t *s, uint64_t upto, mq_err_t *err)
{
	if (upto > s->added)
		upto = s->added;
	if (s->fd < 0 || upto == s->known_add)
		return 0;
	s->known_add = upto;
	return write_mark(s, err);
}

uint64_t mq_seen_count(const mq_seen_t *s)
{
	return s->count;
}

uint64_t mq_seen_forced(const mq_seen_t *s)
{
	return s->forced;
}
