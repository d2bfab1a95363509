#!/usr/bin/env bats
# The manual pages: every one clean under mandoc's lint, mq(7) renders
# with man(1), and every option mq(7)'s examples use exists in the
# program's --help.

bats_require_minimum_version 1.5.0
load helpers

need_mandoc() {
	command -v mandoc >/dev/null || {
		echo "mandoc not found; run 'make deps' (Debian package mandoc)" >&2
		return 1
	}
}

@test "every man page is clean under mandoc -T lint -W warning" {
	need_mandoc
	local f pages=0 bad=0
	for f in "$MQ_ROOT"/man/*.[1-8]; do
		pages=$((pages + 1))
		run mandoc -T lint -W warning "$f"
		if [ "$status" -ne 0 ] || [ -n "$output" ]; then
			echo "${f#"$MQ_ROOT"/} (status $status):" >&2
			echo "$output" >&2
			bad=$((bad + 1))
		fi
	done
	[ "$pages" -ge 9 ] || fail "only $pages man pages in man/"
	[ "$bad" -eq 0 ] || fail "$bad page(s) with warnings or errors, above"
}

@test "mq(7) renders with man -l, without complaints" {
	command -v man >/dev/null || skip "man(1) not installed (Debian package man-db)"
	run --separate-stderr env MANWIDTH=80 man -l "$MQ_ROOT/man/mq.7"
	assert_success
	[ -z "$stderr" ] || fail "man -l said: $stderr"
	assert_line --partial 'mq — overview of the mq message queue'
	assert_line 'DELIVERY GUARANTEES'
	assert_line --regexp '^ +tail -F app.log \| mq-pub -t logs$'
}

# Prints "PROGRAM OPTION" for every option of an mq program in the
# literal blocks of a page: pipelines split at | ; && ||.
example_options() { # page
	awk '/^\.Bd -literal/ { lit = 1; next } /^\.Ed/ { lit = 0; next } lit' "$1" |
		sed 's/&&/|/g; s/||/|/g; s/;/|/g' | tr '|' '\n' |
		awk '{ prog = ""
			for (i = 1; i <= NF; i++) {
				if (prog == "" && $i ~ /^mq-[a-z]+$/) { prog = $i; continue }
				if (prog != "" && $i ~ /^-[-A-Za-z0-9]/ && $i !~ /^-[0-9]+$/) {
					o = $i; sub(/=.*/, "", o); print prog, o
				}
			} }' | sort -u
}

@test "every option in mq(7)'s examples is one the program has" {
	local prog opt n=0 missing=()
	while read -r prog opt; do
		n=$((n + 1))
		[ -x "$MQ_BIN/$prog" ] || fail "mq(7) uses $prog, which is not in $MQ_BIN"
		"$MQ_BIN/$prog" --help | grep -qE -- "(^|[[:space:],|[])$opt([][[:space:],=|]|\$)" ||
			missing+=("$prog $opt")
	done < <(example_options "$MQ_ROOT/man/mq.7")
	[ "$n" -ge 20 ] || fail "only $n options found in mq(7)'s examples; is the extraction broken?"
	[ ${#missing[@]} -eq 0 ] || fail "not in --help: ${missing[*]}"
}
