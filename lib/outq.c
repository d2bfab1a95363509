/*
 * outq.c -- the marks ring and the two-tick rule of outq.h.
 *
 * Byte counts and offsets only grow within a slot's epoch, so the ring
 * is in byte order and taking pops from its head.  Three byte counts
 * summarise the slots: ready <= snap <= taken.  A tick copies each
 * slot's snap to ready and taken to snap, O(slots), a few times a
 * second at most; marks cost O(1) each.
 */
#include "outq.h"

#include <stdlib.h>
#include <string.h>

#define RING_MIN 256

void mq_outq_init(mq_outq_t *q, int64_t window_ms)
{
	memset(q, 0, sizeof *q);
	q->window_ms = window_ms > 0 ? window_ms : 1;
	q->snap_ms = INT64_MIN / 2; /* the first tick takes a snapshot */
}

void mq_outq_free(mq_outq_t *q)
{
	if (!q)
		return;
	free(q->m);
	free(q->s);
	mq_outq_init(q, q->window_ms);
}

int mq_outq_reset(mq_outq_t *q, uint32_t slot, uint64_t off, mq_err_t *err)
{
	if (slot >= q->slots_cap) {
		uint32_t cap = q->slots_cap ? q->slots_cap : 16;
		while (cap <= slot && cap < UINT32_MAX / 2)
			cap *= 2;
		if (cap <= slot)
			return mq_err_set(err, MQ_EINVAL, "output tracking: slot %u out of range", slot);
		mq_outq_slot_t *s = realloc(q->s, (size_t)cap * sizeof *s);
		if (!s)
			return mq_err_set(err, MQ_ENOMEM, "output tracking: out of memory for %u partitions", cap);
		memset(s + q->slots_cap, 0, (size_t)(cap - q->slots_cap) * sizeof *s);
		q->s = s;
		q->slots_cap = cap;
	}
	if (slot >= q->nslots)
		q->nslots = slot + 1;
	mq_outq_slot_t *s = &q->s[slot];
	s->epoch++;
	s->taken = s->snap = s->ready = off;
	return 0;
}

/* Double the ring, unwrapping it. */
static int ring_grow(mq_outq_t *q, mq_err_t *err)
{
	size_t cap = q->cap ? q->cap * 2 : RING_MIN;
	mq_outq_mark_t *m = malloc(cap * sizeof *m);
	if (!m)
		return mq_err_set(err, MQ_ENOMEM, "output tracking: out of memory for %zu message ends", cap);
	for (size_t i = 0; i < q->n; i++)
		m[i] = q->m[(q->head + i) & (q->cap - 1)];
	free(q->m);
	q->m = m;
	q->cap = cap;
	q->head = 0;
	return 0;
}

int mq_outq_mark(mq_outq_t *q, uint64_t pos, uint32_t slot, uint64_t off, mq_err_t *err)
{
	if (slot >= q->nslots)
		return mq_err_set(err, MQ_EINVAL, "output tracking: slot %u was never started", slot);
	mq_outq_slot_t *s = &q->s[slot];
	if (pos <= q->taken) { /* taken already: nothing to wait for */
		s->taken = off;
		return 0;
	}
	if (q->n >= MQ_OUTQ_EXACT) {
		mq_outq_mark_t *t = &q->m[(q->head + q->n - 1) & (q->cap - 1)];
		if (t->slot == slot && t->epoch == s->epoch && t->pos / MQ_OUTQ_GRAIN == pos / MQ_OUTQ_GRAIN) {
			t->pos = pos;
			t->off = off;
			return 0;
		}
	}
	if (q->n == q->cap && ring_grow(q, err))
		return -MQ_ENOMEM;
	q->m[(q->head + q->n) & (q->cap - 1)] = (mq_outq_mark_t){pos, off, slot, s->epoch};
	q->n++;
	return 0;
}

void mq_outq_taken(mq_outq_t *q, uint64_t pos)
{
	if (pos <= q->taken)
		return;
	q->taken = pos;
	while (q->n && q->m[q->head].pos <= pos) {
		const mq_outq_mark_t *k = &q->m[q->head];
		if (k->epoch == q->s[k->slot].epoch)
			q->s[k->slot].taken = k->off;
		q->head = (q->head + 1) & (q->cap - 1);
		q->n--;
	}
}

int mq_outq_tick(mq_outq_t *q, int64_t now_ms)
{
	if (now_ms - q->snap_ms < q->window_ms)
		return 0;
	int more = q->snap > q->ready;
	for (uint32_t i = 0; more && i < q->nslots; i++)
		q->s[i].ready = q->s[i].snap;
	q->ready = q->snap;
	/* Nothing taken since: the snapshot stays as old as it is, so what
	 * it holds is ready at the next tick, not one window later. */
	if (q->taken != q->snap) {
		for (uint32_t i = 0; i < q->nslots; i++)
			q->s[i].snap = q->s[i].taken;
		q->snap = q->taken;
		q->snap_ms = now_ms;
	}
	return more;
}

uint64_t mq_outq_ready(const mq_outq_t *q, uint32_t slot)
{
	return slot < q->nslots ? q->s[slot].ready : 0;
}

int64_t mq_outq_due(const mq_outq_t *q)
{
	if (q->ready >= q->taken)
		return 0;
	int64_t at = q->snap_ms + q->window_ms;
	return at > 0 ? at : 1;
}
