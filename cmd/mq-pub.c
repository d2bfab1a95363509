/*
 * mq-pub -- standard input (or -m TEXT) to messages on a topic.
 *
 * Input is read in large blocks and cut into records by the reader
 * (record.h); records are packed straight into one batch per partition
 * and handed to the pipelined producer (client.h), which keeps a window
 * of batches in flight and resends on silence with the same producer id
 * and sequences.  A batch goes out when it is full (--batch records or
 * BATCH_BYTES), or when standard input has nothing more to read right
 * now and --linger has passed since the batch was started: so a file is
 * sent in big batches while a lone interactive line goes out at once.
 *
 * Exit status: 0 when every message was acknowledged; 1 otherwise
 * (saying how many were not and why); 2 for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "cli_done.h"
#include "client.h"
#include "hash.h"
#include "kafka.h"
#include "lag.h"
#include "mq.h"
#include "record.h"
#include "txn.h"

static const char *prog = "mq-pub";

#define WINDOW 32
#define BATCH_DEFAULT 10000
#define BATCH_BYTES ((size_t)1 << 20)
/* A checker's long poll: a broker that restarted (and lost the poll) is
 * asked again within this and the resend time. */
#define CHECK_WAIT_MS 5000

static volatile sig_atomic_t stop;

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-pub -t TOPIC [-k KEY | -K DELIM] [-p PARTITION] [-m MESSAGE] [options] < records\n"
		"       mq-pub -f json|msgpack [options] < envelopes   (each to its own topic)\n"
		"       mq-pub -t TOPIC --prepare [options] < records\n"
		"       mq-pub --commit TXID | --rollback TXID [-t TOPIC]\n"
		"       mq-pub --txn-checker CMD -t TOPIC [-f FMT | -0]\n"
		"\n"
		"  -t, --topic NAME         topic to publish to (created if missing); without it,\n"
		"                           envelopes go to the topic each one names\n"
		MQ_CLI_HELP_BROKER
		"  -k, --key KEY            key of every message\n"
		"  -K, --key-delim DELIM    split each record at the first DELIM into key and value\n"
		"  -p, --partition N        publish to partition N (default: by key, else spread)\n"
		"  -m, --message TEXT       publish TEXT as one message, ignoring stdin\n"
		"  -0                       records are NUL-terminated instead of lines\n"
		"  -D, --delimiter DELIM    records end at DELIM (any bytes; escapes \\n \\t \\0 \\xHH)\n"
		"      --whole              all of standard input is one message (binary-safe)\n"
		"      --file FILE          FILE is one message, as --whole\n"
		"  -f, --format FMT         input format: lines, nul, json, msgpack (envelopes)\n"
		"  -H, --header NAME=VALUE  add a header to every message (repeatable)\n"
		"      --batch N            at most N messages per batch (default %d)\n"
		"      --linger DURATION    wait this long for more input to fill a batch (default 0)\n"
		"      --max-message-bytes SIZE  refuse larger messages (default: the broker's limit)\n"
		"      --ttl DURATION       a message not delivered within DURATION (counted from when\n"
		"                           it is due) is never delivered\n"
		"      --delay DURATION     messages invisible to consumers for DURATION\n"
		"      --at TIME            messages invisible until TIME (MS since the epoch,\n"
		"                           2026-11-24T10:00:00Z, +10m; a past TIME: at once)\n"
		"      --id key|hash|none   message id for the broker's dedup window: the key, a\n"
		"                           hash of key and value, or none (default: the id of\n"
		"                           envelope input, else none)\n"
		"      --with-seq           over Kafka: number the messages in the headers mq.producer\n"
		"                           and mq.seq, for mq-sub --check-seq (mq-serve numbers\n"
		"                           every message itself)\n"
		"      --progress, --no-progress  a progress line on stderr (default: on a terminal,\n"
		"                           with a regular file as input)\n"
		"      --prepare            store all input as one transaction, invisible to\n"
		"                           consumers; print its id on stdout\n"
		"      --commit TXID        make every message of the transaction visible at once\n"
		"      --rollback TXID      discard the transaction\n"
		"      --txn-checker CMD    answer the broker's checks of undecided transactions of\n"
		"                           -t TOPIC: CMD gets $MQ_TXN and the messages on stdin\n"
		"                           (as -f says), exits 0 to commit, 1 to roll back, else\n"
		"                           ask again later (runs until interrupted)\n"
		"  -v, --verbose            counts on stderr at the end\n"
		"  -q, --quiet              no warnings about single records\n"
		"  -h, --help               this help;  -V, --version  the version\n",
		BATCH_DEFAULT);
}

enum {
	OPT_BATCH = 256,
	OPT_LINGER,
	OPT_MAXMSG,
	OPT_PROGRESS,
	OPT_NO_PROGRESS,
	OPT_ID,
	OPT_TTL,
	OPT_DELAY,
	OPT_AT,
	OPT_PREPARE,
	OPT_COMMIT,
	OPT_ROLLBACK,
	OPT_CHECKER,
	OPT_WHOLE,
	OPT_FILE,
	OPT_WITH_SEQ,
};

