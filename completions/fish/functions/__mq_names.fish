# __mq_names topic|group: the topics or groups the broker knows, one per
# line, for the mq-* completions.  The broker is the one -b/--broker names
# on the command line, else $MQ_BROKER, asked with the CurveZMQ keys of
# --curve-server and --curve-secret there, else of $MQ_CURVE_SERVER and
# $MQ_CURVE_SECRET.  A broker that does not answer within 100ms gives no
# names, so a prompt never hangs on a broker that is down.
function __mq_names --argument-names kind
    set -l tokens (commandline -opc)
    set -l broker
    set -l server
    set -l secret
    for i in (seq 2 (count $tokens))
        switch $tokens[$i]
            case -b --broker
                set broker $tokens[(math $i + 1)]
            case '--broker=*'
                set broker (string replace -- --broker= '' $tokens[$i])
            case '-b?*'
                set broker (string sub -s 3 -- $tokens[$i])
            case --curve-server
                set server $tokens[(math $i + 1)]
            case '--curve-server=*'
                set server (string replace -- --curve-server= '' $tokens[$i])
            case --curve-secret
                set secret $tokens[(math $i + 1)]
            case '--curve-secret=*'
                set secret (string replace -- --curve-secret= '' $tokens[$i])
        end
    end
    set -l args -q -w 100ms
    test -n "$broker"; and set -a args -b $broker
    # Key files as the shell would give them: ~/ expanded.
    test -n "$server"; and set -a args --curve-server (string replace -r -- '^~/' "$HOME/" $server)
    test -n "$secret"; and set -a args --curve-secret (string replace -r -- '^~/' "$HOME/" $secret)
    # Names are [A-Za-z0-9._-]: the first column of each line, skipping a
    # heading line (TOPIC ...) if a wider table has one.  timeout(1) is the
    # backstop should mq-admin itself ever stall.
    set -l lines (timeout 0.5 mq-admin $args $kind list 2>/dev/null </dev/null)
    if set -q lines[1]; and string match -qr '^[A-Z]+\s+\S' -- $lines[1]
        set -e lines[1]
    end
    string replace -r '^\s+' '' -- $lines | string replace -r '\s.*' '' | string match -v ''
end
