/* fuzz_batch.c -- a record batch as the broker checks it on produce and
 * a consumer walks it after a fetch: header, CRC and record checks, the
 * record iterator and each record's headers.  The input is tried as it
 * is and again with its CRC made right, so the fuzzer gets past the CRC
 * to the record decoding behind it. */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "fuzz.h"

static void walk(const uint8_t *data, size_t size)
{
	mq_batch_iter_t it;
	mq_record_t r;
	mq_err_t err;
	if (mq_batch_iter_init(&it, data, size, &err) != 0)
		return;
	while (mq_batch_iter_next(&it, &r) > 0) {
		const uint8_t *p = r.headers;
		mq_header_t hd;
		while (p && mq_header_next(&p, r.headers_end, &hd) > 0)
			;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mq_batch_hdr_t h;
	mq_err_t err;
	mq_batch_hdr_decode(data, size, &h, &err);
	mq_batch_check(data, size, 1 << 20, &err);
	walk(data, size);
	if (size < MQ_BATCH_HEADER)
		return 0;
	uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	mq_put_u32(copy + 8, (uint32_t)size);
	mq_put_u32(copy + 12, mq_batch_crc(copy, size));
	mq_batch_check(copy, size, 1 << 20, &err);
	walk(copy, size);
	free(copy);
	return 0;
}
