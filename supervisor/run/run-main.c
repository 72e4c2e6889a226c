/* SPDX-License-Identifier: MIT */
/*
 * run-main.c owns `vigil run` and the reference driver's command line
 * (`nixos-test-driver`): it turns a run plan into directories on disk, the
 * tiny guest (built or reused by tools/mkguest), and a supervision tree of
 * one switch worker per VLAN, one machine worker per node and the script
 * worker, then runs the tree and turns the script's verdict into vigil's exit
 * code. Bad input ends here with exit 2 and a message naming the problem.
 * Every end, early or not, is said on stderr and recorded in the output dir.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-id128.h>

#include "config.h"
#include "exit-status.h"
#include "log-stderr.h"
#include "log.h"
#include "macro.h"
#include "report.h"
#include "run-main.h"
#include "run-plan.h"
#include "run-progress.h"
#include "run-registry.h"
#include "run-sweep.h"
#include "fs-util.h"
#include "sup.h"

#define RUN_INTENSITY_RESTARTS 3u
#define RUN_INTENSITY_SECONDS  5u
#define MACHINE_SHUTDOWN_MS    10000
#define SWITCH_SHUTDOWN_MS     2000
#define SCRIPT_SHUTDOWN_MS     5000
#define SPEC_FILE_MAX          (4u << 20)          /* a spec or --config file */
#define BUILD_STOP_USEC        (10 * USEC_PER_SEC) /* a cache build's time to clean up after SIGTERM */

struct run_state {
        char verdict[512];
        bool have_verdict;
        struct run_progress *progress;
        struct run_plan *plan; /* create_machine() adds to it */
        const struct run_dirs *dirs;
        struct run_registry_entry registry; /* RUN_DIR/run.json: how vigil ps finds this run */
        char why[600];                      /* why the script's end ended the run, for the summary */
        int why_code;                       /* ... and the exit code it asked for */
};

static struct run_state run_state;

static const char *real_env(const char *name) {
        return getenv(name);
}

static int usage_error(const char *msg) {
        fprintf(stderr, "vigil: %s\n", msg);
        return VIGIL_EXIT_USAGE;
}

/* A run id is a random 128-bit id as 32 hex digits (what journalctl VIGIL_RUN=
 * matches); the state directory and TAP names use its first 8 and 4 digits. */
static void random_id(char *buf, size_t size) {
        sd_id128_t id;

        if (sd_id128_randomize(&id) < 0) {
                uint64_t x = now_usec() ^ ((uint64_t) getpid() << 32);
                snprintf(buf, size, "%016llx%016llx", (unsigned long long) x, (unsigned long long) ~x);
                return;
        }
        snprintf(buf, size, SD_ID128_FORMAT_STR, SD_ID128_FORMAT_VAL(id));
}

/* The reference requires an existing, writable output directory; vigil run creates it. */
static int prepare_out_dir(const struct run_plan *p, char *ret, size_t size, char **ret_error) {
        const char *dir = p->out_dir ?: (p->reference_cli ? "." : "vigil-out");
        struct stat st;
        int r;

        if (!p->reference_cli) {
                r = mkdir_p(dir, 0755);
                if (r < 0)
                        return asprintf(ret_error, "cannot create output directory %s: %s", dir, strerror(-r)),
                               -EINVAL;
        }
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return asprintf(ret_error, "%s is not a directory", dir), -EINVAL;
        if (access(dir, W_OK) < 0)
                return asprintf(ret_error, "%s is not a writeable directory", dir), -EINVAL;
        if (!realpath(dir, ret) || strlen(ret) >= size)
                return asprintf(ret_error, "cannot resolve %s", dir), -EINVAL;
        return 0;
}

