/*
 * mq-admin -- administration of mq: topics, consumer groups, broker
 * health, offline checks of a data directory and CurveZMQ keys.
 *
 *   online, through the broker (client.h):
 *     topic list | create NAME | describe NAME | delete NAME | partitions NAME N
 *     group list | describe GROUP | reset GROUP -t TOPIC --to SPEC | delete GROUP
 *     ping | stats
 *   offline, on a data directory without a broker:
 *     verify DIR | dump DIR/TOPIC/PARTITION [--from OFFSET]
 *   local:
 *     keygen [--secret FILE --public FILE]
 *
 * The command line is parsed once, so options may stand before or after
 * the command words; the table of commands below says which options
 * each one takes, and its synopsis is both the --help text and the hint
 * of a usage error; a mistyped command word is answered with the one it
 * was likely meant to be (mq_cli_suggest).  Output for people and awk
 * alike: tables are columns aligned with spaces under a heading line (-q
 * leaves headings out), single values are "name value" lines; -f json
 * prints one JSON document instead (json.h), fields as mq-admin(1) says.
 *
 * Exit status: 0 success; 1 failure at run time (broker unreachable or
 * refusing, a fault found by verify or dump); 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "cli_done.h"
#include "client.h"
#include "json.h"
#include "lag.h"
#include "layout.h"
#include "mq.h"

static const char *prog = "mq-admin";

static volatile sig_atomic_t stop;

/* ---- options ---- */

/* mq-admin's own options; a command lists the ones it takes as bits. */
enum {
	K_TOPIC,
	K_PARTITIONS,
	K_RET_TIME,
	K_RET_BYTES,
	K_IF_NOT_EXISTS,
	K_TO,
	K_DRY_RUN,
	K_FORCE,
	K_SECRET,
	K_PUBLIC,
	K_OVERWRITE,
	K_FROM,
	K_FORMAT,
	K_CREATE,
	K_COUNT
};
#define BIT(k) (1u << (k))
#define LONG_ONLY 256 /* getopt value of a long-only option: LONG_ONLY + K_* */

static const char *const opt_names[K_COUNT] = {
	"-t/--topic", "--partitions", "--retention-time", "--retention-bytes", "--if-not-exists", "--to",
	"--dry-run",  "--force",      "--secret",         "--public",          "--overwrite",     "--from",
	"-f/--format", "--create",
};

static const struct option longopts[] = {
	{"topic", required_argument, NULL, 't'},
	{"partitions", required_argument, NULL, LONG_ONLY + K_PARTITIONS},
	{"retention-time", required_argument, NULL, LONG_ONLY + K_RET_TIME},
	{"retention-bytes", required_argument, NULL, LONG_ONLY + K_RET_BYTES},
	{"if-not-exists", no_argument, NULL, LONG_ONLY + K_IF_NOT_EXISTS},
	{"to", required_argument, NULL, LONG_ONLY + K_TO},
	{"dry-run", no_argument, NULL, LONG_ONLY + K_DRY_RUN},
	{"force", no_argument, NULL, LONG_ONLY + K_FORCE},
	{"secret", required_argument, NULL, LONG_ONLY + K_SECRET},
	{"public", required_argument, NULL, LONG_ONLY + K_PUBLIC},
	{"overwrite", no_argument, NULL, LONG_ONLY + K_OVERWRITE},
	{"from", required_argument, NULL, LONG_ONLY + K_FROM},
	{"format", required_argument, NULL, 'f'},
	{"create", no_argument, NULL, LONG_ONLY + K_CREATE},
	MQ_CLI_LONGOPTS,
	{NULL, 0, NULL, 0},
};


typedef struct opts {
	mq_cli_t cli;
	unsigned seen; /* BIT(K_*) of every option given */
	const char *topic, *secret, *public;
	uint32_t partitions;                   /* 0: the broker's default */
	int64_t retention_ms, retention_bytes; /* -1: the broker's default */
	mq_offset_spec_t to;
	uint64_t from;
	int json; /* -f json */
	char **words; /* operands: command words, then the command's arguments */
	int nwords;
} opts_t;

static int own_option(opts_t *o, int c, const char *arg, mq_err_t *err)
{
	int k = c == 't' ? K_TOPIC : c == 'f' ? K_FORMAT : c - LONG_ONLY;
	uint64_t v;
	mq_err_t e;
	if (k < 0 || k >= K_COUNT)
		return mq_err_set(err, MQ_EINVAL, "option '-%c' is not handled", c);
	o->seen |= BIT(k);
	switch (k) {
	case K_TOPIC: o->topic = arg; return 0;
	case K_SECRET: o->secret = arg; return 0;
	case K_PUBLIC: o->public = arg; return 0;
	case K_PARTITIONS:
		if (mq_parse_u64(arg, &v, NULL) || v == 0 || v > MQ_PARTITIONS_MAX)
			return mq_err_set(err, MQ_EINVAL, "--partitions '%.200s': expected a number from 1 to %d", arg,
					  MQ_PARTITIONS_MAX);
		o->partitions = (uint32_t)v;
		return 0;
	case K_RET_TIME:
		if (mq_parse_duration_ms(arg, &o->retention_ms, err))
			return -MQ_EINVAL;
		if (o->retention_ms <= 0)
			return mq_err_set(err, MQ_EINVAL,
					  "--retention-time '%.200s': must be more than 0 (leave it out for the broker's default)",
					  arg);
		return 0;
	case K_RET_BYTES:
		if (mq_parse_size(arg, &v, err))
			return -MQ_EINVAL;
		if (v == 0 || v > INT64_MAX)
			return mq_err_set(err, MQ_EINVAL,
					  "--retention-bytes '%.200s': must be more than 0 (leave it out for the broker's default)",
					  arg);
		o->retention_bytes = (int64_t)v;
		return 0;
	case K_TO:
		if (mq_offset_spec_parse(arg, mq_now_ms(), &o->to, &e))
			return mq_err_set(err, MQ_EINVAL, "--to: %s", e.msg);
		return 0;
	case K_FROM:
		if (mq_parse_u64(arg, &o->from, &e))
			return mq_err_set(err, MQ_EINVAL, "--from: %s", e.msg);
		return 0;
	case K_FORMAT:
		if (strcmp(arg, "table") && strcmp(arg, "json"))
			return mq_err_set(err, MQ_EINVAL, "-f '%.200s': unknown format (use table or json)", arg);
		o->json = !strcmp(arg, "json");
		return 0;
	default: /* flags */
		return 0;
	}
}

/* The whole command line: options anywhere, operands into o->words.
 * MQ_CLI_HELP / MQ_CLI_VERSION, 0, or -MQ_EINVAL with err filled. */
