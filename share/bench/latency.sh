#!/usr/bin/env bash
#
# share/bench/latency.sh -- how long one message takes, against mosquitto,
# Redis and NATS JetStream, on this machine, in one run (make bench-latency,
# make bench).
#
#   1. one-shot publish: the mean time of one call, over N calls, of
#      mq-pub -t x -m hello (mq-serve --fsync always, its default, and
#      --fsync never), mosquitto_pub -q 1 -m hello (persistence on) and
#      redis-cli XADD (appendonly, appendfsync everysec): a new process
#      and connection each time, as from cron or xargs
#   2. end-to-end latency, as a pipe user sees it: a line written into the
#      publisher's stdin until the subscriber writes it to its stdout
#      (build/bench/latency, from tests/bench/latency.c), at 500 and at
#      5000 lines/s: cat into a FIFO and cat out of it (two pipe hops and
#      their wake-ups, no broker: the floor), and the floor again while
#      another process appends and fdatasyncs a file in a loop on the same
#      disk (what the disk's flushes cost the whole machine: on a virtual
#      disk they can stall every CPU for milliseconds); mq-pub | ... | mq-sub -o end
#      with --fsync always and never; mosquitto_pub -l -q 1 and
#      mosquitto_sub -q 1; and NATS JetStream, a push consumer and either
#      js_Publish, which waits for each ack before the next message, or
#      js_PublishAsync with 32 acks awaited at once (mq-pub's window), in
#      the program itself: NATS has no pipe client in Debian
#   3. how long until a refused connection is reported: mq-pub and
#      mosquitto_pub against a port nothing listens on
#   4. with MQ_BENCH_LAT_LOAD=1, part 2 again beside a process that keeps
#      one core busy
#   5. group commit under many small producers: 32 shell loops at once,
#      each running mq-pub -m one message at a time, against --fsync
#      always and never: messages per second, and how many messages one
#      partition sync carried (mq-admin stats: partition_syncs)
# and then the targets next to what was measured.
#
# Every server runs on loopback, on a free port, with its data in a
# temporary directory, and is stopped afterwards.  A peer that is not
# installed (make bench-deps) is skipped with a note.  The figures come
# from a machine that may be doing other work: run it twice before
# believing a difference.
#
# Environment: MQ_BIN (programs), MQ_BENCH_DIR (build/bench),
# MQ_BENCH_LAT_SECONDS (each end-to-end run, default 10),
# MQ_BENCH_ONESHOT_CALLS (default 200), MQ_BENCH_REFUSED_RUNS (default 3),
# MQ_BENCH_LAT_LOAD (1: part 4), MQ_BENCH_LOOPS (part 5, default 32),
# MQ_BENCH_LOOP_CALLS (calls per loop, default 20).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${MQ_BIN:-$root/bin}
lat=${MQ_BENCH_DIR:-$root/build/bench}/latency
secs=${MQ_BENCH_LAT_SECONDS:-10}
calls=${MQ_BENCH_ONESHOT_CALLS:-200}
refused_runs=${MQ_BENCH_REFUSED_RUNS:-3}
load=${MQ_BENCH_LAT_LOAD:-0}
loops=${MQ_BENCH_LOOPS:-32}
loop_calls=${MQ_BENCH_LOOP_CALLS:-20}
rates=(500 5000)

whole() { # name value
	case $2 in
	'' | *[!0-9]* | 0) echo "bench: $1='$2': give a whole number, at least 1" >&2; exit 1 ;;
	esac
}
case $secs in
'' | *[!0-9.]* | *.*.* | .) echo "bench: MQ_BENCH_LAT_SECONDS='$secs': give a number of seconds, such as 10 or 2.5" >&2; exit 1 ;;
esac
whole MQ_BENCH_ONESHOT_CALLS "$calls"
whole MQ_BENCH_REFUSED_RUNS "$refused_runs"
whole MQ_BENCH_LOOPS "$loops"
whole MQ_BENCH_LOOP_CALLS "$loop_calls"
for p in mq-serve mq-pub mq-sub mq-admin; do
	[ -x "$bin/$p" ] || { echo "bench: $bin/$p is not built (run make)" >&2; exit 1; }
