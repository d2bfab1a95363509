/*
 * outq.h -- which messages written into a pipe the reader took and then
 * outlived: the offsets a consumer group may commit for plain output.
 *
 * A pipe (or socket) tells how many of the bytes written into it are
 * still unread, so the bytes the reader took out are known, as a count
 * from the first byte written.  For each message it writes, the caller
 * marks the byte position where the message ends, the partition slot it
 * came from and the offset after it; "the reader took N bytes" then moves
 * each slot's taken offset past the last message wholly taken.
 *
 * Taken is not enough: `head -3` reads a whole block of short lines in
 * one read, prints three and exits.  What was taken becomes ready (to
 * commit) only once the reader outlived taking it: each tick, at least
 * window_ms after the one before, makes what was taken at that earlier
 * tick ready, and the caller ticks only while the reader is still there.
 * A reader that goes away between two ticks so gets nothing more
 * committed than it had before the first.
 *
 * Slots are small integers the caller gives out (one per partition); a
 * slot starts, or starts again after a seek or a rebalance, with
 * mq_outq_reset, which forgets its marks not yet taken (an epoch in each
 * mark tells them apart).
 *
 * Memory: marks are kept only for bytes not yet taken (in the pipe or
 * still in the caller's buffer), in a ring that doubles as needed.  Up
 * to MQ_OUTQ_EXACT marks are kept one per message; beyond that, marks
 * of one slot ending in the same MQ_OUTQ_GRAIN-byte stretch share one
 * entry (the later), so the ring stays near one entry per grain of
 * pending bytes (plus one per change of slot) even for empty messages.
 * Coarser only ever means less ready: a reader that stops inside such a
 * stretch gets its messages again.
 */
#ifndef MQ_OUTQ_H
#define MQ_OUTQ_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MQ_OUTQ_EXACT 4096
#define MQ_OUTQ_GRAIN 256

typedef struct mq_outq_mark {
	uint64_t pos; /* the message's last byte is at pos - 1 */
	uint64_t off; /* the offset after it */
	uint32_t slot, epoch;
} mq_outq_mark_t;

typedef struct mq_outq_slot {
	uint64_t taken, snap, ready; /* offsets */
	uint32_t epoch;
} mq_outq_slot_t;

typedef struct mq_outq {
	mq_outq_mark_t *m; /* ring: m[(head + i) & (cap - 1)], i < n */
	size_t head, n, cap;
	mq_outq_slot_t *s;
	uint32_t nslots, slots_cap;
	int64_t window_ms;
	uint64_t taken;    /* bytes the reader took, as last told */
	uint64_t snap;     /* bytes taken at the last snapshot */
	uint64_t ready;    /* bytes ready: the snapshot before */
	int64_t snap_ms;   /* when the last snapshot was taken */
} mq_outq_t;

/* An empty queue; what is taken becomes ready window_ms (> 0) later at
 * the earliest. */
void mq_outq_init(mq_outq_t *q, int64_t window_ms);
void mq_outq_free(mq_outq_t *q); /* frees, and leaves q as init left it */

/* Slot slot (re)starts at offset off: taken, snapshot and ready are off,
 * marks of it not yet taken are forgotten.  0 or -MQ_ENOMEM. */
int mq_outq_reset(mq_outq_t *q, uint32_t slot, uint64_t off, mq_err_t *err);

/* A message of slot (reset before) ends at byte pos (not below the last
 * mark's pos); off is the offset after it.  0 or -MQ_ENOMEM. */
int mq_outq_mark(mq_outq_t *q, uint64_t pos, uint32_t slot, uint64_t off, mq_err_t *err);

/* The reader has taken bytes [0, pos).  Less than before changes nothing. */
void mq_outq_taken(mq_outq_t *q, uint64_t pos);

/* The reader is still there at now_ms.  When the last snapshot is
 * window_ms old or more, what it holds becomes ready, and what is taken
 * now is the next snapshot.  1 when something more became ready. */
int mq_outq_tick(mq_outq_t *q, int64_t now_ms);

/* The offset of slot ready to commit (0 for a slot never reset). */
uint64_t mq_outq_ready(const mq_outq_t *q, uint32_t slot);

/* 0 when all that was taken is ready; else the time of the next tick
 * that makes more of it ready. */
int64_t mq_outq_due(const mq_outq_t *q);

#endif
