/*
 * test_kafka.c -- lib/kafka.c: endpoints in no valid form and a cluster
 * that is not there, refused at once; and, where mq was built with
 * librdkafka and the mock cluster exists (build/tests/mock_cluster), a
 * batch of records produced and each delivery reported (partition
 * counts from the metadata, a pinned partition, a record over the size
 * limit refused), read back as sent (key, no key, an empty key, headers,
 * the id), then every record unacknowledged when the cluster stops
 * reported as failed within the timeout.  A member's assignment as the
 * cluster encodes it parsed, every count checked against the bytes there.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch.h"
#include "kafka.h"

typedef struct reports {
	int ok, failed;
	char why[256];
} reports_t;

static void delivered(void *opaque, int ok, const char *why)
{
	reports_t *r = opaque;
	if (ok) {
		r->ok++;
	} else {
		r->failed++;
		snprintf(r->why, sizeof r->why, "%s", why ? why : "");
	}
}

/* Kafka's murmur2 partitioner: the Java client's test vectors
 * (Utils.murmur2, made positive), and partitions of four. */
static void test_key_partition(void **state)
{
	(void)state;
	static const struct {
		const char *key;
		uint32_t hash, of4;
	} v[] = {
		{"21", 1173551340, 0},
		{"foobar", 1357151166, 2},
		{"a-little-bit-long-string", 1161502112, 0},
		{"a-little-bit-longer-string", 661178819, 3},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 2088585677, 1},
		{"abc", 479470107, 3},
		{"", 275646681, 1},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		assert_int_equal(mq_kafka_key_partition(v[i].key, strlen(v[i].key), 2147483647u), v[i].hash);
		assert_int_equal(mq_kafka_key_partition(v[i].key, strlen(v[i].key), 4), v[i].of4);
	}
	assert_int_equal(mq_kafka_key_partition("abc", 3, 1), 0);
}

static void test_endpoints(void **state)
{
	(void)state;
	assert_true(mq_kafka_endpoint("kafka://h:9092"));
	assert_false(mq_kafka_endpoint("tcp://h:9092"));
	assert_false(mq_kafka_endpoint(NULL));
	if (!mq_kafka_built())
		skip();
	const char *bad[] = {"kafka://", "kafka://h", "kafka://h:0", "kafka://h:70000", "kafka://:9", "kafka://h:1,",
			     "kafka://h:1,,h:2", "kafka://h:x"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		mq_kafka_opts_t o = {.endpoint = bad[i], .delivered = delivered};
		mq_kafka_t *k = (mq_kafka_t *)1;
		mq_err_t err;
		assert_int_equal(mq_kafka_open(&o, &k, &err), -MQ_EINVAL);
		assert_null(k);
		assert_non_null(strstr(err.msg, "kafka://HOST:PORT[,HOST:PORT...]"));
	}
	/* nothing listens: said at once, naming the endpoint */
	mq_kafka_opts_t o = {.endpoint = "kafka://127.0.0.1:9,127.0.0.1:10", .timeout_ms = 30000};
	mq_kafka_t *k;
	mq_err_t err;
	int64_t t0 = mq_mono_ms();
	assert_int_equal(mq_kafka_open(&o, &k, &err), -MQ_ECONNECT);
	assert_true(mq_mono_ms() - t0 < 1000);
	assert_string_equal(err.msg, "cannot connect to kafka://127.0.0.1:9,127.0.0.1:10: connection refused (is the "
				     "Kafka cluster running? set -b or MQ_BROKER)");
}

