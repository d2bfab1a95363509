/* fuzz_template.c -- mq-sub -F templates: the text up to the first NUL
 * byte is the template, what follows it the message's value and key. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "record.h"

static int null_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (null_fd < 0 && (null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
		return 0;
	const uint8_t *nul = memchr(data, 0, size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	char *tmpl = fuzz_cstr(data, tlen);
	if (!tmpl)
		return 0;
	mq_writer_opts_t wo = {.fmt = MQ_FMT_TEMPLATE, .template = tmpl, .buffer = 64};
	mq_writer_t *w;
	mq_err_t err;
	if (mq_writer_new(null_fd, &wo, &w, &err) == 0) {
		/* a real record, built and read back as mq-sub gets one */
		const uint8_t *rest = nul ? nul + 1 : data + size;
		size_t rlen = (size_t)(data + size - rest);
		mq_header_t hd = {(const uint8_t *)"h", 1, rest, rlen / 2};
		mq_buf_t buf = {0};
		mq_batch_builder_t b;
		mq_batch_iter_t it;
		mq_record_t rec;
		mq_batch_begin(&b, &buf);
		if (mq_batch_add(&b, 1700000000000, rest, rlen / 3, rest, rlen, rest, rlen / 4, &hd, 1) == 0 &&
		    mq_batch_iter_init(&it, buf.p, mq_batch_finish(&b), &err) == 0 && mq_batch_iter_next(&it, &rec) > 0)
			mq_writer_put(w, "topic", 3, &rec, &err);
		mq_buf_free(&buf);
		mq_writer_flush(w, &err);
		mq_writer_free(w);
	}
	free(tmpl);
	return 0;
}
