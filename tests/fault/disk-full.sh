#!/usr/bin/env bash
#
# disk-full.sh -- mq-serve's data directory on a small tmpfs that runs out
# of space for real.  Messages are published one mq-pub at a time, so each
# one is either acknowledged or refused, until the disk has refused many of
# them; then the topic is read while the disk is full, again after a
# restart on the still full disk, and once more after space was freed and
# publishing went on.  Every acknowledged message must be read exactly
# once and no refused one at all; the broker must say once per episode
# that the disk is full.
#
# Needs root (mount -t tmpfs); prints "skip: REASON" and exits 77 without.

. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
fault_init disk-full

refusals=$(fault_scale 15 60)   # refused publishes to provoke while full
after=$(fault_scale 20 100)     # publishes once space is freed
pad=$(printf '%0900d' 0)        # about 1 KB a message

data=$FAULT_TMP/data
mkdir -p "$data"
if ! mount -t tmpfs -o size=4m,mode=0755 tmpfs "$data" 2>"$FAULT_TMP/mount.err"; then
	echo "skip: cannot mount a tmpfs here ($(head -1 "$FAULT_TMP/mount.err"))"
	exit 77
fi
trap 'fault_broker_kill; umount "$data" 2>/dev/null || umount -l "$data"; _fault_cleanup' EXIT

acked=$FAULT_TMP/acked refused=$FAULT_TMP/refused
n_dups=0 n_stored=0 n_lost=0 # over every read
: >"$acked"
: >"$refused"

# publish I: one message; its name goes to acked or refused.
publish() {
	if mq-pub -q -t full -w 5s -m "m$1 $pad" 2>>"$FAULT_TMP/pub.err"; then
		echo "m$1" >>"$acked"
	else
		echo "m$1" >>"$refused"
	fi
}

# read_back WHAT: every message of the topic must be acked, none twice,
# and every acked one present.
read_back() {
	local got=$FAULT_TMP/got
	if ! mq-sub -q -t full -e -w 10s 2>"$FAULT_TMP/sub.err" | cut -d' ' -f1 >"$got"; then
		fault_fail "$1: mq-sub failed: $(tail -2 "$FAULT_TMP/sub.err")"
		return 1
	fi
	local dups lost stored
	dups=$(sort "$got" | uniq -d | wc -l)
	stored=$(sort -u "$got" | comm -12 - <(sort "$refused") | wc -l)
	lost=$(sort "$acked" | comm -23 - <(sort -u "$got") | wc -l)
	n_dups=$((n_dups + dups))
	[ "$dups" -eq 0 ] || fault_fail "$1: $dups messages read twice"
	n_stored=$((n_stored + stored))
	[ "$stored" -eq 0 ] || fault_fail "$1: $stored refused messages were stored: $(sort -u "$got" | comm -12 - <(sort "$refused") | head -3 | tr '\n' ' ')"
	n_lost=$((n_lost + lost))
	[ "$lost" -eq 0 ] || fault_fail "$1: $lost acknowledged messages missing"
	READ=$(wc -l <"$got")
}

# Small segments: the disk fills across rolls, index writes and appends.
fault_broker_start --fsync always --segment-bytes 4KiB || fault_done "broker did not start"

# Leave about 200 KB free, so the publishes below run into the limit.
avail=$(df -k --output=avail "$data" | tail -1)
if [ "$avail" -gt 400 ]; then
	dd if=/dev/zero of="$data/filler" bs=1k count=$((avail - 200)) status=none 2>/dev/null
fi

i=0
while [ "$(wc -l <"$refused")" -lt "$refusals" ] && [ "$i" -lt 2000 ]; do
	i=$((i + 1))
	publish "$i"
done
n_ack=$(wc -l <"$acked")
n_ref=$(wc -l <"$refused")
[ "$n_ref" -ge "$refusals" ] || fault_fail "the disk never filled ($n_ack publishes acknowledged)"
grep -q 'No space left' "$FAULT_TMP/pub.err" ||
	fault_fail "mq-pub did not say the disk is full: $(tail -2 "$FAULT_TMP/pub.err")"

read_back "while full"
during=$READ

# A restart on the still full disk: recovery and reads must not need to write.
fault_broker_stop
fault_broker_start --fsync always --segment-bytes 4KiB || fault_done "broker did not start on a full disk"
read_back "after a restart while full"
publish "$((++i))"
publish "$((++i))"

# the data disk's own line; a state file that cannot be saved says so apart
episodes=$(grep -c 'is full (cannot append' "$FAULT_TMP/broker.log")
[ "$episodes" -ge 1 ] || fault_fail "the broker did not log the full disk"
[ "$episodes" -le 2 ] || fault_fail "the broker logged the full disk $episodes times (once per episode): $(grep 'is full (cannot append' "$FAULT_TMP/broker.log" | head -3)"

# Space again: publishing resumes.
rm -f "$data/filler"
before=$(wc -l <"$acked")
for ((k = 0; k < after; k++)); do
	publish "$((++i))"
done
resumed=$(($(wc -l <"$acked") - before))
[ "$resumed" -eq "$after" ] || fault_fail "only $resumed of $after publishes succeeded once space was freed: $(tail -2 "$FAULT_TMP/pub.err")"
read_back "after space was freed"

fault_done "$(wc -l <"$acked") acked, $(wc -l <"$refused") refused, $during read while full, $READ read at the end, $n_lost lost, $n_stored refused-but-stored, $n_dups duplicated"
