/*
 * mq-lag -- consumer lag per group, topic and partition: a table for
 * people, one JSON document for scripts, the Prometheus text format for
 * node_exporter's textfile collector, and the monitoring-plugin exit
 * status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) for cron, Nagios and
 * Icinga.
 *
 * One GROUPS request per -g (one for every group without -g) gives each
 * partition's committed and end offsets, its owner and the history the
 * broker sampled every --lag-interval; lib/lag.c turns a row into lag,
 * rate, time to drain and a status.  A group's state is the worst of its
 * partitions' statuses (LAGGING and STALLED warn, STOPPED is critical),
 * of its total lag against --warn and --crit, and of the age of its
 * oldest unconsumed message against --warn-age and --crit-age; the exit
 * status is the worst state of all.
 *
 * With --watch the table has a TREND column: each partition's lag over
 * the broker's window as a sparkline (lib/lag.c), in block elements when
 * the locale's character set is UTF-8 and TERM is not "dumb", in ASCII
 * otherwise (NO_COLOR does not matter: the sparkline has no colour).
 *
 * A report is built in memory and written at once: with --watch on a
 * terminal it is drawn over the previous one (cursor home, each line
 * cleared to its end, the rest of the screen cleared), cut to the
 * terminal's size like watch(1); elsewhere each report follows the last.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_done.h"
#include "client.h"
#include "kafka.h"
#include "lag.h"
#include "mq.h"

static const char *prog = "mq-lag";

#define MAX_GROUPS 64

/* Monitoring-plugin states, which are the exit statuses. */
enum { ST_OK = 0, ST_WARNING = 1, ST_CRITICAL = 2, ST_UNKNOWN = 3 };
static const char *const state_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

typedef enum fmt { FMT_TABLE, FMT_JSON, FMT_PROM } fmt_t;

static volatile sig_atomic_t stop;

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-lag [-g GROUP]... [-t TOPIC] [-f table|json|prom] [--warn N] [--crit N] [--watch SECONDS] [options]\n"
		"              [--warn-age DURATION] [--crit-age DURATION] [--window DURATION]\n"
		"\n"
		"  -g, --group GROUP        report this group; repeatable (default: every group)\n"
		"  -t, --topic TOPIC        only the partitions of TOPIC\n"
		"  -f, --format FMT         table (default), json (one document) or prom\n"
		"                           (Prometheus text format, for a textfile collector;\n"
		"                           always with mq_lag_up and mq_lag_state)\n"
		"      --warn N             WARNING (exit 1) when a group's total lag is N or more\n"
		"      --crit N             CRITICAL (exit 2) when a group's total lag is N or more\n"
		"      --warn-age DURATION  WARNING (exit 1) when a group's oldest unconsumed\n"
		"                           message has waited DURATION (30s, 5m, 1h...) or more\n"
		"      --crit-age DURATION  CRITICAL (exit 2) when it has waited DURATION or more\n"
		"      --watch SECONDS      report again every SECONDS (or a duration such as 500ms),\n"
		"                           drawn in place on a terminal, until interrupted; the\n"
		"                           table then shows each partition's lag over the\n"
		"                           broker's window as a sparkline (TREND)\n"
		"                           (-f prom: only on a terminal; use cron or a loop)\n"
		"      --window DURATION    a Kafka cluster (-b kafka://...) keeps no lag history:\n"
		"                           sample it for DURATION first (default 10s; 0: one\n"
		"                           sample, statuses from the present alone)\n"
		MQ_CLI_HELP_BROKER
		"  -v, --verbose            the sampling interval and history on stderr\n"
		"  -q, --quiet              only errors on stderr\n"
		"  -h, --help               this help;  -V, --version  the version\n"
		"\n"
		"Status: OK, LAGGING (lag growing), STALLED (commits stopped while lag > 0),\n"
		"STOPPED (no member while lag > 0); see mq-lag(1) for the rules.\n"
		"Exit: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (broker unreachable, no such\n"
		"group or topic, usage error).\n");
}

enum { OPT_WARN = 256, OPT_CRIT, OPT_WATCH, OPT_WARN_AGE, OPT_CRIT_AGE, OPT_WINDOW };

#define KAFKA_WINDOW_MS 10000 /* --window's default */

static const struct option longopts[] = {
	{"group", required_argument, NULL, 'g'},
	{"topic", required_argument, NULL, 't'},
	{"format", required_argument, NULL, 'f'},
	{"warn", required_argument, NULL, OPT_WARN},
	{"crit", required_argument, NULL, OPT_CRIT},
	{"watch", required_argument, NULL, OPT_WATCH},
	{"warn-age", required_argument, NULL, OPT_WARN_AGE},
	{"crit-age", required_argument, NULL, OPT_CRIT_AGE},
	{"window", required_argument, NULL, OPT_WINDOW},
	MQ_CLI_LONGOPTS,
	{NULL, 0, NULL, 0},
};

