/*
 * kafka.c -- the Kafka backend's producer side (see kafka.h).
 *
 * librdkafka is reached through a table of its functions filled by
 * dlsym on first use; its header gives only the types.  A record keeps
 * what mq gave it: key (none and empty stay apart), value, timestamp,
 * headers; an mq record id travels as the header "mq.id" (Kafka has no
 * field for it; the idempotent producer is what drops a retry there).
 */
#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mq_kafka_endpoint(const char *ep)
{
	return ep && !strncmp(ep, "kafka://", 8);
}

/* Kafka's murmur2 (the Java client's Utils.murmur2, librdkafka's
 * rd_murmur2): 32-bit words little-endian, seed 0x9747b28c. */
uint32_t mq_kafka_key_partition(const void *key, size_t len, uint32_t partitions)
{
	const uint8_t *p = key;
	const uint32_t m = 0x5bd1e995;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t i = 0;
	for (; i + 4 <= len; i += 4) {
		uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len & 3) {
	case 3:
		h ^= (uint32_t)p[i + 2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)p[i + 1] << 8;
		/* fall through */
	case 1:
		h ^= p[i];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return partitions ? (h & 0x7fffffff) % partitions : 0;
}

/* Kafka's ConsumerProtocol assignment: int16 version, int32 count of
 * topics, each an int16-long name and an int32 count of int32
 * partitions; user data after it is not read.  Big-endian. */
static int rd16(const uint8_t *p, size_t len, size_t *at, int16_t *v)
{
	if (len - *at < 2)
		return -1;
	*v = (int16_t)(p[*at] << 8 | p[*at + 1]);
	*at += 2;
	return 0;
}

static int rd32(const uint8_t *p, size_t len, size_t *at, int32_t *v)
{
	if (len - *at < 4)
		return -1;
	*v = (int32_t)((uint32_t)p[*at] << 24 | (uint32_t)p[*at + 1] << 16 | (uint32_t)p[*at + 2] << 8 | p[*at + 3]);
	*at += 4;
	return 0;
}

int mq_kafka_assignment_parse(const void *buf, size_t len, mq_kafka_tp_t **out, uint32_t *n, mq_err_t *err)
{
	const uint8_t *p = buf;
	size_t at = 0;
	int16_t version, l;
	int32_t topics, parts, part = 0;
	*out = NULL, *n = 0;
	if (!len)
		return 0; /* a member not assigned yet */
	if (rd16(p, len, &at, &version) || version < 0 || rd32(p, len, &at, &topics) || topics < 0)
		goto bad;
	/* Kafka's own limits: names of 249 bytes at most, and a member
	 * assigned more partitions than any cluster holds is no assignment
	 * (each one costs a copy of its name here) */
	/* each topic takes at least 6 bytes, each partition 4: counts are
	 * checked against what is there before anything is allocated */
	for (int32_t t = 0; t < topics; t++) {
		if (rd16(p, len, &at, &l) || l <= 0 || l > 249 || len - at < (size_t)l)
			goto bad;
		const char *name = (const char *)p + at;
		at += (size_t)l;
		if (rd32(p, len, &at, &parts) || parts < 0 || (len - at) / 4 < (size_t)parts ||
		    *n + (uint32_t)parts > MQ_KAFKA_ASSIGNED_MAX)
			goto bad;
		mq_kafka_tp_t *v = realloc(*out, (*n + (size_t)parts + 1) * sizeof *v);
		if (!v) {
			mq_kafka_tp_free(*out, *n);
			*out = NULL, *n = 0;
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		}
		*out = v;
		for (int32_t i = 0; i < parts; i++) {
			rd32(p, len, &at, &part);
			if (!(v[*n].topic = malloc((size_t)l + 1))) {
				mq_kafka_tp_free(*out, *n);
				*out = NULL, *n = 0;
				return mq_err_set(err, MQ_ENOMEM, "out of memory");
			}
			memcpy(v[*n].topic, name, (size_t)l);
			v[*n].topic[l] = 0;
			v[(*n)++].partition = part;
		}
	}
	return 0;
bad:
	mq_kafka_tp_free(*out, *n);
	*out = NULL, *n = 0;
	return mq_err_set(err, MQ_ECORRUPT, "a member's assignment of %zu bytes is cut short or malformed at byte %zu",
			  len, at);
}

void mq_kafka_tp_free(mq_kafka_tp_t *v, uint32_t n)
{
	for (uint32_t i = 0; v && i < n; i++)
		free(v[i].topic);
	free(v);
}

#ifndef MQ_HAVE_RDKAFKA

int mq_kafka_built(void)
{
	return 0;
}

static int not_built(mq_err_t *err)
{
	return mq_err_set(err, MQ_EINVAL, "kafka:// support not built (librdkafka-dev was missing when mq was built: "
			  "install it, e.g. with 'make bench-deps', and build mq again)");
}

int mq_kafka_open(const mq_kafka_opts_t *o, mq_kafka_t **out, mq_err_t *err)
{
	(void)o;
	*out = NULL;
	return not_built(err);
}

void mq_kafka_close(mq_kafka_t *k)
{
	(void)k;
}

int mq_kafka_partitions(mq_kafka_t *k, const char *topic, int create, uint32_t *n, mq_err_t *err)
{
	(void)k, (void)topic, (void)create, (void)n;
	return not_built(err);
}

int mq_kafka_produce(mq_kafka_t *k, const char *topic, int32_t partition, int32_t keyless, const uint8_t *batch,
		     size_t len, void *opaque, uint32_t *queued, mq_err_t *err)
{
	(void)k, (void)topic, (void)partition, (void)keyless, (void)batch, (void)len, (void)opaque;
	*queued = 0;
	return not_built(err);
}

int mq_kafka_poll(mq_kafka_t *k, int wait_ms)
{
	(void)k, (void)wait_ms;
	return 0;
}

int mq_kafka_fd(const mq_kafka_t *k)
{
	(void)k;
	return -1;
}

int mq_kafka_topics(mq_kafka_t *k, char ***names, uint32_t **parts, uint32_t *n, mq_err_t *err)
{
	(void)k, (void)names, (void)parts, (void)n;
	return not_built(err);
}

int mq_kafka_offsets(mq_kafka_t *k, const char *topic, int32_t p, int64_t time, int64_t *start, int64_t *end,
		     int64_t *at, mq_err_t *err)
{
	(void)k, (void)topic, (void)p, (void)time, (void)start, (void)end, (void)at;
	return not_built(err);
}

int mq_kafka_assign(mq_kafka_t *k, const char *const *topics, const int32_t *parts, const int64_t *offsets,
		    uint32_t n, mq_err_t *err)
{
	(void)k, (void)topics, (void)parts, (void)offsets, (void)n;
	return not_built(err);
}

int mq_kafka_consume(mq_kafka_t *k, int wait_ms, size_t max_bytes, int (*take)(void *ctx, const mq_kafka_msg_t *m),
		     void *ctx, mq_err_t *err)
{
	(void)k, (void)wait_ms, (void)max_bytes, (void)take, (void)ctx;
	return not_built(err);
}

int mq_kafka_consumer_fd(const mq_kafka_t *k)
{
	(void)k;
	return -1;
}

int64_t mq_kafka_cached_end(mq_kafka_t *k, const char *topic, int32_t p)
{
	(void)k, (void)topic, (void)p;
	return -1;
}

int mq_kafka_join(mq_kafka_t *k, const char *group, const char *const *topics, uint32_t n, int64_t session_ms,
		  int64_t deadline, mq_err_t *err)
{
	(void)k, (void)group, (void)topics, (void)n, (void)session_ms, (void)deadline;
	return not_built(err);
}

uint64_t mq_kafka_assignment(const mq_kafka_t *k, const mq_kafka_tp_t **own, uint32_t *n)
{
	(void)k;
	*own = NULL;
	*n = 0;
	return 0;
}

int mq_kafka_member_id(mq_kafka_t *k, char *out, size_t n)
{
	(void)k;
	snprintf(out, n, "%s", "");
	return 0;
}

int mq_kafka_commit(mq_kafka_t *k, const char *topic, const uint32_t *parts, const uint64_t *offsets, uint32_t n,
		    mq_err_t *err)
{
	(void)k, (void)topic, (void)parts, (void)offsets, (void)n;
	return not_built(err);
}

int mq_kafka_committed(mq_kafka_t *k, const char *topic, int64_t *off, uint32_t n, mq_err_t *err)
{
	(void)k, (void)topic, (void)off, (void)n;
	return not_built(err);
}

int mq_kafka_leave(mq_kafka_t *k)
{
	(void)k;
	return 0;
}

int mq_kafka_watermarks(mq_kafka_t *k, const char *const *topics, const int32_t *parts, uint32_t n, int64_t *start,
			int64_t *end, mq_err_t *err)
{
	(void)k, (void)topics, (void)parts, (void)n, (void)start, (void)end;
	return not_built(err);
}

int mq_kafka_group_offsets(mq_kafka_t *k, const char *group, const char *const *topics, const int32_t *parts,
			   uint32_t n, int64_t *off, mq_err_t *err)
{
	(void)k, (void)group, (void)topics, (void)parts, (void)n, (void)off;
	return not_built(err);
}

int mq_kafka_record_times(mq_kafka_t *k, const char *const *topics, const int32_t *parts, const int64_t *offs,
			  uint32_t n, int64_t *ts, mq_err_t *err)
{
	(void)k, (void)topics, (void)parts, (void)offs;
	for (uint32_t i = 0; i < n; i++)
		ts[i] = -1;
	return not_built(err);
}

int mq_kafka_group_alter(mq_kafka_t *k, const char *group, const char *const *topics, const int32_t *parts,
			 const int64_t *off, uint32_t n, mq_err_t *err)
{
	(void)k, (void)group, (void)topics, (void)parts, (void)off, (void)n;
	return not_built(err);
}

int mq_kafka_group_describe(mq_kafka_t *k, const char *group, mq_kafka_group_t *out, mq_err_t *err)
{
	(void)k, (void)group;
	memset(out, 0, sizeof *out);
	return not_built(err);
}

void mq_kafka_group_free(mq_kafka_group_t *g)
{
	(void)g;
}

int mq_kafka_group_list(mq_kafka_t *k, char ***names, uint32_t *n, mq_err_t *err)
{
	(void)k;
	*names = NULL, *n = 0;
	return not_built(err);
}

int mq_kafka_group_delete(mq_kafka_t *k, const char *group, mq_err_t *err)
{
	(void)k, (void)group;
	return not_built(err);
}

int mq_kafka_topic_create(mq_kafka_t *k, const char *topic, uint32_t partitions, int64_t retention_ms,
			  int64_t retention_bytes, mq_err_t *err)
{
	(void)k, (void)topic, (void)partitions, (void)retention_ms, (void)retention_bytes;
	return not_built(err);
}

int mq_kafka_topic_delete(mq_kafka_t *k, const char *topic, mq_err_t *err)
{
	(void)k, (void)topic;
	return not_built(err);
}

int mq_kafka_topic_grow(mq_kafka_t *k, const char *topic, uint32_t n, mq_err_t *err)
{
	(void)k, (void)topic, (void)n;
	return not_built(err);
}

int mq_kafka_topic_retention(mq_kafka_t *k, const char *topic, int64_t *ms, int64_t *bytes, mq_err_t *err)
{
	(void)k, (void)topic;
	*ms = *bytes = -1;
	return not_built(err);
}

#else

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <unistd.h>

#include "batch.h"
#include "zmtp.h"

#define SONAME "librdkafka.so.1"
#define METADATA_TRIES 20 /* a topic made on first use shows up after a round or two */

/* Each function: return type, name, parameters. */
#define RDK_FUNCS(X)                                                                                            \
	X(const char *, rd_kafka_version_str, (void))                                                           \
	X(rd_kafka_conf_t *, rd_kafka_conf_new, (void))                                                         \
	X(rd_kafka_conf_res_t, rd_kafka_conf_set, (rd_kafka_conf_t *, const char *, const char *, char *, size_t)) \
	X(void, rd_kafka_conf_destroy, (rd_kafka_conf_t *))                                                     \
	X(void, rd_kafka_conf_set_opaque, (rd_kafka_conf_t *, void *))                                          \
	X(void, rd_kafka_conf_set_dr_msg_cb,                                                                    \
	  (rd_kafka_conf_t *, void (*)(rd_kafka_t *, const rd_kafka_message_t *, void *)))                     \
	X(void, rd_kafka_conf_set_log_cb, (rd_kafka_conf_t *, void (*)(const rd_kafka_t *, int, const char *, const char *))) \
	X(void, rd_kafka_conf_set_error_cb, (rd_kafka_conf_t *, void (*)(rd_kafka_t *, int, const char *, void *))) \
	X(rd_kafka_t *, rd_kafka_new, (rd_kafka_type_t, rd_kafka_conf_t *, char *, size_t))                    \
	X(void, rd_kafka_destroy, (rd_kafka_t *))                                                               \
	X(void *, rd_kafka_opaque, (const rd_kafka_t *))                                                        \
	X(int, rd_kafka_poll, (rd_kafka_t *, int))                                                              \
	X(rd_kafka_resp_err_t, rd_kafka_purge, (rd_kafka_t *, int))                                             \
	X(rd_kafka_error_t *, rd_kafka_produceva, (rd_kafka_t *, const rd_kafka_vu_t *, size_t))               \
	X(int, rd_kafka_produce_batch, (rd_kafka_topic_t *, int32_t, int, rd_kafka_message_t *, int))           \
	X(rd_kafka_resp_err_t, rd_kafka_error_code, (const rd_kafka_error_t *))                                 \
	X(const char *, rd_kafka_error_string, (const rd_kafka_error_t *))                                      \
	X(void, rd_kafka_error_destroy, (rd_kafka_error_t *))                                                   \
	X(const char *, rd_kafka_err2str, (rd_kafka_resp_err_t))                                                \
	X(rd_kafka_topic_t *, rd_kafka_topic_new, (rd_kafka_t *, const char *, rd_kafka_topic_conf_t *))        \
	X(void, rd_kafka_topic_destroy, (rd_kafka_topic_t *))                                                   \
	X(rd_kafka_resp_err_t, rd_kafka_metadata,                                                               \
	  (rd_kafka_t *, int, rd_kafka_topic_t *, const struct rd_kafka_metadata **, int))                     \
	X(void, rd_kafka_metadata_destroy, (const struct rd_kafka_metadata *))                                  \
	X(rd_kafka_queue_t *, rd_kafka_queue_get_main, (rd_kafka_t *))                                          \
	X(void, rd_kafka_queue_io_event_enable, (rd_kafka_queue_t *, int, const void *, size_t))                \
	X(void, rd_kafka_queue_destroy, (rd_kafka_queue_t *))                                                   \
	X(rd_kafka_headers_t *, rd_kafka_headers_new, (size_t))                                                 \
	X(rd_kafka_resp_err_t, rd_kafka_header_add, (rd_kafka_headers_t *, const char *, ssize_t, const void *, ssize_t)) \
	X(void, rd_kafka_headers_destroy, (rd_kafka_headers_t *))                                               \
	X(rd_kafka_topic_partition_list_t *, rd_kafka_topic_partition_list_new, (int))                          \
	X(void, rd_kafka_topic_partition_list_destroy, (rd_kafka_topic_partition_list_t *))                     \
	X(rd_kafka_topic_partition_t *, rd_kafka_topic_partition_list_add,                                      \
	  (rd_kafka_topic_partition_list_t *, const char *, int32_t))                                           \
	X(rd_kafka_resp_err_t, rd_kafka_assign, (rd_kafka_t *, const rd_kafka_topic_partition_list_t *))        \
	X(rd_kafka_message_t *, rd_kafka_consumer_poll, (rd_kafka_t *, int))                                    \
	X(ssize_t, rd_kafka_consume_batch_queue, (rd_kafka_queue_t *, int, rd_kafka_message_t **, size_t))      \
	X(void, rd_kafka_message_destroy, (rd_kafka_message_t *))                                               \
	X(rd_kafka_resp_err_t, rd_kafka_message_headers, (const rd_kafka_message_t *, rd_kafka_headers_t **))   \
	X(rd_kafka_resp_err_t, rd_kafka_header_get_all,                                                         \
	  (const rd_kafka_headers_t *, size_t, const char **, const void **, size_t *))                         \
	X(int64_t, rd_kafka_message_timestamp, (const rd_kafka_message_t *, rd_kafka_timestamp_type_t *))      \
	X(const char *, rd_kafka_topic_name, (const rd_kafka_topic_t *))                                        \
	X(rd_kafka_resp_err_t, rd_kafka_poll_set_consumer, (rd_kafka_t *))                                      \
	X(rd_kafka_queue_t *, rd_kafka_queue_get_consumer, (rd_kafka_t *))                                      \
	X(rd_kafka_resp_err_t, rd_kafka_consumer_close, (rd_kafka_t *))                                         \
	X(rd_kafka_resp_err_t, rd_kafka_query_watermark_offsets,                                                \
	  (rd_kafka_t *, const char *, int32_t, int64_t *, int64_t *, int))                                     \
	X(rd_kafka_resp_err_t, rd_kafka_get_watermark_offsets,                                                  \
	  (rd_kafka_t *, const char *, int32_t, int64_t *, int64_t *))                                          \
	X(rd_kafka_resp_err_t, rd_kafka_offsets_for_times, (rd_kafka_t *, rd_kafka_topic_partition_list_t *, int)) \
	X(void, rd_kafka_conf_set_rebalance_cb,                                                                 \
	  (rd_kafka_conf_t *,                                                                                   \
	   void (*)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *, void *)))             \
	X(rd_kafka_resp_err_t, rd_kafka_subscribe, (rd_kafka_t *, const rd_kafka_topic_partition_list_t *))     \
	X(rd_kafka_resp_err_t, rd_kafka_unsubscribe, (rd_kafka_t *))                                            \
	X(rd_kafka_resp_err_t, rd_kafka_commit, (rd_kafka_t *, const rd_kafka_topic_partition_list_t *, int))   \
	X(rd_kafka_resp_err_t, rd_kafka_committed, (rd_kafka_t *, rd_kafka_topic_partition_list_t *, int))      \
	X(char *, rd_kafka_memberid, (const rd_kafka_t *))                                                      \
	X(rd_kafka_resp_err_t, rd_kafka_list_groups,                                                            \
	  (rd_kafka_t *, const char *, const struct rd_kafka_group_list **, int))                               \
	X(void, rd_kafka_group_list_destroy, (const struct rd_kafka_group_list *))                              \
	X(void, rd_kafka_mem_free, (rd_kafka_t *, void *))

