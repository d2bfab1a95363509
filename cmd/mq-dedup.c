/*
 * mq-dedup -- a pipe filter that passes the first record of each
 * identity and drops the repeats within a window: the last N identities
 * (default 1,000,000) or those first seen within a duration.  The set
 * and its state file are lib/seen.c; the loop is lib/filter.c.
 *
 * Crash rule: with --state, the identities of everything written to
 * standard output are in the state file first (filter.c's before_flush
 * hook syncs it), so what was printed before a kill -9 is known after
 * it.  And what was not printed is not: right before each write(2) the
 * state file's delivery mark is moved up to the last record that write
 * hands on (seen.c), writes to a pipe are sized so they never block
 * (sends to a socket do not wait; the mark is lowered while we do),
 * and on the next start in the same boot the identities past the mark
 * are taken back.  A kill during a sync, or while a slow reader keeps
 * the pipe full, so loses nothing.  Records without the identity asked for (no key, no id, too few
 * fields) are passed and counted, never remembered: what cannot be told
 * apart is not dropped.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_done.h"
#include "filter.h"
#include "seen.h"

static const char *prog = "mq-dedup";
static volatile sig_atomic_t stop;

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-dedup [--by line|key|id|field:N] [-d DELIM] [--window N|DURATION]\n"
		"                [--state FILE [--reset-state]] [--invert] [-0 | -f json|msgpack]\n"
		"                [-K DELIM] [-v] < in > out\n"
		"\n"
		"  --by WHAT             identity of a record: line (the whole record; the value of\n"
		"                        an envelope, default), key, id, or field:N (from 1)\n"
		"  -d, --delimiter DELIM field:N splits at each DELIM (default: runs of blanks, as awk)\n"
		"  --window N|DURATION   remember the last N identities (default 1000000), or those\n"
		"                        first seen within DURATION (e.g. 10m; at most 10000000 then);\n"
		"                        give both to bound both\n"
		"  --state FILE          remember across restarts and crashes in FILE\n"
		"  --reset-state         start FILE afresh (e.g. after it was reported corrupt)\n"
		"  --invert              print only the repeats\n"
		"  -0, --null            records end with NUL instead of newline\n"
		"  -f, --format FMT      lines (default), nul, json or msgpack: input and output\n"
		"  -K, --key-delim DELIM lines: the key is the part before the first DELIM (--by key)\n"
		"  -v, --verbose         passed and dropped counts on stderr at exit\n"
		"  -q, --quiet           no message for malformed records\n"
		"  -h, --help            this help\n"
		"  -V, --version         the version\n");
}

enum { OPT_BY = 256, OPT_WINDOW, OPT_STATE, OPT_RESET, OPT_INVERT };

#define DURATION_ONLY_CAP 10000000ull

typedef struct opts {
	mq_ident_t by;
	uint64_t count;
	int64_t age_ms;
	const char *state;
	int reset, invert, verbose, quiet;
	mq_fmt_t fmt;
	const char *key_delim;
} opts_t;

/* A plain number is a count; anything with a unit is a duration. */
static int parse_window(opts_t *o, const char *arg, mq_err_t *err)
{
	uint64_t n;
	int64_t ms;
	if (mq_parse_u64(arg, &n, NULL) == 0) {
		if (n < 1 || n > MQ_SEEN_MAX_COUNT)
			return mq_err_set(err, MQ_EINVAL, "--window %.100s: use 1 to %llu identities", arg,
					  MQ_SEEN_MAX_COUNT);
		o->count = n;
		return 0;
	}
	if (mq_parse_duration_ms(arg, &ms, NULL) == 0 && ms > 0) {
		o->age_ms = ms;
		return 0;
	}
	return mq_err_set(err, MQ_EINVAL,
			  "--window '%.100s': use a number of identities (e.g. 1000000) or a duration (e.g. 10m)",
			  arg);
}

