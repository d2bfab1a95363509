/*
 * bench_log.c -- how fast the partition log appends and reads.
 *
 *   bench_log [-n RECORDS] [-s SIZE] [-b BATCH] [-S SYNC_RECORDS] [-d DIR] [-k]
 *
 * Appends RECORDS records of SIZE bytes in batches of BATCH (building
 * each batch, as a producer would), with fsync never; then SYNC_RECORDS
 * more with one fdatasync per batch (fsync always); then reads every
 * record back in order, decoding each one.  For scale it times `cat`
 * copying a file of the same records (as lines) through a pipe into a
 * file, in the same run.  Prints records/s and MB/s of payload.
 * -k keeps the data directory (for mq-admin verify).  Each timed phase
 * starts after sync(2), so that none pays for the writeback of another.
 */
#include <errno.h>
#include <getopt.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "log.h"

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void report(const char *what, uint64_t records, size_t size, uint64_t ns)
{
	double s = secs(ns);
	printf("%-34s %10" PRIu64 " records %8.3f s %12.0f records/s %8.1f MB/s\n", what, records, s,
	       (double)records / s, (double)records * (double)size / s / 1e6);
}

static void die(const char *what, const mq_err_t *err)
{
	fprintf(stderr, "bench_log: %s: %s\n", what, err->msg);
	exit(1);
}

static void fill_value(char *v, size_t size, uint64_t n)
{
	memset(v, 'x', size);
	char tmp[32];
	int k = snprintf(tmp, sizeof(tmp), "%020" PRIu64, n);
	memcpy(v, tmp, (size_t)k < size ? (size_t)k : size);
}

static uint64_t append_phase(mq_log_t *log, uint64_t first, uint64_t records, size_t size, uint32_t batch, int do_sync)
{
	mq_buf_t buf = {0};
	mq_err_t err;
	char *v = malloc(size);
	fill_value(v, size, 0);
	sync(); /* every timed phase starts with no dirty pages of earlier ones */
	int64_t ts = mq_now_ms();
	uint64_t t0 = mq_mono_ns();
	for (uint64_t n = first; n < first + records;) {
		mq_batch_builder_t b;
		buf.len = 0;
		mq_batch_begin(&b, &buf);
		for (uint32_t i = 0; i < batch && n < first + records; i++, n++) {
			memcpy(v, &n, sizeof(n) < size ? sizeof(n) : size); /* every record differs */
			if (mq_batch_add(&b, ts, NULL, 0, v, size, NULL, 0, NULL, 0))
				exit(1);
		}
		mq_batch_finish(&b);
		uint64_t base;
		if (mq_log_append(log, buf.p, buf.len, &base, &err))
			die("append", &err);
		if (do_sync && mq_log_commit(log, mq_mono_ms(), &err))
			die("sync", &err);
	}
	uint64_t ns = mq_mono_ns() - t0;
	mq_buf_free(&buf);
	free(v);
	return ns;
}

