# SPDX-License-Identifier: MIT
"""Failure diagnostics (vigil's addition, after attest): when a unit wait
fails or times out, the error says what the machine's systemd knows. Pure
code: building the one guest command that gathers everything, parsing its
output into sections, and formatting the text appended to the error. The
Machine (machine/__init__.py) runs the command with bounded timeouts.

All sections run in a single guest command (one round trip), each under its
own `timeout`, with its output between two marker lines that carry a random
nonce, so whatever the guest prints cannot forge a section boundary. A
section that did not finish (the whole command was cut short) is reported as
such instead of being dropped.
"""

import re
import secrets
import shlex
from typing import NamedTuple

# What one section may cost in the guest, and the whole gathering.
SECTION_TIMEOUT_S = 4
TOTAL_TIMEOUT_S = 12
# What the error text may grow by.
LINE_MAX = 400
SECTION_LINES_MAX = 40
JOURNAL_LINES = 20
TEXT_MAX = 16 * 1024

# Unit properties summarised on one line (systemctl show -p ...).
UNIT_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "ExecMainCode",
    "ExecMainStatus",
    "NRestarts",
)

_SHOW_LINE = re.compile(r"^([^=]+)=(.*)$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".device", ".mount", ".automount",
    ".swap", ".timer", ".path", ".slice", ".scope",
)  # fmt: skip


class Section(NamedTuple):
    key: str        # stable name: "unit", "failed", "journal", ...
    title: str      # what the reader sees, usually with the command
    command: str    # run in the guest (stdout and stderr both captured)


class Result(NamedTuple):
    key: str
    title: str
    status: int | None  # None: the section never finished
    lines: list[str]


def parse_systemctl_show(text: str) -> dict[str, str]:
    """`systemctl show` output -> {property: value}, exactly as the
    reference's get_unit_info parses it (every `^([^=]+)=(.*)$` line)."""
    info: dict[str, str] = {}
    for line in text.split("\n"):
        m = _SHOW_LINE.match(line)
        if m:
            info[m[1]] = m[2]
    return info


def unit_name(unit: str) -> str:
    """The unit name systemd would use for `unit` in a journal field match:
    a name without a unit type suffix means a service (as systemctl and
    journalctl -u mangle it)."""
    return unit if unit.endswith(_UNIT_SUFFIXES) else unit + ".service"


def systemctl_command(q: str, user: str | None = None) -> str:
    """The guest command of Machine.systemctl() (the reference's quoting)."""
    if user is not None:
        q = q.replace("'", "\\'")
        return (
            f"su -l {user} --shell /bin/sh -c "
            "$'XDG_RUNTIME_DIR=/run/user/`id -u` "
            f"systemctl --user {q}'"
        )
    return f"systemctl {q}"


def _synced(journalctl: str) -> str:
    """journald reads a service's stdout stream asynchronously: a service
    that just died may have lines still in its socket (seen here: 1 run in
    6 missed the unit's last line). `journalctl --sync` makes journald take
    in and write everything logged before it."""
    return f"journalctl --sync >/dev/null 2>&1 || true; {journalctl}"


def unit_sections(unit: str, user: str | None = None) -> list[Section]:
    """What a failed unit wait reports: the unit's state, the failed units
    (the user's too for a user unit), the pending jobs and the unit's last
    journal lines."""
    q = shlex.quote(unit)
    props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
    where = "" if user is None else f" of user {user}"
    sections = [Section("unit", f"unit {unit}{where}", systemctl_command(f"--no-pager show {q} {props}", user))]
    if user is not None:
        sections.append(Section("failed-user", f"failed units of user {user} (systemctl --user --failed --no-legend)",
                                systemctl_command("--failed --no-legend --no-pager", user)))
    sections.append(Section("failed", "failed units (systemctl --failed --no-legend)",
                            "systemctl --failed --no-legend --no-pager"))
    # what a unit stuck in activating (or inactive with a job) is waiting for
    where = "" if user is None else f" of user {user}"
    sections.append(Section("jobs", f"pending jobs{where} (systemctl list-jobs --no-legend)",
                            systemctl_command("list-jobs --no-legend --no-pager", user)))
    if user is None:
        cmd = f"journalctl -u {q} -n {JOURNAL_LINES} --no-pager"
        sections.append(Section("journal", f"last journal lines of {unit} ({cmd})", _synced(cmd)))
    else:
        # journalctl --user-unit matches the caller's uid (root's): match the fields instead. A
        # process that died before journald read its cgroup is logged without any unit field
        # (seen here: 4 lines in 8; for system units PID 1 vouches for the unit, not for user
        # ones), so the unit's main process is matched by pid and uid as well.
        name = shlex.quote(unit_name(unit))
        fields = f"_SYSTEMD_USER_UNIT={name} + USER_UNIT={name}"
        show = systemctl_command(f"show -p ExecMainPID --value {q}", user)
        cmd = (
            f"uid=$(id -u {user}); pid=$({show} 2>/dev/null) || pid=0; match=; "
            'case "$pid" in ""|0|*[!0-9]*) ;; *) match="+ _PID=$pid _UID=$uid";; esac; '
            f"journalctl -n {JOURNAL_LINES} --no-pager {fields} $match"
        )
        title = f"journalctl -n {JOURNAL_LINES} --no-pager {fields} + _PID=<main pid> _UID=<uid>"
        sections.append(Section("journal", f"last journal lines of {unit} of user {user} ({title})", _synced(cmd)))
    return sections


