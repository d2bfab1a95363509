/*
 * mq-bucket -- token-bucket rate limiter as a pipe filter: a record
 * passes when its bucket has a token (or, with --bytes, a token per
 * byte); otherwise it waits (default), is dropped (--drop) or is
 * written to a reject file (--reject).  The arithmetic and the keyed
 * set are lib/bucket.c; the loop is lib/filter.c.
 *
 * Waiting is a sleep until the token is due (clock_nanosleep on the
 * monotonic clock, absolute, so a wake-up that comes late does not add
 * up), with everything passed so far flushed first: downstream sees each
 * record on time, and while mq-bucket sleeps it reads nothing, so the
 * pipe fills and the producer blocks (backpressure).  The clock is read
 * only when a bucket seems empty: an older reading can only understate
 * the tokens, never overstate them.
 *
 * Shared buckets (--shared NAME, --take NAME) are held by the broker
 * (lib/sbucket.c), so processes on several machines share one rate.
 * --take asks for -n tokens, retrying after the broker's wait hint until
 * -w runs out.  --shared draws tokens in leases: a request takes between
 * what the record needs and a batch (mq_client_bucket_take's min and
 * want), so most records pass on tokens already held, without a round
 * trip.  A leased token is a token taken from the bucket early, so
 * leases never let the processes sharing a bucket together pass more
 * than BURST + RATE x t; to keep "early" short, a lease is used within
 * LEASE_NS of arriving or thrown away, and the batch grows (up to
 * MAX_LEASE_MS of RATE) only while leases run out quickly and shrinks
 * when one is thrown away.  When the bucket is the limit, requests are
 * paced (the broker's wait hint, or the time a batch takes to come), so
 * a busy filter costs the broker a request per batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bucket.h"
#include "cli.h"
#include "cli_done.h"
#include "client.h"
#include "kafka.h"
#include "filter.h"
#include "store.h"

static const char *prog = "mq-bucket";
static volatile sig_atomic_t stop;

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-bucket -r RATE [-B BURST] [--bytes] [--drop | --reject FILE] [-k FIELD]\n"
		"                 [-K DELIM] [-0 | -f json|msgpack] [-v] < in > out\n"
		"       mq-bucket --shared NAME [-r RATE [-B BURST]] [--bytes] [--drop | --reject FILE]\n"
		"                 [-0 | -f json|msgpack] [-b ENDPOINT] [-w TIMEOUT] [-v] < in > out\n"
		"       mq-bucket --take NAME [-r RATE [-B BURST]] [-n TOKENS] [-b ENDPOINT] [-w TIMEOUT]\n"
		"\n"
		"  -r, --rate RATE       N/s, N/m, N/h, or N (per second); e.g. 100/s, 2.5/s;\n"
		"                        with --shared or --take it creates the broker's bucket\n"
		"                        or changes its rate\n"
		"  -B, --burst BURST     the bucket's capacity (default: one second's worth);\n"
		"                        with --bytes a size such as 64KiB\n"
		"      --shared NAME     draw tokens from the bucket NAME the broker holds, shared\n"
		"                        with every process that uses it\n"
		"      --take NAME       take TOKENS from the broker's bucket NAME and exit: 0 when\n"
		"                        they were granted within TIMEOUT, 1 when not\n"
		"  -n, --tokens TOKENS   with --take: how many (default 1)\n"
		"      --bytes           count bytes of records instead of records\n"
		"      --drop            drop a record that finds no token (default: wait for one)\n"
		"      --reject FILE     append a record that finds no token to FILE\n"
		"  -k, --key FIELD       one bucket per key, id or field:N (at most 100000 buckets,\n"
		"                        the least recently used forgotten first)\n"
		"  -K, --key-delim DELIM lines: the key is the part before the first DELIM\n"
		"  -0, --null            records end with NUL instead of newline\n"
		"  -f, --format FMT      lines (default), nul, json or msgpack: input and output\n"
		"  -b, --broker ENDPOINT the broker holding shared buckets (default $MQ_BROKER,\n"
		"                        else " MQ_DEFAULT_BROKER "; HOST:PORT, :PORT for tcp://)\n"
		"  -w, --timeout DURATION  how long to wait for a silent broker (default 10s; 0 or\n"
		"                        inf: forever); with --take also for the tokens (0: one try)\n"
		"      --curve-server KEY CurveZMQ: the broker's public key, or a file holding it\n"
		"                        (default $MQ_CURVE_SERVER)\n"
		"      --curve-secret FILE  CurveZMQ: this client's secret key (default\n"
		"                        $MQ_CURVE_SECRET; without it, a key made for the run)\n"
		"  -v, --verbose         passed, dropped and waiting figures on stderr at exit\n"
		"  -q, --quiet           no message for malformed records\n"
		"  -h, --help            this help\n"
		"  -V, --version         the version\n");
}

enum { OPT_BYTES = 256, OPT_DROP, OPT_REJECT, OPT_SHARED, OPT_TAKE };

typedef struct opts {
	mq_cli_t *cli;
	mq_rate_t rate;
	int have_rate;
	const char *burst_arg;
	uint64_t burst;
	const char *shared, *take; /* bucket names */
	const char *tokens_arg;
	uint64_t tokens;
	int bytes, drop, verbose, quiet;
	const char *reject;
	int keyed;
	mq_ident_t key;
	mq_fmt_t fmt;
	const char *key_delim;
} opts_t;

