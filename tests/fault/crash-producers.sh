#!/usr/bin/env bash
#
# crash-producers.sh -- mq-serve is killed with SIGKILL at random moments
# and restarted while several mq-pub processes publish numbered lines in
# chunks and wait for the acknowledgements.  Half of the restarts run with
# --fsync always, half with --fsync never (a killed process does not take
# the page cache with it, so both must keep every acknowledged message).
#
# Writers: one per topic (1 and 4 partitions) and per way of re-running a
# failed chunk.  Each feeds its chunk at a pace, so that mq-pub has small
# batches in flight and makes new ones while the broker is away and comes
# back (a batch lost with the connection must be stored before any newer
# one).  Every fifth restart waits longer than mq-pub's -w, so some runs
# fail; a chunk whose mq-pub exits non-zero is re-run whole, as a user
# would.  The lines are "KEY wW N" published with -K ' ', so a line's
# partition depends on its number only and a re-run sends it where the
# first run did.  What a user may rely on, and what is counted:
#   - an mq-pub that exits 0 had every line of its chunk stored: lost 0;
#   - a line is stored once, however often mq-pub resent its batch to a
#     restarted broker (the idempotent producer): a chunk that succeeded
#     at its first run has no line twice;
#   - a re-run may store again what the failed run had stored (a new
#     mq-pub is a new producer): shown, not counted.  With --id hash the
#     broker's dedup window drops those, also the ids of batches appended
#     in the very turn the broker was killed in (journalled after the
#     data's sync, so a restart takes them back from the log): a line of
#     a writer with --id stored twice is counted as duplicated;
#   - per partition, each writer's numbers increase (repeats from re-runs
#     without --id aside).
# Prints "N crashes, M acked, L lost, D duplicated".  MQ_FAULT_SEED makes
# the kill times repeat.

. "$(dirname "$0")/lib.bash"
fault_init crash-producers

KILLS=$(fault_scale 5 50)
CHUNK=$(fault_scale 2000 5000)
SEED=${MQ_FAULT_SEED:-$$}
RANDOM=$SEED
STOP=$FAULT_TMP/stop

# writer W TOPIC ID-OPTION...: publishes chunk after chunk until $STOP
# exists; one line per acknowledged chunk in $FAULT_TMP/wW.chunks:
# "first last runs".
writer() {
	local w=$1 topic=$2 n=0 runs first
	shift 2
	while [ ! -e "$STOP" ]; do
		first=$((n + 1))
		n=$((n + CHUNK))
		seq "$first" "$n" | awk -v w="$w" '{ print $1 % 16 " w" w " " $1 }' >"$FAULT_TMP/w$w.in"
		runs=0
		down=0
		while :; do
			runs=$((runs + 1))
			awk '{ print } NR % 250 == 0 { fflush(); system("sleep 0.02") }' "$FAULT_TMP/w$w.in" |
				mq-pub -t "$topic" -K ' ' --batch 100 -w 3s "$@" 2>>"$FAULT_TMP/w$w.err" && break
			echo "run $runs of lines $first-$n failed" >>"$FAULT_TMP/w$w.err"
			# A broker that is down is reported at once: wait for it (not a run).
			if tail -n 2 "$FAULT_TMP/w$w.err" | grep -q 'cannot connect to' && [ "$down" -lt 600 ]; then
				runs=$((runs - 1))
				down=$((down + 1))
				sleep 0.1
				continue
			fi
			if [ "$runs" -ge 20 ]; then
				echo "w$w: lines $first-$n not acknowledged after 20 runs" >"$FAULT_TMP/w$w.gaveup"
				return
			fi
		done
		echo "$first $n $runs" >>"$FAULT_TMP/w$w.chunks"
	done
}

fault_broker_start --partitions 1 || fault_done "0 crashes: the broker did not start"
mq-admin topic create p1 --partitions 1 >/dev/null || fault_fail "cannot create topic p1"
mq-admin topic create p4 --partitions 4 >/dev/null || fault_fail "cannot create topic p4"

