/*
 * test_log.c -- the partition log: round trips, index lookups, rolls,
 * retention, time lookups and crash recovery (torn and corrupt tails,
 * lost indexes), plus the refusals (oversized record, failed write,
 * stray file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "log.h"

typedef struct fix {
	char dir[1024];
	mq_buf_t buf;
} fix_t;

static int rm_rf(const char *path)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static int setup(void **state)
{
	fix_t *f = calloc(1, sizeof(*f));
	const char *t = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/mq-test-log-XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	strcat(f->dir, "/p0");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix_t *f = *state;
	char *slash = strrchr(f->dir, '/');
	*slash = 0;
	rm_rf(f->dir);
	mq_buf_free(&f->buf);
	free(f);
	return 0;
}

/* Deterministic record content: record with global number n. */
static size_t make_value(uint64_t n, char *out, size_t cap)
{
	size_t len = (size_t)(n * 7919 % 300);
	if (len + 32 > cap)
		len = cap - 32;
	int k = snprintf(out, cap, "v%" PRIu64 ":", n);
	for (size_t i = (size_t)k; i < len + (size_t)k; i++)
		out[i] = (char)('a' + (n + i) % 26);
	return len + (size_t)k;
}

static int64_t ts_of(uint64_t n) { return 1700000000000LL + (int64_t)n * 10; }

/* Build one batch of count records numbered from first into buf (cleared). */
static void build(mq_buf_t *buf, uint64_t first, uint32_t count)
{
	mq_batch_builder_t b;
	char val[400], key[32];
	buf->len = 0;
	mq_batch_begin(&b, buf);
	b.hdr.producer_id = 42;
	b.hdr.base_seq = (uint32_t)first;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t n = first + i;
		size_t vl = make_value(n, val, sizeof(val));
		int kl = snprintf(key, sizeof(key), "k%" PRIu64, n % 13);
		mq_header_t h = {(const uint8_t *)"h", 1, (const uint8_t *)key, (size_t)kl};
		assert_int_equal(mq_batch_add(&b, ts_of(n), n % 5 ? key : NULL, n % 5 ? (size_t)kl : 0, val, vl,
					      n % 3 ? NULL : key, n % 3 ? 0 : (size_t)kl, n % 2 ? &h : NULL,
					      n % 2 ? 1u : 0u),
				 0);
	}
	assert_true(mq_batch_finish(&b) > 0);
}

/* Append batches until the log holds records [0, total); batch sizes vary. */
static void fill(fix_t *f, mq_log_t *log, uint64_t total)
{
	uint64_t n = mq_log_end(log);
	mq_err_t err;
	while (n < total) {
		uint32_t cnt = (uint32_t)(1 + (n * 31) % 17);
		if (n + cnt > total)
			cnt = (uint32_t)(total - n);
		build(&f->buf, n, cnt);
		uint64_t base = 0;
		assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), 0);
		assert_int_equal(base, n);
		n += cnt;
	}
	assert_int_equal(mq_log_end(log), total);
}

static void check_record(const mq_record_t *r)
{
	char val[400], key[32];
	uint64_t n = r->offset;
	size_t vl = make_value(n, val, sizeof(val));
	int kl = snprintf(key, sizeof(key), "k%" PRIu64, n % 13);
	assert_int_equal(r->value_len, vl);
	assert_memory_equal(r->value, val, vl);
	assert_int_equal(r->timestamp, ts_of(n));
	if (n % 5) {
		assert_non_null(r->key);
		assert_int_equal(r->key_len, (size_t)kl);
		assert_memory_equal(r->key, key, (size_t)kl);
	} else {
		assert_null(r->key);
	}
	if (n % 3 == 0) {
		assert_non_null(r->id);
		assert_memory_equal(r->id, key, (size_t)kl);
	} else {
		assert_null(r->id);
	}
	assert_int_equal(r->header_count, n % 2);
	if (n % 2) {
		const uint8_t *p = r->headers;
		mq_header_t h;
		assert_int_equal(mq_header_next(&p, r->headers_end, &h), 1);
		assert_int_equal(h.name_len, 1);
		assert_memory_equal(h.value, key, (size_t)kl);
	}
}

/* Read everything from `start` to the end and check every record;
 * returns the count.  Damage reported by mq_log_read_checked is skipped
 * (as mq-sub --skip-damaged does) and counted in *skipped; every skip
 * must start where the reader was: [*from, *to) is the first. */
