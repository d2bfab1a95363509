/*
 * test_seen.c -- unit tests for lib/seen.c (and the htab.h index under
 * it): the set against a plain model under count and age windows, with
 * growth, eviction and deletion runs wrapping the table; the state file
 * across reopen, a torn tail (cut, not refused), corruption in the
 * header and in an early block (refused with the byte, then reset, or
 * with a report callback kept up to the damage and reported), a
 * missing directory, a second holder, and the size bound of rewrites;
 * the delivery mark (confirm): what no confirm covered is taken back
 * after a kill in the same boot, not after a reboot, not lost by a
 * rewrite; a version 1 file is read and rewritten with a mark.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "seen.h"

static char dir[256];
static char path[300];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/test_seen.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/state", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

static mq_hash128_t key_of(const mq_seen_t *s, uint64_t id)
{
	return mq_seen_hash(s, &id, sizeof id);
}

static int add(mq_seen_t *s, uint64_t id, int64_t now)
{
	return mq_seen_add(s, key_of(s, id), now, NULL);
}

static off_t file_size(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return st.st_size;
}

/* Count window: exactly the last N distinct identities are known, over a
 * stream with repeats, past many doublings and evictions. */
static void test_count_window_model(void **state)
{
	const uint64_t N = 5000, M = 60000;
	mq_seen_opts_t o = {.max_count = N};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	/* model: first_seq[id] = sequence number of its first add, 0 = never */
	uint64_t *seq_of = calloc(M, sizeof *seq_of), seq = 0;
	srand(7);
	for (int i = 0; i < 400000; i++) {
		uint64_t id = (uint64_t)rand() % M;
		int known = seq_of[id] && seq - seq_of[id] < N;
		int got = add(s, id, 0);
		assert_int_equal(got, known);
		if (!known)
			seq_of[id] = ++seq;
	}
	assert_int_equal(mq_seen_count(s), N);
	free(seq_of);
	mq_seen_close(s);
	mq_seen_close(NULL);
}

static void test_age_window(void **state)
{
	mq_seen_opts_t o = {.max_count = 100, .max_age_ms = 1000};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(add(s, 1, 0), 0);
	assert_int_equal(add(s, 2, 500), 0);
	assert_int_equal(add(s, 1, 999), 1);  /* a repeat does not refresh */
	assert_int_equal(add(s, 1, 1000), 0); /* forgotten at 1000 ms: new again */
	assert_int_equal(add(s, 2, 1499), 1);
	assert_int_equal(add(s, 2, 1500), 0);
	assert_int_equal(mq_seen_count(s), 2);
	assert_int_equal(mq_seen_forced(s), 0);
	/* contains: asks without adding, and sees the window move */
	assert_int_equal(mq_seen_contains(s, key_of(s, 2), 1501), 1);
	assert_int_equal(mq_seen_contains(s, key_of(s, 7), 1501), 0);
	assert_int_equal(mq_seen_contains(s, key_of(s, 7), 1501), 0);
	assert_int_equal(mq_seen_count(s), 2);
	/* The count cap still holds, and is counted when it forgets early. */
	for (uint64_t i = 100; i < 300; i++)
		assert_int_equal(add(s, i, 1600), 0);
	assert_int_equal(mq_seen_count(s), 100);
	assert_true(mq_seen_forced(s) >= 100);
	mq_seen_close(s);
}

static void test_state_persists(void **state)
{
	mq_seen_opts_t o = {.max_count = 1000, .state = path};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	for (uint64_t i = 0; i < 300; i++)
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	assert_int_equal(add(s, 9999, 0), 0); /* not synced: lost with the process */
	mq_seen_close(s);

	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(mq_seen_count(s), 300);
	for (uint64_t i = 0; i < 300; i++)
		assert_int_equal(add(s, i, 0), 1);
	assert_int_equal(add(s, 9999, 0), 0);
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	mq_seen_close(s);

	/* A smaller window at reopen keeps the newest. */
	o.max_count = 10;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(mq_seen_count(s), 10);
	assert_int_equal(add(s, 9999, 0), 1);
	assert_int_equal(add(s, 299, 0), 1);
	assert_int_equal(add(s, 0, 0), 0);
	mq_seen_close(s);
}

