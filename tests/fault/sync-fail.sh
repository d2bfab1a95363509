#!/usr/bin/env bash
#
# sync-fail.sh -- a disk that accepts writes but fails them at writeback:
# the data directory is an ext4 file system (no journal, errors=continue)
# on a loop device whose backing file lies on a tmpfs too small for it,
# so write() succeeds into the page cache and fdatasync() fails, as on a
# dying disk; growing the tmpfs heals it.  With
# --fsync always, a publish whose sync failed must be refused and never
# delivered, not even to a consumer that was following the topic while it
# was appended; every acknowledged one must be read back exactly once.
# Once the disk heals, a refused message sent again with its --id is
# stored (the ids of a turn that failed to sync are taken back).
#
# Needs root (mount, losetup, mkfs.ext4); prints "skip: REASON" and exits
# 77 without.

. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
fault_init sync-fail

refusals=$(fault_scale 3 10)
pad=$(head -c 60000 /dev/zero | tr '\0' 'x') # about 60 KB a message

skip() {
	echo "skip: $*"
	exit 77
}
for tool in losetup mkfs.ext4; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
back=$FAULT_TMP/back data=$FAULT_TMP/ext loopdev=
mkdir -p "$back" "$data"
ln -s ext/mq "$FAULT_TMP/data" # the broker's directory, below lost+found
cleanup() {
	fault_broker_kill
	[ -n "${follower:-}" ] && kill "$follower" 2>/dev/null
	mountpoint -q "$data" && { umount "$data" 2>/dev/null || umount -l "$data"; }
	[ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
	mountpoint -q "$back" && { umount "$back" 2>/dev/null || umount -l "$back"; }
	_fault_cleanup
}
trap cleanup EXIT
mount -t tmpfs -o size=6m tmpfs "$back" 2>"$FAULT_TMP/setup.err" || skip "cannot mount a tmpfs ($(head -1 "$FAULT_TMP/setup.err"))"
truncate -s 64M "$back/img" &&
	mkfs.ext4 -q -F -O ^has_journal -E lazy_itable_init=1 "$back/img" >"$FAULT_TMP/setup.err" 2>&1 ||
	skip "mkfs.ext4 failed ($(head -1 "$FAULT_TMP/setup.err"))"
loopdev=$(losetup -f --show "$back/img" 2>"$FAULT_TMP/setup.err") || skip "no loop device ($(head -1 "$FAULT_TMP/setup.err"))"
mount -t ext4 -o errors=continue "$loopdev" "$data" 2>"$FAULT_TMP/setup.err" || skip "cannot mount ext4 on $loopdev ($(head -1 "$FAULT_TMP/setup.err"))"
mkdir "$data/mq"

fault_broker_start --fsync always || fault_done "broker did not start"
acked=$FAULT_TMP/acked refused=$FAULT_TMP/refused
n_dups=0 n_stored=0 n_lost=0 # over every read
: >"$acked"
: >"$refused"
mq-pub -q -t sync -m "m0 $pad" 2>>"$FAULT_TMP/pub.err" && echo m0 >>"$acked"
# A consumer that follows the topic while it is appended to.
mq-sub -q -t sync -w 60s >"$FAULT_TMP/follow.out" 2>"$FAULT_TMP/follow.err" &
follower=$!

i=0
while [ "$(wc -l <"$refused")" -lt "$refusals" ] && [ "$i" -lt 400 ]; do
	i=$((i + 1))
	if printf 'm%d %s\n' "$i" "$pad" | mq-pub -q -t sync -w 10s --id hash 2>>"$FAULT_TMP/pub.err"; then
		echo "m$i" >>"$acked"
	else
		echo "m$i" >>"$refused"
	fi
done
[ "$(wc -l <"$refused")" -ge "$refusals" ] || fault_fail "no publish was refused: the disk never failed"
grep -q 'cannot sync' "$FAULT_TMP/pub.err" ||
	fault_fail "no refusal said the sync failed: $(sort "$FAULT_TMP/pub.err" | uniq -c | head -3)"

# check WHAT FILE: nothing refused, nothing twice, (with all) every acked one.
check() {
	local dups stored lost
	dups=$(sort "$2" | uniq -d | wc -l)
	stored=$(sort -u "$2" | comm -12 - <(sort "$refused") | wc -l)
	n_dups=$((n_dups + dups))
	[ "$dups" -eq 0 ] || fault_fail "$1: $dups messages delivered twice"
	n_stored=$((n_stored + stored))
	[ "$stored" -eq 0 ] || fault_fail "$1: $stored refused messages were delivered: $(sort -u "$2" | comm -12 - <(sort "$refused") | head -3 | tr '\n' ' ')"
	if [ "${3:-}" = all ]; then
		lost=$(sort "$acked" | comm -23 - <(sort -u "$2") | wc -l)
		n_lost=$((n_lost + lost))
	[ "$lost" -eq 0 ] || fault_fail "$1: $lost acknowledged messages missing"
	fi
}
mq-sub -q -t sync -e -w 10s 2>"$FAULT_TMP/sub.err" | cut -c1-12 | cut -d' ' -f1 >"$FAULT_TMP/got" ||
	fault_fail "reading back failed: $(tail -2 "$FAULT_TMP/sub.err")"
check "read back" "$FAULT_TMP/got" all
kill "$follower" 2>/dev/null
wait "$follower" 2>/dev/null
follower=
cut -c1-12 "$FAULT_TMP/follow.out" | cut -d' ' -f1 >"$FAULT_TMP/followed"
check "the follower" "$FAULT_TMP/followed"
# (Without a journal, ext4 keeps going after failed writebacks, which
# the loop device reports as EIO or, its backing store full, ENOSPC.)
grep -q "data directory .*(cannot sync partition '.*/sync/0'" "$FAULT_TMP/broker.log" ||
	fault_fail "the broker did not log the failed sync"
nrefused=$(wc -l <"$refused")

# The disk heals (its backing store grows): each refused message sent
# again with the same id is stored, not taken for a duplicate of the
# copy the failed sync cut off, and read back once.
mount -o remount,size=128m "$back" 2>"$FAULT_TMP/setup.err" || fault_fail "cannot grow the tmpfs: $(cat "$FAULT_TMP/setup.err")"
resent=0
while read -r m; do
	if ! out=$(printf '%s %s\n' "$m" "$pad" | mq-pub -v -t sync -w 10s --id hash 2>&1); then
		fault_fail "$m sent again after the disk healed: refused: $out"
	elif ! grep -q "1 acknowledged (0 duplicates)" <<<"$out"; then
		fault_fail "$m sent again with its id: not stored ($out)"
	else
		resent=$((resent + 1))
		echo "$m" >>"$acked"
	fi
done <"$refused"
: >"$refused"
mq-sub -q -t sync -e -w 10s 2>"$FAULT_TMP/sub.err" | cut -c1-12 | cut -d' ' -f1 >"$FAULT_TMP/got2" ||
	fault_fail "reading back after the resends failed: $(tail -2 "$FAULT_TMP/sub.err")"
check "read back after the resends" "$FAULT_TMP/got2" all

fault_done "$(($(wc -l <"$acked") - resent)) acked, $nrefused refused after a failed fdatasync, $(wc -l <"$FAULT_TMP/got") read back, $(wc -l <"$FAULT_TMP/followed") seen by a follower, $n_lost lost, $n_stored refused-but-delivered, $n_dups duplicated, $resent refused then sent again with their id and stored"
