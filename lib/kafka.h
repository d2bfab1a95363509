/*
 * kafka.h -- the Kafka backend: a Kafka-compatible cluster (Apache Kafka,
 * Redpanda, a managed service) named as kafka://HOST:PORT[,HOST:PORT...],
 * spoken to through librdkafka.
 *
 * librdkafka is optional twice over.  At build time: without its headers
 * (Debian's librdkafka-dev) this module is built without it and every
 * call says "kafka:// support not built".  At run time: librdkafka.so.1
 * is loaded on the first kafka:// call (dlopen), so programs that never
 * reach a Kafka cluster neither depend on it nor pay for loading it and
 * the libraries it pulls in (OpenSSL, SASL, zstd, ...).
 *
 * What is here is the producer side: records of mq batches produced one
 * by one with acks=all and the idempotent producer, delivery reports
 * counted through a callback, and partition counts from the cluster's
 * metadata.  Nothing here prints or exits; librdkafka's own log lines
 * are kept, the last one used to say why a connection failed.
 */
#ifndef MQ_KAFKA_H
#define MQ_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "util.h"

typedef struct mq_kafka mq_kafka_t;

#define MQ_KAFKA_ID_HEADER "mq.id" /* a record's id (mq-pub --id) travels as this header */

/* 1 if endpoint names a Kafka cluster ("kafka://..."). */
int mq_kafka_endpoint(const char *endpoint);

/* The partition Kafka's clients put a record with key[0..len) in, of
 * partitions: murmur2 of the key, as the Java client's default
 * partitioner and librdkafka's murmur2 ones. */
uint32_t mq_kafka_key_partition(const void *key, size_t len, uint32_t partitions);

/* Whether this build has Kafka support (librdkafka's headers were there). */
int mq_kafka_built(void);

/* A delivery report: opaque as given to mq_kafka_produce, ok or not
 * (why then says what librdkafka reported). */
typedef void (*mq_kafka_delivered_fn)(void *opaque, int ok, const char *why);

typedef struct mq_kafka_opts {
	const char *endpoint;  /* kafka://HOST:PORT[,HOST:PORT...] */
	const char *client_id; /* e.g. "mq-pub" */
	int64_t timeout_ms;    /* a record not acknowledged by then fails; <= 0 or INT64_MAX: never */
	mq_kafka_delivered_fn delivered;
	int verbose;           /* librdkafka's log lines to stderr (also with debug= in MQ_KAFKA_CONFIG) */
} mq_kafka_opts_t;

/* MQ_KAFKA_CONFIG: librdkafka settings for every handle, as kcat's -X,
 * separated by blanks ("security.protocol=SASL_SSL debug=cgrp,fetch"),
 * applied after mq's own, so they can change them. */
#define MQ_KAFKA_CONFIG_ENV "MQ_KAFKA_CONFIG"

/* Check the endpoint, find a bootstrap broker that accepts a TCP
 * connection (all refusing: -MQ_ECONNECT at once, "cannot connect to
 * kafka://...: connection refused (is the Kafka cluster running? ...)"),
 * load librdkafka and make a producer.  -MQ_EINVAL for an endpoint in
 * no valid form, -MQ_ENOTSUP without Kafka support (build or library). */
int mq_kafka_open(const mq_kafka_opts_t *o, mq_kafka_t **out, mq_err_t *err);
void mq_kafka_close(mq_kafka_t *k); /* NULL ok; what is unacknowledged is dropped */

/* The partition count of topic, from the cluster's metadata; create:
 * let the cluster make it on this first use (its auto-create setting
 * decides), else -MQ_ENOENT for a topic that does not exist. */
int mq_kafka_partitions(mq_kafka_t *k, const char *topic, int create, uint32_t *n, mq_err_t *err);

/* Produce every record of the mq batch batch[0..len) to topic,
 * partition (< 0: the cluster's default partitioner, murmur2 of the key
 * as Kafka's Java client; records without a key go to keyless, or when
 * that is < 0 too, to one the partitioner picks); each record's delivery
 * is reported with opaque.  A record's timestamp of 0 is librdkafka's to
 * set (the time it is handed over).  *queued: records handed over (the
 * rest, on an error, were not).  Waits while librdkafka's queue is full. */
int mq_kafka_produce(mq_kafka_t *k, const char *topic, int32_t partition, int32_t keyless, const uint8_t *batch,
		     size_t len, void *opaque, uint32_t *queued, mq_err_t *err);

