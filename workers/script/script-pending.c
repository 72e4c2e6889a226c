/* SPDX-License-Identifier: MIT */
/*
 * script-pending.c owns the bookkeeping of in-flight requests of the script
 * worker: which seq waits for what, the chunk bytes received so far (bounded,
 * so a guest printing without end cannot exhaust memory), and the final
 * frame. Pure code; the caller serialises access.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "script-pending.h"

void script_pending_table_init(struct script_pending_table *t, size_t data_max) {
        *t = (struct script_pending_table){.data_max = data_max};
}

static void pending_free(struct script_pending *p) {
        if (!p)
                return;
        frame_done(&p->final);
        free(p->data);
        free(p->replay);
        free(p->failed_message);
        safe_close(p->fd);
        free(p);
}

void script_pending_table_done(struct script_pending_table *t) {
        while (t->head) {
                struct script_pending *p = t->head;
                t->head = p->next;
                pending_free(p);
        }
        t->n = 0;
}

static struct script_pending *pending_find(struct script_pending_table *t, uint32_t seq) {
        for (struct script_pending *p = t->head; p; p = p->next)
                if (p->seq == seq)
                        return p;
        return NULL;
}

int script_pending_add(struct script_pending_table *t, uint32_t seq, struct script_pending **ret) {
        struct script_pending *p;

        if (seq == 0 || pending_find(t, seq))
                return -EEXIST;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->seq = seq;
        p->fd = -EBADF;
        p->next = t->head;
        t->head = p;
        t->n++;
        *ret = p;
        return 0;
}

void script_pending_remove(struct script_pending_table *t, struct script_pending *p) {
        for (struct script_pending **i = &t->head; *i; i = &(*i)->next)
                if (*i == p) {
                        *i = p->next;
                        t->n--;
                        pending_free(p);
                        return;
                }
}

void script_pending_abandon(struct script_pending_table *t, struct script_pending *p) {
        if (p->done)
                script_pending_remove(t, p);
        else
                p->abandoned = true;
}

static int pending_append(struct script_pending_table *t, struct script_pending *p, const uint8_t *data, size_t len) {
        size_t want, room;

        if (p->overflow || len == 0)
                return 0;
        room = t->data_max - MIN(p->len, t->data_max);
        if (len > room) {
                /* Keep what fits: the waiter gets an error naming the cap. */
                p->overflow = true;
                len = room;
        }
        want = p->len + len;
        if (want > p->cap) {
                size_t cap = MAX(p->cap * 2, (size_t) 4096);
                uint8_t *d;

                while (cap < want)
                        cap *= 2;
                cap = MIN(cap, MAX(t->data_max, want));
                d = realloc(p->data, cap);
                if (!d)
                        return -ENOMEM;
                p->data = d;
                p->cap = cap;
        }
        if (len > 0)
                memcpy(p->data + p->len, data, len);
        p->len += len;
        return 0;
}

int script_pending_deliver(struct script_pending_table *t, struct frame *f, enum script_deliver *ret) {
        return script_pending_deliver_fd(t, f, NULL, ret);
}

int script_pending_deliver_fd(struct script_pending_table *t, struct frame *f, int *fd, enum script_deliver *ret) {
        struct script_pending *p;
        int r;

        if (!f->info || (f->info->route != ROUTE_REPLY && !f->info->final))
                return -EBADMSG;
        p = pending_find(t, f->seq);
        if (!p || p->done)
                return -ENOENT;

        if (!f->info->final) {
                if (f->type == MSG_CHUNK) {
                        const struct msg_chunk *c = f->body;

                        r = pending_append(t, p, c->data.data, c->data.len);
                        if (r < 0)
                                return r;
                }
                frame_done(f);
                *f = (struct frame){};
                *ret = p->abandoned ? SCRIPT_DELIVER_DROPPED : SCRIPT_DELIVER_PART;
                return 0;
        }

        p->final = *f;
        *f = (struct frame){};
        p->done = true;
        if (fd) {
                p->fd = *fd;
                *fd = -EBADF;
        }
        if (p->abandoned) {
                script_pending_remove(t, p);
                *ret = SCRIPT_DELIVER_DROPPED;
                return 0;
        }
        *ret = SCRIPT_DELIVER_FINAL;
        return 0;
}

void script_pending_fail_all(struct script_pending_table *t, int error) {
        struct script_pending **i = &t->head;

        while (*i) {
                struct script_pending *p = *i;

                if (p->done) {
                        i = &p->next;
                        continue;
                }
                if (p->abandoned) {
                        *i = p->next;
                        t->n--;
                        pending_free(p);
                        continue;
                }
                p->done = true;
                p->error = error;
                i = &p->next;
        }
}

void script_pending_restart(struct script_pending *p) {
        p->len = 0;
        p->overflow = false;
}

void script_pending_fail(struct script_pending_table *t, struct script_pending *p, int code, const char *message) {
        if (p->done)
                return;
        if (p->abandoned) {
                script_pending_remove(t, p);
                return;
        }
        p->done = true;
        p->failed = code < 0 ? code : -EIO;
        p->failed_message = strdup(message);
}
