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
 * Shared buckets held by the broker (--shared, --take) are not in this
 * version; those options are refused with exit 2.
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
#include "filter.h"

static const char *prog = "mq-bucket";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-bucket -r RATE [-B BURST] [--bytes] [--drop | --reject FILE] [-k FIELD]\n"
		"                 [-K DELIM] [-0 | -f json|msgpack] [-v] < in > out\n"
		"\n"
		"  -r, --rate RATE       N/s, N/m, N/h, or N (per second); e.g. 100/s, 2.5/s\n"
		"  -B, --burst BURST     the bucket's capacity (default: one second's worth);\n"
		"                        with --bytes a size such as 64KiB\n"
		"      --bytes           count bytes of records instead of records\n"
		"      --drop            drop a record that finds no token (default: wait for one)\n"
		"      --reject FILE     append a record that finds no token to FILE\n"
		"  -k, --key FIELD       one bucket per key, id or field:N (at most 100000 buckets,\n"
		"                        the least recently used forgotten first)\n"
		"  -K, --key-delim DELIM lines: the key is the part before the first DELIM\n"
		"  -0, --null            records end with NUL instead of newline\n"
		"  -f, --format FMT      lines (default), nul, json or msgpack: input and output\n"
		"  -b, --broker ENDPOINT, -w, --timeout DURATION\n"
		"                        accepted for shared buckets; unused by the local filter\n"
		"  -v, --verbose         passed, dropped and waiting figures on stderr at exit\n"
		"  -q, --quiet           no message for malformed records\n"
		"  -h, --help            this help\n"
		"  -V, --version         the version\n"
		"\n"
		"--shared NAME and --take NAME (buckets held by the broker) are not in this version.\n");
}

enum { OPT_BYTES = 256, OPT_DROP, OPT_REJECT, OPT_LATER };

typedef struct opts {
	mq_rate_t rate;
	int have_rate;
	const char *burst_arg;
	uint64_t burst;
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
	case 'n':
	case OPT_LATER:
		return mq_err_set(err, MQ_EINVAL,
				  "--shared, --take and -n need buckets held by the broker, which this version of "
				  "mq-bucket does not have; use -r RATE for a local bucket");
	default:
		return mq_err_set(err, MQ_EINVAL, "unknown option");
	}
}

static int check_options(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	int env = o->fmt == MQ_FMT_JSON || o->fmt == MQ_FMT_MSGPACK;
	if (!o->have_rate)
		return mq_err_set(err, MQ_EINVAL, "-r RATE is required (e.g. -r 100/s)");
	if (o->drop && o->reject)
		return mq_err_set(err, MQ_EINVAL, "--drop and --reject: choose one");
	if (o->key_delim && env)
		return mq_err_set(err, MQ_EINVAL, "-K: envelopes carry their key; -K is for lines and nul");
	if (o->keyed && o->key.what == MQ_IDENT_KEY && !env && !o->key_delim)
		return mq_err_set(err, MQ_EINVAL, "-k key: lines have no key; give -K DELIM, or use -f json|msgpack");
	if (o->keyed && o->key.what == MQ_IDENT_ID && !env)
		return mq_err_set(err, MQ_EINVAL, "-k id: only envelopes carry an id; use -f json or -f msgpack");
	o->burst = mq_rate_per_second(&o->rate);
	if (o->burst_arg) {
		int rc = o->bytes ? mq_parse_size(o->burst_arg, &o->burst, err)
				  : mq_parse_u64(o->burst_arg, &o->burst, err);
		if (rc < 0)
			return rc;
		if (o->burst < 1 || o->burst > MQ_BUCKET_MAX_BURST)
			return mq_err_set(err, MQ_EINVAL, "-B %.100s: use 1 to %llu", o->burst_arg,
					  (unsigned long long)MQ_BUCKET_MAX_BURST);
	}
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
} run_t;

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

static int one(void *ctx, const mq_rec_t *rec, mq_err_t *err)
{
	run_t *r = ctx;
	uint64_t cost = r->o->bytes ? (rec->raw ? rec->raw_len : rec->value_len + 1) : 1;
	mq_bucket_t *b = bucket_of(r, rec);
	int rc;
	if (!mq_bucket_take(b, cost, r->now)) {
		r->now = mq_mono_ns();
		while (!mq_bucket_take(b, cost, r->now)) {
			if (r->o->drop || r->o->reject) {
				r->refused++;
				if (!r->rej)
					return 0;
				if ((rc = mq_writer_put_rec(r->rej, rec, err)) < 0)
					r->f.fatal = 1;
				return rc;
			}
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

static int setup(run_t *r, opts_t *o, mq_err_t *err)
{
	int rc;
	r->now = mq_mono_ns();
	mq_bucket_init(&r->one, &o->rate, o->burst, r->now);
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
	fputc('\n', stderr);
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
		{"shared", required_argument, NULL, OPT_LATER},
		{"take", required_argument, NULL, OPT_LATER},
		{"tokens", required_argument, NULL, 'n'},
		MQ_CLI_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	opts_t o = {.fmt = MQ_FMT_LINES};
	mq_cli_t cli;
	mq_err_t err;
	mq_cli_init(&cli);
	int rc = mq_cli_parse(argc, argv, ":r:B:k:K:0f:n:" MQ_CLI_SHORTOPTS, longopts, &cli, own_option,
			      check_options, &o, &err);
	if ((rc = mq_cli_done(rc, prog, usage, &err)))
		return rc == 1 ? 0 : rc;
	o.verbose = cli.verbose;
	o.quiet = cli.quiet;

	run_t r = {.o = &o};
	if (setup(&r, &o, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = 1;
	} else {
		mq_cli_signals(on_signal);
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
	return rc;
}