writers=()
writer 1 p1 --id hash &
writers+=($!)
writer 2 p1 &
writers+=($!)
writer 3 p4 --id hash &
writers+=($!)
writer 4 p4 &
writers+=($!)

crashes=0
for ((k = 0; k < KILLS; k++)); do
	sleep "0.$((RANDOM % 8 + 2))"
	fault_broker_kill
	crashes=$((crashes + 1))
	# Now and then longer than mq-pub's -w: chunks fail and are re-run.
	if ((k % 5 == 2)); then sleep 3.5; else sleep "0.$((RANDOM % 3))"; fi
	if ((k % 2)); then fsync=always; else fsync=never; fi
	fault_broker_start --fsync "$fsync" || break
done
touch "$STOP"
wait "${writers[@]}"
[ -n "$FAULT_BROKER_PID" ] || fault_broker_start

for f in "$FAULT_TMP"/w*.gaveup; do
	[ -e "$f" ] && fault_fail "$(cat "$f") (seed $SEED); see $FAULT_TMP/w*.err"
done
for t in p1 p4; do
	mq-sub -t "$t" -e -F '%t %p %s\n' >>"$FAULT_TMP/stored" 2>>"$FAULT_TMP/sub.err" ||
		fault_fail "mq-sub -t $t -e failed: $(tail -3 "$FAULT_TMP/sub.err")"
done
fault_broker_stop

# Count per writer: acked lines (chunks that ended with exit 0), lost,
# stored twice, order per partition.
summary=$(python3 - "$FAULT_TMP" <<'EOF'
import sys, os
tmp = sys.argv[1]
withid = {1: True, 2: False, 3: True, 4: False}
acked = lost = dup = 0
redo = {True: 0, False: 0}
bad = []
count = {}
seqs = {}
with open(os.path.join(tmp, "stored")) as f:
    for line in f:
        t, p, w, n = line.split()
        w, n = int(w[1:]), int(n)
        count[(w, n)] = count.get((w, n), 0) + 1
        seqs.setdefault((t, p, w), []).append(n)
for w in withid:
    path = os.path.join(tmp, "w%d.chunks" % w)
    if not os.path.exists(path):
        continue
    for line in open(path):
        first, last, runs = map(int, line.split())
        for n in range(first, last + 1):
            c = count.get((w, n), 0)
            acked += 1
            if c == 0:
                lost += 1
                if len(bad) < 5: bad.append("w%d line %d acknowledged, not stored" % (w, n))
            elif c > 1 and runs == 1:
                dup += 1
                if len(bad) < 5: bad.append("w%d line %d stored %d times by one mq-pub" % (w, n, c))
            elif c > 1 and withid[w]:
                dup += 1
                if len(bad) < 5: bad.append("w%d line %d stored %d times by re-runs with --id" % (w, n, c))
            elif c > 1:
                redo[withid[w]] += 1
for (t, p, w), v in seqs.items():
    seen, last = set(), 0
    for n in v:
        if n in seen:
            continue
        seen.add(n)
        if n < last:
            bad.append("%s/%s: w%d line %d after line %d" % (t, p, w, n, last))
            break
        last = n
print(acked, lost, dup, redo[False], redo[True])
for b in bad:
    print(b)
EOF
) || fault_fail "counting failed"
read -r acked lost dup redo redo_id <<<"$(head -1 <<<"$summary")"
tail -n +2 <<<"$summary" | while read -r line; do echo "crash-producers: $line (seed $SEED)" >&2; done
[ "$(wc -l <<<"$summary")" -gt 1 ] && fault_fail "guarantees broken (seed $SEED, data kept with MQ_FAULT_KEEP=1)"
[ "${acked:-0}" -gt 0 ] || fault_fail "nothing was acknowledged"
fault_done "$crashes crashes, $acked acked, $lost lost, $dup duplicated (stored again by re-runs of failed chunks: $redo without --id, $redo_id with --id)"
