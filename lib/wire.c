/*
 * wire.c -- msgpack framing of the protocol described in wire.h.
 * Packing writes straight into an mq_buf_t; parsing keeps the unpacked
 * objects in one msgpack zone per message, freed with the message.
 * Every accessor checks the type, so a malformed request becomes an
 * error reply, never a crash.
 */
#include "wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "store.h"

static const char *const kind_names[] = {
	[MQ_REQ_HELLO] = "HELLO",	  [MQ_REQ_META] = "META",	   [MQ_REQ_PRODUCE] = "PRODUCE",
	[MQ_REQ_FETCH] = "FETCH",	  [MQ_REQ_OFFSETS] = "OFFSETS",	   [MQ_REQ_JOIN] = "JOIN",
	[MQ_REQ_HEARTBEAT] = "HEARTBEAT", [MQ_REQ_LEAVE] = "LEAVE",	   [MQ_REQ_COMMIT] = "COMMIT",
	[MQ_REQ_COMMITTED] = "COMMITTED", [MQ_REQ_TOPICS] = "TOPICS",
	[MQ_REQ_TOPIC_CREATE] = "TOPIC_CREATE", [MQ_REQ_TOPIC_DESCRIBE] = "TOPIC_DESCRIBE",
	[MQ_REQ_TOPIC_DELETE] = "TOPIC_DELETE", [MQ_REQ_TOPIC_PARTITIONS] = "TOPIC_PARTITIONS",
	[MQ_REQ_GROUPS] = "GROUPS", [MQ_REQ_GROUP_RESET] = "GROUP_RESET", [MQ_REQ_GROUP_DELETE] = "GROUP_DELETE",
	[MQ_REQ_STATS] = "STATS", [MQ_REQ_BUCKET_TAKE] = "BUCKET_TAKE",
	[MQ_REQ_TXN_BEGIN] = "TXN_BEGIN", [MQ_REQ_TXN_ADD] = "TXN_ADD", [MQ_REQ_TXN_END] = "TXN_END",
	[MQ_REQ_TXN_COMMIT] = "TXN_COMMIT", [MQ_REQ_TXN_ROLLBACK] = "TXN_ROLLBACK", [MQ_REQ_TXN_CHECK] = "TXN_CHECK",
	[MQ_REQ_TXN_VERDICT] = "TXN_VERDICT",
};

const char *mq_wire_kind_name(uint32_t kind)
{
	if (kind < sizeof(kind_names) / sizeof(kind_names[0]) && kind_names[kind])
		return kind_names[kind];
	return "?";
}

static int buf_write(void *data, const char *p, size_t n)
{
	return mq_buf_append(data, p, n) ? -1 : 0;
}

void mq_wire_packer(msgpack_packer *pk, mq_buf_t *buf)
{
	msgpack_packer_init(pk, buf, buf_write);
}

