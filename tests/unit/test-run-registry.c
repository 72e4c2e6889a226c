/* SPDX-License-Identifier: MIT */
/*
 * Proves that a run's registry entry (RUN_DIR/run.json) reads back as written, that a broken one is refused, that
 * liveness follows pid and start time, and that the status fold says what each event does to a machine.
 * Why it matters: `vigil ps` and `vigil shell` find runs only through this file, and report states through the fold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "run-plan.h"
#include "run-registry.h"
#include "run-status.h"
#include "tap.h"

static void test_roundtrip(void) {
        char dir[] = "/tmp/test-run-registry-XXXXXX", path[256];
        struct run_registry_entry a = {}, b = {};
        _cleanup_free_ char *text = NULL;
        struct run_plan p;
        char *err = NULL;

        CHECK(mkdtemp(dir) != NULL, "temporary directory");
        run_plan_init(&p);
        CHECK(run_plan_parse_args(&p, 6, (char *[]){"run", "t.py", "--node", "web", "--node", "box=nspawn", NULL},
                                  &err) == 0 &&
                      run_plan_finalize(&p, &err) == 0,
              "a plan of two machines (%s)", err ?: "");
        CHECK(run_registry_entry_from_plan(&p, "0123456789abcdef0123456789abcdef", dir, "/abs/out", &a) == 0,
              "an entry from the plan");
        CHECK(a.pid == (int) getpid() && a.start_time > 0 && a.started > 1e9 && a.n_machines == 2 &&
                      streq(a.machines[0].name, "box") && streq(a.machines[0].backend, "nspawn") &&
                      streq(a.machines[1].backend, "qemu"),
              "this process, now, and the machines in plan order with their backends");
        CHECK(run_registry_alive(&a), "this process is alive");
        CHECK(run_registry_write(&a) == 0, "written");
        snprintf(path, sizeof path, "%s/" RUN_REGISTRY_FILE, dir);
        CHECK(read_file_max(path, 1 << 20, &text) == 0 && run_registry_parse(text, &b) == 0, "read back");
        CHECK(streq_ptr(a.run_id, b.run_id) && a.pid == b.pid && a.start_time == b.start_time &&
                      a.started == b.started && streq_ptr(a.run_dir, b.run_dir) && streq_ptr(a.out_dir, b.out_dir) &&
                      streq_ptr(a.script, b.script) && b.n_machines == 2 && streq(b.machines[1].name, "web"),
              "every field as written");
        b.start_time++;
        CHECK(!run_registry_alive(&b), "the same pid with another start time is another process");
        b.pid = 1 << 22;
        CHECK(!run_registry_alive(&b), "a pid that is gone is not alive");
        run_registry_entry_done(&a);
        run_registry_entry_done(&b);
        run_plan_done(&p);
        rm_rf(dir);

        static const char *const bad[] = {
                "",
                "[]",
                "{\"run_id\":\"x\"}",
                "{\"run_id\":\"x\",\"run_dir\":\"/r\",\"out_dir\":\"/o\",\"pid\":0,\"start_time\":1,\"machines\":[]}",
                "{\"run_id\":\"x\",\"run_dir\":\"/r\",\"out_dir\":\"/"
                "o\",\"pid\":1,\"start_time\":1,\"machines\":[{}]}",
                "{\"run_id\":\"x\",\"run_dir\":\"/r\",\"out_dir\":\"/o\",\"pid\":1,\"start_time\":1}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct run_registry_entry e;
                CHECK(run_registry_parse(bad[i], &e) == -EINVAL, "refused: %s", bad[i]);
        }
}

static void test_status(void) {
        static struct run_status st;
        const char *const ready[] = {"name", "guest-ready", NULL};
        const char *const command[] = {"name", "command", NULL};
        const char *const deliberate[] = {"deliberate", "1", NULL};
        const char *const sub[] = {"name", "subtest-begin", NULL};
        const char *const sub_end[] = {"name", "subtest-end", NULL};
        const char *const qemu[] = {"name", "qemu", "pid", "50", "role", "machine", NULL};

        CHECK(run_status_feed(&st, "spawned", "a", "machine", NULL, NULL) == NULL &&
                      run_status_machine(&st, "a")->state == RUN_MACHINE_STARTING,
              "a machine worker spawned: starting");
        CHECK(streq(run_status_feed(&st, "proc_spawned", "a", "machine", qemu, NULL), "booting") &&
                      run_status_machine(&st, "a")->state == RUN_MACHINE_BOOTING,
              "its QEMU spawned: booting");
        CHECK(streq(run_status_feed(&st, "worker_event", "a", "machine", ready, NULL), "ready") &&
                      run_status_machine(&st, "a")->state == RUN_MACHINE_READY,
              "its guest shell up: ready");
        CHECK(run_status_feed(&st, "worker_event", "a", "machine", command, "exit 0 after 75 ms: echo hi") == NULL &&
                      streq(st.last, "a: echo hi (exit 0, 75 ms)"),
              "a command is remembered as the last one (%s)", st.last);
        CHECK(run_status_feed(&st, "exited", "a", "machine", deliberate, NULL) == NULL &&
                      run_status_machine(&st, "a")->state == RUN_MACHINE_READY,
              "a deliberate worker exit does not take the machine down");
        CHECK(streq(run_status_feed(&st, "exited", "a", "machine", NULL, NULL), "worker exited") &&
                      run_status_machine(&st, "a")->state == RUN_MACHINE_DOWN,
              "a worker crash does");
        CHECK(streq(run_status_feed(&st, "restarted", "a", "machine", NULL, NULL), "restarted") && st.restarts == 1,
              "restarts are counted");
        CHECK(streq(run_status_feed(&st, "worker_event", "script", "script", sub, "phase one"), "subtest begins") &&
                      streq(st.subtest, "phase one"),
              "a subtest begins");
        CHECK(streq(run_status_feed(&st, "worker_event", "script", "script", sub_end, NULL), "subtest passed") &&
                      !st.subtest[0],
              "and ends");
        CHECK(run_status_feed(&st, "spawned", "vlan1", "switch", NULL, NULL) == NULL && st.n_machines == 1 &&
                      !run_status_machine(&st, "vlan1"),
              "a switch is no machine");
        CHECK(run_status_feed(&st, NULL, "a", "machine", NULL, NULL) == NULL, "an event without a name is ignored");
        CHECK(streq(run_machine_state_to_string(RUN_MACHINE_BOOTING), "booting") &&
                      !run_machine_state_to_string(_RUN_MACHINE_STATE_MAX),
              "state names");
}

static const char *state_of(const struct run_status *st, const char *machine) {
        const struct run_status_machine *m = run_status_machine(st, machine);

        return m ? run_machine_state_to_string(m->state) : "(none)";
}

/* A QEMU spawned after boot-standby waits for start() with its snapshot
 * loaded: not booting, and its exit before start() is no machine going down. */
