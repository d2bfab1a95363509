/*
 * log.c -- one partition: segments, append, read, sparse indexes,
 * recovery and retention.  The file layout is in log.h and mq-format(5).
 *
 * Design notes:
 *  - Only the newest ("active") segment is written.  Its .log file
 *    descriptor stays open; its index entries live in memory and are
 *    written to .idx/.tix at sync, roll and close.  Indexes are never
 *    fsynced: they are hints that recovery checks against the .log file.
 *  - Sealed segments are opened lazily.  A read keeps at most one sealed
 *    segment open per log, so a partition costs one or two descriptors.
 *    Their indexes are loaded (and checked, and rebuilt if damaged) on
 *    first use.
 *  - Recovery reads the tail of the active segment only: from the last
 *    index entry that points at a good batch to the end of the file.
 *    The first batch that fails its checks (short, bad CRC, offsets not
 *    contiguous) and everything after it is cut off, unless a good batch
 *    follows it: that is damage, not a torn write, and stays for reads
 *    to report.  Since every batch
 *    before an index entry was good when the entry was written and the
 *    entry itself is re-checked, this never cuts good data in the middle.
 *  - A write that fails (ENOSPC, EIO) is cut off again with ftruncate
 *    before the error is returned, so no partial batch is ever visible.
 *  - A refusal means nothing became visible, and only the .log file
 *    decides what is stored: index files are derived, so failing to
 *    write one (a full disk) is never an error; the entries stay in
 *    memory and are written at the next sync, roll or close that can.
 *    Opening a partition and reading it never need to write anything.
 *  - A failed fdatasync (EIO, or ENOSPC where the file system allocates
 *    at writeback) leaves the state of the unsynced pages unknown, and a
 *    second fdatasync may well succeed without them.  With the ALWAYS
 *    policy everything past the last good sync was appended since the
 *    last commit and nobody was told it is stored, so it is cut off
 *    again, in memory and on disk, the failure is remembered and
 *    returned by the next mq_log_commit, and until then appends are
 *    refused (an offset past the cut is never given out twice in one
 *    commit).  Readers may have read those bytes already (reads see
 *    what is appended, synced or not): the broker sends no fetch answer
 *    built in a turn whose sync failed.  With INTERVAL and NEVER
 *    acknowledgements never promised a sync, so a failed sync is only
 *    reported and nothing is cut.
 *  - Descriptors are held only while needed: mq_log_release closes them
 *    all (syncing first where the policy asks for syncs), and the next
 *    call that needs the active segment opens it again.  The store uses
 *    this to bound the descriptors of thousands of partitions.
 */
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"

#define SEG_NAME_DIGITS 20
#define IDX_ENTRY 8  /* u32 rel offset, u32 position */
#define TIX_ENTRY 12 /* i64 max ts, u32 rel offset */
#define SCAN_CHUNK (1u << 20)
#define WHY_MAX 640

typedef struct idx_entry {
	uint32_t rel;
	uint32_t pos;
} idx_entry_t;

typedef struct tix_entry {
	int64_t ts;
	uint32_t rel;
} tix_entry_t;

typedef struct seg {
	uint64_t base;      /* first offset (from the file name) */
	uint64_t size;      /* bytes of good data in .log */
	int fd;             /* .log descriptor or -1 */
	int loaded;         /* idx/tix arrays valid */
	idx_entry_t *idx;
	size_t nidx, capidx, idx_written;
	tix_entry_t *tix;
	size_t ntix, captix, tix_written;
	int64_t max_ts;     /* largest record timestamp (INT64_MIN: none) */
	uint64_t next_index_pos; /* active segment: index the next batch at or past this */
} seg_t;

struct mq_log {
	char *dir;
	mq_log_opts_t o;
	seg_t *segs;
	int nsegs, capsegs;
	uint64_t end;          /* next offset */
	uint64_t bytes;        /* sum of segment sizes */
	int dirty;             /* appended since the last sync */
	/* the active segment as of the last good sync (ALWAYS: what a failed
	 * sync cuts back to) */
	struct {
		uint64_t end, size, bytes, next_index_pos;
		size_t nidx, ntix;
		int64_t max_ts;
	} synced;
	int cut;               /* a failed sync cut appends off: refuse until commit */
	mq_err_t cut_err;      /* ... and why, for mq_log_commit to return */
	int stale_tail;        /* the cut could not be made on disk: retry before writing */
	int64_t last_sync_ms;  /* monotonic */
	int open_sealed;       /* index of the sealed segment whose fd is open, or -1 */
	/* read hint: where the previous read ended, for sequential readers */
	uint64_t hint_off, hint_pos;
	int hint_seg;
	mq_buf_t scratch;      /* reused by scans */
	/* damage reported by reads, (segment base, byte) of each: a reader
	 * that retries is not news */
	uint64_t damage_seen[16][2];
	unsigned ndamage_seen;
};

/* ---- small helpers ---- */

void mq_log_opts_default(mq_log_opts_t *o)
{
	memset(o, 0, sizeof(*o));
	o->segment_bytes = 256u << 20;
	o->fsync = MQ_FSYNC_NEVER;
	o->fsync_interval_ms = 1000;
	o->max_record_bytes = 1u << 20;
}

static void seg_path(const mq_log_t *log, uint64_t base, const char *ext, char *out, size_t n)
{
	snprintf(out, n, "%s/%020" PRIu64 ".%s", log->dir, base, ext);
}

static seg_t *active(mq_log_t *log) { return &log->segs[log->nsegs - 1]; }

static uint64_t seg_end(const mq_log_t *log, int i)
{
	return i + 1 < log->nsegs ? log->segs[i + 1].base : log->end;
}

static void seg_free(seg_t *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->idx);
	free(s->tix);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static int idx_push(seg_t *s, uint32_t rel, uint32_t pos)
{
	if (s->nidx == s->capidx) {
		size_t cap = s->capidx ? s->capidx * 2 : 64;
		idx_entry_t *p = realloc(s->idx, cap * sizeof(*p));
		if (!p)
			return -MQ_ENOMEM;
		s->idx = p;
		s->capidx = cap;
	}
	s->idx[s->nidx++] = (idx_entry_t){rel, pos};
	return 0;
}

static int tix_push(seg_t *s, int64_t ts, uint32_t rel)
{
	if (s->ntix == s->captix) {
		size_t cap = s->captix ? s->captix * 2 : 64;
		tix_entry_t *p = realloc(s->tix, cap * sizeof(*p));
		if (!p)
			return -MQ_ENOMEM;
		s->tix = p;
		s->captix = cap;
	}
	s->tix[s->ntix++] = (tix_entry_t){ts, rel};
	return 0;
}

/* ---- sequential scan of a segment file ---- */

typedef struct scan {
	int fd;
	uint64_t file_size;
	uint64_t pos;        /* file position of the next batch */
	uint64_t next_base;  /* offset the next batch must start at (UINT64_MAX: any) */
	mq_buf_t *buf;       /* buffered bytes, starting at file position buf_pos */
	uint64_t buf_pos;
	const uint8_t *batch; /* last batch returned */
	mq_batch_hdr_t hdr;
	char why[WHY_MAX];       /* why the scan stopped, when not at a clean end */
} scan_t;

/* Make bytes [pos, pos+n) available in the buffer.  1 ok, 0 short file, <0 error. */
static int scan_fill(scan_t *sc, uint64_t pos, size_t n, mq_err_t *err)
{
	if (pos >= sc->buf_pos && pos + n <= sc->buf_pos + sc->buf->len)
		return 1;
	if (pos + n > sc->file_size)
		return 0;
	size_t want = n > SCAN_CHUNK ? n : SCAN_CHUNK;
	if (pos + want > sc->file_size)
		want = (size_t)(sc->file_size - pos);
	sc->buf->len = 0;
	if (mq_buf_reserve(sc->buf, want))
		return mq_err_set(err, MQ_ENOMEM, "out of memory reading %zu bytes", want);
	long long got = mq_pread_full(sc->fd, sc->buf->p, want, pos);
	if (got < 0)
		return mq_err_sys(err, "read at byte %" PRIu64, pos);
	sc->buf->len = (size_t)got;
	sc->buf_pos = pos;
	return (size_t)got >= n;
}

/* Next good batch: 1 with sc->batch/hdr set and sc->pos advanced past it;
 * 0 at the end of good data (sc->why says why if not a clean end of file);
 * <0 on read errors.  max_record is not enforced here (data on disk was
 * accepted once). */