static int parse_args(int argc, char **argv, opts_t *o, mq_err_t *err)
{
	int c;
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":t:f:" MQ_CLI_SHORTOPTS, longopts, NULL)) != -1) {
		int r = mq_cli_option(&o->cli, c, optarg, argv, err);
		if (r == MQ_CLI_NOT_MINE)
			r = own_option(o, c, optarg, err);
		if (r < 0 || r == MQ_CLI_HELP || r == MQ_CLI_VERSION)
			return r;
	}
	o->words = argv + optind;
	o->nwords = argc - optind;
	return 0;
}

/* ---- output: aligned tables and readable values ---- */

#define TABLE_COLS 8

/* Cells filled row by row; row 0 is the heading when there is one. */
typedef struct table {
	uint32_t ncols; /* at most TABLE_COLS */
	int heading;
	char **cells;
	size_t n, cap;
	int nomem;
} table_t;

static void cell(table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cell(table_t *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **p = realloc(t->cells, cap * sizeof *p);
		if (!p) {
			t->nomem = 1;
			return;
		}
		t->cells = p;
		t->cap = cap;
	}
	if (!(t->cells[t->n] = strdup(buf)))
		t->nomem = 1;
	else
		t->n++;
}

/* Start t with a heading row: the column names, separated by spaces. */
static void table_head(table_t *t, const char *names)
{
	*t = (table_t){.heading = 1};
	for (const char *p = names; *p; t->ncols++) {
		size_t n = strcspn(p, " ");
		cell(t, "%.*s", (int)n, p);
		p += n + (p[n] == ' ');
	}
}

/* An offset that may be missing (-1): "-". */
static void cell_offset(table_t *t, int64_t off)
{
	if (off < 0)
		cell(t, "-");
	else
		cell(t, "%" PRId64, off);
}

/* Print and free t; show_heading 0 leaves row 0 out when it is one.
 * 0, or 1 after saying that memory ran out. */
static int table_print(table_t *t, int show_heading)
{
	int rc = 0;
	size_t w[TABLE_COLS] = {0}, first = t->heading && !show_heading ? t->ncols : 0;
	if (t->nomem) {
		fprintf(stderr, "%s: out of memory while building the output\n", prog);
		rc = 1;
	}
	for (size_t i = first; !rc && i < t->n; i++) {
		size_t len = strlen(t->cells[i]);
		if (len > w[i % t->ncols])
			w[i % t->ncols] = len;
	}
	for (size_t i = first; !rc && i < t->n; i++) {
		size_t col = i % t->ncols;
		if (col + 1 == t->ncols || i + 1 == t->n)
			printf("%s\n", t->cells[i]);
		else
			printf("%-*s  ", (int)w[col], t->cells[i]);
	}
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof *t);
	return rc;
}

/* A duration in its largest exact unit: "7d", "90m", "1500ms". */
static void fmt_duration(char *buf, size_t n, int64_t ms)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} u[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
		if (ms >= u[i].ms && ms % u[i].ms == 0) {
			snprintf(buf, n, "%" PRId64 "%s", ms / u[i].ms, u[i].unit);
			return;
		}
	snprintf(buf, n, "%" PRId64 "ms", ms);
}

/* A size in its largest exact binary unit: "1GiB", "64KiB", "1000". */
static void fmt_size(char *buf, size_t n, uint64_t bytes)
{
	static const char *const unit[] = {"TiB", "GiB", "MiB", "KiB"};
	for (int i = 0; i < 4; i++) {
		uint64_t m = (uint64_t)1 << (10 * (4 - i));
		if (bytes >= m && bytes % m == 0) {
			snprintf(buf, n, "%" PRIu64 "%s", bytes / m, unit[i]);
			return;
		}
	}
	snprintf(buf, n, "%" PRIu64, bytes);
}

/* ms since the epoch as UTC ISO 8601, as mq-sub -o @TIME reads it. */
static void fmt_time(char *buf, size_t n, int64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || !gmtime_r(&secs, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, n, "-");
}

/* The retention that applies to a topic: its own (own > 0), else the
 * broker's (dflt; 0 keeps everything, < 0 an mq-serve that does not say). */
static void fmt_retention(char *buf, size_t n, int64_t own, int64_t dflt, int bytes)
{
	char v[24]; /* "9223372036854775807ms" at most */
	int64_t x = own > 0 ? own : dflt;
	if (x > 0 && bytes)
		fmt_size(v, sizeof v, (uint64_t)x);
	else if (x > 0)
		fmt_duration(v, sizeof v, x);
	if (own > 0)
		snprintf(buf, n, "%s", v);
	else if (dflt < 0)
		snprintf(buf, n, "default");
	else
		snprintf(buf, n, "%s (broker default)", dflt > 0 ? v : "keep");
}

/* -f json: start a document, an object; json_done closes it, prints it
 * (one document, one line, on stdout) and frees it.  The fields are in
 * mq-admin(1). */
static void json_start(mq_json_t *j, mq_buf_t *b)
{
	*b = (mq_buf_t){0};
	mq_json_init(j, b);
	mq_json_object(j);
}

static int json_done(mq_json_t *j, mq_buf_t *b)
{
	mq_err_t e;
	mq_json_end(j);
	int rc = mq_json_finish(j, &e);
	if (rc)
		fprintf(stderr, "%s: %s\n", prog, e.msg);
	else
		fwrite(b->p, 1, b->len, stdout);
	mq_buf_free(b);
	return rc ? 1 : 0;
}

/* {"key":[...]}, the shape of the lists' documents: begin, then a value
 * per element, then done. */
static void json_list_begin(mq_json_t *j, mq_buf_t *b, const char *key)
{
	json_start(j, b);
	mq_json_key(j, key);
	mq_json_array(j);
}

static int json_list_done(mq_json_t *j, mq_buf_t *b)
{
	mq_json_end(j);
	return json_done(j, b);
}

/* ---- verify ---- */

static void print_fault(void *ctx, const char *msg)
{
	(void)ctx;
	printf("FAULT %s\n", msg);
}

/* Warn when a broker holds the directory: its tail may be mid-write. */
static void warn_if_locked(const char *dir)
{
	char p[PATH_MAX];
	if ((size_t)snprintf(p, sizeof(p), "%s/mq.lock", dir) >= sizeof(p))
		return;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		char pid[32] = "";
		ssize_t n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		fprintf(stderr, "%s: warning: '%s' is in use by pid %s; its newest data may be mid-write\n", prog,
			dir, pid[0] ? pid : "?");
	}
	close(fd);
}


/* What every command gets: the options, the client of an online
 * command, and room for an error. */
