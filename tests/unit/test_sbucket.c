/*
 * test_sbucket.c -- unit tests for lib/sbucket.c with a fake clock and a
 * temporary state directory: define, take, partial grants and the wait
 * hint; a change of rate; persistence across close and open (buckets
 * start full again); an unchanged define writing nothing; a failed write
 * changing nothing; corrupt files refused with the file, the byte and
 * what to do; unknown buckets and bad names; growth past the first
 * table; and the sharing property: several takers on one bucket never
 * get more than BURST + RATE x t together, and (waiting as told) not
 * much less.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "sbucket.h"
#include "store.h"

#define S 1000000000ull
#define MS 1000000ull

typedef struct fx {
	char root[64];  /* mkdtemp */
	char dir[128];  /* root/state: created by the first define */
	char file[160]; /* dir/buckets */
} fx_t;

static int setup(void **state)
{
	fx_t *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	snprintf(f->root, sizeof f->root, "/tmp/test_sbucket.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->dir, sizeof f->dir, "%s/state", f->root);
	snprintf(f->file, sizeof f->file, "%s/buckets", f->dir);
	*state = f;
	return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	fx_t *f = *state;
	nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static mq_rate_t rate_of(const char *s)
{
	mq_rate_t r;
	assert_int_equal(mq_rate_parse(s, &r, NULL), 0);
	return r;
}

static mq_sbuckets_t *open_ok(const fx_t *f)
{
	mq_sbuckets_t *s;
	mq_err_t err;
	int rc = mq_sbuckets_open(f->dir, NULL, NULL, &s, &err);
	if (rc)
		fail_msg("open: %s", err.msg);
	return s;
}

static void define_ok(mq_sbuckets_t *s, const char *name, const char *rate, uint64_t burst, uint64_t now)
{
	mq_rate_t r = rate_of(rate);
	mq_err_t err;
	if (mq_sbuckets_define(s, name, &r, burst, now, &err))
		fail_msg("define %s: %s", name, err.msg);
}

/* The grant of a take that must succeed as a call. */
static uint64_t take(mq_sbuckets_t *s, const char *name, uint64_t want, uint64_t min, uint64_t now, uint64_t *wait)
{
	uint64_t g, w;
	mq_err_t err;
	if (mq_sbuckets_take(s, name, want, min, now, &g, &w, &err))
		fail_msg("take %s: %s", name, err.msg);
	if (wait)
		*wait = w;
	if (g)
		assert_int_equal(w, 0);
	return g;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* "LINE CRC\n": the line with the CRC-32C of its text, as mq-format(5)
 * gives it for format 2 (a static buffer per call, up to 8 calls). */
static const char *with_crc(const char *line)
{
	static char bufs[8][160];
	static int next;
	char *b = bufs[next++ % 8];
	snprintf(b, 160, "%s %08" PRIx32 "\n", line, mq_crc32c(0, line, strlen(line)));
	return b;
}

static void test_define_take(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	uint64_t w;
	assert_int_equal(mq_sbuckets_count(s), 0);
	define_ok(s, "api", "100/s", 10, 0);
	assert_int_equal(mq_sbuckets_count(s), 1);
	/* starts full: a partial grant of what is there, up to want */
	assert_int_equal(take(s, "api", 4, 1, 0, &w), 4);
	assert_int_equal(take(s, "api", 100, 1, 0, &w), 6);
	/* empty: nothing, and the wait until min would be there */
	assert_int_equal(take(s, "api", 5, 1, 0, &w), 0);
	assert_int_equal(w, 10 * MS);
	assert_int_equal(take(s, "api", 5, 3, 0, &w), 0);
	assert_int_equal(w, 30 * MS);
	/* fewer than min there: nothing is taken */
	assert_int_equal(take(s, "api", 5, 3, 29 * MS, &w), 0);
	assert_int_equal(w, 1 * MS);
	assert_int_equal(take(s, "api", 5, 3, 30 * MS, &w), 3);
	/* burst 0: one second's worth */
	define_ok(s, "slow", "2.5/s", 0, 0);
	assert_int_equal(take(s, "slow", 10, 1, 0, &w), 3);
	mq_sbuckets_close(s);
	mq_sbuckets_close(NULL);
}

static void test_bad_takes(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	uint64_t g = 99, w = 99;
	mq_err_t err;
	define_ok(s, "api", "100/s", 10, 0);
	assert_int_equal(mq_sbuckets_take(s, "nope", 1, 1, 0, &g, &w, &err), -MQ_ENOENT);
	assert_string_equal(err.msg, "no shared bucket 'nope' (create it with -r RATE)");
	assert_true(g == 0 && w == 0);
	assert_int_equal(mq_sbuckets_take(s, "api", 1, 2, 0, &g, &w, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "shared bucket 'api'"));
	assert_int_equal(mq_sbuckets_take(s, "api", 1, 0, 0, &g, &w, &err), -MQ_EINVAL);
	/* nothing was taken by the refused calls */
	assert_int_equal(take(s, "api", 100, 10, 0, NULL), 10);
	/* a want above the burst is fine: it gets what is there */
	assert_int_equal(take(s, "api", 1000, 1, S, NULL), 10);
	/* a bad name taken is a bad name, not a missing bucket */
	assert_int_equal(mq_sbuckets_take(s, "a/b", 1, 1, 0, &g, &w, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "invalid name"));
	mq_sbuckets_close(s);
}

/* More than the burst at once: granted when the bucket is full, which
 * leaves it in debt; the long-run rate holds (100/s, burst 10). */
static void test_oversize_take(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	uint64_t w;
	define_ok(s, "api", "100/s", 10, 0);
	assert_int_equal(take(s, "api", 3, 3, 0, NULL), 3);
	assert_int_equal(take(s, "api", 25, 25, 0, &w), 0); /* not full: wait for 3 tokens */
	assert_int_equal(w, 30000000);
	assert_int_equal(take(s, "api", 25, 25, 30000000, NULL), 25); /* full: 25 granted, 15 owed */
	/* the debt is paid first: the next token comes after 16 x 10 ms */
	assert_int_equal(take(s, "api", 1, 1, 30000000 + 150000000, &w), 0);
	assert_int_equal(take(s, "api", 1, 1, 30000000 + 160000000, NULL), 1);
	mq_sbuckets_close(s);
}

/* The largest numbers the wire allows are written and read back. */
static void test_extreme_rate(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	mq_rate_t r = {UINT64_MAX, 1};
	mq_err_t err;
	assert_int_equal(mq_sbuckets_define(s, "fast", &r, MQ_BUCKET_MAX_BURST, 0, &err), 0);
	mq_sbuckets_close(s);
	s = open_ok(f);
	assert_int_equal(take(s, "fast", 5, 5, 0, NULL), 5);
	mq_sbuckets_close(s);
}

static void test_names_refused(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	mq_rate_t r = rate_of("1/s");
	mq_err_t err;
	char longname[MQ_NAME_MAX + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	const char *bad[] = {"", ".", "..", "a/b", "a b", "__reserved", "caf\xc3\xa9", longname};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(mq_sbuckets_define(s, bad[i], &r, 1, 0, &err), -MQ_EINVAL);
		assert_non_null(strstr(err.msg, "shared bucket"));
	}
	longname[MQ_NAME_MAX] = '\0';
	define_ok(s, longname, "1/s", 1, 0);
	define_ok(s, "A-z_0.9", "1/s", 1, 0);
	/* bad rates and bursts */
	mq_rate_t zero = {0, 1};
	assert_int_equal(mq_sbuckets_define(s, "ok", &zero, 1, 0, &err), -MQ_EINVAL);
	assert_int_equal(mq_sbuckets_define(s, "ok", &r, MQ_BUCKET_MAX_BURST + 1, 0, &err), -MQ_EINVAL);
	assert_non_null(strstr(err.msg, "use a smaller -B"));
	assert_int_equal(mq_sbuckets_count(s), 2);
	mq_sbuckets_close(s);
	/* nothing refused reached the file */
	s = open_ok(f);
	assert_int_equal(mq_sbuckets_count(s), 2);
	mq_sbuckets_close(s);
}

static void test_change_rate(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	uint64_t w;
	define_ok(s, "api", "10/s", 10, 0);
	assert_int_equal(take(s, "api", 7, 1, 0, NULL), 7); /* 3 left */
	/* a faster rate keeps the 3 and earns faster from now on */
	define_ok(s, "api", "1000/s", 100, 0);
	assert_int_equal(take(s, "api", 100, 1, 0, NULL), 3);
	assert_int_equal(take(s, "api", 100, 1, 0, &w), 0);
	assert_int_equal(w, 1 * MS);
	assert_int_equal(take(s, "api", 100, 1, 50 * MS, NULL), 50);
	/* a smaller burst caps the tokens */
	define_ok(s, "api", "1000/s", 5, 1 * S);
	assert_int_equal(take(s, "api", 100, 1, 1 * S, NULL), 5);
	/* the same rate written otherwise is no change */
	mq_rate_t same = {2000, 2 * S};
	mq_err_t err;
	assert_int_equal(mq_sbuckets_define(s, "api", &same, 5, 2 * S, &err), 0);
	mq_sbuckets_close(s);
	s = open_ok(f);
	/* the new definition was kept: full at 5 */
	assert_int_equal(take(s, "api", 100, 1, 0, NULL), 5);
	assert_int_equal(take(s, "api", 100, 1, 0, &w), 0);
	assert_int_equal(w, 1 * MS);
	mq_sbuckets_close(s);
}

static void test_persistence(void **state)
{
	fx_t *f = *state;
	struct stat st;
	mq_sbuckets_t *s = open_ok(f);
	/* open writes nothing, not even the directory */
	assert_int_equal(stat(f->dir, &st), -1);
	define_ok(s, "a", "100/s", 10, 0);
	define_ok(s, "b", "7/h", 3, 0);
	define_ok(s, "c", "2.5/s", 0, 0);
	assert_int_equal(take(s, "a", 10, 10, 0, NULL), 10);
	assert_int_equal(take(s, "b", 3, 3, 0, NULL), 3);
	mq_sbuckets_close(s);

	s = open_ok(f);
	assert_int_equal(mq_sbuckets_count(s), 3);
	/* after a restart every bucket starts full, whatever the clock reads */
	assert_int_equal(take(s, "a", 100, 1, 5, NULL), 10);
	assert_int_equal(take(s, "b", 100, 1, 0, NULL), 3);
	assert_int_equal(take(s, "c", 100, 1, 0, NULL), 3);
	uint64_t w;
	assert_int_equal(take(s, "b", 1, 1, 0, &w), 0);
	assert_int_equal(w, 3600 * S / 7 + 1); /* the rate came back exactly (rounded up) */
	mq_sbuckets_close(s);
	/* the file is the documented text, no temporary left behind */
	FILE *fp = fopen(f->file, "r");
	assert_non_null(fp);
	char text[512];
	size_t n = fread(text, 1, sizeof text - 1, fp);
	fclose(fp);
	text[n] = '\0';
	char want[512];
	snprintf(want, sizeof want, "mq-buckets 2\n%s%s%s%s", with_crc("bucket a 1 10000000 10"),
		 with_crc("bucket b 7 3600000000000 3"), with_crc("bucket c 1 400000000 3"), with_crc("end 3"));
	assert_string_equal(text, want);
	char tmp[200];
	snprintf(tmp, sizeof tmp, "%s.tmp", f->file);
	assert_int_equal(access(tmp, F_OK), -1);
}

static void test_unchanged_writes_nothing(void **state)
{
	fx_t *f = *state;
	struct stat a, b;
	mq_sbuckets_t *s = open_ok(f);
	define_ok(s, "api", "100/s", 10, 0);
	assert_int_equal(stat(f->file, &a), 0);
	/* the same definition again, with the burst spelled out or not */
	define_ok(s, "api", "100/s", 10, S);
	define_ok(s, "api", "100", 10, 2 * S);
	define_ok(s, "other", "1/s", 0, 0);
	define_ok(s, "other", "1/s", 1, 0);
	assert_int_equal(stat(f->file, &b), 0);
	assert_int_equal(a.st_ino == b.st_ino, 0); /* "other" was new: rewritten */
	a = b;
	define_ok(s, "api", "100/s", 10, 3 * S);
	define_ok(s, "other", "1/s", 0, 3 * S);
	assert_int_equal(stat(f->file, &b), 0);
	assert_true(a.st_ino == b.st_ino);
	assert_true(a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec);
	/* and an unchanged define did not refill or reset the bucket */
	assert_int_equal(take(s, "api", 10, 10, 3 * S, NULL), 10);
	define_ok(s, "api", "100/s", 10, 3 * S);
	assert_int_equal(take(s, "api", 1, 1, 3 * S, NULL), 0);
	/* a change is written: a new file renamed over the old */
	define_ok(s, "api", "200/s", 10, 3 * S);
	assert_int_equal(stat(f->file, &b), 0);
	assert_true(a.st_ino != b.st_ino);
	mq_sbuckets_close(s);
}

/* A write that fails leaves memory and disk as they were. */
static void test_failed_write(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	mq_err_t err;
	define_ok(s, "api", "100/s", 10, 0);
	/* the state directory replaced by a file: every write fails */
	char moved[200];
	snprintf(moved, sizeof moved, "%s.moved", f->dir);
	assert_int_equal(rename(f->dir, moved), 0);
	write_file(f->dir, "in the way\n");
	mq_rate_t r = rate_of("1/s");
	assert_int_equal(mq_sbuckets_define(s, "new", &r, 1, 0, &err), -MQ_EIO);
	assert_non_null(strstr(err.msg, f->dir));
	assert_int_equal(mq_sbuckets_count(s), 1);
	uint64_t g, w;
	assert_int_equal(mq_sbuckets_take(s, "new", 1, 1, 0, &g, &w, &err), -MQ_ENOENT);
	assert_int_equal(mq_sbuckets_define(s, "api", &r, 1, 0, &err), -MQ_EIO);
	assert_int_equal(take(s, "api", 100, 1, 0, NULL), 10); /* still 100/s, burst 10 */
	assert_int_equal(take(s, "api", 100, 1, 0, &w), 0);
	assert_int_equal(w, 10 * MS);
	mq_sbuckets_close(s);
	assert_int_equal(unlink(f->dir), 0);
	assert_int_equal(rename(moved, f->dir), 0);
	s = open_ok(f);
	assert_int_equal(mq_sbuckets_count(s), 1);
	mq_sbuckets_close(s);
}

/* Each damaged file: refused with -MQ_ECORRUPT, naming the file, the
 * byte where it goes wrong and what to do. */
static void test_corrupt(void **state)
{
	fx_t *f = *state;
	static const struct {
		const char *text;
		size_t byte;
	} cases[] = {
		{"", 0},
		{"hello\n", 0},
		{"mq-buckets x\n", 11},
		{"mq-buckets 1\n", 13},                                    /* no end line */
		{"mq-buckets 1\nbucket a 1 10 5\n", 29},                   /* cut short */
		{"mq-buckets 1\nbucket a 1 10 5\nend 2\n", 29},            /* count */
		{"mq-buckets 1\nbucket a 1 10 5\nend 1\nx", 35},           /* after end */
		{"mq-buckets 1\nbucket a 1 10\nend 1\n", 13 + 11},         /* a field missing */
		{"mq-buckets 1\nbucket a 1 1x 5\nend 1\n", 13 + 11},       /* junk in a number */
		{"mq-buckets 1\nbucket a/b 1 10 5\nend 1\n", 13},          /* bad name */
		{"mq-buckets 1\nbucket a 0 10 5\nend 1\n", 13},            /* rate 0 */
		{"mq-buckets 1\nbucket a 2 10 5\nend 1\n", 13},            /* not in lowest terms */
		{"mq-buckets 1\nbucket a 1 10 0\nend 1\n", 13},            /* burst 0 */
		{"mq-buckets 1\nbucket a 1 10 99999999999999999999\nend 1\n", 13 + 14}, /* overflow */
		{"mq-buckets 1\nbucket a 1 10 5\nbucket a 1 10 5\nend 2\n", 29}, /* twice */
		{"mq-buckets 1\nbuckets a 1 10 5\nend 1\n", 13},
		{"mq-buckets 1\nbucket a 1 10 5\r\nend 1\n", 13 + 14},
	};
	struct stat st;
	assert_int_equal(mkdir(f->dir, 0755), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mq_sbuckets_t *s = (void *)&st; /* not NULL: open must clear it */
		mq_err_t err;
		char want[256];
		write_file(f->file, cases[i].text);
		assert_int_equal(stat(f->file, &st), 0);
		assert_int_equal(mq_sbuckets_open(f->dir, NULL, NULL, &s, &err), -MQ_ECORRUPT);
		assert_null(s);
		snprintf(want, sizeof want, "shared bucket definitions '%s', byte %zu (", f->file, cases[i].byte);
		if (!strstr(err.msg, want))
			fail_msg("case %zu: %s", i, err.msg);
		assert_non_null(strstr(err.msg, "move the file aside and restart mq-serve"));
	}
	/* a newer format: says so */
	mq_sbuckets_t *s;
	mq_err_t err;
	write_file(f->file, "mq-buckets 3\nwhatever\n");
	assert_int_equal(mq_sbuckets_open(f->dir, NULL, NULL, &s, &err), -MQ_ECORRUPT);
	assert_non_null(strstr(err.msg, "format 3 is not known"));
	/* not a file */
	assert_int_equal(unlink(f->file), 0);
	assert_int_equal(mkdir(f->file, 0755), 0);
	assert_int_equal(mq_sbuckets_open(f->dir, NULL, NULL, &s, &err), -MQ_ECORRUPT);
	assert_non_null(strstr(err.msg, "not a shared bucket definitions file"));
	assert_int_equal(rmdir(f->file), 0);
	/* and a good one hand-written */
	write_file(f->file, "mq-buckets 1\nbucket a 1 10 5\nbucket end 1 10 5\nend 2\n");
	s = open_ok(f);
	assert_int_equal(take(s, "end", 100, 1, 0, NULL), 5);
	mq_sbuckets_close(s);
}

static char reported[1024];
static int nreports;

static void on_report(void *ctx, const char *msg)
{
	(void)ctx;
	snprintf(reported, sizeof reported, "%s", msg);
	nreports++;
}

/* Opened by the broker (with a report callback): the definitions before
 * the damage are kept, the file is rewritten with them, and the loss is
 * reported once, naming the file, the byte and what was kept. */
static mq_sbuckets_t *open_salvaged(const fx_t *f, int reports)
{
	mq_sbuckets_t *s;
	mq_err_t err;
	nreports = 0;
	reported[0] = 0;
	if (mq_sbuckets_open(f->dir, on_report, NULL, &s, &err))
		fail_msg("open: %s", err.msg);
	assert_int_equal(nreports, reports);
	if (reports)
		assert_non_null(strstr(reported, f->file));
	return s;
}

static void test_damage_salvaged(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	define_ok(s, "a", "100/s", 10, 0);
	define_ok(s, "b", "100/s", 20, 0);
	define_ok(s, "c", "100/s", 30, 0);
	mq_sbuckets_close(s);
	char text[512], want[64];
	FILE *fp = fopen(f->file, "r");
	size_t n = fread(text, 1, sizeof text - 1, fp);
	fclose(fp);
	text[n] = 0;
	/* One digit of b's burst changed: a valid-looking line, caught by its CRC. */
	size_t at_b = (size_t)(strstr(text, "bucket b") - text);
	char *digit = strstr(text + at_b, " 20 ") + 1;
	*digit = '7';
	write_file(f->file, text);
	s = open_salvaged(f, 1);
	snprintf(want, sizeof want, "byte %zu", at_b);
	assert_non_null(strstr(reported, want));
	assert_non_null(strstr(reported, "kept 1 bucket"));
	assert_int_equal(mq_sbuckets_count(s), 1);
	assert_int_equal(take(s, "a", 100, 1, 0, NULL), 10);
	mq_err_t err;
	uint64_t granted, wait;
	assert_int_equal(mq_sbuckets_take(s, "b", 1, 1, 0, &granted, &wait, &err), -MQ_ENOENT);
	mq_sbuckets_close(s);
	/* The file now holds what was kept: the next start is silent. */
	s = open_salvaged(f, 0);
	assert_int_equal(mq_sbuckets_count(s), 1);
	define_ok(s, "b", "100/s", 20, 0);
	define_ok(s, "c", "100/s", 30, 0);
	mq_sbuckets_close(s);

	/* Cut in the middle of the last line. */
	struct stat st;
	assert_int_equal(stat(f->file, &st), 0);
	assert_int_equal(truncate(f->file, st.st_size - 20), 0);
	s = open_salvaged(f, 1);
	assert_non_null(strstr(reported, "kept 2 buckets"));
	assert_int_equal(mq_sbuckets_count(s), 2);
	mq_sbuckets_close(s);

	/* Garbage, and an empty file: nothing kept, said. */
	write_file(f->file, "\x01\x02 not at all a bucket file \xff\n");
	s = open_salvaged(f, 1);
	assert_non_null(strstr(reported, "kept 0 buckets"));
	assert_int_equal(mq_sbuckets_count(s), 0);
	mq_sbuckets_close(s);
	write_file(f->file, "");
	s = open_salvaged(f, 1);
	assert_non_null(strstr(reported, "kept 0 buckets"));
	mq_sbuckets_close(s);
	s = open_salvaged(f, 0);
	mq_sbuckets_close(s);

	/* Format 1 (no checksums) is still read, and rewritten as format 2
	 * at the next define. */
	write_file(f->file, "mq-buckets 1\nbucket a 1 10 5\nend 1\n");
	s = open_salvaged(f, 0);
	assert_int_equal(mq_sbuckets_count(s), 1);
	mq_sbuckets_close(s);
	/* A newer format is not damage: still refused, saying what to do. */
	write_file(f->file, "mq-buckets 3\nwhatever\n");
	assert_int_equal(mq_sbuckets_open(f->dir, on_report, NULL, &s, &err), -MQ_ECORRUPT);
	assert_non_null(strstr(err.msg, "format 3 is not known"));
}

static void count_cb(void *ctx, const char *name, const mq_rate_t *rate, uint64_t burst, int64_t tokens)
{
	uint64_t *sum = ctx;
	(void)name;
	assert_int_equal(rate->tokens, 1);
	sum[0]++;
	sum[1] += burst;
	sum[2] += (uint64_t)tokens;
}

/* Past the first table and its doublings; every bucket still found. */
static void test_many(void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	char name[32];
	mq_rate_t r = rate_of("1/s");
	mq_err_t err;
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "b%u", i);
		assert_int_equal(mq_sbuckets_define(s, name, &r, i % 7 + 1, 0, &err), 0);
	}
	assert_int_equal(mq_sbuckets_count(s), 1000);
	for (unsigned i = 0; i < 1000; i += 3) {
		snprintf(name, sizeof name, "b%u", i);
		assert_int_equal(take(s, name, 100, 1, 0, NULL), i % 7 + 1);
	}
	uint64_t sum[3] = {0};
	mq_sbuckets_each(s, count_cb, sum);
	assert_int_equal(sum[0], 1000);
	mq_sbuckets_close(s);
	s = open_ok(f);
	assert_int_equal(mq_sbuckets_count(s), 1000);
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "b%u", i);
		assert_int_equal(take(s, name, 100, 1, 0, NULL), i % 7 + 1);
	}
	memset(sum, 0, sizeof sum);
	mq_sbuckets_each(s, count_cb, sum);
	assert_int_equal(sum[2], 0); /* all taken */
	mq_sbuckets_close(s);
}