static int own_option(void *ctx, int c, const char *arg, int idx, mq_err_t *err)
{
	opts_t *o = ctx;
	(void)idx;
	switch (c) {
	case OPT_BY:
		return mq_ident_parse("--by", arg, 1, &o->by, err);
	case 'd':
		if (!*arg)
			return mq_err_set(err, MQ_EINVAL, "-d: the delimiter must not be empty");
		o->by.delim = arg;
		return 0;
	case OPT_WINDOW:
		return parse_window(o, arg, err);
	case OPT_STATE:
		o->state = arg;
		return 0;
	case OPT_RESET:
		o->reset = 1;
		return 0;
	case OPT_INVERT:
		o->invert = 1;
		return 0;
	case '0':
		o->fmt = MQ_FMT_NUL;
		return 0;
	case 'f':
		if (mq_fmt_parse(arg, &o->fmt, err) < 0 || o->fmt == MQ_FMT_TEMPLATE)
			return mq_err_set(err, MQ_EINVAL, "-f '%.100s': use lines, nul, json or msgpack", arg);
		return 0;
	case 'K':
		if (!*arg)
			return mq_err_set(err, MQ_EINVAL, "-K: the key delimiter must not be empty");
		o->key_delim = arg;
		return 0;
	default:
		return mq_err_set(err, MQ_EINVAL, "unknown option");
	}
}

static int check_options(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	int env = o->fmt == MQ_FMT_JSON || o->fmt == MQ_FMT_MSGPACK;
	if (o->key_delim && env)
		return mq_err_set(err, MQ_EINVAL, "-K: envelopes carry their key; -K is for lines and nul");
	if (o->by.what == MQ_IDENT_KEY && !env && !o->key_delim)
		return mq_err_set(err, MQ_EINVAL, "--by key: lines have no key; give -K DELIM, or use -f json|msgpack");
	if (o->by.what == MQ_IDENT_ID && !env)
		return mq_err_set(err, MQ_EINVAL, "--by id: only envelopes carry an id; use -f json or -f msgpack");
	if (o->by.delim && o->by.what != MQ_IDENT_FIELD)
		return mq_err_set(err, MQ_EINVAL, "-d: only --by field:N splits records");
	if (o->reset && !o->state)
		return mq_err_set(err, MQ_EINVAL, "--reset-state: there is no --state FILE to reset");
	if (o->age_ms && !o->count)
		o->count = DURATION_ONLY_CAP;
	return 0;
}

/* Records are decided in batches of BATCH: each is hashed as it is
 * read and copied aside (a reader's view lasts only until the next
 * record); the batch is decided once full, or when input pauses.  With
 * an index of tens of MiB every lookup is a cache miss, and a miss in
 * the TLB too: deciding starts by asking for the places of the whole
 * batch one right after another, so that their misses and page walks
 * overlap, rather than each waiting behind a record's hashing. */
#define BATCH 64

typedef struct held {
	mq_hash128_t h;
	int has_id;
	size_t off, len;
} held_t;

typedef struct run {
	opts_t *o;
	mq_seen_t *seen;
	mq_filter_t f;
	held_t held[BATCH];
	unsigned nheld;
	mq_buf_t arena; /* the held records' bytes */
	int64_t now_ms;
	uint64_t passed, dropped, anonymous;
	/* --state: where each passed record ends in the output (bytes since
	 * the start) and the additions made up to it, oldest first */
	struct outmark {
		uint64_t end, added;
	} *marks;
	size_t nmarks, mhead, mcap;
	uint64_t left_added; /* additions whose records have surely left */
} run_t;

static int sync_state(void *ctx, mq_err_t *err)
{
	run_t *r = ctx;
	return r->o->state ? mq_seen_sync(r->seen, err) : 0;
}

/* After a record was put: note where it ends and what was added by then. */
static int note_passed(run_t *r, mq_err_t *err)
{
	uint64_t added = mq_seen_added(r->seen);
	if (r->nmarks > r->mhead && r->marks[r->nmarks - 1].added == added)
		return 0; /* nothing new to confirm with it */
	if (r->mhead == r->nmarks)
		r->mhead = r->nmarks = 0;
	if (r->nmarks == r->mcap) {
		if (r->mhead) { /* room at the front */
			memmove(r->marks, r->marks + r->mhead, (r->nmarks - r->mhead) * sizeof *r->marks);
			r->nmarks -= r->mhead;
			r->mhead = 0;
		} else {
			size_t cap = r->mcap ? 2 * r->mcap : 1024;
			struct outmark *m = realloc(r->marks, cap * sizeof *m);
			if (!m) {
				r->f.fatal = 1;
				return mq_err_set(err, MQ_ENOMEM, "out of memory for the state file's marks");
			}
			r->marks = m;
			r->mcap = cap;
		}
	}
	uint64_t end = mq_writer_written(r->f.w) + mq_writer_pending(r->f.w);
	r->marks[r->nmarks++] = (struct outmark){end, added};
	/* Written already (a record too large for the buffer goes out
	 * during the put): confirm at once. */
	if (end <= mq_writer_written(r->f.w)) {
		r->left_added = added;
		r->mhead = r->nmarks;
		int rc = mq_seen_confirm(r->seen, added, err);
		if (rc < 0)
			r->f.fatal = 1;
		return rc;
	}
	return 0;
}