typedef struct admin {
	const opts_t *o;
	mq_client_t *c;
	mq_err_t err;
} admin_t;

static int cmd_verify(admin_t *a, char **args)
{
	const char *dir = args[0];
	mq_layout_counts_t n;
	char p[PATH_MAX];
	if ((size_t)snprintf(p, sizeof(p), "%s/topics", dir) < sizeof(p) && access(p, F_OK) == 0)
		warn_if_locked(dir);
	int rc = mq_layout_verify(dir, print_fault, NULL, &n, &a->err);
	if (rc == -MQ_ENOENT || rc == -MQ_EINVAL || (rc < 0 && n.partitions == 0 && n.faults == 0)) {
		fprintf(stderr, "%s: verify %s (give a data directory, a topic directory or a partition "
			"directory that can be read)\n", prog, a->err.msg);
		return 1;
	}
	if (rc < 0) { /* the walk stopped early: not a clean bill */
		fprintf(stderr, "%s: verify '%s' stopped after %d partition%s: %s\n", prog, dir, n.partitions,
			n.partitions == 1 ? "" : "s", a->err.msg);
		return 1;
	}
	printf("%s: %d partition%s checked, %d fault%s\n", dir, n.partitions, n.partitions == 1 ? "" : "s",
	       n.faults, n.faults == 1 ? "" : "s");
	return n.faults ? 1 : 0;
}


/* ---- dump ---- */

static void put_escaped(FILE *fp, const uint8_t *p, size_t n)
{
	fputc('"', fp);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		size_t k;
		if (c >= 0x80 && (k = mq_utf8_seq(p + i, n - i)) > 0) {
			fwrite(p + i, 1, k, fp);
			i += k - 1;
		} else if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", fp);
		else if (c == '\t')
			fputs("\\t", fp);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
	fputc('"', fp);
}

typedef struct dstate {
	uint64_t from;
	uint64_t batches, records;
	int faults;
} dstate_t;

static void dump_fault(void *ctx, const char *msg)
{
	dstate_t *d = ctx;
	d->faults++;
	printf("FAULT %s\n", msg);
}

static int dump_batch(void *ctx, const uint8_t *b, size_t len, const char *seg, uint64_t pos)
{
	dstate_t *d = ctx;
	mq_batch_iter_t it;
	mq_err_t err;
	if (mq_batch_iter_init(&it, b, len, &err)) {
		dump_fault(d, err.msg);
		return 0;
	}
	const mq_batch_hdr_t *h = &it.hdr;
	const char *base = strrchr(seg, '/');
	printf("batch offset=%" PRIu64 " count=%u length=%u file=%s pos=%" PRIu64 " crc=%08x flags=0x%04x"
	       " first_ts=%" PRId64 " max_ts=%" PRId64 " producer=%" PRIu64 " seq=%u",
	       h->base_offset, h->count, h->length, base ? base + 1 : seg, pos, h->crc, h->flags, h->first_ts,
	       h->max_ts, h->producer_id, h->base_seq);
	if (h->deliver_at)
		printf(" deliver_at=%" PRId64, h->deliver_at);
	if (h->expire_at)
		printf(" expire_at=%" PRId64, h->expire_at);
	if (h->txn_id)
		printf(" txn=%016" PRIx64, h->txn_id); /* as mq-pub --prepare prints it */
	putchar('\n');
	d->batches++;
	mq_record_t r;
	int rc;
	while ((rc = mq_batch_iter_next(&it, &r)) > 0) {
		if (r.offset < d->from)
			continue;
		printf("  offset=%" PRIu64 " ts=%" PRId64, r.offset, r.timestamp);
		if (r.key) {
			fputs(" key=", stdout);
			put_escaped(stdout, r.key, r.key_len);
		}
		if (r.id) {
			fputs(" id=", stdout);
			put_escaped(stdout, r.id, r.id_len);
		}
		const uint8_t *hp = r.headers;
		mq_header_t hd;
		while (mq_header_next(&hp, r.headers_end, &hd) > 0) {
			fputs(" header:", stdout);
			put_escaped(stdout, hd.name, hd.name_len);
			putchar('=');
			put_escaped(stdout, hd.value, hd.value_len);
		}
		printf(" size=%zu value=", r.value_len);
		put_escaped(stdout, r.value, r.value_len);
		putchar('\n');
		d->records++;
	}
	if (rc < 0)
		dump_fault(d, "malformed record in batch");
	return ferror(stdout) ? -MQ_EIO : 0;
}

static int cmd_dump(admin_t *a, char **args)
{
	dstate_t d = {.from = a->o->from};
	const char *dir = args[0];
	char alt[PATH_MAX];
	mq_err_t e;
	int n = mq_layout_segments(dir, &a->err);
	if (n <= 0 && mq_layout_partition_path(dir, alt, sizeof alt, NULL) == 0) {
		int m = mq_layout_segments(alt, &e);
		if (m > 0 || (n < 0 && m == 0)) {
			dir = alt;
			n = m;
		}
	}
	if (n < 0) {
		fprintf(stderr, "%s: dump %s (give a partition directory: DIR/TOPIC/PARTITION, or "
			"DIR/topics/TOPIC/PARTITION, with DIR the data directory)\n", prog, a->err.msg);
		return 1;
	}
	if (n == 0) {
		fprintf(stderr, "%s: dump '%s': no segment files, so not a partition directory (give "
			"DIR/TOPIC/PARTITION, or DIR/topics/TOPIC/PARTITION, with DIR the data directory)\n",
			prog, dir);
		return 1;
	}
	int rc = mq_log_scan(dir, d.from, dump_batch, dump_fault, &d, &a->err);
	if (rc < 0 && rc != -MQ_EIO) {
		fprintf(stderr, "%s: %s\n", prog, a->err.msg);
		return 1;
	}
	if (fflush(stdout) != 0 || rc == -MQ_EIO) {
		fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
		return 1;
	}
	if (!a->o->cli.quiet)
		fprintf(stderr, "%s: %" PRIu64 " batches, %" PRIu64 " records%s\n", prog, d.batches, d.records,
			d.faults ? ", with faults (see FAULT lines)" : "");
	return d.faults ? 1 : 0;
}

/* ---- online commands ---- */

/* A call that failed: its message (which names the broker, the topic
 * or the group) on stderr, exit status 1. */
static int failed(admin_t *a)
{
	fprintf(stderr, "%s: %s\n", prog, a->err.msg);
	return 1;
}

static int headings(const admin_t *a)
{
	return !a->o->cli.quiet;
}

/* The end of a command that changes something: rc from its call (then
 * exit status 1), else 0 after saying what was done with -v (and not -q:
 * the columns -v adds to lists do not depend on -q). */
