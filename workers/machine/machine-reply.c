/* SPDX-License-Identifier: MIT */
/*
 * machine-reply.c owns what vigil-machine sends back to whoever asked (the
 * supervisor, or a client over a brokered channel: worker_reply() knows
 * which) and the flow control on those channels. Small replies go out at once; a bulk
 * reply (a command's output, a console read) is kept here and fed to the
 * channel in CHUNK_MAX pieces only while it is not congested, continuing
 * when it drains. While bulk waits, the guest shell is not read
 * (machine-shell.c asks machine_reply_busy()), so a guest printing faster
 * than the script worker reads is slowed down at its source instead of
 * growing a queue.
 */
#include <stdarg.h>

#include "log.h"
#include "machine.h"
#include "peer.h"

struct bulk_reply {
        uint32_t seq;
        int type; /* MSG_M_EXEC_RESULT or MSG_M_TEXT_RESULT, after the chunks */
        union {
                struct msg_m_exec_result exec;
                struct msg_m_text_result text;
        } result;
        uint8_t *data;
        size_t len, off;
        TAILQ_ENTRY(bulk_reply) link;
};

static TAILQ_HEAD(, bulk_reply) bulk = TAILQ_HEAD_INITIALIZER(bulk);

static struct bulk_reply *bulk_reply_free(struct bulk_reply *b) {
        if (b) {
                free(b->data);
                free(b);
        }
        return NULL;
}

/* Send what the channels take now. < 0: the supervisor channel is lost (the
 * worker ends). A reply whose direct client left is dropped whole. */
static int bulk_pump(struct machine *m) {
        struct bulk_reply *b;
        struct peer *p;
        int r;

        while ((b = TAILQ_FIRST(&bulk))) {
                p = worker_reply_peer(m->w, b->seq);
                if (p && peer_congested(p))
                        break;
                if (p && b->off < b->len) {
                        size_t n = MIN((size_t) CHUNK_MAX, b->len - b->off);
                        r = worker_reply(m->w, MSG_CHUNK, b->seq,
                                         &(struct msg_chunk){.data = {.data = b->data + b->off, .len = n}});
                        if (r < 0)
                                return r;
                        b->off += n;
                        continue;
                }
                r = worker_reply(m->w, b->type, b->seq, &b->result);
                TAILQ_REMOVE(&bulk, b, link);
                bulk_reply_free(b);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Queue @len bytes of @data (copied) as chunks, then @type with @result. */
static int bulk_queue(struct machine *m, uint32_t seq, int type, const void *result, size_t result_size,
                      const uint8_t *data, size_t len) {
        struct bulk_reply *b = calloc(1, sizeof *b);

        if (!b)
                return -ENOMEM;
        b->seq = seq;
        b->type = type;
        memcpy(&b->result, result, result_size);
        b->len = len;
        if (len > 0 && !(b->data = malloc(len))) {
                free(b);
                return -ENOMEM;
        }
        if (len > 0)
                memcpy(b->data, data, len);
        TAILQ_INSERT_TAIL(&bulk, b, link);
        return bulk_pump(m);
}

int machine_reply_error(struct machine *m, uint32_t seq, int code, const char *fmt, ...) {
        char msg[MSG_STR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return worker_reply_error(m->w, seq, code, "%s", msg);
}

int machine_reply_ok(struct machine *m, uint32_t seq) {
        return worker_reply(m->w, MSG_OK, seq, &(struct msg_empty){});
}

int machine_reply_text(struct machine *m, uint32_t seq, const char *text, size_t len, uint64_t next_line) {
        struct msg_m_text_result res = {.length = len, .next_line = next_line};
        return bulk_queue(m, seq, MSG_M_TEXT_RESULT, &res, sizeof res, (const uint8_t *) text, len);
}

int machine_reply_exec(struct machine *m, uint32_t seq, int64_t status, const uint8_t *data, size_t len) {
        struct msg_m_exec_result res = {.status = status, .length = len};
        return bulk_queue(m, seq, MSG_M_EXEC_RESULT, &res, sizeof res, data, len);
}

bool machine_reply_busy(struct machine *m) {
        return !TAILQ_EMPTY(&bulk) || worker_replies_congested(m->w);
}

void machine_reply_drained(struct machine *m) {
        int r = bulk_pump(m);

        if (r < 0)
                log_debug_errno(r, "Sending a reply failed");
}

void machine_reply_free_all(void) {
        for (struct bulk_reply *b; (b = TAILQ_FIRST(&bulk));) {
                TAILQ_REMOVE(&bulk, b, link);
                bulk_reply_free(b);
        }
}
