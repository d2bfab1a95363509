#!/usr/bin/env bats
#
# The bash, zsh and fish completions of every program.  They are installed
# with `make install-completions` into a temporary DESTDIR and each shell
# finds them there as it would under a real PREFIX: bash-completion and fish
# through XDG_DATA_DIRS, zsh through $fpath and compinit.  Topic and group
# names come from a live broker.
#
#   bash  sources bash_completion, sets COMP_LINE, COMP_POINT, COMP_WORDS and
#         COMP_CWORD as bash does (words also split at ':' and '='), lets
#         bash-completion load the file and calls its function: COMPREPLY.
#   zsh   tests/zsh-complete.zsh: an interactive zsh on a pseudo-terminal,
#         TAB typed, the candidates compadd matched written to a file.
#   fish  `complete -C LINE`, in a fish whose HOME is the test's own.

load helpers

setup_file() {
	export MQ_COMPL_DEST=$BATS_FILE_TMPDIR/dest
	# Not a sub-make of make check's: its jobserver is not ours to use.
	MAKEFLAGS='' MAKELEVEL='' make -s -C "$MQ_ROOT" install-completions DESTDIR="$MQ_COMPL_DEST" PREFIX=/usr
}

# The candidates SHELL offers at the end of LINE, one per line.
complete_in() { # shell line
	local sh=$1 line=$2 share=$MQ_COMPL_DEST/usr/share
	case $sh in
	bash)
		XDG_DATA_DIRS=$share timeout 20 bash --norc --noprofile -c '
			source /usr/share/bash-completion/bash_completion || exit 1
			COMP_LINE=$1 COMP_POINT=${#1}
			read -ra COMP_WORDS <<<"$(sed -E "s/([:=]+)/ \1 /g" <<<"$1")"
			[[ $1 == *[\ :=] ]] && COMP_WORDS+=("")
			COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
			_completion_loader "${COMP_WORDS[0]}"
			f=$(complete -p "${COMP_WORDS[0]}" | sed -E "s/.* -F ([^ ]+) .*/\1/")
			"$f" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
			[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"' _ "$line"
		;;
	zsh)
		timeout 20 zsh -f "$BATS_TEST_DIRNAME/zsh-complete.zsh" "$share/zsh/site-functions" "$line"
		;;
	fish)
		mkdir -p "$BATS_TEST_TMPDIR/home"
		HOME=$BATS_TEST_TMPDIR/home XDG_CONFIG_HOME='' XDG_DATA_HOME='' XDG_DATA_DIRS=$share \
			timeout 20 fish -c 'complete -C $argv[1]' "$line" | cut -f1
		;;
	esac
}

need_shell() { # shell
	command -v "$1" >/dev/null || skip "$1 is not installed (make deps installs it)"
	if [ "$1" = bash ] && [ ! -f /usr/share/bash-completion/bash_completion ]; then
		skip "bash-completion is not installed (make deps installs it)"
	fi
}

# Every option PROGRAM --help lists, one per line: the option part of each
# line (or ';'-separated part) that starts with a dash.
help_options() { # program
	"$1" --help | sed 's/;  /\n/g' | sed -nE 's/^ *(-.*)/\1/p' | sed -E 's/  .*//' |
		grep -oE '(^|[ ,])--?[A-Za-z0-9][A-Za-z0-9-]*' | sed -E 's/^[ ,]*//' | sort -u
}

# Completions offered by SHELL at each LINE, as one line of words.
offers() { # shell line...
	local sh=$1 line
	shift
	for line; do
		complete_in "$sh" "$line" || echo "completing '$line' in $sh failed" >&2
	done | sort -u | tr '\n' ' '
}

# Fails naming each WORD that is not among the offered words.
assert_offers() { # offered word...
	local offered=" $1 " w missing=
	shift
	for w; do
		[[ $offered == *" $w "* ]] || missing+=" $w"
	done
	[ -z "$missing" ] || fail "not offered:$missing (offered: $offered)"
}

check_options() { # shell
	local p got
	for p in mq-serve mq-pub mq-sub mq-bucket mq-dedup mq-lag; do
		got=$(offers "$1" "$p -")
		# shellcheck disable=SC2046 # one word per option
		assert_offers "$got" $(help_options "$p")
	done
	# mq-admin offers each command's options after that command.
	got=$(offers "$1" 'mq-admin -' 'mq-admin topic create t -' 'mq-admin topic delete t -' \
		'mq-admin group describe g -' 'mq-admin group reset g -' 'mq-admin dump d -' 'mq-admin keygen -')
	# shellcheck disable=SC2046
	assert_offers "$got" $(help_options mq-admin)
	got=$(offers "$1" 'mq-admin topic create t -')
	assert_offers "$got" --partitions --retention-time --if-not-exists --broker
	run offers "$1" 'mq-admin topic describe t --'
	refute_output --partial -- --partitions
}

