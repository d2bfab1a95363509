/* fuzz_parse.c -- the parsers of what people type: durations, sizes,
 * numbers, offsets (-o, --to), rates (-r), identities (--by) and
 * formats (-f).  The first byte picks the parser, the rest is the text. */
#include <stdlib.h>

#include "bucket.h"
#include "client.h"
#include "filter.h"
#include "fuzz.h"
#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *s = fuzz_cstr(data + 1, size - 1);
	if (!s)
		return 0;
	mq_err_t err;
	int64_t ms;
	uint64_t u;
	mq_offset_spec_t off;
	mq_rate_t rate;
	mq_ident_t id;
	mq_fmt_t fmt;
	switch (data[0] % 7) {
	case 0: mq_parse_duration_ms(s, &ms, &err); break;
	case 1: mq_parse_size(s, &u, &err); break;
	case 2: mq_parse_u64(s, &u, &err); break;
	case 3: mq_offset_spec_parse(s, 1700000000000, &off, &err); break;
	case 4:
		if (mq_rate_parse(s, &rate, &err) == 0)
			mq_rate_per_second(&rate);
		break;
	case 5: mq_ident_parse("--by", s, 1, &id, &err); break;
	case 6: mq_fmt_parse(s, &fmt, &err); break;
	}
	free(s);
	return 0;
}
