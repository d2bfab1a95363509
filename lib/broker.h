/*
 * broker.h -- mq-serve's engine: a single-threaded loop over ZeroMQ
 * ROUTER sockets that appends produced batches to the store, answers
 * long-poll fetches, coordinates consumer groups, and applies the fsync
 * policy once per loop turn (group commit: replies that promise
 * durability go out after the turn's fdatasync).
 */
#ifndef MQ_BROKER_H
#define MQ_BROKER_H

#include <signal.h>
#include <stdint.h>

#include "log.h"
#include "util.h"

#define MQ_LISTEN_MAX 16

typedef struct mq_broker mq_broker_t;

typedef struct mq_broker_opts {
	const char *data_dir;
	const char *listen[MQ_LISTEN_MAX];
	int nlisten;
	uint32_t partitions;        /* for topics created on first publish */
	mq_log_opts_t log;          /* fsync, segments, retention, max_record_bytes */
	int64_t retention_check_ms; /* how often retention runs (default 60 s) */
	int64_t lag_interval_ms;    /* how often group lag is sampled (default 10 s) */
	int64_t dedup_window_ms;    /* message ids remembered per topic (default 2 min) */
	uint64_t dedup_max_ids;     /* at most this many ids (default 1,000,000) */
	int64_t txn_timeout_ms;     /* first check of an undecided transaction (txn.h defaults) */
	int64_t txn_check_interval_ms; /* later checks */
	uint32_t txn_max_checks;    /* checks without a verdict before it is rolled back */
	/* CurveZMQ (zap.h): with curve_secret (the server's secret key, 40
	 * Z85 characters) every endpoint takes CURVE clients only; with
	 * curve_allow only keys in that directory, and with
	 * curve_allow_admin the keys there have the admin rights (deleting
	 * topics, adding partitions, resetting and deleting groups,
	 * defining shared buckets), which are then nobody else's. */
	const char *curve_secret;
	const char *curve_allow;
	const char *curve_allow_admin;
	/* Where the broker says what the operator must hear of, one line
	 * each without a newline (what, where, what to do): a damaged state
	 * file recovered up to its last good record, a full disk, too few
	 * descriptors, a failing disk.  NULL: nowhere. */
	mq_report_fn report;
	void *report_ctx;
} mq_broker_opts_t;

/* Open the data directory (lock), then bind every endpoint.  On failure
 * nothing stays bound or locked. */
int mq_broker_open(const mq_broker_opts_t *o, mq_broker_t **out, mq_err_t *err);
/* The endpoint as bound (a tcp port 0 resolved), for i < nlisten. */
const char *mq_broker_endpoint(const mq_broker_t *b, int i);
/* mq_broker_run also wakes when fd is readable (read empty then):
 * mq_cli_signal_fd(), so that a stop signal landing just before a long
 * wait (a parked fetch may wait 30 s) is not slept through. */
void mq_broker_wake_on(mq_broker_t *b, int fd);
/* mq_broker_run reads the CurveZMQ allow-lists again when *flag is
 * non-zero (SIGHUP), setting it back to 0 and reporting what is in
 * force; a list that cannot be read leaves the old ones in force. */
void mq_broker_reload_on(mq_broker_t *b, volatile sig_atomic_t *flag);
/* Serve until *stop becomes non-zero; then flush and return 0. */
int mq_broker_run(mq_broker_t *b, volatile sig_atomic_t *stop, mq_err_t *err);
void mq_broker_close(mq_broker_t *b);

#endif
