/* SPDX-License-Identifier: MIT */
/*
 * qemu-hmp.c: HMP reply accumulation (see qemu-hmp.h). Pure.
 */
#include "macro.h"
#include "qemu-hmp.h"

void qemu_hmp_reply_init(struct qemu_hmp_reply *h, size_t max) {
        *h = (struct qemu_hmp_reply){.max = max > 0 ? max : QEMU_HMP_REPLY_MAX};
}

void qemu_hmp_reply_done(struct qemu_hmp_reply *h) {
        free(h->text);
        h->text = NULL;
        h->len = 0;
}

int qemu_hmp_reply_append(struct qemu_hmp_reply *h, const void *buf, size_t len) {
        char *p;

        if (len > h->max - h->len)
                return -E2BIG;
        p = realloc(h->text, h->len + len + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p + h->len, buf, len);
        h->text = p;
        h->len += len;
        h->text[h->len] = 0;
        return 0;
}

bool qemu_hmp_reply_complete(const struct qemu_hmp_reply *h) {
        size_t n = strlen(QEMU_HMP_PROMPT);
        return h->len >= n && memcmp(h->text + h->len - n, QEMU_HMP_PROMPT, n) == 0;
}

char *qemu_hmp_reply_take(struct qemu_hmp_reply *h, size_t *ret_len) {
        char *t = h->text ? h->text : strdup("");

        if (!t)
                return NULL;
        *ret_len = h->len;
        h->text = NULL;
        h->len = 0;
        return t;
}
