/*
 * consumer.h -- the consumer engine: topics and patterns, group
 * membership and assignment, per-partition positions, the overlapped
 * fetch, and the commit rule.  What happens to a record (written to
 * standard output, or handed to a command per message) is the sink's
 * business; when a record is finished is the sink's word.
 *
 * Per partition the engine keeps:
 *   pos        the next offset to fetch
 *   written    after the last record handed to the sink (a fetch returns
 *              whole stored batches: records below it are skipped)
 *   acked      after the last record the sink finished with
 *              (mq_consumer_ack: written out and flushed, or processed)
 *   committed  what the group holds
 * and the commit rule: with a group, a partition's commit is
 *   min(acked, sink->bound(...)) when the sink has a bound, else acked,
 * and never moves back.  acked never passes written (mq_consumer_ack
 * refuses that), so nothing is committed that the sink did not finish:
 * at least once.  With at_most_once the commit of what a reply will
 * hand to the sink goes out before it is handed over.
 *
 * Topics: every plain name (one that does not exist yet is waited for,
 * never created: reading creates nothing), and for a pattern (fnmatch: * ? [...])
 * every topic whose name matches, now and later: the topic list is
 * asked for again every refresh while following, and so are partition
 * counts.  A topic or partition that appears after the start is read
 * from its beginning; the start offset applies to those there at the
 * start.  Without a group every partition is read and nothing is
 * committed; with one the broker assigns partitions, and a partition
 * taken away is first acked out by the sink (sink->release) and
 * committed, then given up.
 *
 * With check_seq, every record handed over is checked once against its
 * producer's sequence (seqcheck.h): a partition read again (a restart
 * at an older offset, a rebalance) is not checked twice, and a jump past
 * offsets retention deleted shows as a gap in each producer whose
 * records went with them.
 *
 * Flow: mq_consumer_open, then mq_consumer_step until it returns 1 (at
 * the end: -n reached, -e at the end, or the sink ended), then
 * mq_consumer_finish (last commit, leave the group).  A step waits at
 * most until the next heartbeat, refresh or the caller's deadline
 * (mq_consumer_wake_at), and also ends when the watched descriptor is
 * ready.  Never prints: notices go to report.
 */
#ifndef MQ_CONSUMER_H
#define MQ_CONSUMER_H

#include <signal.h>
#include <stdint.h>

#include "client.h"
#include "record.h"
#include "util.h"

#define MQ_CONSUMER_MAX_PATTERNS 64

typedef struct mq_consumer mq_consumer_t;

typedef struct mq_consumer_part {
	uint64_t pos, written, acked, committed, end;
	uint64_t amo;   /* at_most_once: where the records being handed over end */
	uint32_t slot;  /* a number of the partition's own, 0.. (for the sink's tables) */
	int active;     /* 1 reading, 2 being given up, 0 not ours */
	int has_commit;
	int gone;       /* the broker said no such partition: read it again if it comes back */
	int held;       /* the sink asked not to fetch it for now (mq_consumer_hold) */
	uint64_t checked; /* check_seq: records below it were checked (each once) */
} mq_consumer_part_t;

typedef struct mq_consumer_sink {
	/* A record of topic ti (name), partition p: take it.  0 taken (the
	 * engine moves written past it), 1 not taken and the output ended
	 * (the reader went away: the engine ends quietly), < 0 error. */
	int (*put)(void *ctx, uint32_t ti, const char *topic, uint32_t p, const mq_consumer_part_t *part,
		   const mq_record_t *rec, mq_err_t *err);
	/* Push out what was taken and ack what is finished (mq_consumer_ack),
	 * before a commit.  0, 1 the output ended, < 0 error.  NULL: none. */
	int (*flush)(void *ctx, mq_consumer_t *k, mq_err_t *err);
	/* The most a partition may commit beside its acked offset (e.g. what
	 * the reader of a pipe took and outlived).  NULL: acked alone. */
	uint64_t (*bound)(void *ctx, const mq_consumer_part_t *p);
	/* A partition (re)starts at offset at: forget what was pending for it.
	 * 0 or < 0.  NULL: nothing to do. */
	int (*start)(void *ctx, uint32_t ti, uint32_t p, const mq_consumer_part_t *part, mq_err_t *err);
	/* A partition is being taken away: finish what can be finished and
	 * drop the rest; 1 when nothing of it is running any more, 0 to be
	 * asked again (the engine keeps the session alive meanwhile and
	 * gives the partition up only then).  NULL: always 1. */
	int (*release)(void *ctx, mq_consumer_t *k, uint32_t ti, uint32_t p, mq_err_t *err);
	/* Before each commit (e.g. the pipe's two-tick rule): 1 when the
	 * output ended, else 0.  NULL: none. */
	int (*tick)(void *ctx);
	/* A watched descriptor (mq_consumer_opts_t.watch_fd) woke a wait:
	 * look at it.  1 when the output ended, 0 go on, < 0 error.  NULL:
	 * none. */
	int (*wake)(void *ctx, mq_consumer_t *k, mq_err_t *err);
} mq_consumer_sink_t;