static int own_option(void *ctx, int c, const char *arg, int idx, mq_err_t *err)
{
	opts_t *o = ctx;
	(void)idx;
	switch (c) {
	case 'r':
		o->have_rate = 1;
		return mq_rate_parse(arg, &o->rate, err);
	case 'B':
		o->burst_arg = arg;
		return 0;
	case OPT_BYTES:
		o->bytes = 1;
		return 0;
	case OPT_DROP:
		o->drop = 1;
		return 0;
	case OPT_REJECT:
		o->reject = arg;
		return 0;
	case 'k':
		o->keyed = 1;
		return mq_ident_parse("-k", arg, 0, &o->key, err);
	case 'K':
		if (!*arg)
			return mq_err_set(err, MQ_EINVAL, "-K: the key delimiter must not be empty");
		o->key_delim = arg;
		return 0;
	case '0':
		o->fmt = MQ_FMT_NUL;
		return 0;
	case 'f':
		if (mq_fmt_parse(arg, &o->fmt, err) < 0 || o->fmt == MQ_FMT_TEMPLATE)
			return mq_err_set(err, MQ_EINVAL, "-f '%.100s': use lines, nul, json or msgpack", arg);
		return 0;
	case OPT_SHARED:
		o->shared = arg;
		return mq_name_check("shared bucket", arg, 0, err);
	case OPT_TAKE:
		o->take = arg;
		return mq_name_check("shared bucket", arg, 0, err);
	case 'n':
		o->tokens_arg = arg;
		return 0;
	default:
		return mq_err_set(err, MQ_EINVAL, "unknown option");
	}
}

/* --shared, --take and what goes with them. */
static int check_shared(opts_t *o, mq_err_t *err)
{
	const char *which = o->shared ? "--shared" : "--take";
	if (o->shared && o->take)
		return mq_err_set(err, MQ_EINVAL,
				  "--shared and --take: choose one (--shared filters records, --take takes tokens and exits)");
	if (o->tokens_arg && !o->take)
		return mq_err_set(err, MQ_EINVAL, "-n %.100s: -n goes with --take NAME", o->tokens_arg);
	if (!o->shared && !o->take)
		return 0;
	if (o->burst_arg && !o->have_rate)
		return mq_err_set(err, MQ_EINVAL, "-B %.100s with %s: give -r RATE too (a bucket's definition has both)",
				  o->burst_arg, which);
	if (o->keyed)
		return mq_err_set(err, MQ_EINVAL,
				  "-k with %s: a shared bucket is one bucket for the whole stream; for a bucket per key, "
				  "use a local one (-r RATE -k FIELD, without %s)",
				  which, which);
	if (!o->take)
		return 0;
	if (o->drop || o->reject || o->key_delim || o->bytes || o->fmt != MQ_FMT_LINES)
		return mq_err_set(err, MQ_EINVAL,
				  "--take reads no records: --drop, --reject, -K, --bytes, -0 and -f go with a filter "
				  "(-r RATE or --shared NAME)");
	o->tokens = 1;
	if (o->tokens_arg &&
	    (mq_parse_u64(o->tokens_arg, &o->tokens, NULL) < 0 || o->tokens < 1 || o->tokens > MQ_BUCKET_MAX_BURST))
		return mq_err_set(err, MQ_EINVAL, "-n %.100s: the number of tokens must be a whole number from 1 to %llu",
				  o->tokens_arg, (unsigned long long)MQ_BUCKET_MAX_BURST);
	return 0;
}

