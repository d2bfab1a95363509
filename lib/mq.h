/*
 * mq.h -- the one header the programs in cmd/ include: the library's
 * public modules and the toolkit's version.
 *
 *   util.h    errors, buffers, durations, sizes, clocks
 *   batch.h   the record batch (build, check, iterate)
 *   log.h     one partition: append, read, find by time, retention, verify
 *   store.h   the data directory: topics, partitions, lock
 */
#ifndef MQ_H
#define MQ_H

#include "batch.h"
#include "crc32c.h"
#include "log.h"
#include "store.h"
#include "util.h"

#endif