/* Short, private run directory: AF_UNIX socket paths below it must stay < 108 bytes. */
static int prepare_tmp_dir(const struct run_plan *p, const char *run_id, char *ret, size_t size, char **ret_error) {
        const char *base = getenv("XDG_RUNTIME_DIR");
        int r;

        if (!base || access(base, W_OK) < 0)
                base = getenv("TMPDIR");
        if (!base || access(base, W_OK) < 0)
                base = "/tmp";
        if (p->keep_state)
                snprintf(ret, size, "%s/vigil-keep-%u", base, (unsigned) getuid());
        else
                snprintf(ret, size, "%s/vigil-%.8s", base, run_id);
        if (strlen(ret) > 60)
                return asprintf(ret_error, "temporary directory %s is too long for unix socket paths: set TMPDIR",
                                ret),
                       -EINVAL;
        run_sweep_tmp_dirs(base);
        if (geteuid() == 0)
                run_sweep_nspawn_propagate();
        r = mkdir_p(ret, 0700);
        if (r < 0)
                return asprintf(ret_error, "cannot create %s: %s", ret, strerror(-r)), -EINVAL;
        if (!p->keep_state)
                run_sweep_mark_owner(ret);
        return 0;
}

static int prepare_machine_dirs(const struct run_plan *p, const char *tmp, char **ret_error) {
        char path[600];
        int r;

        snprintf(path, sizeof(path), "%s/shared-xchg", tmp);
        r = mkdir_p(path, 0700);
        for (size_t i = 0; r >= 0 && i < p->n_nodes; i++) {
                snprintf(path, sizeof(path), "%s/vm-state-%s", tmp, p->nodes[i].name);
                if (!p->keep_state && access(path, F_OK) == 0) {
                        log_info("deleting machine state directory %s", path);
                        log_info("if you want to keep the machine state, pass --keep-machine-state");
                        rm_rf(path);
                }
                r = mkdir_p(path, 0700);
        }
        if (r < 0)
                return asprintf(ret_error, "cannot create %s: %s", path, strerror(-r)), -EINVAL;
        return 0;
}

