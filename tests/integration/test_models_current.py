#!/usr/bin/env python3
"""Issue 12: no shipped file names a model the catalogue lists as retired (retired, or deprecated
and past its retirement date). Shipped: everything in the sources but data/ (the catalogue and its
notes record the retired models on purpose) and tests/ other than the emulator (tests name retired
models to check the 404s); README, conf/, www/, src/, scripts/ and the emulator are what users
copy from. Needs no servers."""
import datetime
import json
import os
import re
import subprocess

from harness import SRCDIR, run_tests


def retired_names():
    with open(os.path.join(SRCDIR, "data", "models.json")) as f:
        models = json.load(f)["models"]
    today = datetime.date.today().isoformat()
    out = set()
    for mid, m in models.items():
        if m["status"] == "retired" or (m["status"] == "deprecated" and m["retires"] <= today):
            out.add(mid)
            out.update(m.get("aliases", []))
    return out


def shipped_files():
    try:
        names = subprocess.run(["git", "-C", SRCDIR, "ls-files"], capture_output=True, text=True,
                               check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):  # a release tarball: walk it
        names = [os.path.relpath(os.path.join(d, f), SRCDIR) for d, _, fs in os.walk(SRCDIR) for f in fs]
    for n in names:
        if not n or n.startswith(("data/", ".git")) or "node_modules" in n or "_build" in n:
            continue
        if n.startswith("tests/") and not n.startswith("tests/emulator/"):
            continue
        yield n


def main(tap):
    names = retired_names()
    tap.ok(len(names) > 5, "the catalogue lists retired models", sorted(names))
    # a name counts when no other id character continues it ("claude-2.1" is not in "claude-2.10")
    pat = re.compile(r"(?<![A-Za-z0-9.-])(%s)(?![A-Za-z0-9.-]*[A-Za-z0-9])" %
                     "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    hits, count = [], 0
    for n in shipped_files():
        path = os.path.join(SRCDIR, n)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        count += 1
        for i, line in enumerate(text.split("\n"), 1):
            m = pat.search(line)
            if m:
                hits.append("%s:%d: %s" % (n, i, m.group(1)))
    tap.ok(count > 50, "shipped files read: %d" % count)
    tap.ok(not hits, "no shipped file names a retired model", "\n".join(hits))


run_tests(main)