/* The Admin API (librdkafka 2.0): resolved apart, so that reading and
 * writing work with an older library. */
#define RDK_ADMIN_FUNCS(X)                                                                                      \
	X(rd_kafka_queue_t *, rd_kafka_queue_new, (rd_kafka_t *))                                               \
	X(rd_kafka_event_t *, rd_kafka_queue_poll, (rd_kafka_queue_t *, int))                                   \
	X(void, rd_kafka_event_destroy, (rd_kafka_event_t *))                                                   \
	X(rd_kafka_resp_err_t, rd_kafka_event_error, (rd_kafka_event_t *))                                      \
	X(const char *, rd_kafka_event_error_string, (rd_kafka_event_t *))                                      \
	X(rd_kafka_AdminOptions_t *, rd_kafka_AdminOptions_new, (rd_kafka_t *, rd_kafka_admin_op_t))            \
	X(void, rd_kafka_AdminOptions_destroy, (rd_kafka_AdminOptions_t *))                                     \
	X(rd_kafka_resp_err_t, rd_kafka_AdminOptions_set_request_timeout,                                       \
	  (rd_kafka_AdminOptions_t *, int, char *, size_t))                                                     \
	X(rd_kafka_resp_err_t, rd_kafka_AdminOptions_set_operation_timeout,                                     \
	  (rd_kafka_AdminOptions_t *, int, char *, size_t))                                                     \
	X(const rd_kafka_error_t *, rd_kafka_group_result_error, (const rd_kafka_group_result_t *))             \
	X(const rd_kafka_topic_partition_list_t *, rd_kafka_group_result_partitions,                            \
	  (const rd_kafka_group_result_t *))                                                                    \
	X(rd_kafka_resp_err_t, rd_kafka_topic_result_error, (const rd_kafka_topic_result_t *))                  \
	X(const char *, rd_kafka_topic_result_error_string, (const rd_kafka_topic_result_t *))                  \
	X(rd_kafka_ListConsumerGroupOffsets_t *, rd_kafka_ListConsumerGroupOffsets_new,                         \
	  (const char *, const rd_kafka_topic_partition_list_t *))                                              \
	X(void, rd_kafka_ListConsumerGroupOffsets_destroy, (rd_kafka_ListConsumerGroupOffsets_t *))             \
	X(void, rd_kafka_ListConsumerGroupOffsets,                                                              \
	  (rd_kafka_t *, rd_kafka_ListConsumerGroupOffsets_t **, size_t, const rd_kafka_AdminOptions_t *,       \
	   rd_kafka_queue_t *))                                                                                 \
	X(const rd_kafka_ListConsumerGroupOffsets_result_t *, rd_kafka_event_ListConsumerGroupOffsets_result,   \
	  (rd_kafka_event_t *))                                                                                 \
	X(const rd_kafka_group_result_t **, rd_kafka_ListConsumerGroupOffsets_result_groups,                    \
	  (const rd_kafka_ListConsumerGroupOffsets_result_t *, size_t *))                                       \
	X(rd_kafka_AlterConsumerGroupOffsets_t *, rd_kafka_AlterConsumerGroupOffsets_new,                       \
	  (const char *, const rd_kafka_topic_partition_list_t *))                                              \
	X(void, rd_kafka_AlterConsumerGroupOffsets_destroy, (rd_kafka_AlterConsumerGroupOffsets_t *))           \
	X(void, rd_kafka_AlterConsumerGroupOffsets,                                                             \
	  (rd_kafka_t *, rd_kafka_AlterConsumerGroupOffsets_t **, size_t, const rd_kafka_AdminOptions_t *,      \
	   rd_kafka_queue_t *))                                                                                 \
	X(const rd_kafka_AlterConsumerGroupOffsets_result_t *, rd_kafka_event_AlterConsumerGroupOffsets_result, \
	  (rd_kafka_event_t *))                                                                                 \
	X(const rd_kafka_group_result_t **, rd_kafka_AlterConsumerGroupOffsets_result_groups,                   \
	  (const rd_kafka_AlterConsumerGroupOffsets_result_t *, size_t *))                                      \
	X(rd_kafka_DeleteGroup_t *, rd_kafka_DeleteGroup_new, (const char *))                                   \
	X(void, rd_kafka_DeleteGroup_destroy, (rd_kafka_DeleteGroup_t *))                                       \
	X(void, rd_kafka_DeleteGroups,                                                                          \
	  (rd_kafka_t *, rd_kafka_DeleteGroup_t **, size_t, const rd_kafka_AdminOptions_t *, rd_kafka_queue_t *)) \
	X(const rd_kafka_DeleteGroups_result_t *, rd_kafka_event_DeleteGroups_result, (rd_kafka_event_t *))     \
	X(const rd_kafka_group_result_t **, rd_kafka_DeleteGroups_result_groups,                                \
	  (const rd_kafka_DeleteGroups_result_t *, size_t *))                                                   \
	X(rd_kafka_NewTopic_t *, rd_kafka_NewTopic_new, (const char *, int, int, char *, size_t))               \
	X(void, rd_kafka_NewTopic_destroy, (rd_kafka_NewTopic_t *))                                             \
	X(rd_kafka_resp_err_t, rd_kafka_NewTopic_set_config, (rd_kafka_NewTopic_t *, const char *, const char *)) \
	X(void, rd_kafka_CreateTopics,                                                                          \
	  (rd_kafka_t *, rd_kafka_NewTopic_t **, size_t, const rd_kafka_AdminOptions_t *, rd_kafka_queue_t *))  \
	X(const rd_kafka_CreateTopics_result_t *, rd_kafka_event_CreateTopics_result, (rd_kafka_event_t *))     \
	X(const rd_kafka_topic_result_t **, rd_kafka_CreateTopics_result_topics,                                \
	  (const rd_kafka_CreateTopics_result_t *, size_t *))                                                   \
	X(rd_kafka_DeleteTopic_t *, rd_kafka_DeleteTopic_new, (const char *))                                   \
	X(void, rd_kafka_DeleteTopic_destroy, (rd_kafka_DeleteTopic_t *))                                       \
	X(void, rd_kafka_DeleteTopics,                                                                          \
	  (rd_kafka_t *, rd_kafka_DeleteTopic_t **, size_t, const rd_kafka_AdminOptions_t *, rd_kafka_queue_t *)) \
	X(const rd_kafka_DeleteTopics_result_t *, rd_kafka_event_DeleteTopics_result, (rd_kafka_event_t *))     \
	X(const rd_kafka_topic_result_t **, rd_kafka_DeleteTopics_result_topics,                                \
	  (const rd_kafka_DeleteTopics_result_t *, size_t *))                                                   \
	X(rd_kafka_NewPartitions_t *, rd_kafka_NewPartitions_new, (const char *, size_t, char *, size_t))       \
	X(void, rd_kafka_NewPartitions_destroy, (rd_kafka_NewPartitions_t *))                                   \
	X(void, rd_kafka_CreatePartitions,                                                                      \
	  (rd_kafka_t *, rd_kafka_NewPartitions_t **, size_t, const rd_kafka_AdminOptions_t *, rd_kafka_queue_t *)) \
	X(const rd_kafka_CreatePartitions_result_t *, rd_kafka_event_CreatePartitions_result, (rd_kafka_event_t *)) \
	X(const rd_kafka_topic_result_t **, rd_kafka_CreatePartitions_result_topics,                            \
	  (const rd_kafka_CreatePartitions_result_t *, size_t *))                                               \
	X(rd_kafka_ConfigResource_t *, rd_kafka_ConfigResource_new, (rd_kafka_ResourceType_t, const char *))    \
	X(void, rd_kafka_ConfigResource_destroy, (rd_kafka_ConfigResource_t *))                                 \
	X(void, rd_kafka_DescribeConfigs,                                                                       \
	  (rd_kafka_t *, rd_kafka_ConfigResource_t **, size_t, const rd_kafka_AdminOptions_t *, rd_kafka_queue_t *)) \
	X(const rd_kafka_DescribeConfigs_result_t *, rd_kafka_event_DescribeConfigs_result, (rd_kafka_event_t *)) \
	X(const rd_kafka_ConfigResource_t **, rd_kafka_DescribeConfigs_result_resources,                        \
	  (const rd_kafka_DescribeConfigs_result_t *, size_t *))                                                \
	X(rd_kafka_resp_err_t, rd_kafka_ConfigResource_error, (const rd_kafka_ConfigResource_t *))              \
	X(const char *, rd_kafka_ConfigResource_error_string, (const rd_kafka_ConfigResource_t *))              \
	X(const rd_kafka_ConfigEntry_t **, rd_kafka_ConfigResource_configs,                                     \
	  (const rd_kafka_ConfigResource_t *, size_t *))                                                        \
	X(const char *, rd_kafka_ConfigEntry_name, (const rd_kafka_ConfigEntry_t *))                            \
	X(const char *, rd_kafka_ConfigEntry_value, (const rd_kafka_ConfigEntry_t *))