/* Taking back the newest additions (ids of batches a failed sync cut
 * off): gone from the set and from the journal, older ones kept, and
 * the set works on as before, also across a wrapped ring. */
static void test_unadd(void **state)
{
	mq_seen_opts_t o = {.max_count = 4096, .state = path};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	for (uint64_t i = 0; i < 5000; i++) /* the ring wraps: 904 evicted */
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	for (uint64_t i = 5000; i < 5003; i++)
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_unadd(s, 2), 2);
	assert_int_equal(mq_seen_count(s), 4096 - 2); /* what 5001 and 5002 evicted stays evicted */
	assert_int_equal(mq_seen_contains(s, key_of(s, 5000), 0), 1);
	assert_int_equal(mq_seen_contains(s, key_of(s, 5001), 0), 0);
	assert_int_equal(mq_seen_contains(s, key_of(s, 5002), 0), 0);
	assert_int_equal(mq_seen_contains(s, key_of(s, 4999), 0), 1);
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	mq_seen_close(s);
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(mq_seen_contains(s, key_of(s, 5000), 0), 1);
	assert_int_equal(mq_seen_contains(s, key_of(s, 5001), 0), 0);
	assert_int_equal(add(s, 5002, 0), 0); /* a retry is new again */
	/* more than the set holds: all of it, and no further */
	uint64_t n = mq_seen_count(s);
	assert_int_equal(mq_seen_unadd(s, 1 << 20), n);
	assert_int_equal(mq_seen_count(s), 0);
	assert_int_equal(add(s, 7, 0), 0);
	assert_int_equal(add(s, 7, 0), 1);
	mq_seen_close(s);
}

/* Growing a ring that has wrapped around (after age evictions moved its
 * head): every identity stays known, in order of age. */
static void test_grow_wrapped(void **state)
{
	mq_seen_opts_t o = {.max_count = 100000, .max_age_ms = 1000};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	for (uint64_t i = 0; i < 3000; i++)
		assert_int_equal(add(s, i, 0), 0);
	/* at 1000 ms the first 3000 are forgotten: the ring's head is at 3000 */
	for (uint64_t i = 10000; i < 20000; i++)
		assert_int_equal(add(s, i, 1000 + (int64_t)(i - 10000) / 100), 0);
	assert_int_equal(mq_seen_count(s), 10000);
	for (uint64_t i = 10000; i < 20000; i++)
		assert_int_equal(mq_seen_contains(s, key_of(s, i), 1099), 1);
	for (uint64_t i = 0; i < 3000; i++)
		assert_int_equal(mq_seen_contains(s, key_of(s, i), 1099), 0);
	/* and they age out in the order they came */
	assert_int_equal(mq_seen_contains(s, key_of(s, 10099), 2000), 0);
	assert_int_equal(mq_seen_contains(s, key_of(s, 10100), 2000), 1);
	assert_int_equal(mq_seen_count(s), 9900);
	mq_seen_close(s);
}

static void test_age_across_restart(void **state)
{
	mq_seen_opts_t o = {.max_count = 1000, .max_age_ms = 1000, .state = path};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 10000, &s, NULL), 0);
	assert_int_equal(add(s, 1, 10000), 0);
	assert_int_equal(add(s, 2, 10600), 0);
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	mq_seen_close(s);
	assert_int_equal(mq_seen_open(&o, 11200, &s, NULL), 0);
	assert_int_equal(mq_seen_count(s), 1);
	assert_int_equal(add(s, 2, 11200), 1);
	assert_int_equal(add(s, 1, 11200), 0);
	mq_seen_close(s);
}

static void fill(mq_seen_opts_t *o, uint64_t n, int syncs)
{
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(o, 0, &s, NULL), 0);
	for (uint64_t i = 0; i < n; i++) {
		add(s, i, 0);
		if (syncs && i % (n / syncs) == 0)
			assert_int_equal(mq_seen_sync(s, NULL), 0);
	}
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	mq_seen_close(s);
}