typedef struct opts {
	mq_cli_t cli;
	const char *groups[MAX_GROUPS];
	uint32_t ngroups;
	const char *topic;
	fmt_t fmt;
	int has_warn, has_crit;
	uint64_t warn, crit;
	int64_t warn_age_ms, crit_age_ms; /* 0: none */
	const char *warn_age, *crit_age;  /* as given */
	int64_t watch_ms; /* 0: one report */
	int trend;        /* TREND column: 0 none, 1 ASCII, 2 UTF-8 */
	int64_t window_ms; /* a broker without history: sample this long first */
	mq_lag_memory_t *mem; /* the samples then (NULL: the broker keeps them) */
} opts_t;

static int own_option(void *ctx, int c, const char *arg, int idx, mq_err_t *err)
{
	opts_t *o = ctx;
	(void)idx;
	switch (c) {
	case 'g':
		if (mq_name_check("group", arg, 0, err))
			return -MQ_EINVAL;
		for (uint32_t i = 0; i < o->ngroups; i++)
			if (!strcmp(o->groups[i], arg))
				return 0;
		if (o->ngroups == MAX_GROUPS)
			return mq_err_set(err, MQ_EINVAL, "-g '%.200s': at most %d groups; leave -g out to see every group",
					  arg, MAX_GROUPS);
		o->groups[o->ngroups++] = arg;
		return 0;
	case 't':
		if (mq_name_check("topic", arg, 0, err))
			return -MQ_EINVAL;
		o->topic = arg;
		return 0;
	case 'f':
		if (!strcmp(arg, "table"))
			o->fmt = FMT_TABLE;
		else if (!strcmp(arg, "json"))
			o->fmt = FMT_JSON;
		else if (!strcmp(arg, "prom") || !strcmp(arg, "prometheus"))
			o->fmt = FMT_PROM;
		else
			return mq_err_set(err, MQ_EINVAL, "-f '%.200s': unknown format (use table, json or prom)", arg);
		return 0;
	case OPT_WARN:
	case OPT_CRIT: {
		uint64_t v;
		if (mq_parse_u64(arg, &v, err) || v == 0)
			return mq_err_set(err, MQ_EINVAL, "--%s '%.200s': expected a lag of 1 or more messages",
					  c == OPT_WARN ? "warn" : "crit", arg);
		*(c == OPT_WARN ? &o->warn : &o->crit) = v;
		*(c == OPT_WARN ? &o->has_warn : &o->has_crit) = 1;
		return 0;
	}
	case OPT_WARN_AGE:
	case OPT_CRIT_AGE: {
		int64_t ms;
		if (mq_parse_duration_ms(arg, &ms, err) || ms <= 0)
			return mq_err_set(err, MQ_EINVAL, "--%s '%.200s': expected a duration above 0 (such as 30s, 5m, 1h)",
					  c == OPT_WARN_AGE ? "warn-age" : "crit-age", arg);
		*(c == OPT_WARN_AGE ? &o->warn_age_ms : &o->crit_age_ms) = ms;
		*(c == OPT_WARN_AGE ? &o->warn_age : &o->crit_age) = arg;
		return 0;
	}
	case OPT_WINDOW:
		if (mq_parse_duration_ms(arg, &o->window_ms, err) || o->window_ms < 0)
			return mq_err_set(err, MQ_EINVAL, "--window '%.200s': expected a duration such as 10s, or 0", arg);
		return 0;
	case OPT_WATCH:
		if (mq_parse_duration_ms(arg, &o->watch_ms, err) || o->watch_ms < 100)
			return mq_err_set(err, MQ_EINVAL,
					  "--watch '%.200s': expected seconds (or a duration) of 100ms or more", arg);
		return 0;
	default:
		return mq_err_set(err, MQ_EINVAL, "option '-%c' is not handled", c);
	}
}

static int check_opts(void *ctx, mq_err_t *err)
{
	opts_t *o = ctx;
	if (mq_cli_check_broker(&o->cli, err))
		return -MQ_EINVAL;
	if (o->fmt == FMT_PROM && o->watch_ms && !isatty(1))
		return mq_err_set(err, MQ_EINVAL,
				  "-f prom --watch: reports one after another are not one valid exposition; "
				  "to keep a file current, run mq-lag -f prom from cron or a loop that rewrites the file");
	if (o->has_warn && o->has_crit && o->warn > o->crit)
		return mq_err_set(err, MQ_EINVAL, "--warn %" PRIu64 " is above --crit %" PRIu64 " (warn at the smaller lag)",
				  o->warn, o->crit);
	if (o->warn_age_ms && o->crit_age_ms && o->warn_age_ms > o->crit_age_ms)
		return mq_err_set(err, MQ_EINVAL, "--warn-age %.200s is above --crit-age %.200s (warn at the shorter wait)",
				  o->warn_age, o->crit_age);
	return 0;
}

/* The TREND column's glyphs: block elements where the terminal's
 * character set is UTF-8, ASCII elsewhere (and for TERM=dumb). */
static int trend_kind(void)
{
	const char *term = getenv("TERM");
	int utf8 = 0;
	if (setlocale(LC_CTYPE, "")) {
		const char *cs = nl_langinfo(CODESET);
		utf8 = cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
		setlocale(LC_CTYPE, "C"); /* nothing else depends on it */
	}
	return utf8 && !(term && !strcmp(term, "dumb")) ? 2 : 1;
}

