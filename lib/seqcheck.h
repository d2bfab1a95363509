/*
 * seqcheck.h -- loss and repeat detection by producer sequence numbers
 * (mq-sub --check-seq).
 *
 * Every mq-pub run has a producer id and numbers its records per
 * partition from 0 (the batch header's producer_id and base_seq; a
 * record's sequence is base_seq + its index).  Envelopes re-published
 * from elsewhere may carry their own producer and seq, which mq-pub
 * keeps (the mq.producer / mq.seq headers) and which then take the
 * place of the re-publisher's own.  A stream is one producer in one
 * partition of one topic; per stream the checker expects the sequence
 * after the last one seen:
 *
 *   got == expected   in order
 *   got >  expected   a gap: expected .. got-1 never arrived (deleted by
 *                     retention before they were read, expired, lost)
 *   got <  expected   a repeat: a sequence arrived again (stored twice,
 *                     e.g. published again with deduplication off)
 *
 * after which the checker expects got + 1 on a gap and keeps its
 * expectation on a repeat.  The first record of a stream sets the
 * expectation: the checker sees only what one reader reads, so a
 * producer that restarted (a new id, numbering from 0 again), or
 * records missing before the first one read, are beyond it.  Batch
 * sequences are 32-bit and wrap; envelope sequences are 64-bit.
 *
 * Which records are checked, and only once each (a partition read
 * again after a rebalance is not a repeat), is the caller's business.
 *
 * Memory is bounded: at most `max_streams` streams (0: 1,048,576); when
 * full, the half seen least recently is forgotten (a forgotten stream
 * starts again at its next record: a gap across it is not seen).
 */
#ifndef MQ_SEQCHECK_H
#define MQ_SEQCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct mq_seqcheck mq_seqcheck_t;

enum mq_seq_source {
	MQ_SEQ_BATCH = 1,    /* producer = the batch's 8-byte id; 32-bit sequences */
	MQ_SEQ_ENVELOPE = 2, /* producer = any bytes (mq.producer); 64-bit sequences */
};

enum mq_seq_kind {
	MQ_SEQ_OK = 0,
	MQ_SEQ_GAP = 1,
	MQ_SEQ_REPEAT = 2,
};

typedef struct mq_seq_finding {
	int kind;          /* enum mq_seq_kind */
	uint64_t expected; /* the sequence the stream was waiting for */
	uint64_t got;
	uint64_t missing;  /* a gap: how many sequences never arrived */
} mq_seq_finding_t;

int mq_seqcheck_new(uint32_t max_streams, mq_seqcheck_t **out, mq_err_t *err);
void mq_seqcheck_free(mq_seqcheck_t *s); /* NULL ok */

/* One record of stream (topic ti, partition p, source, producer bytes)
 * with sequence seq: MQ_SEQ_OK, MQ_SEQ_GAP or MQ_SEQ_REPEAT with *f
 * filled, or -MQ_ENOMEM. */
int mq_seqcheck_see(mq_seqcheck_t *s, uint32_t ti, uint32_t p, int source, const void *producer, size_t plen,
		    uint64_t seq, mq_seq_finding_t *f, mq_err_t *err);

uint64_t mq_seqcheck_streams(const mq_seqcheck_t *s);   /* held now */
uint64_t mq_seqcheck_forgotten(const mq_seqcheck_t *s); /* streams dropped to stay in bounds */

#endif