static uint64_t read_skipping(mq_log_t *log, uint64_t start, size_t max_bytes, uint64_t *skipped, uint64_t *from,
			      uint64_t *to, int *fresh)
{
	mq_buf_t out = {0};
	mq_err_t err;
	uint64_t next = start, seen = 0;
	*skipped = 0;
	*fresh = 0;
	while (next < mq_log_end(log)) {
		out.len = 0;
		mq_log_damage_t d;
		long long got = mq_log_read_checked(log, next, max_bytes, &out, &d, &err);
		if (got == -MQ_ECORRUPT) {
			assert_int_equal(d.from, next);
			assert_true(d.to > next && d.to <= mq_log_end(log));
			assert_non_null(strstr(err.msg, "cannot be read"));
			if (!*skipped)
				*from = d.from, *to = d.to;
			*fresh += d.fresh;
			/* Asking again is the same damage, no longer news. */
			out.len = 0;
			assert_int_equal(mq_log_read_checked(log, next, max_bytes, &out, &d, &err), -MQ_ECORRUPT);
			assert_int_equal(d.fresh, 0);
			*skipped += d.to - next;
			next = d.to;
			continue;
		}
		if (got <= 0)
			fail_msg("read at %" PRIu64 ": %lld %s", next, got, err.msg);
		size_t pos = 0;
		while (pos < out.len) {
			mq_batch_iter_t it;
			mq_record_t r;
			assert_int_equal(mq_batch_check(out.p + pos, mq_get_u32(out.p + pos + 8), 0, &err), 0);
			assert_int_equal(mq_batch_iter_init(&it, out.p + pos, out.len - pos, &err), 0);
			if (pos == 0)
				assert_true(it.hdr.base_offset <= next && next < it.hdr.base_offset + it.hdr.count);
			else
				assert_int_equal(it.hdr.base_offset, next);
			while (mq_batch_iter_next(&it, &r) > 0) {
				if (r.offset < next)
					continue;
				assert_int_equal(r.offset, next);
				check_record(&r);
				next++;
				seen++;
			}
			pos += it.hdr.length;
		}
	}
	mq_buf_free(&out);
	return seen;
}

/* read_skipping where nothing may be damaged. */
static uint64_t read_all(mq_log_t *log, uint64_t start, size_t max_bytes)
{
	uint64_t skipped, from, to;
	int fresh;
	uint64_t n = read_skipping(log, start, max_bytes, &skipped, &from, &to, &fresh);
	assert_int_equal(skipped, 0);
	return n;
}

static mq_log_t *open_log(fix_t *f, const mq_log_opts_t *o)
{
	mq_log_t *log = NULL;
	mq_err_t err;
	if (mq_log_open(f->dir, o, 1, &log, &err))
		fail_msg("open: %s", err.msg);
	return log;
}

static void small_opts(mq_log_opts_t *o)
{
	mq_log_opts_default(o);
	o->segment_bytes = 8192;
}

static void test_round_trip(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	mq_log_t *log = open_log(f, &o);
	assert_int_equal(mq_log_start(log), 0);
	assert_int_equal(mq_log_end(log), 0);
	fill(f, log, 5000);
	assert_int_equal(read_all(log, 0, 1 << 20), 5000);
	assert_int_equal(read_all(log, 4321, 100), 5000 - 4321);
	mq_log_close(log);
	log = open_log(f, &o);
	assert_int_equal(mq_log_end(log), 5000);
	assert_int_equal(read_all(log, 0, 4096), 5000);
	fill(f, log, 6000); /* appending after reopen continues the offsets */
	assert_int_equal(read_all(log, 0, 1 << 16), 6000);
	mq_log_close(log);
}

static void test_every_offset_every_boundary(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	fill(f, log, 1500);
	assert_true(mq_log_segments(log) > 10);
	mq_buf_t out = {0};
	mq_err_t err;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t off = 0; off < 1500; off++) {
			out.len = 0;
			assert_true(mq_log_read(log, off, 1, &out, &err) > 0); /* at least one batch */
			mq_batch_hdr_t h;
			assert_int_equal(mq_batch_hdr_decode(out.p, out.len, &h, &err), 0);
			assert_true(h.base_offset <= off && off < h.base_offset + h.count);
			assert_int_equal(h.length, out.len);
		}
		mq_log_close(log);
		log = open_log(f, &o); /* and again with indexes loaded from disk */
	}
	out.len = 0;
	assert_int_equal(mq_log_read(log, 1500, 100, &out, &err), 0);
	assert_int_equal(mq_log_read(log, 1501, 100, &out, &err), -MQ_ERANGE);
	mq_buf_free(&out);
	mq_log_close(log);
}

static void test_segment_roll(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	fill(f, log, 3000);
	int segs = mq_log_segments(log);
	assert_true(segs > 20);
	mq_log_close(log);
	/* Each segment file is within its size limit (unless one batch is larger). */
	DIR *d = opendir(f->dir);
	struct dirent *de;
	int logs = 0;
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".log"))
			continue;
		char p[PATH_MAX + 300];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		assert_int_equal(stat(p, &st), 0);
		assert_true(st.st_size <= 8192);
		logs++;
	}
	closedir(d);
	assert_int_equal(logs, segs);
	log = open_log(f, &o);
	assert_int_equal(mq_log_segments(log), segs);
	assert_int_equal(read_all(log, 0, 700), 3000);
	mq_log_close(log);
}

/* mq_log_scan (mq-admin dump, the replay of the offsets log) over
 * segments smaller than its read buffer: each segment is read from its
 * own bytes, not from what the buffer kept of the one before. */
typedef struct scan_count {
	uint64_t next, records, faults;
} scan_count_t;

static int scan_batch(void *ctx, const uint8_t *batch, size_t len, const char *seg, uint64_t pos)
{
	scan_count_t *c = ctx;
	mq_batch_hdr_t h;
	(void)seg;
	(void)pos;
	assert_int_equal(mq_batch_hdr_decode(batch, len, &h, NULL), 0);
	assert_int_equal(h.base_offset, c->next);
	c->next += h.count;
	c->records += h.count;
	return 0;
}