static const struct option longopts[] = {
	{"topic", required_argument, NULL, 't'},
	{"key", required_argument, NULL, 'k'},
	{"key-delim", required_argument, NULL, 'K'},
	{"partition", required_argument, NULL, 'p'},
	{"message", required_argument, NULL, 'm'},
	{"format", required_argument, NULL, 'f'},
	{"header", required_argument, NULL, 'H'},
	{"batch", required_argument, NULL, OPT_BATCH},
	{"linger", required_argument, NULL, OPT_LINGER},
	{"max-message-bytes", required_argument, NULL, OPT_MAXMSG},
	{"progress", no_argument, NULL, OPT_PROGRESS},
	{"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
	MQ_CLI_LONGOPTS,
	{"id", required_argument, NULL, OPT_ID},
	{"ttl", required_argument, NULL, OPT_TTL},
	{"delay", required_argument, NULL, OPT_DELAY},
	{"at", required_argument, NULL, OPT_AT},
	{"prepare", no_argument, NULL, OPT_PREPARE},
	{"commit", required_argument, NULL, OPT_COMMIT},
	{"rollback", required_argument, NULL, OPT_ROLLBACK},
	{"txn-checker", required_argument, NULL, OPT_CHECKER},
	{"delimiter", required_argument, NULL, 'D'},
	{"whole", no_argument, NULL, OPT_WHOLE},
	{"file", required_argument, NULL, OPT_FILE},
	{"with-seq", no_argument, NULL, OPT_WITH_SEQ},
	{NULL, 0, NULL, 0},
};

enum { TX_NONE, TX_PREPARE, TX_COMMIT, TX_ROLLBACK, TX_CHECKER };

typedef struct opts {
	mq_cli_t cli;
	const char *topic, *key, *delim, *message;
	int64_t linger_ms;
	int64_t partition; /* -1: by key or spread */
	mq_fmt_t fmt;
	int fmt_set, nul;
	mq_header_t headers[MQ_REC_MAX_HEADERS];
	uint32_t nheaders;
	uint64_t batch, max_msg;
	int progress;
	enum { ID_INPUT, ID_KEY, ID_HASH, ID_NONE } id;
	mq_times_t times; /* --at, --delay, --ttl */
	int at_set;
	int tx;              /* TX_*: what mq-pub does with transactions */
	uint64_t txid;       /* --commit, --rollback */
	const char *checker; /* --txn-checker CMD */
	uint8_t rdelim[256]; /* -D, unescaped */
	size_t rdelim_len;
	int has_rdelim, whole;
	const char *file;    /* --file */
	int with_seq;        /* --with-seq */
} opts_t;

/* --prepare, --commit, --rollback and --txn-checker exclude each other. */
static int set_tx(opts_t *o, int mode, const char *opt, mq_err_t *err)
{
	static const char *const names[] = {"", "--prepare", "--commit", "--rollback", "--txn-checker"};
	if (o->tx && o->tx != mode)
		return mq_err_set(err, MQ_EINVAL, "%s and %s do not go together", names[o->tx], opt);
	o->tx = mode;
	return 0;
}

static int parse_header(opts_t *o, const char *s, mq_err_t *err)
{
	const char *eq = strchr(s, '=');
	if (!eq || eq == s)
		return mq_err_set(err, MQ_EINVAL, "-H '%.200s': expected NAME=VALUE", s);
	if (o->nheaders == MQ_REC_MAX_HEADERS)
		return mq_err_set(err, MQ_EINVAL, "-H '%.200s': too many headers (at most %d)", s, MQ_REC_MAX_HEADERS);
	mq_header_t *h = &o->headers[o->nheaders++];
	*h = (mq_header_t){(const uint8_t *)s, (size_t)(eq - s), (const uint8_t *)eq + 1, strlen(eq + 1)};
	return 0;
}

/* The options of mq-pub itself: 0 or -MQ_EINVAL. */
static int own_option(void *ctx, int c, const char *arg, int idx, mq_err_t *err)
{
	(void)idx;
	opts_t *o = ctx;
	uint64_t v;
	mq_err_t why;
	switch (c) {
	case 't': o->topic = arg; return 0;
	case 'k': o->key = arg; return 0;
	case 'K': o->delim = arg; return 0;
	case 'm': o->message = arg; return 0;
	case OPT_WHOLE: o->whole = 1; return 0;
	case OPT_WITH_SEQ: o->with_seq = 1; return 0;
	case OPT_FILE: o->file = arg; o->whole = 1; return 0;
	case 'D':
		if (strlen(arg) >= sizeof o->rdelim)
			return mq_err_set(err, MQ_EINVAL, "-D: the delimiter is too long (at most %zu bytes)", sizeof o->rdelim - 1);
		if (mq_unescape(arg, o->rdelim, &o->rdelim_len, &why))
			return mq_err_set(err, MQ_EINVAL, "-D %s", why.msg);
		if (o->rdelim_len == 0)
			return mq_err_set(err, MQ_EINVAL, "-D: the delimiter is empty");
		o->has_rdelim = 1;
		return 0;
	case '0': o->nul = 1; return 0;
	case OPT_PROGRESS: o->progress = 1; return 0;
	case OPT_NO_PROGRESS: o->progress = 0; return 0;
	case 'H': return parse_header(o, arg, err);
	case OPT_LINGER: return mq_parse_duration_ms(arg, &o->linger_ms, err);
	case 'p':
		if (mq_parse_u64(arg, &v, err) || v >= 10000000)
			return mq_err_set(err, MQ_EINVAL, "-p '%.200s': expected a partition number (0, 1, ...)", arg);
		o->partition = (int64_t)v;
		return 0;
	case 'f':
		if (mq_fmt_parse(arg, &o->fmt, err) || o->fmt == MQ_FMT_TEMPLATE)
			return mq_err_set(err, MQ_EINVAL, "-f '%.200s': unknown format (use lines, nul, json or msgpack)", arg);
		o->fmt_set = 1;
		return 0;
	case OPT_BATCH:
		if (mq_parse_u64(arg, &o->batch, err) || o->batch == 0 || o->batch > 1000000)
			return mq_err_set(err, MQ_EINVAL, "--batch '%.200s': expected a number from 1 to 1000000", arg);
		return 0;
	case OPT_MAXMSG:
		if (mq_parse_size(arg, &o->max_msg, err))
			return -MQ_EINVAL;
		if (o->max_msg == 0)
			return mq_err_set(err, MQ_EINVAL, "--max-message-bytes: must be more than 0");
		return 0;
	case OPT_ID:
		if (!strcmp(arg, "key"))
			o->id = ID_KEY;
		else if (!strcmp(arg, "hash"))
			o->id = ID_HASH;
		else if (!strcmp(arg, "none"))
			o->id = ID_NONE;
		else
			return mq_err_set(err, MQ_EINVAL, "--id '%.200s': use key, hash or none", arg);
		return 0;
	case OPT_TTL:
		if (mq_parse_duration_ms(arg, &o->times.ttl_ms, &why))
			return mq_err_set(err, MQ_EINVAL, "--ttl: %s", why.msg);
		if (o->times.ttl_ms <= 0)
			return mq_err_set(err, MQ_EINVAL, "--ttl '%.200s': must be more than 0", arg);
		return 0;
	case OPT_DELAY:
		if (mq_parse_duration_ms(arg, &o->times.delay_ms, &why))
			return mq_err_set(err, MQ_EINVAL, "--delay: %s", why.msg);
		return 0;
	case OPT_AT:
		o->at_set = 1;
		if (mq_time_parse(arg, mq_now_ms(), &o->times.at_ms, &why))
			return mq_err_set(err, MQ_EINVAL, "--at: %s", why.msg);
		if (o->times.at_ms <= 0)
			o->times.at_ms = 1; /* the epoch itself: due long ago */
		return 0;
	case OPT_PREPARE: return set_tx(o, TX_PREPARE, "--prepare", err);
	case OPT_COMMIT:
	case OPT_ROLLBACK:
		if (set_tx(o, c == OPT_COMMIT ? TX_COMMIT : TX_ROLLBACK, c == OPT_COMMIT ? "--commit" : "--rollback", err))
			return -MQ_EINVAL;
		return mq_txn_id_parse(arg, &o->txid, err);
	case OPT_CHECKER:
		o->checker = arg;
		return set_tx(o, TX_CHECKER, "--txn-checker", err);
	default:
		return mq_err_set(err, MQ_EINVAL, "option '-%c' is not handled", c);
	}
}

/* What a Kafka cluster cannot do: refused by name, with what to use. */
static int check_kafka(const opts_t *o, mq_err_t *err)
{
	if (!mq_kafka_endpoint(mq_client_default_endpoint(o->cli.broker)))
		return 0;
	if (o->tx)
		return mq_err_set(err, MQ_EINVAL, "transactions (--prepare, --commit, --rollback, --txn-checker) are "
				  "mq-serve's half messages, which Kafka has not: publish to an mq-serve endpoint");
	if (o->times.delay_ms || o->at_set || o->times.ttl_ms)
		return mq_err_set(err, MQ_EINVAL, "%s: Kafka cannot hold messages back or expire them one by one: publish "
				  "to an mq-serve endpoint, or set the topic's retention.ms in Kafka",
				  o->times.ttl_ms ? "--ttl" : o->at_set ? "--at" : "--delay");
	if (o->id == ID_KEY || o->id == ID_HASH)
		return mq_err_set(err, MQ_EINVAL, "--id: a Kafka cluster keeps no dedup window (its idempotent producer, "
				  "which mq-pub uses, drops the retries of one run): drop --id, deduplicate when "
				  "reading with mq-dedup, or publish to an mq-serve endpoint");
	return 0;
}

static int check_opts(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	if (mq_cli_check_broker(&o->cli, err) || check_kafka(o, err))
		return -MQ_EINVAL;
	int decide = o->tx == TX_COMMIT || o->tx == TX_ROLLBACK;
	int envelopes = o->fmt == MQ_FMT_JSON || o->fmt == MQ_FMT_MSGPACK;
	if (!o->topic && !decide && (!envelopes || o->tx))
		return mq_err_set(err, MQ_EINVAL, "no topic: give one with -t TOPIC%s",
				  o->tx ? "" : " (only envelopes, -f json|msgpack, can name their own)");
	if (o->topic && mq_name_check("topic", o->topic, 0, err))
		return -MQ_EINVAL;
	if ((decide || o->tx == TX_CHECKER) && (o->message || o->key || o->delim || o->partition >= 0 || o->nheaders))
		return mq_err_set(err, MQ_EINVAL, "--%s takes no messages: -m, -k, -K, -p and -H do not go with it",
				  o->tx == TX_CHECKER ? "txn-checker" : decide && o->tx == TX_COMMIT ? "commit" : "rollback");
	if (o->key && o->delim)
		return mq_err_set(err, MQ_EINVAL, "-k and -K do not go together");
	if (o->whole && (o->message || o->has_rdelim || o->nul || o->fmt_set))
		return mq_err_set(err, MQ_EINVAL, "--%s makes one message of all the input: -m, -D, -0 and -f do not go "
				  "with it", o->file ? "file" : "whole");
	if (o->has_rdelim && (o->nul || (o->fmt_set && o->fmt != MQ_FMT_LINES)))
		return mq_err_set(err, MQ_EINVAL, "-D splits lines input: it does not go with -0 or -f");
	if (o->has_rdelim && o->message)
		return mq_err_set(err, MQ_EINVAL, "-D does not go with -m");
	if (o->nul) {
		if (o->fmt_set && o->fmt != MQ_FMT_NUL && o->fmt != MQ_FMT_LINES)
			return mq_err_set(err, MQ_EINVAL, "-0 and -f json|msgpack do not go together");
		o->fmt = MQ_FMT_NUL;
	}
	if (o->delim && !*o->delim)
		return mq_err_set(err, MQ_EINVAL, "-K: the delimiter is empty");
	if (o->delim && (o->fmt == MQ_FMT_JSON || o->fmt == MQ_FMT_MSGPACK))
		return mq_err_set(err, MQ_EINVAL, "-K does not go with -f json|msgpack (envelopes carry their key)");
	if (o->message && (o->fmt == MQ_FMT_JSON || o->fmt == MQ_FMT_MSGPACK))
		return mq_err_set(err, MQ_EINVAL, "-m does not go with -f json|msgpack");
	if (o->at_set && o->times.delay_ms)
		return mq_err_set(err, MQ_EINVAL, "--at and --delay do not go together (give one due time)");
	if (o->tx && (o->at_set || o->times.delay_ms || o->times.ttl_ms))
		return mq_err_set(err, MQ_EINVAL, "--ttl, --delay and --at do not go with transactions in this version "
				  "(a transaction's messages become visible when it is committed)");
	return 0;
}

/* 0 to go on, 1 to exit 0 (help, version), 2 usage error. */
static int parse_opts(int argc, char **argv, opts_t *o)
{
	mq_err_t err;
	int r = mq_cli_parse(argc, argv, ":t:k:K:p:m:0f:H:D:" MQ_CLI_SHORTOPTS, longopts, &o->cli, own_option, check_opts, o, &err);
	return mq_cli_done(r, prog, usage, &err);
}

/* ---- publishing ---- */

/* A topic being published to: its own client (so replies never mix),
 * producer and open batches.  With -t there is one; without -t the
 * envelopes name theirs, and at most MAX_DESTS are open at once (the
 * one used least recently is flushed and closed to make room). */
typedef struct dest {
	char topic[MQ_NAME_MAX + 1];
	mq_client_t *c;
	mq_producer_t *p;
	uint32_t partitions;
	mq_batch_builder_t *b;
	mq_buf_t *bufs;
	int64_t *opened; /* mono ms a partition's batch got its first record; 0 = none open */
	uint32_t rr;     /* partition of unkeyed records */
	uint64_t *seq;   /* --with-seq over Kafka: each partition's next number */
	char pid[24];    /* and the producer id, as text */
	uint64_t used;   /* s->tick when last used */
} dest_t;

#define MAX_DESTS 16
_Static_assert(MAX_DESTS <= MQ_PRODUCERS_POLL_MAX, "one wait covers every destination");

typedef struct pub {
	opts_t *o;
	mq_client_t *c;  /* the first destination's client (control calls, --prepare) */
	dest_t d[MAX_DESTS];
	uint32_t nd;
	uint64_t tick;
	mq_producer_stats_t closed; /* of destinations closed to make room */
	uint64_t read, too_big, bad;
	char first_bad[320]; /* -q: the first record refused here, for the summary */
	int64_t now_ms;
	int kafka; /* a Kafka cluster: records without a time get librdkafka's as it takes them; keys placed by murmur2 */
	mq_buf_t idbuf; /* --id hash: what is hashed */
	char idhex[33];
	int failed;      /* broker silent: stop */
	mq_err_t err;
	uint64_t txid;        /* --prepare: the transaction being prepared */
	uint32_t tx_batches;  /* --prepare: batches the broker holds */
	/* progress */
	int64_t prog_start, prog_last;
	int prog_tty;
	int64_t prog_size; /* stdin's size when it is a regular file, else -1 */
	const mq_reader_t *rd; /* stdin's reader, for how far into the file it is */
} pub_t;

/* A record not sent: said now, or with -q kept (the first one) for the
 * summary line, which then says why instead of "see above". */
static void bad_record(pub_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_record(pub_t *s, const char *fmt, ...)
{
	char line[sizeof s->first_bad];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (!s->o->cli.quiet)
		fprintf(stderr, "%s: %s\n", prog, line);
	else if (!s->first_bad[0])
		memcpy(s->first_bad, line, sizeof line);
}

static void report_refusals(pub_t *s)
{
	const char *e;
	for (uint32_t i = 0; i < s->nd; i++)
		while (s->d[i].p && (e = mq_producer_take_error(s->d[i].p)))
			fprintf(stderr, "%s: topic '%s': %s\n", prog, s->d[i].topic, e);
}

/* --prepare: one batch of the transaction, stored before the next. */
static int send_half(pub_t *s, dest_t *d, uint32_t part)
{
	int dup;
	if (!mq_batch_finish(&d->b[part]))
		return 0;
	if (mq_client_txn_add(d->c, s->txid, s->tx_batches, part, d->bufs[part].p, d->bufs[part].len, &dup, &s->err)) {
		s->failed = 1;
		return -1;
	}
	d->bufs[part].len = 0;
	s->tx_batches++;
	return 0;
}

/* Whether a record of size bytes no longer goes into b. */
static int batch_full(const opts_t *o, const mq_batch_builder_t *b, size_t size)
{
	return b->count >= o->batch || mq_batch_size(b) + size + 32 > BATCH_BYTES;
}

static int send_batch(pub_t *s, dest_t *d, uint32_t part)
{
	d->opened[part] = 0;
	/* Unkeyed records spread batch by batch. */
	if (s->o->partition < 0 && part == d->rr)
		d->rr = (d->rr + 1) % d->partitions;
	if (s->o->tx == TX_PREPARE)
		return send_half(s, d, part);
	if (mq_producer_send(d->p, &d->b[part], part, &s->err)) {
		s->failed = 1;
		return -1;
	}
	report_refusals(s);
	return 0;
}

static int send_open(pub_t *s)
{
	for (uint32_t j = 0; j < s->nd; j++)
		for (uint32_t i = 0; i < s->d[j].partitions && !s->failed; i++)
			if (s->d[j].opened[i])
				send_batch(s, &s->d[j], i);
	return s->failed ? -1 : 0;
}

static void stats_add(mq_producer_stats_t *t, const mq_producer_stats_t *a)
{
	t->sent += a->sent;
	t->acked += a->acked;
	t->duplicates += a->duplicates;
	t->failed += a->failed;
	t->resent += a->resent;
}

/* Every destination's counts, the closed ones' included. */
static void stats(const pub_t *s, mq_producer_stats_t *st)
{
	*st = s->closed;
	for (uint32_t i = 0; i < s->nd; i++) {
		mq_producer_stats_t a;
		if (!s->d[i].p)
			continue;
		mq_producer_stats(s->d[i].p, &a);
		stats_add(st, &a);
	}
}

static void dest_free(dest_t *d, int first)
{
	mq_producer_free(d->p);
	for (uint32_t i = 0; d->bufs && i < d->partitions; i++)
		mq_buf_free(&d->bufs[i]);
	free(d->bufs);
	free(d->b);
	free(d->opened);
	free(d->seq);
	if (!first)
		mq_client_close(d->c); /* the first one's is s->c */
	memset(d, 0, sizeof *d);
}

static int setup_dest(pub_t *s, dest_t *d, const char *topic, mq_client_t *c, mq_err_t *err);

/* The destination of topic (NULL: -t), opened if need be; NULL with
 * s->err and s->failed set when it cannot be. */
static dest_t *dest_for(pub_t *s, const char *topic)
{
	if (!topic || s->o->topic)
		return &s->d[0];
	for (uint32_t i = 0; i < s->nd; i++)
		if (!strcmp(s->d[i].topic, topic)) {
			s->d[i].used = ++s->tick;
			return &s->d[i];
		}
	uint32_t i = s->nd;
	if (s->nd == MAX_DESTS) {
		/* Make room: send, await and close the one used least recently. */
		i = 1;
		for (uint32_t j = 2; j < s->nd; j++)
			if (s->d[j].used < s->d[i].used)
				i = j;
		dest_t *d = &s->d[i];
		for (uint32_t p = 0; p < d->partitions && !s->failed; p++)
			if (d->opened[p])
				send_batch(s, d, p);
		if (s->failed || mq_producer_flush(d->p, &s->err)) {
			s->failed = 1;
			return NULL;
		}
		report_refusals(s);
		mq_producer_stats_t a;
		mq_producer_stats(d->p, &a);
		stats_add(&s->closed, &a);
		dest_free(d, 0);
	}
	dest_t *d = &s->d[i];
	mq_client_t *c = NULL;
	mq_client_opts_t co = {.endpoint = s->o->cli.broker, .verbose = s->o->cli.verbose, .curve_server = s->o->cli.curve_server, .curve_secret = s->o->cli.curve_secret, .timeout_ms = s->o->cli.timeout_ms, .name = prog};
	if (i == 0) {
		c = s->c;
	} else if (mq_cli_client_open(&co, &c, &s->err)) {
		s->failed = 1;
		return NULL;
	}
	if (setup_dest(s, d, topic, c, &s->err)) {
		if (i)
			mq_client_close(c);
		memset(d, 0, sizeof *d);
		s->failed = 1;
		return NULL;
	}
	d->used = ++s->tick;
	if (i == s->nd)
		s->nd++;
	return d;
}

static size_t msg_size(const mq_rec_t *r, const mq_header_t *h, uint32_t nh, size_t key_len)
{
	size_t n = key_len + r->value_len + r->id_len;
	for (uint32_t i = 0; i < nh; i++)
		n += mq_varint_len(h[i].name_len) + h[i].name_len + mq_varint_len(h[i].value_len) + h[i].value_len;
	return n;
}

/* --id hash: s->idhex = 32 hex digits of a fixed-key SipHash-128 of
 * the key (length first, so "no key" and "empty key" differ) and the
 * value.  The same message gets the same id in every mq-pub. */
static int message_hash(pub_t *s, const void *key, size_t key_len, const mq_rec_t *r)
{
	static const mq_hashkey_t k = {0x6d712d7075622d69ull, 0x642d6861736801ull};
	uint8_t len[8];
	mq_put_u64(len, key ? (uint64_t)key_len : UINT64_MAX);
	s->idbuf.len = 0;
	if (mq_buf_append(&s->idbuf, len, 8) || (key_len && mq_buf_append(&s->idbuf, key, key_len)) ||
	    (r->value_len && mq_buf_append(&s->idbuf, r->value, r->value_len))) {
		mq_err_set(&s->err, MQ_ENOMEM, "out of memory");
		s->failed = 1;
		return -1;
	}
	mq_hash128_t hv = mq_hash128(&k, s->idbuf.p, s->idbuf.len);
	snprintf(s->idhex, sizeof s->idhex, "%016llx%016llx", (unsigned long long)hv.hi, (unsigned long long)hv.lo);
	return 0;
}

static int add_record(pub_t *s, const mq_rec_t *r, uint64_t recno)
{
	const opts_t *o = s->o;
	mq_err_t why;
	if (!o->topic && (!r->topic || mq_name_check("topic", r->topic, 0, &why))) {
		s->bad++;
		bad_record(s, "record %" PRIu64 ": %s; not sent (give -t TOPIC, or a valid \"topic\" in each envelope)",
			   recno, r->topic ? why.msg : "no topic");
		return 0;
	}
	const void *key = r->key;
	size_t key_len = r->key_len;
	if (o->key) {
		key = o->key;
		key_len = strlen(o->key);
	}
	mq_header_t hbuf[MQ_REC_MAX_HEADERS + 2];
	const mq_header_t *h = r->headers;
	uint32_t nh = r->nheaders;
	char seqtxt[24];
	if (o->nheaders || r->has_seq) {
		/* An envelope's producer and seq are kept as the origin headers
		 * (and replace any it carried among its headers). */
		uint32_t n = 0;
		for (uint32_t i = 0; i < r->nheaders && n < MQ_REC_MAX_HEADERS; i++)
			if (!r->has_seq || !mq_header_is_origin(&r->headers[i]))
				hbuf[n++] = r->headers[i];
		for (uint32_t i = 0; i < o->nheaders && n < MQ_REC_MAX_HEADERS; i++)
			hbuf[n++] = o->headers[i];
		if (r->has_seq) {
			hbuf[n++] = (mq_header_t){(const uint8_t *)MQ_HDR_PRODUCER, sizeof MQ_HDR_PRODUCER - 1,
						  r->producer, r->producer_len};
			hbuf[n++] = (mq_header_t){(const uint8_t *)MQ_HDR_SEQ, sizeof MQ_HDR_SEQ - 1,
						  (const uint8_t *)seqtxt,
						  (size_t)snprintf(seqtxt, sizeof seqtxt, "%" PRIu64, r->seq)};
		}
		h = hbuf;
		nh = n;
	}
	const void *id = r->id;
	size_t id_len = r->id_len;
	if (o->id == ID_NONE) {
		id = NULL;
		id_len = 0;
	} else if (o->id == ID_KEY) {
		id = key;
		id_len = key ? key_len : 0;
	} else if (o->id == ID_HASH && message_hash(s, key, key_len, r) < 0) {
		return -1;
	} else if (o->id == ID_HASH) {
		id = s->idhex;
		id_len = 32;
	}
	mq_rec_t rr = *r;
	rr.id = id;
	rr.id_len = id_len;
	r = &rr;
	/* --with-seq over Kafka: this run's producer id and the number (up to 64 bytes more) */
	int numbered = o->with_seq && s->kafka && !r->has_seq;
	size_t size = msg_size(r, h, nh, key ? key_len : 0) + (numbered ? 64 : 0);
	if (size > s->o->max_msg) {
		s->too_big++;
		bad_record(s, "record %" PRIu64 ": %zu bytes, over the limit of %" PRIu64 " (--max-message-bytes); not sent",
			   recno, size, o->max_msg);
		return 0;
	}
	dest_t *d = dest_for(s, r->topic);
	if (!d)
		return -1;
	uint32_t part = o->partition >= 0 ? (uint32_t)o->partition
		       : !key ? d->rr
		       : s->kafka ? mq_kafka_key_partition(key, key_len, d->partitions) /* where Kafka puts it */
				  : mq_key_partition(key, key_len, d->partitions);
	mq_batch_builder_t *b = &d->b[part];
	if (d->opened[part] && batch_full(o, b, size)) {
		if (send_batch(s, d, part))
			return -1;
		/* an unkeyed record goes on with the next partition, whose batch
		 * (of keyed records) may be full too */
		if (!key && o->partition < 0 && (part = d->rr, b = &d->b[part], d->opened[part]) && batch_full(o, b, size) &&
		    send_batch(s, d, part))
			return -1;
	}
	if (!d->opened[part]) {
		if (d->p) {
			mq_producer_begin(d->p, part, b, &d->bufs[part]);
		} else { /* --prepare */
			mq_batch_begin(b, &d->bufs[part]);
			b->hdr.txn_id = s->txid;
			b->hdr.flags = MQ_BF_TXN;
		}
		d->opened[part] = mq_mono_ms();
	}
	char seqnum[24];
	if (numbered) { /* nh <= MQ_REC_MAX_HEADERS here: two more fit */
		uint32_t n = 0; /* mq.producer and mq.seq of its own would hide ours from the checker */
		for (uint32_t i = 0; i < nh; i++)
			if (!mq_header_is_origin(&h[i]))
				hbuf[n++] = h[i];
		h = hbuf;
		nh = n;
		hbuf[nh++] = (mq_header_t){(const uint8_t *)MQ_HDR_PRODUCER, sizeof MQ_HDR_PRODUCER - 1, (const uint8_t *)d->pid,
					   strlen(d->pid)};
		hbuf[nh++] = (mq_header_t){(const uint8_t *)MQ_HDR_SEQ, sizeof MQ_HDR_SEQ - 1, (const uint8_t *)seqnum,
					   (size_t)snprintf(seqnum, sizeof seqnum, "%" PRIu64, d->seq[part])};
	}
	int64_t ts = r->timestamp > 0 ? r->timestamp : s->kafka ? 0 : s->now_ms;
	if (mq_batch_add(b, ts, key, key_len, r->value, r->value_len, id, id_len, nh ? h : NULL, nh)) {
		mq_err_set(&s->err, MQ_ENOMEM, "out of memory");
		s->failed = 1;
		return -1;
	}
	if (numbered)
		d->seq[part]++;
	return 0;
}

static void progress(pub_t *s, int last)
{
	int64_t now = mq_mono_ms();
	if (!last && now - s->prog_last < 1000)
		return;
	s->prog_last = now;
	double secs = (double)(now - s->prog_start) / 1000.0;
	mq_producer_stats_t st;
	stats(s, &st);
	/* From a file: how far into it, and when the rest should be read at
	 * the pace so far. */
	char part[64] = "";
	if (s->prog_size > 0 && s->rd) {
		uint64_t pos = mq_reader_consumed(s->rd);
		double done = pos >= (uint64_t)s->prog_size ? 1.0 : (double)pos / (double)s->prog_size;
		char eta[32] = "";
		if (!last && done > 0 && done < 1 && secs > 0) {
			char d[16];
			mq_lag_fmt_secs(d, sizeof d, secs * (1.0 - done) / done + 0.999);
			snprintf(eta, sizeof eta, ", ETA %s", d);
		}
		snprintf(part, sizeof part, ", %d%%%s", (int)(done * 100.0), eta);
	}
	fprintf(stderr, "%s%s: %" PRIu64 " messages, %" PRIu64 " acknowledged, %.0f msg/s%s%s",
		s->prog_tty ? "\r" : "", prog, s->read, st.acked, secs > 0 ? (double)st.acked / secs : 0.0, part,
		!s->prog_tty ? "\n" : last ? "\033[K\n" : "\033[K"); /* on a terminal: what the last one left, cleared */
}

static int input_ready(void)
{
	struct pollfd pf = {.fd = 0, .events = POLLIN};
	return poll(&pf, 1, 0) != 0;
}

/* Wait until fd 0 is readable (1), the deadline passed (0) or a
 * signal came (0), meanwhile handling the broker's replies. */
static int wait_input(pub_t *s, int64_t deadline)
{
	for (;;) {
		/* Replies already in, before the clock is read (one destination:
		 * the wait below takes them first anyway). */
		for (uint32_t i = 0; s->nd > 1 && i < s->nd; i++)
			if (mq_producer_poll(s->d[i].p, 0, &s->err)) {
				s->failed = 1;
				return 0;
			}
		report_refusals(s);
		int64_t now = mq_mono_ms();
		if (stop || (deadline >= 0 && now >= deadline))
			return 0;
		/* Replies, resends and stdin in one wait, over every destination
		 * (envelopes naming their topics have one each); a progress line
		 * once a second. */
		int64_t ms = deadline >= 0 ? deadline - now : -1;
		if (s->o->progress && (ms < 0 || ms > 1000))
			ms = 1000;
		mq_producer_t *ps[MAX_DESTS];
		for (uint32_t i = 0; i < s->nd; i++)
			ps[i] = s->d[i].p;
		int rc = 0;
		if (s->nd) {
			rc = mq_producers_poll(ps, s->nd, ms > INT32_MAX ? INT32_MAX : (int)ms, 0, POLLIN, &s->err);
		} else { /* no destination yet (envelopes): stdin, and a signal */
			struct pollfd pf[2] = {{.fd = 0, .events = POLLIN}, {.fd = mq_cli_signal_fd(), .events = POLLIN}};
			if (poll(pf, pf[1].fd >= 0 ? 2 : 1, ms > INT32_MAX ? INT32_MAX : (int)ms) > 0 && pf[1].revents)
				mq_drain_fd(pf[1].fd);
		}
		if (rc) {
			s->failed = 1;
			return 0;
		}
		report_refusals(s);
		/* With a destination the wait says whether stdin ended it (when
		 * a reply did, stdin is looked at by the next wait). */
		if (s->nd ? mq_client_watch_hit(s->d[0].c) : input_ready())
			return 1;
		if (s->o->progress)
			progress(s, 0);
	}
}

/* Before a read that may block: send what waited long enough.  idle:
 * the input had nothing more a moment ago (mq_reader_trickle), so it is
 * not asked before the batches are looked at. */
static void before_read(pub_t *s, int idle)
{
	while ((idle || !input_ready()) && !s->failed && !stop) {
		idle = 0;
		int64_t oldest = 0;
		for (uint32_t j = 0; j < s->nd; j++)
			for (uint32_t i = 0; i < s->d[j].partitions; i++)
				if (s->d[j].opened[i] && (!oldest || s->d[j].opened[i] < oldest))
					oldest = s->d[j].opened[i];
		if (!oldest) {
			wait_input(s, -1);
			return;
		}
		if (s->o->linger_ms <= 0 || mq_mono_ms() >= oldest + s->o->linger_ms) {
			send_open(s);
			idle = 1; /* the wait that comes next looks at stdin as well */
			continue;
		}
		if (wait_input(s, oldest + s->o->linger_ms))
			return;
	}
}

static int run_stdin(pub_t *s, mq_reader_t *rd)
{
	mq_rec_t rec;
	mq_err_t e;
	s->now_ms = mq_now_ms();
	while (!s->failed && !stop) {
		int rc = mq_reader_next(rd, &rec, &e);
		if (rc > 0) {
			s->read++;
			if (add_record(s, &rec, mq_reader_count(rd)))
				break;
			if (s->o->progress && (s->read & 4095) == 0)
				progress(s, 0); /* also while input never runs dry */
			continue;
		}
		if (rc < 0) {
			bad_record(s, "%s", e.msg);
			s->read++;
			if (rc == -MQ_ETOOBIG)
				s->too_big++;
			else
				s->bad++;
			continue;
		}
		if (mq_reader_eof(rd))
			break;
		if (s->o->tx != TX_PREPARE) /* --prepare sends when a batch is full or at the end */
			before_read(s, mq_reader_trickle(rd));
		if (s->failed || stop)
			break;
		long n = mq_reader_fill(rd, &e);
		if (n < 0 && n != -MQ_EAGAIN) {
			fprintf(stderr, "%s: %s\n", prog, e.msg);
			s->bad++;
			break;
		}
		s->now_ms = mq_now_ms();
		if (s->o->progress)
			progress(s, 0);
	}
	return 0;
}

/* --prepare: all of it or nothing; the id on stdout once it is stored. */
static int finish_prepare(pub_t *s)
{
	uint64_t msgs = 0, bad = s->too_big + s->bad;
	mq_err_t e;
	if (!s->failed)
		send_open(s);
	if (!s->failed && (bad || stop)) {
		if (stop)
			mq_err_set(&s->err, MQ_EAGAIN, "interrupted");
		else
			mq_err_set(&s->err, MQ_EINVAL, "%" PRIu64 " of %" PRIu64 " records were invalid or too big, see "
				   "above", bad, s->read);
		s->failed = 1;
	}
	if (!s->failed && mq_client_txn_end(s->c, s->txid, s->tx_batches, &msgs, &s->err))
		s->failed = 1;
	if (!s->failed && msgs != s->read) {
		mq_err_set(&s->err, MQ_EPROTO, "the broker holds %" PRIu64 " messages of it, not %" PRIu64, msgs, s->read);
		s->failed = 1;
	}
	if (s->failed) {
		/* Discard what the broker holds (if it answers); it would be
		 * rolled back as abandoned anyway. */
		if (s->err.code != MQ_ETIMEDOUT)
			mq_client_txn_decide(s->c, s->txid, s->o->topic, MQ_VERDICT_ROLLBACK, 0, NULL, &e);
		fprintf(stderr, "%s: topic '%s': the transaction was not prepared (%s); none of its %" PRIu64
			" messages will be visible: publish them again\n", prog, s->o->topic, s->err.msg, s->read);
		return 1;
	}
	printf("%016" PRIx64 "\n", s->txid);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: cannot write the transaction id %016" PRIx64 " to standard output: %s; roll it "
			"back with --rollback or let it be checked\n", prog, s->txid, strerror(errno));
		return 1;
	}
	if (s->o->cli.verbose)
		fprintf(stderr, "%s: transaction %016" PRIx64 " prepared: %" PRIu64 " messages in %u batches, "
			"invisible until committed\n", prog, s->txid, msgs, s->tx_batches);
	return 0;
}

