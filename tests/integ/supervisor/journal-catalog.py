#!/usr/bin/python3
# Proves vigil's journald conventions against a real hand-started systemd-journald: a worker restart is logged with
# its catalog MESSAGE_ID and CODE_FILE/LINE/FUNC, and `journalctl -x` explains it with docs/vigil.catalog's text.
# It matters because `journalctl -x` and MESSAGE_ID= are how users of the journal find and understand vigil's events.
import os
import re
import shutil
import subprocess
import sys

from suphelp import check, main, restart_into_journal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helpers"))
import privjournal  # noqa: E402

CATALOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs", "vigil.catalog")
CATALOG_SRC_DIR = "/usr/lib/systemd/catalog"  # journalctl --update-catalog reads only this and /usr/local/lib/...
CATALOG_DB_DIR = "/var/lib/systemd/catalog"


def catalog_id(subject):
    """The MESSAGE_ID of the catalog entry with this Subject."""
    text = open(CATALOG).read()
    m = re.search(r"^-- ([0-9a-f]{32})\nSubject: " + re.escape(subject) + "\n", text, re.M)
    check(m, f"docs/vigil.catalog has an entry '{subject}'")
    return m.group(1)


def explain(run_id, message_id):
    r = subprocess.run(["journalctl", "--directory=/run/log/journal", "--no-pager", "-x",
                        f"VIGIL_RUN={run_id}", f"MESSAGE_ID={message_id}"], capture_output=True, text=True)
    return r.stdout


def body(new_run):
    restart_id = catalog_id("A vigil worker was restarted")
    jd = privjournal.start_journald()
    try:
        run, rc, entries = restart_into_journal(new_run, lambda run_id: privjournal.query(f"VIGIL_RUN={run_id}"))
        check(rc == 6, f"run ended (rc {rc})")
        rs = [e for e in entries if e.get("VIGIL_EVENT") == "restarted"]
        check(len(rs) == 1, f"one restarted entry in the journal ({len(rs)})")
        r = rs[0]
        check(r.get("MESSAGE_ID") == restart_id, f"it carries the catalog's MESSAGE_ID {restart_id} "
              f"(got {r.get('MESSAGE_ID')})")
        check(r.get("CODE_FILE") == "supervisor/sup-tree.c" and r.get("CODE_LINE", "").isdigit() and
              r.get("CODE_FUNC"), f"CODE_FILE/LINE/FUNC name where it was logged: {r.get('CODE_FILE')}:"
              f"{r.get('CODE_LINE')} {r.get('CODE_FUNC')}")
        worker = [e for e in entries if e.get("SYSLOG_IDENTIFIER") == "vigil-test"]
        check(worker and all(e.get("CODE_FILE") for e in worker), "the worker's own entries carry CODE_FILE too")

        before = explain(run.run_id, restart_id)
        check("A vigil worker was restarted" not in before, "without the catalog, journalctl -x has no text for it")
        # Installed as meson would, but onto tmpfs over the catalog source and database directories in this
        # private mount namespace: the host's files are untouched and everything vanishes when the test exits.
        for d in (CATALOG_SRC_DIR, CATALOG_DB_DIR):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)
        shutil.copy(CATALOG, os.path.join(CATALOG_SRC_DIR, "vigil.catalog"))
        up = subprocess.run(["journalctl", "--update-catalog"], capture_output=True, text=True)
        check(up.returncode == 0, f"journalctl --update-catalog accepts docs/vigil.catalog {up.stderr.strip()}")
        after = explain(run.run_id, restart_id)
        check("Subject: A vigil worker was restarted" in after, "journalctl -x shows the catalog's Subject")
        check(f"The vigil worker a of run {run.run_id} stopped and was restarted" in after and
              "restart number 1" in after, "and its text, with the entry's fields filled in")
        check("Defined-By: vigil" in after and "Documentation: man:vigil(1)" in after,
              "and its Defined-By and Documentation")
    finally:
        jd.terminate()
        jd.wait()


if privjournal.is_inner():
    main(body)
else:
    privjournal.run_in_private_namespace(__file__)
