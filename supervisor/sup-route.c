/* SPDX-License-Identifier: MIT */
/*
 * sup-route.c owns hub-and-spoke routing: a request from one worker to the
 * child named in its field 0 is re-sent with the supervisor's own seq and
 * remembered, so the replies find their way back under the origin's seq, and
 * so that when the target dies the supervisor knows exactly what was in
 * flight: idempotent requests are replayed once it is READY again, others fail
 * with an error naming the restart, and everything fails if it is gone for
 * good. Requests to a target that is not READY yet wait (bounded).
 *
 * It also owns flow control between workers: a worker whose frame was just
 * routed into a congested send queue is not read until that queue drains, so
 * a guest printing 64 MiB slows to the pace of the script worker reading it
 * instead of growing a queue (the kernel's socket buffers carry the pressure
 * back to the producer). Nothing is dropped and nobody is killed for being
 * slow; the queue cap only stops a peer that does not read at all.
 *
 * And it brokers direct channels: on CHANNEL_OPEN it hands a fresh socketpair
 * to the opener and the named child, which then talk without this hop. It
 * keeps nothing of them: a restart on either side closes that end, the other
 * side sees it and opens again (workers/common/worker-direct.c and the script
 * worker's channel own what happens to requests in flight).
 */
#include <stdarg.h>
#include <sys/socket.h>

#include "sup-records.h"
#include "sup-route.h"

static struct route *route_free(struct route *r) {
        if (r) {
                free(r->buf);
                free(r);
        }
        return NULL;
}

static void route_unlink(struct sup *s, struct route *r) {
        for (struct route **pp = &s->routes; *pp; pp = &(*pp)->next)
                if (*pp == r) {
                        *pp = r->next;
                        s->n_routes--;
                        return;
                }
}

static bool origin_alive(const struct route *r) {
        return r->origin->peer && !peer_is_lost(r->origin->peer) && r->origin->generation == r->origin_gen;
}

static void route_fail(struct sup *s, struct route *r, int code, const char *fmt, ...) _printf_(4, 5);
static void route_fail(struct sup *s, struct route *r, int code, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (origin_alive(r))
                (void) peer_send(r->origin->peer, MSG_ERROR, r->origin_seq,
                                 &(struct msg_error){.code = code, .message = msg}, NULL, 0);
        log_info("Request %s from '%s' to '%s' failed: %s", msg_info_get(r->type)->name, r->origin->spec.id,
                 r->target->spec.id, msg);
        route_unlink(s, r);
        route_free(r);
}

/* @source's frame just went into @dest's queue: hold @source while that is congested. */
static void route_hold(struct child *source, struct child *dest) {
        if (source->held_by || !peer_congested(dest->peer))
                return;
        source->held_by = dest;
        (void) peer_pause_read(source->peer, true);
}

void route_release(struct child *c) {
        struct sup *s = c->sup;

        for (size_t i = 0; i < s->n_children; i++) {
                struct child *x = &s->children[i];
                if (x->held_by != c)
                        continue;
                x->held_by = NULL;
                (void) peer_pause_read(x->peer, false);
        }
}

static bool target_ready(const struct child *t) {
        return t->state == CHILD_RUNNING && t->peer && !peer_is_lost(t->peer);
}

static int route_send(struct route *r) {
        int k = peer_send_raw(r->target->peer, r->buf, r->len, NULL, 0);
        if (k >= 0)
                r->sent = true;
        return k;
}