/* ---- one report ---- */

/* A group as reported: its info, an evaluation per row, and totals. */
typedef struct grep {
	const mq_group_info_t *g;
	mq_lag_eval_t *ev; /* g->nrows */
	uint64_t lag;
	double rate;  /* sum of the known rates; < 0 none known */
	double eta_s; /* the slowest partition's; < 0 never/unknown */
	double age_s; /* the oldest unconsumed message's wait; < 0 unknown */
	mq_lag_status_t status; /* the worst of its rows */
	int state;
} grep_t;

typedef struct report {
	mq_group_info_t *batch[MAX_GROUPS]; /* one GROUPS reply each */
	uint32_t nbatch[MAX_GROUPS];
	uint32_t nb;
	grep_t *gr;
	uint32_t ng;
	int64_t now_ms, interval_ms;
	int state;
} report_t;

static void report_free(report_t *r)
{
	for (uint32_t i = 0; i < r->nb; i++)
		mq_group_info_free(r->batch[i], r->nbatch[i]);
	for (uint32_t i = 0; i < r->ng; i++)
		free(r->gr[i].ev);
	free(r->gr);
	memset(r, 0, sizeof *r);
}

static int state_of(mq_lag_status_t s)
{
	return s == MQ_LAG_STOPPED ? ST_CRITICAL : s == MQ_LAG_OK ? ST_OK : ST_WARNING;
}

static void evaluate(const opts_t *o, report_t *r, grep_t *x)
{
	const mq_group_info_t *g = x->g;
	int eta_known = 1;
	int age_known = 1;
	x->rate = -1;
	x->eta_s = 0;
	x->age_s = 0;
	x->status = MQ_LAG_OK;
	for (uint32_t i = 0; i < g->nrows; i++) {
		mq_lag_eval_t *e = &x->ev[i];
		mq_lag_evaluate(&g->rows[i], r->now_ms, e);
		x->lag += e->lag;
		if (e->rate >= 0)
			x->rate = (x->rate < 0 ? 0 : x->rate) + e->rate;
		if (e->lag > 0 && e->eta_s < 0)
			eta_known = 0;
		else if (e->eta_s > x->eta_s)
			x->eta_s = e->eta_s;
		if (e->status > x->status)
			x->status = e->status;
		if (e->age_s < 0)
			age_known = 0;
		else if (e->age_s > x->age_s)
			x->age_s = e->age_s;
	}
	if (!eta_known)
		x->eta_s = -1;
	if (!age_known && x->age_s == 0)
		x->age_s = -1; /* a known age above 0 is still the least it is */
	x->state = state_of(x->status);
	int64_t age_ms = x->age_s < 0 ? -1 : (int64_t)(x->age_s * 1000.0 + 0.5);
	if ((o->has_crit && x->lag >= o->crit) || (o->crit_age_ms && age_ms >= o->crit_age_ms))
		x->state = ST_CRITICAL;
	else if (((o->has_warn && x->lag >= o->warn) || (o->warn_age_ms && age_ms >= o->warn_age_ms)) &&
		 x->state < ST_WARNING)
		x->state = ST_WARNING;
	if (x->state > r->state)
		r->state = x->state;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const grep_t *)a)->g->name, ((const grep_t *)b)->g->name);
}

/* Ask the broker and evaluate: 0, or -1 with err (state UNKNOWN). */
static int fetch(const opts_t *o, mq_client_t *c, report_t *r, mq_err_t *err)
{
	uint32_t calls = o->ngroups ? o->ngroups : 1, total = 0;
	for (uint32_t i = 0; i < calls; i++) {
		const char *name = o->ngroups ? o->groups[i] : NULL;
		int rc = mq_client_groups(c, name, o->topic, &r->batch[i], &r->nbatch[i], err);
		if (rc)
			return -1;
		r->nb++;
		total += r->nbatch[i];
		if (r->batch[i] && r->nbatch[i])
			r->interval_ms = r->batch[i][0].interval_ms;
		if (o->mem && mq_client_group_ages(c, r->batch[i], r->nbatch[i], err))
			return -1;
		if (o->mem) { /* the history is ours: the samples before, then this one */
			mq_lag_recall(o->mem, r->batch[i], r->nbatch[i]);
			if (mq_lag_remember(o->mem, r->batch[i], r->nbatch[i], mq_now_ms()))
				return mq_err_set(err, MQ_ENOMEM, "out of memory for the lag history"), -1;
			r->interval_ms = o->watch_ms ? o->watch_ms : o->window_ms / MQ_LAG_HISTORY;
		}
		if (name && o->topic && (!r->nbatch[i] || !r->batch[i][0].nrows))
			return mq_err_set(err, MQ_ENOENT,
					  "group '%s' does not read topic '%s' (no member and no committed offset on it); "
					  "see the topics it reads with 'mq-lag -g %s'", name, o->topic, name), -1;
	}
	r->now_ms = mq_now_ms();
	r->gr = calloc(total ? total : 1, sizeof *r->gr);
	if (!r->gr)
		return mq_err_set(err, MQ_ENOMEM, "out of memory"), -1;
	for (uint32_t i = 0; i < r->nb; i++)
		for (uint32_t k = 0; k < r->nbatch[i]; k++) {
			const mq_group_info_t *g = &r->batch[i][k];
			if (!g->nrows && o->topic)
				continue; /* a group that does not read -t */
			grep_t *x = &r->gr[r->ng++];
			x->g = g;
			x->ev = calloc(g->nrows ? g->nrows : 1, sizeof *x->ev);
			if (!x->ev)
				return mq_err_set(err, MQ_ENOMEM, "out of memory"), -1;
			evaluate(o, r, x);
		}
	qsort(r->gr, r->ng, sizeof *r->gr, by_name);
	return 0;
}