int main(int argc, char **argv)
{
	uint64_t records = 10000000, sync_records = 100000;
	size_t size = 100;
	uint32_t batch = 1000;
	int keep = 0, own_dir = 0, c;
	const char *dir = NULL;
	mq_err_t err;
	while ((c = getopt(argc, argv, "n:s:b:S:d:kh")) != -1) {
		switch (c) {
		case 'n': records = strtoull(optarg, NULL, 10); break;
		case 's': size = strtoull(optarg, NULL, 10); break;
		case 'b': batch = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'S': sync_records = strtoull(optarg, NULL, 10); break;
		case 'd': dir = optarg; break;
		case 'k': keep = 1; break;
		default:
			fprintf(stderr, "usage: bench_log [-n RECORDS] [-s SIZE] [-b BATCH] [-S SYNC_RECORDS] [-d DIR] [-k]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!records || !size || !batch) {
		fprintf(stderr, "bench_log: -n, -s and -b must be positive\n");
		return 2;
	}
	char tmpl[4096];
	if (!dir) {
		const char *t = getenv("TMPDIR");
		snprintf(tmpl, sizeof(tmpl), "%s/mq-bench-log-XXXXXX", t ? t : "/tmp");
		if (!mkdtemp(tmpl)) {
			perror("bench_log: mkdtemp");
			return 1;
		}
		dir = tmpl;
		own_dir = 1;
	} else if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "bench_log: cannot create '%s': %s\n", dir, strerror(errno));
		return 1;
	}
	char part[4200], catsrc[4200], catdst[4200];
	snprintf(part, sizeof(part), "%s/p0", dir);
	snprintf(catsrc, sizeof(catsrc), "%s/lines.txt", dir);
	snprintf(catdst, sizeof(catdst), "%s/lines.copy", dir);

	printf("bench_log: %" PRIu64 " records of %zu bytes, batches of %u, in %s\n", records, size, batch, dir);
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	mq_log_t *log;
	if (mq_log_open(part, &o, 1, &log, &err))
		die("open", &err);

	uint64_t ns = append_phase(log, 0, records, size, batch, 0);
	report("append (fsync never)", records, size, ns);
	double never_rate = (double)records / secs(ns);

	o.fsync = MQ_FSYNC_ALWAYS;
	mq_log_set_opts(log, &o);
	if (sync_records) {
		ns = append_phase(log, records, sync_records, size, batch, 1);
		report("append (fsync always, 1 per batch)", sync_records, size, ns);
	}
	mq_log_close(log);

	/* Read back from a fresh open (reopen time is reported too). */
	uint64_t t0 = mq_mono_ns();
	if (mq_log_open(part, &o, 0, &log, &err))
		die("reopen", &err);
	uint64_t reopen_ns = mq_mono_ns() - t0;
	mq_buf_t out = {0};
	uint64_t next = 0, seen = 0, bytes = 0;
	t0 = mq_mono_ns();
	while (next < mq_log_end(log)) {
		out.len = 0;
		long long got = mq_log_read(log, next, 1 << 20, &out, &err);
		if (got <= 0)
			die("read", &err);
		for (size_t pos = 0; pos < out.len;) {
			mq_batch_iter_t it;
			mq_record_t r;
			if (mq_batch_iter_init(&it, out.p + pos, out.len - pos, &err))
				die("decode", &err);
			while (mq_batch_iter_next(&it, &r) > 0) {
				if (r.offset >= next) {
					bytes += r.value_len;
					seen++;
				}
			}
			next = it.hdr.base_offset + it.hdr.count;
			pos += it.hdr.length;
		}
	}
	ns = mq_mono_ns() - t0;
	report("sequential read (decoding records)", seen, size, ns);
	double read_rate = (double)seen / secs(ns);
	printf("%-34s %10.3f ms for %" PRIu64 " bytes in %d segments\n", "reopen", (double)reopen_ns / 1e6,
	       mq_log_bytes(log), mq_log_segments(log));
	if (bytes != seen * size)
		fprintf(stderr, "bench_log: read %" PRIu64 " payload bytes, expected %" PRIu64 "\n", bytes,
			seen * size);
	mq_buf_free(&out);
	mq_log_close(log);

	/* The ceiling: cat through a pipe into a file, same records as lines. */
	FILE *fp = fopen(catsrc, "w");
	if (!fp) {
		perror(catsrc);
		return 1;
	}
	char *line = malloc(size + 1);
	fill_value(line, size, 0);
	line[size] = '\n';
	for (uint64_t n = 0; n < records; n++)
		fwrite(line, 1, size + 1, fp);
	fclose(fp);
	free(line);
	char cmd[9000];
	snprintf(cmd, sizeof(cmd), "cat '%s' | cat > '%s'", catsrc, catdst);
	sync();
	t0 = mq_mono_ns();
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_log: '%s' failed\n", cmd);
		return 1;
	}
	ns = mq_mono_ns() - t0;
	report("cat | cat > file (same lines)", records, size, ns);
	double cat_rate = (double)records / secs(ns);
	printf("ratios: append/cat %.2f, read/cat %.2f; targets: append and read >= 5000000 records/s (%s, %s)\n",
	       never_rate / cat_rate, read_rate / cat_rate, never_rate >= 5e6 ? "append met" : "append MISSED",
	       read_rate >= 5e6 ? "read met" : "read MISSED");
	unlink(catsrc);
	unlink(catdst);
	if (!keep && own_dir) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_log: could not remove %s\n", dir);
	} else if (!keep) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", part);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_log: could not remove %s\n", part);
	} else {
		printf("kept %s\n", part);
	}
	return 0;
}