static int check_options(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	int env = o->fmt == MQ_FMT_JSON || o->fmt == MQ_FMT_MSGPACK, rc;
	if ((rc = check_shared(o, err)) < 0)
		return rc;
	if ((o->shared || o->take) && mq_cli_check_broker(o->cli, err)) /* a local bucket needs no broker */
		return -MQ_EINVAL;
	if ((o->shared || o->take) && mq_kafka_endpoint(mq_client_default_endpoint(o->cli->broker)))
		return mq_err_set(err, MQ_EINVAL, "shared buckets are held by mq-serve, and a Kafka cluster has none: "
				  "use a bucket of this process (-r RATE without --shared), or an mq-serve endpoint");
	if (!o->have_rate && !o->shared && !o->take)
		return mq_err_set(err, MQ_EINVAL,
				  "-r RATE is required (e.g. -r 100/s), or --shared NAME for a bucket the broker holds");
	if (o->drop && o->reject)
		return mq_err_set(err, MQ_EINVAL, "--drop and --reject: choose one");
	if (o->key_delim && env)
		return mq_err_set(err, MQ_EINVAL, "-K: envelopes carry their key; -K is for lines and nul");
	if (o->keyed && o->key.what == MQ_IDENT_KEY && !env && !o->key_delim)
		return mq_err_set(err, MQ_EINVAL, "-k key: lines have no key; give -K DELIM, or use -f json|msgpack");
	if (o->keyed && o->key.what == MQ_IDENT_ID && !env)
		return mq_err_set(err, MQ_EINVAL, "-k id: only envelopes carry an id; use -f json or -f msgpack");
	o->burst = o->have_rate ? mq_rate_per_second(&o->rate) : 0;
	if (o->burst_arg) {
		rc = o->bytes ? mq_parse_size(o->burst_arg, &o->burst, err)
			   : mq_parse_u64(o->burst_arg, &o->burst, err);
		if (rc < 0)
			return rc;
		if (o->burst < 1 || o->burst > MQ_BUCKET_MAX_BURST)
			return mq_err_set(err, MQ_EINVAL, "-B %.100s: use 1 to %llu", o->burst_arg,
					  (unsigned long long)MQ_BUCKET_MAX_BURST);
	}
	if (o->take && o->burst_arg && o->tokens > o->burst)
		return mq_err_set(err, MQ_EINVAL, "-n %" PRIu64 ": more than the burst of %" PRIu64
				  " can never be there at once (use a larger -B or a smaller -n)", o->tokens, o->burst);
	return 0;
}

typedef struct run {
	opts_t *o;
	mq_filter_t f;
	mq_bucket_t one;         /* without -k */
	mq_bucket_set_t *set;    /* with -k */
	mq_writer_t *rej;
	uint64_t now;            /* last monotonic reading, ns */
	uint64_t passed, refused, anonymous, waits, waited_ns;
	/* --shared and --take */
	mq_client_t *c;
	const char *name;
	const mq_rate_t *define; /* -r: sent until the broker has taken it */
	uint64_t wire_burst;     /* -B, or 0: the broker's default */
	uint64_t lease, lease_at; /* tokens held, and when they arrived */
	uint64_t want, max_want; /* the batch asked for, and its ceiling */
	uint64_t due, due_need;  /* no request for need >= due_need before due */
	uint64_t requests, unused;
} run_t;

/* A leased token is used within this long of arriving, or thrown away
 * (ns). */
#define LEASE_NS 10000000ull
/* The largest batch: MAX_LEASE_MS of RATE, or without -r a fixed one. */
#define MAX_LEASE_MS 5u
#define MAX_LEASE_NO_RATE 1024u
#define MAX_LEASE 65536u

static int flush_reject(void *ctx, mq_err_t *err)
{
	run_t *r = ctx;
	return r->rej ? mq_writer_flush(r->rej, err) : 0;
}

/* Sleeps until the monotonic clock reads `until`; 0, or -MQ_EAGAIN when
 * a signal asked to stop. */
static int sleep_until(uint64_t until)
{
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u), .tv_nsec = (long)(until % 1000000000u)};
	int rc;
	while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
		if (stop)
			return -MQ_EAGAIN;
	return 0;
}