done
[ -x "$lat" ] || { echo "bench: $lat is not built (run make)" >&2; exit 1; }
export PATH=$bin:$PATH
unset MQ_BROKER

# shellcheck source=share/bench/common.sh
. "$root/share/bench/common.sh"
bench_tmp mq-bench-lat

# ---- the servers ---------------------------------------------------------

declare -A mq_ep
for f in always never; do
	port=$(free_port)
	mq_ep[$f]=tcp://127.0.0.1:$port
	mq-serve -d "$tmp/mq-$f" -l "${mq_ep[$f]}" --fsync "$f" -q 2>"$tmp/mq-$f.log" &
	pids+=($!)
	peer_wait "$tmp/mq-$f.log" 'listening on' "mq-serve --fsync $f"
done

have_mosq='' have_redis='' have_nats=''
if command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null; then
	have_mosq=1
	start_mosquitto
else
	echo "mosquitto: skipped: mosquitto, mosquitto_pub or mosquitto_sub not installed (make bench-deps)"
fi
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	have_redis=1
	start_redis
else
	echo "redis: skipped: redis-server or redis-cli not installed (make bench-deps)"
fi
if ! command -v nats-server >/dev/null; then
	echo "nats: skipped: nats-server not installed (make bench-deps)"
elif ! "$lat" -h | grep -q '] nats URL'; then
	echo "nats: skipped: $lat was built without libnats-dev (make bench-deps, then make)"
else
	have_nats=1
	nport=$(free_port)
	nats-server -js -a 127.0.0.1 -p "$nport" -sd "$tmp/nats" >"$tmp/nats.log" 2>&1 &
	pids+=($!)
	peer_wait "$tmp/nats.log" 'Server is ready' nats-server
fi
echo "bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. one-shot publish ---------------------------------------------------

# Mean milliseconds per call of a command run $calls times.
oneshot() {
	local t0 t1 i
	t0=$EPOCHREALTIME
	for ((i = 0; i < calls; i++)); do
		"$@" >/dev/null || { echo "bench: '$*' failed (call $((i + 1)))" >&2; return 1; }
	done
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" -v n="$calls" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }'
}
declare -A one
echo
echo "1. one-shot publish: mean per call over $calls calls (a new process and connection each)"
one[always]=$(oneshot mq-pub -b "${mq_ep[always]}" -t x -m hello)
one[never]=$(oneshot mq-pub -b "${mq_ep[never]}" -t x -m hello)
[ -n "$have_mosq" ] && one[mosq]=$(oneshot mosquitto_pub -h 127.0.0.1 -p "$mport" -q 1 -t x -m hello)
[ -n "$have_redis" ] && one[redis]=$(oneshot redis-cli -p "$rport" XADD x '*' v hello)
ratios() { # mq ms
	local out='' peer
	for peer in mosq redis; do
		[ -n "${one[$peer]:-}" ] || continue
		out+=$(awk -v a="$1" -v b="${one[$peer]}" -v p="$peer" \
			'BEGIN { printf "   mq/%s %.2f", (p == "mosq" ? "mosquitto" : "redis"), a / b }')
	done
	echo "$out"
}
printf '   %-46s %8s ms%s\n' "mq-pub -t x -m hello (--fsync always)" "${one[always]}" "$(ratios "${one[always]}")"
printf '   %-46s %8s ms%s\n' "mq-pub -t x -m hello (--fsync never)" "${one[never]}" "$(ratios "${one[never]}")"
[ -n "$have_mosq" ] && printf '   %-46s %8s ms\n' "mosquitto_pub -q 1 -m hello (persistence)" "${one[mosq]}"
[ -n "$have_redis" ] && printf '   %-46s %8s ms\n' "redis-cli XADD (appendfsync everysec)" "${one[redis]}"

# ---- 2. end-to-end latency ---------------------------------------------------

