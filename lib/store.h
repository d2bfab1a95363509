/*
 * store.h -- the data directory: topics -> partitions, topic metadata,
 * name validation and the exclusive lock.
 *
 * Layout:
 *   DIR/mq.lock                  lock file (flock), holds the owner's pid
 *   DIR/format                   "mq-data 1\n": the directory's format version
 *   DIR/topics/NAME/topic.meta   key=value lines (partitions, retention_ms,
 *                                retention_bytes, created_ms); written to a
 *                                temporary file, fsynced, renamed into place
 *   DIR/topics/NAME/P/           one partition log (log.h), P = 0..partitions-1
 *   DIR/topics/.deleting~NAME~PID~N/  a topic being deleted ('~' is outside
 *                                the name alphabet); open removes leftovers
 *   DIR/state/                   broker state (consumer groups, dedup
 *                                windows); DIR/state/buckets holds the shared
 *                                bucket definitions (sbucket.h)
 *
 * Topics are opened lazily: mq_store_open reads only names and metadata;
 * a partition's files are opened on first use.
 */
#ifndef MQ_STORE_H
#define MQ_STORE_H

#include <stdint.h>

#include "log.h"
#include "util.h"

#define MQ_NAME_MAX 200
#define MQ_PARTITIONS_MAX 10000 /* partitions of one topic */
/* The longest data directory path: what the store makes below it (topic
 * name, partition, segment and temporary file names) must still fit in
 * PATH_MAX, so no path is ever cut short. */
#define MQ_DATA_DIR_MAX 3500

typedef struct mq_store mq_store_t;

typedef struct mq_topic_meta {
	uint32_t partitions;
	int64_t retention_ms;    /* <= 0: broker default */
	int64_t retention_bytes; /* <= 0: broker default */
	int64_t created_ms;
} mq_topic_meta_t;

/* Check a topic (or group, bucket) name: [A-Za-z0-9._-]{1,200}, not "."
 * or "..", not starting with "__" (reserved) unless allow_reserved.
 * 0 or -MQ_EINVAL with a message such as
 *   "topic 'a/b': invalid name (use A-Z a-z 0-9 . _ -)". what names the
 * kind of thing ("topic", "group"). */
int mq_name_check(const char *what, const char *name, int allow_reserved, mq_err_t *err);

/* Open (creating if missing) the data directory and take its lock.
 * -MQ_EBUSY if another process holds it: "data directory 'DIR' is in use
 * by pid N (stop that mq-serve, or use another -d DIR)".  defaults apply
 * to every partition (a topic's own retention overrides them); NULL means
 * mq_log_opts_default.  A non-empty directory without DIR/format is
 * refused (-MQ_EINVAL) without writing anything into it: it is not ours. */
int mq_store_open(const char *dir, const mq_log_opts_t *defaults, mq_store_t **out, mq_err_t *err);
/* Close every log (syncing per policy) and release the lock.  NULL ok. */
void mq_store_close(mq_store_t *st);

/* The store itself accepts reserved names (__...) for internal topics:
 * code that takes a name from a user checks it first with
 * mq_name_check(..., allow_reserved = 0).
 * Create a topic; -MQ_EEXIST if it exists.  partitions must be
 * 1-MQ_PARTITIONS_MAX;
 * created_ms <= 0 means now. */
int mq_store_topic_create(mq_store_t *st, const char *name, const mq_topic_meta_t *meta, mq_err_t *err);
/* Metadata of a topic; -MQ_ENOENT if it does not exist. */
int mq_store_topic_meta(mq_store_t *st, const char *name, mq_topic_meta_t *meta, mq_err_t *err);
/* Change retention, or grow partitions (never shrink: -MQ_EINVAL).
 * created_ms is kept; open logs get the new retention at once. */
int mq_store_topic_update(mq_store_t *st, const char *name, const mq_topic_meta_t *meta, mq_err_t *err);
/* Delete a topic and all its data. */
int mq_store_topic_delete(mq_store_t *st, const char *name, mq_err_t *err);
/* Names of all topics, sorted; *names is one allocation the caller
 * frees with free() (array of pointers followed by the strings). */
int mq_store_topic_list(mq_store_t *st, char ***names, int *count, mq_err_t *err);

/* The open log of one partition (opened on first use; owned by the
 * store, valid until the topic is deleted or the store closed).  Only
 * the mq_store_max_open logs used most recently hold file descriptors:
 * getting one more releases the descriptors of the least recently used
 * (mq_log_release), so a log is used right after getting it, not kept
 * aside across other mq_store_log calls for its descriptors' sake. */
int mq_store_log(mq_store_t *st, const char *topic, uint32_t partition, mq_log_t **log, mq_err_t *err);
/* The log of a partition if it was opened, else NULL; opens nothing. */
mq_log_t *mq_store_log_peek(mq_store_t *st, const char *topic, uint32_t partition);
/* How many logs may hold descriptors at once (from RLIMIT_NOFILE at open). */
int mq_store_max_open(const mq_store_t *st);

/* Run mq_log_commit on every open log (group commit, end of a loop
 * turn).  mq_store_retain runs mq_log_retain on every open log (the
 * caller decides when its time has come) and returns the number of
 * segments deleted.  Both go on past a failing log and return the first
 * error. */
int mq_store_commit(mq_store_t *st, int64_t now_mono_ms, mq_err_t *err);
/* How many partition syncs mq_store_commit made so far: with group
 * commit, one per partition and turn however many batches it took. */
uint64_t mq_store_syncs(const mq_store_t *st);
/* How many times a topic was created, changed (partitions, retention) or
 * deleted since mq_store_open: what a reader of the topic list compares
 * to know whether it is still current. */
uint64_t mq_store_changes(const mq_store_t *st);
int mq_store_retain(mq_store_t *st, int64_t now_ms, mq_err_t *err);

/* Path of the data directory (as given). */
const char *mq_store_dir(const mq_store_t *st);

#endif