static int changed(admin_t *a, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int changed(admin_t *a, int rc, const char *fmt, ...)
{
	if (rc)
		return failed(a);
	if (a->o->cli.verbose && !a->o->cli.quiet) {
		va_list ap;
		va_start(ap, fmt);
		fprintf(stderr, "%s: ", prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	return 0;
}

static int cmd_topic_list(admin_t *a, char **args)
{
	(void)args;
	mq_topic_list_t l;
	if (mq_client_topics(a->c, &l, &a->err))
		return failed(a);
	int rc = 0;
	if (a->o->json) {
		mq_json_t j;
		mq_buf_t b;
		json_list_begin(&j, &b, "topics");
		for (uint32_t i = 0; i < l.n; i++) {
			mq_json_object(&j);
			mq_json_kstr(&j, "name", l.names[i]);
			mq_json_ku64(&j, "partitions", l.parts[i]);
			mq_json_end(&j);
		}
		rc = json_list_done(&j, &b);
	} else if (a->o->cli.verbose) {
		table_t t;
		table_head(&t, "TOPIC PARTITIONS");
		for (uint32_t i = 0; i < l.n; i++) {
			cell(&t, "%s", l.names[i]);
			cell(&t, "%" PRIu32, l.parts[i]);
		}
		rc = table_print(&t, headings(a));
	} else {
		for (uint32_t i = 0; i < l.n; i++)
			printf("%s\n", l.names[i]);
	}
	mq_topic_list_free(&l);
	return rc;
}

static int cmd_topic_create(admin_t *a, char **args)
{
	const opts_t *o = a->o;
	int rc = mq_client_topic_create(a->c, args[0], o->partitions, o->retention_ms, o->retention_bytes, &a->err);
	if (rc == -MQ_EEXIST && (o->seen & BIT(K_IF_NOT_EXISTS)))
		return 0;
	return changed(a, rc, "created topic '%s'", args[0]);
}

/* key: the retention that applies, or null to keep everything (or when
 * an older mq-serve did not say); dkey: whether it is the broker's. */
static void json_retention(mq_json_t *j, const char *key, const char *dkey, int64_t own, int64_t dflt)
{
	mq_json_ki64_or_null(j, key, own > 0 ? own : dflt > 0 ? dflt : -1);
	mq_json_kbool(j, dkey, own <= 0);
}

static int topic_describe_json(const mq_topic_info_t *ti, const mq_part_offsets_t *po)
{
	mq_json_t j;
	mq_buf_t b;
	json_start(&j, &b);
	mq_json_kstr(&j, "topic", ti->name);
	mq_json_ku64(&j, "partitions", ti->partitions);
	json_retention(&j, "retention_time_ms", "retention_time_default", ti->retention_ms, ti->default_retention_ms);
	json_retention(&j, "retention_bytes", "retention_bytes_default", ti->retention_bytes,
		       ti->default_retention_bytes);
	mq_json_ki64_or_null(&j, "created_ms", ti->created_ms > 0 ? ti->created_ms : -1);
	mq_json_ki64_or_null(&j, "bytes", ti->no_bytes ? -1 : (int64_t)ti->bytes);
	mq_json_ku64(&j, "messages", ti->messages);
	mq_json_key(&j, "offsets");
	mq_json_array(&j);
	for (uint32_t p = 0; p < ti->partitions; p++) {
		mq_json_object(&j);
		mq_json_ku64(&j, "partition", p);
		mq_json_ku64(&j, "start", po[p].start);
		mq_json_ku64(&j, "end", po[p].end);
		mq_json_ku64(&j, "messages", po[p].end - po[p].start);
		mq_json_end(&j);
	}
	mq_json_end(&j);
	return json_done(&j, &b);
}

static int cmd_topic_describe(admin_t *a, char **args)
{
	const char *topic = args[0];
	mq_topic_info_t ti;
	char buf[64];
	if (mq_client_topic_describe(a->c, topic, &ti, &a->err))
		return failed(a);
	mq_part_offsets_t *po = calloc(ti.partitions ? ti.partitions : 1, sizeof *po);
	if (!po) {
		fprintf(stderr, "%s: topic '%s': out of memory for %" PRIu32 " partitions\n", prog, topic, ti.partitions);
		return 1;
	}
	if (mq_client_offsets(a->c, topic, -1, po, ti.partitions, &a->err)) {
		free(po);
		return failed(a);
	}
	if (a->o->json) {
		int rc = topic_describe_json(&ti, po);
		free(po);
		return rc;
	}
	table_t h = {.ncols = 2};
	cell(&h, "topic");
	cell(&h, "%s", topic);
	cell(&h, "partitions");
	cell(&h, "%" PRIu32, ti.partitions);
	cell(&h, "retention-time");
	fmt_retention(buf, sizeof buf, ti.retention_ms, ti.default_retention_ms, 0);
	cell(&h, "%s", buf);
	cell(&h, "retention-bytes");
	fmt_retention(buf, sizeof buf, ti.retention_bytes, ti.default_retention_bytes, 1);
	cell(&h, "%s", buf);
	cell(&h, "created");
	fmt_time(buf, sizeof buf, ti.created_ms);
	cell(&h, "%s", buf);
	cell(&h, "bytes");
	if (ti.no_bytes)
		cell(&h, "-");
	else
		cell(&h, "%" PRIu64, ti.bytes);
	cell(&h, "messages");
	cell(&h, "%" PRIu64, ti.messages);
	int rc = table_print(&h, 1);

	table_t t;
	table_head(&t, "PARTITION START END MESSAGES");
	for (uint32_t p = 0; p < ti.partitions; p++) {
		cell(&t, "%" PRIu32, p);
		cell(&t, "%" PRIu64, po[p].start);
		cell(&t, "%" PRIu64, po[p].end);
		cell(&t, "%" PRIu64, po[p].end - po[p].start);
	}
	putchar('\n');
	rc |= table_print(&t, headings(a));
	free(po);
	return rc;
}

static int cmd_topic_delete(admin_t *a, char **args)
{
	int force = (a->o->seen & BIT(K_FORCE)) != 0;
	int rc = mq_client_topic_delete(a->c, args[0], force, &a->err);
	if (rc == -MQ_EBUSY && !strstr(a->err.msg, "--force")) {
		fprintf(stderr, "%s: %s (stop them first, or add --force to delete it anyway)\n", prog, a->err.msg);
		return 1;
	}
	return changed(a, rc, "deleted topic '%s'", args[0]);
}

static int cmd_topic_partitions(admin_t *a, char **args)
{
	uint64_t n;
	if (mq_parse_u64(args[1], &n, NULL) || n == 0 || n > MQ_PARTITIONS_MAX) {
		fprintf(stderr, "%s: topic partitions '%s': expected a partition count from 1 to %d (try '%s --help')\n",
			prog, args[1], MQ_PARTITIONS_MAX, prog);
		return 2;
	}
	return changed(a, mq_client_topic_partitions(a->c, args[0], (uint32_t)n, &a->err),
		       "topic '%s' has %" PRIu64 " partitions", args[0], n);
}

/* Messages a group has still to read in a partition: from its commit,
 * or from the start of the retained log, where it would begin. */
static uint64_t row_lag(const mq_group_row_t *r)
{
	uint64_t from = r->committed < 0 || (uint64_t)r->committed < r->start ? r->start : (uint64_t)r->committed;
	return r->end > from ? r->end - from : 0;
}

/* How long the oldest message the group has not read has waited, in
 * seconds; 0 when none waits, < 0 unknown. */
static double row_age(const mq_group_row_t *r)
{
	mq_lag_eval_t ev;
	mq_lag_evaluate(r, mq_now_ms(), &ev);
	return ev.age_s;
}

static uint64_t group_lag(const mq_group_info_t *g)
{
	uint64_t lag = 0;
	for (uint32_t r = 0; r < g->nrows; r++)
		lag += row_lag(&g->rows[r]);
	return lag;
}

static int cmd_group_list(admin_t *a, char **args)
{
	(void)args;
	mq_group_info_t *g;
	uint32_t n;
	if (mq_client_groups(a->c, NULL, NULL, &g, &n, &a->err))
		return failed(a);
	int rc = 0;
	if (a->o->json) {
		mq_json_t j;
		mq_buf_t b;
		json_list_begin(&j, &b, "groups");
		for (uint32_t i = 0; i < n; i++) {
			mq_json_object(&j);
			mq_json_kstr(&j, "group", g[i].name);
			mq_json_ki64_or_null(&j, "members", g[i].no_members ? -1 : (int64_t)g[i].nmembers);
			mq_json_ku64(&j, "lag", group_lag(&g[i]));
			mq_json_end(&j);
		}
		rc = json_list_done(&j, &b);
	} else if (a->o->cli.verbose) {
		table_t t;
		table_head(&t, "GROUP MEMBERS LAG");
		for (uint32_t i = 0; i < n; i++) {
			cell(&t, "%s", g[i].name);
			if (g[i].no_members)
				cell(&t, "?");
			else
				cell(&t, "%" PRIu32, g[i].nmembers);
			cell(&t, "%" PRIu64, group_lag(&g[i]));
		}
		rc = table_print(&t, headings(a));
	} else {
		for (uint32_t i = 0; i < n; i++)
			printf("%s\n", g[i].name);
	}
	mq_group_info_free(g, n);
	return rc;
}

static int group_describe_json(const mq_group_info_t *g)
{
	mq_json_t j;
	mq_buf_t b;
	json_start(&j, &b);
	mq_json_kstr(&j, "group", g->name);
	mq_json_ku64(&j, "generation", g->generation);
	mq_json_ku64(&j, "lag", group_lag(g));
	mq_json_key(&j, "members");
	mq_json_array(&j);
	for (uint32_t i = 0; i < g->nmembers; i++) {
		const mq_group_member_info_t *m = &g->members[i];
		mq_json_object(&j);
		mq_json_kstr(&j, "id", m->id);
		mq_json_kstr(&j, "client", m->client[0] ? m->client : NULL);
		mq_json_ku64(&j, "partitions", m->nowned);
		mq_json_ki64(&j, "idle_ms", m->idle_ms);
		mq_json_end(&j);
	}
	mq_json_end(&j);
	mq_json_key(&j, "offsets");
	mq_json_array(&j);
	for (uint32_t i = 0; i < g->nrows; i++) {
		const mq_group_row_t *r = &g->rows[i];
		mq_json_object(&j);
		mq_json_kstr(&j, "topic", r->topic);
		mq_json_ku64(&j, "partition", r->partition);
		mq_json_ki64_or_null(&j, "committed", r->committed);
		mq_json_ku64(&j, "start", r->start);
		mq_json_ku64(&j, "end", r->end);
		mq_json_ku64(&j, "lag", row_lag(r));
		mq_json_kstr(&j, "owner", r->owner[0] ? r->owner : NULL);
		double age = row_age(r);
		mq_json_key(&j, "lag_seconds");
		if (age < 0)
			mq_json_null(&j);
		else
			mq_json_fixed(&j, age, 3);
		mq_json_ki64_or_null(&j, "since_ms", row_lag(r) && r->since_ms >= 0 ? r->since_ms : -1);
		mq_json_end(&j);
	}
	mq_json_end(&j);
	return json_done(&j, &b);
}

static int cmd_group_describe(admin_t *a, char **args)
{
	mq_group_info_t *gs;
	uint32_t n;
	if (mq_client_groups(a->c, args[0], a->o->topic, &gs, &n, &a->err))
		return failed(a);
	if (n != 1) {
		mq_group_info_free(gs, n);
		fprintf(stderr, "%s: group '%s': the broker described %" PRIu32 " groups instead of one\n", prog,
			args[0], n);
		return 1;
	}
	const mq_group_info_t *g = gs;
	if (a->o->json) {
		int rc = group_describe_json(g);
		mq_group_info_free(gs, n);
		return rc;
	}
	table_t h = {.ncols = 2};
	cell(&h, "group");
	cell(&h, "%s", args[0]);
	cell(&h, "generation");
	cell(&h, "%" PRIu64, g->generation);
	cell(&h, "members");
	if (g->no_members)
		cell(&h, "? (the cluster does not describe groups)");
	else
		cell(&h, "%" PRIu32, g->nmembers);
	int rc = table_print(&h, 1);
	if (g->nmembers) {
		table_t m;
		table_head(&m, "MEMBER CLIENT PARTITIONS IDLE");
		for (uint32_t i = 0; i < g->nmembers; i++) {
			const mq_group_member_info_t *mi = &g->members[i];
			cell(&m, "%s", mi->id);
			cell(&m, "%s", mi->client[0] ? mi->client : "-");
			cell(&m, "%" PRIu32, mi->nowned);
			if (mi->idle_ms < 0) /* a Kafka cluster does not say */
				cell(&m, "-");
			else
				cell(&m, "%.1fs", (double)mi->idle_ms / 1000.0);
		}
		putchar('\n');
		rc |= table_print(&m, headings(a));
	}
	table_t t;
	table_head(&t, "TOPIC PARTITION COMMITTED END LAG OWNER AGE");
	for (uint32_t i = 0; i < g->nrows; i++) {
		const mq_group_row_t *r = &g->rows[i];
		cell(&t, "%s", r->topic);
		cell(&t, "%" PRIu32, r->partition);
		cell_offset(&t, r->committed);
		cell(&t, "%" PRIu64, r->end);
		cell(&t, "%" PRIu64, row_lag(r));
		cell(&t, "%s", r->owner[0] ? r->owner : "-");
		char age[32];
		mq_lag_fmt_secs(age, sizeof age, row_age(r));
		cell(&t, "%s", age);
	}
	putchar('\n');
	rc |= table_print(&t, headings(a));
	mq_group_info_free(gs, n);
	return rc;
}

static int cmd_group_reset(admin_t *a, char **args)
{
	const opts_t *o = a->o;
	if (!o->topic || !(o->seen & BIT(K_TO))) {
		fprintf(stderr, "%s: group reset: give %s (try '%s --help')\n", prog,
			!o->topic ? "the topic with -t TOPIC" : "the new position with --to beginning|end|N|-N|@TIME",
			prog);
		return 2;
	}
	int dry = (o->seen & BIT(K_DRY_RUN)) != 0;
	unsigned flags = (dry ? MQ_RESET_DRY_RUN : 0) | (o->seen & BIT(K_CREATE) ? MQ_RESET_CREATE : 0);
	mq_reset_entry_t *e;
	uint32_t n;
	if (mq_client_group_reset(a->c, args[0], o->topic, &o->to, flags, &e, &n, &a->err))
		return failed(a);
	table_t t;
	table_head(&t, "PARTITION OLD NEW");
	for (uint32_t i = 0; i < n; i++) {
		cell(&t, "%" PRIu32, e[i].partition);
		cell_offset(&t, e[i].old);
		cell(&t, "%" PRIu64, e[i].new_offset);
	}
	free(e);
	int rc = table_print(&t, headings(a));
	if (dry)
		printf("(dry run: nothing changed)\n");
	return rc;
}

static int cmd_group_delete(admin_t *a, char **args)
{
	return changed(a, mq_client_group_delete(a->c, args[0], &a->err), "deleted group '%s'", args[0]);
}

static int cmd_ping(admin_t *a, char **args)
{
	(void)args;
	mq_hello_t h;
	int64_t us;
	/* The first request of a client waits for the connection (retrying
	 * every 20 ms): time the second one. */
	int rc = mq_client_hello(a->c, &h, &a->err);
	if (!rc)
		rc = mq_client_ping(a->c, &h, &us, &a->err);
	if (a->o->json) {
		mq_json_t j;
		mq_buf_t b;
		json_start(&j, &b);
		mq_json_kstr(&j, "broker", mq_client_endpoint(a->c));
		mq_json_kbool(&j, "ok", !rc);
		if (rc) {
			mq_json_kstr(&j, "error", a->err.msg);
		} else {
			mq_json_kstr(&j, "version", h.broker_version);
			mq_json_key(&j, "rtt_ms");
			mq_json_fixed(&j, (double)us / 1000.0, 3);
			mq_json_ku64(&j, "max_message_bytes", h.max_message_bytes);
			mq_json_ku64(&j, "default_partitions", h.default_partitions);
		}
		if (json_done(&j, &b))
			return 1;
	}
	if (rc)
		return failed(a);
	if (a->o->json)
		return 0;
	printf("broker %s: mq-serve %s, %" PRId64 ".%03" PRId64 " ms\n", mq_client_endpoint(a->c), h.broker_version,
	       us / 1000, us % 1000);
	return 0;
}

static int cmd_stats(admin_t *a, char **args)
{
	(void)args;
	mq_stat_t *s;
	uint32_t n;
	if (mq_client_stats(a->c, &s, &n, &a->err))
		return failed(a);
	if (a->o->json) {
		mq_json_t j;
		mq_buf_t b;
		json_start(&j, &b);
		for (uint32_t i = 0; i < n; i++)
			mq_json_ki64(&j, s[i].name, s[i].value);
		free(s);
		return json_done(&j, &b);
	}
	table_t t = {.ncols = 2};
	for (uint32_t i = 0; i < n; i++) {
		cell(&t, "%s", s[i].name);
		cell(&t, "%" PRId64, s[i].value);
	}
	free(s);
	return table_print(&t, 1);
}

/* ---- keygen ---- */

/* Write key and a newline to a new file path with exactly this mode
 * (whatever the umask).  overwrite: replace what is there. */
static int write_key(const char *path, const char *key, mode_t mode, int overwrite, mq_err_t *err)
{
	if (overwrite && unlink(path) < 0 && errno != ENOENT)
		return mq_err_sys(err, "keygen: cannot replace '%s'", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0 && errno == EEXIST)
		return mq_err_set(err, MQ_EEXIST, "keygen: '%s' exists; not overwriting it (remove it, or add --overwrite)",
				  path);
	if (fd < 0)
		return mq_err_sys(err, "keygen: cannot create '%s'", path);
	char line[64];
	int len = snprintf(line, sizeof line, "%s\n", key);
	int rc = 0;
	if (fchmod(fd, mode) < 0 || mq_write_all(fd, line, (size_t)len) < 0 || fsync(fd) < 0)
		rc = mq_err_sys(err, "keygen: cannot write '%s'", path);
	explicit_bzero(line, sizeof line);
	if (close(fd) < 0 && !rc)
		rc = mq_err_sys(err, "keygen: cannot write '%s'", path);
	if (rc)
		unlink(path);
	return rc;
}

/* path without trailing slashes into out[PATH_MAX]: its last component
 * follows the last slash.  -1 if it is too long. */
static int copy_path(char *out, const char *path)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= PATH_MAX)
		return -1;
	memcpy(out, path, len);
	out[len] = 0;
	return 0;
}

/* The directory entry path names: its directory's device and inode and
 * its last component.  -1 when the directory cannot be looked at (then
 * creating the file fails too, and says why). */
typedef struct entry {
	dev_t dev;
	ino_t ino;
	char name[NAME_MAX + 1];
} entry_t;

static int entry_of(const char *path, entry_t *e)
{
	char dir[PATH_MAX];
	if (copy_path(dir, path) < 0)
		return -1;
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : dir;
	size_t n = strlen(base);
	if (n >= sizeof e->name)
		return -1;
	memcpy(e->name, base, n + 1);
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	struct stat st;
	if (stat(dir, &st) < 0)
		return -1;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	return 0;
}

/* Whether paths a and b name one file: the same directory entry (./s
 * and s, d/../s and s, through symbolic links to directories), or two
 * links to one file. */
static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	if (lstat(a, &sa) == 0 && lstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino)
		return 1;
	entry_t ea, eb;
	return entry_of(a, &ea) == 0 && entry_of(b, &eb) == 0 && ea.dev == eb.dev && ea.ino == eb.ino &&
	       !strcmp(ea.name, eb.name);
}