/* The writer is about to hand the output up to byte *upto to the fd
 * (or, after a failed write, has handed it up to there): end the write
 * at a record's end if one is in it, so that a kill -9 between writes
 * leaves no record torn, and move the state file's delivery mark to
 * the records it hands on. */
static int before_write(void *ctx, uint64_t *upto, mq_err_t *err)
{
	run_t *r = ctx;
	uint64_t out = mq_writer_written(r->f.w);
	while (r->mhead < r->nmarks && r->marks[r->mhead].end <= out)
		r->left_added = r->marks[r->mhead++].added;
	uint64_t added = r->left_added, end = 0;
	for (size_t i = r->mhead; i < r->nmarks && r->marks[i].end <= *upto; i++) {
		added = r->marks[i].added;
		end = r->marks[i].end;
	}
	if (end > out)
		*upto = end;
	return mq_seen_confirm(r->seen, added, err);
}

/* Pass or drop one record whose identity hash is h (has_id 0: none). */
static int decide(run_t *r, const mq_rec_t *rec, int has_id, mq_hash128_t h, mq_err_t *err)
{
	int pass = !r->o->invert;
	if (!has_id) {
		r->anonymous++;
	} else {
		int seen = mq_seen_add(r->seen, h, r->now_ms, err);
		if (seen < 0) {
			r->f.fatal = 1;
			return seen;
		}
		pass = seen == r->o->invert;
	}
	if (!pass) {
		r->dropped++;
		return 0;
	}
	r->passed++;
	int rc = mq_filter_put(&r->f, rec, err);
	return rc < 0 || !r->o->state ? rc : note_passed(r, err);
}

static int drain(void *ctx, mq_err_t *err)
{
	run_t *r = ctx;
	int rc = 0;
	for (unsigned i = 0; i < r->nheld; i++)
		if (r->held[i].has_id)
			mq_seen_prefetch(r->seen, r->held[i].h);
	/* Every field but the header array, which is large and, with
	 * nheaders 0, never read: an initializer would clear it each time. */
	mq_rec_t rec;
	rec.key = rec.id = NULL;
	rec.key_len = rec.id_len = 0;
	rec.nheaders = 0;
	rec.topic = NULL;
	rec.partition = rec.offset = rec.timestamp = 0;
	rec.fmt = r->o->fmt;
	for (unsigned i = 0; i < r->nheld && rc == 0; i++) {
		const held_t *x = &r->held[i];
		rec.raw = rec.value = r->arena.p + x->off;
		rec.raw_len = rec.value_len = x->len;
		rc = decide(r, &rec, x->has_id, x->h, err);
	}
	r->nheld = 0;
	r->arena.len = 0;
	return rc;
}

static int hold(run_t *r, const mq_rec_t *rec, mq_err_t *err)
{
	const uint8_t *id;
	size_t n;
	int has_id = mq_ident_of(&r->o->by, rec, &id, &n);
	mq_hash128_t h = {0, 0};
	if (has_id)
		h = mq_seen_hash(r->seen, id, n);
	if (!rec->raw || rec->fmt != r->o->fmt) { /* not passed as it came: no copy, no batch */
		int rc = drain(r, err);
		return rc < 0 ? rc : decide(r, rec, has_id, h, err);
	}
	held_t *x = &r->held[r->nheld];
	x->h = h;
	x->has_id = has_id;
	x->off = r->arena.len;
	x->len = rec->raw_len;
	if (mq_buf_append(&r->arena, rec->raw, rec->raw_len) < 0) {
		r->f.fatal = 1;
		return mq_err_set(err, MQ_ENOMEM, "out of memory for a record of %zu bytes", rec->raw_len);
	}
	return ++r->nheld == BATCH ? drain(r, err) : 0;
}

