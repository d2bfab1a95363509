#!/usr/bin/env bash
#
# power-cut.sh -- what a power cut (or an OS crash) takes, per --fsync
# policy.  SIGKILL alone keeps the page cache, so crash-producers.sh
# cannot show it; here the fault-injection build of mq-serve (make FAULT=1)
# runs with MQ_FAULT_SYNC_RECORD, which writes down every sync it makes:
# "PATH SIZE" for a segment file, "DIR/ NAME..." for a directory.  Each
# round, mq-pub processes publish numbered lines in chunks (topics of 1 and
# 4 partitions, waiting for the acknowledgements) while a group member
# reads and commits; then the broker is killed with SIGKILL and the data
# directory is cut back to what the syncs made durable:
#   - each segment .log file to its last synced size (in every other
#     round, to a random size between that and its size now: the OS may
#     have written back part of the rest, so torn batches are left);
#   - a directory or segment file whose name was in no fsync of its
#     parent directory made after it appeared is removed (a file never
#     synced is truncated to 0 and, in an unsynced directory, removed);
#   - index files stay as they are (hints: they may point past the end),
#     and so do other files (written by rename and a directory fsync).
# Under --fsync never the script also plays the OS's own writeback once
# a round (it writes down every file's size and every directory, as if
# flushed then), and, before the cut, the group offsets log once more
# (so commits may survive past the data they refer to).  After the cut
# the broker is started again on the directory and everything is read
# back with mq-sub -e and with the group.  What is checked:
#   - every partition serves exactly the records that lay wholly inside
#     the durable part of its files before the cut (mq-admin dump of the
#     page-cache state), in order, nothing damaged, nothing else;
#   - always: no acknowledged message is lost, every group commit is
#     within the log, and the broker starts without complaint;
#   - never: the messages lost are exactly the acknowledged ones that lay
#     past the durable sizes (with the random cuts: at most those);
#   - a group commit that survived past the end of the data is moved
#     back to the end at start (and said so; never under always); the
#     group reads on from its commits, each offset once, and gets the
#     messages published after the restart;
#   - the broker reports every tail it cut.
# Prints "always: R rounds, M acked, 0 lost (T torn tails cut); never: R
# rounds, M acked, L lost (unsynced at the cut: U; T torn tails cut; G
# group commits past the end)", U being what the syncs left uncovered
# (L = U in the exact rounds, L <= U in the others).  MQ_FAULT_SEED makes
# the cut points repeat.

. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
fault_init power-cut

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FAULT_BIN=${MQ_FAULT_BIN:-$root/build/fault/bin}
if [ ! -x "$FAULT_BIN/mq-serve" ]; then
	echo "skip: no fault-injection build of mq-serve in $FAULT_BIN (build it with: make FAULT=1 build/fault/bin/mq-serve)"
	exit 77
fi
ROUNDS=$(fault_scale 2 8)
CHUNK=$(fault_scale 200 500)
SEED=${MQ_FAULT_SEED:-$$}
RANDOM=$SEED
DATA=$FAULT_TMP/data
export MQ_FAULT_SYNC_RECORD=$FAULT_TMP/synced
PY=$FAULT_TMP/cut.py
# Debian's python3 starts in a tenth of the time a version manager's shim takes.
if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi

# cut.py writeback DATA [SUBDIR]: the OS writes back DATA (or only SUBDIR).
# cut.py cut DATA MODE SEED: the power cut (MODE exact or partial).
# cut.py check ROUND POLICY MODE: compare what was read back with what
# was durable; prints "acked lost implied past_end".
cat >"$PY" <<'EOF'
import json, os, random, re, sys
tmp = os.path.dirname(os.environ["MQ_FAULT_SYNC_RECORD"])
rec = os.environ["MQ_FAULT_SYNC_RECORD"]

def is_seg(name):
    return re.fullmatch(r"[0-9]{20}\.log", name) is not None

