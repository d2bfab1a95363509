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

@test "fault: a full disk refuses publishes without storing them, and reads go on, also after a restart" { fault_script disk-full; }

@test "fault: thousands of topics under ulimit -n 256 are all written and read back; running out of descriptors leaves no half-made topic" { fault_script fds; }

@test "fault: a publish whose fdatasync fails (EIO at writeback) is refused and never delivered, not even to a follower" { fault_script sync-fail; }
