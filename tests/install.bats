#!/usr/bin/env bats
# make install and make uninstall into a temporary DESTDIR with a PREFIX:
# the files, a program built with pkg-config against the installed
# libmq.a that publishes to a real broker, the installed programs, the
# systemd unit, and an uninstall that leaves no file behind.

bats_require_minimum_version 1.5.0
load helpers

PREFIX=/opt/mq

# make install from the tree whose programs are under test (MQ_BIN):
# bin/ or, under make check SAN=1, build/san/bin.
install_args() {
	local bin
	bin=$(cd "$MQ_BIN" && pwd -P)
	case $bin in
	"$(cd "$MQ_ROOT" && pwd -P)/bin") ;;
	"$(cd "$MQ_ROOT" && pwd -P)/build/san/bin") echo SAN=1 ;;
	*) echo "MQ_BIN=$MQ_BIN is not this tree's bin/ or build/san/bin" >&2; return 1 ;;
	esac
}

mq_install() { # DESTDIR [uninstall]
	local args
	args=$(install_args) || skip "make install installs the tree's own build; MQ_BIN points elsewhere"
	# shellcheck disable=SC2086
	make -C "$MQ_ROOT" --no-print-directory -s ${2:-install} $args PREFIX="$PREFIX" DESTDIR="$1" >/dev/null
}

setup_file() {
	# The tests share one install; two makes at once would race on build/flags.
	export BATS_NO_PARALLELIZE_WITHIN_FILE=true
}

setup() {
	D=$BATS_TEST_TMPDIR/dest
	I=$D$PREFIX
}