static void test_status_standby(void) {
        static struct run_status st;
        const char *const standby[] = {"name", "boot-standby", NULL};
        const char *const restored[] = {"name", "boot-restored", NULL};
        const char *const ready[] = {"name", "guest-ready", NULL};
        const char *const pid[][5] = {
                {"pid", "100", "role", "machine", NULL}, {"pid", "200", "role", "machine", NULL},
                {"pid", "201", "role", "machine", NULL}, {"pid", "300", "role", "machine", NULL},
                {"pid", "301", "role", "machine", NULL}, {"pid", "400", "role", "machine", NULL}};
        const char *const failed[] = {"name", "qemu", "role", "machine", NULL};
        const char *r;

        /* Taken by start(): standby, then booting once it runs, then ready. */
        (void) run_status_feed(&st, "spawned", "s", "machine", NULL, NULL);
        CHECK(run_status_feed(&st, "worker_event", "s", "machine", standby, "loading") == NULL &&
                      streq(state_of(&st, "s"), "starting"),
              "boot-standby alone changes nothing (%s)", state_of(&st, "s"));
        r = run_status_feed(&st, "proc_spawned", "s", "machine", pid[0], NULL);
        CHECK(streq_ptr(r, "standby (loaded ahead of start())") && streq(state_of(&st, "s"), "standby"),
              "the QEMU spawned after it stands by, not booting (%s, %s)", r ?: "NULL", state_of(&st, "s"));
        r = run_status_feed(&st, "worker_event", "s", "machine", restored, NULL);
        CHECK(streq_ptr(r, "booting") && streq(state_of(&st, "s"), "booting"), "start() lets it run: booting (%s, %s)",
              r ?: "NULL", state_of(&st, "s"));
        CHECK(streq_ptr(run_status_feed(&st, "worker_event", "s", "machine", ready, NULL), "ready"), "then ready");
        CHECK(streq_ptr(run_status_feed(&st, "proc_exited", "s", "machine", pid[0], NULL), "down") &&
                      streq(state_of(&st, "s"), "down"),
              "once it ran, its exit takes the machine down");

        /* Given up before start(): not started, then a start() boots anew. */
        (void) run_status_feed(&st, "spawned", "g", "machine", NULL, NULL);
        (void) run_status_feed(&st, "worker_event", "g", "machine", standby, NULL);
        (void) run_status_feed(&st, "proc_spawned", "g", "machine", pid[1], NULL);
        r = run_status_feed(&st, "proc_exited", "g", "machine", pid[1], NULL);
        CHECK(streq_ptr(r, "standby given up") && streq(state_of(&st, "g"), "starting"),
              "a standby QEMU that exits before start(): the machine is not started, not down (%s, %s)", r ?: "NULL",
              state_of(&st, "g"));
        CHECK(streq_ptr(run_status_feed(&st, "proc_spawned", "g", "machine", pid[2], NULL), "booting") &&
                      streq_ptr(run_status_feed(&st, "proc_exited", "g", "machine", pid[2], NULL), "down"),
              "a start() after it boots and goes down as usual");

        /* A standby dropped for failing still exits after start() spawned another. */
        (void) run_status_feed(&st, "worker_event", "o", "machine", standby, NULL);
        (void) run_status_feed(&st, "proc_spawned", "o", "machine", pid[3], NULL);
        CHECK(streq_ptr(run_status_feed(&st, "proc_spawned", "o", "machine", pid[4], NULL), "booting"),
              "a spawn without boot-standby before it boots");
        CHECK(run_status_feed(&st, "proc_exited", "o", "machine", pid[3], NULL) == NULL &&
                      streq(state_of(&st, "o"), "booting"),
              "the old standby's late exit leaves the new boot booting (%s)", state_of(&st, "o"));

        /* boot-standby whose spawn failed: the next spawn is start()'s. */
        (void) run_status_feed(&st, "worker_event", "f", "machine", standby, NULL);
        (void) run_status_feed(&st, "proc_spawn_failed", "f", "machine", failed, NULL);
        CHECK(streq_ptr(run_status_feed(&st, "proc_spawned", "f", "machine", pid[5], NULL), "booting"),
              "after a failed standby spawn the next QEMU boots");
        CHECK(run_status_feed(&st, "worker_event", "f", "machine", restored, NULL) == NULL &&
                      streq(state_of(&st, "f"), "booting"),
              "boot-restored of a restore inside start() changes nothing");
        bool named = false;
        for (int i = 0; i < _RUN_MACHINE_STATE_MAX; i++)
                named = named || streq_ptr(run_machine_state_to_string(i), "standby");
        CHECK(named, "the state is named standby");
}