static void scan_fault(void *ctx, const char *msg)
{
	scan_count_t *c = ctx;
	print_message("fault: %s\n", msg);
	c->faults++;
}

static void test_scan_small_segments(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	mq_err_t err;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	fill(f, log, 1500);
	assert_true(mq_log_segments(log) > 10);
	mq_log_close(log);
	scan_count_t c = {0};
	assert_int_equal(mq_log_scan(f->dir, 0, scan_batch, scan_fault, &c, &err), 0);
	assert_int_equal(c.faults, 0);
	assert_int_equal(c.records, 1500);
}

static void test_retention_bytes(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	o.retention_bytes = 30000;
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 3000);
	uint64_t before = mq_log_bytes(log);
	int deleted = mq_log_retain(log, mq_now_ms(), &err);
	assert_true(deleted > 0);
	assert_true(mq_log_bytes(log) < before);
	assert_true(mq_log_bytes(log) >= 30000 - 8192);
	assert_true(mq_log_bytes(log) < 30000 + 8192);
	uint64_t start = mq_log_start(log);
	assert_true(start > 0);
	assert_int_equal(read_all(log, start, 1 << 20), 3000 - start);
	mq_buf_t out = {0};
	assert_int_equal(mq_log_read(log, start - 1, 100, &out, &err), -MQ_ERANGE);
	mq_buf_free(&out);
	mq_log_close(log);
	log = open_log(f, &o);
	assert_int_equal(mq_log_start(log), start); /* the start survives a reopen */
	assert_int_equal(mq_log_end(log), 3000);
	mq_log_close(log);
}

static void test_retention_time(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 2000);
	mq_log_close(log);
	o.retention_ms = 1000;
	log = open_log(f, &o);
	/* "now" such that records below 1000 are older than 1 s. */
	int64_t now = ts_of(1000) + 1000;
	int deleted = mq_log_retain(log, now, &err);
	assert_true(deleted > 0);
	uint64_t start = mq_log_start(log);
	assert_true(start > 0 && start <= 1000);
	assert_int_equal(read_all(log, start, 1 << 20), 2000 - start);
	/* Everything expired: every segment goes, offsets are not reused. */
	deleted = mq_log_retain(log, ts_of(5000) + 1000, &err);
	assert_true(deleted > 0);
	assert_int_equal(mq_log_start(log), 2000);
	assert_int_equal(mq_log_end(log), 2000);
	assert_int_equal(mq_log_bytes(log), 0);
	fill(f, log, 2100);
	assert_int_equal(read_all(log, 2000, 1 << 20), 100);
	mq_log_close(log);
	log = open_log(f, &o);
	assert_int_equal(mq_log_start(log), 2000);
	assert_int_equal(mq_log_end(log), 2100);
	mq_log_close(log);
}

static void test_find_time(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 2000);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t n = 0; n < 2000; n += 37) {
			uint64_t off = 99999;
			assert_int_equal(mq_log_find_time(log, ts_of(n), &off, &err), 0);
			assert_int_equal(off, n);
			assert_int_equal(mq_log_find_time(log, ts_of(n) - 3, &off, &err), 0);
			assert_int_equal(off, n); /* between two records: the later one */
		}
		uint64_t off;
		assert_int_equal(mq_log_find_time(log, 0, &off, &err), 0);
		assert_int_equal(off, 0);
		assert_int_equal(mq_log_find_time(log, ts_of(5000), &off, &err), 0);
		assert_int_equal(off, 2000);
		mq_log_close(log);
		log = open_log(f, &o);
	}
	mq_log_close(log);
}

/* The time of a record: its own timestamp wherever it lies in its batch
 * and segment, or its batch's deliver_at when later; nothing outside
 * [start, end). */
static void test_time_at(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	int64_t ms;
	assert_int_equal(mq_log_time_at(log, 0, &ms, &err), -MQ_ERANGE);
	fill(f, log, 2000);
	assert_true(mq_log_segments(log) > 3);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t n = 0; n < 2000; n++) {
			ms = -1;
			assert_int_equal(mq_log_time_at(log, n, &ms, &err), 0);
			assert_int_equal(ms, ts_of(n));
		}
		assert_int_equal(mq_log_time_at(log, 2000, &ms, &err), -MQ_ERANGE);
		assert_non_null(strstr(err.msg, "offset 2000"));
		mq_log_close(log);
		log = open_log(f, &o);
	}
	/* A delayed batch: readable from deliver_at on, not from its timestamps. */
	mq_batch_builder_t b;
	f->buf.len = 0;
	mq_batch_begin(&b, &f->buf);
	b.hdr.deliver_at = ts_of(9000);
	assert_int_equal(mq_batch_add(&b, ts_of(2000), NULL, 0, "a", 1, NULL, 0, NULL, 0), 0);
	assert_int_equal(mq_batch_add(&b, ts_of(2001), NULL, 0, "b", 1, NULL, 0, NULL, 0), 0);
	assert_true(mq_batch_finish(&b) > 0);
	uint64_t base;
	assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), 0);
	assert_int_equal(mq_log_time_at(log, 2000, &ms, &err), 0);
	assert_int_equal(ms, ts_of(9000));
	assert_int_equal(mq_log_time_at(log, 2001, &ms, &err), 0);
	assert_int_equal(ms, ts_of(9000));
	/* Below the start, after retention deleted segments. */
	assert_true(mq_log_delete_before(log, 1000, &err) > 0);
	assert_true(mq_log_start(log) > 0);
	assert_int_equal(mq_log_time_at(log, mq_log_start(log) - 1, &ms, &err), -MQ_ERANGE);
	assert_int_equal(mq_log_time_at(log, mq_log_start(log), &ms, &err), 0);
	assert_int_equal(ms, ts_of(mq_log_start(log)));
	mq_log_close(log);
}

