#!/usr/bin/env zsh
#
# tests/zsh-complete.zsh DIR LINE -- print what zsh's completion system offers
# at the end of LINE, one candidate per line, with the completion functions
# in DIR first in $fpath (tests/completions.bats).
#
# Completion runs only inside the line editor, so a harness needs a terminal:
# this starts an interactive `zsh -f` on a pseudo-terminal (zsh/zpty), loads
# compinit, types LINE and a TAB.  A compadd wrapper records each candidate
# the real compadd matches against the word (builtin compadd -A), into a
# file rather than onto the screen, so nothing depends on how zsh draws its
# lists; comppostfuncs then ends the shell.  The same idea as
# zsh-capture-completion (Valodim, MIT).

emulate -L zsh
zmodload zsh/zpty || { print -u2 "zsh-complete: zsh/zpty is missing"; exit 2 }
(( $# == 2 )) || { print -u2 "usage: zsh-complete.zsh DIR LINE"; exit 2 }
dir=${1:a} line=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zsh-complete.XXXXXX") || exit 2
# No EXIT trap: the terminal's child shell would inherit it and remove $tmp
# when it exits.
out=$tmp/out

cat >$tmp/setup.zsh <<SETUP
PROMPT= RPROMPT=
fpath=(${(q)dir} \$fpath)
autoload -U compinit && compinit -u -D
zstyle ':completion:*' insert-tab false
bindkey '^I' complete-word
compadd() {
	# -O, -A and -D are the completion system's own queries: answer them as is.
	if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then
		builtin compadd "\$@"
		return
	fi
	local -a __hits
	builtin compadd -A __hits "\$@"
	(( \$#__hits )) && print -rl -- \$__hits >>${(q)out}
	builtin compadd "\$@"
}
# Nothing to list or insert (a long list would stop at "do you wish to see
# all N possibilities?"), and the shell ends once the widget returns.
mq_complete_done() {
	compstate[list]= compstate[insert]=
	print -r -- MQ-DONE >>${(q)out}
	exit
}
comppostfuncs=(mq_complete_done)
print MQ-READY
SETUP

zpty z zsh -f -i || exit 2
zpty -w z "source ${(q)tmp}/setup.zsh"
while zpty -r z l; do
	[[ $l == MQ-READY* ]] && break
done
zpty -w -n z "$line"$'\t'
# The shell exits after the completion; read until then.
while zpty -r z l; do :; done
zpty -d z
if [[ -f $out ]] && grep -q '^MQ-DONE$' $out; then
	grep -v '^MQ-DONE$' $out | sort -u
	rm -rf $tmp
else
	print -u2 "zsh-complete: the completion of '$line' did not finish"
	rm -rf $tmp
	exit 1
fi
