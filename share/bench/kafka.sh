#!/usr/bin/env bash
#
# share/bench/kafka.sh -- mq-pub and mq-sub over a Kafka cluster beside
# kcat on the same lines: MQ_BENCH_KAFKA_LINES (default 1000000) lines
# of `seq`, published with `kcat -P` and with `mq-pub -b kafka://...`,
# then read back whole with `kcat -C -e` and `mq-sub -e`, each run timed
# and its count checked.  The cluster is librdkafka's mock cluster
# (build/tests/mock_cluster, three brokers on loopback), or a real one
# named by MQ_TEST_KAFKA=HOST:PORT.  The mock keeps only some megabytes
# per partition, so the lines are short.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/share/bench/common.sh"
bin=${MQ_BIN:-$root/bin}
lines=${MQ_BENCH_KAFKA_LINES:-1000000}
command -v kcat >/dev/null || { echo "kafka bench: kcat not installed (make bench-deps)"; exit 0; }
bench_tmp mq-bench-kafka
if [ -n "${MQ_TEST_KAFKA:-}" ]; then
	bs=$MQ_TEST_KAFKA
else
	mock=${MQ_TESTS_DIR:-$root/build/tests}/mock_cluster
	[ -x "$mock" ] || { echo "kafka bench: no mock cluster (librdkafka-dev missing when mq was built; make bench-deps)"; exit 0; }
	mkfifo "$tmp/in"
	"$mock" <"$tmp/in" >"$tmp/bs" 2>"$tmp/mock.log" &
	pids+=($!)
	exec 9>"$tmp/in"
	for ((i = 0; i < 100; i++)); do [ -s "$tmp/bs" ] && break; sleep 0.05; done
	bs=$(head -1 "$tmp/bs")
fi
seq 1 "$lines" >"$tmp/lines"
run=$$

# timed LABEL TOPIC-COUNT-CHECK CMD...: seconds into $secs; prints a row.
row() { # label seconds count
	printf '%-44s %8d msgs %8.3f s %10.0f msgs/s\n' "$1" "$3" "$2" "$(echo "$3 / $2" | bc -l)"
}
timed() { # var cmd...
	local t0 t1
	t0=$(date +%s%N)
	"${@:2}"
	t1=$(date +%s%N)
	printf -v "$1" '%s' "$(echo "($t1 - $t0) / 1000000000" | bc -l)"
}
count() { # topic
	kcat -C -b "$bs" -t "$1" -e -q -f '%s\n' 2>/dev/null | wc -l
}

echo "Kafka ($([ -n "${MQ_TEST_KAFKA:-}" ] && echo "$bs" || echo "librdkafka's mock cluster, 3 brokers")), $lines lines of seq"
timed kp kcat -P -b "$bs" -t "kcat$run" -X partitioner=murmur2_random <"$tmp/lines"
row "kcat -P" "$kp" "$(count "kcat$run")"
timed mp "$bin/mq-pub" -b "kafka://$bs" -t "mq$run" <"$tmp/lines"
row "mq-pub -b kafka://" "$mp" "$(count "mq$run")"
timed kc sh -c "kcat -C -b '$bs' -t 'mq$run' -e -q -f '%s\n' >'$tmp/kc'"
row "kcat -C -e" "$kc" "$(wc -l <"$tmp/kc")"
timed mc sh -c "'$bin/mq-sub' -b 'kafka://$bs' -t 'mq$run' -e >'$tmp/mc'"
row "mq-sub -b kafka:// -e" "$mc" "$(wc -l <"$tmp/mc")"
cmp -s <(sort -n "$tmp/kc") <(sort -n "$tmp/mc") || echo "mq-sub and kcat read different records"
printf 'ratios (kcat time / mq time, >= 1 is as fast or faster): publish %.2f, consume %.2f\n' \
	"$(echo "$kp / $mp" | bc -l)" "$(echo "$kc / $mc" | bc -l)"
