/*
 * batch.c -- building, checking and walking record batches.
 *
 * The format is described in batch.h.  The builder writes records
 * straight into the caller's buffer and fills the header at the end, so
 * building a batch costs one copy of each key and value and no
 * allocation per record.  mq_batch_check is the one place that decides
 * whether bytes from the network or the disk are a valid batch; the log
 * calls it on append and on recovery, the clients when reading.
 */
#include "batch.h"

#include <string.h>

#include "crc32c.h"

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

int mq_batch_hdr_decode(const uint8_t *p, size_t n, mq_batch_hdr_t *h, mq_err_t *err)
{
	if (n < MQ_BATCH_HEADER)
		return mq_err_set(err, MQ_ECORRUPT, "batch of %zu bytes is shorter than its %d-byte header",
				  n, MQ_BATCH_HEADER);
	h->base_offset = mq_get_u64(p);
	h->length = mq_get_u32(p + 8);
	h->crc = mq_get_u32(p + 12);
	h->magic = p[16];
	h->header_len = p[17];
	h->flags = mq_get_u16(p + 18);
	h->count = mq_get_u32(p + 20);
	h->first_ts = (int64_t)mq_get_u64(p + 24);
	h->max_ts = (int64_t)mq_get_u64(p + 32);
	h->producer_id = mq_get_u64(p + 40);
	h->base_seq = mq_get_u32(p + 48);
	h->epoch = mq_get_u32(p + 52);
	h->deliver_at = (int64_t)mq_get_u64(p + 56);
	h->expire_at = (int64_t)mq_get_u64(p + 64);
	h->txn_id = mq_get_u64(p + 72);
	if (h->magic != MQ_BATCH_MAGIC)
		return mq_err_set(err, MQ_ECORRUPT, "batch magic %u, expected %u", h->magic, MQ_BATCH_MAGIC);
	if (h->header_len < MQ_BATCH_HEADER)
		return mq_err_set(err, MQ_ECORRUPT, "batch header length %u below %d", h->header_len,
				  MQ_BATCH_HEADER);
	if (h->length < h->header_len || h->length > MQ_BATCH_MAX_BYTES)
		return mq_err_set(err, MQ_ECORRUPT, "batch length %u out of range", h->length);
	if (h->count == 0)
		return mq_err_set(err, MQ_ECORRUPT, "batch with no records");
	if (h->count > (h->length - h->header_len) / MQ_RECORD_MIN_BYTES)
		return mq_err_set(err, MQ_ECORRUPT, "batch of %u bytes claims %u records (at most %u fit)", h->length,
				  h->count, (h->length - h->header_len) / MQ_RECORD_MIN_BYTES);
	return 0;
}

uint32_t mq_batch_crc(const uint8_t *p, size_t length)
{
	return mq_crc32c(0, p + 16, length - 16);
}

void mq_batch_set_base(uint8_t *p, uint64_t base_offset)
{
	mq_put_u64(p, base_offset);
}

/* Parse one record at *pp (bounded by end).  On success advances *pp,
 * fills rec (offset not set) and returns 1; returns 0 if malformed. */
