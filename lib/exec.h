/*
 * exec.h -- a command per message: mq-sub --exec.
 *
 * Messages are queued per slot (a partition); each slot runs its
 * messages one at a time in order, and at most `concurrency` slots run
 * at once.  A run is `/bin/sh -c CMD` with the value on standard input
 * (a memory file, so a large value never blocks) and the message in the
 * environment:
 *
 *   MQ_TOPIC MQ_PARTITION MQ_OFFSET MQ_KEY MQ_ID MQ_TIMESTAMP MQ_ATTEMPT
 *   MQ_HEADER_<NAME> for each header (NAME upper-cased, every byte
 *   outside A-Z 0-9 made '_'; a later header of the same NAME wins),
 *   MQ_HEADERS the number of headers.
 *
 * (A key, id or header value holding a NUL byte is cut there: the
 * environment cannot hold one.)  Exit status 0 is success.  A failure
 * (another status, a signal, or the timeout: SIGTERM to the run's
 * process group, SIGKILL 2 s later) is run again after a backoff
 * (exponential from backoff_min to backoff_max, with jitter: a random
 * point in the upper half), up to max_attempts runs; after the last the
 * message is dead, and the caller hears why (the last status and the
 * first line of its standard error) to dead-letter it.
 *
 * A run's standard output goes to out_fd in whole lines: lines of runs
 * at the same time never mix within a line (a last line without a
 * newline is written whole when the run ends).  Its standard error goes
 * to err_fd, each line prefixed with "TOPIC/PARTITION/OFFSET: ".
 *
 * Waiting is event-driven: mq_exec_fd is an epoll descriptor that is
 * readable when a run wrote something or ended (a pidfd per run);
 * mq_exec_deadline says when a backoff or a timeout falls due.
 * mq_exec_poll does what is ready and calls done() for each message
 * finished, in order within its slot.
 */
#ifndef MQ_EXEC_H
#define MQ_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "util.h"

typedef struct mq_exec mq_exec_t;

typedef struct mq_exec_opts {
	const char *cmd;
	uint32_t concurrency;   /* slots running at once (>= 1) */
	uint32_t max_attempts;  /* runs of one message (>= 1) */
	int64_t backoff_min_ms, backoff_max_ms;
	int64_t timeout_ms;     /* a run killed after this long; 0: never */
	int out_fd, err_fd;
} mq_exec_opts_t;

/* How a message ended. */
typedef struct mq_exec_result {
	uint32_t slot;
	uint64_t offset;
	const char *topic;
	uint32_t partition;
	int ok;              /* 1: a run exited 0; 0: dead after max_attempts */
	uint32_t attempts;
	char status[64];     /* "exit 3", "signal 9 (Killed)", "timeout after 2000 ms" */
	char first_err[512]; /* first line of the last run's standard error ("" if none) */
	/* the message, valid during the call (for a dead letter) */
	const mq_record_t *rec;
} mq_exec_result_t;

/* Called for each finished message; < 0 stops mq_exec_poll with that
 * error (the message stays unfinished). */
typedef int (*mq_exec_done_fn)(void *ctx, const mq_exec_result_t *r, mq_err_t *err);

int mq_exec_new(const mq_exec_opts_t *o, mq_exec_done_fn done, void *ctx, mq_exec_t **out, mq_err_t *err);
/* Kill every run (SIGKILL to its group) and wait for it; free.  NULL ok. */
void mq_exec_free(mq_exec_t *x);

/* Queue a copy of rec (of topic, partition) on slot. */
int mq_exec_push(mq_exec_t *x, uint32_t slot, const char *topic, uint32_t partition, const mq_record_t *rec,
		 mq_err_t *err);
/* Messages of slot waiting or running, and their bytes. */
size_t mq_exec_queued(const mq_exec_t *x, uint32_t slot);
size_t mq_exec_queued_bytes(const mq_exec_t *x, uint32_t slot);
/* Is a run of slot going on now? */
int mq_exec_running(const mq_exec_t *x, uint32_t slot);
/* Runs going on, and messages queued in all. */
uint32_t mq_exec_nrunning(const mq_exec_t *x);
size_t mq_exec_total(const mq_exec_t *x);
/* Drop what slot has queued and not started (a run going on stays). */
void mq_exec_drop(mq_exec_t *x, uint32_t slot);
/* Start no new run from now on (a stop): runs going on finish. */
void mq_exec_stop_starting(mq_exec_t *x);
/* SIGTERM (hard: SIGKILL) to every run going on. */
void mq_exec_kill(mq_exec_t *x, int hard);

/* The epoll descriptor to wait on (readable: call mq_exec_poll). */
int mq_exec_fd(const mq_exec_t *x);
/* Monotonic ms when a backoff or timeout falls due; 0: none. */
int64_t mq_exec_deadline(const mq_exec_t *x);
/* Do what is ready: read output, reap ended runs, call done(), start
 * what may start.  Waits up to wait_ms (0: not at all) for something to
 * be ready.  0, or < 0 (from done, or a failure to start a run). */
int mq_exec_poll(mq_exec_t *x, int wait_ms, mq_err_t *err);

/* Parse --backoff MIN[,MAX]. */
int mq_exec_parse_backoff(const char *s, int64_t *min_ms, int64_t *max_ms, mq_err_t *err);

#endif
