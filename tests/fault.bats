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

@test "fault: broker SIGKILLed under publishers (fsync always and never): no acknowledged message lost or stored twice, order kept" { fault_script crash-producers; }

@test "fault: group members SIGKILLed while reading: every message delivered at least once, nothing committed unwritten" { fault_script crash-consumers; }

@test "fault: a full disk refuses publishes without storing them, and reads go on, also after a restart" { fault_script disk-full; }

@test "fault: thousands of topics under ulimit -n 256 are all written and read back; running out of descriptors leaves no half-made topic" { fault_script fds; }

@test "fault: a publish whose fdatasync fails (EIO at writeback) is refused and never delivered, not even to a follower" { fault_script sync-fail; }

@test "fault: damaged segments and indexes are reported, never served, never skipped silently" { fault_script damage; }

@test "fault: power cuts (every file cut back to its last sync): --fsync always loses no acknowledged message; never loses exactly what was not synced, and serves the rest intact" { fault_script power-cut; }
