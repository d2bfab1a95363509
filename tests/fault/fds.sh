#!/usr/bin/env bash
#
# fds.sh -- mq-serve under `ulimit -n 256` (soft and hard, so it cannot
# raise it): thousands of topics, each created by its first publish, all
# written and read back, one by one and all at once.  Then the broker's
# descriptors are used up for real by idle connections: publishes to new
# topics may be refused, but every topic that exists is whole, the broker
# says once that it ran out, and once the connections go, the refused
# publishes succeed.

. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
fault_init fds

topics=$(fault_scale 150 2000)
starved=$(fault_scale 10 50)   # publishes to new topics while descriptors are used up

ulimit -n 256 || { echo "skip: cannot lower the descriptor limit (ulimit -n 256)"; exit 77; }
fault_broker_start || fault_done "broker did not start"

# publish_range FROM TO: topic fdN gets the one message "mN".
publish_range() {
	local i
	for ((i = $1; i < $2; i++)); do
		mq-pub -q -t "fd$i" -w 10s -m "m$i" 2>>"$FAULT_TMP/pub.err" || echo "fd$i" >>"$FAULT_TMP/failed"
	done
}
: >"$FAULT_TMP/failed"
step=$(((topics + 3) / 4))
pids=()
for ((k = 0; k < 4; k++)); do
	publish_range $((k * step)) $(((k + 1) * step < topics ? (k + 1) * step : topics)) &
	pids+=($!)
done
wait "${pids[@]}" # not the broker
nfail=$(wc -l <"$FAULT_TMP/failed")
[ "$nfail" -eq 0 ] || fault_fail "$nfail of $topics publishes to new topics failed: $(sort "$FAULT_TMP/pub.err" | uniq -c | sort -rn | head -2)"

# read_all: every topic, a thousand or so at once (one consumer reads at
# most 1024 topics), sorted into $FAULT_TMP/got.
read_all() {
	local pat
	: >"$FAULT_TMP/got.1"
	for pat in 'fd?' 'fd??' 'fd???' 'fd1???' 'fd2???'; do
		mq-sub -q -t "$pat" -e -w 30s 2>"$FAULT_TMP/sub.err" >>"$FAULT_TMP/got.1" || return 1
	done
	sort "$FAULT_TMP/got.1" >"$FAULT_TMP/got"
}

# All at once, by the thousand.
read_all || fault_fail "reading all $topics topics at once failed: $(tail -2 "$FAULT_TMP/sub.err")"
for ((i = 0; i < topics; i++)); do echo "m$i"; done | sort >"$FAULT_TMP/want"
missing=$(comm -23 "$FAULT_TMP/want" "$FAULT_TMP/got" | wc -l)
extra=$(comm -13 "$FAULT_TMP/want" "$FAULT_TMP/got" | wc -l)
[ "$missing" -eq 0 ] || fault_fail "$missing of $topics messages missing when reading every topic at once"
[ "$extra" -eq 0 ] || fault_fail "$extra unexpected or repeated messages when reading every topic at once"

# One by one, a sample spread over all of them.
bad=0
for ((i = 0; i < topics; i += topics / $(fault_scale 8 20))); do
	got=$(mq-sub -q -t "fd$i" -e -w 10s 2>>"$FAULT_TMP/sub.err")
	[ "$got" = "m$i" ] || bad=$((bad + 1))
done
[ "$bad" -eq 0 ] || fault_fail "$bad topics read one by one did not give their message: $(tail -2 "$FAULT_TMP/sub.err")"
fds_used=$(ls "/proc/$FAULT_BROKER_PID/fd" | wc -l)

# Clients that connected (and created their topics) before the broker's
# descriptors are used up by idle connections (ZeroMQ keeps each until its
# handshake times out); then they publish, which opens partition files.
: >"$FAULT_TMP/failed"
mkfifo "$FAULT_TMP/go" # each message waits until it is opened and closed
spids=()
for ((j = 0; j < starved; j++)); do
	i=$((topics + j))
	{
		{ cat "$FAULT_TMP/go" >/dev/null; echo "m$i"; } |
			mq-pub -q -t "fd$i" -w 10s 2>>"$FAULT_TMP/starved.err" || echo "fd$i" >>"$FAULT_TMP/failed"
	} &
	spids+=($!)
done
for ((t = 0; t < 100; t++)); do
	[ "$(ls "$FAULT_TMP"/data/topics/fd*/topic.meta 2>/dev/null | wc -l)" -ge $((topics + starved)) ] && break
	sleep 0.1
done
python3 - "$FAULT_PORT" 300 >"$FAULT_TMP/hog.out" 2>&1 3>&- <<'EOF' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        break
print(len(held), flush=True)
time.sleep(25)
EOF
hog=$!
for ((t = 0; t < 100; t++)); do [ -s "$FAULT_TMP/hog.out" ] && break; sleep 0.1; done
sleep 1
exec {go}>"$FAULT_TMP/go"
sleep 0.5 # every reader has it open
exec {go}>&-
wait "${spids[@]}"
refused=$(wc -l <"$FAULT_TMP/failed")
kill "$hog" 2>/dev/null
wait "$hog" 2>/dev/null
emfile=$(grep -c 'Too many open files' "$FAULT_TMP/starved.err")

# Every topic directory is a whole topic: a refused create left nothing.
half=0
for d in "$FAULT_TMP"/data/topics/*/; do
	[ -f "$d/topic.meta" ] || { half=$((half + 1)); echo "half-made: $d" >&2; }
done
[ "$half" -eq 0 ] || fault_fail "$half topic directories without topic.meta"
if [ "$emfile" -gt 0 ]; then
	lines=$(grep -c 'out of file descriptors' "$FAULT_TMP/broker.log")
	[ "$lines" -eq 1 ] || fault_fail "the broker said $lines times that it ran out of descriptors (once per episode)"
fi

# Descriptors free again: the refused publishes go through.
sleep 1
: >"$FAULT_TMP/retry"
while read -r t; do
	mq-pub -q -t "$t" -w 10s -m "m${t#fd}" 2>>"$FAULT_TMP/pub.err" || echo "$t" >>"$FAULT_TMP/retry"
done <"$FAULT_TMP/failed"
[ ! -s "$FAULT_TMP/retry" ] || fault_fail "$(wc -l <"$FAULT_TMP/retry") publishes still refused with descriptors free: $(tail -1 "$FAULT_TMP/pub.err")"
total=$((topics + starved))
read_all || fault_fail "final read failed: $(tail -2 "$FAULT_TMP/sub.err")"
for ((i = 0; i < total; i++)); do echo "m$i"; done | sort >"$FAULT_TMP/want"
cmp -s "$FAULT_TMP/want" "$FAULT_TMP/got" ||
	fault_fail "final read: $(comm -23 "$FAULT_TMP/want" "$FAULT_TMP/got" | wc -l) missing, $(comm -13 "$FAULT_TMP/want" "$FAULT_TMP/got" | wc -l) extra"

fault_done "$topics topics under ulimit -n 256 written and read back ($fds_used descriptors open), $refused of $starved refused ($emfile for lack of descriptors) while $(cat "$FAULT_TMP/hog.out") idle connections held them, 0 half-made topics, all $total read at the end"
