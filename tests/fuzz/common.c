/* common.c -- helpers every fuzz target may use (fuzz.h). */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "fuzz.h"

char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s) {
		memcpy(s, data, size);
		s[size] = 0;
	}
	return s;
}

void fuzz_fix_crcs(uint8_t *p, size_t n)
{
	for (size_t pos = 0; n - pos >= MQ_BATCH_HEADER;) {
		uint32_t len = mq_get_u32(p + pos + 8);
		if (len < MQ_BATCH_HEADER || len > n - pos)
			break;
		mq_put_u32(p + pos + 12, mq_batch_crc(p + pos, len));
		pos += len;
	}
}