/* ---- table ---- */

enum { C_GROUP, C_TOPIC, C_PART, C_COMMITTED, C_END, C_LAG, C_AGE, C_TREND, C_RATE, C_ETA, C_STATUS, C_MEMBER,
       NCOLS };
static const char *const heads[NCOLS] = {"GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG",
					 "AGE", "TREND", "RATE", "ETA", "STATUS", "MEMBER"};
static const int right[NCOLS] = {0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0};

static void fmt_rate(char *b, size_t n, double rate)
{
	if (rate < 0)
		snprintf(b, n, "-");
	else
		snprintf(b, n, rate < 1000 ? "%.1f" : "%.0f", rate);
}

/* 45s, 12m05s, 3h20m, 2d04h, >99d. */
/* The time to drain, rounded up; "never" when nothing is consumed or the
 * status says the lag does not shrink, "-" for no estimate (the lag
 * holds steady, or the rate is unknown). */
static void fmt_eta(char *b, size_t n, double eta, double rate, mq_lag_status_t st)
{
	if (eta < 0)
		snprintf(b, n, "%s", rate == 0 || st != MQ_LAG_OK ? "never" : "-");
	else
		mq_lag_fmt_secs(b, n, ceil(eta));
}

typedef char cell_t[MQ_MEMBER_ID_MAX + 24];

/* The columns from LAG on. */
static void fill_tail(cell_t *c, uint64_t lag, double age, double rate, double eta, mq_lag_status_t st,
		      const char *member)
{
	snprintf(c[C_LAG], sizeof c[C_LAG], "%" PRIu64, lag);
	mq_lag_fmt_secs(c[C_AGE], sizeof c[C_AGE], age); /* "-": unknown */
	fmt_rate(c[C_RATE], sizeof c[C_RATE], rate);
	fmt_eta(c[C_ETA], sizeof c[C_ETA], eta, rate, st);
	snprintf(c[C_STATUS], sizeof c[C_STATUS], "%s", mq_lag_status_name(st));
	snprintf(c[C_MEMBER], sizeof c[C_MEMBER], "%s", member);
}

static void fill_row(const opts_t *o, cell_t *c, const grep_t *x, uint32_t j)
{
	const mq_group_row_t *w = &x->g->rows[j];
	const mq_lag_eval_t *e = &x->ev[j];
	snprintf(c[C_GROUP], sizeof c[C_GROUP], "%s", x->g->name);
	snprintf(c[C_TOPIC], sizeof c[C_TOPIC], "%s", w->topic);
	snprintf(c[C_PART], sizeof c[C_PART], "%" PRIu32, w->partition);
	if (w->committed < 0)
		snprintf(c[C_COMMITTED], sizeof c[C_COMMITTED], "-");
	else
		snprintf(c[C_COMMITTED], sizeof c[C_COMMITTED], "%" PRId64, w->committed);
	snprintf(c[C_END], sizeof c[C_END], "%" PRIu64, w->end);
	fill_tail(c, e->lag, e->age_s, e->rate, e->eta_s, e->status, w->owner[0] ? w->owner : "-");
	if (o->trend) {
		uint64_t v[MQ_LAG_POINTS];
		mq_lag_spark(v, mq_lag_series(w, v), o->trend == 2, c[C_TREND], sizeof c[C_TREND]);
	}
}

/* The group's lag at each point of the window: its partitions' series
 * summed, aligned at the present (a partition added later has fewer). */
static void fill_total(const opts_t *o, cell_t *c, const grep_t *x)
{
	char members[32];
	if (x->g->no_members)
		snprintf(members, sizeof members, "(members unknown)");
	else
		snprintf(members, sizeof members, "(%" PRIu32 " member%s)", x->g->nmembers, x->g->nmembers == 1 ? "" : "s");
	snprintf(c[C_GROUP], sizeof c[C_GROUP], "%s", x->g->name);
	snprintf(c[C_TOPIC], sizeof c[C_TOPIC], "(total)");
	for (int k = C_PART; k <= C_END; k++)
		snprintf(c[k], sizeof c[k], "-");
	fill_tail(c, x->lag, x->age_s, x->rate, x->eta_s, x->status, members);
	if (o->trend) {
		uint64_t sum[MQ_LAG_POINTS] = {0}, v[MQ_LAG_POINTS];
		uint32_t most = 0;
		for (uint32_t j = 0; j < x->g->nrows; j++) {
			uint32_t n = mq_lag_series(&x->g->rows[j], v);
			for (uint32_t i = 0; i < n; i++)
				sum[MQ_LAG_POINTS - n + i] += v[i];
			most = n > most ? n : most;
		}
		mq_lag_spark(sum + MQ_LAG_POINTS - most, most, o->trend == 2, c[C_TREND], sizeof c[C_TREND]);
	}
}