static int finish(pub_t *s)
{
	if (s->o->tx == TX_PREPARE)
		return finish_prepare(s);
	if (!s->failed)
		send_open(s);
	for (uint32_t i = 0; i < s->nd && !s->failed; i++)
		if (mq_producer_flush(s->d[i].p, &s->err))
			s->failed = 1;
	report_refusals(s);
	mq_producer_stats_t st;
	stats(s, &st);
	if (s->o->progress)
		progress(s, 1);
	if (s->o->cli.verbose)
		fprintf(stderr, "%s: %" PRIu64 " read, %" PRIu64 " sent, %" PRIu64 " acknowledged (%" PRIu64
			" duplicates), %" PRIu64 " refused, %" PRIu64 " too big, %" PRIu64 " batches resent\n",
			prog, s->read, st.sent, st.acked, st.duplicates, st.failed, s->too_big, st.resent);
	uint64_t missing = s->read > st.acked ? s->read - st.acked : 0;
	if (!missing && !s->failed)
		return 0;
	if (s->failed)
		fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " messages were not acknowledged (%s)\n", prog, missing,
			s->read, s->err.msg);
	else if (st.failed || !s->first_bad[0])
		fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " messages were not acknowledged (%s)\n", prog, missing,
			s->read, st.failed ? "refused by the broker, see above" : "invalid or too big, see above");
	else
		fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " messages were not acknowledged (invalid or too big; "
			"the first: %s)\n", prog, missing, s->read, s->first_bad);
	return 1;
}

