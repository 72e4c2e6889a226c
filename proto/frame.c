/* SPDX-License-Identifier: MIT */
/*
 * frame.c owns the envelope: [version, type, seq, body] as exactly one
 * msgpack value filling exactly one datagram. Decoding rejects trailing
 * bytes, wrong element types, other protocol versions, types missing from
 * the table and bodies the codec refuses, and says which of those it was.
 */
#include <msgpack.h>

#include "codec.h"
#include "frame.h"
#include "macro.h"

static const char *const frame_error_names[_FRAME_ERR_MAX] = {
        [FRAME_OK] = "ok",
        [FRAME_ERR_TOO_BIG] = "frame too big",
        [FRAME_ERR_MSGPACK] = "not a single msgpack value",
        [FRAME_ERR_ENVELOPE] = "malformed envelope",
        [FRAME_ERR_VERSION] = "protocol version mismatch",
        [FRAME_ERR_UNKNOWN_TYPE] = "unknown message type",
        [FRAME_ERR_BODY] = "malformed body",
};

const char *frame_error_to_string(enum frame_error e) {
        if (e < 0 || e >= _FRAME_ERR_MAX)
                return "unknown error";
        return frame_error_names[e];
}

int frame_encode(int type, uint32_t seq, const void *body, uint8_t **ret_buf, size_t *ret_len) {
        msgpack_sbuffer sbuf;
        msgpack_packer pk;
        int r;

        if (!msg_info_get(type))
                return -EINVAL;
        msgpack_sbuffer_init(&sbuf);
        msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
        if (msgpack_pack_array(&pk, 4) < 0 || msgpack_pack_uint32(&pk, PROTO_VERSION) < 0 ||
            msgpack_pack_uint32(&pk, (uint32_t) type) < 0 || msgpack_pack_uint32(&pk, seq) < 0) {
                msgpack_sbuffer_destroy(&sbuf);
                return -ENOMEM;
        }
        r = codec_pack_body(&pk, type, body);
        if (r < 0) {
                msgpack_sbuffer_destroy(&sbuf);
                return r;
        }
        if (sbuf.size > FRAME_MAX) {
                msgpack_sbuffer_destroy(&sbuf);
                return -E2BIG;
        }
        *ret_len = sbuf.size;
        *ret_buf = (uint8_t *) msgpack_sbuffer_release(&sbuf);
        return 0;
}

static int fail(enum frame_error why, enum frame_error *ret_why, int r) {
        if (ret_why)
                *ret_why = why;
        return r;
}

static bool is_u32(const msgpack_object *o) {
        return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= UINT32_MAX;
}

int frame_decode(const uint8_t *buf, size_t len, struct frame *ret, enum frame_error *ret_why) {
        msgpack_unpacked u;
        const msgpack_object *env;
        const struct msg_info *info;
        size_t off = 0;
        void *body;
        int type, r;

        if (len > FRAME_MAX)
                return fail(FRAME_ERR_TOO_BIG, ret_why, -EMSGSIZE);

        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, (const char *) buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
                msgpack_unpacked_destroy(&u);
                return fail(FRAME_ERR_MSGPACK, ret_why, -EBADMSG);
        }
        env = &u.data;
        if (env->type != MSGPACK_OBJECT_ARRAY || env->via.array.size != 4 || !is_u32(&env->via.array.ptr[0]) ||
            !is_u32(&env->via.array.ptr[1]) || !is_u32(&env->via.array.ptr[2])) {
                msgpack_unpacked_destroy(&u);
                return fail(FRAME_ERR_ENVELOPE, ret_why, -EBADMSG);
        }
        if (env->via.array.ptr[0].via.u64 != PROTO_VERSION) {
                msgpack_unpacked_destroy(&u);
                return fail(FRAME_ERR_VERSION, ret_why, -EPROTO);
        }
        type = (int) MIN(env->via.array.ptr[1].via.u64, (uint64_t) INT32_MAX);
        info = msg_info_get(type);
        if (!info) {
                msgpack_unpacked_destroy(&u);
                return fail(FRAME_ERR_UNKNOWN_TYPE, ret_why, -EBADMSG);
        }
        body = calloc(1, info->size);
        if (!body) {
                msgpack_unpacked_destroy(&u);
                return -ENOMEM;
        }
        r = codec_unpack_body(&env->via.array.ptr[3], type, body);
        if (r < 0) {
                free(body);
                msgpack_unpacked_destroy(&u);
                return fail(FRAME_ERR_BODY, ret_why, r);
        }
        *ret = (struct frame){
                .type = type,
                .seq = (uint32_t) env->via.array.ptr[2].via.u64,
                .info = info,
                .body = body,
        };
        msgpack_unpacked_destroy(&u);
        if (ret_why)
                *ret_why = FRAME_OK;
        return 0;
}

void frame_done(struct frame *f) {
        if (!f)
                return;
        if (f->body)
                codec_free_body(f->type, f->body);
        free(f->body);
        *f = (struct frame){};
}
