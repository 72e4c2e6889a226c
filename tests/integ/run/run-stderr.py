#!/usr/bin/env python3
# Proves that a run whose stderr nobody reads ends in normal time with its exit status and timeline intact, showing
# whole lines then "N lines dropped"; a reader paused for 4 s loses nothing and holds nothing up. `vigil run | less`
# left unscrolled, or a CI harness that reads only at the end, must not stall a run for minutes.
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from runtap import check, done

VIGIL = sys.argv[1]
LINE = "flood line {:06d} " + "x" * 40
FLOOD = """import time
with subtest("flood"):
    t0 = time.monotonic()
    for i in range({n}):
        log.info("flood line {{:06d}} ".format(i) + "x" * 40)
    log.info("flood took {{:.2f}} s".format(time.monotonic() - t0))
    time.sleep({linger})
"""


def write_script(d, name, n, linger):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(FLOOD.format(n=n, linger=linger))
    return path


def timeline(out):
    with open(os.path.join(out, "timeline.jsonl")) as f:
        text = f.read()
    return text


def flood_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("flood line ")]


def whole(lines):
    return all(re.fullmatch(r"flood line \d{6} x{40}", ln) for ln in lines)


with tempfile.TemporaryDirectory(prefix="vigil-run-stderr-") as d:
    # 1. A pipe nobody reads until the run is over: 20000 lines (1.2 MB) fill its 64 KiB many times over.
    n = 20000
    script = write_script(d, "flood.py", n, 0)
    out = os.path.join(d, "unread")
    r, w = os.pipe()
    t0 = time.monotonic()
    proc = subprocess.Popen([VIGIL, "run", script, "--node", "a", "-o", out], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=w)
    os.close(w)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        code = None
    elapsed = time.monotonic() - t0
    check(code is not None, f"the run ended with nobody reading its stderr ({elapsed:.1f} s)")
    if code is None:
        proc.kill()
        proc.wait()
    os.set_blocking(r, False)
    data = b""
    while True:
        try:
            chunk = os.read(r, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    os.close(r)
    text = data.decode(errors="replace")
    check(code == 0, f"with its normal exit status (exit {code})")
    check(elapsed < 30, f"in normal time ({elapsed:.1f} s)")
    tl = timeline(out) if os.path.exists(os.path.join(out, "timeline.jsonl")) else ""
    check('"subtest-end"' in tl and '"run_end","exit_code":0' in tl,
          "timeline.jsonl is complete: the subtest ended, the run ended with 0")
    check(os.path.exists(os.path.join(out, "report.html")), "the output directory has its report")
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    m = re.match(r"vigil: (\d+) lines dropped: stderr was not read fast enough; .*" + re.escape(out), last)
    check(m is not None, f"the last line says how many lines were dropped and where the record is ({last[:160]!r})")
    shown = flood_lines(text)
    check(len(shown) > 500 and whole(shown), f"the lines shown are whole ({len(shown)} flood lines)")
    check(shown == [LINE.format(i) for i in range(len(shown))], "and are the first ones, in order")
    check(m is not None and int(m.group(1)) >= n - len(shown), "the count covers every line not shown")

    # 2. A reader paused for 4 s (SIGSTOP of a cat) while 3000 lines (190 KB, more than the pipe holds) are written.
    n = 3000
    script = write_script(d, "pause.py", n, 6)
    out = os.path.join(d, "paused")
    with open(os.path.join(d, "paused.txt"), "wb") as sink:
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=sink)
        os.kill(cat.pid, signal.SIGSTOP)
        proc = subprocess.Popen([VIGIL, "run", script, "--node", "a", "-o", out], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=cat.stdin)
        cat.stdin.close()
        time.sleep(4)
        os.kill(cat.pid, signal.SIGCONT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        cat.wait(timeout=30)
    with open(os.path.join(d, "paused.txt"), errors="replace") as f:
        text = f.read()
    check(code == 0, f"the run with a paused reader passed (exit {code})")
    check(flood_lines(text) == [LINE.format(i) for i in range(n)], "the paused reader got every line, in order")
    check("dropped" not in text, "and no line was dropped")
    took = re.search(r"flood took ([\d.]+) s", text)
    check(took is not None and float(took.group(1)) < 1.0,
          f"the script did not wait for the paused reader (flood took {took.group(1) if took else '?'} s)")
done()