check_values() { # shell
	assert_offers "$(offers "$1" 'mq-pub --id ')" key hash none
	assert_offers "$(offers "$1" 'mq-serve --fsync ')" always never
	assert_offers "$(offers "$1" 'mq-sub -f ')" lines nul json msgpack
	assert_offers "$(offers "$1" 'mq-bucket --format ')" lines nul json msgpack
	assert_offers "$(offers "$1" 'mq-dedup --by ')" line key id
	assert_offers "$(offers "$1" 'mq-lag -f ')" table json prom
	assert_offers "$(offers "$1" 'mq-sub -o ')" beginning end
	assert_offers "$(offers "$1" 'mq-admin ')" topic group ping stats verify dump keygen
	assert_offers "$(offers "$1" 'mq-admin -q topic ')" list create describe delete partitions
	assert_offers "$(offers "$1" 'mq-admin group ')" list describe reset delete
	assert_offers "$(offers "$1" 'mq-admin group reset g -t t --to ')" beginning end
	run offers "$1" 'mq-pub --f'
	assert_output -- '--file --format '
}

# Topics alpha, alpha.beta, gamma and groups g1, g2 on a live broker; the
# environment's MQ_BROKER names one that is down, so that names come only
# from the broker -b names.
check_names() { # shell
	local sh=$1 live down
	start_broker
	live=$MQ_BROKER
	mq-pub -q -t alpha -m a
	mq-pub -q -t alpha.beta -m b
	mq-pub -q -t gamma -m c
	mq-sub -q -t alpha -g g1 -e >/dev/null
	mq-sub -q -t gamma -g g2 -e >/dev/null

	run offers "$sh" 'mq-pub -t '
	assert_output 'alpha alpha.beta gamma '
	run offers "$sh" 'mq-sub -t al'
	assert_output 'alpha alpha.beta '
	run offers "$sh" 'mq-sub -g '
	assert_output 'g1 g2 '

	down=tcp://127.0.0.1:$(free_port)
	export MQ_BROKER=$down
	run offers "$sh" 'mq-pub -t '
	assert_success
	assert_output ''
	run offers "$sh" "mq-pub -b $live -t g"
	assert_output 'gamma '
	run offers "$sh" "mq-sub --broker $live -g "
	assert_output 'g1 g2 '
	run offers "$sh" "mq-lag --broker=$live -t "
	assert_output 'alpha alpha.beta gamma '
	run offers "$sh" "mq-lag -g g1 -b $live -g "
	assert_output 'g1 g2 '
	run offers "$sh" "mq-admin -b $live topic describe "
	assert_output 'alpha alpha.beta gamma '
	run offers "$sh" "mq-admin -b $live -q topic partitions al"
	assert_output 'alpha alpha.beta '
	run offers "$sh" "mq-admin group reset -b $live "
	assert_output 'g1 g2 '
	run offers "$sh" "mq-admin -b $live group describe g1 -t "
	assert_output 'alpha alpha.beta gamma '
	# Only the first argument is a name.
	run offers "$sh" "mq-admin -b $live group delete g1 "
	assert_output ''
	# A broker that is down gives no names, and no error.
	run offers "$sh" "mq-admin -b $down group delete "
	assert_success
	assert_output ''
}

@test "completions: make install-completions puts each shell's files where it looks" {
	local f d=$MQ_COMPL_DEST/usr/share
	for f in "$MQ_ROOT"/completions/mq-*; do
		assert [ -f "$d/bash-completion/completions/${f##*/}" ]
	done
	for f in "$MQ_ROOT"/completions/zsh/_*; do
		assert [ -f "$d/zsh/site-functions/${f##*/}" ]
	done
	for f in "$MQ_ROOT"/completions/fish/*.fish; do
		assert [ -f "$d/fish/vendor_completions.d/${f##*/}" ]
	done
	assert [ -f "$d/fish/vendor_functions.d/__mq_names.fish" ]
	for f in mq-serve mq-pub mq-sub mq-bucket mq-dedup mq-lag mq-admin; do
		assert [ -f "$d/zsh/site-functions/_$f" ]
		assert [ -f "$d/fish/vendor_completions.d/$f.fish" ]
	done
}

@test "completions: bash offers every option of every program's --help" {
	need_shell bash
	check_options bash
}

@test "completions: zsh offers every option of every program's --help" {
	need_shell zsh
	check_options zsh
}

@test "completions: fish offers every option of every program's --help" {
	need_shell fish
	check_options fish
}

@test "completions: bash offers the fixed values of options and mq-admin's commands" {
	need_shell bash
	check_values bash
}

@test "completions: zsh offers the fixed values of options and mq-admin's commands" {
	need_shell zsh
	check_values zsh
}

@test "completions: fish offers the fixed values of options and mq-admin's commands" {
	need_shell fish
	check_values fish
}

@test "completions: bash offers topics and groups of the broker -b names, else \$MQ_BROKER's" {
	need_shell bash
	check_names bash
}

@test "completions: zsh offers topics and groups of the broker -b names, else \$MQ_BROKER's" {
	need_shell zsh
	check_names zsh
}

@test "completions: fish offers topics and groups of the broker -b names, else \$MQ_BROKER's" {
	need_shell fish
	check_names fish
}
