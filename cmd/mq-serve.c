/*
 * mq-serve -- the mq broker: keeps topics as partitioned append-only
 * logs in a data directory and serves mq-pub, mq-sub and the other
 * clients over ZeroMQ.  Options are read and checked here; the loop is
 * lib/broker.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "cli.h"
#include "mq.h"

static const char *prog = "mq-serve";
static volatile sig_atomic_t stop_flag;

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-serve [-d DIR] [-l ENDPOINT]... [options]\n"
		"\n"
		"  -d, --data DIR            data directory (default $MQ_DATA, else $XDG_STATE_HOME/mq,\n"
		"                            else ~/.local/state/mq)\n"
		"  -l, --listen ENDPOINT     ZeroMQ endpoint, repeatable (default " MQ_DEFAULT_BROKER ");\n"
		"                            HOST:PORT and :PORT mean tcp://HOST:PORT, tcp://127.0.0.1:PORT\n"
		"      --partitions N        partitions of a topic created on first publish (default 1)\n"
		"      --fsync POLICY        always | never | DURATION (default always: group commit)\n"
		"      --segment-bytes SIZE  roll segments at SIZE (default 256MiB)\n"
		"      --retention-time D    delete segments older than D (default: keep)\n"
		"      --retention-bytes S   keep about S bytes per partition (default: keep)\n"
		"      --max-message-bytes S largest message accepted (default 1MiB)\n"
		"      --dedup-window D      remember message ids this long per topic (default 2m)\n"
		"      --lag-interval D      sample consumer lag this often for mq-lag (default 10s)\n"
		"      --dedup-ids N         remember at most N ids, oldest forgotten first\n"
		"                            (default 1000000)\n"
		"      --txn-timeout D       check back an undecided transaction D after its\n"
		"                            prepare (default 6s)\n"
		"      --txn-check-interval D  then again every D (default 60s)\n"
		"      --txn-max-checks N    roll it back after N checks without a verdict (default 15)\n"
		"  -v, --verbose             more messages on stderr\n"
		"  -q, --quiet               only problems and the endpoints on stderr (as without -v)\n"
		"  -h, --help                this help\n"
		"  -V, --version             the version\n");
}

enum {
	OPT_PARTITIONS = 256,
	OPT_FSYNC,
	OPT_SEGMENT_BYTES,
	OPT_RETENTION_TIME,
	OPT_RETENTION_BYTES,
	OPT_MAX_MESSAGE_BYTES,
	OPT_DEDUP_WINDOW,
	OPT_DEDUP_IDS,
	OPT_LAG_INTERVAL,
	OPT_TXN_TIMEOUT,
	OPT_TXN_INTERVAL,
	OPT_TXN_MAX_CHECKS,
	OPT_LATER,
};

static int fail_usage(const char *opt, const mq_err_t *err)
{
	fprintf(stderr, "%s: %s: %s (try 'mq-serve --help')\n", prog, opt, err->msg);
	return 2;
}

static int default_data_dir(char *buf, size_t n)
{
	const char *d = getenv("MQ_DATA");
	if (d && *d)
		return snprintf(buf, n, "%s", d) < (int)n ? 0 : -1;
	d = getenv("XDG_STATE_HOME");
	if (d && *d)
		return snprintf(buf, n, "%s/mq", d) < (int)n ? 0 : -1;
	d = getenv("HOME");
	if (!d || !*d)
		return -1;
	return snprintf(buf, n, "%s/.local/state/mq", d) < (int)n ? 0 : -1;
}

/* The broker's report: faults the operator must hear of (broker.h). */
static void report(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "%s: %s\n", prog, line);
}

/* Partitions are many files: take every descriptor the hard limit
 * allows (the store sizes its cache of open files from the soft one). */
static void raise_fd_limit(int verbose)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && verbose)
			fprintf(stderr, "%s: cannot raise the file descriptor limit to %llu: %s\n", prog,
				(unsigned long long)want, strerror(errno));
	}
	if (verbose && getrlimit(RLIMIT_NOFILE, &rl) == 0)
		fprintf(stderr, "%s: file descriptor limit %llu\n", prog, (unsigned long long)rl.rlim_cur);
}

/* mkdir -p of the parents of dir (the store makes dir itself). */
static void make_parents(const char *dir)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		mkdir(p, 0755);
		*s = '/';
	}
}