/* Columns a string takes on a terminal: one a character (UTF-8). */
static int width(const char *s)
{
	int w = 0;
	for (; *s; s++)
		w += ((uint8_t)*s & 0xc0) != 0x80;
	return w;
}

/* Bytes of the longest prefix of p[0, n) that takes at most cols columns. */
static size_t fit(const char *p, size_t n, int cols)
{
	size_t i = 0;
	for (int w = 0; i < n; i++)
		if (((uint8_t)p[i] & 0xc0) != 0x80 && w++ == cols)
			break;
	return i;
}

static void put_cell(FILE *fp, const char *s, int w, int right_aligned)
{
	int pad = w - width(s);
	pad = pad > 0 ? pad : 0;
	if (right_aligned)
		fprintf(fp, "%*s", pad, "");
	fputs(s, fp);
	fprintf(fp, "%*s  ", right_aligned ? 0 : pad, "");
}

static void put_table(FILE *fp, const opts_t *o, const report_t *r)
{
	uint32_t rows = 1, n = 1;
	for (uint32_t i = 0; i < r->ng; i++)
		rows += r->gr[i].g->nrows + 1;
	cell_t(*t)[NCOLS] = calloc(rows, sizeof *t);
	if (!t) {
		fprintf(fp, "%s: out of memory for a table of %u rows\n", prog, rows);
		return;
	}
	for (int k = 0; k < NCOLS; k++)
		snprintf(t[0][k], sizeof t[0][k], "%s", heads[k]);
	for (uint32_t i = 0; i < r->ng; i++) {
		for (uint32_t j = 0; j < r->gr[i].g->nrows; j++)
			fill_row(o, t[n++], &r->gr[i], j);
		fill_total(o, t[n++], &r->gr[i]);
	}
	int w[NCOLS] = {0};
	for (uint32_t i = 0; i < n; i++)
		for (int k = 0; k < NCOLS; k++) {
			int l = width(t[i][k]);
			w[k] = l > w[k] ? l : w[k];
		}
	for (uint32_t i = 0; i < n; i++) {
		for (int k = 0; k < NCOLS - 1; k++)
			if (k != C_TREND || o->trend)
				put_cell(fp, t[i][k], w[k], right[k]);
		fprintf(fp, "%s\n", t[i][NCOLS - 1]);
	}
	free(t);
}

/* ---- JSON ---- */

static void json_str(FILE *fp, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s);
	fputc('"', fp);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		size_t k;
		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(fp, "\\u%04x", c);
		else if (c < 0x80)
			fputc(c, fp);
		else if ((k = mq_utf8_seq(p + i, n - i)) > 0) {
			fwrite(p + i, 1, k, fp);
			i += k - 1;
		} else
			fputs("\\ufffd", fp);
	}
	fputc('"', fp);
}

static void json_num(FILE *fp, const char *name, double v)
{
	fprintf(fp, ",\"%s\":", name);
	if (v < 0 || !isfinite(v))
		fputs("null", fp);
	else
		fprintf(fp, "%.3f", v);
}

static void json_threshold(FILE *fp, const char *name, int has, uint64_t v)
{
	if (has)
		fprintf(fp, ",\"%s\":%" PRIu64, name, v);
	else
		fprintf(fp, ",\"%s\":null", name);
}

static void json_row(FILE *fp, const mq_group_row_t *w, const mq_lag_eval_t *e)
{
	fputs("{\"topic\":", fp);
	json_str(fp, w->topic);
	fprintf(fp, ",\"partition\":%" PRIu32 ",\"committed\":", w->partition);
	if (w->committed < 0)
		fputs("null", fp);
	else
		fprintf(fp, "%" PRId64, w->committed);
	fprintf(fp, ",\"start\":%" PRIu64 ",\"end\":%" PRIu64 ",\"lag\":%" PRIu64, w->start, w->end, e->lag);
	json_num(fp, "lag_seconds", e->age_s);
	fputs(",\"since_ms\":", fp);
	if (e->lag && w->since_ms >= 0)
		fprintf(fp, "%" PRId64, w->since_ms);
	else
		fputs("null", fp);
	json_num(fp, "rate", e->rate);
	json_num(fp, "eta_s", e->eta_s);
	fprintf(fp, ",\"status\":\"%s\",\"owner\":", mq_lag_status_name(e->status));
	if (w->owner[0])
		json_str(fp, w->owner);
	else
		fputs("null", fp);
	fprintf(fp, ",\"samples\":%" PRIu32 "}", w->nhist < MQ_LAG_HISTORY ? w->nhist : MQ_LAG_HISTORY);
}

