/*
 * group.h -- the consumer-group coordinator inside mq-serve: members,
 * partition assignment, sessions and committed offsets.
 *
 * Ownership rule: a partition has at most one owner.  When membership
 * changes the generation goes up and a target assignment is computed
 * (each topic's partitions dealt round-robin over the members that
 * subscribe to it, members sorted by id).  A partition moves to its new
 * target member only after the old owner acknowledged the generation
 * (it stopped reading it and committed) or its session expired.  A
 * member may fetch and commit only the partitions it owns.
 *
 * Committed offsets are appended to an internal log (DIR/state/offsets,
 * one record per commit: key "group\0topic\0partition", value the offset
 * in decimal) and replayed on start; the log is compacted by writing a
 * snapshot of the live offsets and deleting the segments before it.
 */
#ifndef MQ_GROUP_H
#define MQ_GROUP_H

#include <stdint.h>

#include "log.h"
#include "store.h"
#include "util.h"

#define MQ_MEMBER_MAX 64

typedef struct mq_groups mq_groups_t;

/* Lag history: a ring per (group, topic, partition), sampled by the
 * broker every --lag-interval (mq_groups_sample), saved now and then and
 * at a clean stop (mq_groups_history_save) and loaded on open. */
#define MQ_GROUP_HISTORY 30
typedef struct mq_lag_point {
	int64_t ms;        /* wall clock */
	int64_t committed; /* -1: none */
	uint64_t end;
} mq_lag_point_t;

/* One (topic, partition) of an assignment; topic points into the
 * coordinator and stays valid until the next call that changes groups. */
typedef struct mq_tp {
	const char *topic;
	uint32_t partition;
} mq_tp_t;

typedef struct mq_assignment {
	uint64_t generation;
	mq_tp_t *tp;
	uint32_t n, cap;
} mq_assignment_t;

void mq_assignment_free(mq_assignment_t *a);

/* Open the coordinator: replays the offsets log in state_dir/offsets
 * and loads the lag history.  The store gives partition counts of
 * subscribed topics.  Damage in either file is not refused: what comes
 * before it is kept, the file is rewritten without it, and report(ctx,
 * line) (may be NULL) says once which file, where, and what was lost. */
int mq_groups_open(const char *state_dir, const mq_log_opts_t *log_opts, mq_store_t *store, mq_report_fn report,
		   void *ctx, mq_groups_t **out, mq_err_t *err);
void mq_groups_close(mq_groups_t *g);

/* Join (member == "" : new member; its id is written to member_out). */
int mq_groups_join(mq_groups_t *g, const char *group, const char *const *topics, uint32_t ntopics,
		   const char *member, int64_t session_ms, int64_t now, char *member_out,
		   mq_assignment_t *out, mq_err_t *err);
/* -MQ_ENOENT when the member is unknown (expired or never joined). */
int mq_groups_heartbeat(mq_groups_t *g, const char *group, const char *member, uint64_t acked, int64_t now,
			mq_assignment_t *out, mq_err_t *err);
int mq_groups_leave(mq_groups_t *g, const char *group, const char *member, mq_err_t *err);
/* Does member own (topic, p)?  A NULL or empty group: no check (1). */
int mq_groups_owns(mq_groups_t *g, const char *group, const char *member, const char *topic, uint32_t p);

/* Record committed offsets (after checking ownership: -MQ_EBUSY). */
int mq_groups_commit(mq_groups_t *g, const char *group, const char *member, const char *topic,
		     const uint32_t *parts, const uint64_t *offsets, uint32_t n, mq_err_t *err);
/* Committed offset of (group, topic, p): 1 found, 0 none. */
int mq_groups_committed(mq_groups_t *g, const char *group, const char *topic, uint32_t p, uint64_t *offset);

/* Expire members whose session ran out; a topic's partition count may
 * have changed (call mq_groups_topic_changed).  Returns the number of
 * groups whose generation moved. */
int mq_groups_tick(mq_groups_t *g, int64_t now);
/* The earliest time at which mq_groups_tick would expire a member, or
 * INT64_MAX when no group has members: the broker sleeps until then. */
int64_t mq_groups_next_expiry(const mq_groups_t *g);
void mq_groups_topic_changed(mq_groups_t *g, const char *topic);
/* Current generation of a group (0 if none): parked fetches compare it. */
uint64_t mq_groups_generation(mq_groups_t *g, const char *group);

/* ---- administration ---- */

/* The program name a member gave in JOIN (for describe). */
void mq_groups_set_client(mq_groups_t *g, const char *group, const char *member, const char *client);
/* Names of the known groups (with members or committed offsets), sorted;
 * *names is malloc'd (free it), the strings stay valid until the next
 * call that changes groups. */
int mq_groups_names(mq_groups_t *g, const char ***names, uint32_t *n);
/* Whether the group exists: it has members or committed offsets (what
 * mq_groups_names lists). */
int mq_groups_exists(mq_groups_t *g, const char *group);
/* Live members of a group (0 when unknown). */
uint32_t mq_groups_live(mq_groups_t *g, const char *group);

typedef struct mq_member_view {
	const char *id, *client;
	int64_t idle_ms;
	uint32_t nowned;
} mq_member_view_t;
/* Members of group (malloc'd array, free it); n = 0 when none. */
int mq_groups_members(mq_groups_t *g, const char *group, int64_t now, mq_member_view_t **out, uint32_t *n);
/* Topics the group reads or has offsets on, sorted (malloc'd array). */
int mq_groups_topics(mq_groups_t *g, const char *group, const char ***out, uint32_t *n);
/* The member that owns (group, topic, p), or NULL. */
const char *mq_groups_owner(mq_groups_t *g, const char *group, const char *topic, uint32_t p);
/* History of (group, topic, p), oldest first, into out[MQ_GROUP_HISTORY]: count. */
uint32_t mq_groups_history(mq_groups_t *g, const char *group, const char *topic, uint32_t p, mq_lag_point_t *out);
/* Take one sample of every (group, topic, partition): end(ctx, topic, p)
 * gives the log end offset, or -1 when the partition does not exist. */
void mq_groups_sample(mq_groups_t *g, int64_t now_ms, int64_t (*end)(void *ctx, const char *topic, uint32_t p),
		      void *ctx);
/* Write the lag history to state_dir/lag-history (atomically), read back
 * by mq_groups_open, so a restart keeps the window. */
int mq_groups_history_save(mq_groups_t *g, mq_err_t *err);
/* Set offsets without a member (reset): -MQ_EBUSY while the group has
 * live members. */
int mq_groups_set_offsets(mq_groups_t *g, const char *group, const char *topic, const uint32_t *parts,
			  const uint64_t *offsets, uint32_t n, mq_err_t *err);
/* Forget a group and its offsets: -MQ_EBUSY with live members, -MQ_ENOENT unknown. */
int mq_groups_delete(mq_groups_t *g, const char *group, mq_err_t *err);
/* Groups with live members subscribed to topic: their number, names
 * ("a, b") written into buf. */
uint32_t mq_groups_topic_readers(mq_groups_t *g, const char *topic, char *buf, size_t size);
/* The topic was deleted: drop every group's offsets on it. */
int mq_groups_topic_deleted(mq_groups_t *g, const char *topic, mq_err_t *err);

/* The offsets log: synced with the broker's policy (group commit). */
int mq_groups_commit_log(mq_groups_t *g, int64_t now_mono, mq_err_t *err);

#endif
