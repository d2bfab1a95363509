#!/usr/bin/env bash
# damage.sh -- the damage matrix: known records in several small segments,
# then, on a fresh copy of the data directory each time, one fault: a
# byte flipped in each field of a batch header and in each record, a
# sealed and the active segment cut short, a middle segment deleted, each
# index file deleted, garbled or cut.  (A damaged last batch of the active
# segment is a torn write: cut at recovery, as after a crash.)  For each: the broker starts,
# `mq-sub -e` writes exactly the records before the damage and nothing
# damaged, exits 1 naming the offsets (0 when only an index was hit: it is
# rebuilt), never hangs; the broker logs the damage once; `--skip-damaged`
# reads everything else.  With MQ_BIN=build/san/bin, no leak or crash.
. "$(dirname "$0")/lib.bash"
fault_init damage

RECORDS=$(fault_scale 3000 6000)
RECSTEP=$(fault_scale 10 1) # every RECSTEP-th record of the batch gets a flip
INDEX_FAULTS=$(fault_scale garble 'delete garble cut')
T=t
PART=$FAULT_TMP/data/topics/$T/0
SUB_TIMEOUT=30

seq -f 'rec-%06g-abcdefghijklmnopqrstuvwxyz' 0 $((RECORDS - 1)) >"$FAULT_TMP/known"
fault_broker_start --segment-bytes 16KiB || fault_done "broker did not start"
mq-pub -t "$T" --batch 20 <"$FAULT_TMP/known" || fault_fail "mq-pub failed"
fault_broker_stop
cp -a "$FAULT_TMP/data" "$FAULT_TMP/pristine"
nsegs=$(ls "$PART"/*.log | wc -l)
[ "$nsegs" -ge 5 ] || fault_fail "only $nsegs segments"

# damage.py DIR ACTION ARG: does the damage, prints "FIRST END": the first
# offset that cannot be read and the end of what the fault hit (for an
# index fault "-1 -1": everything stays readable).
cat >"$FAULT_TMP/damage.py" <<'PY'
import os, struct, sys
d, action, arg = sys.argv[1], sys.argv[2], sys.argv[3]
segs = sorted(f[:-4] for f in os.listdir(d) if f.endswith('.log'))
def path(i, ext): return os.path.join(d, segs[i] + '.' + ext)
def batches(i):
    b = open(path(i, 'log'), 'rb').read(); pos = 0; out = []
    while pos + 80 <= len(b):
        base, length = struct.unpack_from('<QI', b, pos)
        count, = struct.unpack_from('<I', b, pos + 20)
        out.append((pos, base, length, count)); pos += length
    return out
def flip(p, at):
    with open(p, 'r+b') as f:
        f.seek(at); c = f.read(1); f.seek(at); f.write(bytes([c[0] ^ 0x10]))
sealed = 2                       # a middle segment
pos, base, length, count = batches(sealed)[1]
if action == 'field':            # a header byte of the second batch
    flip(path(sealed, 'log'), pos + int(arg)); print(base, base + count)
elif action == 'record':         # a byte inside record k of that batch
    b = open(path(sealed, 'log'), 'rb').read(); p = pos + 80
    for k in range(int(arg)):
        n = 0; s = 0
        while True:
            c = b[p + s]; n |= (c & 0x7f) << (7 * s); s += 1
            if c < 0x80: break
        p += s + n
    flip(path(sealed, 'log'), p + 3); print(base, base + count)
elif action == 'active-record':  # the active segment, a batch before its last
    a = len(segs) - 1; bs = batches(a); pos, base, length, count = bs[-2]
    flip(path(a, 'log'), pos + 80 + 3); print(base, base + count)
elif action == 'cut-sealed':
    last = batches(sealed)[-1]
    os.truncate(path(sealed, 'log'), last[0] + last[2] - 100); print(last[1], last[1] + last[3])
elif action == 'cut-active':
    a = len(segs) - 1; last = batches(a)[-1]
    os.truncate(path(a, 'log'), last[0] + last[2] - 100); print(last[1], last[1] + last[3])
elif action == 'delete-middle':
    nxt = int(segs[sealed + 1])
    for e in ('log', 'idx', 'tix'):
        if os.path.exists(path(sealed, e)): os.unlink(path(sealed, e))
    print(int(segs[sealed]), nxt)
elif action in ('idx', 'tix'):   # arg: delete, garble, cut; sealed and active
    for i in (sealed, len(segs) - 1):
        p = path(i, action)
        if not os.path.exists(p): continue
        if arg == 'delete': os.unlink(p)
        elif arg == 'cut': os.truncate(p, max(0, os.path.getsize(p) - 5))
        else:
            n = os.path.getsize(p)
            for at in range(4, n, 7): flip(p, at)
    print(-1, -1)
PY

cases=0 served_damaged=0 silent=0 hangs=0 sanitizer=0
run_case() { # NAME ACTION ARG
	local name=$1 range first end rc lines
	rm -rf "$FAULT_TMP/data"
	cp -a "$FAULT_TMP/pristine" "$FAULT_TMP/data"
	range=$(python3 "$FAULT_TMP/damage.py" "$PART" "$2" "$3") || { fault_fail "$name: damage.py failed"; return; }
	read -r first end <<<"$range"
	: >"$FAULT_TMP/broker.log"
	_fault_starts=0
	fault_broker_start --segment-bytes 16KiB || return
	cases=$((cases + 1))
	timeout "$SUB_TIMEOUT" mq-sub -t "$T" -e >"$FAULT_TMP/out" 2>"$FAULT_TMP/err"
	rc=$?
	lines=$(wc -l <"$FAULT_TMP/out")
	if [ "$rc" -eq 124 ]; then
		hangs=$((hangs + 1))
		fault_fail "$name: mq-sub -e still running after ${SUB_TIMEOUT}s"
	fi
	if ! cmp -s "$FAULT_TMP/out" <(head -n "$lines" "$FAULT_TMP/known"); then
		served_damaged=$((served_damaged + 1))
		fault_fail "$name: mq-sub wrote records that differ from those published"
	fi
	if [ "$first" -lt 0 ]; then # an index: rebuilt, everything readable
		[ "$rc" -eq 0 ] && [ "$lines" -eq "$RECORDS" ] ||
			fault_fail "$name: status $rc, $lines of $RECORDS records: $(cat "$FAULT_TMP/err")"
	elif [ "$rc" -eq 0 ] && [ "$2" = cut-active ] && [ "$lines" -eq "$first" ]; then
		# a torn tail of the active segment is cut at recovery (offsets end
		# there), and the broker says so
		if ! grep -q "cut [0-9]* bytes\? from its end (torn batch.*now ends at offset $first\$" "$FAULT_TMP/broker.log"; then
			silent=$((silent + 1))
			fault_fail "$name: the broker cut the torn tail without a word: $(grep -v listening "$FAULT_TMP/broker.log" | head -3)"
		fi
	else
		local said
		said=$(grep -o "partition 0: offsets [0-9]* to [0-9]*" "$FAULT_TMP/err")
		read -r _ _ _ a _ b <<<"$said"
		if [ "$rc" -ne 1 ] || [ -z "$said" ]; then
			silent=$((silent + 1))
			fault_fail "$name: status $rc after $lines records, expected 1 naming offsets $first..: $(cat "$FAULT_TMP/err")"
		elif [ "$lines" -ne "$first" ] || [ "$a" -ne "$first" ] || [ "$b" -lt $((end - 1)) ]; then
			silent=$((silent + 1))
			fault_fail "$name: $lines records written, mq-sub named $a to $b; the damage holds $first to $((end - 1))"
		else
			[ "$(grep -c "topic '$T' partition 0: offsets $a to $b cannot be read" "$FAULT_TMP/broker.log")" -eq 1 ] ||
				fault_fail "$name: the broker did not log the damage once: $(grep -v listening "$FAULT_TMP/broker.log" | head -3)"
			# Skipping reads all the rest, and says what it skipped.
			timeout "$SUB_TIMEOUT" mq-sub -t "$T" -e --skip-damaged >"$FAULT_TMP/out2" 2>"$FAULT_TMP/err2"
			rc=$?
			[ "$rc" -eq 124 ] && { hangs=$((hangs + 1)); fault_fail "$name: mq-sub --skip-damaged hangs"; }
			grep -q "skipped offsets $a to $b" "$FAULT_TMP/err2" ||
				fault_fail "$name: --skip-damaged did not report $a to $b: $(cat "$FAULT_TMP/err2")"
			if ! cmp -s "$FAULT_TMP/out2" <(sed "$((a + 1)),$((b + 1))d" "$FAULT_TMP/known"); then
				if [ "$rc" -ne 1 ] || ! cmp -s "$FAULT_TMP/out2" <(sed "$((a + 1)),$((b + 1))d" "$FAULT_TMP/known" | head -n "$(wc -l <"$FAULT_TMP/out2")"); then
					served_damaged=$((served_damaged + 1))
					fault_fail "$name: --skip-damaged wrote something else than all but $a to $b (status $rc)"
				fi
			fi
		fi
	fi
	fault_broker_stop
	if grep -q 'Sanitizer\|runtime error' "$FAULT_TMP/broker.log" "$FAULT_TMP/err" 2>/dev/null; then
		sanitizer=$((sanitizer + 1))
		fault_fail "$name: $(grep -m3 'Sanitizer\|runtime error\|SUMMARY' "$FAULT_TMP/broker.log" "$FAULT_TMP/err")"
	fi
}

FIELDS=$(fault_scale 'base_offset:2 length:9 crc:13 magic:16 count:20 first_ts:25 producer_id:41 txn_id:73' \
	'base_offset:2 length:9 crc:13 magic:16 header_len:17 flags:18 count:20 first_ts:25 max_ts:33
	producer_id:41 base_seq:48 epoch:52 deliver_at:57 expire_at:65 txn_id:73')
for f in $FIELDS; do
	run_case "flipped ${f%%:*}" field "${f#*:}"
done
for ((k = 0; k < 20; k += RECSTEP)); do
	run_case "flipped record $k" record "$k"
done
run_case "flipped record in the active segment" active-record -
run_case "sealed segment cut" cut-sealed -
run_case "active segment cut" cut-active -
run_case "middle segment deleted" delete-middle -
for ix in idx tix; do
	for how in $INDEX_FAULTS; do
		run_case "$ix $how" "$ix" "$how"
	done
done

fault_done "$cases cases, $served_damaged served damaged, $silent silent skips, $hangs hangs, $sanitizer sanitizer reports"
