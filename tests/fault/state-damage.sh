#!/usr/bin/env bash
#
# state-damage.sh -- every state file in DIR/state (the consumer offsets
# log, the dedup journal, the shared bucket definitions, the lag history)
# damaged four ways (a byte flipped in the middle, cut in the middle,
# replaced with garbage, emptied), each on a copy of one data directory,
# then mq-serve restarted on it.  Each case must:
#   - start (no crash, no hang, no refusal);
#   - say so in one line on stderr naming the file and what it kept;
#   - keep exactly what came before the damage: the group resumes from the
#     last good commit (checked by reading on), the dedup window still
#     knows the kept ids (checked by sending every id again), the kept
#     buckets exist and the others do not, the kept lag samples are there;
#   - stop cleanly, and start again without a word about that file (the
#     damage was repaired, not just passed over).
# Prints "N cases, S silent, C crashes, W wrong".

. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
fault_init state-damage

N=$(fault_scale 1000 20000) # messages, sent with ids in 4 chunks (4 journal blocks)
COMMITS=10                  # commits of group g on t, each its own record: N/10, 2N/10, ... N
FIRST=                      # commit records before those (set by make_golden)
export MQ_TIMEOUT=5s

cases=0 silent=0 crashes=0 wrong=0

msgs() { seq "$1" "$2" | sed 's/.*/id&:v&/'; }

# The data directory every case starts from.
make_golden() {
	local c k
	fault_broker_start --lag-interval 1h || return 1
	for ((c = 0; c < 4; c++)); do
		msgs $((c * N / 4 + 1)) $(((c + 1) * N / 4)) | mq-pub -q -t t -K : --id key -w 5s ||
			{ fault_fail "publishing chunk $c failed"; return 1; }
	done
	# The group is made by a member reading topic u; its offsets on t
	# come from the resets alone.
	mq-pub -q -t u -m one -w 5s && mq-sub -t u -g g -e -w 5s >/dev/null ||
		{ fault_fail "mq-sub -g g failed"; return 1; }
	for ((k = 1; k <= COMMITS; k++)); do
		mq-admin group reset g -t t --to $((k * N / COMMITS)) -w 5s >/dev/null ||
			{ fault_fail "group reset to $((k * N / COMMITS)) failed"; return 1; }
	done
	mq-bucket --take b1 -r 100/s -w 5s && mq-bucket --take b2 -r 5/s -w 5s && mq-bucket --take b3 -r 7/m -w 5s ||
		{ fault_fail "defining shared buckets failed"; return 1; }
	fault_broker_stop
	# About 10 lag samples a partition, well short of the 30 a ring holds.
	fault_broker_start --lag-interval 100ms || return 1
	sleep 1
	fault_broker_stop
	mv "$FAULT_TMP/data" "$FAULT_TMP/golden"
	for f in offsets/00000000000000000000.log dedup buckets lag-history; do
		[ -s "$FAULT_TMP/golden/state/$f" ] || { fault_fail "no state file $f to damage"; return 1; }
	done
	# How many commit records come before the resets: a torn tail after
	# the last record makes the broker count them all.
	cp -a "$FAULT_TMP/golden" "$FAULT_TMP/data"
	printf 'torn tail' >>"$FAULT_TMP/data/state/offsets/00000000000000000000.log"
	fault_broker_start --lag-interval 1h || return 1
	local all
	all=$(kept_of "$(grep -F state/offsets "$FAULT_TMP/broker.log")")
	fault_broker_stop
	if [ -n "$all" ] && [ "$all" -gt "$COMMITS" ]; then
		FIRST=$((all - COMMITS))
	else
		fault_fail "a torn tail of the offsets log was not reported"
		FIRST=1 # the usual count, to go on with the cases
	fi
}

damage() { # HOW FILE
	local size byte
	size=$(stat -c %s "$2")
	case $1 in
	flip)
		byte=$(od -An -tu1 -j $((size / 2)) -N1 "$2")
		printf "\\$(printf %03o $((byte ^ 0x5a)))" | dd of="$2" bs=1 seek=$((size / 2)) conv=notrunc status=none
		;;
	cut) truncate -s $((size / 2 + 3)) "$2" ;;
	garbage) head -c "$size" /dev/urandom >"$2" ;;
	empty) : >"$2" ;;
	esac
}

# The number after "kept [the] " in LINE.
kept_of() { sed -n 's/.*kept \(the \)\{0,1\}\([0-9][0-9]*\) .*/\2/p' <<<"$1"; }