static int scan_next(scan_t *sc, mq_err_t *err)
{
	mq_err_t e;
	sc->why[0] = 0;
	if (sc->pos == sc->file_size)
		return 0;
	int rc = scan_fill(sc, sc->pos, MQ_BATCH_HEADER, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		snprintf(sc->why, sizeof(sc->why), "torn batch header at byte %" PRIu64 " (%" PRIu64 " bytes left)",
			 sc->pos, sc->file_size - sc->pos);
		return 0;
	}
	const uint8_t *p = sc->buf->p + (sc->pos - sc->buf_pos);
	if (mq_batch_hdr_decode(p, MQ_BATCH_HEADER, &sc->hdr, &e)) {
		snprintf(sc->why, sizeof(sc->why), "bad batch header at byte %" PRIu64 ": %s", sc->pos, e.msg);
		return 0;
	}
	rc = scan_fill(sc, sc->pos, sc->hdr.length, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		snprintf(sc->why, sizeof(sc->why), "torn batch at byte %" PRIu64 " (%u bytes, %" PRIu64 " in the file)",
			 sc->pos, sc->hdr.length, sc->file_size - sc->pos);
		return 0;
	}
	p = sc->buf->p + (sc->pos - sc->buf_pos);
	if (mq_batch_check(p, sc->hdr.length, 0, &e)) {
		snprintf(sc->why, sizeof(sc->why), "bad batch at byte %" PRIu64 ": %s", sc->pos, e.msg);
		return 0;
	}
	if (sc->next_base != UINT64_MAX && sc->hdr.base_offset != sc->next_base) {
		snprintf(sc->why, sizeof(sc->why), "batch at byte %" PRIu64 " has offset %" PRIu64 ", expected %" PRIu64,
			 sc->pos, sc->hdr.base_offset, sc->next_base);
		return 0;
	}
	sc->batch = p;
	sc->pos += sc->hdr.length;
	sc->next_base = sc->hdr.base_offset + sc->hdr.count;
	return 1;
}

/* Rebuild-or-extend the indexes while scanning: called for each batch
 * at file position pos in segment s; seg max_ts is the max before it. */
static int index_batch(seg_t *s, uint32_t interval, uint64_t pos, const mq_batch_hdr_t *h)
{
	if (pos >= s->next_index_pos) {
		uint32_t rel = (uint32_t)(h->base_offset - s->base);
		if (idx_push(s, rel, (uint32_t)pos))
			return -MQ_ENOMEM;
		if (pos > 0 && tix_push(s, s->max_ts, rel))
			return -MQ_ENOMEM;
		s->next_index_pos = pos + interval;
	}
	if (h->max_ts > s->max_ts)
		s->max_ts = h->max_ts;
	return 0;
}

/* ---- index files ---- */

static int read_whole(const char *path, mq_buf_t *b, mq_err_t *err)
{
	b->len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		return mq_err_sys(err, "cannot open '%s'", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || mq_buf_reserve(b, (size_t)st.st_size + 1)) {
		int rc = mq_err_sys(err, "cannot read '%s'", path);
		close(fd);
		return rc;
	}
	long long got = mq_pread_full(fd, b->p, (size_t)st.st_size, 0);
	int saved = errno;
	close(fd);
	if (got < 0) {
		errno = saved;
		return mq_err_sys(err, "cannot read '%s'", path);
	}
	b->len = (size_t)got;
	return 0;
}

/* Load .idx/.tix entries into s, keeping the longest prefix that is
 * internally consistent (increasing, within the segment's size).  Does
 * not check them against the .log file. */
static int load_index_files(mq_log_t *log, seg_t *s, uint64_t end, mq_err_t *err)
{
	char path[PATH_MAX];
	mq_buf_t *b = &log->scratch;
	mq_err_t ignored;

	s->nidx = s->ntix = 0;
	seg_path(log, s->base, "idx", path, sizeof(path));
	/* An index that cannot be read is rebuilt from the .log file. */
	if (read_whole(path, b, &ignored) < 0)
		b->len = 0;
	for (size_t i = 0; i + IDX_ENTRY <= b->len; i += IDX_ENTRY) {
		uint32_t rel = mq_get_u32(b->p + i), pos = mq_get_u32(b->p + i + 4);
		if (pos >= s->size || s->base + rel >= end)
			break;
		if (s->nidx && (rel <= s->idx[s->nidx - 1].rel || pos <= s->idx[s->nidx - 1].pos))
			break;
		if (!s->nidx && (rel != 0 || pos != 0))
			break; /* the first entry is always the first batch */
		if (idx_push(s, rel, pos))
			return mq_err_set(err, MQ_ENOMEM, "out of memory loading '%s'", path);
	}
	seg_path(log, s->base, "tix", path, sizeof(path));
	if (read_whole(path, b, &ignored) < 0)
		b->len = 0;
	for (size_t i = 0; i + TIX_ENTRY <= b->len; i += TIX_ENTRY) {
		int64_t ts = (int64_t)mq_get_u64(b->p + i);
		uint32_t rel = mq_get_u32(b->p + i + 8);
		if (s->base + rel > end || rel == 0)
			break;
		if (s->ntix && (rel <= s->tix[s->ntix - 1].rel || ts < s->tix[s->ntix - 1].ts))
			break;
		if (tix_push(s, ts, rel))
			return mq_err_set(err, MQ_ENOMEM, "out of memory loading '%s'", path);
	}
	return 0;
}

/* Write index entries not yet on disk; when rewrite, replace the files. */
static int flush_index_file(mq_log_t *log, seg_t *s, const char *ext, int rewrite, mq_err_t *err)
{
	int is_idx = ext[0] == 'i';
	size_t n = is_idx ? s->nidx : s->ntix, from = rewrite ? 0 : (is_idx ? s->idx_written : s->tix_written);
	size_t esz = is_idx ? IDX_ENTRY : TIX_ENTRY;
	if (from >= n && !rewrite)
		return 0;
	char path[PATH_MAX];
	seg_path(log, s->base, ext, path, sizeof(path));
	mq_buf_t *b = &log->scratch;
	b->len = 0;
	if (mq_buf_reserve(b, (n - from) * esz + 1))
		return mq_err_set(err, MQ_ENOMEM, "out of memory writing '%s'", path);
	for (size_t i = from; i < n; i++) {
		if (is_idx) {
			mq_put_u32(b->p + b->len, s->idx[i].rel);
			mq_put_u32(b->p + b->len + 4, s->idx[i].pos);
		} else {
			mq_put_u64(b->p + b->len, (uint64_t)s->tix[i].ts);
			mq_put_u32(b->p + b->len + 8, s->tix[i].rel);
		}
		b->len += esz;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (rewrite ? O_TRUNC : 0), 0644);
	if (fd < 0)
		return mq_err_sys(err, "cannot open index '%s'", path);
	if (!rewrite && ftruncate(fd, (off_t)(from * esz)) < 0)
		goto fail;
	if (mq_pwrite_all(fd, b->p, b->len, from * esz) < 0)
		goto fail;
	close(fd);
	if (is_idx)
		s->idx_written = n;
	else
		s->tix_written = n;
	return 0;
fail:;
	int rc = mq_err_sys(err, "cannot write index '%s'", path);
	close(fd);
	return rc;
}

static int flush_indexes(mq_log_t *log, seg_t *s, int rewrite, mq_err_t *err)
{
	int rc = flush_index_file(log, s, "idx", rewrite, err);
	return rc ? rc : flush_index_file(log, s, "tix", rewrite, err);
}

/* Index files are hints: when one cannot be written (a full disk) the
 * entries stay in memory (idx_written/tix_written do not move) and the
 * next sync, roll or close tries again. */
static void flush_indexes_try(mq_log_t *log, seg_t *s)
{
	mq_err_t ignored;
	flush_indexes(log, s, 0, &ignored);
}

static int seg_open_fd(mq_log_t *log, seg_t *s, int flags, mq_err_t *err)
{
	if (s->fd >= 0)
		return 0;
	char path[PATH_MAX];
	seg_path(log, s->base, "log", path, sizeof(path));
	s->fd = open(path, flags | O_CLOEXEC, 0644);
	if (s->fd < 0)
		return mq_err_sys(err, "cannot open segment '%s'", path);
	return 0;
}

/* Scan segment s from position pos (a batch boundary with offset
 * base_at) to the end of its good data, extending its indexes; returns
 * the position where good data ends. */
static int scan_tail(mq_log_t *log, seg_t *s, uint64_t file_size, uint64_t pos, uint64_t base_at,
		     uint64_t *good_end, uint64_t *next_off, char *why, size_t whylen, mq_err_t *err)
{
	scan_t sc = {.fd = s->fd, .file_size = file_size, .pos = pos, .next_base = base_at,
		     .buf = &log->scratch, .buf_pos = 0};
	log->scratch.len = 0;
	int rc;
	uint64_t at = pos;
	while ((rc = scan_next(&sc, err)) > 0) {
		if (index_batch(s, MQ_LOG_INDEX_INTERVAL, at, &sc.hdr))
			return mq_err_set(err, MQ_ENOMEM, "out of memory indexing segment");
		at = sc.pos;
	}
	if (rc < 0)
		return rc;
	*good_end = at;
	*next_off = sc.next_base;
	if (why)
		snprintf(why, whylen, "%s", sc.why);
	return 0;
}