static mq_bucket_t *bucket_of(run_t *r, const mq_rec_t *rec)
{
	const uint8_t *k;
	size_t n;
	if (!r->set)
		return &r->one;
	if (!mq_ident_of(&r->o->key, rec, &k, &n)) {
		r->anonymous++;
		k = (const uint8_t *)"", n = 0; /* records without a key share one bucket */
	}
	return mq_bucket_set_get(r->set, k, n, r->now);
}

/* A record that found no token, with --drop or --reject. */
static int refuse(run_t *r, const mq_rec_t *rec, mq_err_t *err)
{
	int rc;
	r->refused++;
	if (!r->rej)
		return 0;
	if ((rc = mq_writer_put_rec(r->rej, rec, err)) < 0)
		r->f.fatal = 1;
	return rc;
}

/* One request to the broker's bucket: between min and want tokens. */
static int ask(run_t *r, uint64_t want, uint64_t min, uint64_t *granted, uint64_t *wait_ns, mq_err_t *err)
{
	int rc = mq_client_bucket_take(r->c, r->name, want, min, r->define, r->wire_burst, granted, wait_ns, err);
	r->requests++;
	if (rc == 0)
		r->define = NULL;
	return rc;
}

/* How long a whole batch takes to come at the rate (capped at LEASE_NS;
 * 0 without -r, when the rate is not known here). */
static uint64_t batch_ns(const run_t *r)
{
	const opts_t *o = r->o;
	uint64_t batch = r->want < o->burst ? r->want : o->burst;
	if (!o->have_rate)
		return 0;
	unsigned __int128 ns = ((unsigned __int128)batch * o->rate.per_ns + o->rate.tokens - 1) / o->rate.tokens;
	return ns > LEASE_NS ? LEASE_NS : (uint64_t)ns;
}

/* --shared: pass rec on a leased token, leasing more when they run out.
 * After a grant of less than was asked (the bucket drained) the next
 * request waits until a batch has come, and after a refusal until the
 * broker's hint: one request per batch, not one per round trip. */
static int shared_one(run_t *r, const mq_rec_t *rec, uint64_t cost, mq_err_t *err)
{
	int refusing = r->o->drop || r->o->reject, rc;
	uint64_t now = mq_mono_ns(), g, w;
	if (r->lease && now - r->lease_at > LEASE_NS) {
		r->unused += r->lease; /* too old to use: thrown away */
		r->lease = 0;
		r->want = r->want > 4 ? r->want / 4 : 1;
	}
	if (r->lease < cost && r->lease_at && now - r->lease_at < LEASE_NS / 2)
		r->want = r->want * 2 < r->max_want ? r->want * 2 : r->max_want; /* used up quickly */
	while (r->lease < cost) {
		uint64_t need = cost - r->lease, want = need > r->want ? need : r->want;
		/* Downstream gets what passed before a wait or a round trip. */
		if ((rc = mq_filter_flush(&r->f, err)) < 0)
			return rc;
		if (now < r->due && need >= r->due_need) {
			if (refusing)
				return refuse(r, rec, err);
			r->waits++;
			r->waited_ns += r->due - now;
			if ((rc = sleep_until(r->due)) < 0)
				return rc;
		}
		if ((rc = ask(r, want, need, &g, &w, err)) < 0) {
			if (rc != -MQ_EAGAIN)
				r->f.fatal = 1;
			if (rc == -MQ_EINVAL && r->o->bytes) {
				char why[sizeof err->msg];
				snprintf(why, sizeof why, "%s", err->msg);
				rc = mq_err_set(err, MQ_EINVAL, "a record of %" PRIu64 " bytes: %s", cost, why);
			}
			return rc;
		}
		now = mq_mono_ns();
		if (g) {
			r->lease += g; /* at least need */
			r->lease_at = now;
			r->due = g < want ? now + batch_ns(r) : 0;
			r->due_need = 1;
		} else {
			r->due = w > UINT64_MAX - now ? UINT64_MAX : now + w;
			r->due_need = need;
		}
	}
	r->lease -= cost;
	r->passed++;
	return mq_filter_put(&r->f, rec, err);
}