int main(int argc, char **argv)
{
	static char listen_ep[MQ_LISTEN_MAX][512]; /* -l as ZeroMQ takes it */
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"partitions", required_argument, NULL, OPT_PARTITIONS},
		{"fsync", required_argument, NULL, OPT_FSYNC},
		{"segment-bytes", required_argument, NULL, OPT_SEGMENT_BYTES},
		{"retention-time", required_argument, NULL, OPT_RETENTION_TIME},
		{"retention-bytes", required_argument, NULL, OPT_RETENTION_BYTES},
		{"max-message-bytes", required_argument, NULL, OPT_MAX_MESSAGE_BYTES},
		{"dedup-window", required_argument, NULL, OPT_DEDUP_WINDOW},
		{"dedup-ids", required_argument, NULL, OPT_DEDUP_IDS},
		{"lag-interval", required_argument, NULL, OPT_LAG_INTERVAL},
		{"txn-timeout", required_argument, NULL, OPT_TXN_TIMEOUT},
		{"txn-check-interval", required_argument, NULL, OPT_TXN_INTERVAL},
		{"txn-max-checks", required_argument, NULL, OPT_TXN_MAX_CHECKS},
		{"curve-secret", required_argument, NULL, OPT_LATER},
		{"curve-allow", required_argument, NULL, OPT_LATER},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	mq_broker_opts_t o;
	memset(&o, 0, sizeof(o));
	mq_log_opts_default(&o.log);
	o.log.fsync = MQ_FSYNC_ALWAYS;
	o.partitions = 1;
	char datadir[4096] = "";
	int quiet = 0, verbose = 0, c, idx;
	mq_err_t err;
	uint64_t v;
	int64_t ms;

	opterr = 0; /* our own messages, in the form of every mq program */
	while ((c = getopt_long(argc, argv, ":d:l:vqhV", opts, &idx)) != -1) {
		switch (c) {
		case 'd':
			if (strlen(optarg) >= sizeof(datadir)) {
				fprintf(stderr, "%s: -d: path is %zu bytes long; at most %d (try 'mq-serve --help')\n", prog, strlen(optarg),
					MQ_DATA_DIR_MAX);
				return 2;
			}
			snprintf(datadir, sizeof(datadir), "%s", optarg);
			break;
		case 'l':
			if (o.nlisten == MQ_LISTEN_MAX) {
				fprintf(stderr, "%s: at most %d -l endpoints (try 'mq-serve --help')\n", prog, MQ_LISTEN_MAX);
				return 2;
			}
			if (mq_endpoint_normalize(optarg, listen_ep[o.nlisten], sizeof listen_ep[0], &err))
				return fail_usage("-l", &err);
			o.listen[o.nlisten] = listen_ep[o.nlisten];
			o.nlisten++;
			break;
		case OPT_PARTITIONS:
			if (mq_parse_u64(optarg, &v, &err))
				return fail_usage("--partitions", &err);
			if (v < 1 || v > MQ_PARTITIONS_MAX) {
				fprintf(stderr, "%s: --partitions %s: use 1 to %d (try 'mq-serve --help')\n", prog, optarg, MQ_PARTITIONS_MAX);
				return 2;
			}
			o.partitions = (uint32_t)v;
			break;
		case OPT_FSYNC:
			if (!strcmp(optarg, "always")) {
				o.log.fsync = MQ_FSYNC_ALWAYS;
			} else if (!strcmp(optarg, "never")) {
				o.log.fsync = MQ_FSYNC_NEVER;
			} else if (mq_parse_duration_ms(optarg, &ms, &err) == 0 && ms > 0) {
				o.log.fsync = MQ_FSYNC_INTERVAL;
				o.log.fsync_interval_ms = ms;
			} else {
				fprintf(stderr, "%s: --fsync '%s': use always, never or a duration such as 1s (try 'mq-serve --help')\n", prog,
					optarg);
				return 2;
			}
			break;
		case OPT_SEGMENT_BYTES:
			if (mq_parse_size(optarg, &v, &err))
				return fail_usage("--segment-bytes", &err);
			if (v < 4096 || v > (1ull << 31)) {
				fprintf(stderr, "%s: --segment-bytes %s: use 4KiB to 2GiB (try 'mq-serve --help')\n", prog, optarg);
				return 2;
			}
			o.log.segment_bytes = v;
			break;
		case OPT_RETENTION_TIME:
			if (mq_parse_duration_ms(optarg, &ms, &err))
				return fail_usage("--retention-time", &err);
			o.log.retention_ms = ms;
			break;
		case OPT_RETENTION_BYTES:
			if (mq_parse_size(optarg, &v, &err))
				return fail_usage("--retention-bytes", &err);
			o.log.retention_bytes = (int64_t)v;
			break;
		case OPT_MAX_MESSAGE_BYTES:
			if (mq_parse_size(optarg, &v, &err))
				return fail_usage("--max-message-bytes", &err);
			if (v < 1 || v > MQ_BATCH_MAX_BYTES / 2) {
				fprintf(stderr, "%s: --max-message-bytes %s: use 1 to 32MiB (try 'mq-serve --help')\n", prog, optarg);
				return 2;
			}
			o.log.max_record_bytes = v;
			break;
		case OPT_DEDUP_WINDOW:
			if (mq_parse_duration_ms(optarg, &ms, &err) || ms < 1) {
				fprintf(stderr, "%s: --dedup-window '%s': use a duration of 1ms or more, such as 2m (try 'mq-serve --help')\n", prog,
					optarg);
				return 2;
			}
			o.dedup_window_ms = ms;
			break;
		case OPT_LAG_INTERVAL:
			if (mq_parse_duration_ms(optarg, &ms, &err) || ms < 10) {
				fprintf(stderr, "%s: --lag-interval '%s': use a duration of 10ms or more, such as 10s (try 'mq-serve --help')\n",
					prog, optarg);
				return 2;
			}
			o.lag_interval_ms = ms;
			break;
		case OPT_DEDUP_IDS:
			if (mq_parse_u64(optarg, &v, &err) || v < 1 || v > MQ_SEEN_MAX_COUNT) {
				fprintf(stderr, "%s: --dedup-ids '%s': use a count from 1 to %llu (try 'mq-serve --help')\n", prog, optarg,
					(unsigned long long)MQ_SEEN_MAX_COUNT);
				return 2;
			}
			o.dedup_max_ids = v;
			break;
		case OPT_TXN_TIMEOUT:
		case OPT_TXN_INTERVAL:
			if (mq_parse_duration_ms(optarg, &ms, &err) || ms < 10) {
				fprintf(stderr, "%s: --%s '%s': use a duration of 10ms or more, such as %s (try 'mq-serve --help')\n", prog,
					opts[idx].name, optarg, c == OPT_TXN_TIMEOUT ? "6s" : "1m");
				return 2;
			}
			if (c == OPT_TXN_TIMEOUT)
				o.txn_timeout_ms = ms;
			else
				o.txn_check_interval_ms = ms;
			break;
		case OPT_TXN_MAX_CHECKS:
			if (mq_parse_u64(optarg, &v, &err) || v < 1 || v > 1000000) {
				fprintf(stderr, "%s: --txn-max-checks '%s': use a count from 1 to 1000000 (try 'mq-serve --help')\n", prog, optarg);
				return 2;
			}
			o.txn_max_checks = (uint32_t)v;
			break;
		case OPT_LATER:
			fprintf(stderr, "%s: --%s is not available in this version of mq-serve (try 'mq-serve --help')\n", prog,
				opts[idx].name);
			return 2;
		case 'v':
			verbose = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mq-serve %s\n", MQ_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "%s: option '%s' needs an argument (try 'mq-serve --help')\n", prog,
				optopt > 0 && optopt < 128 && strchr("dl", optopt) ? (char[]){'-', (char)optopt, 0}
										      : argv[optind - 1]);
			return 2;
		default:
			if (optopt)
				fprintf(stderr, "%s: unknown option '-%c' (try 'mq-serve --help')\n", prog, optopt);
			else
				fprintf(stderr, "%s: unknown option '%s' (try 'mq-serve --help')\n", prog, argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s' (try 'mq-serve --help')\n", prog, argv[optind]);
		return 2;
	}
	if (!datadir[0] && default_data_dir(datadir, sizeof(datadir))) {
		fprintf(stderr, "%s: no data directory (or a path too long): set -d DIR, $MQ_DATA or $HOME\n", prog);
		return 2;
	}
	if (strlen(datadir) > MQ_DATA_DIR_MAX) { /* before anything is made */
		fprintf(stderr, "%s: data directory '%.60s...' is %zu bytes long; at most %d (choose a shorter -d)\n",
			prog, datadir, strlen(datadir), MQ_DATA_DIR_MAX);
		return 2;
	}
	if (!o.nlisten)
		o.listen[o.nlisten++] = MQ_DEFAULT_BROKER;
	o.data_dir = datadir;
	o.report = report;
	make_parents(datadir);
	raise_fd_limit(verbose);

	mq_cli_signals(&stop_flag);

	mq_broker_t *b;
	if (mq_broker_open(&o, &b, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	if (verbose)
		fprintf(stderr, "%s: data directory %s\n", prog, datadir);
	for (int i = 0; i < o.nlisten; i++)
		fprintf(stderr, "%s: listening on %s\n", prog, mq_broker_endpoint(b, i));
	(void)quiet;
	int rc = mq_broker_run(b, &stop_flag, &err);
	if (rc)
		fprintf(stderr, "%s: %s\n", prog, err.msg);
	mq_broker_close(b);
	if (verbose)
		fprintf(stderr, "%s: stopped\n", prog);
	return rc ? 1 : 0;
}