static int record_parse(const uint8_t **pp, const uint8_t *end, int64_t first_ts, mq_record_t *rec)
{
	const uint8_t *p = *pp;
	uint64_t v, len;
	size_t k;

	if (!(k = mq_get_varint(p, end, &len)) || len > (uint64_t)(end - p - (ptrdiff_t)k))
		return 0;
	p += k;
	const uint8_t *rend = p + len;
	if (!(k = mq_get_varint(p, rend, &v))) /* attrs */
		return 0;
	p += k;
	if (!(k = mq_get_varint(p, rend, &v)))
		return 0;
	p += k;
	/* wraps instead of overflowing on a damaged delta; the batch check
	 * then refuses the timestamp (above max_ts) */
	rec->timestamp = (int64_t)((uint64_t)first_ts + (uint64_t)unzigzag(v));
	if (!(k = mq_get_varint(p, rend, &v)) || v > (uint64_t)(rend - p - (ptrdiff_t)k) + 1)
		return 0;
	p += k;
	rec->key = v ? p : NULL;
	rec->key_len = v ? v - 1 : 0;
	p += rec->key_len;
	if (!(k = mq_get_varint(p, rend, &v)) || v > (uint64_t)(rend - p - (ptrdiff_t)k))
		return 0;
	p += k;
	rec->value = p;
	rec->value_len = v;
	p += v;
	if (!(k = mq_get_varint(p, rend, &v)) || v > (uint64_t)(rend - p - (ptrdiff_t)k) + 1)
		return 0;
	p += k;
	rec->id = v ? p : NULL;
	rec->id_len = v ? v - 1 : 0;
	p += rec->id_len;
	if (!(k = mq_get_varint(p, rend, &v)) || v > UINT32_MAX)
		return 0;
	p += k;
	rec->header_count = (uint32_t)v;
	rec->headers = p;
	for (uint64_t i = 0; i < rec->header_count; i++) {
		for (int j = 0; j < 2; j++) {
			if (!(k = mq_get_varint(p, rend, &len)) || len > (uint64_t)(rend - p - (ptrdiff_t)k))
				return 0;
			p += k + len;
		}
	}
	rec->headers_end = p;
	if (p != rend)
		return 0;
	*pp = rend;
	return 1;
}

static int verify(const uint8_t *p, size_t n, mq_batch_hdr_t *h, mq_err_t *err)
{
	int rc = mq_batch_hdr_decode(p, n, h, err);
	if (rc)
		return rc;
	if (h->length != n)
		return mq_err_set(err, MQ_ECORRUPT, "batch length field says %u bytes, got %zu", h->length, n);
	uint32_t crc = mq_batch_crc(p, n);
	if (crc != h->crc)
		return mq_err_set(err, MQ_ECORRUPT, "batch CRC mismatch (stored %08x, computed %08x)", h->crc, crc);
	return 0;
}

int mq_batch_verify(const uint8_t *p, size_t n, mq_err_t *err)
{
	mq_batch_hdr_t h;
	return verify(p, n, &h, err);
}

int mq_batch_check(const uint8_t *p, size_t n, size_t max_record_bytes, mq_err_t *err)
{
	mq_batch_hdr_t h;
	int rc = verify(p, n, &h, err);
	if (rc)
		return rc;
	const uint8_t *q = p + h.header_len, *end = p + n;
	mq_record_t rec;
	for (uint32_t i = 0; i < h.count; i++) {
		const uint8_t *start = q;
		if (q >= end || !record_parse(&q, end, h.first_ts, &rec))
			return mq_err_set(err, MQ_ECORRUPT, "record %u of batch is malformed", i);
		if (rec.timestamp > h.max_ts)
			return mq_err_set(err, MQ_ECORRUPT, "record %u has timestamp %lld above the batch's maximum %lld",
					  i, (long long)rec.timestamp, (long long)h.max_ts);
		if (max_record_bytes && (size_t)(q - start) > max_record_bytes &&
		    rec.key_len + rec.value_len + rec.id_len + (size_t)(rec.headers_end - rec.headers) >
			    max_record_bytes)
			return mq_err_set(err, MQ_ETOOBIG,
					  "record %u is %zu bytes, over the limit of %zu (raise --max-message-bytes)",
					  i, rec.key_len + rec.value_len + rec.id_len +
						     (size_t)(rec.headers_end - rec.headers),
					  max_record_bytes);
	}
	if (q != end)
		return mq_err_set(err, MQ_ECORRUPT, "batch has %zu bytes after its %u records",
				  (size_t)(end - q), h.count);
	return 0;
}

/* ---- builder ---- */

void mq_batch_begin(mq_batch_builder_t *b, mq_buf_t *buf)
{
	memset(b, 0, sizeof(*b));
	b->buf = buf;
	b->start = buf->len;
}