static int one(void *ctx, const mq_rec_t *rec, mq_err_t *err)
{
	run_t *r = ctx;
	uint64_t cost = r->o->bytes ? (rec->raw ? rec->raw_len : rec->value_len + 1) : 1;
	if (r->c)
		return shared_one(r, rec, cost, err);
	mq_bucket_t *b = bucket_of(r, rec);
	int rc;
	if (!mq_bucket_take(b, cost, r->now)) {
		r->now = mq_mono_ns();
		while (!mq_bucket_take(b, cost, r->now)) {
			if (r->o->drop || r->o->reject)
				return refuse(r, rec, err);
			uint64_t w = mq_bucket_wait_ns(b, cost, r->now);
			if ((rc = mq_filter_flush(&r->f, err)) < 0)
				return rc;
			r->waits++;
			r->waited_ns += w;
			if ((rc = sleep_until(r->now + w)) < 0)
				return rc;
			r->now = mq_mono_ns();
		}
	}
	r->passed++;
	return mq_filter_put(&r->f, rec, err);
}

static void malformed(void *ctx, const mq_err_t *err)
{
	run_t *r = ctx;
	if (!r->o->quiet)
		fprintf(stderr, "%s: %s; skipped\n", prog, err->msg);
}

/* --shared and --take: the client, and what the first request sends. */
static int setup_shared(run_t *r, opts_t *o, mq_err_t *err)
{
	r->name = o->shared ? o->shared : o->take;
	r->define = o->have_rate ? &o->rate : NULL;
	r->wire_burst = o->burst_arg ? o->burst : 0;
	r->want = 1;
	r->max_want = MAX_LEASE_NO_RATE;
	if (o->have_rate) {
		unsigned __int128 n = (unsigned __int128)o->rate.tokens * MAX_LEASE_MS * 1000000u / o->rate.per_ns;
		r->max_want = n < 1 ? 1 : n > MAX_LEASE ? MAX_LEASE : (uint64_t)n;
	}
	mq_client_opts_t co = {.endpoint = o->cli->broker, .verbose = o->cli->verbose, .curve_server = o->cli->curve_server, .curve_secret = o->cli->curve_secret,
			       /* --take -w 0: one try, with the default timeout for the broker */
			       .timeout_ms = o->take && o->cli->timeout_ms == 0 ? 0 : mq_cli_timeout(o->cli),
			       .name = prog,
			       .interrupt = &stop};
	return mq_cli_client_open(&co, &r->c, err);
}

static int setup(run_t *r, opts_t *o, mq_err_t *err)
{
	int rc;
	r->now = mq_mono_ns();
	if (o->shared || o->take) {
		if ((rc = setup_shared(r, o, err)) < 0)
			return rc;
		if (o->take)
			return 0;
		/* A first token now: the definition is made, and a missing
		 * bucket or an absent broker is reported before any input. */
		uint64_t g, w;
		if ((rc = ask(r, 1, 1, &g, &w, err)) < 0)
			return rc;
		r->lease = g;
		r->lease_at = mq_mono_ns();
	} else {
		mq_bucket_init(&r->one, &o->rate, o->burst, r->now);
	}
	if (o->keyed &&
	    (rc = mq_bucket_set_new(&o->rate, o->burst, MQ_BUCKET_SET_DEFAULT_KEYS, &r->set, err)) < 0)
		return rc;
	if (o->reject) {
		int fd = open(o->reject, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0)
			return mq_err_sys(err, "--reject '%s'", o->reject);
		mq_writer_opts_t wo = {.fmt = o->fmt, .name = o->reject};
		if ((rc = mq_writer_new(fd, &wo, &r->rej, err)) < 0) {
			close(fd);
			return rc;
		}
	}
	mq_filter_opts_t fo = {.fmt = o->fmt, .key_delim = o->key_delim, .in_fd = 0, .out_fd = 1};
	if ((rc = mq_filter_open(&r->f, &fo, err)) < 0)
		return rc;
	r->f.before_flush = flush_reject;
	r->f.ctx = r;
	return 0;
}

