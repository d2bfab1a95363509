/*
 * publish.c -- the smallest producer on the installed libmq, built by
 * tests/install.bats with `pkg-config --cflags --libs mq` only:
 *
 *     publish TOPIC VALUE [KEY]
 *
 * publishes one message to the broker in $MQ_BROKER and exits 0 once the
 * broker acknowledged it, else 1 with the library's message on stderr.
 */
#include <mq/client.h>
#include <mq/mq.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, const mq_err_t *err)
{
	fprintf(stderr, "publish: %s: %s\n", what, err->msg);
	return 1;
}

int main(int argc, char **argv)
{
	mq_client_opts_t o = {.endpoint = NULL, .timeout_ms = 5000, .name = "publish"};
	mq_client_t *c = NULL;
	mq_producer_t *p = NULL;
	mq_batch_builder_t b;
	mq_buf_t buf = {0};
	mq_producer_stats_t st;
	mq_err_t err = {0};
	uint32_t parts = 0;
	int rc = 1;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: publish TOPIC VALUE [KEY]   (library %s)\n", MQ_VERSION);
		return 2;
	}
	const char *key = argc == 4 ? argv[3] : NULL;
	if (mq_client_open(&o, &c, &err))
		return fail("connect", &err);
	if (mq_client_meta(c, argv[1], 1, &parts, &err)) {
		rc = fail(argv[1], &err);
		goto out;
	}
	if (mq_producer_new(c, argv[1], parts, 1, &p, &err)) {
		rc = fail("producer", &err);
		goto out;
	}
	mq_producer_begin(p, 0, &b, &buf);
	if (mq_batch_add(&b, mq_now_ms(), key, key ? strlen(key) : 0, argv[2], strlen(argv[2]), NULL, 0, NULL, 0)) {
		fprintf(stderr, "publish: out of memory\n");
		goto out;
	}
	if (mq_producer_send(p, &b, 0, &err) || mq_producer_flush(p, &err)) {
		rc = fail("send", &err);
		goto out;
	}
	mq_producer_stats(p, &st);
	if (st.acked != 1) {
		const char *e = mq_producer_take_error(p);
		fprintf(stderr, "publish: the broker did not acknowledge the message: %s\n", e ? e : "no reason given");
		goto out;
	}
	rc = 0;
out:
	mq_producer_free(p);
	mq_buf_free(&buf);
	mq_client_close(c);
	return rc;
}