@test "make install: programs, libmq.a, headers, mq.pc, man pages, completions, the unit; the manifest lists them all" {
	mq_install "$D"
	local f name want=()
	for f in "$MQ_ROOT"/cmd/mq-*.c; do
		name=$(basename "$f" .c)
		want+=("bin/$name" "share/bash-completion/completions/$name")
		[ -x "$I/bin/$name" ] || fail "$I/bin/$name is not executable"
	done
	for f in "$MQ_ROOT"/man/*.[1-8]; do
		want+=("share/man/man${f##*.}/$(basename "$f")")
	done
	want+=(lib/libmq.a lib/pkgconfig/mq.pc share/mq/mq-serve.service share/man/man7/mq.7
		include/mq/mq.h include/mq/client.h include/mq/record.h include/mq/batch.h include/mq/util.h)
	for f in "${want[@]}"; do
		[ -f "$I/$f" ] || fail "make install did not install $PREFIX/$f"
	done
	# Every header the installed ones include with quotes is installed beside them.
	for f in "$I"/include/mq/*.h; do
		for name in $(sed -n 's/^#include "\(.*\)"/\1/p' "$f"); do
			[ -f "$I/include/mq/$name" ] || fail "include/mq/$(basename "$f") includes \"$name\", which is not installed"
		done
	done
	[ "$(stat -c %a "$I/lib/libmq.a")" = 644 ] || fail "libmq.a has mode $(stat -c %a "$I/lib/libmq.a")"
	# The manifest is exactly what is under DESTDIR.
	run diff <(cd "$D" && find . ! -type d | sed 's/^\.//' | sort) "$I/share/mq/install-manifest"
	assert_success
	# mq.pc: the prefix, and everything else derived from it.
	run grep -E '^(prefix|libdir|includedir|Requires|Cflags|Libs)' "$I/lib/pkgconfig/mq.pc"
	assert_output "$(printf '%s\n' "prefix=$PREFIX" 'libdir=${prefix}/lib' 'includedir=${prefix}/include' \
		'Requires: libzmq msgpack' 'Cflags: -I${includedir}' 'Libs: -L${libdir} -lmq -pthread -lm')"
	# The unit runs the installed mq-serve with its state in /var/lib/mq.
	run grep -E '^(ExecStart|StateDirectory|DynamicUser)=' "$I/share/mq/mq-serve.service"
	assert_line "ExecStart=$PREFIX/bin/mq-serve -d /var/lib/mq -l tcp://127.0.0.1:7733 \$MQ_SERVE_OPTS"
	assert_line 'StateDirectory=mq'
	assert_line 'DynamicUser=yes'
}

@test "make install again changes nothing and builds nothing" {
	mq_install "$D"
	local before
	before=$(cd "$D" && find . -type f -printf '%p %s %m\n' | sort)
	run make -C "$MQ_ROOT" --no-print-directory $(install_args) install PREFIX="$PREFIX" DESTDIR="$D"
	assert_success
	refute_output --regexp '(^| )(cc|gcc|clang|ar) '
	[ "$(cd "$D" && find . -type f -printf '%p %s %m\n' | sort)" = "$before" ]
}

@test "a program built with pkg-config --cflags --libs mq publishes; the installed mq-sub reads it back" {
	mq_install "$D"
	local args cc_extra=()
	args=$(install_args)
	[ "$args" = SAN=1 ] && cc_extra=(-fsanitize=address,undefined)
	# mq.pc names the installed prefix; under DESTDIR, point it there.
	mkdir -p "$BATS_TEST_TMPDIR/pc"
	sed "s|^prefix=$PREFIX\$|prefix=$I|" "$I/lib/pkgconfig/mq.pc" >"$BATS_TEST_TMPDIR/pc/mq.pc"
	export PKG_CONFIG_PATH=$BATS_TEST_TMPDIR/pc
	run pkg-config --modversion mq
	assert_output "$(sed -n 's/^#define MQ_VERSION "\(.*\)"/\1/p' "$MQ_ROOT/lib/util.h")"
	# Only the installed headers: no -I into the tree.
	run ${CC:-cc} -std=c11 -Wall -Wextra -Werror "${cc_extra[@]}" $(pkg-config --cflags mq) \
		"$MQ_ROOT/tests/install/publish.c" $(pkg-config --libs mq) -o "$BATS_TEST_TMPDIR/publish"
	assert_success
	PATH="$I/bin:$PATH" start_broker
	run "$BATS_TEST_TMPDIR/publish" installed 'hello from libmq' k1
	assert_success
	run "$I/bin/mq-sub" -t installed -e -F '%k %s\n'
	assert_success
	assert_output 'k1 hello from libmq'
}

@test "the installed programs print their version" {
	mq_install "$D"
	local f n=0 version
	version=$(sed -n 's/^#define MQ_VERSION "\(.*\)"/\1/p' "$MQ_ROOT/lib/util.h")
	for f in "$I"/bin/mq-*; do
		n=$((n + 1))
		run "$f" --version
		assert_success
		assert_output "$(basename "$f") $version"
	done
	[ "$n" -eq "$(ls "$MQ_ROOT"/cmd/mq-*.c | wc -l)" ]
}

@test "the systemd unit passes systemd-analyze verify and is hardened" {
	mq_install "$D"
	local u=$I/share/mq/mq-serve.service k
	for k in 'DynamicUser=yes' 'StateDirectory=mq' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
		'NoNewPrivileges=yes' 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'Restart=on-failure' \
		'KillSignal=SIGTERM'; do
		grep -qxF "$k" "$u" || fail "the unit has no line $k"
	done
	grep -qE '^LimitNOFILE=[0-9]+$' "$u" || fail "the unit sets no LimitNOFILE"
	command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (Debian package systemd)"
	[ -d /usr/lib/systemd/system ] || skip "no /usr/lib/systemd/system to verify against"
	# A root with the system's units, the unit where systemd looks, and
	# the installed mq-serve where ExecStart names it.
	local r=$BATS_TEST_TMPDIR/root
	mkdir -p "$r/etc/systemd/system" "$r/usr/lib/systemd" "$r$PREFIX/bin"
	cp -a /usr/lib/systemd/system "$r/usr/lib/systemd/"
	cp "$u" "$r/etc/systemd/system/"
	cp "$I/bin/mq-serve" "$r$PREFIX/bin/"
	run systemd-analyze verify --man=no --root="$r" mq-serve.service
	assert_success
	assert_output ''
}

@test "make uninstall removes every installed file, also of an earlier install, and nothing else" {
	mq_install "$D"
	# A program an earlier version installed and this tree no longer has,
	# and a file that is not mq's.
	touch "$I/bin/mq-gone" "$I/bin/other-tool"
	echo "$PREFIX/bin/mq-gone" >>"$I/share/mq/install-manifest"
	mq_install "$D"
	grep -qxF "$PREFIX/bin/mq-gone" "$I/share/mq/install-manifest" || fail "a second install forgot what the first installed"
	mq_install "$D" uninstall
	run find "$D" ! -type d
	assert_output "$I/bin/other-tool"
	[ ! -e "$I/include/mq" ] && [ ! -e "$I/share/mq" ] || fail "include/mq or share/mq is left"
	# Without a manifest, what this tree installs.
	rm -f "$I/bin/other-tool"
	mq_install "$D"
	rm "$I/share/mq/install-manifest"
	run make -C "$MQ_ROOT" --no-print-directory -s uninstall $(install_args) PREFIX="$PREFIX" DESTDIR="$D"
	assert_success
	assert_output --partial "no $I/share/mq/install-manifest"
	run find "$D" ! -type d
	assert_output ''
}