static void report(const run_t *r)
{
	const opts_t *o = r->o;
	fprintf(stderr, "%s: %" PRIu64 " passed, %" PRIu64 " %s", prog, r->passed, r->refused,
		o->reject ? "rejected" : "dropped");
	if (r->waits)
		fprintf(stderr, ", waited %" PRIu64 " times for %.3fs", r->waits, (double)r->waited_ns / 1e9);
	if (r->set)
		fprintf(stderr, ", %" PRIu32 " keys, %" PRIu64 " forgotten before their bucket was full",
			mq_bucket_set_count(r->set), mq_bucket_set_early(r->set));
	if (r->anonymous)
		fprintf(stderr, ", %" PRIu64 " without a key (one bucket)", r->anonymous);
	if (r->f.bad)
		fprintf(stderr, ", %" PRIu64 " malformed", r->f.bad);
	if (r->c)
		fprintf(stderr, ", %" PRIu64 " requests to shared bucket '%s', %" PRIu64 " leased tokens unused", r->requests,
			r->name, r->unused + r->lease);
	fputc('\n', stderr);
}

/* --take: 0 when the tokens were granted, 1 when they were not there
 * within the timeout (message printed), or an error. */
static int take_tokens(run_t *r, mq_err_t *err)
{
	const opts_t *o = r->o;
	uint64_t start = mq_mono_ns(), g, w;
	uint64_t deadline = o->cli->timeout_ms >= (int64_t)((UINT64_MAX - start) / 1000000u)
				    ? UINT64_MAX : start + (uint64_t)o->cli->timeout_ms * 1000000u;
	int rc;
	for (;;) {
		if ((rc = ask(r, o->tokens, o->tokens, &g, &w, err)) < 0)
			return rc;
		if (g)
			break;
		uint64_t now = mq_mono_ns();
		if (now >= deadline || w > deadline - now) {
			if (!o->quiet)
				fprintf(stderr, "%s: shared bucket '%s': %" PRIu64 " token%s not there %s (the next in %.3fs)\n",
					prog, r->name, o->tokens, o->tokens == 1 ? "" : "s",
					o->cli->timeout_ms ? "within the timeout (-w)" : "now", (double)w / 1e9);
			return 1;
		}
		r->waits++;
		r->waited_ns += w;
		if ((rc = sleep_until(now + w)) < 0)
			return mq_err_set(err, MQ_EAGAIN, "interrupted while waiting for %" PRIu64 " tokens of shared bucket '%s'",
					  o->tokens, r->name);
	}
	if (o->verbose)
		fprintf(stderr, "%s: took %" PRIu64 " token%s from shared bucket '%s' in %.3fs\n", prog, o->tokens,
			o->tokens == 1 ? "" : "s", r->name, (double)(mq_mono_ns() - start) / 1e9);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"rate", required_argument, NULL, 'r'},
		{"burst", required_argument, NULL, 'B'},
		{"bytes", no_argument, NULL, OPT_BYTES},
		{"drop", no_argument, NULL, OPT_DROP},
		{"reject", required_argument, NULL, OPT_REJECT},
		{"key", required_argument, NULL, 'k'},
		{"key-delim", required_argument, NULL, 'K'},
		{"null", no_argument, NULL, '0'},
		{"format", required_argument, NULL, 'f'},
		{"shared", required_argument, NULL, OPT_SHARED},
		{"take", required_argument, NULL, OPT_TAKE},
		{"tokens", required_argument, NULL, 'n'},
		MQ_CLI_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	mq_cli_t cli;
	opts_t o = {.fmt = MQ_FMT_LINES, .cli = &cli};
	mq_err_t err;
	mq_cli_init(&cli);
	cli.kafka = 1; /* a shared bucket over Kafka is refused for what it is (check_opts) */
	int rc = mq_cli_parse(argc, argv, ":r:B:k:K:0f:n:" MQ_CLI_SHORTOPTS, longopts, &cli, own_option,
			      check_options, &o, &err);
	if ((rc = mq_cli_done(rc, prog, usage, &err)))
		return rc == 1 ? 0 : rc;
	o.verbose = cli.verbose;
	o.quiet = cli.quiet;

	run_t r = {.o = &o};
	mq_cli_signals(&stop);
	if (setup(&r, &o, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = 1;
	} else if (o.take) {
		if ((rc = take_tokens(&r, &err)) < 0)
			fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = rc ? 1 : 0;
	} else {
		if ((rc = mq_filter_run(&r.f, one, malformed, &stop, &err)) < 0)
			fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = rc < 0 || r.f.bad ? 1 : 0;
		if (r.rej && mq_writer_flush(r.rej, &err) < 0) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			rc = 1;
		}
		if (o.verbose)
			report(&r);
	}
	mq_filter_close(&r.f);
	mq_bucket_set_free(r.set);
	mq_writer_free(r.rej);
	mq_client_close(r.c);
	return rc;
}
