#!/usr/bin/env bats
# Every fuzz target (tests/fuzz/fuzz_*.c), built with replay.c, over its
# seed corpus and every input that once crashed it: what make fuzz found
# stays fixed.  make fuzz runs the targets under libFuzzer.

load helpers

replay() { # target
	local bin=${MQ_FUZZ_DIR:-$MQ_ROOT/build/fuzz}/$1 dirs=()
	[ -x "$bin" ] || fail "$bin is not built (make)"
	for d in corpus regress; do
		[ -d "$MQ_ROOT/tests/fuzz/$d/$1" ] && dirs+=("$MQ_ROOT/tests/fuzz/$d/$1")
	done
	[ ${#dirs[@]} -gt 0 ] || fail "no corpus for $1 in tests/fuzz/corpus/$1"
	run "$bin" "${dirs[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"replay: "*" inputs"* ]]
}

@test "fuzz replay: protocol frames (fuzz_wire)" { replay fuzz_wire; }
@test "fuzz replay: record batches (fuzz_batch)" { replay fuzz_batch; }
@test "fuzz replay: lines, JSON and msgpack input (fuzz_reader)" { replay fuzz_reader; }
@test "fuzz replay: -F templates (fuzz_template)" { replay fuzz_template; }
@test "fuzz replay: durations, sizes, offsets, rates (fuzz_parse)" { replay fuzz_parse; }
@test "fuzz replay: broker state files (fuzz_state)" { replay fuzz_state; }
@test "fuzz replay: partition recovery and reads (fuzz_log)" { replay fuzz_log; }
@test "fuzz replay: what a ZMTP peer sends (fuzz_zmtp)" { replay fuzz_zmtp; }
@test "fuzz replay: what a client sends mq-serve's listener (fuzz_zsrv)" { replay fuzz_zsrv; }
@test "fuzz replay: a Kafka member's assignment (fuzz_kassign)" { replay fuzz_kassign; }