def writeback(data, sub):
    top = os.path.join(data, sub) if sub else data
    lines = []
    for d, dirs, files in os.walk(top):
        lines.append(d + "/ " + " ".join(sorted(dirs + files)))
        for f in files:
            if is_seg(f):
                p = os.path.join(d, f)
                lines.append("%s %d" % (p, os.path.getsize(p)))
    with open(rec, "a") as f:
        f.write("".join(l + "\n" for l in lines))

def cut(data, mode, seed):
    rnd = random.Random(seed)
    size, listing = {}, {}
    for line in open(rec):
        path, _, rest = line.rstrip("\n").partition(" ")
        if path.endswith("/"):
            listing[path[:-1]] = set(rest.split())
        else:
            size[path] = int(rest)
    kept, report = {}, []
    def walk(d):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            isdir = os.path.isdir(p)
            if (isdir or is_seg(name)) and name not in listing.get(d, ()):
                report.append("removed %s (its directory entry was never synced)" % p[len(data):])
                if isdir:
                    for r, ds, fs in os.walk(p, topdown=False):
                        for f in fs:
                            os.unlink(os.path.join(r, f))
                        for x in ds:
                            os.rmdir(os.path.join(r, x))
                    os.rmdir(p)
                else:
                    os.unlink(p)
                kept[p] = -1
                continue
            if isdir:
                walk(p)
            elif is_seg(name):
                now = os.path.getsize(p)
                to = min(size.get(p, 0), now)
                if mode == "partial" and now > to:
                    to = rnd.randint(to, now)
                if to < now:
                    os.truncate(p, to)
                    report.append("cut %s from %d to %d bytes" % (p[len(data):], now, to))
                kept[p] = to
                worst[p] = min(size.get(p, 0), now)
    worst = {}
    walk(data)
    json.dump({"kept": kept, "worst": worst}, open(os.path.join(tmp, "cut.json"), "w"))
    with open(os.path.join(tmp, "cut.log"), "a") as f:
        f.write("".join(l + "\n" for l in report))

damaged = []

def dumped(data):
    """(topic, partition) -> [(offset, value, file, batch end)] from the dumps."""
    out = {}
    for name in os.listdir(tmp):
        m = re.fullmatch(r"dump\.(.+)\.([0-9]+)", name)
        if not m:
            continue
        recs, end, file = [], 0, None
        for line in open(os.path.join(tmp, name)):
            if line.startswith("FAULT"):
                damaged.append(line.strip())
            b = re.match(r"batch offset=\d+ count=\d+ length=(\d+) file=(\S+) pos=(\d+)", line)
            if b:
                file = os.path.join(data, "topics", m.group(1), m.group(2), b.group(2))
                end = int(b.group(3)) + int(b.group(1))
                continue
            r = re.match(r'  offset=(\d+) .* value="(.*)"$', line)
            if r:
                recs.append((int(r.group(1)), r.group(2), file, end))
        out[(m.group(1), m.group(2))] = recs
    return out

