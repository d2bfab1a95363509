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

@test "fault: damaged segments and indexes are reported, never served, never skipped silently" { fault_script damage; }