/* A destination for topic over client c (created if missing). */
static int setup_dest(pub_t *s, dest_t *d, const char *topic, mq_client_t *c, mq_err_t *err)
{
	const opts_t *o = s->o;
	memset(d, 0, sizeof *d);
	snprintf(d->topic, sizeof d->topic, "%s", topic);
	d->c = c;
	if (mq_client_meta(c, topic, 1, &d->partitions, err))
		return -1;
	if (o->partition >= (int64_t)d->partitions)
		return mq_err_set(err, MQ_ERANGE, "partition %" PRId64 " out of range: topic '%s' has %u partition%s (0-%u)",
				  o->partition, topic, d->partitions, d->partitions == 1 ? "" : "s", d->partitions - 1);
	d->b = calloc(d->partitions, sizeof *d->b);
	d->bufs = calloc(d->partitions, sizeof *d->bufs);
	d->opened = calloc(d->partitions, sizeof *d->opened);
	if (o->with_seq && s->kafka)
		d->seq = calloc(d->partitions, sizeof *d->seq);
	if (!d->b || !d->bufs || !d->opened || (o->with_seq && s->kafka && !d->seq))
		return mq_err_set(err, MQ_ENOMEM, "out of memory");
	if (o->tx == TX_PREPARE) {
		s->txid = mq_txn_id_new();
		return mq_client_txn_begin(c, s->txid, topic, err);
	}
	if (mq_producer_new(c, topic, d->partitions, WINDOW, &d->p, err))
		return -1;
	mq_producer_set_times(d->p, &o->times);
	snprintf(d->pid, sizeof d->pid, "%" PRIu64, mq_producer_id(d->p));
	/* --with-seq over Kafka: numbered in the partition mq-pub chose by the key, so
	 * placed there too (without, librdkafka places keys by murmur2 with the
	 * partition count as the cluster has it now) */
	mq_producer_pin(d->p, o->partition >= 0 || (s->kafka && o->with_seq));
	/* Unkeyed records: the round robin starts at a random partition, so
	 * one-message runs (cron, xargs) spread too. */
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
		r = (uint32_t)mq_mono_ms() ^ (uint32_t)getpid();
	d->rr = r % d->partitions;
	return 0;
}

