# fish completion for mq-admin

# __mq_admin_is CMD [SUB [N]]: true when the command line before the cursor
# has command CMD ('' for none yet), then subcommand SUB ('' for none yet;
# only topic and group have them) and N arguments after them.  Options,
# and the arguments of those that take one, are skipped wherever they are.
function __mq_admin_is
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmd ''
    set -l sub ''
    set -l nargs 0
    set -l skip 0
    for w in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case -b --broker -w --timeout -t --topic --partitions --retention-time --retention-bytes --to --from --secret --public \
                -f --format --curve-server --curve-secret
                set skip 1
            case '-*'
            case '*'
                if test -z "$cmd"
                    set cmd $w
                else if test -z "$sub"; and contains -- $cmd topic group
                    set sub $w
                else
                    set nargs (math $nargs + 1)
                end
        end
    end
    test "$cmd" = "$argv[1]"; or return 1
    set -q argv[2]; and test "$sub" != "$argv[2]"; and return 1
    set -q argv[3]; and test $nargs != $argv[3]; and return 1
    return 0
end

complete -c mq-admin -f
complete -c mq-admin -s b -l broker -x -d 'broker endpoint'
complete -c mq-admin -s w -l timeout -x -a '250ms 1s 10s 1m' -d 'give up after the broker is silent this long'
complete -c mq-admin -l curve-server -r -F -d 'CurveZMQ: the public key of the broker, or a file holding it'
complete -c mq-admin -l curve-secret -r -F -d 'CurveZMQ: the secret key of this client'
complete -c mq-admin -s v -l verbose -d 'more columns in lists; say what was done'
complete -c mq-admin -s q -l quiet -d 'no heading lines above tables'
complete -c mq-admin -s h -l help -d 'show help'
complete -c mq-admin -s V -l version -d 'show the version'

complete -c mq-admin -n '__mq_admin_is ""' -a topic -d 'list, create, describe, delete topics or grow their partitions'
complete -c mq-admin -n '__mq_admin_is ""' -a group -d 'list, describe, reset or delete consumer groups'
complete -c mq-admin -n '__mq_admin_is ""' -a ping -d 'the version and round-trip time of the broker'
complete -c mq-admin -n '__mq_admin_is ""' -a stats -d 'the counters of the broker'
complete -c mq-admin -n '__mq_admin_is ""' -a verify -d 'check every segment and index under a directory, offline'
complete -c mq-admin -n '__mq_admin_is ""' -a dump -d 'print the batches and records of a partition, offline'
complete -c mq-admin -n '__mq_admin_is ""' -a keygen -d 'make a CurveZMQ key pair'

complete -c mq-admin -n '__mq_admin_is topic ""' -a list -d 'every topic'
complete -c mq-admin -n '__mq_admin_is topic ""' -a create -d 'create a topic'
complete -c mq-admin -n '__mq_admin_is topic ""' -a describe -d 'settings and size of a topic, offsets of each partition'
complete -c mq-admin -n '__mq_admin_is topic ""' -a delete -d 'delete a topic and its data'
complete -c mq-admin -n '__mq_admin_is topic ""' -a partitions -d 'grow a topic to N partitions'
complete -c mq-admin -n '__mq_admin_is topic describe 0; or __mq_admin_is topic delete 0; or __mq_admin_is topic partitions 0' \
    -a '(__mq_names topic)' -d topic
complete -c mq-admin -n '__mq_admin_is topic create' -l partitions -x -d 'number of partitions'
complete -c mq-admin -n '__mq_admin_is topic create' -l retention-time -x -a '1h 1d 7d 30d' -d 'keep messages for D'
complete -c mq-admin -n '__mq_admin_is topic create' -l retention-bytes -x -a '64KiB 1GiB 10GiB' -d 'keep at most S per partition'
complete -c mq-admin -n '__mq_admin_is topic create' -l if-not-exists -d 'succeed when the topic exists already'
complete -c mq-admin -n '__mq_admin_is topic delete' -l force -d 'delete even while a group with live members reads it'

complete -c mq-admin -n '__mq_admin_is group ""' -a list -d 'every consumer group'
complete -c mq-admin -n '__mq_admin_is group ""' -a describe -d 'members and, per partition, committed offset, end, lag and owner'
complete -c mq-admin -n '__mq_admin_is group ""' -a reset -d 'move the committed offsets of the group on a topic'
complete -c mq-admin -n '__mq_admin_is group ""' -a delete -d 'forget a group and its committed offsets'
complete -c mq-admin -n '__mq_admin_is group describe 0; or __mq_admin_is group reset 0; or __mq_admin_is group delete 0' \
    -a '(__mq_names group)' -d group
complete -c mq-admin -n '__mq_admin_is group describe; or __mq_admin_is group reset' -s t -l topic -x -a '(__mq_names topic)' -d 'the topic'
complete -c mq-admin -n '__mq_admin_is group reset' -l to -x -a 'beginning end @-1h @-1d' -d 'where the offsets move: beginning, end, N, -N, @TIME'
complete -c mq-admin -n '__mq_admin_is group reset' -l dry-run -d 'print what would change, change nothing'
complete -c mq-admin -n '__mq_admin_is group reset' -l create -d 'make the group if it does not exist'
complete -c mq-admin -n '__mq_admin_is topic list; or __mq_admin_is topic describe; or __mq_admin_is group list; or __mq_admin_is group describe; or __mq_admin_is ping; or __mq_admin_is stats' \
    -s f -l format -x -a 'table json' -d 'a table (default) or one JSON document'

complete -c mq-admin -n '__mq_admin_is verify "" 0; or __mq_admin_is dump "" 0' -x -a '(__fish_complete_directories)'
complete -c mq-admin -n '__mq_admin_is dump' -l from -x -d 'start at this offset'
complete -c mq-admin -n '__mq_admin_is keygen' -l secret -r -F -d 'write the secret key to this new file'
complete -c mq-admin -n '__mq_admin_is keygen' -l public -r -F -d 'write the public key to this new file'
complete -c mq-admin -n '__mq_admin_is keygen' -l overwrite -d 'replace files that exist'