typedef struct mq_consumer_opts {
	const char *const *topics; /* names or patterns, as given */
	uint32_t ntopics;
	const char *group;         /* NULL: no group, nothing committed */
	mq_offset_spec_t start;
	int exit_at_end, at_most_once, skip_damaged, verbose;
	/* Check producer sequences (seqcheck.h) of every record handed to the
	 * sink, each once: every gap and repeat is reported (report) and
	 * counted (mq_consumer_seq_counts). */
	int check_seq;
	mq_report_fn seq_report; /* check_seq findings (NULL: report) */
	/* Say (report) that a topic to follow does not exist yet. */
	int announce_waiting;
	uint64_t count;            /* 0: no limit */
	int64_t session_ms;        /* 0: 10 s */
	int64_t commit_ms;         /* how often commits go out while reading (0: 500 ms) */
	mq_report_fn report;       /* notices: a commit refused, joining again, damage skipped */
	void *report_ctx;
	const mq_consumer_sink_t *sink;
	void *sink_ctx;
	/* Waits also end when this descriptor has any of these events, or an
	 * error or hang-up (events 0: only those); the sink's wake looks. */
	int watch_fd; /* -1: none */
	short watch_events;
	/* Set by a signal handler: handing over stops at the next record
	 * (the client's calls see it too, through mq_client_opts_t). */
	volatile sig_atomic_t *interrupt;
} mq_consumer_opts_t;

/* Is s a topic pattern (holds * ? or [)? */
int mq_consumer_is_pattern(const char *s);
/* Check a topic pattern: 0 or -MQ_EINVAL with a message. */
int mq_consumer_check_pattern(const char *s, mq_err_t *err);

/* Find the topics, join the group (if any) and start the partitions.
 * The client is the caller's and outlives the consumer.  *out is set
 * even when this fails: close it. */
int mq_consumer_open(mq_client_t *c, const mq_consumer_opts_t *o, mq_consumer_t **out, mq_err_t *err);
void mq_consumer_close(mq_consumer_t *k); /* NULL ok */

/* One turn: heartbeat, refresh, fetch, hand records to the sink,
 * commit.  0 go on, 1 at the end (count reached, at the end with
 * exit_at_end, the output ended), < 0 error.  A step cut short by a
 * signal (the client's interrupt) returns 0: the caller checks its
 * flag. */
int mq_consumer_step(mq_consumer_t *k, mq_err_t *err);
/* Commit what may be committed now (the sink flushed first), then leave
 * the group.  0 or < 0 (with err; the group was left anyway). */
int mq_consumer_finish(mq_consumer_t *k, mq_err_t *err);
/* Commit what may be committed now, and keep the session alive (a
 * heartbeat when due): for a sink that waits on its output or on
 * commands.  0 or < 0. */
int mq_consumer_keep_alive(mq_consumer_t *k, mq_err_t *err);

/* The sink finished every record of topic ti, partition p before
 * offset `upto`.  -MQ_EINVAL past what was handed to it (nothing is
 * recorded), else 0.  Acks never move back. */
int mq_consumer_ack(mq_consumer_t *k, uint32_t ti, uint32_t p, uint64_t upto);
/* Ack everything handed over, on every partition (plain output after
 * a flush). */
void mq_consumer_ack_all(mq_consumer_t *k);
/* Hold a partition's fetches (held = 1) until released (held = 0):
 * for a sink whose queue of it is full. */
void mq_consumer_hold(mq_consumer_t *k, uint32_t ti, uint32_t p, int held);
/* Wake a step by this monotonic time at the latest (0: no deadline of
 * the caller's). */
void mq_consumer_wake_at(mq_consumer_t *k, int64_t mono_ms);

/* What check_seq found so far: gaps (and the sequences they miss),
 * repeats, and gaps in streams whose records carry a TTL (expiry may
 * explain them: reported, not counted as gaps); and how many records it
 * saw, and of them how many carried no producer sequence to check. */
typedef struct mq_consumer_seq_counts {
	uint64_t gaps, missing, repeats, ttl_gaps;
	uint64_t seen, unnumbered;
} mq_consumer_seq_counts_t;
mq_consumer_seq_counts_t mq_consumer_seq_counts(const mq_consumer_t *k);

/* Views. */
uint32_t mq_consumer_topics(const mq_consumer_t *k);
const char *mq_consumer_topic(const mq_consumer_t *k, uint32_t ti);
uint32_t mq_consumer_partitions(const mq_consumer_t *k, uint32_t ti);
const mq_consumer_part_t *mq_consumer_part(const mq_consumer_t *k, uint32_t ti, uint32_t p);
uint64_t mq_consumer_delivered(const mq_consumer_t *k); /* records handed to the sink */
uint64_t mq_consumer_commits(const mq_consumer_t *k);
int mq_consumer_in_group(const mq_consumer_t *k);      /* joined (a member id) */

#endif
