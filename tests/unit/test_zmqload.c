/*
 * test_zmqload.c -- lib/zmqload.c, linked in place of -lzmq: libzmq is
 * not in the process until a ZeroMQ context is asked for, and then
 * every function the loader stands in for reaches the real one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <link.h>
#include <string.h>
#include <zmq.h>

static int has_zmq(struct dl_phdr_info *info, size_t size, void *found)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "libzmq"))
		*(int *)found = 1;
	return 0;
}

static int zmq_loaded(void)
{
	int found = 0;
	dl_iterate_phdr(has_zmq, &found);
	return found;
}

static void test_loaded_on_first_use(void **state)
{
	assert_false(zmq_loaded());
	void *ctx = zmq_ctx_new();
	assert_non_null(ctx);
	assert_true(zmq_loaded());

	/* A monitor on a DEALER whose connect is refused: events arrive
	 * through zmq_poll and zmq_msg_*. */
	void *s = zmq_socket(ctx, ZMQ_DEALER), *mon = NULL;
	assert_non_null(s);
	assert_int_equal(zmq_setsockopt(s, ZMQ_LINGER, &(int){0}, sizeof(int)), 0);
	assert_int_equal(zmq_setsockopt(s, ZMQ_IMMEDIATE, &(int){1}, sizeof(int)), 0);
	int type = 0;
	size_t tl = sizeof type;
	assert_int_equal(zmq_getsockopt(s, ZMQ_TYPE, &type, &tl), 0);
	assert_int_equal(type, ZMQ_DEALER);
	assert_int_equal(zmq_socket_monitor(s, "inproc://zmqload-mon", ZMQ_EVENT_ALL), 0);
	assert_non_null(mon = zmq_socket(ctx, ZMQ_PAIR));
	assert_int_equal(zmq_connect(mon, "inproc://zmqload-mon"), 0);
	assert_int_equal(zmq_connect(s, "tcp://127.0.0.1:1"), 0);
	zmq_pollitem_t it = {.socket = mon, .events = ZMQ_POLLIN};
	assert_int_equal(zmq_poll(&it, 1, 5000), 1);
	zmq_msg_t m;
	assert_int_equal(zmq_msg_init(&m), 0);
	assert_true(zmq_msg_recv(&m, mon, 0) >= 0);
	assert_true(zmq_msg_size(&m) >= 6); /* event (2 bytes) and value (4) */
	assert_non_null(zmq_msg_data(&m));
	assert_true(zmq_msg_more(&m)); /* the endpoint follows */
	assert_int_equal(zmq_msg_close(&m), 0);

	/* A send with no peer and ZMQ_IMMEDIATE: EAGAIN, through zmq_errno. */
	assert_int_equal(zmq_send(s, "x", 1, ZMQ_DONTWAIT), -1);
	assert_int_equal(zmq_errno(), EAGAIN);
	assert_non_null(strstr(zmq_strerror(EAGAIN), "unavailable"));
	assert_int_equal(zmq_close(mon), 0);
	assert_int_equal(zmq_close(s), 0);
	assert_int_equal(zmq_ctx_term(ctx), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loaded_on_first_use),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
