/*
 * mq-admin -- administration of mq.  This file holds the offline
 * commands that work on a data directory without a broker:
 *
 *   mq-admin verify DIR                          check every segment and index
 *   mq-admin dump DIR/topics/TOPIC/PARTITION [--from OFFSET]
 *
 * verify exits 0 when everything checks out, 1 when it found a fault
 * (each named on stdout with its file and byte), 2 on usage errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq.h"

static const char *prog = "mq-admin";

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mq-admin verify DIR\n"
		"       mq-admin dump DIR/topics/TOPIC/PARTITION [--from OFFSET]\n"
		"       mq-admin -h | -V\n"
		"\n"
		"  verify DIR   check every segment and index under DIR (a data directory,\n"
		"               a topic or a partition directory), offline; exit 1 on any fault\n"
		"  dump PART    print the batches and records of one partition directory\n"
		"  --from N     dump: start at offset N\n"
		"  -h, --help   this help;  -V, --version  the version\n");
}

/* ---- verify ---- */

typedef struct vstate {
	int faults;
	int partitions;
} vstate_t;

static void print_fault(void *ctx, const char *msg)
{
	vstate_t *v = ctx;
	v->faults++;
	printf("FAULT %s\n", msg);
}

/* out = a/b; exits with a clear message if the path is too long. */
static void path_join(char *out, size_t n, const char *a, const char *b)
{
	if ((size_t)snprintf(out, n, "%s/%s", a, b) >= n) {
		fprintf(stderr, "%s: path '%s/%s' is too long\n", prog, a, b);
		exit(1);
	}
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int verify_partition(vstate_t *v, const char *dir)
{
	mq_err_t err;
	v->partitions++;
	int rc = mq_log_verify(dir, print_fault, v, &err);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		v->faults++;
	}
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of dir (no . and ..); NULL-terminated. */
static char **list_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	size_t n = 0, cap = 16;
	char **v = malloc(cap * sizeof(*v));
	struct dirent *de;
	while (v && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 1 == cap) {
			char **p = realloc(v, (cap *= 2) * sizeof(*v));
			if (!p)
				break;
			v = p;
		}
		v[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (!v)
		return NULL;
	v[n] = NULL;
	qsort(v, n, sizeof(*v), name_cmp);
	return v;
}

static void free_list(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void verify_topic(vstate_t *v, const char *tdir, const char *name)
{
	char meta[PATH_MAX];
	path_join(meta, sizeof(meta), tdir, "topic.meta");
	if (access(meta, R_OK) != 0) {
		char msg[PATH_MAX + 64];
		snprintf(msg, sizeof(msg), "%s: missing or unreadable: %s", meta, strerror(errno));
		print_fault(v, msg);
	}
	char **ents = list_dir(tdir);
	for (size_t i = 0; ents && ents[i]; i++) {
		char p[PATH_MAX];
		path_join(p, sizeof(p), tdir, ents[i]);
		if (!strcmp(ents[i], "topic.meta"))
			continue;
		char *end;
		errno = 0;
		unsigned long part = strtoul(ents[i], &end, 10);
		if (*end || !is_dir(p) || errno || part > 100000) {
			char msg[PATH_MAX + 64];
			snprintf(msg, sizeof(msg), "%s: unexpected entry in topic '%s'", p, name);
			print_fault(v, msg);
			continue;
		}
		verify_partition(v, p);
	}
	free_list(ents);
}

/* Warn when a broker holds the directory: its tail may be mid-write. */
static void warn_if_locked(const char *dir)
{
	char p[PATH_MAX];
	path_join(p, sizeof(p), dir, "mq.lock");
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

static int cmd_verify(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "%s: verify takes one directory (try 'mq-admin --help')\n", prog);
		return 2;
	}
	const char *dir = argv[1];
	char p[PATH_MAX];
	vstate_t v = {0};
	if (!is_dir(dir)) {
		fprintf(stderr, "%s: verify '%s': not a directory\n", prog, dir);
		return 2;
	}
	path_join(p, sizeof(p), dir, "topics");
	if (is_dir(p)) {
		warn_if_locked(dir);
		char **topics = list_dir(p);
		for (size_t i = 0; topics && topics[i]; i++) {
			char t[PATH_MAX];
			if (topics[i][0] == '.')
				continue; /* a deletion in progress */
			path_join(t, sizeof(t), p, topics[i]);
			if (mq_name_check("topic", topics[i], 1, NULL) || !is_dir(t)) {
				char msg[PATH_MAX + 64];
				snprintf(msg, sizeof(msg), "%s: not a topic directory", t);
				print_fault(&v, msg);
				continue;
			}
			verify_topic(&v, t, topics[i]);
		}
		free_list(topics);
	} else {
		path_join(p, sizeof(p), dir, "topic.meta");
		if (access(p, F_OK) == 0) {
			const char *slash = strrchr(dir, '/');
			verify_topic(&v, dir, slash ? slash + 1 : dir);
		} else {
			verify_partition(&v, dir);
		}
	}
	printf("%s: %d partition%s checked, %d fault%s\n", dir, v.partitions, v.partitions == 1 ? "" : "s",
	       v.faults, v.faults == 1 ? "" : "s");
	return v.faults ? 1 : 0;
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
		printf(" txn=%" PRIu64, h->txn_id);
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

static int cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	dstate_t d = {0};
	mq_err_t err;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (mq_parse_u64(optarg, &d.from, &err)) {
				fprintf(stderr, "%s: --from: %s\n", prog, err.msg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "%s: try 'mq-admin --help'\n", prog);
			return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "%s: dump takes one partition directory, e.g. DIR/topics/orders/0\n", prog);
		return 2;
	}
	const char *dir = argv[optind];
	if (!is_dir(dir)) {
		fprintf(stderr, "%s: dump '%s': not a directory\n", prog, dir);
		return 2;
	}
	int rc = mq_log_scan(dir, d.from, dump_batch, dump_fault, &d, &err);
	if (rc < 0 && rc != -MQ_EIO) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	if (fflush(stdout) != 0 || rc == -MQ_EIO) {
		fprintf(stderr, "%s: writing to stdout: %s\n", prog, strerror(errno));
		return 1;
	}
	fprintf(stderr, "%s: %" PRIu64 " batches, %" PRIu64 " records%s\n", prog, d.batches, d.records,
		d.faults ? ", with faults (see FAULT lines)" : "");
	return d.faults ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("mq-admin %s\n", MQ_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(cmd, "dump"))
		return cmd_dump(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s' (this build has: verify, dump; try 'mq-admin --help')\n", prog,
		cmd);
	return 2;
}
