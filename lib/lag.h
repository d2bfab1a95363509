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
} mq_lag_eval_t;

void mq_lag_evaluate(const mq_group_row_t *row, int64_t now_ms, mq_lag_eval_t *out);
const char *mq_lag_status_name(mq_lag_status_t s); /* "OK", "LAGGING", "STALLED", "STOPPED" */

#endif