/* Several takers on one bucket, each with its own want, min and clock
 * jitter, each waiting the hint it was given: together they never get
 * more than BURST + RATE x t at any moment, and get within 1% of it. */
static void run_sharing(const char *name, const char *rate, uint64_t burst, unsigned takers, void **state)
{
	fx_t *f = *state;
	mq_sbuckets_t *s = open_ok(f);
	mq_rate_t r = rate_of(rate);
	define_ok(s, name, rate, burst, 1000); /* new: full */
	uint64_t due[16], total = 0, t0 = 1000, now = t0, end = t0 + 20 * S;
	assert_true(takers <= 16);
	for (unsigned i = 0; i < takers; i++)
		due[i] = t0 + (uint64_t)(rand() % 1000);
	while (now < end) {
		/* the taker due first goes next */
		unsigned k = 0;
		for (unsigned i = 1; i < takers; i++)
			if (due[i] < due[k])
				k = i;
		now = due[k] > now ? due[k] : now;
		uint64_t want = (uint64_t)(rand() % 8) + 1, min = (uint64_t)(rand() % (int)want) + 1, w;
		if (min > burst)
			min = burst;
		if (want < min)
			want = min;
		uint64_t g = take(s, name, want, min, now, &w);
		assert_true(g == 0 || (g >= min && g <= want));
		total += g;
		/* never above the line: total * per_ns <= burst * per_ns + tokens * t */
		unsigned __int128 line = (unsigned __int128)burst * r.per_ns + (unsigned __int128)r.tokens * (now - t0);
		assert_true((unsigned __int128)total * r.per_ns <= line);
		/* a late wake-up of up to 100 us, as a real sleep has */
		due[k] = now + w + (uint64_t)(rand() % 100000);
	}
	uint64_t ideal = (uint64_t)(((unsigned __int128)burst * r.per_ns + (unsigned __int128)r.tokens * (now - t0)) /
				    r.per_ns);
	/* less by what the takers' minimums can leave in the bucket */
	if (total + ideal / 100 + 8 < ideal)
		fail_msg("%s burst %llu, %u takers: %llu of %llu", rate, (unsigned long long)burst, takers,
			 (unsigned long long)total, (unsigned long long)ideal);
	mq_sbuckets_close(s);
}

static void test_sharing(void **state)
{
	srand(7);
	run_sharing("a", "50/s", 10, 2, state);
	run_sharing("b", "1000/s", 20, 5, state);
	run_sharing("c", "100000/s", 100, 16, state);
	run_sharing("d", "2.5/s", 1, 3, state);
	run_sharing("e", "7/m", 8, 4, state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_define_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_takes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_take, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extreme_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unchanged_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_salvaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sharing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