/* Path of the newest segment's file with extension ext. */
static void last_seg(fix_t *f, const char *ext, char *out, size_t n)
{
	DIR *d = opendir(f->dir);
	struct dirent *de;
	char best[32] = "";
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".log") && strncmp(de->d_name, best, 20) > 0)
			snprintf(best, sizeof(best), "%.20s", de->d_name);
	closedir(d);
	snprintf(out, n, "%s/%s.%s", f->dir, best, ext);
}

static off_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

static void copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(in >= 0 && out >= 0);
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

typedef struct reports {
	int n;
	char last[1024];
} reports_t;

static void count_report(void *ctx, const char *msg)
{
	reports_t *r = ctx;
	r->n++;
	snprintf(r->last, sizeof(r->last), "%s", msg);
}

static void test_truncate_every_byte(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	reports_t said = {0};
	small_opts(&o);
	o.segment_bytes = 1 << 20;
	o.report = count_report;
	o.report_ctx = &said;
	mq_log_t *log = open_log(f, &o);
	fill(f, log, 300);
	uint64_t before = mq_log_end(log);
	build(&f->buf, before, 9); /* the last batch */
	uint64_t base;
	mq_err_t err;
	assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), 0);
	size_t last_len = f->buf.len;
	mq_log_close(log);
	char seg[PATH_MAX], idx[PATH_MAX], tix[PATH_MAX], saved[PATH_MAX + 8], savedi[PATH_MAX + 8],
		savedt[PATH_MAX + 8];
	last_seg(f, "log", seg, sizeof(seg));
	last_seg(f, "idx", idx, sizeof(idx));
	last_seg(f, "tix", tix, sizeof(tix));
	snprintf(saved, sizeof(saved), "%s.save", f->dir);
	snprintf(savedi, sizeof(savedi), "%s.savei", f->dir);
	snprintf(savedt, sizeof(savedt), "%s.savet", f->dir);
	copy_file(seg, saved);
	copy_file(idx, savedi);
	copy_file(tix, savedt);
	off_t full = file_size(seg);
	for (off_t cut = full - (off_t)last_len; cut < full; cut++) {
		copy_file(saved, seg);
		copy_file(savedi, idx);
		copy_file(savedt, tix);
		assert_int_equal(truncate(seg, cut), 0);
		said.n = 0;
		log = open_log(f, &o);
		assert_int_equal(mq_log_end(log), before);
		/* A torn batch is cut and said once; a cut at a batch boundary is
		 * a clean end, nothing to say. */
		assert_int_equal(said.n, cut == full - (off_t)last_len ? 0 : 1);
		if (said.n) {
			char want[64];
			snprintf(want, sizeof(want), "cut %lld byte", (long long)(cut - (full - (off_t)last_len)));
			assert_non_null(strstr(said.last, want));
			assert_non_null(strstr(said.last, "now ends at offset"));
		}
		assert_int_equal(file_size(seg), full - (off_t)last_len);
		if (cut == full - 1 || cut == full - (off_t)last_len)
			assert_int_equal(read_all(log, 0, 1 << 20), before);
		/* appending again works and continues at the same offset */
		build(&f->buf, before, 2);
		assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), 0);
		assert_int_equal(base, before);
		mq_log_close(log);
	}
	unlink(saved);
	unlink(savedi);
	unlink(savedt);
}

static void test_flipped_byte(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	o.segment_bytes = 1 << 20;
	mq_log_t *log = open_log(f, &o);
	fill(f, log, 200);
	uint64_t before = mq_log_end(log);
	build(&f->buf, before, 5);
	uint64_t base;
	mq_err_t err;
	assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), 0);
	size_t last_len = f->buf.len;
	mq_log_close(log);
	char seg[PATH_MAX];
	last_seg(f, "log", seg, sizeof(seg));
	off_t full = file_size(seg);
	/* Flip one byte in the middle of the last batch's records. */
	int fd = open(seg, O_RDWR);
	off_t at = full - (off_t)last_len / 2;
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
	struct vc { int n; } v = {0};
	log = open_log(f, &o);
	assert_int_equal(mq_log_end(log), before); /* the bad batch, and only it, is gone */
	assert_int_equal(read_all(log, 0, 1 << 20), before);
	mq_log_close(log);
	(void)v;
}

static void count_fault(void *ctx, const char *msg)
{
	if (getenv("MQ_TEST_VERBOSE"))
		fprintf(stderr, "verify: %s\n", msg);
	(*(int *)ctx)++;
}

