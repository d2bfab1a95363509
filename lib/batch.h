/*
 * batch.h -- the record batch: the unit that mq-pub sends, the broker
 * checks once and appends as it came, the log stores, and fetches
 * return.  The same bytes travel from producer to disk to consumer.
 *
 * Layout (all integers little-endian; see mq-format(5)):
 *
 *   off size field
 *     0   8  base_offset   offset of the first record; set by the log on append
 *     8   4  length        bytes in the whole batch, header included
 *    12   4  crc           CRC-32C of bytes [16, length)
 *    16   1  magic         MQ_BATCH_MAGIC (1)
 *    17   1  header_len    MQ_BATCH_HEADER (80); readers skip unknown extra header
 *    18   2  flags         MQ_BF_* below
 *    20   4  count         records in the batch (>= 1)
 *    24   8  first_ts      timestamp of the first record, ms since the epoch
 *    32   8  max_ts        largest record timestamp in the batch
 *    40   8  producer_id   0 = none; with base_seq, lets the broker drop retries
 *    48   4  base_seq      sequence number of the first record (per producer, partition)
 *    52   4  epoch         producer epoch (reserved, 0)
 *    56   8  deliver_at    ms; records invisible before then (0 = at once)
 *    64   8  expire_at     ms; records never delivered after then (0 = never)
 *    72   8  txn_id        half-message transaction the batch belongs to (0 = none)
 *    80      records
 *
 * base_offset and length are outside the CRC so the log can assign
 * offsets without recomputing it.  Each record:
 *
 *   varint rec_len         bytes of the record after this varint
 *   varint attrs           reserved, 0
 *   varint ts_delta        zigzag(timestamp - first_ts)
 *   varint key_len + 1     0 = no key
 *   bytes  key
 *   varint value_len
 *   bytes  value
 *   varint id_len + 1      0 = no id (broker-side deduplication)
 *   bytes  id
 *   varint header_count
 *     (varint name_len, name, varint value_len, value) * header_count
 *
 * The offset of record i is base_offset + i.
 */
#ifndef MQ_BATCH_H
#define MQ_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MQ_BATCH_MAGIC 1
#define MQ_BATCH_HEADER 80
#define MQ_BATCH_MAX_BYTES (64u << 20) /* hard ceiling for one batch */
/* The smallest record: rec_len, attrs, ts_delta, key_len, value_len,
 * id_len and header_count, one byte each.  Bounds a header's count. */
#define MQ_RECORD_MIN_BYTES 7

/* Batch flags. */
#define MQ_BF_TXN 0x0001     /* part of a half-message transaction (txn_id) */
#define MQ_BF_CONTROL 0x0002 /* control batch (transaction commit/abort marker) */
#define MQ_BF_IDS 0x0004     /* some record carries an id (set by mq_batch_add) */

typedef struct mq_batch_hdr {
	uint64_t base_offset;
	uint32_t length;
	uint32_t crc;
	uint8_t magic;
	uint8_t header_len;
	uint16_t flags;
	uint32_t count;
	int64_t first_ts;
	int64_t max_ts;
	uint64_t producer_id;
	uint32_t base_seq;
	uint32_t epoch;
	int64_t deliver_at;
	int64_t expire_at;
	uint64_t txn_id;
} mq_batch_hdr_t;

/* One header, key/value pair. Pointers borrow the batch's bytes. */
typedef struct mq_header {
	const uint8_t *name;
	size_t name_len;
	const uint8_t *value;
	size_t value_len;
} mq_header_t;

/* A record as read from a batch; pointers borrow the batch's bytes.
 * key == NULL means no key (distinct from an empty key); same for id. */
typedef struct mq_record {
	uint64_t offset;
	int64_t timestamp;
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
	const uint8_t *id;
	size_t id_len;
	uint32_t header_count;
	const uint8_t *headers; /* raw encoded headers; walk with mq_header_next */
	const uint8_t *headers_end;
	uint64_t producer_id; /* the batch's (0: none) */
	uint32_t seq;         /* base_seq + the record's index (with producer_id) */
} mq_record_t;

/* Decode the fixed header of p[0..n); does not check the CRC.
 * 0, or -MQ_ECORRUPT if n is too short, magic/lengths are wrong, or the
 * count claims more records than the length can hold (so a count read
 * from the network or the disk can size an allocation). */
int mq_batch_hdr_decode(const uint8_t *p, size_t n, mq_batch_hdr_t *h, mq_err_t *err);