static void resync(mq_log_t *log, seg_t *s, uint64_t send, uint64_t p, const mq_batch_hdr_t *h, uint64_t expect,
		   uint64_t *to, uint64_t *qpos);

/* Damage at byte p of s (where offset expect was due): 1 with the next
 * good batch's position and offset if one follows it, 0 if not. */
static int past_damage(mq_log_t *log, seg_t *s, uint64_t p, uint64_t expect, uint64_t *q, uint64_t *qoff)
{
	uint8_t hb[MQ_BATCH_HEADER];
	mq_batch_hdr_t h;
	if (p + MQ_BATCH_HEADER > s->size || mq_pread_full(s->fd, hb, sizeof(hb), p) != (long long)sizeof(hb) ||
	    mq_batch_hdr_decode(hb, sizeof(hb), &h, NULL))
		return 0;
	resync(log, s, UINT64_MAX, p, &h, expect, qoff, q);
	return *q < s->size;
}

/*
 * Bring a segment's indexes in line with its .log file: keep the index
 * entries up to the last one that points at a good batch, then scan
 * from there to the end of the file.  For the active segment (tail)
 * a torn or corrupt end is cut off.  For a sealed segment the damage is
 * left on disk for mq-admin verify to report; reads stop before it and
 * go on with the next segment.  *out_end: the offset after the last good
 * batch.
 */