static void test_deleted_and_damaged_index(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 1200);
	mq_log_close(log);
	int faults = 0;
	assert_int_equal(mq_log_verify(f->dir, count_fault, &faults, &err), 0);
	assert_int_equal(faults, 0);

	char idx[PATH_MAX], tix[PATH_MAX + 64];
	last_seg(f, "idx", idx, sizeof(idx));
	assert_int_equal(unlink(idx), 0);
	/* the second segment's time index is torn, the first's index gets garbage */
	snprintf(tix, sizeof(tix), "%s/%020d.tix", f->dir, 1);
	char first[PATH_MAX + 64];
	snprintf(first, sizeof(first), "%s/%020d.idx", f->dir, 0);
	{
		DIR *d = opendir(f->dir);
		struct dirent *de;
		char second[32] = "";
		while ((de = readdir(d)))
			if (strstr(de->d_name, ".tix") && strncmp(de->d_name, "00000000000000000000", 20) &&
			    (!second[0] || strncmp(de->d_name, second, 20) < 0))
				snprintf(second, sizeof(second), "%.20s", de->d_name);
		closedir(d);
		snprintf(tix, sizeof(tix), "%s/%s.tix", f->dir, second);
	}
	assert_int_equal(truncate(tix, 5), 0);
	int fd = open(first, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 8), 8);
	close(fd);
	faults = 0;
	assert_true(mq_log_verify(f->dir, count_fault, &faults, &err) >= 3);
	assert_true(faults >= 3);

	log = open_log(f, &o);
	assert_int_equal(mq_log_end(log), 1200);
	assert_true(file_size(idx) > 0); /* rebuilt */
	assert_int_equal(read_all(log, 0, 300), 1200);
	uint64_t off;
	assert_int_equal(mq_log_find_time(log, ts_of(1100), &off, &err), 0);
	assert_int_equal(off, 1100);
	mq_log_close(log);
	faults = 0;
	assert_int_equal(mq_log_verify(f->dir, count_fault, &faults, &err), 0);
}

/* The k-th segment (0 = oldest) file with extension ext. */
static void nth_seg(fix_t *f, int k, const char *ext, char *out, size_t n)
{
	char names[64][32];
	int cnt = 0;
	DIR *d = opendir(f->dir);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".log") && cnt < 64)
			snprintf(names[cnt++], 32, "%.20s", de->d_name);
	closedir(d);
	qsort(names, (size_t)cnt, 32, (int (*)(const void *, const void *))strcmp);
	assert_true(k < cnt);
	snprintf(out, n, "%s/%s.%s", f->dir, names[k], ext);
}

/* Batch k of a segment file: its position, base offset and count. */
static void seg_batch(const char *path, int k, off_t *pos, uint64_t *base, uint32_t *count, uint32_t *len)
{
	int fd = open(path, O_RDONLY);
	uint8_t hb[MQ_BATCH_HEADER];
	off_t p = 0;
	for (int i = 0;; i++) {
		assert_int_equal(pread(fd, hb, sizeof hb, p), (ssize_t)sizeof hb);
		if (i == k)
			break;
		p += mq_get_u32(hb + 8);
	}
	close(fd);
	*pos = p;
	*base = mq_get_u64(hb);
	*len = mq_get_u32(hb + 8);
	*count = mq_get_u32(hb + 20);
}