static int cmd_keygen(admin_t *a, char **args)
{
	(void)args;
	const opts_t *o = a->o;
	int overwrite = (o->seen & BIT(K_OVERWRITE)) != 0;
	char pub[41], sec[41];
	if (!o->secret != !o->public || (overwrite && !o->secret)) {
		fprintf(stderr, "%s: keygen: --secret FILE and --public FILE go together%s (try '%s --help')\n", prog,
			overwrite && !o->secret ? ", and --overwrite goes with them" : "", prog);
		return 2;
	}
	if (o->secret && (!strcmp(o->secret, o->public) || same_file(o->secret, o->public))) {
		fprintf(stderr, "%s: keygen: --secret and --public name the same file ('%s', '%s'); give two files\n",
			prog, o->secret, o->public);
		return 2;
	}
	if (zmq_curve_keypair(pub, sec) != 0) {
		if (zmq_errno() == ENOTSUP)
			fprintf(stderr, "%s: keygen: this libzmq has no CURVE support (built without libsodium); "
				"install a libzmq that has it\n", prog);
		else
			fprintf(stderr, "%s: keygen: zmq_curve_keypair failed: %s\n", prog, zmq_strerror(zmq_errno()));
		return 1;
	}
	int rc = 0;
	if (!o->secret) {
		printf("public: %s\nsecret: %s\n", pub, sec);
	} else if (!(rc = write_key(o->secret, sec, 0600, overwrite, &a->err)) &&
		   (rc = write_key(o->public, pub, 0644, overwrite, &a->err))) {
		unlink(o->secret); /* no half pair */
	}
	explicit_bzero(sec, sizeof sec);
	if (!o->secret)
		return 0;
	return changed(a, rc, "wrote the secret key to '%s' (mode 0600) and the public key to '%s'", o->secret,
		       o->public);
}

