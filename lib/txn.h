/*
 * txn.h -- half-message transactions with check-back (RocketMQ's
 * design) inside mq-serve.
 *
 * A transaction is prepared in three steps: begin (its id, chosen by the
 * producer, and its topic), add (each batch of its messages, numbered
 * from 0, with the partition it is meant for) and end (how many batches
 * there were).  Until it is decided its messages are half messages: they
 * live in the broker's transaction log, not in the topic, so consumers
 * never see them and need to know nothing about transactions.
 *
 * A commit first records the decision durably (synced before anything
 * else happens), then appends the transaction's messages to each
 * partition of the topic as ONE batch per partition (so a partition
 * shows all of its part or none of it), marked with the transaction id
 * (batch.h txn_id, flag MQ_BF_TXN).  The decision record holds each
 * partition's end offset before the append, so finishing a commit that a
 * crash interrupted looks only at what came after that offset: a batch
 * marked with the id is the append done before the crash, and is not
 * made again; a partition without it gets it.  Every commit is finished
 * when the log is opened, before the broker takes requests.
 *
 * A rollback records the decision and drops the half messages.  Both
 * decisions are idempotent; a transaction decided one way refuses the
 * other.  The last `remember` decided transactions are remembered (id
 * and outcome), older ones are forgotten (-MQ_ENOENT).
 *
 * Check-back: a prepared transaction still undecided timeout_ms after
 * its end is handed to a checker (mq_txns_check_next), then again every
 * check_interval_ms; each hand-out counts as a check and is recorded, so
 * the count survives a restart.  When max_checks checks brought no
 * verdict, the transaction is rolled back and reported.  A prepare that
 * never ended (its producer died: nobody ever saw its id) is rolled back
 * once it has been idle for timeout_ms + check_interval_ms.
 *
 * The log: DIR/state/txn, an mq log (log.h) of one-record batches, each
 * a record whose key is a type byte and the transaction id (8 bytes,
 * little-endian), documented in mq-format(5):
 *   'B' begin     value: the topic name
 *   'A' add       key + u32 index + u32 partition; value: the batch as sent
 *   'E' end       value: u32 number of batches
 *   'K' checked   value: u32 checks so far
 *   'C' commit    value: u8 why, then per partition (u32 partition, u64 end
 *                 offset before the append), partitions ascending
 *   'D' done      the commit's appends are in the topic and synced
 *   'R' rollback  value: u8 why
 *   'F' forgotten-but-decided (written by compaction): u8 state, u8 why
 * The record timestamp is the wall clock of the event.  The log is
 * compacted (live transactions and remembered decisions rewritten into a
 * new segment, older segments deleted) when it passes compact_bytes and
 * holds mostly dead records.
 */
#ifndef MQ_TXN_H
#define MQ_TXN_H

#include <stdint.h>

#include "log.h"
#include "store.h"
#include "util.h"

#define MQ_TXN_DEFAULT_TIMEOUT_MS 6000
#define MQ_TXN_DEFAULT_INTERVAL_MS 60000
#define MQ_TXN_DEFAULT_MAX_CHECKS 15
#define MQ_TXN_DEFAULT_REMEMBER 100000
/* The most one transaction may hold for one partition: its commit is one
 * batch there. */
#define MQ_TXN_MAX_PART_BYTES (MQ_BATCH_MAX_BYTES - 4096)

typedef struct mq_txns mq_txns_t;

enum mq_txn_state {
	MQ_TXN_OPEN = 1,        /* being prepared */
	MQ_TXN_PREPARED = 2,    /* prepared, undecided */
	MQ_TXN_COMMITTED = 3,
	MQ_TXN_ROLLED_BACK = 4,
};

/* Who or what decided. */
enum mq_txn_why {
	MQ_TXN_BY_CLIENT = 0,    /* mq-pub --commit / --rollback */
	MQ_TXN_BY_CHECKER = 1,   /* a checker's verdict */
	MQ_TXN_BY_CHECKS = 2,    /* max_checks checks without a verdict */
	MQ_TXN_BY_ABANDONED = 3, /* its prepare never ended */
	MQ_TXN_BY_LOST = 4,      /* part of its messages were lost from the log */
};

typedef struct mq_txn_opts {
	int64_t timeout_ms;        /* first check this long after the prepare (0: default) */
	int64_t check_interval_ms; /* later checks (0: default) */
	uint32_t max_checks;       /* checks without a verdict before the rollback (0: default) */
	uint32_t remember;         /* decided transactions remembered (0: default) */
	uint64_t compact_bytes;    /* compaction threshold (0: 64 MiB) */
	mq_log_opts_t log;         /* fsync policy of the transaction log */
	mq_report_fn report;       /* what the operator must hear of; NULL: nobody */
	void *report_ctx;
} mq_txn_opts_t;

