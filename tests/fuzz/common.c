/* common.c -- helpers every fuzz target may use (fuzz.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

int fuzz_stream(const uint8_t *data, size_t size, int sv[2])
{
	/* Small inputs: all of it and the answers fit in the socket buffers. */
	if (size > 16384 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -1;
	if (size && write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	shutdown(sv[1], SHUT_WR);
	return 0;
}