int route_request(struct child *origin, const struct frame *f, size_t n_fds, char *why, size_t why_size) {
        struct sup *s = origin->sup;
        const struct msg_info *info = f->info;
        const char *name;
        struct child *t;
        struct route *r;
        size_t queued = 0;
        int k;

        /* Field 0 of every routed body is the target's name (msg-table.c). */
        if (info->n_fields == 0 || info->fields[0].type != FIELD_STR)
                return snprintf(why, why_size, "%s is routed but has no target field", info->name), -EPROTO;
        name = *(char *const *) ((const uint8_t *) f->body + info->fields[0].offset);
        if (n_fds > 0)
                return snprintf(why, why_size, "%s to '%s' carries fds, which routed requests cannot", info->name,
                                name),
                       -EPROTO;
        if (f->seq == 0)
                return snprintf(why, why_size, "%s to '%s' has seq 0, so no reply could find it", info->name, name),
                       -EPROTO;

        t = sup_child_by_id(s, name);
        if (!t)
                return peer_send_error(origin->peer, f->seq, -ENOENT, "%s: no child named '%s'", info->name, name), 0;
        if (!(info->target & KIND_BIT(t->spec.kind)))
                return peer_send_error(origin->peer, f->seq, -EPROTOTYPE, "%s: '%s' is a %s worker", info->name, name,
                                       worker_kind_to_string(t->spec.kind)),
                       0;
        if (t->state == CHILD_REMOVED || s->tearing_down || (!child_state_has_process(t->state) && !t->start_pending))
                return peer_send_error(origin->peer, f->seq, -ESRCH, "%s: %s '%s' is not running", info->name,
                                       worker_kind_to_string(t->spec.kind), name),
                       0;
        if (s->n_routes >= ROUTES_MAX)
                return peer_send_error(origin->peer, f->seq, -EBUSY, "%s: too many requests in flight", info->name), 0;
        for (struct route *x = s->routes; x; x = x->next)
                queued += x->target == t && !x->sent;
        if (queued >= ROUTES_QUEUED_PER_TARGET)
                return peer_send_error(origin->peer, f->seq, -EBUSY,
                                       "%s: '%s' is not ready and has %zu requests waiting", info->name, name, queued),
                       0;

        r = calloc(1, sizeof(*r));
        if (!r)
                return peer_send_error(origin->peer, f->seq, -ENOMEM, "%s: out of memory", info->name), 0;
        t->seq = t->seq + 1 >= ROUTE_SEQ_DIRECT ? 1 : t->seq + 1;
        *r = (struct route){
                .origin = origin,
                .origin_gen = origin->generation,
                .origin_seq = f->seq,
                .target = t,
                .target_seq = t->seq,
                .type = f->type,
                .idempotent = info->idempotent,
        };
        k = frame_encode(f->type, r->target_seq, f->body, &r->buf, &r->len);
        if (k < 0) {
                route_free(r);
                return peer_send_error(origin->peer, f->seq, k, "%s: cannot re-encode", info->name), 0;
        }
        /* Append, so waiting requests go out in arrival order. */
        struct route **pp = &s->routes;
        while (*pp)
                pp = &(*pp)->next;
        *pp = r;
        s->n_routes++;

        if (target_ready(t)) {
                k = route_send(r);
                if (k < 0)
                        log_debug_errno(k, "Forwarding %s to '%s' failed; it will be handled as a restart", info->name,
                                        name);
                else
                        route_hold(origin, t);
        }
        return 0;
}

int route_reply(struct child *target, const struct frame *f, int *fds, size_t n_fds) {
        struct sup *s = target->sup;
        struct route *r;

        for (r = s->routes; r; r = r->next)
                if (r->target == target && r->sent && r->target_seq == f->seq)
                        break;
        if (!r) {
                /* Late reply to a request whose origin went away: nothing to do. */
                log_debug("Dropping %s from '%s' with unknown seq %u", f->info->name, target->spec.id, f->seq);
                return 0;
        }
        if (origin_alive(r) && peer_send(r->origin->peer, f->type, r->origin_seq, f->body, fds, n_fds) >= 0)
                route_hold(target, r->origin);
        if (!f->info->final)
                r->answered_in_part = true;
        if (f->info->final) {
                route_unlink(s, r);
                route_free(r);
        }
        return 0;
}

