/* SPDX-License-Identifier: MIT */
/*
 * switch-main.c owns one VLAN until vigil's own L2 switch lands: it asks the
 * supervisor to run Debian's `vde_switch --hub` on the VLAN's socket
 * directory (exactly how the reference driver provides VLANs, so NixOS start
 * scripts' `-netdev vde,sock=$QEMU_VDE_SOCKET_<n>` work), waits for its
 * control socket, and reports READY. The switch process and its stdin pipe
 * belong to the supervisor's stores, so a restarted worker re-attaches to the
 * running switch and no VM notices.
 */
#include <fcntl.h>
#include "json-util.h"
#include <sys/stat.h>

#include "exit-status.h"
#include "log.h"
#include "macro.h"
#include "worker.h"

#define SWITCH_START_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define SWITCH_POLL_USEC (20 * USEC_PER_MSEC)

struct vlan {
        struct worker *w;
        int nr;
        char socket_dir[256];
        uint32_t spawn_seq;
        int64_t pid;
        unsigned long long deadline;
        struct event *poll;
};

static bool ctl_exists(const struct vlan *v) {
        char path[300];

        snprintf(path, sizeof(path), "%s/ctl", v->socket_dir);
        return access(path, F_OK) == 0;
}

static void poll_cb(evutil_socket_t fd, short what, void *arg) {
        struct vlan *v = arg;
        struct timeval tv = { 0, SWITCH_POLL_USEC };

        if (ctl_exists(v)) {
                log_info("vlan %d: switch running (pid %lld; ctl %s)", v->nr, (long long) v->pid, v->socket_dir);
                (void) worker_send_ready(v->w);
                return;
        }
        if (now_usec() > v->deadline) {
                log_error("vlan %d: vde_switch did not create %s/ctl within %llu s", v->nr, v->socket_dir,
                          SWITCH_START_TIMEOUT_USEC / USEC_PER_SEC);
                worker_exit(v->w, WORKER_EXIT_CRASH);
                return;
        }
        (void) evtimer_add(v->poll, &tv);
}

static int start_switch(struct vlan *v) {
        char *argv[] = { "vde_switch", "--sock", v->socket_dir, "--dirmode", "0700", "--hub", NULL };
        char *env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL };
        _cleanup_close_ int rd = -EBADF, wr = -EBADF;
        int p[2], r;

        /* vde_switch reads commands from stdin and quits at EOF: keep a pipe open
         * for it in the fd store, as the reference driver keeps its stdin. */
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        rd = p[0];
        wr = p[1];
        r = worker_store_fd(v->w, "switch-stdin", wr);
        if (r < 0)
                return r;
        v->spawn_seq = peer_next_seq(worker_peer(v->w));
        return peer_send(worker_peer(v->w), MSG_SPAWN, v->spawn_seq,
                         &(struct msg_spawn){ .name = "vde_switch", .argv = argv, .env = env, .cwd = "", .stdio = 1 },
                         &rd, 1);
}

static int switch_configure(struct worker *w, const struct msg_config *cfg, void *userdata) {
        struct vlan *v = userdata;
        _cleanup_json_ json_object *j = json_tokener_parse(cfg->json);
        json_object *o;
        size_t n;
        const struct worker_restored_proc *procs = worker_procs(w, &n);

        v->w = w;
        if (!j || !json_object_object_get_ex(j, "vlan", &o) || !json_object_is_type(o, json_type_int))
                return log_error_errno(-EINVAL, "switch config lacks an integer \"vlan\"");
        v->nr = json_object_get_int(o);
        if (!json_object_object_get_ex(j, "socket_dir", &o) || !json_object_is_type(o, json_type_string))
                return log_error_errno(-EINVAL, "switch config lacks a string \"socket_dir\"");
        snprintf(v->socket_dir, sizeof(v->socket_dir), "%s", json_object_get_string(o));
        log_set_field("VIGIL_VLAN", json_object_get_string(json_object_object_get(j, "vlan")));

        v->poll = evtimer_new(worker_event_base(w), poll_cb, v);
        if (!v->poll)
                return -ENOMEM;
        v->deadline = now_usec() + SWITCH_START_TIMEOUT_USEC;
        for (size_t i = 0; i < n; i++)
                if (streq(procs[i].name, "vde_switch")) {
                        v->pid = procs[i].pid;
                        log_info("vlan %d: re-attached to the running switch (pid %lld)", v->nr, (long long) v->pid);
                        poll_cb(-1, 0, v);
                        return 0;
                }
        (void) mkdir(v->socket_dir, 0700);
        return start_switch(v);
}

static int switch_on_frame(struct worker *w, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct vlan *v = userdata;

        switch (f->type) {
        case MSG_SPAWNED:
                v->pid = ((const struct msg_spawned *) f->body)->pid;
                poll_cb(-1, 0, v);
                return 0;
        case MSG_ERROR:
                log_error("vlan %d: could not start vde_switch: %s", v->nr, ((const struct msg_error *) f->body)->message);
                worker_exit(w, WORKER_EXIT_PERMANENT);
                return 0;
        case MSG_PROC_EXIT: {
                const struct msg_proc_exit *e = f->body;
                log_error("vlan %d: vde_switch (pid %lld) exited (code %lld, signal %lld)", v->nr, (long long) e->pid,
                          (long long) e->code, (long long) e->signal);
                worker_exit(w, WORKER_EXIT_CRASH);
                return 0;
        }
        default:
                return -EBADMSG;
        }
}

static void switch_on_exit(struct worker *w, void *userdata) {
        struct vlan *v = userdata;

        if (v->poll)
                event_free(v->poll);
}

int main(int argc, char **argv) {
        static struct vlan v;
        static const struct worker_ops ops = {
                .kind = KIND_SWITCH,
                .configure = switch_configure,
                .on_frame = switch_on_frame,
                .on_exit = switch_on_exit,
        };

        return worker_main(argc, argv, &ops, &v);
}
