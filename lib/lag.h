/*
 * lag.h -- the consumer-lag rules of mq-lag(1) as a pure function: one
 * (group, topic, partition) row with the history the broker sampled
 * every --lag-interval, in; lag, rate, time to drain and a status, out.
 *
 * The window is the ring of samples (MQ_LAG_HISTORY of them, oldest
 * first) followed by the present (the row's own committed and end
 * offsets, at now_ms).  The lag of a point is end - committed, where a
 * committed offset below the log start (messages deleted by retention)
 * counts as the start, and "no commit" counts as the start.
 *
 *   STOPPED  lag > 0 and no member owns the partition.
 *   STALLED  lag > 0, an owner, the ring is full, the committed offset
 *            was the same at every point of the window and the lag was
 *            above 0 at every point: work waited a whole window and
 *            nothing was committed.
 *   LAGGING  lag > 0, an owner, the ring is full, not STALLED, and the
 *            lag grew over the window: cut its points into three thirds
 *            (oldest to newest); every lag of the newest third is above
 *            every lag of the oldest (growth beats the ups and downs
 *            between commits) and the mean lag of each third is above
 *            the one before (a burst being drained is not growth).
 *   OK       everything else, also while the ring is not full yet (after
 *            a broker restart or for a new group: one window).
 *
 * rate: committed messages a second, from the oldest point with a commit
 * to the present; 0 when nothing was ever committed in the window; < 0
 * unknown (no history, no time between, or the offset moved back).
 * eta_s: lag / (rate - growth of the end offset over the same span); 0
 * when lag is 0; < 0 when that net rate is not above 0 or unknown, and
 * when STOPPED (a rate from before the member left drains nothing).
 *
 * age_s: how long the oldest message the group has not consumed has been
 * waiting, from the row's since_ms (its timestamp, or when a delayed
 * message became due) to the present; 0 when lag is 0 and when that
 * time lies ahead of the present (clocks of two hosts); < 0 unknown
 * (a broker that does not say, or a message it could not read).
 *
 * The trend (mq-lag --watch): mq_lag_series gives the lag of every point
 * of the window, and mq_lag_spark draws such a series as one character a
 * point in eight heights, scaled to its largest value: 0 is always the
 * lowest, the largest the highest, and a lag above 0 never the lowest,
 * so "caught up" and "a little behind" stay apart however large the
 * peak.  UTF-8 block elements (U+2581-2588) or ASCII "_.:-=+*#".
 */
#ifndef MQ_LAG_H
#define MQ_LAG_H

#include <stdint.h>

#include "client.h" /* mq_group_row_t, mq_lag_sample_t, MQ_LAG_HISTORY */

typedef enum mq_lag_status { MQ_LAG_OK, MQ_LAG_LAGGING, MQ_LAG_STALLED, MQ_LAG_STOPPED } mq_lag_status_t;

typedef struct mq_lag_eval {
	uint64_t lag;   /* end - committed (no commit: end - start) */
	double rate;    /* messages/s committed over the window; < 0 unknown */
	double eta_s;   /* seconds to drain at the net rate; < 0 never/unknown */
	mq_lag_status_t status;
	double age_s;   /* wait of the oldest unconsumed message; 0 when lag is 0; < 0 unknown */
} mq_lag_eval_t;

void mq_lag_evaluate(const mq_group_row_t *row, int64_t now_ms, mq_lag_eval_t *out);
const char *mq_lag_status_name(mq_lag_status_t s); /* "OK", "LAGGING", "STALLED", "STOPPED" */
/* A wait in whole seconds (s rounded down) as people read it: "42s",
 * "3m07s", "2h05m", "4d03h", ">99d" from 100 days on; "-" when s < 0
 * (unknown).  The AGE and ETA columns of mq-lag and mq-admin. */
void mq_lag_fmt_secs(char *b, size_t n, double s);

#define MQ_LAG_POINTS (MQ_LAG_HISTORY + 1) /* the samples and the present */
/* The lag at each point of the window, oldest first, into
 * out[MQ_LAG_POINTS]: the count. */
uint32_t mq_lag_series(const mq_group_row_t *row, uint64_t *out);
#define MQ_LAG_SPARK_LEVELS 8
/* Height (0 to MQ_LAG_SPARK_LEVELS - 1) of v in a series whose largest
 * value is max. */
int mq_lag_spark_level(uint64_t v, uint64_t max);
/* The sparkline of v[0, n) into buf (NUL-terminated, as many whole
 * points as fit in size): the number of points drawn, which is also its
 * width on a terminal. */
uint32_t mq_lag_spark(const uint64_t *v, uint32_t n, int utf8, char *buf, size_t size);

/* Lag history kept by the caller, for a broker that keeps none (a
 * Kafka cluster: mq-lag samples it itself).  mq_lag_remember adds each
 * row of groups g[0..n) as a sample at now_ms (the newest
 * MQ_LAG_HISTORY kept per group, topic and partition);
 * mq_lag_recall fills each row's history from what was remembered
 * before.  Rows are found by name, so groups and partitions may come and
 * go between samples. */
typedef struct mq_lag_memory mq_lag_memory_t;
mq_lag_memory_t *mq_lag_memory_new(void);
void mq_lag_memory_free(mq_lag_memory_t *m);
int mq_lag_remember(mq_lag_memory_t *m, const mq_group_info_t *g, uint32_t n, int64_t now_ms);
void mq_lag_recall(const mq_lag_memory_t *m, mq_group_info_t *g, uint32_t n);

#endif