# r[KEY.FIELD]: KEY is MODE.RATE.SYSTEM, FIELD p50 p90 p99 p999 max (ms).
declare -A r
run_no=0
e2e() { # mode rate system label latency-args...
	local mode=$1 rate=$2 sys=$3 label=$4 out kv k v f
	shift 4
	run_no=$((run_no + 1))
	out=$("$lat" -r "$rate" -d "$secs" "$@" 2>"$tmp/lat.err") || true
	cat "$tmp/lat.err" >&2
	[ -n "$out" ] || { printf '   %-7s %-32s failed (see above)\n' "$rate/s" "$label"; return 0; }
	for kv in $out; do
		k=${kv%%=*} v=${kv#*=}
		case $k in
		p50_us | p90_us | p99_us | p999_us | max_us | late_max_us)
			[ "$v" = - ] || v=$(awk -v x="$v" 'BEGIN { printf "%.3f", x / 1000 }')
			r[$mode.$rate.$sys.${k%_us}]=$v ;;
		sent | received | sent_per_s) r[$mode.$rate.$sys.$k]=$v ;;
		esac
	done
	f=$mode.$rate.$sys
	printf '   %-7s %-32s %6s %6s %6s %7s %7s %7s %7s %7s %8s\n' "$rate/s" "$label" "${r[$f.sent]}" "${r[$f.received]}" \
		"${r[$f.sent_per_s]}" "${r[$f.p50]}" "${r[$f.p90]}" "${r[$f.p99]}" "${r[$f.p999]}" "${r[$f.max]}" "${r[$f.late_max]}"
}
e2e_table() { # mode
	local mode=$1 rate t
	printf '   %-7s %-32s %6s %6s %6s %7s %7s %7s %7s %7s %8s\n' rate "publisher | subscriber" sent recv kept/s p50 p90 p99 p99.9 max late
	for rate in "${rates[@]}"; do
		rm -f "$tmp/fifo"
		mkfifo "$tmp/fifo"
		e2e "$mode" "$rate" cat "cat > fifo; cat fifo (the floor)" pipe "exec cat >'$tmp/fifo'" "exec cat '$tmp/fifo'"
		# The same floor while another process appends and fdatasyncs a
		# file in a loop on the brokers' disk, as --fsync always does: what
		# the disk's flushes cost everything else on this machine.
		python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
while True:
    os.write(fd, b"x" * 100)
    os.fdatasync(fd)' "$tmp/syncloop" &
		pids+=($!)
		e2e "$mode" "$rate" catsync "the floor, fdatasync loop beside" pipe "exec cat >'$tmp/fifo'" "exec cat '$tmp/fifo'"
		kill "${pids[-1]}"
		wait "${pids[-1]}" 2>/dev/null || true
		unset 'pids[-1]'
		rm -f "$tmp/syncloop"
		for f in always never; do
			t=lat$run_no
			e2e "$mode" "$rate" "$f" "mq --fsync $f" pipe \
				"exec mq-pub -b ${mq_ep[$f]} -t $t" "exec mq-sub -b ${mq_ep[$f]} -t $t -o end"
		done
		if [ -n "$have_mosq" ]; then
			t=lat$run_no
			e2e "$mode" "$rate" mosq "mosquitto QoS 1" pipe \
				"exec mosquitto_pub -h 127.0.0.1 -p $mport -q 1 -t $t -l" "exec mosquitto_sub -h 127.0.0.1 -p $mport -q 1 -t $t"
		fi
		if [ -n "$have_nats" ]; then
			e2e "$mode" "$rate" nats "NATS JetStream, js_Publish" nats "nats://127.0.0.1:$nport"
			e2e "$mode" "$rate" natsa "NATS JetStream, async 32 acks" -a 32 nats "nats://127.0.0.1:$nport"
		fi
	done
	return 0
}
echo
echo "2. end to end: a line into the publisher's stdin until the subscriber's stdout; ms; ${secs} s per row"
echo "   (kept/s: the rate the sending program kept; late: how far it fell behind its schedule at worst)"
e2e_table quiet