/* ---- the commands ---- */

typedef struct command {
	const char *word, *sub; /* "topic" "create"; sub NULL: a one-word command */
	const char *synopsis;   /* what follows the words */
	const char *what;       /* for --help */
	int nargs;              /* operands after the words */
	const char *kind;       /* the first operand is a name of this kind, or NULL */
	unsigned opts;          /* BIT(K_*) it takes */
	int online;             /* talks to the broker */
	int (*run)(admin_t *a, char **args);
} command_t;

static const command_t commands[] = {
	{"topic", "list", "[-f json]", "every topic, one per line (-v: with its partitions)", 0, NULL, BIT(K_FORMAT), 1,
	 cmd_topic_list},
	{"topic", "create",
	 "NAME [--partitions N] [--retention-time D] [--retention-bytes S] [--if-not-exists]",
	 "create a topic (default: the broker's --partitions and retention)", 1, "topic",
	 BIT(K_PARTITIONS) | BIT(K_RET_TIME) | BIT(K_RET_BYTES) | BIT(K_IF_NOT_EXISTS), 1, cmd_topic_create},
	{"topic", "describe", "NAME [-f json]", "settings and size of a topic, and each partition's offsets", 1, "topic",
	 BIT(K_FORMAT), 1, cmd_topic_describe},
	{"topic", "delete", "NAME [--force]", "delete a topic and its data (refused while a group with live\n"
	 "members reads it, unless --force)", 1, "topic", BIT(K_FORCE), 1, cmd_topic_delete},
	{"topic", "partitions", "NAME N", "grow a topic to N partitions; old data stays readable, but keys\n"
	 "may map to other partitions from now on", 2, "topic", 0, 1, cmd_topic_partitions},
	{"group", "list", "[-f json]", "every consumer group, one per line (-v: with members and lag)", 0, NULL,
	 BIT(K_FORMAT), 1, cmd_group_list},
	{"group", "describe", "GROUP [-t TOPIC] [-f json]", "members, and per partition the committed offset, end, lag\n"
	 "and owner", 1, "group", BIT(K_TOPIC) | BIT(K_FORMAT), 1, cmd_group_describe},
	{"group", "reset", "GROUP -t TOPIC --to beginning|end|N|-N|@TIME [--dry-run] [--create]",
	 "move the group's committed offsets on TOPIC (refused while the\n"
	 "group has live members, and for a group that does not exist\n"
	 "unless --create); --dry-run shows what would change", 1, "group",
	 BIT(K_TOPIC) | BIT(K_TO) | BIT(K_DRY_RUN) | BIT(K_CREATE), 1, cmd_group_reset},
	{"group", "delete", "GROUP", "forget a group and its committed offsets (refused while it\n"
	 "has live members)", 1, "group", 0, 1, cmd_group_delete},
	{"ping", NULL, "[-f json]", "the broker's version and the round-trip time; exit 1 if it does\n"
	 "not answer within -w", 0, NULL, BIT(K_FORMAT), 1, cmd_ping},
	{"stats", NULL, "[-f json]", "the broker's counters, one \"name value\" line each", 0, NULL, BIT(K_FORMAT), 1,
	 cmd_stats},
	{"verify", NULL, "DIR", "check every segment and index under DIR (a data, topic or\n"
	 "partition directory), offline; exit 1 on any fault", 1, NULL, 0, 0, cmd_verify},
	{"dump", NULL, "DIR/TOPIC/PARTITION [--from OFFSET]",
	 "print the batches and records of a partition, offline (DIR is the\n"
	 "data directory; DIR/topics/TOPIC/PARTITION works too)", 1, NULL, BIT(K_FROM), 0, cmd_dump},
	{"keygen", NULL, "[--secret FILE --public FILE [--overwrite]]",
	 "make a CurveZMQ key pair: print it, or write the secret key\n"
	 "(mode 0600) and the public key (0644) to new files", 0, NULL,
	 BIT(K_SECRET) | BIT(K_PUBLIC) | BIT(K_OVERWRITE), 0, cmd_keygen},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *fp)
{
	fprintf(fp, "usage: mq-admin COMMAND [ARGS] [options]\n\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const command_t *c = &commands[i];
		fprintf(fp, "  mq-admin %s%s%s%s%s\n      ", c->word, c->sub ? " " : "", c->sub ? c->sub : "",
			c->synopsis[0] ? " " : "", c->synopsis);
		for (const char *p = c->what; *p; p++) {
			if (*p == '\n')
				fputs("\n      ", fp);
			else
				fputc(*p, fp);
		}
		fputc('\n', fp);
	}
	fprintf(fp,
		"\n"
		"  --partitions N           topic create: N partitions (default: the broker's --partitions)\n"
		"  --retention-time D       topic create: keep messages for D (250ms, 10s, 5m, 2h, 7d)\n"
		"  --retention-bytes S      topic create: keep at most S per partition (64KiB, 1GiB, ...)\n"
		"  --if-not-exists          topic create: succeed when the topic exists already\n"
		"  --force                  topic delete: even while a group with live members reads it\n"
		"  -t, --topic NAME         group describe: only this topic; group reset: the topic\n"
		"  --to SPEC                group reset: beginning, end, offset N, N before the end (-N),\n"
		"                           or the first message at or after @TIME (@MS, @-1h,\n"
		"                           @2026-11-24T10:00:00Z)\n"
		"  --dry-run                group reset: print what would change, change nothing\n"
		"  --create                 group reset: make the group when it does not exist\n"
		"  -f, --format FMT         list, describe, ping, stats: table (default) or json\n"
		"                           (one JSON document; fields in mq-admin(1))\n"
		"  --from OFFSET            dump: start at this offset\n"
		"  --secret FILE, --public FILE  keygen: write the keys to these new files\n"
		"  --overwrite              keygen: replace files that exist\n"
		MQ_CLI_HELP_BROKER
		"  -v, --verbose            more columns in lists; say what was done on stderr\n"
		"  -q, --quiet              no heading lines above tables\n"
		"  -h, --help               this help;  -V, --version  the version\n");
}