static void flip(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

/* Damage in a sealed segment: each kind is reported as a range holding
 * the damaged batch, nothing else is missing, no record is wrong, and
 * offsets never jump without a report. */
static void test_damage_reported_never_served(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	static const struct {
		const char *what;
		int field; /* byte of the header to flip; -1 a record byte; -2 cut; -3 delete; -4 index;
			    * -5 count lowered to 1 (the walk past it must not believe it) */
		int exact; /* the range is exactly the batch (else: to the segment's end) */
	} cases[] = {
		{"base offset", 3, 1}, {"length", 9, 0}, {"crc", 13, 1}, {"magic", 16, 0},
		{"count", 20, 1}, {"first timestamp", 25, 1}, {"producer id", 41, 1}, {"a record", -1, 1},
		{"cut", -2, 0}, {"deleted", -3, 0}, {"index", -4, 0}, {"count lowered", -5, 1},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s", f->dir);
		rm_rf(dir);
		mq_log_t *log = open_log(f, &o);
		fill(f, log, 1200);
		mq_log_close(log);
		char seg[PATH_MAX];
		nth_seg(f, 1, "log", seg, sizeof seg);
		off_t pos;
		uint64_t base, next_base;
		uint32_t count, len;
		seg_batch(seg, 2, &pos, &base, &count, &len);
		char next_seg[PATH_MAX];
		nth_seg(f, 2, "log", next_seg, sizeof next_seg);
		next_base = strtoull(strrchr(next_seg, '/') + 1, NULL, 10);
		uint64_t seg_base = strtoull(strrchr(seg, '/') + 1, NULL, 10);
		if (cases[c].field >= 0) {
			flip(seg, pos + cases[c].field);
		} else if (cases[c].field == -1) {
			flip(seg, pos + MQ_BATCH_HEADER + 5);
		} else if (cases[c].field == -2) {
			assert_int_equal(truncate(seg, pos + 100), 0);
		} else if (cases[c].field == -5) {
			int fd = open(seg, O_WRONLY);
			assert_int_equal(pwrite(fd, "\x01\x00\x00\x00", 4, pos + 20), 4);
			close(fd);
		} else if (cases[c].field == -3) {
			assert_int_equal(unlink(seg), 0);
			base = seg_base;
		} else {
			char idx[PATH_MAX];
			nth_seg(f, 1, "idx", idx, sizeof idx);
			int fd = open(idx, O_WRONLY);
			assert_int_equal(pwrite(fd, "\x03\x00\x00\x00\x40\x00\x00\x00", 8, 8), 8);
			close(fd);
		}
		log = open_log(f, &o);
		uint64_t skipped, from = 0, to = 0;
		int fresh;
		uint64_t seen = read_skipping(log, 0, 700, &skipped, &from, &to, &fresh);
		mq_log_close(log);
		if (cases[c].field == -4) {
			if (seen != 1200 || skipped)
				fail_msg("%s: %" PRIu64 " read, %" PRIu64 " skipped", cases[c].what, seen, skipped);
			continue;
		}
		if (seen + skipped != 1200 || from != base || fresh != 1 ||
		    to != (cases[c].exact ? base + count : next_base))
			fail_msg("%s: %" PRIu64 " read, %" PRIu64 " skipped from %" PRIu64 " to %" PRIu64
				 " (batch %" PRIu64 "+%u, next segment %" PRIu64 "), reported %d times",
				 cases[c].what, seen, skipped, from, to, base, count, next_base, fresh);
	}
}

/* A flipped byte in the active segment, good batches after it: damage,
 * not a torn write.  Recovery keeps the good batches (cutting at the
 * damage would drop them without a word); reads report the one batch. */
static void test_active_damage_kept(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	o.segment_bytes = 1 << 20;
	char seg[PATH_MAX], idx[PATH_MAX];
	off_t pos;
	uint64_t base, skipped, from = 0, to = 0, total = 190;
	uint32_t count, len;
	/* Recovery reads from the last index entry on: damage the batch there,
	 * with more after it. */
	for (;;) {
		mq_log_t *l = open_log(f, &o);
		fill(f, l, total);
		mq_log_close(l);
		last_seg(f, "log", seg, sizeof seg);
		last_seg(f, "idx", idx, sizeof idx);
		int fd = open(idx, O_RDONLY);
		uint8_t e[8];
		assert_int_equal(pread(fd, e, 8, file_size(idx) - 8), 8);
		close(fd);
		int k = 0;
		do
			seg_batch(seg, k++, &pos, &base, &count, &len);
		while (pos < (off_t)mq_get_u32(e + 4));
		if (pos + len < file_size(seg))
			break;
		total += 5;
	}
	flip(seg, pos + MQ_BATCH_HEADER + 2);
	mq_log_t *log = open_log(f, &o);
	assert_int_equal(mq_log_end(log), total);
	int fresh;
	assert_int_equal(read_skipping(log, 0, 700, &skipped, &from, &to, &fresh), total - count);
	assert_int_equal(from, base);
	assert_int_equal(to, base + count);
	/* Appends go on after the good batches. */
	fill(f, log, total + 20);
	mq_log_close(log);
	log = open_log(f, &o);
	assert_int_equal(mq_log_end(log), total + 20);
	assert_int_equal(read_skipping(log, 0, 700, &skipped, &from, &to, &fresh), total + 20 - count);
	mq_log_close(log);
}

static void test_verify_flipped_byte(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 800);
	mq_log_close(log);
	char first[PATH_MAX + 64];
	snprintf(first, sizeof(first), "%s/%020d.log", f->dir, 0);
	int fd = open(first, O_RDWR);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, 300), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 300), 1);
	close(fd);
	int faults = 0;
	assert_true(mq_log_verify(f->dir, count_fault, &faults, &err) > 0);
	assert_true(faults > 0);
}

static void test_record_too_big(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	o.max_record_bytes = 1000;
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 10);
	mq_batch_builder_t b;
	static char big[2000];
	f->buf.len = 0;
	mq_batch_begin(&b, &f->buf);
	assert_int_equal(mq_batch_add(&b, 1, NULL, 0, "small", 5, NULL, 0, NULL, 0), 0);
	assert_int_equal(mq_batch_add(&b, 1, NULL, 0, big, sizeof(big), NULL, 0, NULL, 0), 0);
	mq_batch_finish(&b);
	uint64_t base;
	uint64_t bytes = mq_log_bytes(log);
	assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), -MQ_ETOOBIG);
	assert_non_null(strstr(err.msg, "record 1"));
	assert_int_equal(mq_log_end(log), 10);
	assert_int_equal(mq_log_bytes(log), bytes);
	/* A corrupt batch is refused too. */
	build(&f->buf, 10, 3);
	f->buf.p[f->buf.len - 1] ^= 1;
	assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), -MQ_ECORRUPT);
	assert_int_equal(mq_log_end(log), 10);
	fill(f, log, 20);
	assert_int_equal(read_all(log, 0, 1 << 20), 20);
	mq_log_close(log);
}

