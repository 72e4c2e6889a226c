#!/usr/bin/env python3
# Proves that the report.html a real failing 3-machine `vigil run` leaves opens in a real browser (headless Chromium)
# with a lane per machine, VLAN and the script, the first failure and its traceback, a working console search, no errors.
# People look at this page, not at thousands of log lines, when a long fleet test fails on CI.
import os
import shutil
import subprocess
import sys
import tempfile
import time

VIGIL = os.path.abspath(sys.argv[1])
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    print("1..0 # SKIP python3-selenium is not installed (apt-get install python3-selenium)")
    sys.exit(77)
if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
    print("1..0 # SKIP chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "run"))
from runtap import check, done  # noqa: E402


SCRIPT = """
start_all()
with subtest("boot"):
    for m in (a, b, c):
        m.succeed("true")
with subtest("network faults"):
    import vigil
    vigil.partition([a], [b, c])
    b.succeed("echo partitioned")
    vigil.heal()
    a.block()
    a.unblock()
with subtest("this one fails"):
    c.succeed("echo about to fail; exit 3")
"""

with tempfile.TemporaryDirectory(prefix="vigil-report-browser-") as d:
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    out = os.path.join(d, "out")
    # As in a nix build: $out set, the output directory inside it.
    p = subprocess.run([VIGIL, "run", script, "--node", "a", "--node", "b", "--node", "c", "-o", out],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=400,
                       env=dict(os.environ, out=d))
    check(p.returncode == 1, f"the run fails as its script says (exit {p.returncode})")
    products = os.path.join(d, "nix-support", "hydra-build-products")
    lines = open(products).read().splitlines() if os.path.exists(products) else []
    check(f"report vigil-report {out} report.html" in lines and f"file log {out}/c-console.log" in lines,
          f"$out/nix-support/hydra-build-products lists the report and the logs for Hydra {lines}")
    page = os.path.join(out, "report.html")
    if not check(os.path.exists(page), "vigil run left report.html in its output directory"):
        print("# stderr: " + p.stderr[-3000:].replace("\n", "\n# "))
        done()
    print(f"# report.html: {os.path.getsize(page)} bytes")

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
              "--user-data-dir=" + os.path.join(d, "chromium-profile")):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(DRIVER, log_output=os.path.join(d, "chromedriver.log")), options=opts)
    try:
        browser.get("file://" + page)
        body = browser.find_element(By.TAG_NAME, "body")
        check(body.get_attribute("data-ready") == "1", "the page's script ran to the end")
        lanes = [e.text for e in browser.find_elements(By.CLASS_NAME, "lane-label")]
        check(lanes == ["script", "a", "b", "c", "vlan 1"], f"one lane for the script, each machine and the VLAN {lanes}")
        check(browser.find_element(By.ID, "verdict").text == "FAIL (exit 1)", "the header gives the verdict")
        check("journalctl VIGIL_RUN=" in browser.find_element(By.ID, "summary").text, "the header names the run id")
        fail = browser.find_element(By.ID, "failure")
        check(fail.is_displayed() and "this one fails" in fail.text and "Traceback" in fail.text
              and "exit 3" in fail.text and "c.succeed" in fail.text,
              "the first failure is shown with its subtest and traceback")
        check(len(browser.find_elements(By.CSS_SELECTOR, ".mark.failure")) == 1, "the failure is marked on the timeline")
        check(len(browser.find_elements(By.CSS_SELECTOR, ".bar.subtest")) == 3
              and len(browser.find_elements(By.CSS_SELECTOR, ".bar.subtest.failed")) == 1,
              "three subtests as bars, the failed one marked")
        check(len(browser.find_elements(By.CSS_SELECTOR, ".bar.ok")) >= 4
              and len(browser.find_elements(By.CSS_SELECTOR, ".bar.nz")) == 1,
              "each command is a bar coloured by its exit status")
        vlan_lane = browser.find_elements(By.CLASS_NAME, "lane")[-1]
        check(len(vlan_lane.find_elements(By.CSS_SELECTOR, ".bar.fault")) == 2
              and len(vlan_lane.find_elements(By.CSS_SELECTOR, ".mark.fault")) == 4,
              "partition, heal, block and unblock are on the VLAN's lane, two faulted intervals")
        check(len(browser.find_elements(By.CSS_SELECTOR, ".bar.boot")) == 3, "each machine's boot is a bar")

        browser.find_element(By.ID, "search").send_keys("(hostname c)")
        hits = []
        deadline = time.monotonic() + 10
        while not hits and time.monotonic() < deadline:
            time.sleep(0.2)
            hits = browser.find_elements(By.CSS_SELECTOR, "#hits div")
        check(any(h.text.startswith("c console") for h in hits), "search finds the guest's console line")
        if hits:
            hits[0].click()
            check(browser.find_element(By.ID, "cursor").is_displayed()
                  and "cursor at" in browser.find_element(By.ID, "cursor-info").text,
                  "a search hit moves the timeline's cursor to the line's time")
        browser.find_element(By.ID, "zoom-in").click()
        browser.find_element(By.ID, "failure-jump").click()
        logs = browser.get_log("browser")
        check(not logs, f"no console messages from the page {logs}")
        shot = os.environ.get("VIGIL_REPORT_SCREENSHOT")
        if shot:
            browser.save_screenshot(shot)
    finally:
        browser.quit()

    os.unlink(page)
    p = subprocess.run([VIGIL, "report", out], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0 and os.path.exists(page), "vigil report OUT_DIR writes it again from the recorded files")

done()