/* Full check of one batch in p[0..n) (n == length): header sane, CRC
 * matches, records parse, count matches, no timestamp
 * above max_ts, and no record larger than max_record_bytes
 * (key + value + id + headers; 0 = no limit).  -MQ_ECORRUPT or
 * -MQ_ETOOBIG with a message naming the record index. */
int mq_batch_check(const uint8_t *p, size_t n, size_t max_record_bytes, mq_err_t *err);

/* The check of a batch read back from the log or a fetch reply, whose
 * records were checked in full when it was appended: header sane,
 * length == n, CRC matches.  -MQ_ECORRUPT with a message otherwise. */
int mq_batch_verify(const uint8_t *p, size_t n, mq_err_t *err);

/* CRC-32C of bytes [16, length) of a complete batch. */
uint32_t mq_batch_crc(const uint8_t *p, size_t length);
/* Rewrite base_offset in place (outside the CRC). */
void mq_batch_set_base(uint8_t *p, uint64_t base_offset);

/*
 * Builder: appends records to a buffer, then seals the header.
 * Usage:  mq_batch_begin(&b, &buf); mq_batch_add(&b, ...)...;
 *         mq_batch_finish(&b);  -> buf holds one complete batch.
 * No allocation per record beyond the buffer's growth.
 */
typedef struct mq_batch_builder {
	mq_buf_t *buf;
	size_t start;     /* offset of this batch's header in buf */
	uint32_t count;
	int64_t first_ts;
	int64_t max_ts;
	mq_batch_hdr_t hdr; /* producer_id, base_seq, flags, ... set by caller */
} mq_batch_builder_t;

void mq_batch_begin(mq_batch_builder_t *b, mq_buf_t *buf);
/* Add one record; key/id may be NULL (absent).  headers may be NULL
 * when nheaders == 0.  -MQ_ENOMEM on allocation failure. */
int mq_batch_add(mq_batch_builder_t *b, int64_t ts,
		 const void *key, size_t key_len,
		 const void *value, size_t value_len,
		 const void *id, size_t id_len,
		 const mq_header_t *headers, uint32_t nheaders);
/* Bytes the batch occupies so far (header included). */
size_t mq_batch_size(const mq_batch_builder_t *b);
/* Seal: write header fields from b->hdr and the CRC.  Returns the
 * batch length.  A batch with zero records is removed from buf and 0
 * is returned. */
size_t mq_batch_finish(mq_batch_builder_t *b);
/* Encoded size of a record with these lengths (for limit checks). */
size_t mq_record_encoded_size(size_t key_len, size_t value_len, size_t id_len,
			      const mq_header_t *headers, uint32_t nheaders);

/*
 * Iterator over the records of one batch (already checked, e.g. read
 * back from the log).  mq_batch_iter_next returns 1 with rec filled,
 * 0 at the end, -MQ_ECORRUPT on malformed input.
 */
typedef struct mq_batch_iter {
	mq_batch_hdr_t hdr;
	const uint8_t *p;
	const uint8_t *end;
	uint32_t index;
} mq_batch_iter_t;

int mq_batch_iter_init(mq_batch_iter_t *it, const uint8_t *batch, size_t n, mq_err_t *err);
int mq_batch_iter_next(mq_batch_iter_t *it, mq_record_t *rec);
/* Walk headers: *p starts at rec->headers; returns 1 with h filled, 0 at end. */
int mq_header_next(const uint8_t **p, const uint8_t *end, mq_header_t *h);

/* A record's origin: envelope fields "producer" and "seq" given to
 * mq-pub are stored as these two headers, and then stand for the record
 * in place of the batch's own producer id and sequence (envelopes
 * re-published from elsewhere keep their numbering). */
#define MQ_HDR_PRODUCER "mq.producer"
#define MQ_HDR_SEQ "mq.seq"
/* Is h one of the two origin headers? */
int mq_header_is_origin(const mq_header_t *h);
/* The record's origin headers: 1 with producer, plen and seq set when both
 * are there and mq.seq is a decimal number below 2^64, else 0. */
int mq_record_origin(const mq_record_t *rec, const uint8_t **producer, size_t *plen, uint64_t *seq);
/* A decimal number below 2^64 in p[0, n) (no sign, no leading zero but
 * "0" itself): 1 with *v, else 0. */
int mq_parse_u64_dec(const uint8_t *p, size_t n, uint64_t *v);

#endif