static void test_torn_tail_is_cut(void **state)
{
	mq_seen_opts_t o = {.max_count = 1000, .state = path};
	mq_seen_t *s;
	fill(&o, 100, 10);
	off_t size = file_size(path);
	assert_int_equal(truncate(path, size - 5), 0); /* a crash mid-write of the last block */
	mq_err_t err;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_true(mq_seen_count(s) >= 80 && mq_seen_count(s) < 100);
	assert_int_equal(add(s, 0, 0), 1);
	mq_seen_close(s);
	assert_true(file_size(path) < size - 5);
	/* A last block of zeros (size grown, data never written) is torn too. */
	int fd = open(path, O_WRONLY | O_APPEND);
	char zeros[100] = {0};
	assert_int_equal(write(fd, zeros, sizeof zeros), sizeof zeros);
	close(fd);
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	mq_seen_close(s);
}

static void flip(const char *p, off_t at)
{
	int fd = open(p, O_RDWR);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

static void test_corrupt_refused_then_reset(void **state)
{
	mq_seen_opts_t o = {.max_count = 1000000, .state = path};
	mq_seen_t *s;
	mq_err_t err;
	fill(&o, 200000, 4); /* several blocks, more than one largest block */
	flip(path, 100);     /* inside the first block's entry */
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), -MQ_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(err.msg, "is corrupt at byte 88"));
	assert_non_null(strstr(err.msg, path));
	flip(path, 100);
	/* The delivery mark is read only by those who confirm. */
	flip(path, 70);
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	mq_seen_close(s);
	o.confirm = 1;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), -MQ_ECORRUPT);
	assert_non_null(strstr(err.msg, "is corrupt at byte 56 (delivery mark"));
	o.confirm = 0;
	flip(path, 70);
	flip(path, 3); /* the header */
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), -MQ_ECORRUPT);
	assert_non_null(strstr(err.msg, "corrupt at byte 0"));
	o.reset = 1;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(mq_seen_count(s), 0);
	mq_seen_close(s);
	o.reset = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	mq_seen_close(s);
	/* An empty file is not a state file either. */
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), -MQ_ECORRUPT);
}

/* What a report callback was told: one line a damage. */
static char reported[2048];
static int nreports;

static void on_report(void *ctx, const char *msg)
{
	(void)ctx;
	snprintf(reported, sizeof reported, "%s", msg);
	nreports++;
}

static void write_bytes(const char *p, const void *b, size_t n)
{
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, n, f), n);
	fclose(f);
}

/* With a report callback (the broker's dedup window) damage is not
 * refused: the blocks before it are kept, the file is cut there, and
 * the loss is reported once, naming the file, the byte and the count. */
static void test_damage_salvaged(void **state)
{
	mq_seen_opts_t o = {.max_count = 1000000, .state = path, .report = on_report};
	mq_seen_t *s;
	mq_err_t err;
	char want[64];
	/* blocks: [0], [1..50000], [50001..100000], [100001..150000], [150001..199999] */
	const off_t b3 = 88 + (8 + 24) + 2 * (8 + 50000 * 24);
	fill(&o, 200000, 4);
	flip(path, b3 + 100);
	nreports = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(nreports, 1);
	assert_non_null(strstr(reported, path));
	snprintf(want, sizeof want, "byte %lld", (long long)b3);
	assert_non_null(strstr(reported, want));
	assert_non_null(strstr(reported, "kept 100001 ids"));
	assert_int_equal(mq_seen_count(s), 100001);
	assert_int_equal(add(s, 100000, 0), 1);  /* before the damage: known */
	assert_int_equal(add(s, 100001, 0), 0);  /* after it: forgotten */
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	mq_seen_close(s);
	/* Cut at the damage: the next open is clean and silent. */
	nreports = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(nreports, 0);
	assert_int_equal(mq_seen_count(s), 100002);
	mq_seen_close(s);

	/* A torn last block is a loss too. */
	assert_int_equal(truncate(path, file_size(path) - 5), 0);
	nreports = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(nreports, 1);
	assert_non_null(strstr(reported, "kept 100001 ids"));
	mq_seen_close(s);

	/* A damaged header: nothing can be trusted; an empty window, said. */
	flip(path, 20);
	nreports = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(nreports, 1);
	assert_non_null(strstr(reported, "header"));
	assert_non_null(strstr(reported, "kept 0 ids"));
	assert_int_equal(mq_seen_count(s), 0);
	assert_int_equal(add(s, 7, 0), 0);
	assert_int_equal(mq_seen_sync(s, NULL), 0);
	mq_seen_close(s);
	nreports = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(nreports, 0);
	assert_int_equal(mq_seen_count(s), 1);
	mq_seen_close(s);

	/* Garbage, and an empty file. */
	char junk[5000];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 7919 + 13);
	write_bytes(path, junk, sizeof junk);
	nreports = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(nreports, 1);
	assert_non_null(strstr(reported, "5000 bytes"));
	mq_seen_close(s);
	assert_int_equal(truncate(path, 0), 0);
	nreports = 0;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(nreports, 1);
	assert_non_null(strstr(reported, path));
	mq_seen_close(s);
}