size_t mq_record_encoded_size(size_t key_len, size_t value_len, size_t id_len,
			      const mq_header_t *headers, uint32_t nheaders)
{
	/* Upper bound on the bytes after rec_len: attrs(1) ts(10) key value id headers. */
	size_t n = 1 + 10 + mq_varint_len(key_len + 1) + key_len + mq_varint_len(value_len) + value_len +
		   mq_varint_len(id_len + 1) + id_len + mq_varint_len(nheaders);
	for (uint32_t i = 0; i < nheaders; i++)
		n += mq_varint_len(headers[i].name_len) + headers[i].name_len +
		     mq_varint_len(headers[i].value_len) + headers[i].value_len;
	return n + mq_varint_len(n);
}

int mq_batch_add(mq_batch_builder_t *b, int64_t ts,
		 const void *key, size_t key_len,
		 const void *value, size_t value_len,
		 const void *id, size_t id_len,
		 const mq_header_t *headers, uint32_t nheaders)
{
	mq_buf_t *buf = b->buf;
	if (id)
		b->hdr.flags |= MQ_BF_IDS;
	/* +10: the body is written 10 bytes in, then slid back over the length. */
	size_t bound = mq_record_encoded_size(key_len, value_len, id_len, headers, nheaders) + 10;
	if (b->count == 0) {
		if (mq_buf_reserve(buf, MQ_BATCH_HEADER + bound))
			return -MQ_ENOMEM;
		memset(buf->p + buf->len, 0, MQ_BATCH_HEADER);
		buf->len += MQ_BATCH_HEADER;
		b->first_ts = b->max_ts = ts;
	} else if (mq_buf_reserve(buf, bound)) {
		return -MQ_ENOMEM;
	}
	/* Body first, 10 bytes in; then the length varint is slid into place. */
	uint8_t *rec = buf->p + buf->len;
	uint8_t *p = rec + 10;
	*p++ = 0; /* attrs */
	p += mq_put_varint(p, zigzag(ts - b->first_ts));
	if (key) {
		p += mq_put_varint(p, key_len + 1);
		memcpy(p, key, key_len);
		p += key_len;
	} else {
		*p++ = 0;
	}
	p += mq_put_varint(p, value_len);
	if (value_len)
		memcpy(p, value, value_len);
	p += value_len;
	if (id) {
		p += mq_put_varint(p, id_len + 1);
		memcpy(p, id, id_len);
		p += id_len;
	} else {
		*p++ = 0;
	}
	p += mq_put_varint(p, nheaders);
	for (uint32_t i = 0; i < nheaders; i++) {
		p += mq_put_varint(p, headers[i].name_len);
		memcpy(p, headers[i].name, headers[i].name_len);
		p += headers[i].name_len;
		p += mq_put_varint(p, headers[i].value_len);
		memcpy(p, headers[i].value, headers[i].value_len);
		p += headers[i].value_len;
	}
	size_t body = (size_t)(p - (rec + 10));
	size_t lv = mq_varint_len(body);
	memmove(rec + lv, rec + 10, body);
	mq_put_varint(rec, body);
	buf->len += lv + body;
	if (ts > b->max_ts)
		b->max_ts = ts;
	b->count++;
	return 0;
}

size_t mq_batch_size(const mq_batch_builder_t *b)
{
	return b->buf->len - b->start;
}

size_t mq_batch_finish(mq_batch_builder_t *b)
{
	mq_buf_t *buf = b->buf;
	if (b->count == 0) {
		buf->len = b->start;
		return 0;
	}
	uint8_t *p = buf->p + b->start;
	size_t len = buf->len - b->start;
	const mq_batch_hdr_t *h = &b->hdr;
	mq_put_u64(p, h->base_offset);
	mq_put_u32(p + 8, (uint32_t)len);
	p[16] = MQ_BATCH_MAGIC;
	p[17] = MQ_BATCH_HEADER;
	mq_put_u16(p + 18, h->flags);
	mq_put_u32(p + 20, b->count);
	mq_put_u64(p + 24, (uint64_t)b->first_ts);
	mq_put_u64(p + 32, (uint64_t)b->max_ts);
	mq_put_u64(p + 40, h->producer_id);
	mq_put_u32(p + 48, h->base_seq);
	mq_put_u32(p + 52, h->epoch);
	mq_put_u64(p + 56, (uint64_t)h->deliver_at);
	mq_put_u64(p + 64, (uint64_t)h->expire_at);
	mq_put_u64(p + 72, h->txn_id);
	mq_put_u32(p + 12, mq_batch_crc(p, len));
	return len;
}