void mq_wire_pack_bool(msgpack_packer *pk, int v)
{
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void mq_wire_pack_strn(msgpack_packer *pk, const void *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void mq_wire_pack_str(msgpack_packer *pk, const char *s)
{
	mq_wire_pack_strn(pk, s, strlen(s));
}

void mq_wire_begin(msgpack_packer *pk, uint32_t kind, uint32_t id, uint32_t nargs)
{
	msgpack_pack_array(pk, 2 + nargs);
	msgpack_pack_uint32(pk, kind);
	msgpack_pack_uint32(pk, id);
}

void mq_wire_pack_err(msgpack_packer *pk, uint32_t id, int code, const char *msg)
{
	mq_wire_begin(pk, MQ_REP_ERR, id, 2);
	msgpack_pack_int(pk, code < 0 ? -code : code);
	mq_wire_pack_str(pk, msg);
}

int mq_msgpack_fits(const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t pos = 0;
	uint64_t pending = 1; /* objects still to come, a byte each at least */
	while (pending) {
		if (pending > len - pos)
			return 0;
		uint8_t c = p[pos++];
		pending--;
		uint64_t fixed = 0;    /* bytes after the type byte, besides a body */
		unsigned lenb = 0;     /* size of the length field */
		int per = 0;           /* elements per count: 1 array, 2 map, 0 body */
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
			continue;
		if (c <= 0x8f) {
			pending += 2u * (c & 0x0f);
			continue;
		}
		if (c <= 0x9f) {
			pending += c & 0x0f;
			continue;
		}
		if (c <= 0xbf)
			fixed = c & 0x1f; /* fixstr */
		else if (c >= 0xc4 && c <= 0xc6)
			lenb = 1u << (c - 0xc4); /* bin */
		else if (c >= 0xc7 && c <= 0xc9)
			lenb = 1u << (c - 0xc7), fixed = 1; /* ext: + its type byte */
		else if (c == 0xca || c == 0xcb)
			fixed = c == 0xca ? 4 : 8;
		else if (c >= 0xcc && c <= 0xcf)
			fixed = 1u << (c - 0xcc);
		else if (c >= 0xd0 && c <= 0xd3)
			fixed = 1u << (c - 0xd0);
		else if (c >= 0xd4 && c <= 0xd8)
			fixed = 1 + (1u << (c - 0xd4)); /* fixext: type byte + data */
		else if (c >= 0xd9 && c <= 0xdb)
			lenb = 1u << (c - 0xd9); /* str */
		else if (c >= 0xdc && c <= 0xdf)
			lenb = (c & 1) ? 4 : 2, per = c >= 0xde ? 2 : 1;
		else
			return 0; /* 0xc1: never used */
		if (len - pos < lenb)
			return 0;
		uint64_t n = 0;
		for (unsigned i = 0; i < lenb; i++)
			n = n << 8 | p[pos + i];
		pos += lenb;
		if (per) {
			pending += (uint64_t)per * n;
			continue;
		}
		n += fixed;
		if (n > len - pos)
			return 0;
		pos += (size_t)n;
	}
	return 1;
}

int mq_wire_parse(const void *data, size_t len, mq_wire_msg_t *m, mq_err_t *err)
{
	size_t off = 0;
	msgpack_unpacked_init(&m->u);
	m->arg = NULL;
	m->nargs = 0;
	if (!mq_msgpack_fits(data, len))
		return mq_err_set(err, MQ_EPROTO, "message is not msgpack, or declares more than its %zu bytes hold",
				  len);
	int rc = msgpack_unpack_next(&m->u, data, len, &off);
	if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES)
		return mq_err_set(err, MQ_EPROTO, "message is not msgpack");
	const msgpack_object *o = &m->u.data;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2 ||
	    o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.array.ptr[0].via.u64 > UINT32_MAX || o->via.array.ptr[1].via.u64 > UINT32_MAX)
		return mq_err_set(err, MQ_EPROTO, "message is not an array [kind, id, ...]");
	m->kind = (uint32_t)o->via.array.ptr[0].via.u64;
	m->id = (uint32_t)o->via.array.ptr[1].via.u64;
	m->arg = o->via.array.ptr + 2;
	m->nargs = o->via.array.size - 2;
	return 0;
}

void mq_wire_msg_free(mq_wire_msg_t *m)
{
	msgpack_unpacked_destroy(&m->u);
	m->arg = NULL;
	m->nargs = 0;
}

const msgpack_object *mq_wire_arg(const mq_wire_msg_t *m, uint32_t i)
{
	return i < m->nargs ? &m->arg[i] : NULL;
}

int mq_wire_missing(const mq_wire_msg_t *m, uint32_t i, mq_err_t *err)
{
	return mq_err_set(err, MQ_EPROTO, "%s: argument %u missing", mq_wire_kind_name(m->kind), i + 1);
}

static int bad(const char *what, const char *want, mq_err_t *err)
{
	return mq_err_set(err, MQ_EPROTO, "%s: expected %s", what, want);
}