static void test_failed_write_leaves_nothing(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 100);
	char seg[PATH_MAX];
	last_seg(f, "log", seg, sizeof(seg));
	off_t size = file_size(seg);
	/* The file may grow by only 100 more bytes: the next write is cut short. */
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)size + 100;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	build(&f->buf, 100, 10);
	uint64_t base;
	int rc = mq_log_append(log, f->buf.p, f->buf.len, &base, &err);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, prev);
	assert_true(rc < 0);
	assert_non_null(strstr(err.msg, "cannot append"));
	assert_int_equal(file_size(seg), size); /* the partial batch was cut off */
	assert_int_equal(mq_log_end(log), 100);
	fill(f, log, 150);
	mq_log_close(log);
	log = open_log(f, &o);
	assert_int_equal(read_all(log, 0, 1 << 20), 150);
	mq_log_close(log);
}

static void test_stray_file(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	mq_log_t *log = open_log(f, &o);
	fill(f, log, 10);
	mq_log_close(log);
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/notes.txt", f->dir);
	FILE *fp = fopen(p, "w");
	fputs("x", fp);
	fclose(fp);
	mq_err_t err;
	assert_int_equal(mq_log_open(f->dir, &o, 1, &log, &err), -MQ_ECORRUPT);
	assert_non_null(strstr(err.msg, "notes.txt"));
	int faults = 0;
	assert_int_equal(mq_log_verify(f->dir, count_fault, &faults, &err), 1);
	unlink(p);
	/* A leftover index of a deleted segment is removed quietly. */
	snprintf(p, sizeof(p), "%s/%020d.idx", f->dir, 777);
	fp = fopen(p, "w");
	fclose(fp);
	log = open_log(f, &o);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(mq_log_end(log), 10);
	mq_log_close(log);
}

static void test_fsync_policies(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	o.fsync = MQ_FSYNC_ALWAYS;
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 50);
	assert_true(mq_log_dirty(log));
	assert_int_equal(mq_log_commit(log, mq_mono_ms(), &err), 0);
	assert_false(mq_log_dirty(log));
	o.fsync = MQ_FSYNC_INTERVAL;
	o.fsync_interval_ms = 60000;
	mq_log_set_opts(log, &o);
	fill(f, log, 60);
	assert_int_equal(mq_log_commit(log, mq_mono_ms(), &err), 0);
	assert_true(mq_log_dirty(log)); /* not yet due */
	assert_int_equal(mq_log_commit(log, mq_mono_ms() + 61000, &err), 0);
	assert_false(mq_log_dirty(log));
	o.fsync = MQ_FSYNC_NEVER;
	mq_log_set_opts(log, &o);
	fill(f, log, 70);
	assert_int_equal(mq_log_commit(log, mq_mono_ms() + 1000000, &err), 0);
	assert_true(mq_log_dirty(log));
	mq_log_close(log);
}

/* Put a directory where a segment's index file goes (block) or take it
 * away again: while it stands, every write of that file fails (EISDIR),
 * as it would on a full disk, and so does reading it. */
static void block_index(fix_t *f, uint64_t base, const char *ext, int block)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%020" PRIu64 ".%s", f->dir, base, ext);
	if (block) {
		unlink(p);
		assert_int_equal(mkdir(p, 0755), 0);
	} else {
		assert_int_equal(rmdir(p), 0);
	}
}

/* Indexes are derived: when they cannot be written the data is still
 * stored and acknowledged (no refusal for what is kept), rolls go on,
 * and reading, also after a restart, never needs to write one. */
static void test_unwritable_index(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	o.fsync = MQ_FSYNC_ALWAYS;
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	block_index(f, 0, "idx", 1);
	block_index(f, 0, "tix", 1);
	fill(f, log, 20);
	assert_int_equal(mq_log_commit(log, mq_mono_ms(), &err), 0);
	assert_false(mq_log_dirty(log));
	fill(f, log, 1200); /* rolls: sealing segment 0 cannot write its indexes */
	assert_true(mq_log_segments(log) > 2);
	assert_int_equal(mq_log_commit(log, mq_mono_ms(), &err), 0);
	assert_int_equal(read_all(log, 0, 1 << 20), 1200);
	mq_log_close(log);
	/* A restart with the indexes still unwritable: everything readable. */
	log = open_log(f, &o);
	assert_int_equal(mq_log_end(log), 1200);
	assert_int_equal(read_all(log, 0, 1 << 20), 1200);
	uint64_t at;
	assert_int_equal(mq_log_find_time(log, ts_of(7), &at, &err), 0);
	assert_int_equal(at, 7);
	mq_log_close(log);
	/* Once they can be written, reading segment 0 writes them. */
	block_index(f, 0, "idx", 0);
	block_index(f, 0, "tix", 0);
	log = open_log(f, &o);
	assert_int_equal(read_all(log, 0, 1 << 20), 1200);
	mq_log_close(log);
	int faults = 0;
	assert_int_equal(mq_log_verify(f->dir, count_fault, &faults, &err), 0);
}