def check(rnd_no, policy, mode):
    data = os.path.join(tmp, "data")
    c = json.load(open(os.path.join(tmp, "cut.json")))
    kept, worst = c["kept"], c["worst"]
    bad = []
    durable, implied = set(), set()
    ends = {}  # file -> batch ends
    reads = {}
    for t in ("p1", "p4"):
        for line in open(os.path.join(tmp, "read.%s" % t)):
            tt, pp, off, val = line.rstrip("\n").split(" ", 3)
            reads.setdefault((t, pp), []).append((int(off), val))
    dumps = dumped(data)
    for (t, p) in sorted(set(dumps) | set(reads)):
        recs, got = dumps.get((t, p), []), reads.get((t, p), [])
        exp = []
        for off, val, f, end in recs:
            ends.setdefault(f, set()).add(end)
            if kept.get(f, -1) >= end:
                exp.append((off, val))
                durable.add(val)
            if worst.get(f, -1) >= end:
                implied.add(val)
        if got != exp:
            i = next((i for i in range(min(len(got), len(exp))) if got[i] != exp[i]), min(len(got), len(exp)))
            bad.append("%s/%s: read back %d records, %d were durable; first difference at #%d: read %s, durable %s"
                       % (t, p, len(got), len(exp), i, got[i] if i < len(got) else "nothing",
                          exp[i] if i < len(exp) else "nothing"))
        # order per writer within the partition
        last = {}
        for off, val in got:
            r, w, n = val.split()
            k = (int(r[1:]), int(n))
            if k < last.get(w, (0, 0)):
                bad.append("%s/%s: %s after %s %s" % (t, p, val, w, last[w]))
                break
            last[w] = k
    alive_path = os.path.join(tmp, "alive")
    alive = set(open(alive_path).read().split("\n")) - {""} if os.path.exists(alive_path) else set()
    acked = set()
    for w in (1, 4):
        acked |= set(open(os.path.join(tmp, "acked.r%d.%d" % (rnd_no, w))).read().split("\n")) - {""}
    cand = alive | acked
    bad += ["a garbled line in the harness's own list of acknowledged lines: %r" % v
            for v in sorted(acked) if not re.fullmatch(r"r[0-9]+ w[14] [0-9]+", v)][:1]
    read = {val for got in reads.values() for off, val in got}
    lost = cand - read
    unsynced = cand - implied
    if mode == "exact" and lost != unsynced:
        bad.append("%d acknowledged messages lost, but %d lay past the synced sizes (e.g. lost %s)"
                   % (len(lost), len(unsynced), sorted(lost ^ unsynced)[:3]))
    if not lost <= unsynced:
        bad.append("lost acknowledged messages that were synced: %s" % sorted(lost - unsynced)[:3])
    if policy == "always" and lost:
        bad.append("%d acknowledged messages lost under --fsync always: %s" % (len(lost), sorted(lost)[:3]))
    if policy == "always" and unsynced:
        bad.append("%d messages acknowledged before their sync under --fsync always" % len(unsynced))
    open(alive_path, "w").write("".join(v + "\n" for v in sorted(cand & read)))
    torn = [f for f, e in ends.items() if kept.get(f, -1) > 0 and kept[f] not in e]
    open(os.path.join(tmp, "torn"), "w").write("".join(f + "\n" for f in torn))
    bad += ["the page-cache state had damage before the cut: " + d for d in damaged[:3]]
    print(len(acked), len(lost), len(unsynced), len(torn))
    for b in bad:
        print(b)

def group(describe, out, late):
    """The group's read after the cut and the late lines: from its commit
    (from the start where there is none or it lies past the end) on, each
    offset once, the late lines among them."""
    ends, start, raw = {}, {}, {}
    for t in ("p1", "p4"):
        for line in open(os.path.join(tmp, "read.%s" % t)):
            tt, pp, off, val = line.split(" ", 3)
            ends[(t, pp)] = int(off) + 1
    for line in open(describe):
        f = line.split()
        if len(f) >= 4 and f[0] in ("p1", "p4") and f[2].isdigit():
            c = raw[(f[0], f[1])] = int(f[2])
            start[(f[0], f[1])] = c if c <= ends.get((f[0], f[1]), 0) else 0
    got, vals = {}, set()
    for line in open(out):
        t, p, off, val = line.rstrip("\n").split(" ", 3)
        got.setdefault((t, p), []).append(int(off))
        vals.add(val)
    for k, offs in sorted(got.items()):
        want = list(range(start.get(k, 0), start.get(k, 0) + len(offs)))
        if offs != want:
            i = next(i for i in range(len(offs)) if offs[i] != want[i])
            print("%s/%s: the group read offset %d where %d was due (commit %s)"
                  % (k[0], k[1], offs[i], want[i], raw.get(k, "none")))
    missed = [v for v in open(late).read().split("\n") if v and v not in vals]
    if missed:
        print("the group missed %d of the messages published after the restart (e.g. %s)" % (len(missed), missed[0]))

cmd = sys.argv[1]
if cmd == "group":
    group(sys.argv[2], sys.argv[3], sys.argv[4])