/* Serve delivery reports, waiting up to wait_ms (< 0: until one comes)
 * for the first: the number served. */
int mq_kafka_poll(mq_kafka_t *k, int wait_ms);

/* A descriptor that becomes readable when reports wait (poll it with
 * others, then call mq_kafka_poll(k, 0)). */
int mq_kafka_fd(const mq_kafka_t *k);

/* ---- consuming (a consumer handle made on first use) ---- */

/* One record as consumed; pointers valid during the callback only.  The
 * header "mq.id" comes back as the id. */
typedef struct mq_kafka_msg {
	const char *topic;
	int32_t partition;
	int64_t offset, timestamp;
	const void *key, *value, *id; /* key, id NULL: none */
	size_t key_len, value_len, id_len;
	const mq_header_t *headers;
	uint32_t nheaders;
} mq_kafka_msg_t;

/* Every topic of the cluster (but its internal ones, "__..."): names
 * (each malloc'd) and partition counts, both arrays malloc'd. */
int mq_kafka_topics(mq_kafka_t *k, char ***names, uint32_t **parts, uint32_t *n, mq_err_t *err);

/* First and end offsets of topic's partition p (the end is the next
 * offset to be written); with time >= 0 also the first offset whose
 * timestamp is >= time (-1: none so late). */
int mq_kafka_offsets(mq_kafka_t *k, const char *topic, int32_t p, int64_t time, int64_t *start, int64_t *end,
		     int64_t *at, mq_err_t *err);

/* Read topics[i] partition parts[i] from offsets[i], for i < n: the
 * partitions read before and not named are dropped. */
int mq_kafka_assign(mq_kafka_t *k, const char *const *topics, const int32_t *parts, const int64_t *offsets,
		    uint32_t n, mq_err_t *err);

/* Hand what has arrived to take(ctx, m), waiting up to wait_ms (< 0: no
 * limit) for the first, and stopping past max_bytes: the records taken,
 * or < 0 (take's own return, or an error of the cluster). */
int mq_kafka_consume(mq_kafka_t *k, int wait_ms, size_t max_bytes, int (*take)(void *ctx, const mq_kafka_msg_t *m),
		     void *ctx, mq_err_t *err);

/* Readable when records wait for mq_kafka_consume; -1 before the first
 * mq_kafka_assign. */
int mq_kafka_consumer_fd(const mq_kafka_t *k);

/* ---- groups (Kafka's own protocol: the cluster assigns partitions) ---- */

typedef struct mq_kafka_tp {
	char *topic;
	int32_t partition;
} mq_kafka_tp_t;

/* Join group reading topics[0..n) with a session of session_ms (Kafka's
 * session.timeout.ms, kept within the 6 s to 30 min brokers allow) and
 * wait until deadline (mq_mono_ms) for the cluster's first assignment
 * to this member.  A process reads with one group at most. */
int mq_kafka_join(mq_kafka_t *k, const char *group, const char *const *topics, uint32_t n, int64_t session_ms,
		  int64_t deadline, mq_err_t *err);
/* What the group gave this member now (*own valid until the next
 * mq_kafka_consume), and a number that grows with each rebalance. */
uint64_t mq_kafka_assignment(const mq_kafka_t *k, const mq_kafka_tp_t **own, uint32_t *n);
/* The member id the group coordinator gave ("" before joining). */
int mq_kafka_member_id(mq_kafka_t *k, char *out, size_t n);
/* Commit the next offsets of topic's partitions parts[i] (synchronous):
 * -MQ_EBUSY when the group took them away meanwhile. */
int mq_kafka_commit(mq_kafka_t *k, const char *topic, const uint32_t *parts, const uint64_t *offsets, uint32_t n,
		    mq_err_t *err);
/* The group's committed offsets of topic's partitions [0, n): off[p], -1 none. */
int mq_kafka_committed(mq_kafka_t *k, const char *topic, int64_t *off, uint32_t n, mq_err_t *err);
/* Leave the group (its partitions go to the others at once). */
int mq_kafka_leave(mq_kafka_t *k);

/* The end offset (high watermark) of a partition being read, as the
 * last fetch response said it, else asked for; -1 when unknown. */
int64_t mq_kafka_cached_end(mq_kafka_t *k, const char *topic, int32_t p);