static int setup(pub_t *s, opts_t *o)
{
	mq_err_t *err = &s->err;
	/* One topic: a lite client (one direct connection, no libzmq loaded
	 * or its threads started; see the Makefile), a third cheaper for a
	 * message end to end.  Envelopes naming their own topics open a full
	 * client per topic and wait on them all at once. */
	mq_client_opts_t co = {.endpoint = o->cli.broker, .verbose = o->cli.verbose, .curve_server = o->cli.curve_server, .curve_secret = o->cli.curve_secret, .timeout_ms = mq_cli_timeout(&o->cli), .name = prog,
			       .lite = o->topic != NULL};
	mq_hello_t h;
	if (mq_cli_client_open(&co, &s->c, err) || mq_client_hello(s->c, &h, err))
		return -1;
	if (!o->max_msg)
		o->max_msg = h.max_message_bytes ? h.max_message_bytes : (1u << 20);
	if (o->topic) {
		if (setup_dest(s, &s->d[0], o->topic, s->c, err))
			return -1;
		s->nd = 1;
	}
	return 0;
}

static void cleanup(pub_t *s)
{
	for (uint32_t i = 0; i < s->nd; i++)
		dest_free(&s->d[i], i == 0);
	mq_buf_free(&s->idbuf);
	mq_client_close(s->c);
}

