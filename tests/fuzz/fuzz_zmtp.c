/* fuzz_zmtp.c -- what a peer sends a ZMTP client (lib/zmtp.c): the
 * greeting, the handshake's commands, then frames and commands, read
 * through a socketpair until the stream ends or is refused. */
#include <unistd.h>

#include "fuzz.h"
#include "zmtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (fuzz_stream(data, size, sv))
		return 0;
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
