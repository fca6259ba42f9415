#!/usr/bin/env python3
"""Counts TAP test points over every *.tap file in a directory; prints "N passed, N failed"."""
import glob
import os
import sys

passed = failed = skipped = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.tap"))):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("not ok"):
                failed += 1
            elif line.startswith("ok"):
                if "# SKIP" in line:
                    skipped += 1
                else:
                    passed += 1
print("%d passed, %d failed" % (passed, failed) + (", %d skipped" % skipped if skipped else ""))
sys.exit(1 if failed or passed == 0 else 0)