/* -m TEXT: one record, split by -K like a line. */
static void message_rec(const opts_t *o, mq_rec_t *r)
{
	memset(r, 0, sizeof *r);
	const char *v = o->message;
	const char *d = o->delim ? strstr(v, o->delim) : NULL;
	if (d) {
		r->key = (const uint8_t *)v;
		r->key_len = (size_t)(d - v);
		v = d + strlen(o->delim);
	}
	r->value = (const uint8_t *)v;
	r->value_len = strlen(v);
	r->partition = -1;
	r->offset = -1;
}

/* --whole, --file: all of fd as one record (split by -K like -m), at
 * most max bytes.  0, or -1 with s->err (nothing is sent). */
static int whole_rec(pub_t *s, int fd, const char *name, mq_buf_t *buf, mq_rec_t *r)
{
	const opts_t *o = s->o;
	for (;;) {
		if (mq_buf_reserve(buf, 65536) < 0)
			return mq_err_set(&s->err, MQ_ENOMEM, "%s: out of memory", name), -1;
		ssize_t n = read(fd, buf->p + buf->len, 65536);
		if (n < 0 && errno == EINTR && !stop)
			continue;
		if (n < 0)
			return mq_err_set(&s->err, MQ_EIO, "reading %s: %s", name, stop ? "interrupted" : strerror(errno)), -1;
		if (n == 0)
			break;
		buf->len += (size_t)n;
		if (buf->len > o->max_msg)
			return mq_err_set(&s->err, MQ_ETOOBIG, "%s: more than %" PRIu64 " bytes, over the limit for one "
					  "message (--max-message-bytes, and the broker's --max-message-bytes); not sent",
					  name, o->max_msg), -1;
	}
	memset(r, 0, sizeof *r);
	r->partition = -1;
	r->offset = -1;
	const uint8_t *v = buf->p ? buf->p : (const uint8_t *)"";
	size_t vlen = buf->len, dl = o->delim ? strlen(o->delim) : 0;
	const uint8_t *d = dl ? memmem(v, vlen, o->delim, dl) : NULL;
	if (d) {
		r->key = v;
		r->key_len = (size_t)(d - v);
		vlen -= r->key_len + dl;
		v = d + dl;
	}
	r->value = v;
	r->value_len = vlen;
	return 0;
}