# ---- 3. refused connection -----------------------------------------------------

# Mean seconds until a command fails against a port nothing listens on.
refused() {
	local t0 t1 i st total=0
	for ((i = 0; i < refused_runs; i++)); do
		st=0
		t0=$EPOCHREALTIME
		timeout 15 "$@" >/dev/null 2>"$tmp/refused.err" || st=$?
		t1=$EPOCHREALTIME
		[ "$st" -ne 0 ] || echo "bench: '$*' succeeded with nothing listening?" >&2
		[ "$st" -ne 124 ] || echo "bench: '$*' still running after 15 s; stopped" >&2
		total=$(awk -v a="$t0" -v b="$t1" -v s="$total" 'BEGIN { print s + b - a }')
	done
	awk -v s="$total" -v n="$refused_runs" 'BEGIN { printf "%.3f", s / n }'
}
echo
echo "3. a refused connection: seconds until the publisher reports it (mean of $refused_runs, each capped at 15 s)"
dead=$(free_port)
ref_mq=$(refused mq-pub -b "tcp://127.0.0.1:$dead" -t x -m hi)
printf '   %-46s %8s s   %s\n' "mq-pub -b tcp://127.0.0.1:$dead -t x -m hi" "$ref_mq" "$(head -c 200 "$tmp/refused.err")"
if [ -n "$have_mosq" ]; then
	ref_mosq=$(refused mosquitto_pub -h 127.0.0.1 -p "$dead" -t x -m hi)
	printf '   %-46s %8s s   %s\n' "mosquitto_pub -p $dead -t x -m hi" "$ref_mosq" "$(head -c 200 "$tmp/refused.err")"
fi

# ---- 4. under load ------------------------------------------------------------

if [ "$load" = 1 ]; then
	echo
	echo "4. end to end again, beside a process keeping one core busy"
	bash -c 'while :; do :; done' &
	pids+=($!) # the last of pids until it is stopped here
	e2e_table load
	kill "${pids[-1]}"
	wait "${pids[-1]}" 2>/dev/null || true
	unset 'pids[-1]'
fi

# ---- 5. group commit under many small producers --------------------------------

stat_of() { # endpoint name
	mq-admin -b "$1" stats | awk -v n="$2" '$1 == n { print $2 }'
}
declare -A gc
group_commit() { # fsync
	local ep=${mq_ep[$1]} s0 m0 s1 m1 t0 t1 j gp=() bad=0
	mq-admin -b "$ep" topic create gc --partitions 1 >/dev/null
	s0=$(stat_of "$ep" partition_syncs) m0=$(stat_of "$ep" messages_in)
	t0=$EPOCHREALTIME
	for ((j = 0; j < loops; j++)); do
		(
			for ((i = 0; i < loop_calls; i++)); do
				mq-pub -b "$ep" -t gc -m "loop $j call $i" >/dev/null || exit 1
			done
		) &
		gp+=($!)
	done
	for j in "${gp[@]}"; do wait "$j" || bad=$((bad + 1)); done
	t1=$EPOCHREALTIME
	s1=$(stat_of "$ep" partition_syncs) m1=$(stat_of "$ep" messages_in)
	[ "$bad" -eq 0 ] || echo "bench: $bad of $loops loops had a failed mq-pub (--fsync $1)" >&2
	gc[$1.rate]=$(awk -v a="$t0" -v b="$t1" -v m="$((m1 - m0))" 'BEGIN { printf "%.0f", m / (b - a) }')
	gc[$1.syncs]=$((s1 - s0))
	printf '   %-22s %8s %10s %9s %12s\n' "--fsync $1" "$((m1 - m0))" "${gc[$1.rate]}" "$((s1 - s0))" \
		"$(awk -v m="$((m1 - m0))" -v s="$((s1 - s0))" 'BEGIN { if (s) printf "%.2f", m / s; else print "-" }')"
}
echo
echo "5. group commit: $loops shell loops at once, each publishing $loop_calls messages with one mq-pub -m per message"
printf '   %-22s %8s %10s %9s %12s\n' broker messages "msgs/s" syncs "msgs/sync"
group_commit always
group_commit never
printf '   %s\n' "$(awk -v a="${gc[always.rate]}" -v n="${gc[never.rate]}" 'BEGIN {
	printf "always/never: %.2f (near 1: the start-up of mq-pub, not the syncs, sets the pace)", n ? a / n : 0 }')"

