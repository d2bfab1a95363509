#!/usr/bin/env bats
# The programs on a real terminal: each runs in a tmux pane (a private
# tmux server per test), is driven with send-keys and read back with
# capture-pane.  mq-lag --watch redraws in place and ends on Ctrl-C;
# mq-pub's progress line is redrawn in place with count, rate, how far
# into its input file it is and the time left; no program writes
# colours; mq-sub shows each message as it comes.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	command -v tmux >/dev/null || skip "tmux is not installed (make deps installs it)"
	TMUX_SOCK=$BATS_TEST_TMPDIR/tmux.sock
}

teardown() {
	tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
	mq_teardown
}

# Run a shell command line in a new 100x30 pane named $1, with the
# programs under test and the broker of this test; when the command ends
# the pane says "exit=STATUS" and stays.
pane() { # name command
	tmux -S "$TMUX_SOCK" -f /dev/null new-session -d -s "$1" -x 100 -y 30 \
		"env PATH='$PATH' MQ_BROKER='$MQ_BROKER' LANG=C.UTF-8 bash --norc -c '$2; echo exit=\$?; sleep 60'"
}

screen() { # name [capture-pane options]
	local n=$1
	shift
	tmux -S "$TMUX_SOCK" capture-pane -p "$@" -t "$n"
}

# Wait up to 20 s for the pane to show text matching the regexp $2.
wait_screen() { # name regexp
	local i
	for ((i = 0; i < 200; i++)); do
		screen "$1" | grep -Eq -- "$2" && return 0
		sleep 0.1
	done
	echo "pane $1 never showed /$2/; it shows:" >&2
	screen "$1" >&2
	return 1
}

@test "terminal: mq-lag --watch redraws in place and ends cleanly on Ctrl-C" {
	start_broker
	seq 1 10 | mq-pub -t w
	mq-sub -t w -g g -n 2 >/dev/null
	pane lag "mq-lag -g g --watch 1s"
	wait_screen lag '^GROUP +TOPIC'
	# Three more rounds: still one table, drawn over the last one.
	sleep 3.2
	run screen lag
	[ "$(grep -c '^GROUP' <<<"$output")" -eq 1 ]
	assert_line --regexp '^g +w +0 +2 +10 +8 '
	run screen lag -e # no colours, also with NO_COLOR unset
	[[ $output != *$'\e['* ]]
	tmux -S "$TMUX_SOCK" send-keys -t lag C-c
	wait_screen lag 'exit=[0-9]+$'
	# Ended by its own hand (a monitoring status), not killed by the signal.
	run screen lag
	assert_line --regexp '^(\^C)?exit=[0-3]$'
}

@test "terminal: mq-pub --progress is one line redrawn in place, with rate, how far into the file and ETA" {
	start_broker
	# On by default: stderr a terminal, stdin a regular file.  One
	# message per batch, each synced: far more than a second's worth on
	# any machine, so the ETA shows; Ctrl-C ends it, what was read
	# acknowledged.
	seq 1 2000000 >"$BATS_TEST_TMPDIR/big"
	pane pub "mq-pub -t big --batch 1 <'$BATS_TEST_TMPDIR/big'"
	wait_screen pub 'ETA [0-9]'
	run screen pub
	[ "$(grep -c 'mq-pub:' <<<"$output")" -eq 1 ]
	assert_line --regexp '^mq-pub: [0-9]+ messages, [0-9]+ acknowledged, [0-9]+ msg/s, [0-9]+%, ETA [0-9]+[smhd]'
	tmux -S "$TMUX_SOCK" send-keys -t pub C-c
	wait_screen pub 'exit=[0-9]+$'
	run screen pub
	assert_line --regexp '^(\^C)?exit=0$'
	[ "$(grep -c 'mq-pub:' <<<"$output")" -eq 1 ]
	local n
	n=$(screen pub | sed -nE 's/^mq-pub: ([0-9]+) messages, ([0-9]+) acknowledged.*/\1 \2/p')
	[ "${n% *}" = "${n#* }" ] # every message read was acknowledged
	run mq-sub -t big -e
	[ "${#lines[@]}" -eq "${n% *}" ]
	# To the end: the last line says 100%, without an ETA.
	seq 1 3000 >"$BATS_TEST_TMPDIR/in"
	pane pub2 "mq-pub -t p --batch 1 <'$BATS_TEST_TMPDIR/in'"
	wait_screen pub2 'exit=[0-9]+$'
	run screen pub2
	assert_line --regexp '^mq-pub: 3000 messages, 3000 acknowledged, [0-9]+ msg/s, 100%$'
	assert_line 'exit=0'
	[ "$(grep -c 'mq-pub:' <<<"$output")" -eq 1 ]
	# No colours or other attributes anywhere on the screen.
	run screen pub -e
	[[ $output != *$'\e['* ]]
	run mq-sub -t p -e -n 1 -o -1
	assert_output 3000
}

@test "terminal: mq-sub shows each message as it comes, and ends on Ctrl-C with 0" {
	start_broker
	mq-admin topic create live
	pane sub "mq-sub -t live"
	sleep 0.5
	mq-pub -t live -m "first line"
	wait_screen sub '^first line$'
	mq-pub -t live -m "second line"
	wait_screen sub '^second line$'
	run screen sub -e
	[[ $output != *$'\e['* ]]
	tmux -S "$TMUX_SOCK" send-keys -t sub C-c
	wait_screen sub 'exit=[0-9]+$'
	run screen sub
	assert_line --regexp '^(\^C)?exit=0$'
}