static void malformed(void *ctx, const mq_err_t *err)
{
	run_t *r = ctx;
	if (!r->o->quiet)
		fprintf(stderr, "%s: %s; skipped\n", prog, err->msg);
}

static int each(void *ctx, const mq_rec_t *rec, mq_err_t *err)
{
	run_t *r = ctx;
	if (r->o->age_ms) /* only age windows need the time */
		r->now_ms = mq_now_ms();
	return hold(r, rec, err);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"by", required_argument, NULL, OPT_BY},
		{"delimiter", required_argument, NULL, 'd'},
		{"window", required_argument, NULL, OPT_WINDOW},
		{"state", required_argument, NULL, OPT_STATE},
		{"reset-state", no_argument, NULL, OPT_RESET},
		{"invert", no_argument, NULL, OPT_INVERT},
		{"null", no_argument, NULL, '0'},
		{"format", required_argument, NULL, 'f'},
		{"key-delim", required_argument, NULL, 'K'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	opts_t o = {.by = {.what = MQ_IDENT_LINE}, .fmt = MQ_FMT_LINES};
	mq_cli_t cli;
	mq_err_t err;
	mq_cli_init(&cli);
	int rc = mq_cli_parse(argc, argv, ":d:f:K:0vqhV", longopts, &cli, own_option, check_options, &o, &err);
	if ((rc = mq_cli_done(rc, prog, usage, &err)))
		return rc == 1 ? 0 : rc;
	o.verbose = cli.verbose;
	o.quiet = cli.quiet;

	run_t r = {.o = &o};
	mq_seen_opts_t so = {
		.max_count = o.count, .max_age_ms = o.age_ms, .state = o.state, .reset = o.reset, .confirm = 1};
	if ((rc = mq_seen_open(&so, mq_now_ms(), &r.seen, &err)) < 0) {
		fprintf(stderr, "%s: %s%s\n", prog, err.msg,
			rc == -MQ_ECORRUPT ? "; use --reset-state to start over" : "");
		return 1;
	}
	mq_filter_opts_t fo = {.fmt = o.fmt, .key_delim = o.key_delim, .in_fd = 0, .out_fd = 1};
	if (mq_filter_open(&r.f, &fo, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		mq_seen_close(r.seen);
		return 2;
	}
	r.f.before_flush = sync_state;
	r.f.on_idle = drain;
	r.f.ctx = &r;
	if (o.state) {
		mq_writer_on_wait(r.f.w, -1, NULL, NULL);
		mq_writer_on_write(r.f.w, before_write, &r);
	}
	mq_cli_signals(&stop);
	r.now_ms = mq_now_ms();
	if ((rc = mq_filter_run(&r.f, each, malformed, &stop, &err)) < 0)
		fprintf(stderr, "%s: %s\n", prog, err.msg);
	/* Everything let through has left: additions after the last record
	 * printed (--invert's first occurrences) are known from now on too. */
	if (rc == 0 && !r.f.epipe && !r.f.fatal && mq_seen_confirm(r.seen, mq_seen_added(r.seen), &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		rc = -1;
	}
	rc = rc < 0 || r.f.bad ? 1 : 0;
	if (o.verbose) {
		fprintf(stderr, "%s: %" PRIu64 " passed, %" PRIu64 " dropped", prog, r.passed, r.dropped);
		if (r.anonymous)
			fprintf(stderr, ", %" PRIu64 " without an identity (passed)", r.anonymous);
		if (mq_seen_forced(r.seen))
			fprintf(stderr, ", %" PRIu64 " identities forgotten early (window count reached)",
				mq_seen_forced(r.seen));
		if (r.f.bad)
			fprintf(stderr, ", %" PRIu64 " malformed", r.f.bad);
		fputc('\n', stderr);
	}
	mq_filter_close(&r.f);
	mq_seen_close(r.seen);
	mq_buf_free(&r.arena);
	free(r.marks);
	return rc;
}