elif cmd == "writeback":
    writeback(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
elif cmd == "cut":
    cut(sys.argv[2], sys.argv[3], int(sys.argv[4]))
else:
    check(int(sys.argv[2]), sys.argv[3], sys.argv[4])
EOF

broker() { PATH="$FAULT_BIN:$PATH" fault_broker_start --fsync "$1" --segment-bytes 64KiB; }

# writer R W TOPIC: chunks of CHUNK numbered lines "rR wW N" (key N%16)
# until mq-pub fails (the broker is gone); the lines of each chunk that
# mq-pub acknowledged (exit 0) go to $FAULT_TMP/acked.rR.W (one file a
# writer: appends of two would mix), its pid to $FAULT_TMP/pub.W.
writer() {
	local r=$1 w=$2 topic=$3 first=1
	while :; do
		seq "$first" $((first + CHUNK - 1)) | awk -v r="$r" -v w="$w" '{ print $1 % 16 " r" r " w" w " " $1 }' >"$FAULT_TMP/in.$w"
		awk '{ print } NR % 50 == 0 { fflush(); system("sleep 0.01") }' "$FAULT_TMP/in.$w" |
			mq-pub -q -t "$topic" -K ' ' --batch 20 -w 1s 2>>"$FAULT_TMP/pub.err" &
		echo $! >"$FAULT_TMP/pub.$w"
		wait $! || return 0
		cut -d' ' -f2- "$FAULT_TMP/in.$w" >>"$FAULT_TMP/acked.r$r.$w"
		first=$((first + CHUNK))
	done
}

# round POLICY R: publish and consume, cut the power, start again, check.
round() {
	local policy=$1 r=$2 mode pids=() member t p n
	if ((r % 2)); then mode=exact; else mode=partial; fi
	rm -f "$FAULT_TMP"/dump.*
	: >"$FAULT_TMP/acked.r$r.1"
	: >"$FAULT_TMP/acked.r$r.4"
	mq-sub -q -t p1 -t p4 -g g -w 1s >/dev/null 2>>"$FAULT_TMP/group.err" &
	member=$!
	writer "$r" 1 p1 2>/dev/null & # (not the shell's word on the killed mq-pub)
	pids+=($!)
	writer "$r" 4 p4 2>/dev/null &
	pids+=($!)
	sleep "0.$((RANDOM % 4 + 3))"
	[ "$policy" = never ] && "$PYTHON" "$PY" writeback "$DATA"
	sleep "0.$((RANDOM % 4 + 2))"
	[ "$policy" = never ] && "$PYTHON" "$PY" writeback "$DATA" state/offsets
	fault_broker_kill
	# The machine takes the clients down too (a chunk whose mq-pub did
	# not exit 0 counts as not acknowledged).
	kill -9 "$member" "$(cat "$FAULT_TMP/pub.1")" "$(cat "$FAULT_TMP/pub.4")" 2>/dev/null
	wait "${pids[@]}" "$member" 2>/dev/null
	for t in p1 p4; do
		for p in "$DATA"/topics/$t/*/; do
			p=$(basename "$p")
			mq-admin dump -q "$DATA/topics/$t/$p" >"$FAULT_TMP/dump.$t.$p" 2>>"$FAULT_TMP/dump.err"
		done
	done
	echo "== $policy round $r ($mode)" >>"$FAULT_TMP/cut.log"
	"$PYTHON" "$PY" cut "$DATA" "$mode" "$((SEED + r))" || fault_fail "the cut failed"
	local before
	before=$(wc -l <"$FAULT_TMP/broker.log")
	broker "$policy" || return 1
	for t in p1 p4; do
		mq-sub -q -t "$t" -e -F '%t %p %o %s\n' >"$FAULT_TMP/read.$t" 2>>"$FAULT_TMP/sub.err" ||
			fault_fail "$policy round $r: mq-sub -t $t -e failed: $(tail -2 "$FAULT_TMP/sub.err")"
	done
	local out
	out=$("$PYTHON" "$PY" check "$r" "$policy" "$mode") || fault_fail "counting failed"
	read -r n lost unsynced torn <<<"$(head -1 <<<"$out")"
	while read -r line; do
		fault_fail "$policy round $r ($mode cut, seed $SEED): $line"
	done < <(tail -n +2 <<<"$out")
	acked_n=$((acked_n + n)) lost_n=$((lost_n + lost)) unsynced_n=$((unsynced_n + unsynced)) torn_n=$((torn_n + torn))
	# The group: every commit within the log under always; reading on
	# from the commits (or from the start, past the end) must work.
	# Messages published after the restart, before the group reads on
	# (enough to pass a commit that survived past the end of the data).
	mq-admin group describe g >"$FAULT_TMP/described" 2>/dev/null # none yet: no commit survived
	seq 1 2000 | awk -v r="$r" '{ print "r" r " late " $1 }' >"$FAULT_TMP/late"
	mq-pub -q -t p1 <"$FAULT_TMP/late" && head -16 "$FAULT_TMP/late" | mq-pub -q -t p4 ||
		fault_fail "$policy round $r: publishing after the restart failed"
	timeout 30 mq-sub -q -t p1 -t p4 -g g -e -F '%t %p %o %s\n' >"$FAULT_TMP/group.out" 2>>"$FAULT_TMP/group.err" ||
		fault_fail "$policy round $r: the group cannot read on after the cut: $(tail -2 "$FAULT_TMP/group.err")"
	while read -r line; do
		fault_fail "$policy round $r: $line"
	done < <("$PYTHON" "$PY" group "$FAULT_TMP/described" "$FAULT_TMP/group.out" "$FAULT_TMP/late")
	# Every cut tail is reported, and nothing else is complained about.
	local log
	log=$(tail -n +"$((before + 1))" "$FAULT_TMP/broker.log" | grep -v 'mq-serve: listening on')
	while read -r f; do
		grep -qF "'$f': cut " <<<"$log" || fault_fail "$policy round $r: the torn tail of $f was not reported"
	done <"$FAULT_TMP/torn"
	local said="bytes* from its end\|dropped the rest of that file\|past the end of the partition" past
	if grep -v "$said" <<<"$log" | grep -q .; then
		fault_fail "$policy round $r: the broker said at start: $(grep -v "$said" <<<"$log" | head -3)"
	fi
	past=$(grep -c "past the end of the partition" <<<"$log")
	past_n=$((past_n + past))
	[ "$policy" = always ] && [ "$past" -gt 0 ] &&
		fault_fail "$policy round $r: $past group commits past the end of their partition: $(grep "past the end" <<<"$log" | head -2)"
	[ "$policy" = never ] && "$PYTHON" "$PY" writeback "$DATA" # the machine stays up: all written back
	return 0
}

summary=
for policy in always never; do
	rm -rf "$DATA" "$FAULT_TMP"/alive "$MQ_FAULT_SYNC_RECORD"
	acked_n=0 lost_n=0 unsynced_n=0 past_n=0 torn_n=0
	broker "$policy" || fault_done "the broker did not start"
	mq-admin topic create p1 --partitions 1 >/dev/null || fault_fail "cannot create topic p1"
	mq-admin topic create p4 --partitions 4 >/dev/null || fault_fail "cannot create topic p4"
	for ((r = 1; r <= ROUNDS; r++)); do
		round "$policy" "$r" || break
	done
	fault_broker_stop
	[ "$acked_n" -gt 0 ] || fault_fail "$policy: nothing was acknowledged"
	if [ "$policy" = always ]; then
		summary="always: $ROUNDS rounds, $acked_n acked, $lost_n lost ($torn_n torn tails cut)"
	else
		summary="$summary; never: $ROUNDS rounds, $acked_n acked, $lost_n lost (unsynced at the cut: $unsynced_n; $torn_n torn tails cut; $past_n group commits past the end)"
	fi
done
fault_done "$summary"