/* ---- --commit, --rollback, --txn-checker ---- */

static int open_client(const opts_t *o, mq_client_t **c, mq_err_t *err)
{
	/* The checker with -w 0 asks again after each timeout, saying once
	 * that the broker is silent (silent()). */
	int64_t t = o->tx == TX_CHECKER && mq_cli_timeout(&o->cli) == MQ_TIMEOUT_FOREVER ? 0 : mq_cli_timeout(&o->cli);
	mq_client_opts_t co = {.endpoint = o->cli.broker, .verbose = o->cli.verbose, .curve_server = o->cli.curve_server, .curve_secret = o->cli.curve_secret, .timeout_ms = t, .name = prog, .interrupt = &stop};
	return mq_cli_client_open(&co, c, err);
}

static int run_decide(const opts_t *o)
{
	mq_client_t *c = NULL;
	mq_err_t err;
	int was = 0, verdict = o->tx == TX_COMMIT ? MQ_VERDICT_COMMIT : MQ_VERDICT_ROLLBACK;
	int rc = open_client(o, &c, &err);
	if (rc == 0)
		rc = mq_client_txn_decide(c, o->txid, o->topic, verdict, 0, &was, &err);
	mq_client_close(c);
	if (rc) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	if (o->cli.verbose)
		fprintf(stderr, "%s: transaction %016" PRIx64 " %s%s\n", prog, o->txid,
			verdict == MQ_VERDICT_COMMIT ? "committed" : "rolled back",
			was == MQ_TXN_COMMITTED || was == MQ_TXN_ROLLED_BACK ? " (it already was)" : "");
	return 0;
}

