"""TAP output for the `vigil run` tests: check() prints one numbered line, done() the plan and exits."""
import sys

failures = 0
count = 0


def check(ok, what):
    global failures, count
    count += 1
    print(("ok" if ok else "not ok") + f" {count} - {what}")
    failures += not ok
    return ok


def failed():
    return failures > 0


def done():
    print(f"1..{count}")
    sys.exit(1 if failures else 0)
