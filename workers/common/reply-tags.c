/* SPDX-License-Identifier: MIT */
/*
 * reply-tags.c owns the tag table of direct requests: allocation in
 * [ROUTE_SEQ_DIRECT, UINT32_MAX] skipping tags in use, lookup, and dropping
 * by tag or by client. In-flight requests are few (a script's threads), so
 * the table is a plain array searched linearly.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>

#include "msg.h"
#include "reply-tags.h"

#define REPLY_TAGS_MAX 4096u

bool reply_tag_is_direct(uint32_t seq) {
        return seq >= ROUTE_SEQ_DIRECT;
}

static ssize_t tags_index(const struct reply_tags *t, uint32_t tag) {
        for (size_t i = 0; i < t->n; i++)
                if (t->v[i].tag == tag)
                        return (ssize_t) i;
        return -1;
}

static uint32_t tags_step(uint32_t tag) {
        return tag == UINT32_MAX || tag < ROUTE_SEQ_DIRECT ? ROUTE_SEQ_DIRECT : tag + 1;
}

int reply_tags_add(struct reply_tags *t, void *owner, uint32_t seq, uint32_t *ret_tag) {
        uint32_t tag = reply_tag_is_direct(t->next) ? t->next : ROUTE_SEQ_DIRECT;

        if (t->n >= REPLY_TAGS_MAX)
                return -EBUSY;
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                struct reply_tag *v = realloc(t->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                t->v = v;
                t->cap = cap;
        }
        while (tags_index(t, tag) >= 0)
                tag = tags_step(tag);
        t->v[t->n++] = (struct reply_tag){.tag = tag, .seq = seq, .owner = owner};
        t->next = tags_step(tag);
        *ret_tag = tag;
        return 0;
}

const struct reply_tag *reply_tags_find(const struct reply_tags *t, uint32_t tag) {
        ssize_t i = tags_index(t, tag);

        return i < 0 ? NULL : &t->v[i];
}

void reply_tags_drop(struct reply_tags *t, uint32_t tag) {
        ssize_t i = tags_index(t, tag);

        if (i >= 0)
                t->v[i] = t->v[--t->n];
}

size_t reply_tags_drop_owner(struct reply_tags *t, const void *owner) {
        size_t dropped = 0;

        for (size_t i = 0; i < t->n;)
                if (t->v[i].owner == owner) {
                        t->v[i] = t->v[--t->n];
                        dropped++;
                } else
                        i++;
        return dropped;
}

void reply_tags_done(struct reply_tags *t) {
        free(t->v);
        *t = (struct reply_tags){};
}