/* The mock cluster as a child: its bootstrap list into bs; its stdin in *in. */
static pid_t mock_start(char *bs, size_t n, FILE **in)
{
	const char *dir = getenv("MQ_UNIT_DIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/mock_cluster", dir ? dir : "build/tests");
	if (access(path, X_OK))
		return -1;
	int to[2], from[2];
	assert_int_equal(pipe(to), 0);
	assert_int_equal(pipe(from), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	FILE *out = fdopen(from[0], "r");
	assert_non_null(fgets(bs, (int)n, out));
	bs[strcspn(bs, "\n")] = '\0';
	fclose(out);
	*in = fdopen(to[1], "w");
	return pid;
}

static void mock_stop(pid_t pid, FILE *in)
{
	fclose(in);
	waitpid(pid, NULL, 0);
}

static void add(mq_batch_builder_t *b, const char *key, const char *value, const char *id)
{
	mq_header_t h = {(const uint8_t *)"h", 1, (const uint8_t *)"v", 1};
	assert_int_equal(mq_batch_add(b, mq_now_ms(), key, key ? strlen(key) : 0, value, strlen(value), id,
				      id ? strlen(id) : 0, &h, 1),
			 0);
}

typedef struct got {
	char line[8][128];
	int64_t ts[8];
	int n;
} got_t;

/* mq_kafka_consume's take: "partition/offset key=K value h=V id=I" */
static int take(void *ctx, const mq_kafka_msg_t *m)
{
	got_t *g = ctx;
	if (g->n < 8)
		g->ts[g->n] = m->timestamp;
	if (g->n < 8)
		snprintf(g->line[g->n++], sizeof g->line[0], "%d/%lld key=%.*s %.*s h=%.*s id=%.*s", m->partition,
			 (long long)m->offset, m->key ? (int)m->key_len : 1, m->key ? (const char *)m->key : "-",
			 (int)m->value_len, (const char *)m->value, m->nheaders ? (int)m->headers[0].value_len : 1,
			 m->nheaders ? (const char *)m->headers[0].value : "-", m->id ? (int)m->id_len : 1,
			 m->id ? (const char *)m->id : "-");
	return 0;
}

/* Reads from what k is assigned until n records came (10 s at most). */
static void read_n(mq_kafka_t *k, got_t *got, int n)
{
	mq_err_t err;
	int64_t until = mq_mono_ms() + 10000;
	while (got->n < n && mq_mono_ms() < until) {
		struct pollfd pf = {mq_kafka_consumer_fd(k), POLLIN, 0};
		poll(&pf, 1, 200);
		assert_true(mq_kafka_consume(k, 0, 1 << 20, take, got, &err) >= 0);
	}
	assert_int_equal(got->n, n);
}

static void test_produce(void **state)
{
	(void)state;
	char bs[512], ep[600];
	FILE *in = NULL;
	pid_t pid = mq_kafka_built() ? mock_start(bs, sizeof bs, &in) : -1;
	if (pid < 0)
		skip();
	snprintf(ep, sizeof ep, "kafka://%s", bs);
	reports_t r = {0};
	mq_kafka_opts_t o = {.endpoint = ep, .client_id = "test_kafka", .timeout_ms = 1500, .delivered = delivered};
	mq_kafka_t *k;
	mq_err_t err;
	assert_int_equal(mq_kafka_open(&o, &k, &err), 0);
	uint32_t parts = 0;
	assert_int_equal(mq_kafka_partitions(k, "t", 1, &parts, &err), 0);
	assert_int_equal(parts, 4); /* the mock cluster's own count for a topic made on first use */
	mq_buf_t buf = {0};
	mq_batch_builder_t b;
	mq_batch_begin(&b, &buf);
	add(&b, "k1", "one", NULL);
	add(&b, NULL, "two", "id-2");
	add(&b, "", "three", NULL);
	size_t len = mq_batch_finish(&b);
	uint32_t queued = 0;
	assert_int_equal(mq_kafka_produce(k, "t", -1, -1, buf.p, len, &r, &queued, &err), 0);
	assert_int_equal(queued, 3);
	assert_int_equal(mq_kafka_partitions(k, "p", 1, &parts, &err), 0);
	assert_int_equal(mq_kafka_produce(k, "p", 2, -1, buf.p, len, &r, &queued, &err), 0);
	int64_t until = mq_mono_ms() + 10000;
	while (r.ok + r.failed < 6 && mq_mono_ms() < until)
		mq_kafka_poll(k, 100);
	assert_int_equal(r.ok, 6);
	assert_int_equal(r.failed, 0);
	/* read back: the pinned copy in partition 2 of p, as it was sent */
	int64_t st, en, at;
	assert_int_equal(mq_kafka_offsets(k, "p", 2, -1, &st, &en, &at, &err), 0);
	assert_true(st == 0 && en == 3 && at == -1);
	char **names;
	uint32_t *nparts, ntop;
	assert_int_equal(mq_kafka_topics(k, &names, &nparts, &ntop, &err), 0);
	assert_int_equal(ntop, 2);
	assert_true(!strcmp(names[0], "p") || !strcmp(names[1], "p"));
	assert_true(!strcmp(names[0], "t") || !strcmp(names[1], "t"));
	assert_int_equal(nparts[0], 4);
	free(names[0]), free(names[1]), free(names), free(nparts);
	const char *tn[1] = {"p"};
	int32_t pn[1] = {2};
	int64_t on[1] = {0};
	assert_int_equal(mq_kafka_assign(k, tn, pn, on, 1, &err), 0);
	got_t got = {0};
	read_n(k, &got, 3);
	assert_string_equal(got.line[0], "2/0 key=k1 one h=v id=-");
	assert_string_equal(got.line[1], "2/1 key=- two h=v id=id-2");
	assert_string_equal(got.line[2], "2/2 key= three h=v id=-");
	/* a partition the topic has not: refused when handed over */
	(void)mq_kafka_produce(k, "t", 9, -1, buf.p, len, &r, &queued, &err);
	until = mq_mono_ms() + 5000;
	while (r.ok + r.failed < 6 + (int)queued && mq_mono_ms() < until)
		mq_kafka_poll(k, 100);
	assert_int_equal(r.ok, 6);
	/* a record over the cluster's limit, with headers: refused, nothing queued */
	mq_buf_t big = {0};
	mq_batch_begin(&b, &big);
	char *huge = malloc(1000001);
	memset(huge, 'x', 1000000);
	huge[1000000] = '\0';
	add(&b, "k", huge, "id");
	size_t blen = mq_batch_finish(&b);
	assert_int_equal(mq_kafka_produce(k, "t", -1, -1, big.p, blen, &r, &queued, &err), -MQ_ETOOBIG);
	assert_int_equal(queued, 0);
	free(huge);
	mq_buf_free(&big);
	/* Records without headers or a time of their own go over together:
	 * keyed ones where Kafka's partitioner puts the key (as the one with
	 * a header, which goes alone), the others to the partition given for
	 * them; librdkafka stamps their time. */
	mq_buf_t plain = {0};
	mq_batch_begin(&b, &plain);
	assert_int_equal(mq_batch_add(&b, 0, "k1", 2, "a", 1, NULL, 0, NULL, 0), 0);
	assert_int_equal(mq_batch_add(&b, 0, NULL, 0, "b", 1, NULL, 0, NULL, 0), 0);
	add(&b, "k1", "c", NULL);
	assert_int_equal(mq_batch_add(&b, 0, NULL, 0, "d", 1, NULL, 0, NULL, 0), 0);
	size_t plen = mq_batch_finish(&b);
	int64_t sent = mq_now_ms();
	assert_int_equal(mq_kafka_partitions(k, "q", 1, &parts, &err), 0);
	assert_int_equal(mq_kafka_produce(k, "q", -1, 3, plain.p, plen, &r, &queued, &err), 0);
	assert_int_equal(queued, 4);
	until = mq_mono_ms() + 10000;
	while (r.ok < 10 && mq_mono_ms() < until)
		mq_kafka_poll(k, 100);
	assert_int_equal(r.ok, 10);
	const char *qn[4] = {"q", "q", "q", "q"};
	int32_t qp[4] = {0, 1, 2, 3};
	int64_t qo[4] = {0, 0, 0, 0};
	assert_int_equal(mq_kafka_assign(k, qn, qp, qo, 4, &err), 0);
	got = (got_t){0};
	read_n(k, &got, 4);
	int ka = -1, kc = -1, kb = -1, kd = -1;
	for (int i = 0; i < 4; i++) {
		int part = got.line[i][0] - '0';
		const char *v = strchr(got.line[i], ' ') + 1;
		if (!strncmp(v, "key=k1 a ", 9))
			ka = part;
		else if (!strncmp(v, "key=k1 c ", 9))
			kc = part;
		else if (!strncmp(v, "key=- b ", 8))
			kb = part;
		else if (!strncmp(v, "key=- d ", 8))
			kd = part;
		assert_true(got.ts[i] >= sent - 1000 && got.ts[i] <= mq_now_ms());
	}
	assert_true(ka >= 0 && ka == kc);
	assert_int_equal(kb, 3);
	assert_int_equal(kd, 3);
	/* the cluster gone: what is handed over now fails within the timeout */
	mock_stop(pid, in);
	int before = r.failed;
	assert_int_equal(mq_kafka_produce(k, "t", 1, -1, buf.p, len, &r, &queued, &err), 0);
	assert_int_equal(queued, 3);
	assert_int_equal(mq_kafka_produce(k, "q", -1, 2, plain.p, plen, &r, &queued, &err), 0);
	assert_int_equal(queued, 4);
	int64_t t0 = mq_mono_ms();
	until = t0 + 10000;
	while (r.failed < before + 7 && mq_mono_ms() < until)
		mq_kafka_poll(k, 200);
	assert_int_equal(r.failed, before + 7);
	assert_int_equal(r.ok, 10);
	assert_true(mq_mono_ms() - t0 < 5000);
	assert_true(r.why[0]);
	mq_buf_free(&buf);
	mq_buf_free(&plain);
	mq_kafka_close(k);
}

/* Kafka's ConsumerProtocol assignment: version, topics (name, partitions), user data. */
static void test_assignment(void **state)
{
	(void)state;
	static const uint8_t ok[] = {0, 1,                     /* version 1 */
				     0, 0, 0, 2,               /* two topics */
				     0, 2, 'a', 'b', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, /* ab: 0, 3 */
				     0, 1, 'c', 0, 0, 0, 1, 0, 0, 0, 7,               /* c: 7 */
				     0, 0, 0, 2, 'u', 'd'};    /* user data, not read */
	mq_kafka_tp_t *v;
	uint32_t n;
	mq_err_t err;
	assert_int_equal(mq_kafka_assignment_parse(ok, sizeof ok, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].topic, "ab");
	assert_int_equal(v[0].partition, 0);
	assert_string_equal(v[1].topic, "ab");
	assert_int_equal(v[1].partition, 3);
	assert_string_equal(v[2].topic, "c");
	assert_int_equal(v[2].partition, 7);
	mq_kafka_tp_free(v, n);
	/* nothing yet: no partitions */
	assert_int_equal(mq_kafka_assignment_parse(ok, 0, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	/* every cut before the user data is refused, with nothing left over */
	for (size_t len = 1; len < sizeof ok - 6; len++) {
		assert_int_equal(mq_kafka_assignment_parse(ok, len, &v, &n, &err), -MQ_ECORRUPT);
		assert_null(v);
		assert_int_equal(n, 0);
		assert_non_null(strstr(err.msg, "cut short or malformed"));
	}
	/* counts far beyond the bytes: refused before anything is allocated */
	static const uint8_t huge_topics[] = {0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, 'x', 0, 0, 0, 0};
	assert_int_equal(mq_kafka_assignment_parse(huge_topics, sizeof huge_topics, &v, &n, &err), -MQ_ECORRUPT);
	static const uint8_t huge_parts[] = {0, 0, 0, 0, 0, 1, 0, 1, 'x', 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1};
	assert_int_equal(mq_kafka_assignment_parse(huge_parts, sizeof huge_parts, &v, &n, &err), -MQ_ECORRUPT);
	static const uint8_t neg[] = {0, 0, 0xff, 0xff, 0xff, 0xff};
	assert_int_equal(mq_kafka_assignment_parse(neg, sizeof neg, &v, &n, &err), -MQ_ECORRUPT);
	static const uint8_t neg_name[] = {0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0};
	assert_int_equal(mq_kafka_assignment_parse(neg_name, sizeof neg_name, &v, &n, &err), -MQ_ECORRUPT);
	/* past Kafka's limits: a name over 249 bytes, more partitions than a
	 * member can be assigned (each would cost a copy of the name) */
	size_t big = 10 + 250 + 4 * (MQ_KAFKA_ASSIGNED_MAX + 1);
	uint8_t *b = calloc(1, big);
	assert_non_null(b);
	b[5] = 1, b[6] = 250 >> 8, b[7] = 250 & 0xff;
	memset(b + 8, 'x', 250);
	assert_int_equal(mq_kafka_assignment_parse(b, big, &v, &n, &err), -MQ_ECORRUPT);
	b[6] = 0, b[7] = 249; /* 249 is a name; then the count: one too many */
	uint32_t many = MQ_KAFKA_ASSIGNED_MAX + 1;
	b[8 + 249] = (uint8_t)(many >> 24), b[9 + 249] = (uint8_t)(many >> 16), b[10 + 249] = (uint8_t)(many >> 8),
	b[11 + 249] = (uint8_t)many;
	assert_int_equal(mq_kafka_assignment_parse(b, big, &v, &n, &err), -MQ_ECORRUPT);
	many--;
	b[11 + 249] = (uint8_t)many;
	assert_int_equal(mq_kafka_assignment_parse(b, big, &v, &n, &err), 0);
	assert_int_equal(n, MQ_KAFKA_ASSIGNED_MAX);
	assert_int_equal(strlen(v[0].topic), 249);
	mq_kafka_tp_free(v, n);
	free(b);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_partition),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_produce),
		cmocka_unit_test(test_assignment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