static int seg_recover(mq_log_t *log, seg_t *s, int tail, uint64_t *out_end, mq_err_t *err)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	seg_path(log, s->base, "log", path, sizeof(path));
	if ((rc = seg_open_fd(log, s, tail ? O_RDWR : O_RDONLY, err)))
		return rc;
	if (fstat(s->fd, &st) < 0)
		return mq_err_sys(err, "cannot stat '%s'", path);
	s->size = (uint64_t)st.st_size;
	if ((rc = load_index_files(log, s, UINT64_MAX, err)))
		return rc;
	s->idx_written = s->nidx;
	s->tix_written = s->ntix;

	/* The last index entry that points at a plausible batch header; the
	 * scan from there checks the batch itself. */
	uint8_t hb[MQ_BATCH_HEADER];
	mq_batch_hdr_t h;
	mq_err_t e;
	size_t keep = s->nidx;
	while (keep > 0) {
		const idx_entry_t *x = &s->idx[keep - 1];
		if (mq_pread_full(s->fd, hb, sizeof(hb), x->pos) == (long long)sizeof(hb) &&
		    mq_batch_hdr_decode(hb, sizeof(hb), &h, &e) == 0 && h.base_offset == s->base + x->rel &&
		    x->pos + h.length <= s->size)
			break;
		keep--;
	}
	uint64_t start_pos = keep ? s->idx[keep - 1].pos : 0;
	uint64_t start_off = s->base + (keep ? s->idx[keep - 1].rel : 0);
	/* Drop the entries the scan will add again (from start_pos on).  The
	 * time-index entry made with that index entry holds the largest
	 * timestamp before start_off; without it, scan the whole segment. */
	while (s->ntix && s->base + s->tix[s->ntix - 1].rel > start_off)
		s->ntix--;
	if (start_off > s->base && !(s->ntix && s->base + s->tix[s->ntix - 1].rel == start_off)) {
		keep = 0;
		start_pos = 0;
		start_off = s->base;
		s->ntix = 0;
	}
	s->nidx = keep ? keep - 1 : 0;
	s->max_ts = INT64_MIN;
	if (s->ntix && s->base + s->tix[s->ntix - 1].rel == start_off)
		s->max_ts = s->tix[--s->ntix].ts;
	if (s->idx_written > s->nidx)
		s->idx_written = s->nidx;
	if (s->tix_written > s->ntix)
		s->tix_written = s->ntix;
	s->next_index_pos = start_pos;

	uint64_t good_end, next_off;
	char why[WHY_MAX];
	if ((rc = scan_tail(log, s, s->size, start_pos, start_off, &good_end, &next_off, why, sizeof(why), err)))
		return rc;
	/* Good batches after bad ones: damage, not a torn write.  It stays,
	 * for reads to report (cutting it would drop the good ones too). */
	uint64_t q, qoff;
	while (good_end < s->size && past_damage(log, s, good_end, next_off, &q, &qoff)) {
		if ((rc = scan_tail(log, s, s->size, q, qoff, &good_end, &next_off, why, sizeof(why), err)))
			return rc;
	}
	if (good_end < s->size) {
		if (tail && ftruncate(s->fd, (off_t)good_end) < 0)
			return mq_err_sys(err, "cannot cut the torn tail of '%s' at byte %" PRIu64 " (%s)", path,
					  good_end, why);
		if (tail && log->o.report) {
			char line[PATH_MAX + WHY_MAX + 256];
			snprintf(line, sizeof(line),
				 "'%s': cut %" PRIu64 " byte%s from its end (%s): a write that had not finished "
				 "when mq-serve stopped, never acknowledged under --fsync always; the partition "
				 "now ends at offset %" PRIu64, path, s->size - good_end,
				 s->size - good_end == 1 ? "" : "s", why, next_off);
			log->o.report(log->o.report_ctx, line);
		}
		s->size = good_end;
	}
	*out_end = next_off;
	if (!tail && next_off > s->base && tix_push(s, s->max_ts, (uint32_t)(next_off - s->base)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	s->loaded = 1;
	flush_indexes_try(log, s); /* reading must never need to write */
	return 0;
}

/* Make segment i ready for reading: the active one always is; a sealed
 * one is opened and its indexes loaded, after closing the sealed
 * segment used before (one open sealed segment per log). */
/* Close a sealed segment's file and drop its indexes (kept on disk). */
static void seg_unload(seg_t *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	free(o->idx);
	free(o->tix);
	o->idx = NULL;
	o->tix = NULL;
	o->nidx = o->capidx = o->ntix = o->captix = 0;
	o->loaded = 0;
}

static void release_sealed(mq_log_t *log)
{
	if (log->open_sealed >= 0)
		seg_unload(&log->segs[log->open_sealed]);
	log->open_sealed = -1;
}

/* The active segment's descriptor, opened again after mq_log_release. */
static int active_fd(mq_log_t *log, mq_err_t *err)
{
	return seg_open_fd(log, active(log), O_RDWR, err);
}

static int seg_use(mq_log_t *log, int i, mq_err_t *err)
{
	if (i == log->nsegs - 1)
		return active_fd(log, err);
	if (i == log->open_sealed)
		return 0;
	release_sealed(log);
	uint64_t end;
	int rc = seg_recover(log, &log->segs[i], 0, &end, err);
	if (rc == 0)
		log->open_sealed = i;
	else
		seg_unload(&log->segs[i]);
	return rc;
}

/* ---- open / close ---- */

static int parse_seg_name(const char *name, uint64_t *base, const char **ext)
{
	size_t i;
	uint64_t v = 0;
	for (i = 0; i < SEG_NAME_DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	if (name[i] != '.')
		return 0;
	*ext = name + i + 1;
	*base = v;
	return 1;
}

int mq_log_is_segment(const char *name)
{
	uint64_t base;
	const char *ext;
	return parse_seg_name(name, &base, &ext) && !strcmp(ext, "log");
}

static int cmp_seg(const void *a, const void *b)
{
	const seg_t *x = a, *y = b;
	return x->base < y->base ? -1 : x->base > y->base;
}

static int segs_push(mq_log_t *log, uint64_t base, uint64_t size)
{
	if (log->nsegs == log->capsegs) {
		int cap = log->capsegs ? log->capsegs * 2 : 8;
		seg_t *p = realloc(log->segs, (size_t)cap * sizeof(*p));
		if (!p)
			return -MQ_ENOMEM;
		log->segs = p;
		log->capsegs = cap;
	}
	seg_t *s = &log->segs[log->nsegs++];
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->base = base;
	s->size = size;
	s->max_ts = INT64_MIN;
	return 0;
}

/* Create an empty segment file at base and make it the active one. */
static int seg_create(mq_log_t *log, uint64_t base, mq_err_t *err)
{
	char path[PATH_MAX];
	seg_path(log, base, "log", path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return mq_err_sys(err, "cannot create segment '%s'", path);
	if (segs_push(log, base, 0)) {
		close(fd);
		unlink(path);
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	}
	seg_t *s = active(log);
	s->fd = fd;
	s->loaded = 1;
	int rc;
	if (log->o.fsync != MQ_FSYNC_NEVER && (rc = mq_fsync_dir(log->dir, err))) {
		/* Not made, then: a segment whose name may not survive a crash
		 * would take acknowledged data with it. */
		seg_free(s);
		log->nsegs--;
		unlink(path);
		return rc;
	}
	return 0;
}

/* The active segment as it is now is what a failed sync cuts back to. */
static void mark_synced(mq_log_t *log)
{
	seg_t *s = active(log);
	log->synced.end = log->end;
	log->synced.size = s->size;
	log->synced.bytes = log->bytes;
	log->synced.next_index_pos = s->next_index_pos;
	log->synced.nidx = s->nidx;
	log->synced.ntix = s->ntix;
	log->synced.max_ts = s->max_ts;
}

/* List the directory: segments (by .log file), stray index files of
 * deleted segments and our temporary files are removed; anything else
 * is an error. */
static int scan_dir(mq_log_t *log, mq_err_t *err)
{
	DIR *d = opendir(log->dir);
	if (!d)
		return mq_err_sys(err, "cannot open partition directory '%s'", log->dir);
	struct dirent *de;
	int rc = 0;
	char path[PATH_MAX];
	while ((de = readdir(d))) {
		const char *n = de->d_name, *ext;
		uint64_t base;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", log->dir, n);
		if (!parse_seg_name(n, &base, &ext)) {
			rc = mq_err_set(err, MQ_ECORRUPT,
					"unexpected file '%s' in partition directory (move it out of the data directory)",
					path);
			break;
		}
		if (!strcmp(ext, "log")) {
			struct stat st;
			if (stat(path, &st) < 0) {
				rc = mq_err_sys(err, "cannot stat '%s'", path);
				break;
			}
			if (!S_ISREG(st.st_mode)) {
				rc = mq_err_set(err, MQ_ECORRUPT, "'%s' is not a regular file (move it away)", path);
				break;
			}
			if (segs_push(log, base, (uint64_t)st.st_size)) {
				rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
				break;
			}
		} else if (strcmp(ext, "idx") && strcmp(ext, "tix") && strcmp(ext, "tmp")) {
			rc = mq_err_set(err, MQ_ECORRUPT,
					"unexpected file '%s' in partition directory (move it out of the data directory)",
					path);
			break;
		}
	}
	closedir(d);
	if (rc)
		return rc;
	if (log->nsegs > 1)
		qsort(log->segs, (size_t)log->nsegs, sizeof(seg_t), cmp_seg);
	/* Index files whose segment is gone (a deletion cut short), and temporaries. */
	d = opendir(log->dir);
	if (!d)
		return mq_err_sys(err, "cannot open partition directory '%s'", log->dir);
	while ((de = readdir(d))) {
		const char *ext;
		uint64_t base;
		if (!parse_seg_name(de->d_name, &base, &ext) || !strcmp(ext, "log"))
			continue;
		int found = 0;
		for (int i = 0; i < log->nsegs && !found; i++)
			found = log->segs[i].base == base;
		if (!found || !strcmp(ext, "tmp")) {
			snprintf(path, sizeof(path), "%s/%s", log->dir, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
	return 0;
}

int mq_log_open(const char *dir, const mq_log_opts_t *o, int create, mq_log_t **out, mq_err_t *err)
{
	int rc;
	if (strlen(dir) > PATH_MAX - 64) /* room for segment and temporary file names */
		return mq_err_set(err, MQ_EINVAL, "partition directory path '%.100s...' is too long", dir);
	mq_log_t *log = calloc(1, sizeof(*log));
	if (!log || !(log->dir = strdup(dir))) {
		free(log);
		return mq_err_set(err, MQ_ENOMEM, "out of memory opening '%s'", dir);
	}
	log->open_sealed = -1;
	log->hint_seg = -1;
	mq_log_set_opts(log, o);
	if (mkdir(dir, 0755) < 0) {
		if (errno != EEXIST) {
			rc = mq_err_sys(err, "cannot create partition directory '%s'", dir);
			goto fail;
		}
	} else if (!create) {
		rmdir(dir);
		rc = mq_err_set(err, MQ_ENOENT, "partition directory '%s' does not exist", dir);
		goto fail;
	} else if (log->o.fsync != MQ_FSYNC_NEVER && (rc = mq_fsync_parent(dir, err))) {
		/* Made here: its name must outlast a power cut as its data does. */
		goto fail;
	}
	if ((rc = scan_dir(log, err)))
		goto fail;
	if (log->nsegs == 0) {
		if ((rc = seg_create(log, 0, err)))
			goto fail;
	} else {
		seg_t *s = active(log);
		if ((rc = seg_recover(log, s, 1, &log->end, err)))
			goto fail;
		/* A segment with a name past the offsets before it is fine (a gap
		 * left by damage); one that starts inside them is not. */
		for (int i = 0; i + 1 < log->nsegs; i++)
			log->bytes += log->segs[i].size;
	}
	log->bytes += active(log)->size;
	log->last_sync_ms = mq_mono_ms();
	mark_synced(log);
	*out = log;
	return 0;
fail:
	mq_log_close(log);
	return rc;
}

void mq_log_set_opts(mq_log_t *log, const mq_log_opts_t *o)
{
	mq_log_opts_t d;
	if (!o) {
		mq_log_opts_default(&d);
		o = &d;
	}
	log->o = *o;
	if (log->o.segment_bytes < 4096)
		log->o.segment_bytes = 4096;
	if (log->o.segment_bytes > (1ull << 31))
		log->o.segment_bytes = 1ull << 31; /* positions in the index are u32 */
}

void mq_log_close(mq_log_t *log)
{
	if (!log)
		return;
	if (log->nsegs) {
		mq_err_t e;
		if (log->o.fsync != MQ_FSYNC_NEVER && log->dirty)
			mq_log_sync(log, &e);
		flush_indexes(log, active(log), 0, &e);
	}
	for (int i = 0; i < log->nsegs; i++)
		seg_free(&log->segs[i]);
	free(log->segs);
	mq_buf_free(&log->scratch);
	free(log->dir);
	free(log);
}

/* ---- append ---- */

static int sync_active(mq_log_t *log, mq_err_t *err);

/* Seal the active segment and start a new one at the end offset.  The
 * sealed segment stays open as the log's one open sealed segment. */
static int roll(mq_log_t *log, mq_err_t *err)
{
	int rc, idx = log->nsegs - 1;
	if ((rc = active_fd(log, err)))
		return rc;
	seg_t *s = active(log);
	size_t ntix = s->ntix;
	if (log->end > s->base && tix_push(s, s->max_ts, (uint32_t)(log->end - s->base)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	if (log->o.fsync != MQ_FSYNC_NEVER && log->dirty && (rc = sync_active(log, err)))
		goto undo;
	flush_indexes_try(log, s);
	release_sealed(log);
	if ((rc = seg_create(log, log->end, err)))
		goto undo;
	log->open_sealed = idx;
	log->dirty = 0;
	mark_synced(log);
	return 0;
undo:
	/* Still the active segment: its end entry goes again, on disk too. */
	s = active(log);
	s->ntix = ntix < s->ntix ? ntix : s->ntix;
	if (s->tix_written > s->ntix)
		s->tix_written = s->ntix;
	return rc;
}

int mq_log_append(mq_log_t *log, uint8_t *batch, size_t n, uint64_t *base, mq_err_t *err)
{
	int rc = mq_batch_check(batch, n, log->o.max_record_bytes, err);
	if (rc)
		return rc;
	if (log->cut)
		return mq_err_set(err, log->cut_err.code, "%s", log->cut_err.msg);
	if ((rc = active_fd(log, err)))
		return rc;
	uint32_t count = mq_get_u32(batch + 20);
	seg_t *s = active(log);
	if (log->stale_tail) {
		if (ftruncate(s->fd, (off_t)s->size) < 0)
			return mq_err_sys(err, "cannot cut partition '%s' back to byte %" PRIu64 " after a failed sync",
					  log->dir, s->size);
		log->stale_tail = 0;
	}
	if (s->size > 0 && (s->size + n > log->o.segment_bytes || log->end - s->base + count > UINT32_MAX)) {
		if ((rc = roll(log, err)))
			return rc;
		s = active(log);
	}
	if (s->size + n > UINT32_MAX)
		return mq_err_set(err, MQ_ETOOBIG, "batch of %zu bytes does not fit in a segment", n);
	mq_batch_set_base(batch, log->end);
	if (mq_pwrite_all(s->fd, batch, n, s->size) < 0) {
		rc = mq_err_sys(err, "cannot append %zu bytes to partition '%s'", n, log->dir);
		/* Cut off whatever part was written: no partial batch stays. */
		if (ftruncate(s->fd, (off_t)s->size) < 0) {
			/* Recovery cuts the torn batch on the next open. */
		}
		return rc;
	}
	mq_batch_hdr_t h;
	mq_batch_hdr_decode(batch, n, &h, NULL);
	if (index_batch(s, MQ_LOG_INDEX_INTERVAL, s->size, &h) < 0) {
		/* Out of memory for an index entry: the index is only a hint, the
		 * data is written; the entry is rebuilt on the next open. */
	}
	s->size += n;
	log->bytes += n;
	*base = log->end;
	log->end += count;
	log->dirty = 1;
	return 0;
}

/* Cut the active segment back to the last good sync (see the notes at
 * the top).  err already says why the sync failed. */
static void cut_unsynced(mq_log_t *log, mq_err_t *err)
{
	int code = err->code, sys = err->sys;
	seg_t *s = active(log);
	uint64_t lost = log->end - log->synced.end;
	if (ftruncate(s->fd, (off_t)log->synced.size) < 0)
		log->stale_tail = 1;
	s->size = log->synced.size;
	s->next_index_pos = log->synced.next_index_pos;
	s->nidx = log->synced.nidx < s->nidx ? log->synced.nidx : s->nidx;
	s->ntix = log->synced.ntix < s->ntix ? log->synced.ntix : s->ntix;
	if (s->idx_written > s->nidx)
		s->idx_written = s->nidx;
	if (s->tix_written > s->ntix)
		s->tix_written = s->ntix;
	s->max_ts = log->synced.max_ts;
	log->bytes = log->synced.bytes;
	log->end = log->synced.end;
	log->hint_seg = -1;
	log->dirty = 0;
	char why[sizeof(err->msg)];
	snprintf(why, sizeof(why), "%s", err->msg);
	mq_err_set(err, code, "%.400s; the %" PRIu64 " records appended since the last good sync were cut off "
		   "again (not stored, not acknowledged)", why, lost);
	err->sys = sys;
	log->cut = 1;
	log->cut_err = *err;
}

/* fdatasync the active segment; under ALWAYS a failure cuts off what it
 * did not cover. */
static int sync_active(mq_log_t *log, mq_err_t *err)
{
	seg_t *s = active(log);
	if (fdatasync(s->fd) == 0) {
#ifdef MQ_FAULT_INJECT
		char path[PATH_MAX];
		seg_path(log, s->base, "log", path, sizeof(path));
		mq_fault_record_sync(path, s->size, -1);
#endif
		log->dirty = 0;
		log->last_sync_ms = mq_mono_ms();
		mark_synced(log);
		return 0;
	}
	int rc = mq_err_sys(err, "cannot sync partition '%s'", log->dir);
	if (log->o.fsync == MQ_FSYNC_ALWAYS && log->synced.end >= s->base)
		cut_unsynced(log, err);
	return rc;
}

int mq_log_sync(mq_log_t *log, mq_err_t *err)
{
	int rc;
	if (log->dirty && ((rc = active_fd(log, err)) || (rc = sync_active(log, err))))
		return rc;
	log->dirty = 0;
	log->last_sync_ms = mq_mono_ms();
	flush_indexes_try(log, active(log));
	return 0;
}

int mq_log_release(mq_log_t *log, mq_err_t *err)
{
	int rc = 0;
	/* A writeback error is reported only to descriptors open when it
	 * happened: sync before closing, never after opening again. */
	if (log->dirty && log->o.fsync != MQ_FSYNC_NEVER)
		rc = mq_log_sync(log, err);
	release_sealed(log);
	seg_t *s = active(log);
	flush_indexes_try(log, s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	return rc;
}

int mq_log_fds(const mq_log_t *log)
{
	return (log->open_sealed >= 0) + (log->segs[log->nsegs - 1].fd >= 0);
}

int mq_log_commit(mq_log_t *log, int64_t now_mono_ms, mq_err_t *err)
{
	if (log->cut) {
		/* Reported once; appends are accepted again from here. */
		log->cut = 0;
		if (err)
			*err = log->cut_err;
		return -log->cut_err.code;
	}
	if (!log->dirty)
		return 0;
	switch (log->o.fsync) {
	case MQ_FSYNC_ALWAYS:
		return mq_log_sync(log, err);
	case MQ_FSYNC_INTERVAL:
		if (now_mono_ms - log->last_sync_ms >= log->o.fsync_interval_ms)
			return mq_log_sync(log, err);
		return 0;
	default:
		return 0;
	}
}

int mq_log_dirty(const mq_log_t *log) { return log->dirty; }
uint64_t mq_log_start(const mq_log_t *log) { return log->segs[0].base; }
uint64_t mq_log_end(const mq_log_t *log) { return log->end; }
uint64_t mq_log_bytes(const mq_log_t *log) { return log->bytes; }
int mq_log_segments(const mq_log_t *log) { return log->nsegs; }

int64_t mq_log_max_ts(const mq_log_t *log)
{
	for (int i = log->nsegs - 1; i >= 0; i--) {
		const seg_t *s = &log->segs[i];
		if (s->loaded && s->max_ts != INT64_MIN)
			return s->max_ts;
		if (s->size)
			break;
	}
	const seg_t *a = &log->segs[log->nsegs - 1];
	return a->max_ts == INT64_MIN ? 0 : a->max_ts;
}

/* ---- read ---- */

/* Segment holding offset: the last one whose base is <= offset. */
static int seg_find(const mq_log_t *log, uint64_t offset)
{
	int lo = 0, hi = log->nsegs;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (log->segs[mid].base <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Where a walk to offset in segment i can start: the index entry at or
 * below it if the batch there has the offset the entry says (an index is
 * a hint: a damaged one only costs a longer walk), or where the last
 * read ended.  *pos, and *expect: the offset of the batch at *pos. */
static int walk_start(mq_log_t *log, int i, uint64_t offset, uint64_t *pos, uint64_t *expect, mq_err_t *err)
{
	seg_t *s = &log->segs[i];
	uint64_t rel = offset - s->base;
	size_t lo = 0, hi = s->nidx;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->idx[mid].rel <= rel)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = 0;
	*expect = s->base;
	if (lo > 1) {
		const idx_entry_t *x = &s->idx[lo - 1];
		if (log->hint_seg == i && log->hint_off <= offset && log->hint_off >= s->base + x->rel &&
		    log->hint_pos >= x->pos) {
			/* A sequential reader past the index entry: the entry is
			 * not needed, so its batch header is not read. */
			*pos = log->hint_pos;
			*expect = log->hint_off;
			return 0;
		}
		uint8_t hb[MQ_BATCH_HEADER];
		mq_batch_hdr_t h;
		long long got = mq_pread_full(s->fd, hb, sizeof(hb), x->pos);
		if (got < 0)
			return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, (uint64_t)x->pos);
		if (got == (long long)sizeof(hb) && mq_batch_hdr_decode(hb, sizeof(hb), &h, NULL) == 0 &&
		    h.base_offset == s->base + x->rel) {
			*pos = x->pos;
			*expect = h.base_offset;
		}
	}
	if (log->hint_seg == i && log->hint_off <= offset && log->hint_off >= *expect && log->hint_pos >= *pos) {
		*pos = log->hint_pos; /* sequential reader: pick up where the last read ended */
		*expect = log->hint_off;
	}
	return 0;
}

/* Position of the batch containing offset in segment i (or of the first
 * batch after it, if offset falls in a gap); *found = 0 if the segment
 * has no such batch. */
static int locate(mq_log_t *log, int i, uint64_t offset, uint64_t *pos, int *found, mq_err_t *err)
{
	seg_t *s = &log->segs[i];
	uint64_t p, expect;
	int rc = walk_start(log, i, offset, &p, &expect, err);
	if (rc)
		return rc;
	uint8_t hb[MQ_BATCH_HEADER];
	mq_batch_hdr_t h;
	*found = 0;
	while (p + MQ_BATCH_HEADER <= s->size) {
		if (mq_pread_full(s->fd, hb, sizeof(hb), p) != (long long)sizeof(hb))
			return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, p);
		if (mq_batch_hdr_decode(hb, sizeof(hb), &h, err))
			return mq_err_set(err, MQ_ECORRUPT, "partition '%s': bad batch at byte %" PRIu64
					  " of segment %" PRIu64 " (run mq-admin verify)", log->dir, p, s->base);
		if (h.base_offset + h.count > offset) {
			*found = 1;
			*pos = p;
			return 0;
		}
		p += h.length;
	}
	return 0;
}

/* A damaged batch at byte p of segment s (h: its header if it decodes):
 * where reading can go on.  Only a batch that passes its CRC right after
 * the damaged one's length, with a later offset, is trusted as the next;
 * otherwise nothing more of the segment is: *to is where the next
 * segment starts (*qpos the end of this one's good data). */
static void resync(mq_log_t *log, seg_t *s, uint64_t send, uint64_t p, const mq_batch_hdr_t *h, uint64_t expect,
		   uint64_t *to, uint64_t *qpos)
{
	*to = send;
	*qpos = s->size;
	if (!h || h->length > s->size - p)
		return;
	uint64_t q = p + h->length;
	uint8_t hb[MQ_BATCH_HEADER];
	mq_batch_hdr_t n;
	if (q + MQ_BATCH_HEADER > s->size || mq_pread_full(s->fd, hb, sizeof(hb), q) != (long long)sizeof(hb) ||
	    mq_batch_hdr_decode(hb, sizeof(hb), &n, NULL) || n.length > s->size - q || n.base_offset <= expect ||
	    n.base_offset >= send)
		return;
	mq_buf_t *b = &log->scratch;
	b->len = 0;
	if (mq_buf_reserve(b, n.length) || mq_pread_full(s->fd, b->p, n.length, q) != (long long)n.length ||
	    mq_batch_verify(b->p, n.length, NULL))
		return;
	*to = n.base_offset;
	*qpos = q;
}

/* Report damage found at byte p of segment i: [offset, to). */
static int damaged(mq_log_t *log, int i, uint64_t p, uint64_t offset, uint64_t to, const char *why,
		   mq_log_damage_t *dmg, mq_err_t *err)
{
	seg_t *s = &log->segs[i];
	char path[PATH_MAX];
	seg_path(log, s->base, "log", path, sizeof(path));
	int fresh = 1;
	unsigned n = log->ndamage_seen < 16 ? log->ndamage_seen : 16;
	for (unsigned k = 0; k < n && fresh; k++)
		fresh = !(log->damage_seen[k][0] == s->base && log->damage_seen[k][1] == p);
	if (fresh) {
		log->damage_seen[log->ndamage_seen % 16][0] = s->base;
		log->damage_seen[log->ndamage_seen % 16][1] = p;
		log->ndamage_seen++;
	}
	if (dmg)
		*dmg = (mq_log_damage_t){offset, to, fresh};
	return mq_err_set(err, MQ_ECORRUPT, "offsets %" PRIu64 " to %" PRIu64 " cannot be read: '%s' at byte %" PRIu64
			  ": %s", offset, to - 1, path, p, why);
}

/*
 * Read verified batches of segment i from byte pos (a batch that must
 * have offset expect) on: first walk the headers to the batch holding
 * offset, each where the one before ended; then read up to max_bytes
 * and keep the batches that pass their CRC, each where the one before
 * ended.  Damage before anything is kept is reported (or walked past,
 * when it lies wholly below offset).  Returns bytes appended to out, 0
 * when the segment's good data ends before offset (go on with the next).
 */
static long long read_seg(mq_log_t *log, int i, uint64_t offset, uint64_t pos, uint64_t expect, size_t max_bytes,
			  mq_buf_t *out, mq_log_damage_t *dmg, mq_err_t *err)
{
	seg_t *s = &log->segs[i];
	uint64_t send = seg_end(log, i);
	uint8_t hb[MQ_BATCH_HEADER];
	mq_batch_hdr_t h;
	char why[WHY_MAX];
	for (;;) {
		int bad = 0, hdr_ok = 0;
		size_t start = out->len, used = 0;
		long long got = -1; /* bytes from pos already in out (a batch whole); -1: none yet */
		if (expect == offset && pos + MQ_BATCH_HEADER <= s->size) {
			/* At the start of the batch holding offset (a sequential
			 * reader's usual case): the read of the data brings its
			 * header too.  Anything unexpected in it goes the walk's
			 * way below, which reads and judges it again. */
			uint64_t avail = s->size - pos;
			size_t want = max_bytes < avail ? max_bytes : (size_t)avail;
			if (want < MQ_BATCH_HEADER)
				want = MQ_BATCH_HEADER;
			if (mq_buf_reserve(out, want))
				return mq_err_set(err, MQ_ENOMEM, "out of memory reading %zu bytes", want);
			got = mq_pread_full(s->fd, out->p + start, want, pos);
			if (got < 0)
				return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, pos);
			int fits = got >= MQ_BATCH_HEADER &&
				   mq_batch_hdr_decode(out->p + start, MQ_BATCH_HEADER, &h, NULL) == 0 &&
				   h.base_offset == expect && h.length <= avail;
			if (fits && h.length > (uint64_t)got) {
				/* The first batch whole, however large: the rest of it. */
				if (mq_buf_reserve(out, h.length))
					return mq_err_set(err, MQ_ENOMEM, "out of memory reading %u bytes", h.length);
				long long more = mq_pread_full(s->fd, out->p + start + got, h.length - (size_t)got,
							       pos + (uint64_t)got);
				if (more < 0)
					return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, pos);
				got += more;
			}
			if (fits && h.length <= (uint64_t)got)
				hdr_ok = 1;
			else
				got = -1;
		}
		/* Walk to the batch holding offset. */
		while (!bad && got < 0) {
			if (pos == s->size) {
				if (expect == send)
					return 0;
				snprintf(why, sizeof(why), "the segment's good data ends at offset %" PRIu64
					 ", the next segment starts at %" PRIu64, expect, send);
				bad = 1;
				break;
			}
			if (pos + MQ_BATCH_HEADER > s->size) {
				snprintf(why, sizeof(why), "a batch header cut off (%" PRIu64 " bytes left)", s->size - pos);
				bad = 1;
				break;
			}
			if (mq_pread_full(s->fd, hb, sizeof(hb), pos) != (long long)sizeof(hb))
				return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, pos);
			mq_err_t e;
			if (mq_batch_hdr_decode(hb, sizeof(hb), &h, &e)) {
				snprintf(why, sizeof(why), "%s", e.msg);
				bad = 1;
				break;
			}
			hdr_ok = 1;
			if (h.base_offset != expect) {
				snprintf(why, sizeof(why), "batch says offset %" PRIu64 ", expected %" PRIu64, h.base_offset,
					 expect);
				bad = 1;
			} else if (h.length > s->size - pos) {
				snprintf(why, sizeof(why), "a batch of %u bytes cut off at %" PRIu64, h.length,
					 s->size - pos);
				bad = 1;
			} else if (h.base_offset + h.count > offset) {
				break;
			} else {
				/* Its count says where the next batch starts: only
				 * believed once its CRC holds. */
				mq_buf_t *b = &log->scratch;
				b->len = 0;
				if (mq_buf_reserve(b, h.length))
					return mq_err_set(err, MQ_ENOMEM, "out of memory reading %u bytes", h.length);
				if (mq_pread_full(s->fd, b->p, h.length, pos) != (long long)h.length)
					return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, pos);
				if (mq_batch_verify(b->p, h.length, &e)) {
					snprintf(why, sizeof(why), "%s", e.msg);
					bad = 1;
					break;
				}
				pos += h.length;
				expect += h.count;
			}
		}
		if (!bad && got < 0) {
			/* Read up to max_bytes (the first batch whole, however large). */
			uint64_t avail = s->size - pos;
			size_t want = max_bytes < avail ? max_bytes : (size_t)avail;
			if (want < h.length)
				want = h.length;
			if (mq_buf_reserve(out, want))
				return mq_err_set(err, MQ_ENOMEM, "out of memory reading %zu bytes", want);
			got = mq_pread_full(s->fd, out->p + start, want, pos);
			if (got < 0)
				return mq_err_sys(err, "cannot read partition '%s'", log->dir);
		}
		if (!bad) {
			uint64_t next = expect;
			mq_batch_hdr_t b;
			mq_err_t e;
			while ((size_t)got - used >= MQ_BATCH_HEADER) {
				const uint8_t *p = out->p + start + used;
				if (mq_batch_hdr_decode(p, MQ_BATCH_HEADER, &b, &e) || b.length > (size_t)got - used)
					break; /* cut off by max_bytes, or damage the next read reports */
				if (mq_batch_verify(p, b.length, &e) || b.base_offset != next) {
					if (b.base_offset != next)
						snprintf(e.msg, sizeof(e.msg), "batch says offset %" PRIu64 ", expected %" PRIu64,
							 b.base_offset, next);
					if (used == 0)
						snprintf(why, sizeof(why), "%s", e.msg);
					break;
				}
				used += b.length;
				next = b.base_offset + b.count;
			}
			if (used) {
				out->len = start + used;
				log->hint_seg = i;
				log->hint_pos = pos + used;
				log->hint_off = next;
				return (long long)used;
			}
			if (got < (long long)h.length) {
				snprintf(why, sizeof(why), "a batch of %u bytes cut off at %lld", h.length, got);
			}
			bad = 1;
		}
		/* Damage at pos: past it when it lies wholly below offset. */
		uint64_t to, qpos;
		resync(log, s, send, pos, hdr_ok ? &h : NULL, expect, &to, &qpos);
		if (to <= offset && qpos < s->size) {
			pos = qpos;
			expect = to;
			continue;
		}
		if (to <= offset)
			return 0;
		return damaged(log, i, pos, offset, to, why, dmg, err);
	}
}

long long mq_log_read_checked(mq_log_t *log, uint64_t offset, size_t max_bytes, mq_buf_t *out,
			      mq_log_damage_t *dmg, mq_err_t *err)
{
	if (offset < mq_log_start(log) || offset > log->end)
		return mq_err_set(err, MQ_ERANGE, "offset %" PRIu64 " is out of range (partition holds %" PRIu64
				  " to %" PRIu64 ")", offset, mq_log_start(log), log->end);
	int rc;
	for (int i = seg_find(log, offset); offset < log->end && i < log->nsegs; i++) {
		if ((rc = seg_use(log, i, err)))
			return rc;
		uint64_t pos, expect;
		if (offset < log->segs[i].base)
			offset = log->segs[i].base;
		if ((rc = walk_start(log, i, offset, &pos, &expect, err)))
			return rc;
		long long got = read_seg(log, i, offset, pos, expect, max_bytes, out, dmg, err);
		if (got)
			return got;
	}
	return 0;
}

long long mq_log_read(mq_log_t *log, uint64_t offset, size_t max_bytes, mq_buf_t *out, mq_err_t *err)
{
	return mq_log_read_checked(log, offset, max_bytes, out, NULL, err);
}

/* ---- time lookup ---- */

int mq_log_find_time(mq_log_t *log, int64_t ts, uint64_t *offset, mq_err_t *err)
{
	int rc;
	for (int i = 0; i < log->nsegs; i++) {
		if ((rc = seg_use(log, i, err)))
			return rc;
		seg_t *s = &log->segs[i];
		if (s->size == 0 || s->max_ts < ts)
			continue;
		/* Every record before the last time-index entry below ts is older than ts. */
		uint64_t from = s->base;
		size_t lo = 0, hi = s->ntix;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (s->tix[mid].ts < ts)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo)
			from = s->base + s->tix[lo - 1].rel;
		uint64_t pos;
		int found;
		if ((rc = locate(log, i, from, &pos, &found, err)))
			return rc;
		scan_t sc = {.fd = s->fd, .file_size = s->size, .pos = found ? pos : s->size,
			     .next_base = UINT64_MAX, .buf = &log->scratch};
		log->scratch.len = 0;
		while ((rc = scan_next(&sc, err)) > 0) {
			if (sc.hdr.max_ts < ts)
				continue;
			mq_batch_iter_t it;
			mq_record_t r;
			if (mq_batch_iter_init(&it, sc.batch, sc.hdr.length, err))
				return -MQ_ECORRUPT;
			while (mq_batch_iter_next(&it, &r) > 0) {
				if (r.timestamp >= ts && r.offset >= from) {
					*offset = r.offset;
					return 0;
				}
			}
		}
		if (rc < 0)
			return rc;
	}
	*offset = log->end;
	return 0;
}

/* ---- the time of one record ---- */

int mq_log_time_at(mq_log_t *log, uint64_t offset, int64_t *ms, mq_err_t *err)
{
	if (offset < mq_log_start(log) || offset >= log->end)
		return mq_err_set(err, MQ_ERANGE, "offset %" PRIu64 " holds no record (partition holds %" PRIu64
				  " to %" PRIu64 ")", offset, mq_log_start(log), log->end);
	int rc;
	for (int i = seg_find(log, offset); i < log->nsegs; i++) {
		if ((rc = seg_use(log, i, err)))
			return rc;
		seg_t *s = &log->segs[i];
		uint64_t pos;
		int found;
		if ((rc = locate(log, i, offset > s->base ? offset : s->base, &pos, &found, err)))
			return rc;
		if (!found)
			continue;
		uint8_t hb[MQ_BATCH_HEADER];
		mq_batch_hdr_t h;
		if (mq_pread_full(s->fd, hb, sizeof(hb), pos) != (long long)sizeof(hb))
			return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, pos);
		if (mq_batch_hdr_decode(hb, sizeof(hb), &h, err))
			return -MQ_ECORRUPT;
		if (h.length > s->size - pos)
			return mq_err_set(err, MQ_ECORRUPT, "partition '%s': a batch of %u bytes cut off at byte %" PRIu64
					  " of segment %" PRIu64 " (run mq-admin verify)", log->dir, h.length, pos, s->base);
		int64_t t = h.first_ts;
		if (offset > h.base_offset) { /* not the first record: walk this one batch */
			mq_buf_t *b = &log->scratch;
			mq_batch_iter_t it;
			mq_record_t r;
			b->len = 0;
			if (mq_buf_reserve(b, h.length))
				return mq_err_set(err, MQ_ENOMEM, "out of memory reading %u bytes", h.length);
			if (mq_pread_full(s->fd, b->p, h.length, pos) != (long long)h.length)
				return mq_err_sys(err, "cannot read partition '%s' at byte %" PRIu64, log->dir, pos);
			if (mq_batch_verify(b->p, h.length, err) || mq_batch_iter_init(&it, b->p, h.length, err))
				return -MQ_ECORRUPT;
			while ((rc = mq_batch_iter_next(&it, &r)) > 0 && r.offset < offset)
				;
			if (rc <= 0)
				return mq_err_set(err, MQ_ECORRUPT, "partition '%s': the batch at byte %" PRIu64
						  " of segment %" PRIu64 " has no record at offset %" PRIu64
						  " (run mq-admin verify)", log->dir, pos, s->base, offset);
			t = r.timestamp;
		}
		*ms = h.deliver_at > t ? h.deliver_at : t;
		return 0;
	}
	return mq_err_set(err, MQ_ECORRUPT, "partition '%s': no batch holds offset %" PRIu64 " (run mq-admin verify)",
			  log->dir, offset);
}

/* ---- retention ---- */

static int seg_delete_oldest(mq_log_t *log, mq_err_t *err)
{
	seg_t *s = &log->segs[0];
	char path[PATH_MAX];
	static const char *const exts[] = {"log", "idx", "tix"};
	release_sealed(log);
	for (int k = 0; k < 3; k++) {
		seg_path(log, s->base, exts[k], path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT)
			return mq_err_sys(err, "cannot delete '%s'", path);
	}
	log->bytes -= s->size;
	seg_free(s);
	memmove(&log->segs[0], &log->segs[1], (size_t)(log->nsegs - 1) * sizeof(seg_t));
	log->nsegs--;
	log->hint_seg = -1;
	return 0;
}

int mq_log_retain(mq_log_t *log, int64_t now_ms, mq_err_t *err)
{
	int deleted = 0, rc;
	if (log->o.retention_ms > 0) {
		int64_t cutoff = now_ms - log->o.retention_ms;
		for (;;) {
			if (log->nsegs == 1) {
				seg_t *a = active(log);
				/* All of the newest segment expired: seal it so it can go. */
				if (a->size == 0 || a->max_ts >= cutoff || (rc = roll(log, err)))
					break;
			}
			if ((rc = seg_use(log, 0, err)))
				return rc;
			if (log->segs[0].max_ts >= cutoff)
				break;
			if ((rc = seg_delete_oldest(log, err)))
				return rc;
			deleted++;
		}
	}
	if (log->o.retention_bytes > 0) {
		while (log->nsegs > 1 && log->bytes - log->segs[0].size >= (uint64_t)log->o.retention_bytes) {
			if ((rc = seg_delete_oldest(log, err)))
				return rc;
			deleted++;
		}
	}
	if (deleted && log->o.fsync != MQ_FSYNC_NEVER && (rc = mq_fsync_dir(log->dir, err)))
		return rc;
	return deleted;
}

int mq_log_scan_tail(mq_log_t *log, uint64_t max_bytes, mq_log_hdr_fn fn, void *ctx, mq_err_t *err)
{
	int rc, first = log->nsegs - 1;
	uint64_t later = 0; /* bytes in the segments after first */
	while (first > 0 && later + log->segs[first].size < max_bytes)
		later += log->segs[first--].size;
	for (int i = first; i < log->nsegs; i++) {
		if ((rc = seg_use(log, i, err)))
			return rc;
		seg_t *s = &log->segs[i];
		uint64_t want = max_bytes - later, from = i == first && s->size > want ? s->size - want : 0, pos = 0;
		for (size_t k = 0; k < s->nidx && s->idx[k].pos <= from; k++)
			pos = s->idx[k].pos;
		scan_t sc = {.fd = s->fd, .file_size = s->size, .pos = pos, .next_base = UINT64_MAX,
			     .buf = &log->scratch};
		log->scratch.len = 0;
		while ((rc = scan_next(&sc, err)) > 0)
			fn(ctx, &sc.hdr, sc.batch);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int mq_log_mtime(mq_log_t *log, int64_t *ns, mq_err_t *err)
{
	struct stat st;
	int rc;
	if ((rc = active_fd(log, err)))
		return rc;
	if (fstat(active(log)->fd, &st) < 0)
		return mq_err_sys(err, "cannot stat the newest segment of '%s'", log->dir);
	*ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
}

int mq_log_roll(mq_log_t *log, mq_err_t *err)
{
	return active(log)->size ? roll(log, err) : 0;
}

int mq_log_delete_before(mq_log_t *log, uint64_t offset, mq_err_t *err)
{
	int n = 0, rc;
	while (log->nsegs > 1 && seg_end(log, 0) <= offset) {
		if ((rc = seg_delete_oldest(log, err)))
			return rc;
		n++;
	}
	return n;
}

int mq_log_truncate_all(mq_log_t *log, uint64_t new_start, mq_err_t *err)
{
	int rc;
	if (new_start < log->end)
		new_start = log->end;
	if (active(log)->size > 0 || new_start > active(log)->base) {
		flush_indexes_try(log, active(log));
		/* Synced first, so that a failing sync cuts at the true end. */
		if (log->o.fsync != MQ_FSYNC_NEVER && log->dirty &&
		    ((rc = active_fd(log, err)) || (rc = sync_active(log, err))))
			return rc;
		uint64_t saved = log->end;
		log->end = new_start;
		if ((rc = roll(log, err))) {
			log->end = saved;
			return rc;
		}
	}
	while (log->nsegs > 1)
		if ((rc = seg_delete_oldest(log, err)))
			return rc;
	return 0;
}

/* ---- offline verification ---- */

typedef struct vctx {
	mq_log_report_fn report;
	void *ctx;
	int faults;
} vctx_t;

static void vfault(vctx_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vfault(vctx_t *v, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v->faults++;
	v->report(v->ctx, msg);
}

/* Compare an index file with the entries a scan of its segment expects. */
static void verify_index(vctx_t *v, const char *path, mq_buf_t *b, const uint8_t *want, size_t want_len,
			 size_t esz)
{
	mq_err_t e;
	int rc = read_whole(path, b, &e);
	if (rc < 0) {
		vfault(v, "%s", e.msg);
		return;
	}
	if (rc == 1) {
		if (want_len)
			vfault(v, "%s: missing (rebuilt when the partition is next opened)", path);
		return;
	}
	if (b->len % esz)
		vfault(v, "%s: size %zu is not a multiple of %zu (torn entry at byte %zu)", path, b->len, esz,
		       b->len - b->len % esz);
	size_t n = b->len < want_len ? b->len : want_len;
	for (size_t i = 0; i + esz <= n; i += esz) {
		if (memcmp(b->p + i, want + i, esz)) {
			vfault(v, "%s: entry %zu at byte %zu does not match the segment", path, i / esz, i);
			return;
		}
	}
	if (b->len / esz != want_len / esz)
		vfault(v, "%s: %zu entries, the segment calls for %zu (truncated or stale index)", path,
		       b->len / esz, want_len / esz);
}

int mq_log_verify(const char *dir, mq_log_report_fn report, void *ctx, mq_err_t *err)
{
	vctx_t v = {report, ctx, 0};
	mq_log_t tmp = {0};
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	tmp.o = o;
	tmp.dir = (char *)dir;
	tmp.open_sealed = -1;
	int rc = 0;

	/* List segments without touching anything. */
	DIR *d = opendir(dir);
	if (!d)
		return mq_err_sys(err, "cannot open partition directory '%s'", dir);
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *ext;
		uint64_t base;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!parse_seg_name(de->d_name, &base, &ext) ||
		    (strcmp(ext, "log") && strcmp(ext, "idx") && strcmp(ext, "tix") && strcmp(ext, "tmp"))) {
			vfault(&v, "%s/%s: unexpected file in a partition directory", dir, de->d_name);
			continue;
		}
		if (!strcmp(ext, "log") && segs_push(&tmp, base, 0)) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			break;
		}
	}
	closedir(d);
	if (rc)
		goto out;
	if (tmp.nsegs > 1)
		qsort(tmp.segs, (size_t)tmp.nsegs, sizeof(seg_t), cmp_seg);

	mq_buf_t want_idx = {0}, want_tix = {0}, filebuf = {0};
	char path[PATH_MAX];
	for (int i = 0; i < tmp.nsegs; i++) {
		seg_t *s = &tmp.segs[i];
		seg_path(&tmp, s->base, "log", path, sizeof(path));
		s->fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (s->fd < 0 || fstat(s->fd, &st) < 0) {
			vfault(&v, "%s: cannot read: %s", path, strerror(errno));
			continue;
		}
		s->size = (uint64_t)st.st_size;
		s->next_index_pos = 0;
		uint64_t good_end, next_off;
		char why[WHY_MAX];
		if (scan_tail(&tmp, s, s->size, 0, s->base, &good_end, &next_off, why, sizeof(why), err) < 0) {
			vfault(&v, "%s: %s", path, err->msg);
			continue;
		}
		int last = i + 1 == tmp.nsegs;
		if (good_end < s->size) {
			/* Index entries past the damage would only repeat it. */
			vfault(&v, "%s: %s; %" PRIu64 " bytes from byte %" PRIu64 " on are not readable", path, why,
			       s->size - good_end, good_end);
			seg_free(s);
			continue;
		}
		if (!last && next_off != tmp.segs[i + 1].base)
			vfault(&v, "%s: ends at offset %" PRIu64 " but the next segment starts at %" PRIu64
			       " (offsets not contiguous)", path, next_off, tmp.segs[i + 1].base);
		if (!last && next_off > s->base)
			tix_push(s, s->max_ts, (uint32_t)(next_off - s->base));
		want_idx.len = want_tix.len = 0;
		if (mq_buf_reserve(&want_idx, s->nidx * IDX_ENTRY + 1) ||
		    mq_buf_reserve(&want_tix, s->ntix * TIX_ENTRY + 1)) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			break;
		}
		for (size_t k = 0; k < s->nidx; k++) {
			mq_put_u32(want_idx.p + want_idx.len, s->idx[k].rel);
			mq_put_u32(want_idx.p + want_idx.len + 4, s->idx[k].pos);
			want_idx.len += IDX_ENTRY;
		}
		for (size_t k = 0; k < s->ntix; k++) {
			mq_put_u64(want_tix.p + want_tix.len, (uint64_t)s->tix[k].ts);
			mq_put_u32(want_tix.p + want_tix.len + 8, s->tix[k].rel);
			want_tix.len += TIX_ENTRY;
		}
		seg_path(&tmp, s->base, "idx", path, sizeof(path));
		verify_index(&v, path, &filebuf, want_idx.p, want_idx.len, IDX_ENTRY);
		seg_path(&tmp, s->base, "tix", path, sizeof(path));
		verify_index(&v, path, &filebuf, want_tix.p, want_tix.len, TIX_ENTRY);
		seg_free(s);
	}
	mq_buf_free(&want_idx);
	mq_buf_free(&want_tix);
	mq_buf_free(&filebuf);
out:
	for (int i = 0; i < tmp.nsegs; i++)
		seg_free(&tmp.segs[i]);
	free(tmp.segs);
	mq_buf_free(&tmp.scratch);
	return rc ? rc : v.faults;
}

/* List the segments of a directory read-only into tmp (sorted). */
static int list_segments_ro(mq_log_t *tmp, const char *dir, mq_err_t *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return mq_err_sys(err, "cannot open partition directory '%s'", dir);
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		const char *ext;
		uint64_t base;
		if (parse_seg_name(de->d_name, &base, &ext) && !strcmp(ext, "log") && segs_push(tmp, base, 0)) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			break;
		}
	}
	closedir(d);
	if (tmp->nsegs > 1)
		qsort(tmp->segs, (size_t)tmp->nsegs, sizeof(seg_t), cmp_seg);
	return rc;
}