/* ---- administration (librdkafka's Admin API, 2.0 or later) ----
 * Every call waits up to the client's timeout (60 s at most); an
 * operation the cluster does not take (librdkafka's mock cluster takes
 * few) fails with the cluster's own reason. */

/* Start and end offsets of partitions parts[i] of topics[i], i < n, in
 * one request per leader (start[i] or end[i] -1 where unknown). */
int mq_kafka_watermarks(mq_kafka_t *k, const char *const *topics, const int32_t *parts, uint32_t n, int64_t *start,
			int64_t *end, mq_err_t *err);
/* The timestamp (ms since the epoch: the producer's CreateTime, or the
 * broker's LogAppendTime for topics set so) of the record at offset
 * offs[i] of partition parts[i] of topics[i], i < n, into ts[i]; -1
 * where no record came within the client's timeout (5 s at most), or
 * there is none (offs[i] < 0).  Reads them with one assignment (no
 * group), as mq-lag's age of the oldest unconsumed message. */
int mq_kafka_record_times(mq_kafka_t *k, const char *const *topics, const int32_t *parts, const int64_t *offs,
			  uint32_t n, int64_t *ts, mq_err_t *err);
/* group's committed offsets of those partitions: off[i], -1 none. */
int mq_kafka_group_offsets(mq_kafka_t *k, const char *group, const char *const *topics, const int32_t *parts,
			   uint32_t n, int64_t *off, mq_err_t *err);
/* Set them (a group with live members refuses: -MQ_EBUSY). */
int mq_kafka_group_alter(mq_kafka_t *k, const char *group, const char *const *topics, const int32_t *parts,
			 const int64_t *off, uint32_t n, mq_err_t *err);

typedef struct mq_kafka_member {
	char id[256], client[256], host[128];
	mq_kafka_tp_t *own; /* its assignment, malloc'd */
	uint32_t nown;
} mq_kafka_member_t;
typedef struct mq_kafka_group {
	char state[32]; /* "Stable", "Empty", "Dead" (no such group), ... */
	mq_kafka_member_t *members;
	uint32_t nmembers;
} mq_kafka_group_t;
/* The group's state and members (DescribeGroups); free with
 * mq_kafka_group_free.  -MQ_EPROTO when the cluster does not describe
 * groups. */
int mq_kafka_group_describe(mq_kafka_t *k, const char *group, mq_kafka_group_t *out, mq_err_t *err);
void mq_kafka_group_free(mq_kafka_group_t *g);
/* Parse a member's assignment as Kafka's consumer protocol encodes it
 * (buf[0..len), from the cluster: every count checked against the bytes
 * there): *out n (topic, partition), free with mq_kafka_tp_free.
 * -MQ_ECORRUPT for bytes cut short or malformed. */
#define MQ_KAFKA_ASSIGNED_MAX 100000 /* partitions one member may be assigned */
int mq_kafka_assignment_parse(const void *buf, size_t len, mq_kafka_tp_t **out, uint32_t *n, mq_err_t *err);
void mq_kafka_tp_free(mq_kafka_tp_t *v, uint32_t n);
/* Every consumer group's name (each and the array malloc'd). */
int mq_kafka_group_list(mq_kafka_t *k, char ***names, uint32_t *n, mq_err_t *err);
/* Delete group (its committed offsets): -MQ_EBUSY with live members,
 * -MQ_ENOENT when there is none. */
int mq_kafka_group_delete(mq_kafka_t *k, const char *group, mq_err_t *err);

/* Create topic with partitions (0: the cluster's default) and, where
 * >= 0, retention.ms and retention.bytes: -MQ_EEXIST when it exists. */
int mq_kafka_topic_create(mq_kafka_t *k, const char *topic, uint32_t partitions, int64_t retention_ms,
			  int64_t retention_bytes, mq_err_t *err);
/* -MQ_ENOENT when it does not exist. */
int mq_kafka_topic_delete(mq_kafka_t *k, const char *topic, mq_err_t *err);
/* Grow topic to n partitions (never shrinks: -MQ_EINVAL). */
int mq_kafka_topic_grow(mq_kafka_t *k, const char *topic, uint32_t n, mq_err_t *err);
/* topic's retention.ms and retention.bytes (-1: unlimited). */
int mq_kafka_topic_retention(mq_kafka_t *k, const char *topic, int64_t *ms, int64_t *bytes, mq_err_t *err);

#endif
