/* SPDX-License-Identifier: MIT */
/*
 * qemu-hmp.h owns the framing of QEMU's human monitor (HMP) as the reference
 * driver uses it (§2.4): a reply, including the greeting, is everything up to
 * and including a buffer that ends with the "(qemu) " prompt. The text is kept
 * raw (readline echo and escape codes included) because scripts search it.
 * Pure code; the buffer is bounded.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define QEMU_HMP_PROMPT    "(qemu) "
#define QEMU_HMP_REPLY_MAX (4u * 1024u * 1024u)

struct qemu_hmp_reply {
        char *text;
        size_t len;
        size_t max;
};

void qemu_hmp_reply_init(struct qemu_hmp_reply *h, size_t max);
void qemu_hmp_reply_done(struct qemu_hmp_reply *h);
/* Append bytes; -E2BIG beyond max. */
int qemu_hmp_reply_append(struct qemu_hmp_reply *h, const void *buf, size_t len);
/* True when the accumulated text ends with the prompt. */
bool qemu_hmp_reply_complete(const struct qemu_hmp_reply *h);
/* Hand the NUL-terminated text to the caller and start afresh. */
char *qemu_hmp_reply_take(struct qemu_hmp_reply *h, size_t *ret_len);