static void test_missing_dir_and_busy(void **state)
{
	char p[400];
	mq_err_t err;
	mq_seen_t *s, *s2;
	snprintf(p, sizeof p, "%s/no/such/state", dir);
	mq_seen_opts_t o = {.state = p};
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), -MQ_ENOENT);
	assert_non_null(strstr(err.msg, "does not exist"));
	o.state = path;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(mq_seen_open(&o, 0, &s2, &err), -MQ_EBUSY);
	o.reset = 1;
	assert_int_equal(mq_seen_open(&o, 0, &s2, &err), -MQ_EBUSY);
	mq_seen_close(s);
	o.max_count = MQ_SEEN_MAX_COUNT + 1;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), -MQ_EINVAL);
}

/* The file never holds much more than twice the window. */
static void test_size_bound(void **state)
{
	const uint64_t N = 10000;
	mq_seen_opts_t o = {.max_count = N, .state = path};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	off_t bound = 88 + (off_t)(2 * N + 4096 + 1000) * 24 + 64 * 8;
	for (uint64_t i = 0; i < 20 * N; i++) {
		add(s, i, 0);
		if (i % 1000 == 999) {
			assert_int_equal(mq_seen_sync(s, NULL), 0);
			assert_true(file_size(path) <= bound);
		}
	}
	mq_seen_close(s);
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(mq_seen_count(s), N);
	assert_int_equal(add(s, 20 * N - 1, 0), 1);
	assert_int_equal(add(s, 20 * N - N, 0), 1);
	assert_int_equal(add(s, 20 * N - N - 1, 0), 0);
	mq_seen_close(s);
}

static const uint8_t boot_a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t boot_b[16] = {16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};

/* Opens path with confirm in the boot given and counts what it holds. */
static uint64_t count_after(const uint8_t *boot, uint64_t max)
{
	mq_seen_opts_t o = {.max_count = max, .state = path, .confirm = 1, .boot_id = boot};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	uint64_t n = mq_seen_count(s);
	mq_seen_close(s);
	return n;
}

/* With confirm: a kill -9 (a close without confirming) takes back, on
 * the next open in the same boot, what no confirm covered; in another
 * boot (the page cache may have lost the mark) everything is known. */
