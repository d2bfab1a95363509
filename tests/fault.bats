#!/usr/bin/env bats
# The fault harness (tests/fault/*.sh) at its quick scale; make check-fault
# runs it at full scale.  One test per script.

load helpers

fault_script() {
	run env MQ_FAULT_SCALE=quick bash "$MQ_ROOT/tests/fault/$1.sh"
	echo "$output"
	[ "$status" -ne 77 ] || skip "$(grep -m1 '^skip:' <<<"$output")"
	[ "$status" -eq 0 ]
}

@test "fault: a damaged state file (offsets, dedup ids, buckets, lag history) keeps what came before the damage and says so" { fault_script state-damage; }