static bool is_dir(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A cache-building tool of ours: $ENV, else the source tree's tools/, else the installed copy. */
struct build_tool {
        const char *name; /* "mkguest" */
        const char *env;  /* "VIGIL_MKGUEST" */
        const char *what; /* "the tiny guest" */
};

static const struct build_tool tool_mkguest = {"mkguest", "VIGIL_MKGUEST", "the tiny guest"};
static const struct build_tool tool_mkdebian = {"mkdebian", "VIGIL_MKDEBIAN", "the Debian tree for nspawn machines"};

static int build_tool_path(const struct build_tool *t, char *buf, size_t size) {
        const char *env = getenv(t->env);
        const char *dirs[] = {VIGIL_SOURCE_ROOT "/tools", VIGIL_DATADIR};

        if (env) {
                snprintf(buf, size, "%s", env);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(buf, size, "%s/%s", dirs[i], t->name);
                if (access(buf, X_OK) == 0)
                        return 0;
        }
        return -ENOENT;
}

/* The build's process group: asked to stop with SIGTERM (the tools remove
 * their half-built directory), killed after BUILD_STOP_USEC. Anything left
 * in the group after the tool itself ended is killed too. */
static void build_stop(pid_t pid, int *status) {
        uint64_t deadline = now_usec() + BUILD_STOP_USEC;
        pid_t r;

        (void) kill(-pid, SIGTERM);
        while ((r = waitpid(pid, status, WNOHANG)) == 0 && now_usec() < deadline)
                (void) poll(NULL, 0, 20);
        (void) kill(-pid, SIGKILL);
        if (r == 0)
                while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                        ;
}

static void build_guard_fire(int sig) {
        (void) kill(0, SIGKILL); /* the whole group, this guard included */
}

/* The child of vigil that runs a build: leader of the build's process group,
 * it forks the tool and waits. When vigil dies (PDEATHSIG, by any signal,
 * SIGKILL included, with or without a PID namespace) it kills the group, so
 * nothing the tool started (debootstrap and its children) outlives vigil.
 * It ignores the SIGTERM vigil sends the group; the tool gets it. */
_noreturn_ static void build_guard(const char *tool, int out_fd, pid_t parent, const sigset_t *mask) {
        static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
        struct sigaction fire = {.sa_handler = build_guard_fire};
        int status;
        pid_t pid;

        (void) setpgid(0, 0);
        (void) sigaction(SIGUSR1, &fire, NULL);
        (void) prctl(PR_SET_PDEATHSIG, SIGUSR1, 0, 0, 0);
        if (getppid() != parent) /* vigil died before prctl */
                build_guard_fire(SIGUSR1);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                (void) signal(sigs[i], SIG_IGN);
        (void) sigprocmask(SIG_SETMASK, mask, NULL);
        pid = fork();
        if (pid < 0)
                _exit(127);
        if (pid == 0) {
                for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                        (void) signal(sigs[i], SIG_DFL);
                (void) signal(SIGUSR1, SIG_DFL);
                if (dup2(out_fd, STDOUT_FILENO) < 0)
                        _exit(127);
                execl(tool, tool, (char *) NULL);
                _exit(127);
        }
        safe_close(out_fd);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        _exit(127);
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* Run the tool (it caches by content) and read the directory it prints.
 * The build gets the guarantees of a machine: it dies with vigil, with all it
 * started (build_guard(); in the PID namespace, the namespace's end too), and
 * SIGTERM, SIGINT or SIGHUP stop it and end the run with
 * VIGIL_EXIT_INTERRUPTED (-EINTR). */
static int build_with(const struct build_tool *t, char *ret, size_t size, char **ret_error) {
        static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
        _cleanup_close_ int rd = -EBADF, sigfd = -EBADF;
        char tool[600];
        int pfd[2], status = 0, sig = sup_pidns_early_signal();
        size_t len = 0;
        sigset_t mask, old;
        pid_t pid, parent = getpid();

        if (build_tool_path(t, tool, sizeof(tool)) < 0)
                return asprintf(ret_error, "tools/%s not found (set %s)", t->name, t->env), -ENOENT;
        if (sig)
                return asprintf(ret_error, "received %s before building %s", sigabbrev_np(sig), t->what), -EINTR;
        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                sigaddset(&mask, sigs[i]);
        if (sigprocmask(SIG_BLOCK, &mask, &old) < 0)
                return negative_errno();
        sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sigfd < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
                return negative_errno();
        }
        rd = pfd[0];
        pid = fork();
        if (pid < 0) {
                safe_close(pfd[1]);
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
                return negative_errno();
        }
        if (pid == 0)
                build_guard(tool, pfd[1], parent, &old);
        (void) setpgid(pid, pid); /* both sides: no window where a signal misses the group */
        safe_close(pfd[1]);

        for (bool eof = false; !eof && !sig;) {
                struct pollfd p[2] = {{.fd = rd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
                struct signalfd_siginfo si;
                ssize_t n;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents & POLLIN && read(sigfd, &si, sizeof(si)) == sizeof(si))
                        sig = (int) si.ssi_signo;
                else if (p[0].revents & (POLLIN | POLLHUP)) {
                        n = read(rd, ret + len, size - len - 1);
                        if (n > 0 && len + (size_t) n + 1 < size)
                                len += (size_t) n;
                        else if (n <= 0 && (n == 0 || errno != EINTR))
                                eof = true;
                }
        }
        if (sig) {
                log_notice("Received %s while %s was building %s: stopping it", sigabbrev_np(sig), tool, t->what);
                build_stop(pid, &status);
        } else {
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                (void) kill(-pid, SIGKILL); /* what the tool left running in its group */
        }
        (void) sigprocmask(SIG_SETMASK, &old, NULL);
        if (sig)
                return asprintf(ret_error, "received %s while building %s; the build was stopped", sigabbrev_np(sig),
                                t->what),
                       -EINTR;
        ret[len] = 0;
        while (len > 0 && (ret[len - 1] == '\n' || ret[len - 1] == ' '))
                ret[--len] = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || len == 0)
                return asprintf(ret_error, "%s failed to build %s (exit status %d); see its messages above", tool,
                                t->what, WIFEXITED(status) ? WEXITSTATUS(status) : -1),
                       -EIO;
        return 0;
}

static const char *exit_code_meaning(int code) {
        static const char *const meanings[] = {
                [VIGIL_EXIT_PASS] = "test passed",
                [VIGIL_EXIT_TEST_FAILED] = "test failed",
                [VIGIL_EXIT_USAGE] = "bad input",
                [VIGIL_EXIT_TIMEOUT] = "global timeout reached",
                [VIGIL_EXIT_GAVE_UP] = "gave up: a worker kept crashing",
                [VIGIL_EXIT_INTERNAL] = "internal error",
                [VIGIL_EXIT_INTERRUPTED] = "interrupted",
        };

        return code >= 0 && (size_t) code < ELEMENTSOF(meanings) && meanings[code] ? meanings[code] : "ended";
}

static int verdict_of(int code, int signal) {
        if (signal)
                return VIGIL_EXIT_TEST_FAILED;
        switch (code) {
        case 0:
                return VIGIL_EXIT_PASS;
        case 78:
                return VIGIL_EXIT_USAGE;
        default:
                return VIGIL_EXIT_TEST_FAILED;
        }
}

static void on_child_exited(struct sup *s, const char *id, int code, int signal, bool will_restart, void *userdata) {
        struct run_state *st = userdata;
        char why[600];

        if (!streq(id, "script"))
                return;
        if (signal)
                snprintf(why, sizeof(why), "test script worker was killed by signal %d (%s)", signal,
                         strsignal(signal));
        else if (st->have_verdict)
                snprintf(why, sizeof(why), "%s", st->verdict);
        else
                snprintf(why, sizeof(why), "test script finished with exit code %d", code);
        snprintf(st->why, sizeof(st->why), "%s", why);
        st->why_code = verdict_of(code, signal);
        sup_shutdown(s, verdict_of(code, signal), why);
}

static int on_script_result(struct sup *s, const char *id, int64_t exit_code, const char *message, void *userdata) {
        struct run_state *st = userdata;

        snprintf(st->verdict, sizeof(st->verdict), "%s", message);
        st->have_verdict = true;
        return 0;
}

static void on_event(struct sup *s, const char *name, const char *child, const char *kind, const char *const *kv,
                     const char *message, void *userdata) {
        struct run_state *st = userdata;

        if (st->progress)
                run_progress_event(st->progress, name, child, kind, kv, message);
}

static int add_child(struct sup *s, const char *id, enum worker_kind kind, enum restart_type restart,
                     int64_t shutdown_ms, bool interactive, char *config) {
        _cleanup_free_ char *cfg = config;
        _cleanup_free_ char *err = NULL;
        struct child_spec c = {
                .id = (char *) id,
                .kind = kind,
                .restart = restart,
                .shutdown_ms = shutdown_ms,
                .interactive = interactive,
                .config_json = cfg,
        };
        int r;

        if (!cfg)
                return -ENOMEM;
        r = sup_tree_add_child(s, &c, &err);
        if (r < 0)
                log_error("cannot add child '%s': %s", id, err ?: strerror(-r));
        return r;
}

/* run.json again with the plan's machines (create_machine() added one); the
 * run's identity (pid, start time) stays what the outer vigil wrote. */
static void registry_update(struct run_state *st) {
        struct run_registry_entry e = {};
        int r;

        if (!st->registry.run_dir)
                return;
        r = run_registry_entry_from_plan(st->plan, st->registry.run_id, st->registry.run_dir, st->registry.out_dir,
                                         &e);
        if (r >= 0) {
                e.pid = st->registry.pid;
                e.start_time = st->registry.start_time;
                e.started = st->registry.started;
                r = run_registry_write(&e);
        }
        if (r < 0)
                log_warning_errno(r, "cannot update %s/" RUN_REGISTRY_FILE " (vigil ps): %m, ignoring",
                                  st->registry.run_dir);
        run_registry_entry_done(&e);
}

/* create_machine(start_command, name=, keep_machine_state=): one more machine
 * worker joins the live run, with the reference's state-directory semantics
 * (emptied unless kept). This and sup_tree_add_child_live() are the whole of
 * it on the supervisor's side. */
static int on_add_machine(struct sup *s, const char *name, const char *start_command, bool keep_state,
                          char **ret_error, void *userdata) {
        struct run_state *st = userdata;
        char state[600];
        size_t i;
        int r;

        /* A bare path must be a start script; a command line (the boot tests give QEMU's own) runs as is. */
        if (!strchr(start_command, ' ') && access(start_command, X_OK) < 0)
                return asprintf(ret_error, "start script %s is not executable: %s", start_command, strerror(errno)),
                       -EINVAL;
        r = run_plan_add_machine(st->plan, name, start_command, keep_state, &i, ret_error);
        if (r < 0)
                return r;
        snprintf(state, sizeof(state), "%s/vm-state-%s", st->dirs->tmp_dir, name);
        if (!keep_state && access(state, F_OK) == 0) {
                log_info("deleting machine state directory %s", state);
                log_info("if you want to keep the machine state, pass --keep-machine-state");
                rm_rf(state);
        }
        r = mkdir_p(state, 0700);
        if (r < 0) {
                run_plan_drop_last(st->plan);
                return asprintf(ret_error, "cannot create %s: %s", state, strerror(-r)), r;
        }
        _cleanup_free_ char *cfg = run_plan_machine_config(st->plan, i, st->dirs);
        struct child_spec c = {
                .id = (char *) name,
                .kind = KIND_MACHINE,
                .restart = RESTART_PERMANENT,
                .shutdown_ms = MACHINE_SHUTDOWN_MS,
                .config_json = cfg,
        };
        r = cfg ? sup_tree_add_child_live(s, &c, ret_error) : -ENOMEM;
        if (r < 0) {
                run_plan_drop_last(st->plan);
                return r;
        }
        registry_update(st);
        return r;
}

/* The reference front door runs under nix: heartbeat by default there, not at a terminal. */
static unsigned run_heartbeat(const struct run_plan *p) {
        if (p->heartbeat != RUN_HEARTBEAT_UNSET)
                return p->heartbeat;
        return p->reference_cli ? RUN_HEARTBEAT_REFERENCE_DEFAULT : 0;
}

static int run_tree(struct run_plan *p, const struct run_dirs *d, int notify_fd) {
        _cleanup_(sup_freep) struct sup *s = NULL;
        struct run_state *st = &run_state;
        char vlan_id[32];
        int r;

        r = sup_new(&(struct sup_options){.run_id = d->run_id,
                                          .outdir = d->out_dir,
                                          .global_timeout_usec = (uint64_t) p->global_timeout * USEC_PER_SEC,
                                          .heartbeat_usec = (uint64_t) run_heartbeat(p) * USEC_PER_SEC,
                                          .log_target = LOG_TARGET_AUTO,
                                          .notify_fd = notify_fd},
                    &s);
        if (r < 0)
                return log_error_errno(r, "cannot create the supervisor"), VIGIL_EXIT_INTERNAL;
        sup_set_strategy(
                s, STRATEGY_ONE_FOR_ONE,
                &(struct sup_intensity){.max_restarts = RUN_INTENSITY_RESTARTS, .max_seconds = RUN_INTENSITY_SECONDS});
        st->plan = p;
        st->dirs = d;
        sup_set_hooks(s,
                      &(struct sup_hooks){.child_exited = on_child_exited,
                                          .script_result = on_script_result,
                                          .event = on_event,
                                          .add_machine = on_add_machine},
                      st);
        /* Progress on stderr: not over an interactive REPL, nor in the reference's log format. */
        if (!p->interactive && !(p->reference_cli && !isatty(STDERR_FILENO)) &&
            run_progress_new(STDERR_FILENO, isatty(STDERR_FILENO), &st->progress) >= 0)
                (void) run_progress_attach(st->progress, sup_event_base(s));

        for (size_t i = 0; r >= 0 && i < p->n_vlans; i++) {
                snprintf(vlan_id, sizeof(vlan_id), "vlan%d", p->vlans[i]);
                r = add_child(s, vlan_id, KIND_SWITCH, RESTART_PERMANENT, SWITCH_SHUTDOWN_MS, false,
                              run_plan_switch_config(p, i, d));
        }
        for (size_t i = 0; r >= 0 && i < p->n_nodes; i++)
                r = add_child(s, p->nodes[i].name, KIND_MACHINE, RESTART_PERMANENT, MACHINE_SHUTDOWN_MS, false,
                              run_plan_machine_config(p, i, d));
        if (r >= 0)
                r = add_child(s, "script", KIND_SCRIPT, RESTART_TEMPORARY, SCRIPT_SHUTDOWN_MS, p->interactive,
                              run_plan_script_config(p, d));
        if (r >= 0)
                r = sup_run(s);
        else
                r = VIGIL_EXIT_INTERNAL;
        st->progress = run_progress_free(st->progress);
        return r;
}

static int load_inputs(struct run_plan *p, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        int r;

        if (p->spec_file) {
                r = read_file_max(p->spec_file, SPEC_FILE_MAX, &text);
                if (r < 0)
                        return asprintf(ret_error, "cannot read spec %s: %s", p->spec_file, strerror(-r)), -EINVAL;
                r = run_plan_load_spec(p, text, ret_error);
                if (r < 0)
                        return r;
        }
        if (p->config_file) {
                free(text);
                text = NULL;
                r = read_file_max(p->config_file, SPEC_FILE_MAX, &text);
                if (r < 0)
                        return asprintf(ret_error, "cannot read --config %s: %s", p->config_file, strerror(-r)),
                               -EINVAL;
                r = run_plan_load_reference_config(p, text, ret_error);
                if (r < 0)
                        return r;
        }
        r = run_plan_finalize(p, ret_error);
        if (r < 0)
                return r;
        if (access(p->script, R_OK) < 0)
                return asprintf(ret_error, "cannot read test script %s: %s", p->script, strerror(errno)), -EINVAL;
        for (size_t i = 0; i < p->n_nodes; i++) {
                const struct run_node *n = &p->nodes[i];
                if (n->start_script && access(n->start_script, X_OK) < 0)
                        return asprintf(ret_error, "machine '%s': start script %s is not executable: %s", n->name,
                                        n->start_script, strerror(errno)),
                               -EINVAL;
                if (n->kernel && (access(n->kernel, R_OK) < 0 || access(n->initrd, R_OK) < 0))
                        return asprintf(ret_error, "machine '%s': cannot read kernel %s or initrd %s", n->name,
                                        n->kernel, n->initrd),
                               -EINVAL;
                if (n->tree && !is_dir(n->tree))
                        return asprintf(ret_error, "machine '%s': tree %s is not a directory", n->name, n->tree),
                               -EINVAL;
                if (p->ssh_backdoor && !streq(n->backend, "nspawn") && access("/dev/vhost-vsock", R_OK | W_OK) < 0)
                        return asprintf(ret_error,
                                        "machine '%s': the SSH backdoor (enable_ssh_backdoor / --dump-vsocks) needs "
                                        "/dev/vhost-vsock for its vhost-vsock-pci device: %s (load the vhost_vsock "
                                        "kernel module, or turn sshBackdoor off)",
                                        n->name, strerror(errno)),
                               -ENODEV;
                if (streq(n->backend, "nspawn") && geteuid() != 0)
                        return asprintf(ret_error, "machine '%s': the nspawn backend needs root (systemd-nspawn)",
                                        n->name),
                               -EPERM;
        }
        return 0;
}

/* report.html beside the logs; a run's verdict does not depend on it. */
static void run_report(const char *out) {
        _cleanup_free_ char *err = NULL;
        int r;

        if (report_write(out, &REPORT_LIMITS_DEFAULT, &err) < 0)
                log_warning("cannot write the run's report: %s", err);
        else
                log_info("report: %s/report.html", out);
        r = report_hydra_products(out);
        if (r < 0)
                log_warning_errno(r, "cannot write $out/nix-support/hydra-build-products");
}

/* On stderr the test script's nested log is what a user reads; vigil's own
 * entries join it from LOG_NOTICE (restarts, warnings, errors) unless
 * --log-level or VIGIL_LOG_LEVEL asks for more. The journal gets everything. */
static void set_log_level(const struct run_plan *p) {
        static const char *const map[][2] = {
                {"debug", "debug"}, {"info", "info"}, {"warning", "warning"}, {"error", "err"}};
        const char *lvl = NULL;

        for (size_t i = 0; p->log_level && i < ELEMENTSOF(map); i++)
                if (streq(p->log_level, map[i][0]))
                        lvl = map[i][1];
        if (!lvl && !getenv("VIGIL_LOG_LEVEL") && !log_to_journal())
                lvl = "notice";
        if (!lvl)
                return;
        setenv("VIGIL_LOG_LEVEL", lvl, 1);
        log_open(NULL, LOG_TARGET_AUTO); /* re-reads VIGIL_LOG_LEVEL */
}

/* Under the `nixos-test-driver` front door a run ends the way the reference's
 * does: 0 pass, 1 any failure (its Python exits 1 on every uncaught error), 2
 * bad usage, and on the global timeout it SIGTERMs itself (a shell sees 143).
 * vigil's own finer table stays for `vigil run`. Returns the status to exit
 * with, or raises the signal (as PID 1 of the run's namespace it cannot: it
 * returns 128+signal, which sup-pidns.c turns into the signal). */
static int reference_exit(int code) {
        static const int statuses[] = {
                [VIGIL_EXIT_PASS] = 0,
                [VIGIL_EXIT_TEST_FAILED] = 1,
                [VIGIL_EXIT_USAGE] = 2,
                [VIGIL_EXIT_TIMEOUT] = -SIGTERM,
                [VIGIL_EXIT_GAVE_UP] = 1,
                [VIGIL_EXIT_INTERNAL] = 1,
                [VIGIL_EXIT_INTERRUPTED] = -SIGINT,
        };
        int status = code >= 0 && (size_t) code < ELEMENTSOF(statuses) ? statuses[code] : 1;

        if (status < 0) {
                fflush(NULL);
                log_stderr_drain(USEC_PER_SEC); /* the signal skips atexit() */
                (void) signal(-status, SIG_DFL);
                (void) raise(-status);
                return 128 - status; /* not reached unless the signal is blocked */
        }
        return status;
}

/* A run that ends before its tree: the message on stderr and, where the
 * output directory is known (named with -o, or already prepared), a
 * timeline.jsonl saying how it ended, as every run's output dir does. */
static int run_end_early(const struct run_plan *p, const char *out, const char *run_id, int code, const char *msg) {
        const char *dir = out ?: p->out_dir;

        fprintf(stderr, "vigil: %s\n", msg);
        if (dir && (out || p->reference_cli || mkdir_p(dir, 0755) >= 0))
                timeline_write_run_end(dir, run_id, code, msg);
        return code;
}

int run_main(int argc, char **argv) {
        struct run_plan p;
        _cleanup_free_ char *err = NULL;
        char run_id[SD_ID128_STRING_MAX], out[4096], tmp[512] = "", guest[4096] = "", cmdline_path[4200],
                                                     tree[4096] = "";
        _cleanup_free_ char *guest_cmdline = NULL;
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        int notify_fd = -1, r, ns, code;

        random_id(run_id, sizeof(run_id));
        run_plan_init(&p);
        if (streq(base, "run"))
                r = run_plan_parse_args(&p, argc, argv, &err);
        else
                r = run_plan_parse_reference(&p, argc, argv, real_env, &err);
        if (r >= 0 && p.help) {
                run_plan_usage(stdout, p.reference_cli);
                run_plan_done(&p);
                return VIGIL_EXIT_PASS;
        }
        if (r >= 0)
                r = load_inputs(&p, &err);
        if (r < 0) {
                code = run_end_early(&p, NULL, run_id, VIGIL_EXIT_USAGE, err ?: strerror(-r));
                run_plan_done(&p);
                return code;
        }
        if (!p.log_level && p.verbosity != 0)
                p.log_level = strdup(p.verbosity < 0 ? "warning" : "debug");
        set_log_level(&p);

        r = prepare_out_dir(&p, out, sizeof(out), &err);
        if (r < 0) {
                code = usage_error(err ?: strerror(-r));
                run_plan_done(&p);
                return code;
        }
        r = prepare_tmp_dir(&p, run_id, tmp, sizeof(tmp), &err);
        if (r >= 0)
                r = prepare_machine_dirs(&p, tmp, &err);
        if (r < 0) {
                code = run_end_early(&p, out, run_id, VIGIL_EXIT_USAGE, err ?: strerror(-r));
                run_plan_done(&p);
                return code;
        }
        /* Written here, by the process a user sees (outside the PID namespace). */
        r = run_registry_entry_from_plan(&p, run_id, tmp, out, &run_state.registry);
        if (r >= 0)
                r = run_registry_write(&run_state.registry);
        if (r < 0)
                log_warning_errno(r,
                                  "cannot write %s/" RUN_REGISTRY_FILE " (vigil ps will not list this run): %m, "
                                  "ignoring",
                                  tmp);

        /* From here on everything vigil starts, cache builds included, lives in
         * the PID namespace: killing vigil by any signal kills it. What the
         * containers leave on the host is swept once the namespace is gone. */
        if (geteuid() == 0)
                sup_pidns_at_outer_exit(run_sweep_nspawn_propagate);
        r = ns = sup_pidns_enter(!p.no_pidns, &notify_fd);
        if (r < 0) {
                log_error_errno(r, "cannot set up the process namespace");
                code = run_end_early(&p, out, run_id, VIGIL_EXIT_INTERNAL, "cannot set up the process namespace");
                goto finish;
        }
        if (run_plan_needs_guest(&p))
                r = build_with(&tool_mkguest, guest, sizeof(guest), &err);
        if (r >= 0 && run_plan_needs_debian_tree(&p))
                r = build_with(&tool_mkdebian, tree, sizeof(tree), &err);
        if (r < 0) {
                code = run_end_early(&p, out, run_id, r == -EINTR ? VIGIL_EXIT_INTERRUPTED : VIGIL_EXIT_USAGE,
                                     err ?: strerror(-r));
                goto finish;
        }
        if (guest[0]) {
                snprintf(cmdline_path, sizeof(cmdline_path), "%s/cmdline", guest);
                if (read_file_max(cmdline_path, SPEC_FILE_MAX, &guest_cmdline) >= 0)
                        guest_cmdline[strcspn(guest_cmdline, "\n")] = 0;
        }
        if (p.reference_cli && !p.keep_state)
                log_info("Machine state will be reset. To keep it, pass --keep-machine-state");

        code = run_tree(&p,
                        &(struct run_dirs){.run_id = run_id,
                                           .tmp_dir = tmp,
                                           .out_dir = out,
                                           .guest_dir = guest[0] ? guest : NULL,
                                           .guest_cmdline = guest_cmdline,
                                           .debian_tree = tree[0] ? tree : NULL},
                        notify_fd);
finish:
        if (!p.keep_state)
                rm_rf(tmp);
        else if (run_state.registry.run_dir) { /* the kept directory outlives the run; its entry must not */
                char registry[600];
                snprintf(registry, sizeof(registry), "%s/" RUN_REGISTRY_FILE, run_state.registry.run_dir);
                (void) unlink(registry);
        }
        if (ns > 0 && geteuid() == 0) /* no namespace: this is the host's /proc, and the tree is down */
                run_sweep_nspawn_propagate();
        run_report(out);
        /* The one line a user must see, journal or not; a failure says why. */
        if (code != VIGIL_EXIT_PASS && run_state.why[0] && run_state.why_code == code)
                log_tee(LOG_NOTICE, "%s: %s (exit %d); logs in %s", exit_code_meaning(code), run_state.why, code, out);
        else
                log_tee(LOG_NOTICE, "%s (exit %d); logs in %s", exit_code_meaning(code), code, out);
        if (p.reference_cli)
                code = reference_exit(code);
        run_registry_entry_done(&run_state.registry);
        run_plan_done(&p);
        return code;
}