/* A machine worker spawns helpers beside the machine: a KVM probe before
 * QEMU, nspawn's nsenter shell, ssh's session. Only the machine's own
 * process (role=machine) boots it or takes it down. */
static void test_status_helpers(void) {
        static struct run_status st;
        const char *const ready[] = {"name", "guest-ready", NULL};
        const char *const probe[] = {"name", "kvm-probe", "pid", "10", "role", "helper", "argv0", "qemu", NULL};
        const char *const probe_end[] = {"name", "kvm-probe", "pid", "10", "role", "helper", "exit_code", "0", NULL};
        const char *const probe_failed[] = {"name", "kvm-probe", "role", "helper", "reason", "ENOENT", NULL};
        const char *const qemu[] = {"name", "qemu", "pid", "11", "role", "machine", NULL};
        const char *const nspawn[] = {"name", "nspawn", "pid", "20", "role", "machine", NULL};
        const char *const shell[] = {"name", "shell", "pid", "21", "role", "helper", NULL};
        const char *const standby[] = {"name", "boot-standby", NULL};
        const char *r;

        /* The KVM probe runs and ends before the real QEMU starts. */
        (void) run_status_feed(&st, "spawned", "k", "machine", NULL, NULL);
        r = run_status_feed(&st, "proc_spawned", "k", "machine", probe, NULL);
        CHECK(!r && streq(state_of(&st, "k"), "starting"), "the KVM probe's spawn is no boot (%s, %s)", r ?: "NULL",
              state_of(&st, "k"));
        r = run_status_feed(&st, "proc_exited", "k", "machine", probe_end, NULL);
        CHECK(!r && streq(state_of(&st, "k"), "starting"), "nor is its exit the machine going down (%s, %s)",
              r ?: "NULL", state_of(&st, "k"));
        CHECK(streq_ptr(run_status_feed(&st, "proc_spawned", "k", "machine", qemu, NULL), "booting") &&
                      streq(state_of(&st, "k"), "booting"),
              "the real QEMU boots it");
        CHECK(!run_status_feed(&st, "proc_exited", "k", "machine", probe_end, NULL) &&
                      streq(state_of(&st, "k"), "booting"),
              "a helper's exit (the same pid told again) leaves it booting");

        /* nspawn: the nsenter shell comes and goes while the container runs. */
        (void) run_status_feed(&st, "spawned", "n", "machine", NULL, NULL);
        CHECK(streq_ptr(run_status_feed(&st, "proc_spawned", "n", "machine", nspawn, NULL), "booting"),
              "the container boots");
        CHECK(!run_status_feed(&st, "proc_spawned", "n", "machine", shell, NULL) &&
                      streq(state_of(&st, "n"), "booting"),
              "its nsenter shell's spawn changes nothing");
        (void) run_status_feed(&st, "worker_event", "n", "machine", ready, NULL);
        r = run_status_feed(&st, "proc_exited", "n", "machine", shell, NULL);
        CHECK(!r && streq(state_of(&st, "n"), "ready"), "the shell's exit leaves the machine up (%s, %s)", r ?: "NULL",
              state_of(&st, "n"));
        CHECK(streq_ptr(run_status_feed(&st, "proc_exited", "n", "machine", nspawn, NULL), "down") &&
                      streq(state_of(&st, "n"), "down"),
              "the container's exit takes it down");

        /* A helper's failed spawn between boot-standby and the QEMU keeps the QEMU standing by. */
        (void) run_status_feed(&st, "worker_event", "b", "machine", standby, NULL);
        (void) run_status_feed(&st, "proc_spawn_failed", "b", "machine", probe_failed, NULL);
        CHECK(streq_ptr(run_status_feed(&st, "proc_spawned", "b", "machine", qemu, NULL),
                        "standby (loaded ahead of start())"),
              "a helper's failed spawn is not the standby QEMU's");

        /* A timeline from a vigil before roles: every process is the machine's, as it was then. */
        const char *const old_qemu[] = {"name", "qemu", "pid", "31", NULL};
        (void) run_status_feed(&st, "spawned", "o", "machine", NULL, NULL);
        CHECK(streq_ptr(run_status_feed(&st, "proc_spawned", "o", "machine", old_qemu, NULL), "booting") &&
                      streq_ptr(run_status_feed(&st, "proc_exited", "o", "machine", old_qemu, NULL), "down"),
              "without a role (an older vigil's timeline) the process is the machine's");
}

int main(void) {
        test_roundtrip();
        test_status();
        test_status_standby();
        test_status_helpers();
        return tap_done();
}
