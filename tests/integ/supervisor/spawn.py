#!/usr/bin/python3
# Proves the spawn service: a process started for a worker belongs to the child, not the worker process (it survives
# the worker's crash and is listed to the new worker), dies at teardown, and an exec failure reports the child's errno.
import signal
import time

from suphelp import check, host_pid, main, pid_alive, run_pids, test


def body(new_run):
    run = new_run(None)
    run.set_spec({"children": [
        test("w", ["--spawn-via-supervisor", "--crash-after-ms", "400", "--once-file", run.path("once")]),
        test("x", ["--spawn-via-supervisor", "--spawn-program", "/nonexistent/qemu"]),
        test("k", ["--spawn-via-supervisor", "--kill-spawned-after-ms", "200"]),
    ]})
    run.start()
    run.wait_for(lambda: run.worker_events("proc_restored", "w") and run.worker_events("spawn_error", "x")
                 and run.worker_events("proc_exit", "k"),
                 what="w restarted with its process listed, x's spawn error, k's PROC_KILL")
    sp = run.events("proc_spawned", child="w")[0]
    check(sp.get("role") == "helper", f"a process not flagged as the machine is a helper: role={sp.get('role')}")
    pid = host_pid(run.run_id, sp["pid"])
    check(pid and pid_alive(pid), f"the spawned sleep (pid {sp['pid']}) is alive after its worker crashed")
    check(len(run.events("spawned", child="w")) == 2, "w was restarted")
    restored = run.worker_events("proc_restored", "w")[0]["message"]
    check(restored == f"sleeper {sp['pid']}", f"the new worker was told about it: PROC_LIST '{restored}'")
    err = run.worker_events("spawn_error", "x")[0]["message"]
    check("/nonexistent/qemu" in err and "No such file or directory" in err,
          f"exec failure crossed the fork with the child's errno: '{err}'")
    kp = run.events("proc_spawned", child="k")[0]["pid"]
    check(run.worker_events("proc_kill_ok", "k"), "PROC_KILL was answered OK")
    pe = run.worker_events("proc_exit", "k")[0]["message"]
    check(pe == f"sleeper {kp} code=-1 signal=15", f"k was told its process ended by SIGTERM: PROC_EXIT '{pe}'")
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()
    check(rc == 6, f"exit 6 on SIGTERM (got {rc})")
    check(not pid_alive(pid), "the spawned process was killed at teardown")
    check(run.events("proc_exited", child="w", signal=15), "it was ended with SIGTERM first")
    check(run_pids(run.run_id) == [], "nothing of the run is left")


main(body)
