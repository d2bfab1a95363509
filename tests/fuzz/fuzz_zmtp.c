/* fuzz_zmtp.c -- what a peer sends a ZMTP client (lib/zmtp.c): the
 * greeting, the handshake's commands, then frames and commands, read
 * through a socketpair until the stream ends or is refused. */
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "zmtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	/* Small inputs: all of it and our answers fit in the socket buffers. */
	if (size > 16384 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return 0;
	if (size && write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	mq_zmtp_t *z = NULL;
	mq_err_t err;
	if (mq_zmtp_attach(sv[0], mq_mono_ms() + 1000, 4096, &z, &err) == 0) {
		const mq_zmtp_frame_t *f;
		int n, rc;
		while ((rc = mq_zmtp_recv(z, &f, &n, &err)) == 1) {
			uint8_t sum = 0; /* every byte of every frame read */
			for (int i = 0; i < n; i++)
				for (size_t k = 0; k < f[i].len; k++)
					sum ^= ((const uint8_t *)f[i].p)[k];
			if (sum == 0x5a || n > 1) /* the bytes decide: reading them is not optimised away */
				(void)mq_zmtp_ready(z);
		}
		mq_zmtp_close(z);
	}
	close(sv[1]);
	return 0;
}