# What the restarted broker must still know; says what is wrong, if anything.
check_offsets() { # KEPT HOW
	local committed want read
	committed=$(mq-admin group describe g -w 5s 2>/dev/null | awk '$1 == "t" && $2 == "0" { print $3 }')
	[ -n "$committed" ] || committed=-
	want=$((($1 - FIRST) * N / COMMITS))
	[ "$1" -gt "$FIRST" ] || want=-
	[ "$committed" = "$want" ] || { echo "group g committed '$committed', the kept commits say $want"; return; }
	case $2 in flip | cut) [ "$want" != - ] || { echo "a damage in the middle kept no commit"; return; } ;; esac
	read=$(mq-sub -t t -g g -e -w 5s | wc -l)
	[ "$read" -eq $((N - ${want/-/0})) ] || echo "group g read $read messages on, expected $((N - ${want/-/0}))"
}

check_dedup() { # KEPT HOW
	local out dups
	out=$(msgs 1 "$N" | mq-pub -v -t t -K : --id key -w 5s 2>&1)
	dups=$(sed -n 's/.*(\([0-9]*\) duplicates).*/\1/p' <<<"$out")
	[ "$dups" = "$1" ] || { echo "sending all $N ids again: '$dups' duplicates, the kept ids say $1 ($out)"; return; }
	case $2 in flip | cut) [ "$1" -gt 0 ] || echo "a damage in the middle kept no id" ;; esac
}

check_buckets() { # KEPT HOW
	local i have
	for i in 1 2 3; do
		mq-bucket --take b$i -w 0 2>/dev/null
		have=$?
		if [ "$i" -le "$1" ] && [ $have -ne 0 ]; then echo "bucket b$i was kept but is gone"; return; fi
		if [ "$i" -gt "$1" ] && [ $have -eq 0 ]; then echo "bucket b$i was dropped but is there"; return; fi
	done
	case $2 in flip | cut) [ "$1" -gt 0 ] || echo "a damage in the middle kept no bucket" ;; esac
}

samples_of() { # TOPIC: samples of g's history on it (its one partition)
	mq-lag -g g -t "$1" -v -w 5s 2>&1 >/dev/null | sed -n 's/.*only \([0-9]*\) in the shortest history.*/\1/p'
}

check_lag_history() { # KEPT HOW
	local u t
	# Group g has a history on u and one on t; one sample each is taken
	# at start, after the kept ones.
	u=$(samples_of u)
	t=$(samples_of t)
	[ -n "$u" ] && [ -n "$t" ] && [ $((u + t - 2)) = "$1" ] ||
		{ echo "mq-lag sees '$u' + '$t' samples, the kept ones say $1 + 2"; return; }
	case $2 in flip | cut) [ "$1" -gt 0 ] || echo "a damage in the middle kept no sample" ;; esac
}

one_case() { # FILE HOW CHECK
	local file=$1 how=$2 check=$3 before lines line kept what
	cases=$((cases + 1))
	rm -rf "$FAULT_TMP/data"
	cp -a "$FAULT_TMP/golden" "$FAULT_TMP/data"
	damage "$how" "$FAULT_TMP/data/state/$file"
	before=$(wc -l <"$FAULT_TMP/broker.log")
	if ! fault_broker_start --lag-interval 1h; then
		crashes=$((crashes + 1))
		fault_broker_kill
		return
	fi
	lines=$(tail -n +$((before + 1)) "$FAULT_TMP/broker.log" | grep -F "state/${file%%/*}")
	if [ -z "$lines" ]; then
		silent=$((silent + 1))
		fault_fail "$file, $how: started without a word about it"
	elif [ "$(wc -l <<<"$lines")" -ne 1 ]; then
		wrong=$((wrong + 1))
		fault_fail "$file, $how: more than one line about it: $lines"
	else
		line=$lines
		kept=$(kept_of "$line")
		if [ -z "$kept" ]; then
			wrong=$((wrong + 1))
			fault_fail "$file, $how: the line does not say what was kept: $line"
		else
			what=$($check "$kept" "$how")
			[ -z "$what" ] || { wrong=$((wrong + 1)); fault_fail "$file, $how: $what (the line: $line)"; }
		fi
	fi
	if ! kill -0 "$FAULT_BROKER_PID" 2>/dev/null; then
		crashes=$((crashes + 1))
		fault_fail "$file, $how: mq-serve died: $(tail -3 "$FAULT_TMP/broker.log")"
		FAULT_BROKER_PID=
		return
	fi
	fault_broker_stop
	before=$(wc -l <"$FAULT_TMP/broker.log")
	fault_broker_start --lag-interval 1h || { crashes=$((crashes + 1)); return; }
	if tail -n +$((before + 1)) "$FAULT_TMP/broker.log" | grep -qF "state/${file%%/*}"; then
		wrong=$((wrong + 1))
		fault_fail "$file, $how: the damage is reported again at the next start (not repaired)"
	fi
	fault_broker_stop
}

if make_golden; then
	for how in flip cut garbage empty; do
		one_case offsets/00000000000000000000.log "$how" check_offsets
		one_case dedup "$how" check_dedup
		one_case buckets "$how" check_buckets
		one_case lag-history "$how" check_lag_history
	done
fi
fault_done "$cases cases, $silent silent, $crashes crashes, $wrong wrong"
