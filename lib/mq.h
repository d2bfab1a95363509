/*
 * mq.h -- the library's public modules in one header, and the toolkit's
 * version (util.h).
 *
 *   util.h    errors, buffers, durations, sizes, clocks
 *   batch.h   the record batch (build, check, iterate)
 *   log.h     one partition: append, read, find by time, retention, verify
 *   store.h   the data directory: topics, partitions, lock
 *   layout.h  the offline walk of a data directory (verify, dump)
 *   wire.h    the protocol between clients and mq-serve
 *   client.h  the client side: requests, pipelined producer, fetch, groups
 *   consumer.h  the consumer engine: topics, groups, positions, commit rule
 *   record.h  records on stdin/stdout: lines, NUL, JSON, msgpack, -F
 *   outq.h    what a pipe's reader took, as offsets that may be committed
 *   cli.h     the options every client program shares
 *   bucket.h  token buckets;  seen.h  bounded sets of identities
 */
#ifndef MQ_H
#define MQ_H

#include "batch.h"
#include "bucket.h"
#include "cli.h"
#include "client.h"
#include "consumer.h"
#include "crc32c.h"
#include "json.h"
#include "layout.h"
#include "log.h"
#include "outq.h"
#include "record.h"
#include "seen.h"
#include "seqcheck.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#endif
