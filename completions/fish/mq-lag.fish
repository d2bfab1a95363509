# fish completion for mq-lag
complete -c mq-lag -f
complete -c mq-lag -s g -l group -x -a '(__mq_names group)' -d 'report this group (repeatable)'
complete -c mq-lag -s t -l topic -x -a '(__mq_names topic)' -d 'only the partitions of TOPIC'
complete -c mq-lag -s f -l format -x -a 'table\t"for people (default)" json\t"one document" prom\t"Prometheus text format"' -d 'output format'
complete -c mq-lag -l warn -x -d 'WARNING when the total lag of a group is N or more'
complete -c mq-lag -l crit -x -d 'CRITICAL when the total lag of a group is N or more'
complete -c mq-lag -l watch -x -a '1 2 5 10 500ms' -d 'report again every SECONDS or duration'
complete -c mq-lag -s b -l broker -x -d 'broker endpoint'
complete -c mq-lag -s w -l timeout -x -a '250ms 1s 10s 1m' -d 'give up after the broker is silent this long'
complete -c mq-lag -s v -l verbose -d 'the sampling interval and history on stderr'
complete -c mq-lag -s q -l quiet -d 'only errors on stderr'
complete -c mq-lag -s h -l help -d 'show help'
complete -c mq-lag -s V -l version -d 'show the version'
