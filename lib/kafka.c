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

int mq_kafka_produce(mq_kafka_t *k, const char *topic, int32_t partition, const uint8_t *batch, size_t len,
		     void *opaque, uint32_t *queued, mq_err_t *err)
{
	(void)k, (void)topic, (void)partition, (void)batch, (void)len, (void)opaque;
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
	X(void, rd_kafka_mem_free, (rd_kafka_t *, void *))

/* The module's state: the library, loaded once per process. */
static struct {
	void *lib;
	char why[300];
#define FIELD(ret, name, params) ret(*name) params;
	RDK_FUNCS(FIELD)
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
	rd_kafka_queue_t *main;
	int pipe[2]; /* librdkafka writes a byte to [1] when reports wait */
	char endpoint[512];
	mq_kafka_delivered_fn delivered;
	char log[256]; /* librdkafka's last log line (why a connection failed) */
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
	(void)level, (void)fac;
	mq_kafka_t *k = R.rd_kafka_opaque(rk);
	if (k)
		snprintf(k->log, sizeof k->log, "%s", buf);
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

/* A producer or consumer of conf (taken, also on failure) reporting to k. */
static rd_kafka_t *handle_new(mq_kafka_t *k, rd_kafka_type_t type, rd_kafka_conf_t *conf, mq_err_t *err)
{
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
	for (uint32_t i = 0; i < k->nown; i++)
		free(k->own[i].topic);
	free(k->own);
	if (k->rk) {
		R.rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
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

int mq_kafka_produce(mq_kafka_t *k, const char *topic, int32_t partition, const uint8_t *batch, size_t len,
		     void *opaque, uint32_t *queued, mq_err_t *err)
{
	*queued = 0;
	mq_batch_iter_t it;
	mq_record_t r;
	int rc = mq_batch_iter_init(&it, batch, len, err);
	if (rc)
		return rc;
	rd_kafka_vu_t vu[8];
	while ((rc = mq_batch_iter_next(&it, &r)) == 1) {
		size_t c = 0;
		vu[c].vtype = RD_KAFKA_VTYPE_TOPIC, vu[c++].u.cstr = topic;
		vu[c].vtype = RD_KAFKA_VTYPE_PARTITION, vu[c++].u.i32 = partition < 0 ? RD_KAFKA_PARTITION_UA : partition;
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
			rc = mq_err_set(err, code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? MQ_ETOOBIG : MQ_EIO,
					"producing to topic '%s' on %.300s: %s", topic, k->endpoint,
					R.rd_kafka_error_string(e));
			R.rd_kafka_error_destroy(e);
			if (hs)
				R.rd_kafka_headers_destroy(hs);
			break;
		}
		if (rc < 0)
			break;
		(*queued)++;
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
	    (rc = conf_set(conf, "auto.offset.reset", "earliest", err))) {
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
	size_t bytes = 0;
	for (int w = wait_ms; bytes < max_bytes; w = 0) {
		rd_kafka_message_t *rm = R.rd_kafka_consumer_poll(k->ck, w);
		if (!rm)
			break;
		if (rm->err) {
			/* librdkafka recovers from the rest itself (a broker down, a
			 * leader moving): noted for a later message, not fatal */
			rd_kafka_resp_err_t e = rm->err;
			R.rd_kafka_message_destroy(rm);
			if (e == RD_KAFKA_RESP_ERR__FATAL)
				return cluster_error(k, "reading", e, err);
			if (e != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				snprintf(k->log, sizeof k->log, "%s", R.rd_kafka_err2str(e));
			continue;
		}
		mq_kafka_msg_t m;
		if (msg_of(k, rm, &m)) {
			R.rd_kafka_message_destroy(rm);
			return mq_err_set(err, MQ_ENOMEM, "out of memory");
		}
		bytes += m.value_len + m.key_len + 64;
		rc = take(ctx, &m);
		R.rd_kafka_message_destroy(rm);
		if (rc < 0)
			return rc;
		n++;
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
	for (int i = 0; !e && i < l->cnt && (uint32_t)i < n; i++)
		off[l->elems[i].partition < (int32_t)n ? l->elems[i].partition : 0] =
			l->elems[i].offset >= 0 ? l->elems[i].offset : -1;
	R.rd_kafka_topic_partition_list_destroy(l);
	return e ? cluster_error(k, "the group's committed offsets", e, err) : 0;
}

int mq_kafka_leave(mq_kafka_t *k)
{
	if (k->ck && k->group[0])
		R.rd_kafka_unsubscribe(k->ck);
	return 0;
}

#endif
