#!/usr/bin/env python3
# Proves that `vigil report` turns a recorded output directory into one bounded, self-contained report.html:
# every command up to the cap, the first and last half beyond it, consoles cut in the middle, no outside reference.
# A run of hours (thousands of commands, 100 machines) must still give a page a browser opens, from a CI artifact.
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

VIGIL = sys.argv[1]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "run"))
from runtap import check, done  # noqa: E402


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8ff"
                    "ff3f0005fe02fea7d605f50000000049454e44ae426082")


def fake_run(d, machines, commands, console_bytes):
    """An output directory as `vigil run` leaves it, with the events report.html reads."""
    ev = [{"t": 0.0, "event": "run_begin", "run": "0123456789abcdef"}]
    t = 0.0
    for m in machines:
        ev.append({"t": t, "event": "proc_spawned", "child": m, "kind": "machine", "name": "qemu", "pid": 100})
        ev.append({"t": t + 0.01, "event": "fd_stored", "child": m, "kind": "machine", "name": "shell"})
        ev.append({"t": t + 5, "event": "worker_event", "child": m, "kind": "machine", "name": "guest-ready",
                   "message": "connected to the guest root shell"})
    for i in range(commands):
        t += 0.08
        ev.append({"t": t, "event": "worker_event", "child": machines[i % len(machines)], "kind": "machine",
                   "name": "command", "message": f"exit {i % 3} after 75 ms: echo command-{i} </script><!--"})
    ev.append({"t": t, "event": "run_end", "exit_code": 1})
    with open(os.path.join(d, "timeline.jsonl"), "w") as f:
        for e in ev:
            f.write(json.dumps(e) + "\n")
    for m in machines:
        with open(os.path.join(d, f"{m}-console.log"), "w") as f:
            n = 0
            i = 0
            while n < console_bytes:
                line = f"[ {i / 100:10.6f}] {m} console line {i} " + "x" * 60 + "\n"
                f.write(line)
                n += len(line)
                i += 1
    open(os.path.join(d, "vlan1.pcap"), "wb").write(b"\xd4\xc3\xb2\xa1")
    open(os.path.join(d, "junit.xml"), "w").write("<testsuites/>\n")
    open(os.path.join(d, "screen.png"), "wb").write(PNG)
    open(os.path.join(d, "huge.png"), "wb").write(PNG + bytes(3 << 20))


def report(d):
    p = subprocess.run([VIGIL, "report", d], capture_output=True, text=True, timeout=120)
    path = os.path.join(d, "report.html")
    html = open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""
    return p, html


def commands_in(html):
    block = re.search(r'<script type="text/plain" id="vigil-events">\n(.*?)</script>', html, re.S)
    return [json.loads(line) for line in block.group(1).splitlines() if '"command"' in line] if block else []


with tempfile.TemporaryDirectory(prefix="vigil-report-") as d:
    fake_run(d, ["a", "b", "c"], 1000, 200_000)
    p, html = report(d)
    check(p.returncode == 0, f"vigil report exits 0 (exit {p.returncode}, {p.stderr.strip()})")
    size = len(html.encode())
    print(f"# report.html of 1000 commands on 3 machines, 200 KB console each: {size} bytes")
    check(len(commands_in(html)) == 1000, "all 1000 commands are in the page")
    check("</script><!--" not in html.split("<!--VIGIL-DATA-->")[-1] and "\\u003c\\/script>" in html,
          "command text cannot end the data block ('<' is escaped inside JSON)")
    check(not re.search(r'(src|href)="(https?:)?//', html), "no reference to anything outside the file")
    check('"pcaps":["vlan1.pcap"]' in html, "the pcap is listed for a link")
    check(html.count('class="vigil-console"') == 3, "one console block per machine")
    check('"fd_stored"' not in html, "bookkeeping events (fd_stored) are left out")
    shot = re.search(r'<script type="text/plain" class="vigil-shot" data-name="screen.png">\n(.*?)\n</script>', html, re.S)
    check(shot is not None and base64.b64decode(shot.group(1)) == PNG, "a screenshot is embedded whole, base64")
    check('"screenshots_linked":["huge.png"]' in html, "a screenshot over 2 MiB is linked, not embedded")
    check('"junit":["junit.xml"]' in html, "the JUnit file is listed for a link")

with tempfile.TemporaryDirectory(prefix="vigil-report-") as d:
    machines = [f"m{i:03d}" for i in range(100)]
    fake_run(d, machines, 60_000, 1_000_000)
    p, html = report(d)
    check(p.returncode == 0, "a 100-machine, 60000-command run is reported")
    size = len(html.encode())
    print(f"# report.html of 60000 commands on 100 machines, 1 MB console each: {size} bytes")
    cmds = commands_in(html)
    nums = [int(re.search(r"command-(\d+)", c["message"]).group(1)) for c in cmds]
    check(len(cmds) == 20000, f"commands are capped at 20000 ({len(cmds)})")
    check(nums[:1] == [0] and nums[-1:] == [59999], "the first and the last commands are kept")
    check(size < 48 << 20, f"the page stays bounded ({size} bytes < 48 MiB)")
    check('{"omitted":' in html, "consoles over their share are cut in the middle, saying how much")

with tempfile.TemporaryDirectory(prefix="vigil-report-") as d:
    p, _ = report(d)
    check(p.returncode == 2 and "timeline.jsonl" in p.stderr, "a directory without a timeline: exit 2, naming it")
    p = subprocess.run([VIGIL, "report", "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "Usage: vigil report" in p.stdout, "vigil report --help: usage, exit 0")

done()