static void count_hdr(void *ctx, const mq_batch_hdr_t *h, const uint8_t *batch)
{
	(void)h;
	(void)batch;
	(*(int *)ctx)++;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A released log holds no descriptor and opens what it needs again:
 * append (with rolls), read, time lookup, tail scan, retention, sync. */
static void test_release_descriptors(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	o.fsync = MQ_FSYNC_ALWAYS;
	int before = open_fds();
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 300);
	assert_int_equal(read_all(log, 0, 1 << 20), 300); /* opens a sealed segment too */
	assert_int_equal(mq_log_fds(log), 2);
	assert_true(mq_log_dirty(log));
	assert_int_equal(mq_log_release(log, &err), 0);
	assert_false(mq_log_dirty(log)); /* synced before closing */
	assert_int_equal(mq_log_fds(log), 0);
	assert_int_equal(open_fds(), before);
	fill(f, log, 600);
	assert_int_equal(mq_log_release(log, &err), 0);
	assert_int_equal(read_all(log, 0, 1 << 20), 600);
	assert_int_equal(mq_log_release(log, &err), 0);
	uint64_t at;
	assert_int_equal(mq_log_find_time(log, ts_of(450), &at, &err), 0);
	assert_int_equal(at, 450);
	assert_int_equal(mq_log_release(log, &err), 0);
	int calls = 0;
	assert_int_equal(mq_log_scan_tail(log, 1 << 20, count_hdr, &calls, &err), 0);
	assert_true(calls > 0);
	assert_int_equal(mq_log_release(log, &err), 0);
	assert_int_equal(mq_log_commit(log, mq_mono_ms(), &err), 0);
	assert_int_equal(mq_log_roll(log, &err), 0);
	assert_int_equal(mq_log_release(log, &err), 0);
	assert_int_equal(open_fds(), before);
	mq_log_close(log);
	assert_int_equal(open_fds(), before);
	log = open_log(f, &o);
	assert_int_equal(read_all(log, 0, 1 << 20), 600);
	mq_log_close(log);
}

typedef struct tail_seen {
	uint64_t first, next; /* first offset seen, offset expected next */
	uint64_t bytes;
	int batches;
} tail_seen_t;

static void tail_check(void *ctx, const mq_batch_hdr_t *h, const uint8_t *batch)
{
	tail_seen_t *t = ctx;
	mq_err_t err;
	assert_int_equal(mq_batch_check(batch, h->length, 0, &err), 0);
	if (t->batches++ == 0)
		t->first = h->base_offset;
	else
		assert_int_equal(h->base_offset, t->next);
	t->next = h->base_offset + h->count;
	t->bytes += h->length;
}

/* The tail scan crosses segments: the whole log when asked for more than
 * it holds, in order and with each batch's bytes; about max_bytes else. */
static void test_scan_tail_segments(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	fill(f, log, 3000);
	assert_true(mq_log_segments(log) > 20);
	mq_err_t err;
	tail_seen_t all = {0};
	assert_int_equal(mq_log_scan_tail(log, 1 << 30, tail_check, &all, &err), 0);
	assert_int_equal(all.first, 0);
	assert_int_equal(all.next, 3000);
	assert_int_equal(all.bytes, mq_log_bytes(log));
	tail_seen_t some = {0};
	assert_int_equal(mq_log_scan_tail(log, 3 * 8192 + 100, tail_check, &some, &err), 0);
	assert_int_equal(some.next, 3000);
	assert_true(some.first > 0);
	assert_true(some.bytes >= 3 * 8192 + 100 && some.bytes <= 5 * 8192);
	int64_t ns = 0;
	assert_int_equal(mq_log_mtime(log, &ns, &err), 0);
	assert_true(ns > 0);
	mq_log_close(log);
}

static void test_truncate_all(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	fill(f, log, 500);
	assert_int_equal(mq_log_truncate_all(log, 0, &err), 0);
	assert_int_equal(mq_log_start(log), 500);
	assert_int_equal(mq_log_end(log), 500);
	assert_int_equal(mq_log_segments(log), 1);
	fill(f, log, 520);
	mq_log_close(log);
	log = open_log(f, &o);
	assert_int_equal(mq_log_start(log), 500);
	assert_int_equal(read_all(log, 500, 1 << 20), 20);
	mq_log_close(log);
}

static void test_random_batches(void **state)
{
	fix_t *f = *state;
	mq_log_opts_t o;
	small_opts(&o);
	o.segment_bytes = 20000;
	srand(12345);
	mq_log_t *log = open_log(f, &o);
	mq_err_t err;
	uint64_t n = 0;
	for (int round = 0; round < 5; round++) {
		int batches = 20 + rand() % 50;
		for (int i = 0; i < batches; i++) {
			uint32_t cnt = 1 + (uint32_t)(rand() % 60);
			build(&f->buf, n, cnt);
			uint64_t base;
			assert_int_equal(mq_log_append(log, f->buf.p, f->buf.len, &base, &err), 0);
			assert_int_equal(base, n);
			n += cnt;
		}
		uint64_t from = (uint64_t)rand() % n;
		assert_int_equal(read_all(log, from, (size_t)(1 + rand() % 5000)), n - from);
		mq_log_close(log);
		log = open_log(f, &o);
		assert_int_equal(mq_log_end(log), n);
	}
	assert_int_equal(read_all(log, 0, 1 << 20), n);
	mq_log_close(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_offset_every_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_roll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_small_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_at, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted_and_damaged_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_flipped_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stray_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_policies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_tail_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_descriptors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_reported_never_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_active_damage_kept, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
