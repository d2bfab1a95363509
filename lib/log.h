/*
 * log.h -- one partition: an append-only sequence of record batches
 * split into segment files, with a sparse offset index and a time
 * index per segment.
 *
 * Files in a partition directory (NNN = base offset, 20 digits):
 *   NNN.log   batches, back to back (batch.h)
 *   NNN.idx   sparse offset index: entries of (u32 offset - base,
 *             u32 file position): the first batch, then each batch that
 *             starts MQ_LOG_INDEX_INTERVAL (4096) or more bytes after the
 *             previous entry.  The rule is fixed, so mq-admin verify can
 *             tell a complete index from a truncated one.
 *   NNN.tix   time index: entries of (i64 max_ts, u32 offset - base), one
 *             with each .idx entry but the first: max_ts is the largest
 *             timestamp of the records before that offset;
 *             a sealed segment ends with an entry for its end offset
 *
 * Invariants:
 *   - offsets are dense: each batch's base_offset is the previous
 *     batch's base_offset + count, across segments too;
 *   - only whole batches are visible: the end offset moves after a
 *     batch is completely written, and a failed write is cut off again;
 *   - indexes are hints: they are never trusted past a check against
 *     the .log file and can always be rebuilt from it;
 *   - recovery reads only the tail of the last segment (from its last
 *     index entry that still points at a good batch), so opening takes
 *     the same time however much data the partition holds.
 */
#ifndef MQ_LOG_H
#define MQ_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "util.h"

typedef struct mq_log mq_log_t;

#define MQ_LOG_INDEX_INTERVAL 4096

enum mq_fsync_policy {
	MQ_FSYNC_NEVER = 0,    /* leave it to the OS */
	MQ_FSYNC_ALWAYS = 1,   /* mq_log_commit syncs whatever was appended */
	MQ_FSYNC_INTERVAL = 2, /* mq_log_commit syncs when interval_ms passed */
};

typedef struct mq_log_opts {
	uint64_t segment_bytes;     /* roll when a segment would exceed this (default 256 MiB) */
	int fsync;                  /* enum mq_fsync_policy (default NEVER) */
	int64_t fsync_interval_ms;  /* for MQ_FSYNC_INTERVAL */
	int64_t retention_ms;       /* delete segments older than this; <= 0: keep */
	int64_t retention_bytes;    /* keep at most about this many bytes; <= 0: keep */
	size_t max_record_bytes;    /* larger records are refused (default 1 MiB) */
	/* Told, one line each, of what opening did on its own: a torn write
	 * cut from the end of the newest segment.  NULL: nobody. */
	void (*report)(void *ctx, const char *msg);
	void *report_ctx;
} mq_log_opts_t;

/* Fill o with the defaults above. */
void mq_log_opts_default(mq_log_opts_t *o);

/* Open (creating if create != 0 and missing) the partition in dir.
 * Recovers the tail of the last segment as described above. */
int mq_log_open(const char *dir, const mq_log_opts_t *o, int create,
		mq_log_t **out, mq_err_t *err);
/* Sync if the policy asks for it, then close everything.  NULL is a no-op. */
void mq_log_close(mq_log_t *log);

/* Change retention / fsync / size options of an open log. */
void mq_log_set_opts(mq_log_t *log, const mq_log_opts_t *o);

/*
 * Append one complete batch (batch.h) of n bytes.  The batch is checked
 * (CRC, records, record size limit) and its base_offset is rewritten in
 * place; *base receives it.  Nothing is synced here: see mq_log_commit.
 * On any failure nothing of the batch stays visible or on disk.
 */
int mq_log_append(mq_log_t *log, uint8_t *batch, size_t n, uint64_t *base, mq_err_t *err);

/* Apply the fsync policy to what was appended since the last sync:
 * ALWAYS syncs now, INTERVAL syncs if the interval has passed since the
 * last sync, NEVER does nothing.  Many appends, one fdatasync. */
int mq_log_commit(mq_log_t *log, int64_t now_mono_ms, mq_err_t *err);
/* fdatasync now, whatever the policy. */
int mq_log_sync(mq_log_t *log, mq_err_t *err);
/* 1 if appended data is waiting for a sync. */
int mq_log_dirty(const mq_log_t *log);

/* Close every descriptor the log holds (after a sync, if appended data
 * waits for one and the policy syncs at all); whatever needs one later
 * opens it again.  The log stays usable.  Returns the sync's result:
 * the descriptors are closed either way. */
int mq_log_release(mq_log_t *log, mq_err_t *err);
/* Descriptors the log holds now (0 to 2). */
int mq_log_fds(const mq_log_t *log);

/*
 * Read whole batches starting with the batch that contains offset,
 * appending them to out, up to about max_bytes (at least one batch is
 * returned when offset < end, however large).  Batches never extend
 * past the end offset at the time of the call.  Returns the number of
 * bytes appended (0 when offset == end); -MQ_ERANGE when offset is
 * below the start or above the end offset.
 */