int mq_log_scan(const char *dir, uint64_t from, mq_log_batch_fn batch, mq_log_report_fn fault, void *ctx,
		mq_err_t *err)
{
	mq_log_t tmp = {0};
	tmp.dir = (char *)dir;
	tmp.open_sealed = -1;
	int rc = list_segments_ro(&tmp, dir, err);
	char path[PATH_MAX], msg[PATH_MAX + WHY_MAX + 16];
	for (int i = 0; rc == 0 && i < tmp.nsegs; i++) {
		seg_t *s = &tmp.segs[i];
		if (i + 1 < tmp.nsegs && tmp.segs[i + 1].base <= from)
			continue;
		seg_path(&tmp, s->base, "log", path, sizeof(path));
		struct stat st;
		s->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0 || fstat(s->fd, &st) < 0) {
			snprintf(msg, sizeof(msg), "%s: cannot read: %s", path, strerror(errno));
			fault(ctx, msg);
			continue;
		}
		scan_t sc = {.fd = s->fd, .file_size = (uint64_t)st.st_size, .pos = 0, .next_base = s->base,
			     .buf = &tmp.scratch};
		tmp.scratch.len = 0; /* it holds the segment before: not these bytes */
		uint64_t at = 0;
		int r;
		while ((r = scan_next(&sc, err)) > 0) {
			if (sc.hdr.base_offset + sc.hdr.count > from && (rc = batch(ctx, sc.batch, sc.hdr.length, path, at)))
				break;
			at = sc.pos;
		}
		if (r < 0)
			rc = r;
		else if (!rc && sc.why[0]) {
			snprintf(msg, sizeof(msg), "%s: %s", path, sc.why);
			fault(ctx, msg);
		}
		close(s->fd);
		s->fd = -1;
	}
	free(tmp.segs);
	mq_buf_free(&tmp.scratch);
	return rc;
}