static void json_group(FILE *fp, const grep_t *x)
{
	const mq_group_info_t *g = x->g;
	fputs("{\"group\":", fp);
	json_str(fp, g->name);
	fprintf(fp, ",\"generation\":%" PRIu64 ",\"state\":\"%s\",\"status\":\"%s\",\"lag\":%" PRIu64, g->generation,
		state_names[x->state], mq_lag_status_name(x->status), x->lag);
	json_num(fp, "lag_seconds", x->age_s);
	json_num(fp, "rate", x->rate);
	json_num(fp, "eta_s", x->eta_s);
	fputs(",\"members\":[", fp);
	for (uint32_t k = 0; k < g->nmembers; k++) {
		const mq_group_member_info_t *m = &g->members[k];
		fputs(k ? ",{\"id\":" : "{\"id\":", fp);
		json_str(fp, m->id);
		fputs(",\"client\":", fp);
		json_str(fp, m->client);
		fprintf(fp, ",\"idle_ms\":%" PRId64 ",\"partitions\":%" PRIu32 "}", m->idle_ms, m->nowned);
	}
	fputs("],\"partitions\":[", fp);
	for (uint32_t k = 0; k < g->nrows; k++) {
		if (k)
			fputc(',', fp);
		json_row(fp, &g->rows[k], &x->ev[k]);
	}
	fputs("]}", fp);
}

static void put_json(FILE *fp, const opts_t *o, const char *broker, const report_t *r)
{
	fputs("{\"broker\":", fp);
	json_str(fp, broker);
	fprintf(fp, ",\"time_ms\":%" PRId64 ",\"interval_ms\":%" PRId64 ",\"history\":%d", r->now_ms, r->interval_ms,
		MQ_LAG_HISTORY);
	json_threshold(fp, "warn", o->has_warn, o->warn);
	json_threshold(fp, "crit", o->has_crit, o->crit);
	json_num(fp, "warn_age", o->warn_age_ms ? (double)o->warn_age_ms / 1000.0 : -1);
	json_num(fp, "crit_age", o->crit_age_ms ? (double)o->crit_age_ms / 1000.0 : -1);
	fprintf(fp, ",\"state\":\"%s\",\"exit\":%d,\"groups\":[", state_names[r->state], r->state);
	for (uint32_t i = 0; i < r->ng; i++) {
		if (i)
			fputc(',', fp);
		json_group(fp, &r->gr[i]);
	}
	fputs("]}\n", fp);
}

/* ---- Prometheus text format ---- */

enum { M_LAG, M_AGE, M_COMMITTED, M_END, M_STATUS, M_RATE, M_N };

static const struct metric {
	const char *name, *help;
} metrics[M_N] = {
	{"mq_consumer_lag", "Messages of the partition the group has not committed yet (end - committed)."},
	{"mq_consumer_lag_seconds", "Seconds the oldest message the group has not consumed has waited (its timestamp, "
				    "or when it became due, to now); 0 when lag is 0, absent while unknown."},
	{"mq_consumer_committed_offset", "The group's committed offset (the next to consume); absent before the first commit."},
	{"mq_consumer_end_offset", "Log end offset of the partition (the offset of the next message)."},
	{"mq_consumer_status", "Lag status over the broker's window: 0 OK, 1 LAGGING, 2 STALLED, 3 STOPPED."},
	{"mq_consumer_rate", "Messages a second the group committed over the window; absent while unknown."},
};

static void prom_label(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(fp, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", fp);
		else
			fputc(*s, fp);
	}
	fputc('"', fp);
}

/* Whether a report was made, and the state mq-lag exits with: written
 * even when the broker did not answer, so a textfile collector sees the
 * failure instead of losing the metrics or keeping stale ones. */
static void put_prom_up(FILE *fp, int state, int up)
{
	fputs("# HELP mq_lag_up Whether mq-lag made the report: 1 yes, 0 no (broker unreachable, "
	      "no such group or topic).\n"
	      "# TYPE mq_lag_up gauge\n", fp);
	fprintf(fp, "mq_lag_up %d\n", up);
	fputs("# HELP mq_lag_state The state mq-lag exits with: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n"
	      "# TYPE mq_lag_state gauge\n", fp);
	fprintf(fp, "mq_lag_state %d\n", state);
}

