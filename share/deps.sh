#!/usr/bin/env bash
#
# share/deps.sh PACKAGE... -- install the Debian packages that are missing
# (make deps, make bench-deps), with apt-get as root or through sudo.
# Quiet and quick when everything is present.

set -u
if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "make deps: dpkg-query not found (not a Debian system?); install these packages or their equivalents yourself: $*" >&2
	exit 0
fi
missing=
for p in "$@"; do
	case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" in
	*" ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
echo "make deps: installing missing packages:$missing"
if [ "$(id -u)" = 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1; then
	sudo=sudo
else
	echo "make deps: missing packages:$missing; not root and no sudo: run 'apt-get install$missing' as root" >&2
	exit 1
fi
# shellcheck disable=SC2086 # $missing is a list of package names
$sudo env DEBIAN_FRONTEND=noninteractive apt-get -q update &&
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y install $missing </dev/null || {
	echo "make deps: 'apt-get install$missing' failed (see above); fix it and run make deps again" >&2
	exit 1
}