/* The module's state: the library, loaded once per process. */
static struct {
	void *lib;
	char why[300];
	char admin_why[300]; /* "" when the Admin API resolved */
#define FIELD(ret, name, params) ret(*name) params;
	RDK_FUNCS(FIELD)
	RDK_ADMIN_FUNCS(FIELD)
#undef FIELD
} R;
static pthread_once_t r_once = PTHREAD_ONCE_INIT;

static void r_load(void)
{
	void *lib = dlopen(SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		snprintf(R.why, sizeof R.why, "cannot load %s: %s (install librdkafka1)", SONAME, e ? e : "not found");
		return;
	}
#define RESOLVE(ret, name, params)                                                                            \
	if (!(*(void **)&R.name = dlsym(lib, #name))) {                                                       \
		snprintf(R.why, sizeof R.why, "cannot load %s: it has no %s (librdkafka 1.6 or later is needed)", \
			 SONAME, #name);                                                                      \
		dlclose(lib);                                                                                 \
		return;                                                                                       \
	}
	RDK_FUNCS(RESOLVE)
#undef RESOLVE
#define RESOLVE_ADMIN(ret, name, params)                                                                      \
	if (!R.admin_why[0] && !(*(void **)&R.name = dlsym(lib, #name)))                                      \
		snprintf(R.admin_why, sizeof R.admin_why, "%s has no %s (librdkafka 2.0 or later is needed)", \
			 SONAME, #name);
	RDK_ADMIN_FUNCS(RESOLVE_ADMIN)
#undef RESOLVE_ADMIN
	R.lib = lib;
}

int mq_kafka_built(void)
{
	return 1;
}

struct mq_kafka {
	rd_kafka_t *ck;       /* the consumer, made on first use */
	rd_kafka_queue_t *cq; /* its queue, signalling cpipe[1] */
	int cpipe[2];
	int64_t timeout_ms;
	char list[512]; /* bootstrap.servers */
	char client_id[64];
	mq_header_t *hv; /* headers of the record being handed over */
	size_t hcap;
	char group[256];          /* the consumer's group.id ("" none) */
	int64_t session_ms;       /* its session.timeout.ms (0: librdkafka's) */
	mq_kafka_tp_t *own;       /* the group's assignment to this member */
	uint32_t nown;
	uint64_t gen;             /* rebalance events received */
	uint64_t assigns;         /* of them, assignments (possibly empty) */
	rd_kafka_t *rk;
	rd_kafka_topic_t *pt; /* the topic produced to last, kept: a lookup per record costs locks */
	char ptopic[256];
	rd_kafka_message_t *run; /* records handed over together (mq_kafka_produce) */
	size_t run_cap;
	rd_kafka_queue_t *main;
	int pipe[2]; /* librdkafka writes a byte to [1] when reports wait */
	char endpoint[512];
	mq_kafka_delivered_fn delivered;
	char log[256]; /* librdkafka's last log line (why a connection failed) */
	int print_log; /* -v, or debug= in MQ_KAFKA_CONFIG: every log line to stderr */
};

/* ---- the endpoint ---- */

/* "kafka://H:P,H:P" into "H:P,H:P" (bootstrap.servers), checking each. */
static int bootstrap_of(const char *ep, char *out, size_t n, mq_err_t *err)
{
	const char *list = ep + 8;
	if (!*list || strlen(list) >= n)
		return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.200s': %s", ep,
				  *list ? "too long" : "no broker named (kafka://HOST:PORT[,HOST:PORT...])");
	snprintf(out, n, "%s", list);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		const char *colon = memrchr(p, ':', l);
		char *stop;
		unsigned long port = colon ? strtoul(colon + 1, &stop, 10) : 0;
		if (!l || !colon || colon == p || colon + 1 == p + l || stop != p + l || port < 1 || port > 65535)
			return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.200s': '%.*s' is not HOST:PORT "
					  "(kafka://HOST:PORT[,HOST:PORT...])", ep, (int)(l > 100 ? 100 : l), p);
		p += l + (end != NULL);
	}
	if (list[strlen(list) - 1] == ',')
		return mq_err_set(err, MQ_EINVAL, "broker endpoint '%.200s': a ',' with no broker after it "
				  "(kafka://HOST:PORT[,HOST:PORT...])", ep);
	return 0;
}

/* Some bootstrap broker takes a TCP connection: 0, or -MQ_ECONNECT
 * saying why the first one did not (librdkafka would keep trying in
 * silence until the timeout). */
static int reachable(const char *ep, const char *list, int64_t timeout_ms, mq_err_t *err)
{
	char first[320] = "";
	int64_t deadline = mq_mono_ms() + (timeout_ms > 0 && timeout_ms < 10000 ? timeout_ms : 10000);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t l = end ? (size_t)(end - p) : strlen(p);
		char tcp[300], why[320];
		snprintf(tcp, sizeof tcp, "tcp://%.*s", (int)(l > 280 ? 280 : l), p);
		int fd = mq_zmtp_dial(tcp, deadline, why, sizeof why);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (!first[0])
			snprintf(first, sizeof first, "%s", why);
		p += l + (end != NULL);
	}
	return mq_err_set(err, MQ_ECONNECT, "cannot connect to %.300s: %s (is the Kafka cluster running? set -b or "
			  "MQ_BROKER)", ep, first);
}

/* ---- callbacks (librdkafka calls them from mq_kafka_poll) ---- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	mq_kafka_t *k = R.rd_kafka_opaque(rk);
	if (!k)
		return;
	snprintf(k->log, sizeof k->log, "%s", buf);
	if (k->print_log) /* one fprintf: whole lines, whichever thread logs */
		fprintf(stderr, "%s: librdkafka %d %s: %s\n", k->client_id, level, fac, buf);
}

static void on_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
	(void)rk, (void)e;
	mq_kafka_t *k = opaque;
	snprintf(k->log, sizeof k->log, "%s", reason);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	mq_kafka_t *k = opaque;
	if (k->delivered)
		k->delivered(m->_private, m->err == RD_KAFKA_RESP_ERR_NO_ERROR,
			     m->err ? R.rd_kafka_err2str(m->err) : NULL);
}

/* ---- open / close ---- */

/* MQ_KAFKA_CONFIG's NAME=VALUE settings, separated by blanks, into conf
 * (debug= also sends librdkafka's log lines to stderr). */
static int conf_from_env(mq_kafka_t *k, rd_kafka_conf_t *conf, mq_err_t *err)
{
	const char *e = getenv(MQ_KAFKA_CONFIG_ENV);
	char item[1024], why[256];
	while (e && *e) {
		size_t n = strcspn(e, " \t\n");
		if (n >= sizeof item)
			return mq_err_set(err, MQ_EINVAL, "%s: setting '%.40s...' is too long (at most %zu bytes)",
					  MQ_KAFKA_CONFIG_ENV, e, sizeof item - 1);
		memcpy(item, e, n);
		item[n] = 0;
		e += n + strspn(e + n, " \t\n");
		if (!n)
			continue;
		char *eq = strchr(item, '=');
		if (!eq || eq == item)
			return mq_err_set(err, MQ_EINVAL, "%s: '%s' is not NAME=VALUE (librdkafka's settings, e.g. "
					  "security.protocol=SASL_SSL)", MQ_KAFKA_CONFIG_ENV, item);
		*eq = 0;
		if (!strcmp(item, "debug"))
			k->print_log = 1;
		if (R.rd_kafka_conf_set(conf, item, eq + 1, why, sizeof why) != RD_KAFKA_CONF_OK)
			return mq_err_set(err, MQ_EINVAL, "%s: librdkafka setting %s=%s: %s", MQ_KAFKA_CONFIG_ENV, item,
					  eq + 1, why);
	}
	return 0;
}

/* A producer or consumer of conf (taken, also on failure) reporting to k. */
static rd_kafka_t *handle_new(mq_kafka_t *k, rd_kafka_type_t type, rd_kafka_conf_t *conf, mq_err_t *err)
{
	if (conf_from_env(k, conf, err) < 0) {
		R.rd_kafka_conf_destroy(conf);
		return NULL;
	}
	R.rd_kafka_conf_set_opaque(conf, k);
	R.rd_kafka_conf_set_log_cb(conf, on_log);
	R.rd_kafka_conf_set_error_cb(conf, on_error);
	char why[512];
	rd_kafka_t *rk = R.rd_kafka_new(type, conf, why, sizeof why);
	if (!rk) {
		R.rd_kafka_conf_destroy(conf);
		mq_err_set(err, MQ_EINVAL, "cannot make a Kafka %s for %.300s: %s",
			   type == RD_KAFKA_PRODUCER ? "producer" : "consumer", k->endpoint, why);
	}
	return rk;
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, mq_err_t *err)
{
	char why[256];
	if (R.rd_kafka_conf_set(conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK)
		return mq_err_set(err, MQ_EINVAL, "librdkafka setting %s=%s: %s", name, value, why);
	return 0;
}

int mq_kafka_open(const mq_kafka_opts_t *o, mq_kafka_t **out, mq_err_t *err)
{
	*out = NULL;
	char list[512];
	int rc;
	if ((rc = bootstrap_of(o->endpoint, list, sizeof list, err)) ||
	    (rc = reachable(o->endpoint, list, o->timeout_ms, err)))
		return rc;
	pthread_once(&r_once, r_load);
	if (!R.lib)
		return mq_err_set(err, MQ_EINVAL, "kafka:// needs librdkafka: %s", R.why);
	mq_kafka_t *k = calloc(1, sizeof *k);
	if (!k)
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	k->pipe[0] = k->pipe[1] = k->cpipe[0] = k->cpipe[1] = -1;
	k->delivered = o->delivered;
	k->timeout_ms = o->timeout_ms;
	k->print_log = o->verbose;
	snprintf(k->list, sizeof k->list, "%s", list);
	snprintf(k->client_id, sizeof k->client_id, "%s", o->client_id ? o->client_id : "mq");
	snprintf(k->endpoint, sizeof k->endpoint, "%s", o->endpoint);
	rd_kafka_conf_t *conf = R.rd_kafka_conf_new();
	char timeout[32];
	snprintf(timeout, sizeof timeout, "%lld",
		 (long long)(o->timeout_ms <= 0 || o->timeout_ms > INT32_MAX ? 0 : o->timeout_ms));
	if ((rc = conf_set(conf, "bootstrap.servers", list, err)) ||
	    (rc = conf_set(conf, "client.id", o->client_id ? o->client_id : "mq", err)) ||
	    (rc = conf_set(conf, "acks", "all", err)) || (rc = conf_set(conf, "enable.idempotence", "true", err)) ||
	    (rc = conf_set(conf, "partitioner", "murmur2_random", err)) ||
	    (rc = conf_set(conf, "linger.ms", "5", err)) || (rc = conf_set(conf, "message.timeout.ms", timeout, err))) {
		R.rd_kafka_conf_destroy(conf);
		free(k);
		return rc;
	}
	R.rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	if (!(k->rk = handle_new(k, RD_KAFKA_PRODUCER, conf, err))) {
		free(k);
		return -err->code;
	}
	if (pipe2(k->pipe, O_CLOEXEC | O_NONBLOCK)) {
		rc = mq_err_sys(err, "making a pipe for Kafka's reports");
		mq_kafka_close(k);
		return rc;
	}
	k->main = R.rd_kafka_queue_get_main(k->rk);
	R.rd_kafka_queue_io_event_enable(k->main, k->pipe[1], "1", 1);
	*out = k;
	return 0;
}

void mq_kafka_close(mq_kafka_t *k)
{
	if (!k)
		return;
	if (k->ck) {
		if (k->cq) {
			R.rd_kafka_queue_io_event_enable(k->cq, -1, NULL, 0);
			R.rd_kafka_queue_destroy(k->cq);
		}
		R.rd_kafka_consumer_close(k->ck);
		R.rd_kafka_destroy(k->ck);
	}
	for (int i = 0; i < 2; i++)
		if (k->cpipe[i] >= 0)
			close(k->cpipe[i]);
	free(k->hv);
	free(k->run);
	for (uint32_t i = 0; i < k->nown; i++)
		free(k->own[i].topic);
	free(k->own);
	if (k->rk) {
		R.rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		if (k->pt)
			R.rd_kafka_topic_destroy(k->pt);
		k->delivered = NULL;
		if (k->main) {
			R.rd_kafka_queue_io_event_enable(k->main, -1, NULL, 0);
			R.rd_kafka_queue_destroy(k->main);
		}
		R.rd_kafka_poll(k->rk, 0);
		R.rd_kafka_destroy(k->rk);
	}
	if (k->pipe[0] >= 0)
		close(k->pipe[0]);
	if (k->pipe[1] >= 0)
		close(k->pipe[1]);
	free(k);
}

/* ---- metadata ---- */

int mq_kafka_partitions(mq_kafka_t *k, const char *topic, int create, uint32_t *n, mq_err_t *err)
{
	(void)create; /* the producer's metadata request makes it where the cluster lets it */
	rd_kafka_topic_t *t = R.rd_kafka_topic_new(k->rk, topic, NULL);
	if (!t)
		return mq_err_set(err, MQ_EINVAL, "topic '%s': %s", topic, R.rd_kafka_err2str(RD_KAFKA_RESP_ERR__INVALID_ARG));
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	int rc = 0;
	for (int i = 0; i < METADATA_TRIES; i++) {
		const struct rd_kafka_metadata *md = NULL;
		e = R.rd_kafka_metadata(k->rk, 0, t, &md, 10000);
		if (e) {
			rc = mq_err_set(err, e == RD_KAFKA_RESP_ERR__TIMED_OUT ? MQ_ETIMEDOUT : MQ_EIO,
					"metadata of topic '%s' from %.300s: %s%s%s", topic, k->endpoint, R.rd_kafka_err2str(e),
					k->log[0] ? ": " : "", k->log);
			break;
		}
		e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
		uint32_t parts = md->topic_cnt == 1 ? (uint32_t)md->topics[0].partition_cnt : 0;
		R.rd_kafka_metadata_destroy(md);
		if (!e && parts) {
			*n = parts;
			rc = 0;
			break;
		}
		if (e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE && e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && e)
			i = METADATA_TRIES;
		rc = mq_err_set(err, MQ_ENOENT, "topic '%s' on %.300s: %s", topic, k->endpoint,
				e ? R.rd_kafka_err2str(e) : "no partitions");
	}
	R.rd_kafka_topic_destroy(t);
	return rc;
}

/* ---- producing ---- */

static int produce_error(mq_kafka_t *k, const char *topic, rd_kafka_resp_err_t code, const char *why, mq_err_t *err)
{
	return mq_err_set(err, code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? MQ_ETOOBIG : MQ_EIO,
			  "producing to topic '%s' on %.300s: %s", topic, k->endpoint, why);
}

/* Hands k->run[0..n) over in one call (one clock read and one topic lock
 * for all, not several each); waits while librdkafka's queue is full.
 * *queued counts those taken; another refusal is said (the first). */
static int produce_run(mq_kafka_t *k, const char *topic, size_t n, uint32_t *queued, mq_err_t *err)
{
	size_t at = 0;
	while (at < n) {
		int took = R.rd_kafka_produce_batch(k->pt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_PARTITION,
						    k->run + at, (int)(n - at));
		*queued += (uint32_t)(took > 0 ? took : 0);
		size_t i = at;
		while (i < n && !k->run[i].err)
			i++;
		if (i == n)
			return 0;
		if (k->run[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL) /* those after it taken are reported as usual */
			return produce_error(k, topic, k->run[i].err, R.rd_kafka_err2str(k->run[i].err), err);
		/* Full from record i on (librdkafka refuses the rest of the call
		 * once one is refused so): wait for reports to make room. */
		R.rd_kafka_poll(k->rk, 1000);
		at = i;
	}
	return 0;
}

int mq_kafka_produce(mq_kafka_t *k, const char *topic, int32_t partition, int32_t keyless, const uint8_t *batch,
		     size_t len, void *opaque, uint32_t *queued, mq_err_t *err)
{
	*queued = 0;
	mq_batch_iter_t it;
	mq_record_t r;
	int rc = mq_batch_iter_init(&it, batch, len, err);
	if (rc)
		return rc;
	if ((!k->pt || strcmp(k->ptopic, topic)) && strlen(topic) < sizeof k->ptopic) {
		if (k->pt)
			R.rd_kafka_topic_destroy(k->pt);
		if ((k->pt = R.rd_kafka_topic_new(k->rk, topic, NULL)))
			snprintf(k->ptopic, sizeof k->ptopic, "%s", topic);
	}
	int by_handle = k->pt && !strcmp(k->ptopic, topic); /* else librdkafka names what is wrong */
	if (by_handle && k->run_cap < it.hdr.count) { /* a count the batch's length bounds */
		rd_kafka_message_t *m = realloc(k->run, it.hdr.count * sizeof *m);
		if (!m)
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		k->run = m;
		k->run_cap = it.hdr.count;
	}
	size_t nrun = 0;
	int refused = 0;
	rd_kafka_vu_t vu[8];
	while ((rc = mq_batch_iter_next(&it, &r)) == 1) {
		int32_t part = partition >= 0 ? partition : !r.key && keyless >= 0 ? keyless : RD_KAFKA_PARTITION_UA;
		/* Records with neither headers nor a timestamp of their own (0:
		 * librdkafka stamps them) go over together. */
		if (by_handle && !r.header_count && !r.id && r.timestamp <= 0) {
			k->run[nrun++] = (rd_kafka_message_t){.partition = part,
							      .payload = (void *)r.value,
							      .len = r.value_len,
							      .key = (void *)r.key,
							      .key_len = r.key ? r.key_len : 0,
							      ._private = opaque};
			continue;
		}
		if (nrun && (rc = produce_run(k, topic, nrun, queued, err)) < 0) {
			refused = 1;
			break;
		}
		nrun = 0;
		size_t c = 0;
		if (by_handle)
			vu[c].vtype = RD_KAFKA_VTYPE_RKT, vu[c++].u.rkt = k->pt;
		else
			vu[c].vtype = RD_KAFKA_VTYPE_TOPIC, vu[c++].u.cstr = topic;
		vu[c].vtype = RD_KAFKA_VTYPE_PARTITION, vu[c++].u.i32 = part;
		vu[c].vtype = RD_KAFKA_VTYPE_VALUE, vu[c].u.mem.ptr = (void *)r.value, vu[c++].u.mem.size = r.value_len;
		if (r.key)
			vu[c].vtype = RD_KAFKA_VTYPE_KEY, vu[c].u.mem.ptr = (void *)r.key, vu[c++].u.mem.size = r.key_len;
		if (r.timestamp > 0)
			vu[c].vtype = RD_KAFKA_VTYPE_TIMESTAMP, vu[c++].u.i64 = r.timestamp;
		vu[c].vtype = RD_KAFKA_VTYPE_MSGFLAGS, vu[c++].u.i = RD_KAFKA_MSG_F_COPY;
		vu[c].vtype = RD_KAFKA_VTYPE_OPAQUE, vu[c++].u.ptr = opaque;
		/* A list of our own (kept by us when the call fails: librdkafka
		 * 2.0's single-header form frees them twice then). */
		rd_kafka_headers_t *hs = NULL;
		if (r.header_count || r.id) {
			hs = R.rd_kafka_headers_new(r.header_count + 1);
			const uint8_t *hp = r.headers;
			mq_header_t h;
			while (mq_header_next(&hp, r.headers_end, &h) == 1)
				R.rd_kafka_header_add(hs, (const char *)h.name, (ssize_t)h.name_len, h.value,
						      (ssize_t)h.value_len);
			if (r.id)
				R.rd_kafka_header_add(hs, MQ_KAFKA_ID_HEADER, -1, r.id, (ssize_t)r.id_len);
			vu[c].vtype = RD_KAFKA_VTYPE_HEADERS, vu[c++].u.headers = hs;
		}
		for (;;) {
			rd_kafka_error_t *e = R.rd_kafka_produceva(k->rk, vu, c);
			if (!e)
				break;
			rd_kafka_resp_err_t code = R.rd_kafka_error_code(e);
			if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL) { /* wait for reports to make room */
				R.rd_kafka_error_destroy(e);
				R.rd_kafka_poll(k->rk, 1000);
				continue;
			}
			rc = produce_error(k, topic, code, R.rd_kafka_error_string(e), err);
			R.rd_kafka_error_destroy(e);
			if (hs)
				R.rd_kafka_headers_destroy(hs);
			break;
		}
		if (rc < 0) {
			refused = 1;
			break;
		}
		(*queued)++;
	}
	if (!refused && nrun) { /* what came before a record that does not parse goes too */
		int r2 = produce_run(k, topic, nrun, queued, err);
		if (r2 < 0)
			return r2;
	}
	if (rc == -MQ_ECORRUPT)
		return mq_err_set(err, MQ_ECORRUPT, "producing to topic '%s': record %u of a batch does not parse", topic,
				  *queued);
	return rc < 0 ? rc : 0;
}

int mq_kafka_poll(mq_kafka_t *k, int wait_ms)
{
	uint8_t junk[64];
	while (read(k->pipe[0], junk, sizeof junk) > 0)
		;
	return R.rd_kafka_poll(k->rk, wait_ms);
}

int mq_kafka_fd(const mq_kafka_t *k)
{
	return k->pipe[0];
}

/* ---- consuming ---- */

/* The group's say (served by rd_kafka_consumer_poll): partitions taken
 * or given; the new assignment is noted for mq_kafka_assignment. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *l, void *opaque)
{
	mq_kafka_t *k = opaque;
	for (uint32_t i = 0; i < k->nown; i++)
		free(k->own[i].topic);
	k->nown = 0;
	k->gen++;
	if (e != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		R.rd_kafka_assign(rk, NULL);
		return;
	}
	R.rd_kafka_assign(rk, l);
	k->assigns++;
	mq_kafka_tp_t *own = realloc(k->own, ((size_t)l->cnt + 1) * sizeof *own);
	if (!own)
		return; /* owning nothing: the next rebalance tries again */
	k->own = own;
	for (int i = 0; i < l->cnt; i++)
		if ((own[k->nown].topic = strdup(l->elems[i].topic)))
			own[k->nown++].partition = l->elems[i].partition;
}

/* The consumer handle: made on first use, with its own pipe. */
static int consumer(mq_kafka_t *k, mq_err_t *err)
{
	if (k->ck)
		return 0;
	rd_kafka_conf_t *conf = R.rd_kafka_conf_new();
	char session[32], heartbeat[32];
	snprintf(session, sizeof session, "%lld", (long long)k->session_ms);
	snprintf(heartbeat, sizeof heartbeat, "%lld", (long long)(k->session_ms / 3 < 3000 ? k->session_ms / 3 : 3000));
	int rc;
	if ((rc = conf_set(conf, "bootstrap.servers", k->list, err)) ||
	    (rc = conf_set(conf, "client.id", k->client_id, err)) ||
	    (rc = conf_set(conf, "group.id", k->group[0] ? k->group : "mq", err)) ||
	    (k->session_ms && ((rc = conf_set(conf, "session.timeout.ms", session, err)) ||
			       (rc = conf_set(conf, "heartbeat.interval.ms", heartbeat, err)))) ||
	    (rc = conf_set(conf, "enable.auto.commit", "false", err)) ||
	    (rc = conf_set(conf, "enable.auto.offset.store", "false", err)) ||
	    (rc = conf_set(conf, "auto.offset.reset", "earliest", err)) ||
	    /* Prefetch on while a reply is written out: at the default of
	     * 100000 records the fetcher stops as soon as one reply's worth
	     * waits, and looks again only on its own timer (reading 1,000,000
	     * short lines spent two thirds of its time so); what is queued
	     * stays bounded by queued.max.messages.kbytes (64 MB). */
	    (rc = conf_set(conf, "queued.min.messages", "1000000", err))) {
		R.rd_kafka_conf_destroy(conf);
		return rc;
	}
	R.rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	if (!(k->ck = handle_new(k, RD_KAFKA_CONSUMER, conf, err)))
		return -err->code;
	if (pipe2(k->cpipe, O_CLOEXEC | O_NONBLOCK))
		return mq_err_sys(err, "making a pipe for Kafka's records");
	R.rd_kafka_poll_set_consumer(k->ck);
	k->cq = R.rd_kafka_queue_get_consumer(k->ck);
	R.rd_kafka_queue_io_event_enable(k->cq, k->cpipe[1], "1", 1);
	return 0;
}

static int wait_ms_of(const mq_kafka_t *k)
{
	return k->timeout_ms <= 0 || k->timeout_ms > 60000 ? 60000 : (int)k->timeout_ms;
}

static int cluster_error(mq_kafka_t *k, const char *what, rd_kafka_resp_err_t e, mq_err_t *err)
{
	return mq_err_set(err, e == RD_KAFKA_RESP_ERR__TIMED_OUT ? MQ_ETIMEDOUT : MQ_EIO, "%s from %.300s: %s%s%.200s",
			  what, k->endpoint, R.rd_kafka_err2str(e), k->log[0] ? " (" : "", k->log[0] ? k->log : "");
}

int mq_kafka_topics(mq_kafka_t *k, char ***names, uint32_t **parts, uint32_t *n, mq_err_t *err)
{
	const struct rd_kafka_metadata *md = NULL;
	*names = NULL, *parts = NULL, *n = 0;
	rd_kafka_resp_err_t e = R.rd_kafka_metadata(k->rk, 1, NULL, &md, wait_ms_of(k));
	if (e)
		return cluster_error(k, "the topic list", e, err);
	int rc = 0;
	if (!(*names = calloc((size_t)md->topic_cnt + 1, sizeof **names)) ||
	    !(*parts = calloc((size_t)md->topic_cnt + 1, sizeof **parts)))
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (int i = 0; !rc && i < md->topic_cnt; i++) {
		const struct rd_kafka_metadata_topic *t = &md->topics[i];
		if (t->err || !strncmp(t->topic, "__", 2) || t->partition_cnt <= 0)
			continue;
		if (!((*names)[*n] = strdup(t->topic))) {
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			break;
		}
		(*parts)[(*n)++] = (uint32_t)t->partition_cnt;
	}
	R.rd_kafka_metadata_destroy(md);
	if (rc) {
		for (uint32_t i = 0; *names && i < *n; i++)
			free((*names)[i]);
		free(*names), free(*parts);
		*names = NULL, *parts = NULL, *n = 0;
	}
	return rc;
}

int mq_kafka_offsets(mq_kafka_t *k, const char *topic, int32_t p, int64_t time, int64_t *start, int64_t *end,
		     int64_t *at, mq_err_t *err)
{
	/* the producer's handle: the consumer's group may not be known yet */
	rd_kafka_resp_err_t e = R.rd_kafka_query_watermark_offsets(k->rk, topic, p, start, end, wait_ms_of(k));
	if (e)
		return cluster_error(k, "offsets", e, err);
	*at = -1;
	if (time < 0)
		return 0;
	rd_kafka_topic_partition_list_t *l = R.rd_kafka_topic_partition_list_new(1);
	R.rd_kafka_topic_partition_list_add(l, topic, p)->offset = time;
	e = R.rd_kafka_offsets_for_times(k->rk, l, wait_ms_of(k));
	if (!e)
		e = l->elems[0].err;
	if (!e)
		*at = l->elems[0].offset; /* -1: no record so late */
	R.rd_kafka_topic_partition_list_destroy(l);
	return e ? cluster_error(k, "offsets for a time", e, err) : 0;
}

int mq_kafka_assign(mq_kafka_t *k, const char *const *topics, const int32_t *parts, const int64_t *offsets,
		    uint32_t n, mq_err_t *err)
{
	int rc = consumer(k, err);
	if (rc)
		return rc;
	rd_kafka_topic_partition_list_t *l = R.rd_kafka_topic_partition_list_new((int)n);
	for (uint32_t i = 0; i < n; i++)
		R.rd_kafka_topic_partition_list_add(l, topics[i], parts[i])->offset = offsets[i];
	rd_kafka_resp_err_t e = R.rd_kafka_assign(k->ck, l);
	R.rd_kafka_topic_partition_list_destroy(l);
	return e ? cluster_error(k, "reading partitions", e, err) : 0;
}

int mq_kafka_record_times(mq_kafka_t *k, const char *const *topics, const int32_t *parts, const int64_t *offs,
			  uint32_t n, int64_t *ts, mq_err_t *err)
{
	uint32_t want = 0;
	for (uint32_t i = 0; i < n; i++)
		ts[i] = offs[i] >= 0 ? -2 : -1; /* -2: not yet read */
	rd_kafka_topic_partition_list_t *l = R.rd_kafka_topic_partition_list_new((int)n);
	for (uint32_t i = 0; i < n; i++)
		if (offs[i] >= 0) {
			R.rd_kafka_topic_partition_list_add(l, topics[i], parts[i])->offset = offs[i];
			want++;
		}
	int rc = want ? consumer(k, err) : 0;
	rd_kafka_resp_err_t e = 0;
	if (!rc && want && (e = R.rd_kafka_assign(k->ck, l)))
		rc = cluster_error(k, "reading the oldest unconsumed records", e, err);
	R.rd_kafka_topic_partition_list_destroy(l);
	int64_t deadline = mq_mono_ms() + (wait_ms_of(k) < 5000 ? wait_ms_of(k) : 5000);
	while (!rc && want) {
		int64_t left = deadline - mq_mono_ms();
		if (left <= 0)
			break;
		rd_kafka_message_t *rm = R.rd_kafka_consumer_poll(k->ck, (int)left);
		if (!rm)
			continue;
		if (!rm->err) {
			const char *t = R.rd_kafka_topic_name(rm->rkt);
			for (uint32_t i = 0; i < n; i++)
				if (ts[i] == -2 && parts[i] == rm->partition && rm->offset >= offs[i] &&
				    !strcmp(topics[i], t)) {
					int64_t x = R.rd_kafka_message_timestamp(rm, NULL);
					ts[i] = x >= 0 ? x : -1; /* a record without a time: unknown */
					want--;
					break;
				}
		}
		R.rd_kafka_message_destroy(rm);
	}
	if (k->ck)
		R.rd_kafka_assign(k->ck, NULL);
	for (uint32_t i = 0; i < n; i++)
		if (ts[i] == -2)
			ts[i] = -1;
	return rc;
}

/* One message into m (its headers into k->hv): 0, or -1 out of memory. */
static int msg_of(mq_kafka_t *k, const rd_kafka_message_t *rm, mq_kafka_msg_t *m)
{
	memset(m, 0, sizeof *m);
	m->topic = R.rd_kafka_topic_name(rm->rkt);
	m->partition = rm->partition;
	m->offset = rm->offset;
	m->timestamp = R.rd_kafka_message_timestamp(rm, NULL);
	m->key = rm->key, m->key_len = rm->key_len;
	m->value = rm->payload ? rm->payload : "", m->value_len = rm->len;
	rd_kafka_headers_t *hs = NULL;
	if (R.rd_kafka_message_headers(rm, &hs) || !hs)
		return 0;
	const char *name;
	const void *v;
	size_t vl;
	for (size_t i = 0; !R.rd_kafka_header_get_all(hs, i, &name, &v, &vl); i++) {
		if (!strcmp(name, MQ_KAFKA_ID_HEADER) && !m->id) {
			m->id = v ? v : "", m->id_len = vl;
			continue;
		}
		if (m->nheaders == k->hcap) {
			size_t cap = k->hcap ? 2 * k->hcap : 16;
			mq_header_t *nh = realloc(k->hv, cap * sizeof *nh);
			if (!nh)
				return -1;
			k->hv = nh, k->hcap = cap;
		}
		k->hv[m->nheaders++] = (mq_header_t){(const uint8_t *)name, strlen(name), v ? v : (const void *)"", vl};
	}
	m->headers = k->hv;
	return 0;
}

int mq_kafka_consume(mq_kafka_t *k, int wait_ms, size_t max_bytes, int (*take)(void *ctx, const mq_kafka_msg_t *m),
		     void *ctx, mq_err_t *err)
{
	int rc = consumer(k, err), n = 0;
	if (rc)
		return rc;
	uint8_t junk[64];
	while (read(k->cpipe[0], junk, sizeof junk) > 0)
		;
	/* Messages a call at most: a batch is one pass over librdkafka's
	 * queue lock instead of one a message (rebalances and errors on the
	 * queue are served in it as rd_kafka_consumer_poll serves them). */
	enum { BATCH = 1024 };
	rd_kafka_message_t *v[BATCH];
	size_t bytes = 0;
	for (int w = wait_ms; bytes < max_bytes; w = 0) {
		ssize_t got = R.rd_kafka_consume_batch_queue(k->cq, w, v, BATCH);
		if (got <= 0)
			break;
		ssize_t i = 0;
		for (; i < got && rc == 0; i++) {
			rd_kafka_message_t *rm = v[i];
			if (rm->err) {
				/* librdkafka recovers from the rest itself (a broker down, a
				 * leader moving): noted for a later message, not fatal */
				rd_kafka_resp_err_t e = rm->err;
				if (e == RD_KAFKA_RESP_ERR__FATAL)
					rc = cluster_error(k, "reading", e, err);
				else if (e != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					snprintf(k->log, sizeof k->log, "%s", R.rd_kafka_err2str(e));
				R.rd_kafka_message_destroy(rm);
				continue;
			}
			mq_kafka_msg_t m;
			if (msg_of(k, rm, &m)) {
				rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
			} else {
				bytes += m.value_len + m.key_len + 64;
				rc = take(ctx, &m);
				n++;
			}
			R.rd_kafka_message_destroy(rm);
		}
		for (; i < got; i++)
			R.rd_kafka_message_destroy(v[i]);
		if (rc < 0)
			return rc;
		if ((size_t)got < BATCH)
			break; /* the queue is empty */
	}
	return n;
}

int mq_kafka_consumer_fd(const mq_kafka_t *k)
{
	return k->ck ? k->cpipe[0] : -1;
}

int64_t mq_kafka_cached_end(mq_kafka_t *k, const char *topic, int32_t p)
{
	int64_t lo = -1, hi = -1;
	if (!k->ck)
		return -1;
	/* Known from the last fetch response; before the first, asked for. */
	if ((R.rd_kafka_get_watermark_offsets(k->ck, topic, p, &lo, &hi) || hi < 0) &&
	    R.rd_kafka_query_watermark_offsets(k->ck, topic, p, &lo, &hi, wait_ms_of(k)))
		return -1;
	return hi;
}

/* ---- groups ---- */

int mq_kafka_join(mq_kafka_t *k, const char *group, const char *const *topics, uint32_t n, int64_t session_ms,
		  int64_t deadline, mq_err_t *err)
{
	if (k->ck && strcmp(k->group, group))
		return mq_err_set(err, MQ_EINVAL, "one Kafka consumer, one group: '%s' already, '%s' asked", k->group,
				  group);
	snprintf(k->group, sizeof k->group, "%s", group);
	/* Kafka brokers take 6 s to 30 min by default (group.min/max.session.timeout.ms) */
	k->session_ms = session_ms < 6000 ? 6000 : session_ms > 1800000 ? 1800000 : session_ms;
	int rc = consumer(k, err);
	if (rc)
		return rc;
	rd_kafka_topic_partition_list_t *l = R.rd_kafka_topic_partition_list_new((int)n);
	for (uint32_t i = 0; i < n; i++)
		R.rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
	uint64_t before = k->assigns;
	rd_kafka_resp_err_t e = R.rd_kafka_subscribe(k->ck, l);
	R.rd_kafka_topic_partition_list_destroy(l);
	if (e)
		return cluster_error(k, "joining the group", e, err);
	/* Until the group's first assignment to this member (which may be
	 * none: more members than partitions; later ones come with reading).
	 * Records that come before it are dropped: the reader asks for them
	 * again from the group's committed offsets. */
	while (k->assigns == before) {
		int64_t left = deadline - mq_mono_ms();
		if (left <= 0)
			return mq_err_set(err, MQ_ETIMEDOUT, "group '%s' on %.300s assigned this member nothing in time%s%.200s",
					  group, k->endpoint, k->log[0] ? ": " : "", k->log);
		rd_kafka_message_t *m = R.rd_kafka_consumer_poll(k->ck, left > 1000 ? 1000 : (int)left);
		if (m)
			R.rd_kafka_message_destroy(m);
	}
	return 0;
}

uint64_t mq_kafka_assignment(const mq_kafka_t *k, const mq_kafka_tp_t **own, uint32_t *n)
{
	*own = k->own;
	*n = k->nown;
	return k->gen;
}

int mq_kafka_member_id(mq_kafka_t *k, char *out, size_t n)
{
	char *id = k->ck ? R.rd_kafka_memberid(k->ck) : NULL;
	snprintf(out, n, "%s", id ? id : "");
	if (id)
		R.rd_kafka_mem_free(k->ck, id);
	return 0;
}

int mq_kafka_commit(mq_kafka_t *k, const char *topic, const uint32_t *parts, const uint64_t *offsets, uint32_t n,
		    mq_err_t *err)
{
	int rc = consumer(k, err);
	if (rc)
		return rc;
	rd_kafka_topic_partition_list_t *l = R.rd_kafka_topic_partition_list_new((int)n);
	for (uint32_t i = 0; i < n; i++)
		R.rd_kafka_topic_partition_list_add(l, topic, (int32_t)parts[i])->offset = (int64_t)offsets[i];
	rd_kafka_resp_err_t e = R.rd_kafka_commit(k->ck, l, 0);
	for (int i = 0; !e && i < l->cnt; i++)
		e = l->elems[i].err;
	R.rd_kafka_topic_partition_list_destroy(l);
	if (!e)
		return 0;
	rc = cluster_error(k, "committing", e, err);
	/* another member owns it now, or the group is rebalancing: the reader's
	 * business (it commits again after its next assignment) */
	if (e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
	    e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR__STATE)
		err->code = MQ_EBUSY, rc = -MQ_EBUSY;
	return rc;
}

int mq_kafka_committed(mq_kafka_t *k, const char *topic, int64_t *off, uint32_t n, mq_err_t *err)
{
	int rc = consumer(k, err);
	if (rc)
		return rc;
	rd_kafka_topic_partition_list_t *l = R.rd_kafka_topic_partition_list_new((int)n);
	for (uint32_t i = 0; i < n; i++)
		R.rd_kafka_topic_partition_list_add(l, topic, (int32_t)i);
	rd_kafka_resp_err_t e = R.rd_kafka_committed(k->ck, l, wait_ms_of(k));
	for (uint32_t p = 0; p < n; p++)
		off[p] = -1;
	for (int i = 0; !e && i < l->cnt; i++) { /* each entry by its own partition; none out of range */
		int32_t p = l->elems[i].partition;
		if (p >= 0 && (uint32_t)p < n && !l->elems[i].err && l->elems[i].offset >= 0)
			off[p] = l->elems[i].offset;
	}
	R.rd_kafka_topic_partition_list_destroy(l);
	return e ? cluster_error(k, "the group's committed offsets", e, err) : 0;
}

int mq_kafka_leave(mq_kafka_t *k)
{
	if (k->ck && k->group[0])
		R.rd_kafka_unsubscribe(k->ck);
	return 0;
}

/* ---- administration ---- */

typedef struct admin {
	rd_kafka_queue_t *q;
	rd_kafka_AdminOptions_t *o;
	int wait;
} admin_t;

static int admin_begin(mq_kafka_t *k, admin_t *a, int topic_op, mq_err_t *err)
{
	a->q = NULL, a->o = NULL;
	if (R.admin_why[0])
		return mq_err_set(err, MQ_EINVAL, "administration of %.300s: %s", k->endpoint, R.admin_why);
	char why[256];
	a->wait = wait_ms_of(k);
	a->q = R.rd_kafka_queue_new(k->rk);
	a->o = R.rd_kafka_AdminOptions_new(k->rk, RD_KAFKA_ADMIN_OP_ANY);
	if (!a->q || !a->o || R.rd_kafka_AdminOptions_set_request_timeout(a->o, a->wait, why, sizeof why) ||
	    (topic_op && R.rd_kafka_AdminOptions_set_operation_timeout(a->o, a->wait, why, sizeof why)))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	return 0;
}

static void admin_end(admin_t *a)
{
	if (a->o)
		R.rd_kafka_AdminOptions_destroy(a->o);
	if (a->q)
		R.rd_kafka_queue_destroy(a->q);
}

/* The operation's result, or NULL with err set (the request as a whole
 * failed: no controller, timed out, not supported). */
static rd_kafka_event_t *admin_wait(mq_kafka_t *k, admin_t *a, const char *what, mq_err_t *err)
{
	rd_kafka_event_t *e = R.rd_kafka_queue_poll(a->q, a->wait + 2000);
	if (!e) {
		mq_err_set(err, MQ_ETIMEDOUT, "%s: %.300s did not answer in time", what, k->endpoint);
		return NULL;
	}
	rd_kafka_resp_err_t code = R.rd_kafka_event_error(e);
	if (code) {
		const char *why = R.rd_kafka_event_error_string(e);
		mq_err_set(err, code == RD_KAFKA_RESP_ERR__TIMED_OUT ? MQ_ETIMEDOUT : MQ_EIO, "%s at %.300s: %.300s", what,
			   k->endpoint, why ? why : R.rd_kafka_err2str(code));
		R.rd_kafka_event_destroy(e);
		return NULL;
	}
	return e;
}

/* An error of the cluster's about one group or topic, as mq's code. */
static int kafka_code(rd_kafka_resp_err_t e)
{
	switch (e) {
	case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
		return MQ_EEXIST;
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
		return MQ_ENOENT;
	case RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP:
	case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
	case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
	case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
	case RD_KAFKA_RESP_ERR_GROUP_SUBSCRIBED_TO_TOPIC:
		return MQ_EBUSY;
	case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
	case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
	case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
		return MQ_EINVAL;
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return MQ_ETIMEDOUT;
	case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
	case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
		return MQ_EPROTO;
	default:
		return MQ_EIO;
	}
}

static rd_kafka_topic_partition_list_t *tp_list(const char *const *topics, const int32_t *parts, const int64_t *off,
						uint32_t n)
{
	rd_kafka_topic_partition_list_t *l = R.rd_kafka_topic_partition_list_new((int)(n ? n : 1));
	for (uint32_t i = 0; i < n; i++)
		R.rd_kafka_topic_partition_list_add(l, topics[i], parts[i])->offset = off ? off[i] : RD_KAFKA_OFFSET_INVALID;
	return l;
}

/* The index in topics/parts of (topic, p), or n. */
static uint32_t tp_find(const char *const *topics, const int32_t *parts, uint32_t n, const char *topic, int32_t p,
			uint32_t hint)
{
	if (hint < n && parts[hint] == p && !strcmp(topics[hint], topic))
		return hint;
	for (uint32_t i = 0; i < n; i++)
		if (parts[i] == p && !strcmp(topics[i], topic))
			return i;
	return n;
}

int mq_kafka_watermarks(mq_kafka_t *k, const char *const *topics, const int32_t *parts, uint32_t n, int64_t *start,
			int64_t *end, mq_err_t *err)
{
	for (int pass = 0; pass < 2; pass++) {
		int64_t *out = pass ? end : start;
		for (uint32_t i = 0; i < n; i++)
			out[i] = -1;
		if (!n)
			continue;
		/* a "time" of -2 asks for the first offset, -1 for the end */
		rd_kafka_topic_partition_list_t *l = tp_list(topics, parts, NULL, n);
		for (int i = 0; i < l->cnt; i++)
			l->elems[i].offset = pass ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
		rd_kafka_resp_err_t e = R.rd_kafka_offsets_for_times(k->rk, l, wait_ms_of(k));
		for (int i = 0; !e && i < l->cnt; i++) {
			uint32_t at = tp_find(topics, parts, n, l->elems[i].topic, l->elems[i].partition, (uint32_t)i);
			if (at < n && !l->elems[i].err)
				out[at] = l->elems[i].offset;
		}
		R.rd_kafka_topic_partition_list_destroy(l);
		if (e)
			return cluster_error(k, pass ? "end offsets" : "first offsets", e, err);
	}
	return 0;
}

/* The one group result of an offsets call: its partitions, or NULL with
 * err set. */
static const rd_kafka_topic_partition_list_t *group_parts(mq_kafka_t *k, const rd_kafka_group_result_t **g, size_t ng,
							  const char *group, const char *what, mq_err_t *err)
{
	if (ng < 1) {
		mq_err_set(err, MQ_EPROTO, "%s of group '%s': %.300s answered nothing", what, group, k->endpoint);
		return NULL;
	}
	const rd_kafka_error_t *ge = R.rd_kafka_group_result_error(g[0]);
	if (ge) {
		rd_kafka_resp_err_t c = R.rd_kafka_error_code(ge);
		mq_err_set(err, kafka_code(c), "%s of group '%s' at %.300s: %s", what, group, k->endpoint,
			   R.rd_kafka_error_string(ge));
		return NULL;
	}
	const rd_kafka_topic_partition_list_t *l = R.rd_kafka_group_result_partitions(g[0]);
	if (!l)
		mq_err_set(err, MQ_EPROTO, "%s of group '%s': %.300s answered no partitions", what, group, k->endpoint);
	return l;
}

/* The group's committed offsets of the n partitions: listed into off
 * (set NULL), or set to set[]. */
static int offsets_call(mq_kafka_t *k, const char *group, const char *const *topics, const int32_t *parts,
			const int64_t *set, uint32_t n, int64_t *off, mq_err_t *err)
{
	const char *what = set ? "setting the offsets" : "the committed offsets";
	admin_t a;
	int rc = admin_begin(k, &a, 0, err);
	if (rc) {
		admin_end(&a);
		return rc;
	}
	rd_kafka_topic_partition_list_t *l = tp_list(topics, parts, set, n);
	if (set) {
		rd_kafka_AlterConsumerGroupOffsets_t *req = R.rd_kafka_AlterConsumerGroupOffsets_new(group, l);
		R.rd_kafka_AlterConsumerGroupOffsets(k->rk, &req, 1, a.o, a.q);
		R.rd_kafka_AlterConsumerGroupOffsets_destroy(req);
	} else {
		rd_kafka_ListConsumerGroupOffsets_t *req = R.rd_kafka_ListConsumerGroupOffsets_new(group, l);
		R.rd_kafka_ListConsumerGroupOffsets(k->rk, &req, 1, a.o, a.q);
		R.rd_kafka_ListConsumerGroupOffsets_destroy(req);
	}
	R.rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_event_t *e = admin_wait(k, &a, what, err);
	rc = e ? 0 : -err->code;
	if (e) {
		size_t ng = 0;
		const rd_kafka_group_result_t **g =
			set ? R.rd_kafka_AlterConsumerGroupOffsets_result_groups(
				      R.rd_kafka_event_AlterConsumerGroupOffsets_result(e), &ng)
			    : R.rd_kafka_ListConsumerGroupOffsets_result_groups(
				      R.rd_kafka_event_ListConsumerGroupOffsets_result(e), &ng);
		const rd_kafka_topic_partition_list_t *got = group_parts(k, g, ng, group, what, err);
		if (!got)
			rc = -err->code;
		for (int i = 0; got && !rc && i < got->cnt; i++) {
			const rd_kafka_topic_partition_t *x = &got->elems[i];
			uint32_t at = tp_find(topics, parts, n, x->topic, x->partition, (uint32_t)i);
			if (!set && at < n && !x->err && x->offset >= 0)
				off[at] = x->offset;
			int c = set && x->err ? kafka_code(x->err) : 0;
			if (c)
				rc = mq_err_set(err, c, "setting the offsets of group '%s' at %.300s: partition %d of "
						"topic '%s': %s%s", group, k->endpoint, (int)x->partition, x->topic,
						R.rd_kafka_err2str(x->err),
						c == MQ_EBUSY ? " (Kafka moves a group's offsets only while it has no "
								"live members: stop them first)" : "");
		}
		R.rd_kafka_event_destroy(e);
	}
	admin_end(&a);
	return rc;
}

int mq_kafka_group_offsets(mq_kafka_t *k, const char *group, const char *const *topics, const int32_t *parts,
			   uint32_t n, int64_t *off, mq_err_t *err)
{
	for (uint32_t i = 0; i < n; i++)
		off[i] = -1;
	return n ? offsets_call(k, group, topics, parts, NULL, n, off, err) : 0;
}

int mq_kafka_group_alter(mq_kafka_t *k, const char *group, const char *const *topics, const int32_t *parts,
			 const int64_t *off, uint32_t n, mq_err_t *err)
{
	return n ? offsets_call(k, group, topics, parts, off, n, NULL, err) : 0;
}

void mq_kafka_group_free(mq_kafka_group_t *g)
{
	for (uint32_t i = 0; g && i < g->nmembers; i++) {
		for (uint32_t j = 0; j < g->members[i].nown; j++)
			free(g->members[i].own[j].topic);
		free(g->members[i].own);
	}
	if (g) {
		free(g->members);
		g->members = NULL;
		g->nmembers = 0;
	}
}

/* (librdkafka's ListGroups and DescribeGroups: its newer Admin API
 * calls for them never let the handle be destroyed when a cluster does
 * not take them, librdkafka's mock cluster among them.) */
int mq_kafka_group_describe(mq_kafka_t *k, const char *group, mq_kafka_group_t *out, mq_err_t *err)
{
	memset(out, 0, sizeof *out);
	const struct rd_kafka_group_list *gl = NULL;
	rd_kafka_resp_err_t e = R.rd_kafka_list_groups(k->rk, group, &gl, wait_ms_of(k));
	if (e == RD_KAFKA_RESP_ERR__PARTIAL && gl && gl->group_cnt >= 1)
		e = 0; /* the group's coordinator answered; other brokers do not matter */
	if (!e && (!gl || gl->group_cnt < 1))
		e = RD_KAFKA_RESP_ERR__BAD_MSG;
	if (!e && gl->groups[0].err)
		e = gl->groups[0].err;
	int rc = 0;
	if (e) {
		rc = mq_err_set(err, kafka_code(e), "describing group '%s' at %.300s: %s", group, k->endpoint,
				R.rd_kafka_err2str(e));
	} else {
		const struct rd_kafka_group_info *g = &gl->groups[0];
		snprintf(out->state, sizeof out->state, "%s", g->state ? g->state : "Unknown");
		if (g->member_cnt > 0 && !(out->members = calloc((size_t)g->member_cnt, sizeof *out->members)))
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
		for (int i = 0; !rc && i < g->member_cnt; i++) {
			const struct rd_kafka_group_member_info *mi = &g->members[i];
			mq_kafka_member_t *m = &out->members[out->nmembers++];
			snprintf(m->id, sizeof m->id, "%s", mi->member_id ? mi->member_id : "");
			snprintf(m->client, sizeof m->client, "%s", mi->client_id ? mi->client_id : "");
			snprintf(m->host, sizeof m->host, "%s", mi->client_host ? mi->client_host : "");
			/* a group of another protocol than "consumer" has no
			 * partitions to parse: its members own nothing here */
			if (g->protocol_type && !strcmp(g->protocol_type, "consumer") &&
			    (rc = mq_kafka_assignment_parse(mi->member_assignment, (size_t)(mi->member_assignment_size > 0 ?
				   mi->member_assignment_size : 0), &m->own, &m->nown, err)) == -MQ_ECORRUPT)
				rc = mq_err_set(err, MQ_EPROTO, "describing group '%s' at %.300s: member %s: %s", group,
						k->endpoint, m->id, err->msg);
		}
	}
	if (gl)
		R.rd_kafka_group_list_destroy(gl);
	if (rc)
		mq_kafka_group_free(out);
	return rc;
}

int mq_kafka_group_list(mq_kafka_t *k, char ***names, uint32_t *n, mq_err_t *err)
{
	*names = NULL, *n = 0;
	const struct rd_kafka_group_list *gl = NULL;
	rd_kafka_resp_err_t e = R.rd_kafka_list_groups(k->rk, NULL, &gl, wait_ms_of(k));
	/* a broker that did not answer leaves the list incomplete: an error */
	if (e) {
		if (gl)
			R.rd_kafka_group_list_destroy(gl);
		return mq_err_set(err, kafka_code(e), "the group list from %.300s: %s", k->endpoint, R.rd_kafka_err2str(e));
	}
	int rc = 0;
	if (!(*names = calloc((size_t)gl->group_cnt + 1, sizeof **names)))
		rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	for (int i = 0; !rc && i < gl->group_cnt; i++)
		if (!((*names)[(*n)++] = strdup(gl->groups[i].group)))
			rc = mq_err_set(err, MQ_ENOMEM, "out of memory");
	R.rd_kafka_group_list_destroy(gl);
	if (rc) {
		for (uint32_t i = 0; *names && i < *n; i++)
			free((*names)[i]);
		free(*names);
		*names = NULL, *n = 0;
	}
	return rc;
}

int mq_kafka_group_delete(mq_kafka_t *k, const char *group, mq_err_t *err)
{
	admin_t a;
	int rc = admin_begin(k, &a, 0, err);
	if (rc) {
		admin_end(&a);
		return rc;
	}
	rd_kafka_DeleteGroup_t *req = R.rd_kafka_DeleteGroup_new(group);
	R.rd_kafka_DeleteGroups(k->rk, &req, 1, a.o, a.q);
	R.rd_kafka_DeleteGroup_destroy(req);
	rd_kafka_event_t *e = admin_wait(k, &a, "deleting the group", err);
	rc = e ? 0 : -err->code;
	if (e) {
		size_t ng = 0;
		const rd_kafka_group_result_t **g = R.rd_kafka_DeleteGroups_result_groups(
			R.rd_kafka_event_DeleteGroups_result(e), &ng);
		const rd_kafka_error_t *ge = ng ? R.rd_kafka_group_result_error(g[0]) : NULL;
		if (ge) {
			int c = kafka_code(R.rd_kafka_error_code(ge));
			rc = mq_err_set(err, c, "deleting group '%s' at %.300s: %s%s", group, k->endpoint,
					R.rd_kafka_error_string(ge),
					c == MQ_EBUSY ? " (the group has live members: stop them first)" : "");
		}
		R.rd_kafka_event_destroy(e);
	}
	admin_end(&a);
	return rc;
}

/* The one topic result of a topic operation: 0, or its error. */
static int topic_result(mq_kafka_t *k, const rd_kafka_topic_result_t **t, size_t nt, const char *what,
			const char *topic, mq_err_t *err)
{
	if (nt < 1)
		return mq_err_set(err, MQ_EPROTO, "%s '%s': %.300s answered nothing", what, topic, k->endpoint);
	rd_kafka_resp_err_t c = R.rd_kafka_topic_result_error(t[0]);
	if (!c)
		return 0;
	const char *why = R.rd_kafka_topic_result_error_string(t[0]);
	int code = kafka_code(c);
	return mq_err_set(err, code, "%s '%s' at %.300s: %s", what, topic, k->endpoint,
			  code == MQ_EEXIST ? "it exists already"
			  : code == MQ_ENOENT ? "no such topic"
			  : why && *why ? why : R.rd_kafka_err2str(c));
}

enum topic_op { T_CREATE, T_DELETE, T_GROW };

/* Create topic with n partitions (0: the cluster's default) and the
 * retentions (< 0: the cluster's), delete it, or grow it to n. */
static int topic_op(mq_kafka_t *k, enum topic_op op, const char *topic, uint32_t n, int64_t retention_ms,
		    int64_t retention_bytes, mq_err_t *err)
{
	static const char *const what[] = {"creating topic", "deleting topic", "adding partitions to topic"};
	admin_t a;
	int rc = admin_begin(k, &a, 1, err);
	char why[256] = "", v[32];
	rd_kafka_NewTopic_t *nt = NULL;
	rd_kafka_NewPartitions_t *np = NULL;
	rd_kafka_DeleteTopic_t *dt = NULL;
	if (!rc && op == T_CREATE && (nt = R.rd_kafka_NewTopic_new(topic, n ? (int)n : -1, -1, why, sizeof why))) {
		for (int i = 0; i < 2; i++) {
			int64_t r = i ? retention_bytes : retention_ms;
			snprintf(v, sizeof v, "%lld", (long long)r);
			if (r >= 0)
				R.rd_kafka_NewTopic_set_config(nt, i ? "retention.bytes" : "retention.ms", v);
		}
		R.rd_kafka_CreateTopics(k->rk, &nt, 1, a.o, a.q);
	} else if (!rc && op == T_GROW && (np = R.rd_kafka_NewPartitions_new(topic, n, why, sizeof why))) {
		R.rd_kafka_CreatePartitions(k->rk, &np, 1, a.o, a.q);
	} else if (!rc && op == T_DELETE && (dt = R.rd_kafka_DeleteTopic_new(topic))) {
		R.rd_kafka_DeleteTopics(k->rk, &dt, 1, a.o, a.q);
	} else if (!rc) {
		rc = mq_err_set(err, MQ_EINVAL, "topic '%s': %s", topic, why[0] ? why : "out of memory");
	}
	char doing[300];
	snprintf(doing, sizeof doing, "%s '%.200s'", what[op], topic);
	rd_kafka_event_t *e = rc ? NULL : admin_wait(k, &a, doing, err);
	if (!rc && !e)
		rc = -err->code;
	if (e) {
		size_t nr = 0;
		const rd_kafka_topic_result_t **r =
			op == T_CREATE ? R.rd_kafka_CreateTopics_result_topics(R.rd_kafka_event_CreateTopics_result(e), &nr)
			: op == T_GROW ? R.rd_kafka_CreatePartitions_result_topics(R.rd_kafka_event_CreatePartitions_result(e),
										    &nr)
				       : R.rd_kafka_DeleteTopics_result_topics(R.rd_kafka_event_DeleteTopics_result(e), &nr);
		rc = topic_result(k, r, nr, what[op], topic, err);
		R.rd_kafka_event_destroy(e);
	}
	if (nt)
		R.rd_kafka_NewTopic_destroy(nt);
	if (np)
		R.rd_kafka_NewPartitions_destroy(np);
	if (dt)
		R.rd_kafka_DeleteTopic_destroy(dt);
	admin_end(&a);
	return rc;
}

int mq_kafka_topic_create(mq_kafka_t *k, const char *topic, uint32_t partitions, int64_t retention_ms,
			  int64_t retention_bytes, mq_err_t *err)
{
	return topic_op(k, T_CREATE, topic, partitions, retention_ms, retention_bytes, err);
}

int mq_kafka_topic_delete(mq_kafka_t *k, const char *topic, mq_err_t *err)
{
	return topic_op(k, T_DELETE, topic, 0, -1, -1, err);
}

int mq_kafka_topic_grow(mq_kafka_t *k, const char *topic, uint32_t n, mq_err_t *err)
{
	return topic_op(k, T_GROW, topic, n, -1, -1, err);
}

int mq_kafka_topic_retention(mq_kafka_t *k, const char *topic, int64_t *ms, int64_t *bytes, mq_err_t *err)
{
	*ms = *bytes = -1;
	admin_t a;
	int rc = admin_begin(k, &a, 0, err);
	if (!rc) {
		rd_kafka_ConfigResource_t *res = R.rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
		R.rd_kafka_DescribeConfigs(k->rk, &res, 1, a.o, a.q);
		R.rd_kafka_ConfigResource_destroy(res);
		rd_kafka_event_t *e = admin_wait(k, &a, "the topic's settings", err);
		rc = e ? 0 : -err->code;
		if (e) {
			size_t nr = 0, nc = 0;
			const rd_kafka_ConfigResource_t **r = R.rd_kafka_DescribeConfigs_result_resources(
				R.rd_kafka_event_DescribeConfigs_result(e), &nr);
			rd_kafka_resp_err_t c = nr ? R.rd_kafka_ConfigResource_error(r[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
			if (c) {
				const char *why = nr ? R.rd_kafka_ConfigResource_error_string(r[0]) : NULL;
				rc = mq_err_set(err, kafka_code(c), "the settings of topic '%s' at %.300s: %s", topic,
						k->endpoint, why && *why ? why : R.rd_kafka_err2str(c));
			}
			const rd_kafka_ConfigEntry_t **ce = rc ? NULL : R.rd_kafka_ConfigResource_configs(r[0], &nc);
			for (size_t i = 0; ce && i < nc; i++) {
				const char *name = R.rd_kafka_ConfigEntry_name(ce[i]), *val = R.rd_kafka_ConfigEntry_value(ce[i]);
				if (name && val && !strcmp(name, "retention.ms"))
					*ms = strtoll(val, NULL, 10);
				else if (name && val && !strcmp(name, "retention.bytes"))
					*bytes = strtoll(val, NULL, 10);
			}
			R.rd_kafka_event_destroy(e);
		}
	}
	admin_end(&a);
	return rc;
}

#endif
