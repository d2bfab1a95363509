#!/usr/bin/env python3
"""Print every example command of README.md and of the man pages' EXAMPLES
sections, as the reader sees them, for tests/docs.bats to run.

Output: one example per record, NUL-terminated, as "WHERE\\tCODE" (CODE
may span lines: the literal blocks of a man page are one example).

README.md: the lines of its indented code blocks that run an mq program
(the first word, or any word after a pipe, starts with "mq-"), without a
trailing "# comment"; make targets are not examples.  Man pages: each
.Dl line and each .Bd -literal block of the EXAMPLES section, with the
mdoc escapes undone.
"""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")


def mdoc_text(s):
    for a, b in (("\\(dq", '"'), ("\\(aq", "'"), ("\\e", "\\"), ("\\&", ""), ("\\-", "-")):
        s = s.replace(a, b)
    return s


def runs_mq(line):
    words = re.split(r"[|;&]\s*|\$\(", line)
    return any(w.strip().startswith("mq-") for w in words) and not line.lstrip().startswith("make ")


def readme():
    out = []
    lines = (root / "README.md").read_text().splitlines()
    for i, raw in enumerate(lines, 1):
        if not raw.startswith("    ") or raw.startswith("     ") and not raw.strip():
            continue
        code = raw[4:]
        # Strip a trailing comment: two or more spaces, then '#'.
        code = re.sub(r"\s{2,}#.*$", "", code).rstrip()
        if code and runs_mq(code):
            out.append((f"README.md:{i}", code))
    return out


def manpage(path):
    out = []
    ex = False
    block = None
    for i, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.startswith(".Sh "):
            ex = raw.strip() == ".Sh EXAMPLES"
            continue
        if not ex:
            continue
        if block is not None:
            if raw.startswith(".Ed"):
                out.append((f"{path.as_posix()}:{start}", "\n".join(block)))
                block = None
            else:
                block.append(mdoc_text(raw))
            continue
        if raw.startswith(".Bd -literal"):
            block, start = [], i
        elif raw.startswith(".Dl "):
            out.append((f"{path.as_posix()}:{i}", mdoc_text(raw[4:])))
    return out


examples = readme()
for p in sorted((root / "man").glob("*.[1-8]")):
    examples += manpage(p)
for where, code in examples:
    sys.stdout.write(f"{where}\t{code}\0")
