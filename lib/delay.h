/*
 * delay.h -- delayed messages (mq-pub --delay, --at): a batch whose
 * deliver_at is still ahead when it arrives is kept in the broker's
 * schedule, an internal log, and appended to its partition when due.
 * Consumers therefore see it at the end of the partition at that moment,
 * with an offset given then, in due order relative to other delayed
 * batches of the partition; until then it is in no partition, has no
 * offset and counts in no lag.
 *
 * The schedule: DIR/state/delay, a log (log.h) outside every topic, with
 * no retention (a pending batch is never aged out), holding:
 *
 *   T  target   internal batch: the partition (u32) and topic of the
 *               batch that follows it at the next offset
 *   -  payload  the producer's batch, byte for byte (its header's
 *               deliver_at is the due time)
 *   I  intent   internal batch: payload offset x (u64), hint (u64): the
 *               partition's end before the move (where the copy lands,
 *               or later)
 *   D  done     internal batch: payload offset x (u64): moved, or
 *               dropped because its topic or partition is gone
 *
 * An internal batch has flag MQ_BF_CONTROL, producer id MQ_DELAY_PID and
 * one record whose key is the letter and whose value holds the fields
 * (little-endian).
 *
 * A move: I is written and the schedule synced (unless the fsync policy
 * is never), then the payload appended to its partition; once the
 * partition's sync kept it (mq_delay_settle, after the turn's commit), D
 * is written.  A crash anywhere leaves one of: no I (not moved; moved
 * again later), I without the copy in the partition (moved again), I
 * with the copy (found by its length and CRC from the hint on, and D
 * written then), or D.  So each due batch lands in its partition once.
 *
 * In memory: a binary heap of (due, x) over the pending batches and an
 * index of them by (CRC, length) for retries (mq_delay_find), rebuilt
 * at open by reading the schedule.  Segments wholly below the oldest
 * pending batch are deleted then, and after moves (at most every 10 s),
 * so the schedule and the read at open stay about the size of what is
 * pending.
 */
#ifndef MQ_DELAY_H
#define MQ_DELAY_H

#include <stdint.h>

#include "log.h"
#include "store.h"
#include "util.h"

/* The producer id of the schedule's own batches. */
#define MQ_DELAY_PID 0xde1a7de1a7de1a70ull

typedef struct mq_delay mq_delay_t;

/* Open DIR/state/delay (state_dir is DIR/state), read it, finish moves a
 * crash cut short, and schedule what is pending.  log_opts: the broker's
 * (fsync policy, segment size, record limit); retention is off here.
 * report: one line for damage skipped or batches dropped (may be NULL). */
int mq_delay_open(const char *state_dir, const mq_log_opts_t *log_opts, mq_store_t *store, mq_report_fn report,
		  void *ctx, mq_delay_t **out, mq_err_t *err);
void mq_delay_close(mq_delay_t *d); /* NULL ok */

/* Keep batch[0..len) (checked by the caller's log rules again here) for
 * topic/partition until due (ms since the epoch).  *x: its offset in the
 * schedule.  Synced with mq_delay_commit. */
int mq_delay_add(mq_delay_t *d, const char *topic, uint32_t partition, uint8_t *batch, size_t len, int64_t due,
		 uint64_t *x, mq_err_t *err);

/* 1 with *x if a pending batch for topic/partition holds the same bytes
 * as batch[0..len) (all but base_offset): a producer's retry of it, also
 * across a restart.  0 if none. */
int mq_delay_find(mq_delay_t *d, const char *topic, uint32_t partition, const uint8_t *batch, size_t len,
		  uint64_t *x);

/* The earliest due time pending (ms since the epoch), INT64_MAX if none. */
int64_t mq_delay_next_due(const mq_delay_t *d);
/* Batches pending. */
uint64_t mq_delay_pending(const mq_delay_t *d);

/* Append the batches due at now_ms (at most max of them) to their
 * partitions, in (due, x) order.  *moved: how many.  A batch that cannot
 * be moved now stays pending and is tried again a second later. */
int mq_delay_move(mq_delay_t *d, int64_t now_ms, uint32_t max, uint32_t *moved, mq_err_t *err);
/* After the partitions' commit: mark done the moves whose copy is still
 * in its partition (a failed sync cuts it off: that batch is pending
 * again), then apply the fsync policy to the schedule. */
int mq_delay_commit(mq_delay_t *d, int64_t now_ms, int64_t now_mono_ms, mq_err_t *err);

#endif