/* The command words (word NULL), or the subcommands of word, into
 * w[NCOMMANDS]: how many. */
static size_t words_of(const char *word, const char **w)
{
	size_t k = 0;
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const char *s = word ? commands[i].sub : commands[i].word;
		if (word && strcmp(commands[i].word, word))
			continue;
		if (k && !strcmp(w[k - 1], s))
			continue;
		w[k++] = s;
	}
	return k;
}

/* "a, b or c": the command words, or the subcommands of word. */
static void word_list(char *buf, size_t n, const char *word)
{
	const char *w[NCOMMANDS];
	size_t k = words_of(word, w), len = 0;
	buf[0] = 0;
	for (size_t i = 0; i < k && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%s", i == 0 ? "" : i + 1 == k ? " or " : ", ", w[i]);
}

/* The command the words name, with its operands checked: NULL after
 * printing a usage error. */
static const command_t *find_command(const opts_t *o, char ***args)
{
	char list[256], name[64];
	mq_err_t err;
	if (o->nwords == 0) {
		word_list(list, sizeof list, NULL);
		fprintf(stderr, "%s: no command given (use %s; try '%s --help')\n", prog, list, prog);
		return NULL;
	}
	const char *word = o->words[0], *sub = o->nwords > 1 ? o->words[1] : NULL;
	const command_t *c = NULL;
	int known = 0;
	for (size_t i = 0; i < NCOMMANDS && !c; i++) {
		if (strcmp(commands[i].word, word))
			continue;
		known = 1;
		if (!commands[i].sub || (sub && !strcmp(commands[i].sub, sub)))
			c = &commands[i];
	}
	if (!c) {
		const char *w[NCOMMANDS], *guess = NULL;
		if (!known || sub)
			guess = mq_cli_suggest(known ? sub : word, w, words_of(known ? word : NULL, w));
		word_list(list, sizeof list, known ? word : NULL);
		if (guess && !known)
			fprintf(stderr, "%s: unknown command '%s' (did you mean '%s'?)\n", prog, word, guess);
		else if (guess)
			fprintf(stderr, "%s: %s: unknown subcommand '%s' (did you mean '%s'?)\n", prog, word, sub, guess);
		else if (!known)
			fprintf(stderr, "%s: unknown command '%s' (use %s; try '%s --help')\n", prog, word, list, prog);
		else if (!sub)
			fprintf(stderr, "%s: %s: which one? (use %s; try '%s --help')\n", prog, word, list, prog);
		else
			fprintf(stderr, "%s: %s: unknown subcommand '%s' (use %s; try '%s --help')\n", prog, word, sub,
				list, prog);
		return NULL;
	}
	int used = c->sub ? 2 : 1, nargs = o->nwords - used;
	snprintf(name, sizeof name, "%s%s%s", c->word, c->sub ? " " : "", c->sub ? c->sub : "");
	const char *bad = NULL;
	for (int k = 0; k < K_COUNT && !bad; k++)
		if (o->seen & BIT(k) & ~c->opts)
			bad = opt_names[k];
	if (nargs != c->nargs || bad) {
		if (bad)
			fprintf(stderr, "%s: %s does not take %s", prog, name, bad);
		else if (nargs < c->nargs)
			fprintf(stderr, "%s: %s: missing argument", prog, name);
		else
			fprintf(stderr, "%s: %s: unexpected argument '%s'", prog, name, o->words[used + c->nargs]);
		fprintf(stderr, " (usage: mq-admin %s%s%s)\n", name, c->synopsis[0] ? " " : "", c->synopsis);
		return NULL;
	}
	*args = o->words + used;
	if ((c->kind && mq_name_check(c->kind, (*args)[0], 0, &err)) ||
	    (o->topic && mq_name_check("topic", o->topic, 0, &err))) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return NULL;
	}
	return c;
}