int mq_wire_u64(const msgpack_object *o, uint64_t *v, const char *what, mq_err_t *err)
{
	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return bad(what, "a non-negative integer", err);
	*v = o->via.u64;
	return 0;
}

int mq_wire_i64(const msgpack_object *o, int64_t *v, const char *what, mq_err_t *err)
{
	if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return 0;
	}
	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT64_MAX)
		return bad(what, "an integer", err);
	*v = (int64_t)o->via.u64;
	return 0;
}

int mq_wire_bool(const msgpack_object *o, int *v, const char *what, mq_err_t *err)
{
	if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
		return bad(what, "true or false", err);
	*v = o->via.boolean;
	return 0;
}

int mq_wire_strv(const msgpack_object *o, const char **s, size_t *n, const char *what, mq_err_t *err)
{
	/* msgpack-c gives an empty str or bin a NULL pointer: callers get
	 * "" instead, so memcpy/memchr of n == 0 bytes stay defined */
	if (o && o->type == MSGPACK_OBJECT_STR) {
		*s = o->via.str.size ? o->via.str.ptr : "";
		*n = o->via.str.size;
		return 0;
	}
	if (o && o->type == MSGPACK_OBJECT_BIN) {
		*s = o->via.bin.size ? o->via.bin.ptr : "";
		*n = o->via.bin.size;
		return 0;
	}
	return bad(what, "a string", err);
}

int mq_wire_array(const msgpack_object *o, const msgpack_object_array **a, const char *what, mq_err_t *err)
{
	if (!o || o->type != MSGPACK_OBJECT_ARRAY)
		return bad(what, "an array", err);
	*a = &o->via.array;
	return 0;
}

int mq_wire_name(const msgpack_object *o, char *buf, const char *what, int optional, mq_err_t *err)
{
	const char *s = NULL;
	size_t n = 0;
	buf[0] = 0;
	if (optional && (!o || o->type == MSGPACK_OBJECT_NIL))
		return 0;
	int rc = mq_wire_strv(o, &s, &n, what, err);
	if (rc)
		return rc;
	if (n > MQ_NAME_MAX || memchr(s, 0, n))
		return mq_err_set(err, MQ_EINVAL, "%s: invalid name (use A-Z a-z 0-9 . _ -, at most %d)", what,
				  MQ_NAME_MAX);
	memcpy(buf, s, n);
	buf[n] = 0;
	return mq_name_check(what, buf, 0, err);
}

uint32_t mq_key_partition(const void *key, size_t len, uint32_t partitions)
{
	const uint8_t *p = key;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return partitions ? (uint32_t)(h % partitions) : 0;
}

int mq_wire_partition(const msgpack_object *o, uint32_t *p, mq_err_t *err)
{
	uint64_t v = 0;
	int rc = mq_wire_u64(o, &v, "partition", err);
	if (rc)
		return rc;
	if (v >= MQ_PARTITIONS_MAX)
		return mq_err_set(err, MQ_ENOENT, "partition %" PRIu64 " does not exist (a topic has at most %d)", v,
				  MQ_PARTITIONS_MAX);
	*p = (uint32_t)v;
	return 0;
}

int mq_wire_sockopts(void *sock, const mq_sockopt_t *o, size_t n, mq_err_t *err)
{
	for (size_t i = 0; i < n; i++) {
		int v = (int)o[i].v;
		int rc = o[i].wide ? zmq_setsockopt(sock, o[i].opt, &o[i].v, sizeof(o[i].v))
				   : zmq_setsockopt(sock, o[i].opt, &v, sizeof(v));
		if (rc < 0)
			return mq_err_set(err, MQ_EIO, "cannot set ZeroMQ option %s to %" PRId64 ": %s (is libzmq 4.2 or "
					  "newer installed?)", o[i].name, o[i].v, zmq_strerror(zmq_errno()));
	}
	return 0;
}

int mq_endpoint_is_ipv6(const char *endpoint)
{
	return strncmp(endpoint, "tcp://[", 7) == 0;
}