long long mq_log_read(mq_log_t *log, uint64_t offset, size_t max_bytes, mq_buf_t *out, mq_err_t *err);

/*
 * mq_log_read, telling where damage is.  Every batch returned passed its
 * CRC and starts exactly where the one before it ended (the first one
 * holds offset), so offsets never jump.  Batches before damage are
 * returned; when the batch holding offset is damaged (bad CRC or header,
 * wrong base offset, cut off, or a hole between segments), -MQ_ECORRUPT
 * with err naming the file and byte, and *dmg (may be NULL) says which
 * offsets cannot be read: [offset, dmg->to); reading can go on at to.
 * dmg->fresh is 1 the first time this log reports that damage.
 */
typedef struct mq_log_damage {
	uint64_t from, to;
	int fresh;
} mq_log_damage_t;
long long mq_log_read_checked(mq_log_t *log, uint64_t offset, size_t max_bytes, mq_buf_t *out,
			      mq_log_damage_t *dmg, mq_err_t *err);

/* First offset whose record timestamp is >= ts (end offset if none). */
int mq_log_find_time(mq_log_t *log, int64_t ts, uint64_t *offset, mq_err_t *err);

/* When the record at offset (start <= offset < end) became readable:
 * its timestamp, or its batch's deliver_at when that is later (a delayed
 * message).  Reads one batch header, and that one batch when offset is
 * not its first record: never the log before or after it.  -MQ_ERANGE
 * outside [start, end). */
int mq_log_time_at(mq_log_t *log, uint64_t offset, int64_t *ms, mq_err_t *err);

uint64_t mq_log_start(const mq_log_t *log); /* first retained offset */
uint64_t mq_log_end(const mq_log_t *log);   /* offset the next record gets */
uint64_t mq_log_bytes(const mq_log_t *log); /* bytes in all segments */
int mq_log_segments(const mq_log_t *log);   /* number of segment files */
int64_t mq_log_max_ts(const mq_log_t *log); /* largest timestamp, 0 if empty */

/* Delete whole segments past retention (never the newest data, never
 * reusing an offset).  Returns the number of segments deleted. */
int mq_log_retain(mq_log_t *log, int64_t now_ms, mq_err_t *err);

/* Call fn(ctx, header, batch) for each good batch in about the last
 * max_bytes of the log, oldest first, across segments (the broker
 * rebuilds its producer sequences and its dedup ids from it after a
 * restart).  batch (h->length bytes, CRC checked) is valid only during
 * the call, and fn must not use the log. */
typedef void (*mq_log_hdr_fn)(void *ctx, const mq_batch_hdr_t *h, const uint8_t *batch);
int mq_log_scan_tail(mq_log_t *log, uint64_t max_bytes, mq_log_hdr_fn fn, void *ctx, mq_err_t *err);

/* Last modification time of the newest segment, ns since the epoch. */
int mq_log_mtime(mq_log_t *log, int64_t *ns, mq_err_t *err);

/* Seal the active segment now (if it holds data) and start a new one. */
int mq_log_roll(mq_log_t *log, mq_err_t *err);
/* Delete the segments that lie wholly below offset (compaction of
 * internal logs after a snapshot).  Returns the number deleted. */
int mq_log_delete_before(mq_log_t *log, uint64_t offset, mq_err_t *err);

/* Delete every segment and start over at new_start (>= end): used when a
 * topic is deleted or emptied.  Offsets below new_start are never reused. */
int mq_log_truncate_all(mq_log_t *log, uint64_t new_start, mq_err_t *err);

/* 1 if name is a segment file's name (20 digits and .log), else 0. */
int mq_log_is_segment(const char *name);

/*
 * Offline check of one partition directory (mq-admin verify): every
 * segment's batches (CRCs, contiguous offsets), every index entry.
 * Does not modify anything.  Calls report(ctx, message) once per fault
 * found with the file name and byte position; returns the number of
 * faults (0 = clean) or a negative error if the directory cannot be read.
 */
typedef void (*mq_log_report_fn)(void *ctx, const char *msg);
int mq_log_verify(const char *dir, mq_log_report_fn report, void *ctx, mq_err_t *err);

/*
 * Offline, read-only walk over the batches of one partition directory
 * from offset `from` on (mq-admin dump): calls batch(ctx, bytes, length,
 * segment path, file position) for each good batch, in offset order.
 * Where a segment holds damage, fault(ctx, message) is called and the
 * walk goes on with the next segment.  Returns 0, a negative error, or
 * whatever non-zero value a callback returned to stop the walk.
 */
typedef int (*mq_log_batch_fn)(void *ctx, const uint8_t *batch, size_t len, const char *seg, uint64_t pos);
int mq_log_scan(const char *dir, uint64_t from, mq_log_batch_fn batch, mq_log_report_fn fault, void *ctx,
		mq_err_t *err);

#endif