static void test_confirm(void **state)
{
	mq_seen_opts_t o = {.max_count = 1000, .state = path, .confirm = 1, .boot_id = boot_a};
	mq_seen_t *s;
	mq_err_t err;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_added(s), 10);
	assert_int_equal(mq_seen_sync(s, &err), 0);
	assert_int_equal(mq_seen_confirm(s, 6, &err), 0);
	mq_seen_close(s);
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	assert_int_equal(mq_seen_count(s), 6);
	assert_int_equal(add(s, 5, 0), 1);
	assert_int_equal(add(s, 6, 0), 0); /* taken back: new again */
	assert_int_equal(mq_seen_added(s), 1);
	/* Confirmed before the sync wrote them: the sync moves the mark. */
	for (uint64_t i = 7; i < 20; i++)
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_confirm(s, 100, &err), 0); /* beyond what was added: all */
	assert_int_equal(mq_seen_sync(s, &err), 0);
	mq_seen_close(s);
	assert_int_equal(count_after(boot_a, 1000), 20);
	/* Lowered again (a write that failed): back to what left. */
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	for (uint64_t i = 20; i < 30; i++)
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_sync(s, &err), 0);
	assert_int_equal(mq_seen_confirm(s, 8, &err), 0);
	assert_int_equal(mq_seen_confirm(s, 3, &err), 0);
	mq_seen_close(s);
	assert_int_equal(count_after(boot_a, 1000), 23);
	/* Another boot: the mark may be stale, so all is known; and the
	 * mark is then made this boot's, so a kill in it takes back again. */
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	for (uint64_t i = 30; i < 40; i++)
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_sync(s, &err), 0);
	mq_seen_close(s);
	assert_int_equal(count_after(boot_b, 1000), 33);
	o.boot_id = boot_b;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	for (uint64_t i = 40; i < 45; i++)
		assert_int_equal(add(s, i, 0), 0);
	assert_int_equal(mq_seen_sync(s, &err), 0);
	mq_seen_close(s);
	assert_int_equal(count_after(boot_b, 1000), 33);
	o.boot_id = boot_a;
	/* A reset starts with nothing to take back. */
	o.reset = 1;
	assert_int_equal(mq_seen_open(&o, 0, &s, &err), 0);
	mq_seen_close(s);
	assert_int_equal(count_after(boot_a, 1000), 0);
}

/* A rewrite (the size bound) keeps the unconfirmed additions unconfirmed. */
static void test_confirm_rewrite(void **state)
{
	mq_seen_opts_t o = {.max_count = 100, .state = path, .confirm = 1, .boot_id = boot_a};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	for (uint64_t i = 0; i < 5000; i++)
		add(s, i, 0);
	assert_int_equal(mq_seen_confirm(s, 4990, NULL), 0);
	assert_int_equal(mq_seen_sync(s, NULL), 0); /* 5000 entries for a set of 100: rewritten */
	assert_true(file_size(path) < 88 + 200 * (8 + 24));
	mq_seen_close(s);
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(mq_seen_count(s), 90);
	assert_int_equal(add(s, 4989, 0), 1);
	assert_int_equal(add(s, 4990, 0), 0);
	mq_seen_close(s);
}

/* A version 1 file (56-byte header, no mark) is read, all known, and
 * rewritten with a mark by a caller that confirms. */
static void test_version1(void **state)
{
	uint8_t b[56 + 8 + 24] = {0};
	mq_hashkey_t k = {0x0123456789abcdefull, 0xfedcba9876543210ull};
	uint64_t id = 42;
	mq_hash128_t h = mq_hash128(&k, &id, sizeof id);
	memcpy(b, "MQ-SEEN\n", 8);
	mq_put_u32(b + 8, 1);
	mq_put_u32(b + 12, 56);
	mq_put_u64(b + 16, 1000);
	mq_put_u64(b + 32, k.k0);
	mq_put_u64(b + 40, k.k1);
	mq_put_u32(b + 48, mq_crc32c(0, b, 48));
	mq_put_u32(b + 56, 1);
	mq_put_u64(b + 64, h.lo);
	mq_put_u64(b + 72, h.hi);
	mq_put_u32(b + 60, mq_crc32c(mq_crc32c(0, b + 56, 4), b + 64, 24));
	write_bytes(path, b, sizeof b);
	mq_seen_opts_t o = {.max_count = 1000, .state = path};
	mq_seen_t *s;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(add(s, 42, 0), 1);
	mq_seen_close(s);
	o.confirm = 1;
	o.boot_id = boot_a;
	assert_int_equal(mq_seen_open(&o, 0, &s, NULL), 0);
	assert_int_equal(mq_seen_count(s), 1);
	mq_seen_close(s);
	uint8_t hdr[16];
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, hdr, sizeof hdr, 0), sizeof hdr);
	close(fd);
	assert_int_equal(mq_get_u32(hdr + 8), 2);
	assert_int_equal(mq_get_u32(hdr + 12), 88);
	assert_int_equal(count_after(boot_a, 1000), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_window_model),
		cmocka_unit_test(test_age_window),
		cmocka_unit_test(test_grow_wrapped),
		cmocka_unit_test_setup_teardown(test_state_persists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unadd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_age_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_refused_then_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damage_salvaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_dir_and_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirm_rewrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version1, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
