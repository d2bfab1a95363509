/* fuzz_state.c -- the broker's state files as it loads them at start:
 * the first input byte picks the file, the rest is its content.
 *   0  DIR/state/dedup         the dedup window's journal (seen.h)
 *   1  DIR/state/buckets       shared bucket definitions (sbucket.h)
 *   2  DIR/state/lag-history   the lag samples (group.h)
 *   3  DIR/state/offsets/...   the committed offsets log (group.h), with
 *                              each batch's length and CRC made right
 *   4  DIR/state/txn/...       the transaction log (txn.h), the same way;
 *                              its commits are finished into a topic 't'
 *   5  an mq-dedup --state file (seen.h with confirm, no report: damage
 *      refused), in a boot whose id is 16 zero bytes, so a mark can
 *      match it and take entries back
 * Each is loaded into a fresh object and closed again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "fuzz.h"
#include "group.h"
#include "sbucket.h"
#include "seen.h"
#include "store.h"
#include "txn.h"

static char dir[64], data_dir[96], state[128];
static mq_store_t *store;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	return remove(p);
}

static void on_report(void *ctx, const char *msg)
{
	(void)ctx;
	(void)msg;
}

static void put(const char *path, const uint8_t *p, size_t n)
{
	FILE *fp = fopen(path, "wb");
	if (!fp || fwrite(p, 1, n, fp) != n)
		abort();
	fclose(fp);
}

/* p[0..n) as the first segment of the log state/name, with each batch's
 * length and CRC made right.  -1: out of memory. */
static int put_log(const char *name, const uint8_t *p, size_t n)
{
	char path[256], seg[300];
	snprintf(path, sizeof(path), "%s/%s", state, name);
	mkdir(path, 0755);
	snprintf(seg, sizeof(seg), "%s/00000000000000000000.log", path);
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		return -1;
	memcpy(copy, p, n);
	fuzz_fix_crcs(copy, n);
	put(seg, copy, n);
	free(copy);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mq_err_t err;
	if (size < 1)
		return 0;
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/mq-fuzz-state-XXXXXX");
		if (!mkdtemp(dir))
			abort();
		snprintf(data_dir, sizeof(data_dir), "%s/data", dir);
		snprintf(state, sizeof(state), "%s/state", data_dir);
		if (mq_store_open(data_dir, NULL, &store, &err))
			abort();
		mq_topic_meta_t meta = {.partitions = 2};
		mq_store_topic_create(store, "t", &meta, &err);
	}
	char path[256];
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 6) {
	case 0: {
		snprintf(path, sizeof(path), "%s/dedup", state);
		put(path, p, n);
		mq_seen_opts_t so = {.max_count = 1000, .max_age_ms = 120000, .state = path, .report = on_report};
		mq_seen_t *s;
		if (mq_seen_open(&so, 1700000000000, &s, &err) == 0)
			mq_seen_close(s);
		unlink(path);
		break;
	}
	case 5: {
		static const uint8_t boot[16];
		snprintf(path, sizeof(path), "%s/seen", state);
		put(path, p, n);
		mq_seen_opts_t so = {.max_count = 1000, .state = path, .confirm = 1, .boot_id = boot};
		mq_seen_t *s;
		if (mq_seen_open(&so, 1700000000000, &s, &err) == 0)
			mq_seen_close(s);
		unlink(path);
		break;
	}
	case 1: {
		snprintf(path, sizeof(path), "%s/buckets", state);
		put(path, p, n);
		mq_sbuckets_t *b;
		if (mq_sbuckets_open(state, on_report, NULL, &b, &err) == 0)
			mq_sbuckets_close(b);
		unlink(path);
		break;
	}
	case 2:
	case 3: {
		if (data[0] % 5 == 2) {
			snprintf(path, sizeof(path), "%s/lag-history", state);
			put(path, p, n);
		} else if (put_log("offsets", p, n)) {
			return 0;
		}
		mq_log_opts_t o;
		mq_log_opts_default(&o);
		mq_groups_t *g;
		if (mq_groups_open(state, &o, store, on_report, NULL, &g, &err) == 0)
			mq_groups_close(g);
		snprintf(path, sizeof(path), "%s/offsets", state);
		nftw(path, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		snprintf(path, sizeof(path), "%s/lag-history", state);
		unlink(path);
		break;
	}
	case 4: {
		if (put_log("txn", p, n))
			return 0;
		snprintf(path, sizeof(path), "%s/txn", state);
		mq_txn_opts_t o = {.report = on_report};
		mq_log_opts_default(&o.log);
		mq_txns_t *t;
		if (mq_txns_open(state, store, &o, &t, &err) == 0)
			mq_txns_close(t);
		nftw(path, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		break;
	}
	}
	return 0;
}
