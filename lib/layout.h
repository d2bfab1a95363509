/*
 * layout.h -- the offline walk of a data directory (store.h gives the
 * layout): what mq-admin verify and dump read without a broker.  The
 * live broker opens the same tree through store.c; this module only
 * reads and never takes the lock.
 *
 * A path given by a person may be a data directory (DIR/topics/...), a
 * topic directory (holds topic.meta) or a partition directory (holds
 * segment files); mq_layout_verify tells them apart the same way for
 * every caller.
 */
#ifndef MQ_LAYOUT_H
#define MQ_LAYOUT_H

#include "log.h"
#include "util.h"

typedef struct mq_layout_counts {
	int partitions; /* partition directories checked */
	int faults;     /* faults reported */
} mq_layout_counts_t;

/* Check everything below dir (any of the three kinds): topic names and
 * metadata, unexpected entries, and each partition with mq_log_verify.
 * report(ctx, msg) is called once per fault; *counts says how many
 * partitions and faults there were.  Returns 0 when the walk finished
 * (faults or not); a negative error when dir itself cannot be read or
 * the walk could not finish (out of memory): then the counts are only
 * what was seen, and the caller must not call the tree clean. */
int mq_layout_verify(const char *dir, mq_log_report_fn report, void *ctx, mq_layout_counts_t *counts,
		     mq_err_t *err);

/* The number of segment files in a partition directory (0: not a
 * partition directory); -MQ_ENOENT (missing), -MQ_EINVAL (not a
 * directory) or -MQ_EIO, with "'DIR': reason" in err. */
int mq_layout_segments(const char *dir, mq_err_t *err);

/* DIR/TOPIC/PARTITION (a person's shorthand) as DIR/topics/TOPIC/PARTITION
 * into out[n]: 0, or -MQ_EINVAL when path does not have that form or
 * does not fit. */
int mq_layout_partition_path(const char *path, char *out, size_t n, mq_err_t *err);

#endif