int main(int argc, char **argv)
{
	opts_t o = {.retention_ms = -1, .retention_bytes = -1};
	mq_err_t err;
	mq_cli_init(&o.cli);
	o.cli.kafka = 1;
	int rc = mq_cli_done(parse_args(argc, argv, &o, &err), prog, usage, &err);
	if (rc)
		return rc == 1 ? 0 : 2;
	char **args;
	const command_t *cmd = find_command(&o, &args);
	if (!cmd)
		return 2;
	admin_t a = {.o = &o};
	if (cmd->online) {
		if (mq_cli_check_broker(&o.cli, &err)) { /* offline commands do not mind it */
			fprintf(stderr, "%s: %s (try '%s --help')\n", prog, err.msg, prog);
			return 2;
		}
		mq_client_opts_t co = {.endpoint = o.cli.broker, .verbose = o.cli.verbose,
				       .curve_server = o.cli.curve_server,
				       .curve_secret = o.cli.curve_secret,
				       .timeout_ms = mq_cli_timeout(&o.cli),
				       .name = prog,
				       .interrupt = &stop};
		mq_cli_signals(&stop);
		if (mq_cli_client_open(&co, &a.c, &a.err))
			return failed(&a);
	}
	rc = cmd->run(&a, args);
	mq_client_close(a.c);
	if ((fflush(stdout) != 0 || ferror(stdout)) && rc != 2) {
		fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
		rc = 1;
	}
	return rc;
}
