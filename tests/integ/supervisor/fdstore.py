#!/usr/bin/python3
# Proves the fd store: a worker restarted by the strategy, whether it crashed itself (one_for_one) or was restarted
# because a sibling crashed (one_for_all), gets the fd it stored back, with its content. This is how VMs survive.
import signal
import sys
import time

from suphelp import check, main, test


def body(new_run):
    strategy = sys.argv[1]
    run = new_run(None)
    if strategy == "many":
        many(new_run)
        return
    if strategy == "forget":
        forget(new_run)
        return
    if strategy == "one_for_one":
        children = [test("keeper", ["--store-fd", "precious", "--crash-after-ms", "300", "--once-file",
                                    run.path("once")])]
    else:
        children = [test("keeper", ["--store-fd", "precious"]),
                    test("crasher", ["--crash-after-ms", "300", "--once-file", run.path("once")])]
    run.set_spec({"strategy": strategy, "intensity": {"max_restarts": 3, "max_seconds": 5}, "children": children})
    run.start()
    run.wait_for(lambda: run.worker_events("fd_restored", "keeper") or run.worker_events("fd_missing", "keeper"),
                 what="the restarted keeper to report its fd")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    check(run.worker_events("fd_created", "keeper"), f"{strategy}: keeper stored an fd on its first start")
    check(len(run.events("spawned", child="keeper")) == 2, f"{strategy}: keeper was restarted by the strategy")
    got = run.worker_events("fd_restored", "keeper")
    check(got and got[0]["message"] == "precious vigil-fd-store:precious",
          f"{strategy}: the new keeper got the fd back with its content ({got and got[0]['message']})")
    check(not run.worker_events("fd_missing") and not run.worker_events("fd_corrupt"), f"{strategy}: nothing lost")


def forget(new_run):
    run = new_run(None)
    run.set_spec({"children": [test("keeper", ["--store-fd", "gone", "--forget-fd", "--crash-after-ms", "300",
                                               "--once-file", run.path("once")])]})
    run.start()
    run.wait_for(lambda: len(run.events("ready", child="keeper")) == 2, what="the restart")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    check(run.worker_events("fd_forgotten", "keeper"), "the worker stored an fd and then forgot it")
    check(run.worker_events("fd_missing", "keeper") and not run.worker_events("fd_restored"),
          "after the restart the forgotten fd is not handed back")


def many(new_run):
    run = new_run(None)
    run.set_spec({"children": [test("sw", ["--store-many", "600", "--crash-after-ms", "500", "--once-file",
                                           run.path("once")])]})
    run.start()
    run.wait_for(lambda: run.worker_events("fd_many_restored", "sw"), what="the restarted worker to count its fds")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    check(run.worker_events("fd_many_stored", "sw"), "600 fds stored on the first start")
    got = run.worker_events("fd_many_restored", "sw")[0]["message"]
    check(got == "600/600 intact=600", f"all 600 came back after the restart, content intact ({got})")


main(body)
