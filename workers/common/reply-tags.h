/* SPDX-License-Identifier: MIT */
/*
 * reply-tags.h: the numbers a worker gives the requests that reach it over
 * brokered channels. The handlers answer by seq alone; a request from a
 * direct client gets a tag at or above ROUTE_SEQ_DIRECT (the supervisor's
 * routed seqs stay below it), and the tag says which client and which of its
 * seqs the replies go to. Pure code: no I/O, no peers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct reply_tag {
        uint32_t tag;
        uint32_t seq; /* the client's seq */
        void *owner;  /* the client (opaque here) */
};

struct reply_tags {
        struct reply_tag *v;
        size_t n, cap;
        uint32_t next; /* next tag to try */
};

/* True for a seq that is a tag (the reply goes to a direct client). */
bool reply_tag_is_direct(uint32_t seq);

/* A new tag for (@owner, @seq). -EBUSY if every tag is in use, -ENOMEM. */
int reply_tags_add(struct reply_tags *t, void *owner, uint32_t seq, uint32_t *ret_tag);
/* The entry for @tag, or NULL (unknown: its client left, or it was answered). */
const struct reply_tag *reply_tags_find(const struct reply_tags *t, uint32_t tag);
/* Forget @tag (its final reply went out). */
void reply_tags_drop(struct reply_tags *t, uint32_t tag);
/* Forget every tag of @owner (the client left); returns how many. */
size_t reply_tags_drop_owner(struct reply_tags *t, const void *owner);
void reply_tags_done(struct reply_tags *t);
