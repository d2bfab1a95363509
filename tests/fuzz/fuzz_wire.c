/* fuzz_wire.c -- a request or reply header frame as the broker and the
 * clients decode it (mq_wire_parse), then every argument read through
 * the typed accessors, as a handler would. */
#include "fuzz.h"
#include "store.h"
#include "wire.h"

static void touch(const msgpack_object *o, int depth)
{
	mq_err_t err;
	uint64_t u;
	int64_t i;
	int b;
	const char *s;
	size_t n;
	const msgpack_object_array *a;
	char name[MQ_NAME_MAX + 1];
	mq_wire_u64(o, &u, "x", &err);
	mq_wire_i64(o, &i, "x", &err);
	mq_wire_bool(o, &b, "x", &err);
	mq_wire_strv(o, &s, &n, "x", &err);
	mq_wire_name(o, name, "x", 1, &err);
	if (mq_wire_array(o, &a, "x", &err) == 0 && depth < 8)
		for (uint32_t k = 0; k < a->size; k++)
			touch(&a->ptr[k], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mq_wire_msg_t m;
	mq_err_t err;
	if (mq_wire_parse(data, size, &m, &err) == 0)
		for (uint32_t i = 0; i < m.nargs; i++)
			touch(mq_wire_arg(&m, i), 0);
	mq_wire_msg_free(&m);
	return 0;
}