int route_open_channel(struct child *origin, const struct frame *f) {
        const struct msg_channel_open *m = f->body;
        const struct msg_info *info = f->info;
        struct child *t = sup_child_by_id(origin->sup, m->target);
        _cleanup_close_pair_ int sv[2] = EBADF_PAIR;
        int r;

        if (!t)
                return peer_send_error(origin->peer, f->seq, -ENOENT, "CHANNEL_OPEN: no child named '%s'", m->target),
                       0;
        if (!(info->target & KIND_BIT(t->spec.kind)) || t == origin)
                return peer_send_error(origin->peer, f->seq, -EPROTOTYPE, "CHANNEL_OPEN: '%s' is a %s worker",
                                       m->target, worker_kind_to_string(t->spec.kind)),
                       0;
        if (!target_ready(t) || t->sup->tearing_down)
                return peer_send_error(origin->peer, f->seq, -EAGAIN, "CHANNEL_OPEN: %s '%s' is not ready",
                                       worker_kind_to_string(t->spec.kind), m->target),
                       0;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return peer_send_error(origin->peer, f->seq, -errno, "CHANNEL_OPEN: socketpair: %m"), 0;

        /* The target's end first: nothing can arrive on it before it has it. */
        r = peer_send(t->peer, MSG_CHANNEL, 0,
                      &(struct msg_channel){.peer = origin->spec.id,
                                            .kind = (char *) worker_kind_to_string(origin->spec.kind)},
                      &sv[1], 1);
        if (r < 0)
                return peer_send_error(origin->peer, f->seq, -EAGAIN, "CHANNEL_OPEN: %s '%s' is not ready",
                                       worker_kind_to_string(t->spec.kind), m->target),
                       0;
        (void) peer_send(
                origin->peer, MSG_CHANNEL, f->seq,
                &(struct msg_channel){.peer = t->spec.id, .kind = (char *) worker_kind_to_string(t->spec.kind)},
                &sv[0], 1);
        log_debug("Brokered a direct channel '%s' -> '%s'", origin->spec.id, t->spec.id);
        return 0;
}

void route_target_ready(struct child *t) {
        struct sup *s = t->sup;
        size_t replayed = 0;

        for (struct route *r = s->routes; r; r = r->next)
                if (r->target == t && !r->sent && route_send(r) >= 0)
                        replayed++;
        if (replayed)
                log_info("Delivered %zu waiting request(s) to '%s'", replayed, t->spec.id);
}

void route_target_down(struct child *t, bool will_restart) {
        struct sup *s = t->sup;
        const char *kind = worker_kind_to_string(t->spec.kind);
        struct route *r, *next;

        route_release(t);
        for (r = s->routes; r; r = next) {
                next = r->next;
                if (r->target != t)
                        continue;
                if (!will_restart)
                        route_fail(s, r, -ESRCH, "%s '%s' is gone and will not be restarted; request not repeated",
                                   kind, t->spec.id);
                else if (!r->sent)
                        continue; /* still waiting for READY */
                else if (r->idempotent && !r->answered_in_part)
                        r->sent = false; /* replayed when it is READY again */
                else if (r->idempotent)
                        /* The origin holds part of the reply: a replay would repeat it. */
                        route_fail(s, r, -ECONNRESET,
                                   "%s '%s' worker restarted while sending its reply (part of it was delivered); "
                                   "request not repeated",
                                   kind, t->spec.id);
                else
                        route_fail(s, r, -ECONNRESET, "%s '%s' worker restarted while executing; request not repeated",
                                   kind, t->spec.id);
        }
}

void route_origin_down(struct child *origin) {
        struct sup *s = origin->sup;
        struct route *r, *next;

        /* Nobody is left to read the answers. A target still working on one
         * finishes and its reply is dropped as unknown. */
        origin->held_by = NULL;
        route_release(origin);
        for (r = s->routes; r; r = next) {
                next = r->next;
                if (r->origin == origin) {
                        route_unlink(s, r);
                        route_free(r);
                }
        }
}

void route_free_all(struct sup *s) {
        while (s->routes) {
                struct route *r = s->routes;
                s->routes = r->next;
                route_free(r);
        }
        s->n_routes = 0;
}