/* Open state_dir/txn: replay it, roll back what lost messages, finish
 * every decided commit (appending to the store what a crash left out).
 * Damage in the log keeps what comes before it and is reported. */
int mq_txns_open(const char *state_dir, mq_store_t *store, const mq_txn_opts_t *o, mq_txns_t **out,
		 mq_err_t *err);
void mq_txns_close(mq_txns_t *t); /* NULL ok */

/* Start transaction txid on topic (the topic must exist).  Again with the
 * same id and topic while open: 0 (a retry).  -MQ_EEXIST otherwise. */
int mq_txns_begin(mq_txns_t *t, uint64_t txid, const char *topic, int64_t now_ms, mq_err_t *err);
/* Add batch number index (0, 1, ...) for partition.  The batch is
 * checked (mq_batch_check, max_record_bytes).  index below the number
 * already added: a retry, 0 with *dup set.  Above it: -MQ_ESEQ. */
int mq_txns_add(mq_txns_t *t, uint64_t txid, uint32_t index, uint32_t partition, const uint8_t *batch,
		size_t len, size_t max_record_bytes, int *dup, mq_err_t *err);
/* The prepare is complete with nbatches batches: the transaction is
 * prepared (0 again if it already is, with the same count).  A count
 * that differs from what the broker holds: -MQ_EINVAL, and the
 * transaction is rolled back (MQ_TXN_BY_LOST). *messages: its messages. */
int mq_txns_end(mq_txns_t *t, uint64_t txid, uint32_t nbatches, int64_t now_ms, uint64_t *messages,
		mq_err_t *err);

/* Decide.  topic (NULL: any) must be the transaction's.  Commit appends
 * to at most max_parts partitions now (UINT32_MAX: all; fewer only to
 * test an interrupted commit); the rest is done by mq_txns_tick or the
 * next open.  *was (may be NULL) gets the state before the call.
 * Deciding again the same way: 0.  The other way: -MQ_EINVAL with a
 * message naming the decision.  Unknown id: -MQ_ENOENT. */
int mq_txns_commit(mq_txns_t *t, uint64_t txid, const char *topic, int why, uint32_t max_parts, int *was,
		   mq_err_t *err);
int mq_txns_rollback(mq_txns_t *t, uint64_t txid, const char *topic, int why, int *was, mq_err_t *err);

/* State of txid: 0 with *state and *why (why only when decided), or
 * -MQ_ENOENT. */
int mq_txns_state(const mq_txns_t *t, uint64_t txid, int *state, int *why);

/* Hand the next transaction of topic that is due for a check to a
 * checker: 1 with *txid and its half batches appended to msgs (as they
 * were added, batch after batch), its check counted and recorded; 0
 * when none is due. */
int mq_txns_check_next(mq_txns_t *t, const char *topic, int64_t now_ms, uint64_t *txid, mq_buf_t *msgs,
		       mq_err_t *err);
/* Wall-clock ms at which a transaction of topic is next due for a check
 * (INT64_MAX: none), for a checker waiting on topic. */
int64_t mq_txns_next_check(const mq_txns_t *t, const char *topic);
/* Wall-clock ms at which mq_txns_tick next has something to do
 * (INT64_MAX: nothing). */
int64_t mq_txns_next_due(const mq_txns_t *t);

/* Time-driven work: roll back what ran out of checks or was abandoned,
 * say once of a transaction no checker takes, finish commits whose
 * appends a failed sync cut off, record commits whose appends are on
 * disk, compact.  Call after the store's commit (group commit). */
int mq_txns_tick(mq_txns_t *t, int64_t now_ms, mq_err_t *err);
/* Apply the fsync policy to the transaction log (group commit). */
int mq_txns_sync(mq_txns_t *t, int64_t now_mono_ms, mq_err_t *err);

/* Transactions not decided yet (open or prepared). */
uint32_t mq_txns_pending(const mq_txns_t *t);

/* A transaction id as people give it: 1 to 16 hex digits, not 0.
 * -MQ_EINVAL with a message naming s otherwise. */
int mq_txn_id_parse(const char *s, uint64_t *id, mq_err_t *err);
/* A new random id (never 0). */
uint64_t mq_txn_id_new(void);

/* A checker command's verdict from its wait status: exit 0 commit, 1
 * roll back, anything else (other codes, a signal) unknown (wire.h
 * enum mq_txn_verdict). */
int mq_txn_verdict_of(int wait_status);

/* "by mq-pub", ... for messages. */
const char *mq_txn_why_str(int why);

#endif