def port_sections() -> list[Section]:
    """What a failed port wait reports: failed units, who listens, and the
    machine's last journal lines."""
    journal = f"journalctl -n {JOURNAL_LINES} --no-pager"
    return [
        Section("failed", "failed units (systemctl --failed --no-legend)", "systemctl --failed --no-legend --no-pager"),
        Section("listening", "listening TCP sockets (ss -Hltnp)", "ss -Hltnp"),
        Section("journal", f"last journal lines ({journal})", _synced(journal)),
    ]


def new_nonce() -> str:
    return "vigil-diag-" + secrets.token_hex(8)


def build_command(sections: list[Section], nonce: str, section_timeout: int = SECTION_TIMEOUT_S) -> str:
    """One shell command running every section. It runs under the guest
    shell's `set -euo pipefail`, hence the `|| st=$?`. The section's command
    runs in `bash -c` (the user systemctl quoting is bash's `$'...'`) under
    `timeout`, stdin from /dev/null (it must not read the backdoor's channel)."""
    parts = []
    for s in sections:
        parts.append(
            f"echo {nonce} begin {s.key}; st=0; "
            f"timeout {int(section_timeout)} bash -c {shlex.quote(s.command)} </dev/null 2>&1 || st=$?; "
            f"echo; echo {nonce} end {s.key} $st"
        )
    return "; ".join(parts)


def parse_output(sections: list[Section], nonce: str, output: str) -> list[Result]:
    """Split the command's output into one Result per section, in order.
    Lines outside the markers are ignored; a section whose end marker is
    missing has status None (cut short) and whatever it printed."""
    by_key = {s.key: s for s in sections}
    got: dict[str, Result] = {}
    current: str | None = None
    lines: list[str] = []
    begin = f"{nonce} begin "
    end = f"{nonce} end "
    for line in output.split("\n"):
        if line.startswith(begin):
            key = line[len(begin):]
            current = key if key in by_key else None
            lines = []
            continue
        if line.startswith(end) and current is not None:
            rest = line[len(end):].rsplit(" ", 1)
            if len(rest) == 2 and rest[0] == current and rest[1].isdigit():
                # the `echo` before the marker ends a last line without newline
                if lines and lines[-1] == "":
                    lines.pop()
                s = by_key[current]
                got[current] = Result(s.key, s.title, int(rest[1]), lines)
                current = None
                continue
        if current is not None:
            lines.append(line)
    if current is not None:
        s = by_key[current]
        got[current] = Result(s.key, s.title, None, [ln for ln in lines if ln != ""])
    return [got.get(s.key, Result(s.key, s.title, None, [])) for s in sections]


def console_fallback(results: list[Result], console: list[str]) -> list[Result]:
    """A machine without systemd (the tiny guest) answers every section with
    "command not found": then the last serial console lines, which the
    script already holds, are the only story there is."""
    if not results or any(r.status not in (126, 127) for r in results):
        return []
    tail = console[-JOURNAL_LINES:]
    return [Result("console", f"last {len(tail)} console lines (no systemd tools on this machine)", 0, tail)]


def _clean(line: str) -> str:
    line = _CONTROL.sub("?", line.replace("\r", "").rstrip())
    return line if len(line) <= LINE_MAX else line[: LINE_MAX - 3] + "..."


def summarize_unit(lines: list[str]) -> str:
    """`systemctl show -p ...` output as one line `Key=value, ...` in
    UNIT_PROPERTIES order (the ones present)."""
    info = parse_systemctl_show("\n".join(lines))
    return ", ".join(f"{p}={info[p]}" for p in UNIT_PROPERTIES if p in info)


def _body(r: Result) -> list[str]:
    if r.status is None and not r.lines:
        return ["(no answer: the diagnostics were cut short)"]
    if r.status in (126, 127) and len(r.lines) <= 2:
        return [f"(not available on this machine: {_clean(' '.join(r.lines)) or f'exit code {r.status}'})"]
    if r.status == 124:
        tail = ["(timed out)"]
    elif r.status is None:
        tail = ["(cut short)"]
    elif r.status != 0 and not (r.key == "failed" and r.status == 1):
        tail = [f"(exit code {r.status})"]
    else:
        tail = []
    body = [_clean(ln) for ln in r.lines]
    if not body and not tail:
        return ["(none)"]
    if len(body) > SECTION_LINES_MAX:
        more = len(body) - SECTION_LINES_MAX
        body = body[:SECTION_LINES_MAX] + [f"... ({more} more lines)"]
    return body + tail


def format_report(machine: str, results: list[Result], seconds: float | None = None,
                  error: str | None = None) -> str:
    """The text appended to an error: a header naming the machine, then one
    indented block per section. `error` replaces the sections when nothing
    could be gathered (machine gone, no answer in time)."""
    took = f" (collected in {seconds:.2f} s)" if seconds is not None else ""
    out = [f"diagnostics of {machine}{took}:"]
    if error is not None:
        out.append(f"  could not collect them: {_clean(' '.join(error.splitlines()))}")
        return "\n".join(out)
    for r in results:
        if r.key == "unit" and r.status == 0 and r.lines:
            summary = summarize_unit(r.lines)
            out.append(f"  {r.title}: {summary or '(no properties)'}")
            continue
        out.append(f"  {r.title}:")
        out.extend(f"    {ln}" for ln in _body(r))
    text = "\n".join(out)
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - 40].rsplit("\n", 1)[0] + "\n  ... (diagnostics cut at 16 KiB)"
    return text


def with_diagnostics(message: str, report: str | None) -> str:
    """The error message: the reference's text first (unchanged, so scripts
    and tools matching it still do), then the report."""
    return message if not report else f"{message}\n{report}"
