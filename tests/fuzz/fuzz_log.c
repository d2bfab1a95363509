/* fuzz_log.c -- a partition directory whose segment holds these bytes,
 * opened as mq-serve opens it after a crash (recovery of the tail), then
 * read from its start to its end as fetches read it, and checked and
 * walked offline as mq-admin verify and dump do.  The first input byte
 * is flags: bit 0 set keeps the bytes as they are; clear, each batch's
 * length and CRC found in the bytes is made right first, so the fuzzer
 * reaches the decoding behind the CRC. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "fuzz.h"
#include "log.h"

static char dir[64];

static void on_fault(void *ctx, const char *msg)
{
	(void)ctx;
	(void)msg;
}

static int on_batch(void *ctx, const uint8_t *b, size_t len, const char *seg, uint64_t pos)
{
	(void)ctx, (void)b, (void)len, (void)seg, (void)pos;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/mq-fuzz-log-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	char seg[128];
	snprintf(seg, sizeof(seg), "%s/00000000000000000000.log", dir);
	uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (!(data[0] & 1))
		fuzz_fix_crcs(copy, size - 1);
	FILE *fp = fopen(seg, "wb");
	if (!fp || fwrite(copy, 1, size - 1, fp) != size - 1)
		abort();
	fclose(fp);
	free(copy);
	mq_err_t err;
	mq_log_verify(dir, on_fault, NULL, &err);
	mq_log_scan(dir, 0, on_batch, on_fault, NULL, &err);
	mq_log_opts_t o;
	mq_log_opts_default(&o);
	mq_log_t *log;
	if (mq_log_open(dir, &o, 0, &log, &err) == 0) {
		mq_buf_t buf = {0};
		uint64_t off = mq_log_start(log);
		for (int i = 0; i < 1000 && off < mq_log_end(log); i++) {
			buf.len = 0;
			long long got = mq_log_read(log, off, 1 << 16, &buf, &err);
			if (got <= 0)
				break;
			mq_batch_hdr_t h;
			if (mq_batch_hdr_decode(buf.p, buf.len, &h, &err) != 0 || h.base_offset + h.count <= off)
				break;
			off = h.base_offset + h.count;
		}
		mq_buf_free(&buf);
		mq_log_close(log);
	}
	/* the next input starts from an empty directory */
	char p[128];
	static const char *const ext[] = {"log", "idx", "tix"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/00000000000000000000.%s", dir, ext[i]);
		unlink(p);
	}
	return 0;
}
