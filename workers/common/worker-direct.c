/* SPDX-License-Identifier: MIT */
/*
 * worker-direct.c owns the brokered channels a worker serves: one peer per
 * client end the supervisor handed over, the check that what arrives there
 * is a request this worker may be sent (by that client's kind, naming this
 * worker, with a seq), its tag, and the clean-up when a client goes: its
 * tags are dropped, so later replies to them are dropped too, as the
 * supervisor drops replies to an origin that left. A client that breaks the
 * protocol loses its channel; the worker and its other channels go on.
 */
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "reply-tags.h"
#include "worker-direct.h"

/* A client per run is the script worker; restarts add one each before the
 * old one's end is seen closed. */
#define DIRECT_CLIENTS_MAX 16

struct direct_client {
        struct worker_direct *d;
        struct peer *peer;
        char name[NAME_MAX_LEN + 1];
        enum worker_kind kind;
};

struct worker_direct {
        struct event_base *base;
        enum worker_kind kind;
        char name[NAME_MAX_LEN + 1];
        const struct worker_direct_ops *ops;
        void *userdata;
        struct direct_client *clients[DIRECT_CLIENTS_MAX];
        size_t n_clients;
        struct reply_tags tags;
};

static void client_free(struct direct_client *c) {
        struct worker_direct *d = c->d;

        reply_tags_drop_owner(&d->tags, c);
        for (size_t i = 0; i < d->n_clients; i++)
                if (d->clients[i] == c) {
                        d->clients[i] = d->clients[--d->n_clients];
                        break;
                }
        peer_free(c->peer);
        free(c);
}

/* What a client may send here: a routed request for this kind, from its kind,
 * addressed to this worker, with a seq its replies can carry. */
static const char *client_refuses(const struct direct_client *c, const struct frame *f, size_t n_fds) {
        const struct msg_info *info = f->info;

        if (info->route != ROUTE_REQUEST || !(info->target & KIND_BIT(c->d->kind)) ||
            !(info->senders & KIND_BIT(c->kind)))
                return "not a request this worker serves";
        if (n_fds > 0)
                return "a request carrying fds";
        if (f->seq == 0 || reply_tag_is_direct(f->seq))
                return "a request whose seq no reply could carry";
        if (info->n_fields == 0 || info->fields[0].type != FIELD_STR ||
            !streq(*(char *const *) ((const uint8_t *) f->body + info->fields[0].offset), c->d->name))
                return "a request for another worker";
        return NULL;
}

static int client_on_frame(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct direct_client *c = userdata;
        struct worker_direct *d = c->d;
        const char *why = client_refuses(c, f, n_fds);
        struct frame tagged = *f;
        int r;

        if (why) {
                log_error("Direct channel from '%s': %s (%s), closing it", c->name, f->info->name, why);
                return -EPROTO;
        }
        r = reply_tags_add(&d->tags, c, f->seq, &tagged.seq);
        if (r < 0)
                return peer_send_error(p, f->seq, r, "%s: too many requests in flight", f->info->name), 0;
        r = d->ops->on_request(&tagged, d->userdata);
        if (r < 0) {
                reply_tags_drop(&d->tags, tagged.seq);
                return r;
        }
        return 0;
}

static void client_on_lost(struct peer *p, enum peer_lost_reason reason, const char *detail, void *userdata) {
        struct direct_client *c = userdata;

        if (reason == PEER_LOST_EOF)
                log_debug("Direct channel from '%s' closed", c->name);
        else
                log_warning("Direct channel from '%s' lost: %s", c->name, detail);
        client_free(c);
}

static void client_on_drained(struct peer *p, void *userdata) {
        struct direct_client *c = userdata;

        if (c->d->ops->on_drained)
                c->d->ops->on_drained(c->d->userdata);
}

static const struct peer_ops client_peer_ops = {
        .on_frame = client_on_frame,
        .on_lost = client_on_lost,
        .on_drained = client_on_drained,
};

int worker_direct_new(struct event_base *base, enum worker_kind kind, const char *name,
                      const struct worker_direct_ops *ops, void *userdata, struct worker_direct **ret) {
        struct worker_direct *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->base = base;
        d->kind = kind;
        snprintf(d->name, sizeof(d->name), "%s", name);
        d->ops = ops;
        d->userdata = userdata;
        *ret = d;
        return 0;
}

struct worker_direct *worker_direct_free(struct worker_direct *d) {
        if (!d)
                return NULL;
        while (d->n_clients > 0)
                client_free(d->clients[0]);
        reply_tags_done(&d->tags);
        free(d);
        return NULL;
}

int worker_direct_adopt(struct worker_direct *d, const struct msg_channel *m, int fd) {
        enum worker_kind kind = worker_kind_from_string(m->kind);
        struct direct_client *c;
        int r;

        if (kind < 0)
                return log_error("Direct channel from '%s' of unknown kind '%s', closing it", m->peer, m->kind),
                       -EINVAL;
        if (d->n_clients >= DIRECT_CLIENTS_MAX)
                return log_error("Direct channel from '%s': %u channels are open already, closing it", m->peer,
                                 DIRECT_CLIENTS_MAX),
                       -EBUSY;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->d = d;
        c->kind = kind;
        snprintf(c->name, sizeof(c->name), "%s", m->peer);
        r = peer_new(d->base, fd, DIR_TO_WORKER, &client_peer_ops, c, &c->peer);
        if (r < 0) {
                free(c);
                return r;
        }
        d->clients[d->n_clients++] = c;
        /* Before anything else on it: the opener uses the channel only after
         * this, so a request sent on an end nobody adopted (its worker died
         * before reading the supervisor's frame) is known never to have run. */
        (void) peer_send(c->peer, MSG_OK, 0, &(struct msg_empty){}, NULL, 0);
        log_debug("Direct channel from %s '%s' open", m->kind, m->peer);
        return 0;
}

int worker_direct_resolve(struct worker_direct *d, uint32_t tag, struct peer **ret_peer, uint32_t *ret_seq) {
        const struct reply_tag *t = reply_tags_find(&d->tags, tag);

        if (!t)
                return -ENOENT;
        *ret_peer = ((struct direct_client *) t->owner)->peer;
        *ret_seq = t->seq;
        return 0;
}

void worker_direct_forget(struct worker_direct *d, uint32_t tag) {
        reply_tags_drop(&d->tags, tag);
}

bool worker_direct_congested(const struct worker_direct *d) {
        for (size_t i = 0; i < d->n_clients; i++)
                if (peer_congested(d->clients[i]->peer))
                        return true;
        return false;
}
