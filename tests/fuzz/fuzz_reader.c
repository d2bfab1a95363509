/* fuzz_reader.c -- records on standard input as mq-pub and the filters
 * read them: lines, NUL-separated, JSON and msgpack envelopes, with or
 * without a key delimiter, lines ending at a -D delimiter of one or
 * several bytes; each record read is written back out as
 * JSON, msgpack and a -F template, as a filter would.  The first byte
 * picks the format and the delimiter, the rest is the input. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "record.h"

static int null_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (null_fd < 0 && (null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
		return 0;
	static const mq_fmt_t fmts[] = {MQ_FMT_LINES, MQ_FMT_NUL, MQ_FMT_JSON, MQ_FMT_MSGPACK};
	mq_reader_opts_t ro = {.fmt = fmts[data[0] & 3], .max_record = 1 << 16, .name = "fuzz"};
	if ((data[0] & 4) && ro.fmt <= MQ_FMT_NUL)
		ro.key_delim = (data[0] & 8) ? "::" : "\t";
	/* lines: records end at a delimiter of one or several bytes (-D) */
	if ((data[0] & 16) && ro.fmt == MQ_FMT_LINES) {
		ro.rec_delim = (data[0] & 32) ? "<=>" : "|";
		ro.rec_delim_len = (data[0] & 32) ? 3 : 1;
	}
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
		close(fd);
		return 0;
	}
	lseek(fd, 0, SEEK_SET);
	mq_reader_t *r = NULL;
	mq_writer_t *w[3] = {NULL, NULL, NULL};
	/* small buffers: every flush path is taken, and each run stays cheap */
	mq_writer_opts_t wo[3] = {{.fmt = MQ_FMT_JSON, .buffer = 512}, {.fmt = MQ_FMT_MSGPACK, .buffer = 512},
				  {.fmt = MQ_FMT_TEMPLATE, .template = "%t %p %o %k %s %T %D %i %h %S\\n", .buffer = 512}};
	mq_err_t err;
	if (mq_reader_new(fd, &ro, &r, &err) == 0) {
		for (int i = 0; i < 3; i++)
			mq_writer_new(null_fd, &wo[i], &w[i], &err);
		mq_rec_t rec;
		int rc;
		for (int n = 0; n < 100000 && (rc = mq_reader_get(r, &rec, &err)) != 0; n++) {
			if (rc < 0) {
				if (mq_reader_eof(r))
					break;
				continue;
			}
			for (int i = 0; i < 3; i++)
				if (w[i])
					mq_writer_put_rec(w[i], &rec, &err);
		}
		for (int i = 0; i < 3; i++) {
			if (w[i])
				mq_writer_flush(w[i], &err);
			mq_writer_free(w[i]);
		}
	}
	mq_reader_free(r);
	close(fd);
	return 0;
}
