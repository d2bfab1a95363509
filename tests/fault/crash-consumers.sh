#!/usr/bin/env bash
#
# crash-consumers.sh -- three members of a consumer group (mq-sub -g G,
# each writing through a slow reader to a file of its own) are killed with SIGKILL at random
# moments and restarted, while mq-pub keeps publishing numbered lines to
# a topic of 4 partitions.  At the end every member is killed once more,
# and after their sessions ran out a last `mq-sub -g G -e` reads what the
# group had not committed.
#
# The guarantee checked (at least once, nothing committed unwritten):
# every acknowledged line is in a member's file or in that last read.
# A line missing from both was committed by a member that had not
# written it: the group moved past it and no one will deliver it.  Lines
# delivered more than once (written, not committed, then killed) are
# allowed and shown.  Prints "N kills, M published, L lost, D delivered
# again".  MQ_FAULT_SEED makes the kill times repeat.

. "$(dirname "$0")/lib.bash"
fault_init crash-consumers

KILLS=$(fault_scale 6 30)
MEMBERS=3
SEED=${MQ_FAULT_SEED:-$$}
RANDOM=$SEED
STOP=$FAULT_TMP/stop

fault_broker_start --partitions 4 || fault_done "0 kills: the broker did not start"
mq-admin topic create t --partitions 4 >/dev/null || fault_fail "cannot create topic t"

# Publishes chunks of 1000 lines until $STOP exists; a failed chunk is
# published again.  Acknowledged chunks in $FAULT_TMP/pub.chunks.
publisher() {
	local n=0 first
	while [ ! -e "$STOP" ]; do
		first=$((n + 1))
		n=$((n + 1000))
		seq "$first" "$n" >"$FAULT_TMP/pub.in"
		until mq-pub -t t --batch 100 <"$FAULT_TMP/pub.in" 2>>"$FAULT_TMP/pub.err"; do :; done
		echo "$first $n" >>"$FAULT_TMP/pub.chunks"
		sleep 0.05
	done
}

# member I: (re)start member I.  It writes into a pipe read by a slow
# reader that copies to a file of its own, so that a member often has
# messages it fetched but could not write yet when it is killed; the
# reader outlives it and keeps everything the member wrote.
# The reader: a 4 KiB pipe (where it can), drained at about 1.5 KB/s (so
# that a member is often blocked with messages in hand), at full speed
# once the file $DRAIN exists.
DRAIN=$FAULT_TMP/drain
SLOW_READER='
import fcntl, os, sys, time
try:
    fcntl.fcntl(0, 1031, 4096)  # F_SETPIPE_SZ; EBUSY once more is in it
except OSError:
    pass
with open(sys.argv[1], "wb", buffering=0) as out:
    while True:
        fast = os.path.exists(sys.argv[2])
        b = sys.stdin.buffer.raw.read(65536 if fast else 32)
        if not b:
            break
        out.write(b)
        if not fast:
            time.sleep(0.02)
'
pids=()
readers=()
starts=0
member() {
	local fifo=$FAULT_TMP/pipe.$starts
	mkfifo "$fifo" || fault_fail "mkfifo $fifo failed"
	python3 -c "$SLOW_READER" "$FAULT_TMP/out.$1.$starts" "$DRAIN" <"$fifo" &
	readers+=($!)
	mq-sub -g G -t t --session-timeout 1s -q >"$fifo" 2>>"$FAULT_TMP/sub.err" &
	pids[$1]=$!
	starts=$((starts + 1))
}

publisher &
pub=$!
for ((i = 0; i < MEMBERS; i++)); do member "$i"; done

kills=0
for ((k = 0; k < KILLS; k++)); do
	sleep "0.$((RANDOM % 8 + 2))"
	i=$((RANDOM % MEMBERS))
	kill -9 "${pids[$i]}" 2>/dev/null
	wait "${pids[$i]}" 2>/dev/null
	kills=$((kills + 1))
	member "$i"
done
touch "$STOP"
wait "$pub"
sleep 0.5 # let the members take some of the last lines before they die
for ((i = 0; i < MEMBERS; i++)); do
	kill -9 "${pids[$i]}" 2>/dev/null
	wait "${pids[$i]}" 2>/dev/null
	kills=$((kills + 1))
done
touch "$DRAIN"
wait "${readers[@]}"

# The killed members own their partitions until their sessions (1 s) run
# out; a reader joining before would be given nothing.
for ((i = 0; i < 100; i++)); do
	[ "$(mq-admin group describe G 2>/dev/null | awk '$1 == "members" { print $2; exit }')" = 0 ] && break
	sleep 0.1
done
mq-sub -g G -t t -e >"$FAULT_TMP/final" 2>>"$FAULT_TMP/sub.err" ||
	fault_fail "the last mq-sub -g G -e failed: $(tail -3 "$FAULT_TMP/sub.err")"
fault_broker_stop

summary=$(python3 - "$FAULT_TMP" <<'EOF'
import sys, os, glob
tmp = sys.argv[1]
want = set()
for line in open(os.path.join(tmp, "pub.chunks")):
    a, b = map(int, line.split())
    want.update(range(a, b + 1))
seen = {}
for f in glob.glob(os.path.join(tmp, "out.*")) + [os.path.join(tmp, "final")]:
    for line in open(f):
        line = line.strip()
        if line.isdigit():
            seen[int(line)] = seen.get(int(line), 0) + 1
lost = sorted(want - set(seen))
again = sum(1 for n in want if seen.get(n, 0) > 1)
print(len(want), len(lost), again)
for n in lost[:5]:
    print("line %d acknowledged, in no member's output and not in the group's last read" % n)
EOF
) || fault_fail "counting failed"
read -r published lost again <<<"$(head -1 <<<"$summary")"
tail -n +2 <<<"$summary" | while read -r line; do echo "crash-consumers: $line (seed $SEED)" >&2; done
[ "${lost:-1}" -eq 0 ] || fault_fail "committed without being written (seed $SEED, data kept with MQ_FAULT_KEEP=1)"
[ "${published:-0}" -gt 0 ] || fault_fail "nothing was published"
fault_done "$kills kills, $published published, $lost lost, $again delivered again"
