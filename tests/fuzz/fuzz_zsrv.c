/* fuzz_zsrv.c -- what a client sends mq-serve's own listener
 * (lib/zsrv.c): its greeting, READY, then frames and commands, over a
 * socketpair until the stream ends or the peer is dropped.  Each message
 * taken is read whole and answered, so replies and PONGs are queued and
 * written too (the peer never reads: they pile up as for a stuck one). */
#include <poll.h>
#include <unistd.h>

#include "fuzz.h"
#include "zsrv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (fuzz_stream(data, size, sv))
		return 0;
	mq_zsrv_opts_t o = {.max_frame = 4096, .max_queue = 8192};
	mq_zsrv_t *s = NULL;
	mq_err_t err;
	if (mq_zsrv_new(&o, &s, &err)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	if (mq_zsrv_adopt(s, sv[0], &err) == 0) {
		/* Every round reads or takes something, or the stream ends. */
		for (int round = 0; round < 20000 && mq_zsrv_peers(s); round++) {
			struct pollfd p[4];
			int n = mq_zsrv_poll(s, p, 4, mq_mono_ms());
			(void)poll(p, (nfds_t)n, 0);
			mq_zsrv_handle(s, p, n);
			const mq_zmtp_frame_t *f;
			int nf;
			uint64_t peer;
			while (mq_zsrv_recv(s, &peer, &f, &nf)) {
				mq_buf_t r[1] = {{0}};
				uint8_t sum = 0;
				for (int i = 0; i < nf; i++)
					for (size_t k = 0; k < f[i].len; k++)
						sum ^= ((const uint8_t *)f[i].p)[k];
				mq_buf_append(&r[0], &sum, 1);
				(void)mq_zsrv_send(s, peer, r, 1);
			}
			mq_zsrv_flush(s);
		}
	}
	mq_zsrv_close(s);
	close(sv[1]);
	return 0;
}