# ---- targets ------------------------------------------------------------------

# verdict COND...: "met" when every condition (awk, "1.2 <= 1.5") holds, else "MISSED".
verdict() {
	awk "BEGIN { ok = 1; $(printf 'if (!(%s)) ok = 0; ' "$@") print ok ? \"met\" : \"MISSED\" }"
}
fig() { local v=${r[$1]:-}; [ -n "$v" ] && [ "$v" != - ] && echo "$v"; }
echo
echo "targets"
if [ -n "${one[mosq]:-}" ]; then
	printf '   %-64s %-36s %s\n' "one-shot mq-pub (--fsync always) <= mosquitto_pub" \
		"${one[always]} vs ${one[mosq]} ms" "$(verdict "${one[always]} <= ${one[mosq]}")"
else
	printf '   %-64s %s\n' "one-shot mq-pub <= mosquitto_pub" "not measured (no mosquitto)"
fi
target_pct() { # label key p50-limit p99-limit
	local p50 p99
	if p50=$(fig "$2.p50") && p99=$(fig "$2.p99"); then
		printf '   %-64s %-36s %s\n' "$1" "p50 $p50, p99 $p99 ms" "$(verdict "$p50 <= $3" "$p99 <= $4")"
	else
		printf '   %-64s %s\n' "$1" "not measured"
	fi
}
target_pct "500/s --fsync always: p50 <= 0.7 ms, p99 <= 1.5 ms" quiet.500.always 0.7 1.5
target_pct "500/s --fsync never: p50 <= 0.2 ms, p99 <= 0.5 ms" quiet.500.never 0.2 0.5
if [ "$load" = 1 ]; then
	for rate in "${rates[@]}"; do
		for f in always never; do
			if p99=$(fig "load.$rate.$f.p99"); then
				printf '   %-64s %-36s %s\n' "under load, $rate/s --fsync $f: p99 <= 5 ms" "p99 $p99 ms" "$(verdict "$p99 <= 5")"
			else
				printf '   %-64s %s\n' "under load, $rate/s --fsync $f: p99 <= 5 ms" "not measured"
			fi
		done
	done
else
	printf '   %-64s %s\n' "under load: p99 <= 5 ms" "not run (MQ_BENCH_LAT_LOAD=1)"
fi
for mode in quiet load; do
	[ "$mode" = load ] && [ "$load" != 1 ] && continue
	for rate in "${rates[@]}"; do
		label="$rate/s --fsync never <= mosquitto, every percentile"
		[ "$mode" = load ] && label="under load, $label"
		worse='' conds=() ok=1
		for p in p50 p90 p99 p999 max; do
			if a=$(fig "$mode.$rate.never.$p") && b=$(fig "$mode.$rate.mosq.$p"); then
				conds+=("$a <= $b")
				awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > b) }' && worse+=" ${p/p999/p99.9} $a>$b"
			else
				ok=0
			fi
		done
		if [ "$ok" = 1 ]; then
			printf '   %-64s %-36s %s\n' "$label" "${worse:+worse at}${worse:-no worse anywhere}" "$(verdict "${conds[@]}")"
		else
			printf '   %-64s %s\n' "$label" "not measured"
		fi
	done
done
if [ -n "${gc[always.rate]:-}" ] && [ -n "${gc[never.rate]:-}" ]; then
	printf '   %-64s %-36s %s\n' "$loops one-shot loops: --fsync always >= 0.9 x never (start-up bound)" \
		"${gc[always.rate]} vs ${gc[never.rate]} msgs/s" "$(verdict "${gc[always.rate]} >= 0.9 * ${gc[never.rate]}")"
fi