/* ---- iterator ---- */

int mq_batch_iter_init(mq_batch_iter_t *it, const uint8_t *batch, size_t n, mq_err_t *err)
{
	int rc = mq_batch_hdr_decode(batch, n, &it->hdr, err);
	if (rc)
		return rc;
	if (it->hdr.length > n)
		return mq_err_set(err, MQ_ECORRUPT, "batch of %u bytes cut off at %zu", it->hdr.length, n);
	it->p = batch + it->hdr.header_len;
	it->end = batch + it->hdr.length;
	it->index = 0;
	return 0;
}

int mq_batch_iter_next(mq_batch_iter_t *it, mq_record_t *rec)
{
	if (it->index >= it->hdr.count)
		return 0;
	if (!record_parse(&it->p, it->end, it->hdr.first_ts, rec))
		return -MQ_ECORRUPT;
	rec->producer_id = it->hdr.producer_id;
	rec->seq = it->hdr.base_seq + it->index;
	rec->offset = it->hdr.base_offset + it->index++;
	return 1;
}

int mq_header_next(const uint8_t **pp, const uint8_t *end, mq_header_t *h)
{
	const uint8_t *p = *pp;
	uint64_t len;
	size_t k;
	if (p >= end)
		return 0;
	if (!(k = mq_get_varint(p, end, &len)) || len > (uint64_t)(end - p - (ptrdiff_t)k))
		return 0;
	h->name = p + k;
	h->name_len = len;
	p += k + len;
	if (!(k = mq_get_varint(p, end, &len)) || len > (uint64_t)(end - p - (ptrdiff_t)k))
		return 0;
	h->value = p + k;
	h->value_len = len;
	*pp = p + k + len;
	return 1;
}

int mq_parse_u64_dec(const uint8_t *p, size_t n, uint64_t *v)
{
	uint64_t u = 0;
	if (n == 0 || n > 20 || (p[0] == '0' && n > 1))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)p[i] - '0';
		if (d > 9 || u > (UINT64_MAX - d) / 10)
			return 0;
		u = u * 10 + d;
	}
	*v = u;
	return 1;
}

int mq_header_is_origin(const mq_header_t *h)
{
	return (h->name_len == sizeof MQ_HDR_PRODUCER - 1 && !memcmp(h->name, MQ_HDR_PRODUCER, h->name_len)) ||
	       (h->name_len == sizeof MQ_HDR_SEQ - 1 && !memcmp(h->name, MQ_HDR_SEQ, h->name_len));
}

int mq_record_origin(const mq_record_t *rec, const uint8_t **producer, size_t *plen, uint64_t *seq)
{
	const uint8_t *hp = rec->headers;
	mq_header_t h;
	int got = 0;
	if (!hp || rec->header_count == 0)
		return 0;
	while (got != 3 && mq_header_next(&hp, rec->headers_end, &h)) {
		if (h.name_len == sizeof MQ_HDR_PRODUCER - 1 && !memcmp(h.name, MQ_HDR_PRODUCER, h.name_len)) {
			*producer = h.value;
			*plen = h.value_len;
			got |= 1;
		} else if (h.name_len == sizeof MQ_HDR_SEQ - 1 && !memcmp(h.name, MQ_HDR_SEQ, h.name_len)) {
			if (!mq_parse_u64_dec(h.value, h.value_len, seq))
				return 0;
			got |= 2;
		}
	}
	return got == 3;
}