static void put_prom(FILE *fp, const report_t *r)
{
	put_prom_up(fp, r->state, 1);
	for (int m = 0; m < M_N; m++) {
		fprintf(fp, "# HELP %s %s\n# TYPE %s gauge\n", metrics[m].name, metrics[m].help, metrics[m].name);
		for (uint32_t i = 0; i < r->ng; i++) {
			const grep_t *x = &r->gr[i];
			for (uint32_t k = 0; k < x->g->nrows; k++) {
				const mq_group_row_t *w = &x->g->rows[k];
				const mq_lag_eval_t *e = &x->ev[k];
				if ((m == M_COMMITTED && w->committed < 0) || (m == M_RATE && e->rate < 0) ||
				    (m == M_AGE && e->age_s < 0))
					continue;
				fprintf(fp, "%s{group=", metrics[m].name);
				prom_label(fp, x->g->name);
				fputs(",topic=", fp);
				prom_label(fp, w->topic);
				fprintf(fp, ",partition=\"%" PRIu32 "\"} ", w->partition);
				switch (m) {
				case M_LAG: fprintf(fp, "%" PRIu64 "\n", e->lag); break;
				case M_AGE: fprintf(fp, "%.3f\n", e->age_s); break;
				case M_COMMITTED: fprintf(fp, "%" PRId64 "\n", w->committed); break;
				case M_END: fprintf(fp, "%" PRIu64 "\n", w->end); break;
				case M_STATUS: fprintf(fp, "%d\n", (int)e->status); break;
				default: fprintf(fp, "%.3f\n", e->rate); break;
				}
			}
		}
	}
}

/* ---- running ---- */

static void put_verbose(const report_t *r, const char *broker)
{
	uint32_t parts = 0, fewest = MQ_LAG_HISTORY;
	for (uint32_t i = 0; i < r->ng; i++)
		for (uint32_t k = 0; k < r->gr[i].g->nrows; k++) {
			uint32_t h = r->gr[i].g->rows[k].nhist;
			parts++;
			fewest = h < fewest ? h : fewest;
		}
	fprintf(stderr, "%s: %s: %u group%s, %u partition%s; samples every %" PRId64 "ms, %d kept (window %.1fs)",
		prog, broker, r->ng, r->ng == 1 ? "" : "s", parts, parts == 1 ? "" : "s", r->interval_ms,
		MQ_LAG_HISTORY, (double)r->interval_ms * MQ_LAG_HISTORY / 1000.0);
	if (parts && fewest < MQ_LAG_HISTORY)
		fprintf(stderr, "; only %u in the shortest history, so statuses other than STOPPED wait for a full window",
			fewest);
	fputc('\n', stderr);
}

/* One report into buf (size *len), for a terminal with --watch (tty)
 * or not; its state, or ST_UNKNOWN with the
 * message in err. */
static int one_report(const opts_t *o, mq_client_t *c, int tty, char **buf, size_t *len, mq_err_t *err)
{
	report_t r = {0};
	FILE *fp = open_memstream(buf, len);
	if (!fp) {
		mq_err_sys(err, "open_memstream for the report");
		return ST_UNKNOWN;
	}
	const char *broker = mq_client_endpoint(c);
	int state = ST_UNKNOWN;
	if (fetch(o, c, &r, err) == 0) {
		state = r.state;
		if (o->fmt == FMT_JSON)
			put_json(fp, o, broker, &r);
		else if (o->fmt == FMT_PROM)
			put_prom(fp, &r);
		else if (r.ng)
			put_table(fp, o, &r);
		else if (!o->cli.quiet) /* on the screen with --watch, else a note */
			fprintf(tty ? fp : stderr, "%s%s: no consumer group%s%s%s\n", tty ? "" : "mq-lag: ", broker,
				o->topic ? " reads topic '" : "", o->topic ? o->topic : "", o->topic ? "'" : "");
		if (o->cli.verbose && !tty)
			put_verbose(&r, broker);
	} else if (o->fmt == FMT_PROM) {
		put_prom_up(fp, ST_UNKNOWN, 0);
	}
	report_free(&r);
	if (fclose(fp) != 0 && state != ST_UNKNOWN) {
		mq_err_sys(err, "writing the report to memory");
		state = ST_UNKNOWN;
	}
	return state;
}

static int write_out(const char *p, size_t n)
{
	if (n && mq_write_all(1, p, n) < 0) {
		if (errno != EPIPE)
			fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
		return -1;
	}
	return 0;
}

/* Draw a report over the last one, cut to the terminal's size. */
static int draw(const opts_t *o, int argc, char **argv, const char *text, int first)
{
	struct winsize ws = {0};
	int cols = 80, lines = 24;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
		cols = ws.ws_col;
		lines = ws.ws_row;
	}
	char *s = NULL;
	size_t n = 0;
	FILE *fp = open_memstream(&s, &n);
	if (!fp)
		return -1;
	fputs(first ? "\033[H\033[2J" : "\033[H", fp);
	/* The first line, as watch(1) draws it: interval and command, time. */
	char head[512], when[64];
	int h = snprintf(head, sizeof head, "Every %gs:", (double)o->watch_ms / 1000.0);
	for (int i = 0; i < argc && h < (int)sizeof head; i++)
		h += snprintf(head + h, sizeof head - (size_t)h, " %s", argv[i]);
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
	int pad = cols - (int)strlen(when) - (int)strlen(head);
	fprintf(fp, "%.*s%*s%s\033[K\n\033[K\n", cols, head, pad > 1 ? pad : 1, "", pad > 1 ? when : "");
	int row = 2;
	for (const char *p = text; *p && row < lines - 1; row++) {
		size_t l = strcspn(p, "\n");
		fprintf(fp, "%.*s\033[K\n", (int)fit(p, l, cols), p);
		p += l + (p[l] == '\n');
	}
	fputs("\033[J", fp);
	int rc = fclose(fp) == 0 ? write_out(s, n) : -1;
	free(s);
	return rc;
}

