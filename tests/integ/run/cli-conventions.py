#!/usr/bin/env python3
# Proves the command-line conventions: --help on every verb and both front doors (usage on stdout, exit 0), docs/cli.md
# and the man page vigil(1) built from it naming every option, and bash completion offering every verb and option.
# A user's first contact with vigil is `vigil --help`, `man vigil` and TAB; each must be true to the program.
import os
import re
import subprocess
import sys
import tempfile

from runtap import check, done

VIGIL, SOURCE, MAN = sys.argv[1], sys.argv[2], sys.argv[3]
COMPLETION = os.path.join(SOURCE, "tools", "vigil-completion.bash")
CLI_MD = open(os.path.join(SOURCE, "docs", "cli.md")).read()


def run(argv, argv0=None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          executable=argv0)


with tempfile.TemporaryDirectory(prefix="vigil-cli-") as d:
    driver = os.path.join(d, "nixos-test-driver")
    os.symlink(os.path.abspath(VIGIL), driver)
    for argv in ([VIGIL, "--help"], [VIGIL, "-h"], [VIGIL, "help"], [VIGIL, "run", "--help"], [VIGIL, "run", "-h"],
                 [VIGIL, "run", "script.py", "--node", "a", "--help"], [VIGIL, "report", "--help"],
                 [VIGIL, "supervise", "--help"], [VIGIL, "ps", "--help"], [driver, "--help"]):
        p = run(argv)
        name = " ".join([os.path.basename(argv[0])] + argv[1:])
        check(p.returncode == 0 and p.stdout.lower().startswith("usage:") and not p.stderr,
              f"{name}: usage on stdout, exit 0 (exit {p.returncode})")
    p = run([VIGIL])
    check(p.returncode == 2 and "Usage:" in p.stderr, "vigil without a verb: usage on stderr, exit 2")
    p = run([VIGIL, "frobnicate"])
    check(p.returncode == 2 and "unknown verb 'frobnicate'" in p.stderr, "an unknown verb: exit 2, naming it")

run_help = run([VIGIL, "run", "--help"]).stdout
options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", run_help)))
verbs = re.findall(r"^  (\w+) ", run([VIGIL, "--help"]).stdout, re.M)
check(len(options) >= 14 and verbs == ["run", "ps", "supervise", "report", "shell"], f"vigil run has {len(options)} options, verbs {verbs}")
missing = [o for o in options if f"`{o}`" not in CLI_MD]
check(not missing, f"docs/cli.md names every option of vigil run (missing: {missing})")
check(all(f"`{v}`" in CLI_MD for v in verbs), "docs/cli.md names every verb")

if os.path.exists(MAN):
    page = subprocess.run(["man", "-l", MAN], capture_output=True, text=True, env=dict(os.environ, MANWIDTH="100"),
                          timeout=30).stdout
    check(page.startswith("vigil(1)") or "vigil(1)" in page.splitlines()[0] if page else False,
          "the man page is vigil(1)")
    check(all(o in page for o in options) and "EXIT STATUS" in page, "the man page has every option and the exit codes")
else:
    check(True, f"# SKIP no man page at {MAN} (scdoc is not installed)")


def complete(*words):
    script = (f"source {COMPLETION}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
              f"COMP_CWORD={len(words) - 1}; _vigil; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30).stdout.split()


check(set(complete("vigil", "")) >= {"run", "ps", "report", "supervise", "shell"}, "TAB after vigil offers the verbs")
check(complete("vigil", "ps", "--") == ["--json", "--help"], "TAB after vigil ps -- offers its options")
offered = complete("vigil", "run", "t.py", "--")
check(set(options) <= set(offered), f"TAB after vigil run -- offers every option (missing {set(options) - set(offered)})")
check(complete("vigil", "run", "--accel", "") == ["auto", "kvm", "tcg"], "--accel completes its values")
check(complete("vigil", "run", "--qu") == ["--quiet"], "a prefix completes to the option")
done()