/* Write the messages of a check (batches back to back) to fd as -f says. */
static void write_messages(const opts_t *o, int fd, const mq_buf_t *msgs)
{
	mq_writer_opts_t wo = {.fmt = o->fmt, .name = "the checker's standard input"};
	mq_writer_t *w;
	mq_err_t err;
	if (mq_writer_new(fd, &wo, &w, &err))
		return;
	size_t pos = 0;
	mq_batch_iter_t it;
	mq_record_t r;
	int rc = 0;
	while (rc == 0 && pos < msgs->len && mq_batch_iter_init(&it, msgs->p + pos, msgs->len - pos, &err) == 0) {
		while (rc == 0 && mq_batch_iter_next(&it, &r) > 0)
			rc = mq_writer_put(w, o->topic, 0, &r, &err);
		pos += it.hdr.length;
	}
	if (rc == 0)
		mq_writer_flush(w, &err); /* a CMD that does not read its input is no error */
	mq_writer_free(w);
}

/* Run CMD for transaction txid: its verdict (enum mq_txn_verdict). */
static int run_check_cmd(const opts_t *o, uint64_t txid, const mq_buf_t *msgs)
{
	int fds[2];
	char id[17];
	snprintf(id, sizeof id, "%016" PRIx64, txid);
	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "%s: cannot run the checker for transaction %s: %s\n", prog, id, strerror(errno));
		return MQ_VERDICT_UNKNOWN;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[0], 0);
		setenv("MQ_TXN", id, 1);
		setenv("MQ_TOPIC", o->topic, 1);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", o->checker, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	if (pid < 0) {
		fprintf(stderr, "%s: cannot run the checker for transaction %s: %s\n", prog, id, strerror(errno));
		close(fds[1]);
		return MQ_VERDICT_UNKNOWN;
	}
	write_messages(o, fds[1], msgs);
	close(fds[1]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return MQ_VERDICT_UNKNOWN;
	return mq_txn_verdict_of(st);
}

/* A broker that went silent: fatal, unless -w 0 (said once, then wait). */
static int silent(const opts_t *o, const mq_err_t *err, int *said)
{
	if (mq_cli_timeout(&o->cli) != MQ_TIMEOUT_FOREVER || err->code != MQ_ETIMEDOUT)
		return 1;
	if (!(*said)++)
		fprintf(stderr, "%s: %s; still trying (-w 0)\n", prog, err->msg);
	return 0;
}

static int run_checker(const opts_t *o)
{
	mq_client_t *c = NULL;
	mq_err_t err;
	mq_buf_t msgs = {0};
	int rc = open_client(o, &c, &err), said = 0;
	while (rc == 0 && !stop) {
		uint64_t txid = 0;
		msgs.len = 0;
		int got = mq_client_txn_check(c, o->topic, CHECK_WAIT_MS, &txid, &msgs, &err);
		if (got < 0) {
			if (stop)
				break;
			if ((rc = silent(o, &err, &said)))
				break;
			continue;
		}
		said = 0;
		if (!got)
			continue;
		int verdict = run_check_cmd(o, txid, &msgs), was, ok = 0;
		while (!stop && !(ok = !mq_client_txn_decide(c, txid, o->topic, verdict, 1, &was, &err))) {
			if (err.code == MQ_ETIMEDOUT && !silent(o, &err, &said))
				continue;
			/* Decided meanwhile, or the broker refused: the next check will do. */
			fprintf(stderr, "%s: transaction %016" PRIx64 ": the verdict was not taken: %s\n", prog, txid,
				err.msg);
			if (err.code == MQ_ETIMEDOUT)
				rc = -1;
			break;
		}
		if (ok && o->cli.verbose) /* said once the broker took it */
			fprintf(stderr, "%s: transaction %016" PRIx64 ": %s\n", prog, txid,
				verdict == MQ_VERDICT_COMMIT ? "committed" : verdict == MQ_VERDICT_ROLLBACK ? "rolled back"
				: "no verdict: asked again later");
	}
	mq_buf_free(&msgs);
	mq_client_close(c);
	if (rc) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	opts_t o = {.partition = -1, .batch = BATCH_DEFAULT, .progress = -1};
	mq_cli_init(&o.cli);
	o.cli.kafka = 1;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	struct stat st;
	if (o.progress < 0)
		o.progress = !o.message && isatty(2) && fstat(0, &st) == 0 && S_ISREG(st.st_mode);
	if (o.cli.quiet)
		o.progress = o.cli.verbose = 0;
	if (o.tx != TX_NONE || o.whole)
		o.progress = 0;
	if (o.tx == TX_COMMIT || o.tx == TX_ROLLBACK || o.tx == TX_CHECKER) {
		mq_cli_signals(&stop);
		return o.tx == TX_CHECKER ? run_checker(&o) : run_decide(&o);
	}

	mq_reader_t *rd = NULL;
	mq_err_t err;
	int in = 0;
	if (o.file && (in = open(o.file, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "%s: cannot read --file %s: %s\n", prog, o.file, strerror(errno));
		return 1;
	}
	if (!o.message && !o.whole) {
		mq_reader_opts_t ro = {.fmt = o.fmt, .key_delim = o.delim, .rec_delim = o.has_rdelim ? o.rdelim : NULL,
				       .rec_delim_len = o.rdelim_len};
		if (mq_reader_new(0, &ro, &rd, &err)) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			return 2;
		}
	}
	mq_cli_signals(&stop);

	pub_t s = {.o = &o, .prog_start = mq_mono_ms(), .prog_last = mq_mono_ms(), .prog_tty = isatty(2),
		   .prog_size = -1, .kafka = mq_kafka_endpoint(mq_client_default_endpoint(o.cli.broker))};
	struct stat in_st;
	if (!o.message && fstat(0, &in_st) == 0 && S_ISREG(in_st.st_mode))
		s.prog_size = (int64_t)in_st.st_size;
	if (setup(&s, &o)) {
		fprintf(stderr, "%s: %s\n", prog, s.err.msg);
		cleanup(&s);
		mq_reader_free(rd);
		return 1;
	}
	if (o.message) {
		mq_rec_t r;
		message_rec(&o, &r);
		s.now_ms = mq_now_ms();
		s.read = 1;
		add_record(&s, &r, 1);
	} else if (o.whole) {
		mq_rec_t r;
		mq_buf_t whole = {0};
		s.read = 1;
		if (whole_rec(&s, in, o.file ? o.file : "standard input", &whole, &r) == 0) {
			s.now_ms = mq_now_ms();
			add_record(&s, &r, 1);
		} else {
			s.failed = 1;
		}
		rc = finish(&s);
		cleanup(&s);
		mq_buf_free(&whole);
		if (in > 0)
			close(in);
		return rc;
	} else {
		s.rd = rd;
		run_stdin(&s, rd);
	}
	rc = finish(&s);
	cleanup(&s);
	mq_reader_free(rd);
	return rc;
}