/* Sleep ms, or less when interrupted. */
static void nap(int64_t ms)
{
	mq_cli_sleep_until(mq_mono_ms() + ms, &stop);
}

/* A broker that keeps no lag history (a Kafka cluster): MQ_LAG_HISTORY
 * samples over --window before the first report, so that its statuses
 * come from a full window as mq-serve's do.  0, or -1 with err. */
static int sample(const opts_t *o, mq_client_t *c, mq_err_t *err)
{
	int64_t started = mq_mono_ms();
	for (int i = 0; i < MQ_LAG_HISTORY && !stop; i++) {
		uint32_t calls = o->ngroups ? o->ngroups : 1;
		for (uint32_t k = 0; k < calls; k++) {
			mq_group_info_t *g = NULL;
			uint32_t n = 0;
			if (mq_client_groups(c, o->ngroups ? o->groups[k] : NULL, o->topic, &g, &n, err))
				return -1;
			int rc = mq_lag_remember(o->mem, g, n, mq_now_ms());
			mq_group_info_free(g, n);
			if (rc)
				return mq_err_set(err, MQ_ENOMEM, "out of memory for the lag history"), -1;
		}
		/* one every window/30; the report's own present comes after */
		nap(started + o->window_ms * (i + 1) / MQ_LAG_HISTORY - mq_mono_ms());
	}
	return 0;
}

static int run(const opts_t *o, mq_client_t *c, int argc, char **argv)
{
	int tty = o->watch_ms && isatty(1), state = ST_UNKNOWN;
	mq_err_t serr = {0};
	if (o->mem && o->window_ms && sample(o, c, &serr)) {
		if (!stop)
			fprintf(stderr, "%s: %s\n", prog, serr.msg);
		return ST_UNKNOWN;
	}
	for (int round = 0; !stop; round++) {
		int64_t started = mq_mono_ms();
		char *buf = NULL;
		size_t len = 0;
		mq_err_t err = {0};
		state = one_report(o, c, tty, &buf, &len, &err);
		int out = 0;
		if (tty) {
			char *text = buf;
			char msg[sizeof err.msg + 64];
			if (state == ST_UNKNOWN) {
				snprintf(msg, sizeof msg, "%s: %s\n", prog, err.msg);
				text = msg;
			}
			out = draw(o, argc, argv, text ? text : "", round == 0);
		} else {
			if (state == ST_UNKNOWN && !stop)
				fprintf(stderr, "%s: %s\n", prog, err.msg);
			if (round && o->fmt == FMT_TABLE && len)
				out = write_out("\n", 1);
			if (!out)
				out = write_out(buf, len);
		}
		free(buf);
		if (out || !o->watch_ms)
			break;
		nap(o->watch_ms - (mq_mono_ms() - started));
	}
	return state;
}

int main(int argc, char **argv)
{
	opts_t o = {.fmt = FMT_TABLE, .window_ms = KAFKA_WINDOW_MS};
	mq_err_t err;
	mq_cli_init(&o.cli);
	o.cli.kafka = 1;
	int rc = mq_cli_parse(argc, argv, ":g:t:f:" MQ_CLI_SHORTOPTS, longopts, &o.cli, own_option, check_opts, &o,
			      &err);
	rc = mq_cli_done(rc, prog, usage, &err);
	if (rc)
		return rc == 1 ? 0 : ST_UNKNOWN; /* a usage error is UNKNOWN: 2 would read as CRITICAL */
	if (o.cli.quiet)
		o.cli.verbose = 0;
	if (o.watch_ms && o.fmt == FMT_TABLE)
		o.trend = trend_kind();
	mq_cli_signals(&stop);

	mq_client_t *c = NULL;
	mq_client_opts_t co = {.endpoint = o.cli.broker, .verbose = o.cli.verbose, .curve_server = o.cli.curve_server, .curve_secret = o.cli.curve_secret, .timeout_ms = mq_cli_timeout(&o.cli), .name = prog,
			       .interrupt = &stop};
	if (mq_cli_client_open(&co, &c, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		if (o.fmt == FMT_PROM) {
			char *buf = NULL;
			size_t len = 0;
			FILE *fp = open_memstream(&buf, &len);
			if (fp) {
				put_prom_up(fp, ST_UNKNOWN, 0);
				if (fclose(fp) == 0)
					write_out(buf, len);
			}
			free(buf);
		}
		return ST_UNKNOWN;
	}
	/* a Kafka cluster keeps no lag history: mq-lag keeps it */
	if (mq_kafka_endpoint(mq_client_endpoint(c)) && !(o.mem = mq_lag_memory_new())) {
		fprintf(stderr, "%s: out of memory\n", prog);
		mq_client_close(c);
		return ST_UNKNOWN;
	}
	int state = run(&o, c, argc, argv);
	mq_lag_memory_free(o.mem);
	mq_client_close(c);
	return state;
}
