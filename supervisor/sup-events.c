/* SPDX-License-Identifier: MIT */
/*
 * sup-events.c owns what the supervisor tells the world about a run: every
 * lifecycle event goes to the journal (or stderr) with the child's fields, to
 * timeline.jsonl and to the front end's progress hook from one call, and the
 * sd_notify lines (STATUS=, READY=1) summarise the tree for systemd.
 */
#include <stdarg.h>
#include <systemd/sd-daemon.h>

#include "sup-events.h"
#include "sup-records.h"
#include "sup-stderr.h"
#include "sup-timeline.h"

void events_emit_at(const struct log_location *at, struct sup *s, struct child *c, int prio, enum log_event ev,
                    const char *name, const char *const *kv, const char *fmt, ...) {
        char msg[1024];
        const char *extra[24];
        char fields[12][160];
        size_t n = 0, nf = 0;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        sup_stderr_pump(s->stderr_relay); /* what a child wrote before the event comes before it */
        if (c) {
                snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_CHILD=%s", c->spec.id);
                extra[n++] = fields[nf++];
                snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_KIND=%s", worker_kind_to_string(c->spec.kind));
                extra[n++] = fields[nf++];
                if (c->spec.kind == KIND_MACHINE) {
                        snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_MACHINE=%s", c->spec.id);
                        extra[n++] = fields[nf++];
                }
                snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_RESTARTS=%" PRIu64, c->restarts);
                extra[n++] = fields[nf++];
        }
        for (size_t i = 0; kv && kv[i] && kv[i + 1] && nf < ELEMENTSOF(fields); i += 2) {
                size_t k = (size_t) snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_");
                for (const char *p = kv[i]; *p && k < sizeof(fields[nf]) - 2; p++)
                        fields[nf][k++] = (char) (*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
                snprintf(fields[nf] + k, sizeof(fields[nf]) - k, "=%s", kv[i + 1]);
                extra[n++] = fields[nf++];
        }
        extra[n] = NULL;

        log_internal_at(at, prio, 0, ev, extra, "%s", msg);
        timeline_write(s, name, c, kv, msg);
        if (s->hooks.event && name)
                s->hooks.event(s, name, c ? c->spec.id : NULL, c ? worker_kind_to_string(c->spec.kind) : NULL, kv, msg,
                               s->hooks_userdata);
}

void events_notify(struct sup *s, const char *line) {
        if (s->notify_fd >= 0) {
                char buf[512];
                int n = snprintf(buf, sizeof(buf), "%s\n", line);
                (void) !write(s->notify_fd, buf, (size_t) MIN(n, (int) sizeof(buf) - 1));
        } else
                (void) sd_notify(0, line);
}

void events_notify_status(struct sup *s) {
        size_t up = 0, live = 0;
        char line[320];

        for (size_t i = 0; i < s->n_children; i++) {
                up += s->children[i].state == CHILD_RUNNING;
                live += s->children[i].state != CHILD_REMOVED;
        }
        snprintf(line, sizeof(line), "STATUS=%zu/%zu children running%s%s%s", up, live,
                 s->tearing_down ? ", shutting down" : "", s->subtest[0] ? "; subtest: " : "", s->subtest);
        events_notify(s, line);

        /* READY=1 once every child has been started and none is still starting. */
        if (!s->initial_ready_sent && !s->tearing_down) {
                for (size_t i = 0; i < s->n_children; i++) {
                        const struct child *c = &s->children[i];
                        if (c->state == CHILD_REMOVED)
                                continue;
                        if (!c->started_once || c->start_pending || c->state == CHILD_STARTING ||
                            c->state == CHILD_CONFIGURING)
                                return;
                }
                s->initial_ready_sent = true;
                events_notify(s, "READY=1");
        }
}
