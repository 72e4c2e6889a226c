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

static uint64_t be(const uint8_t *p, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v = (v << 8) | p[i];
        return v;
}

/* Walk the msgpack bytes without allocating and refuse any container that
 * claims more elements than there are bytes left. msgpack-c sizes its zone
 * from the claimed counts before reading them, so without this a 10-byte
 * frame could make the supervisor allocate gigabytes. */
static int msgpack_precheck(const uint8_t *buf, size_t len) {
        uint64_t pending = 1;
        size_t off = 0;

        while (pending > 0) {
                uint64_t count = 0, skip = 0;
                size_t hdr = 1;
                uint8_t b;

                if (off >= len)
                        return -EBADMSG;
                b = buf[off];
                pending--;
                if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
                        ;
                else if (b >= 0x80 && b <= 0x8f)
                        count = 2u * (b & 0x0f);
                else if (b >= 0x90 && b <= 0x9f)
                        count = b & 0x0f;
                else if (b >= 0xa0 && b <= 0xbf)
                        skip = b & 0x1f;
                else {
                        static const struct {
                                uint8_t lenbytes; /* size of the length field */
                                uint8_t fixed;    /* fixed payload bytes */
                                uint8_t kind;     /* 0 scalar, 1 bytes, 2 array, 3 map, 4 ext */
                        } t[] = {
                                [0xc4 - 0xc4] = {1, 0, 1}, [0xc5 - 0xc4] = {2, 0, 1}, [0xc6 - 0xc4] = {4, 0, 1},
                                [0xc7 - 0xc4] = {1, 1, 4}, [0xc8 - 0xc4] = {2, 1, 4}, [0xc9 - 0xc4] = {4, 1, 4},
                                [0xca - 0xc4] = {0, 4, 0}, [0xcb - 0xc4] = {0, 8, 0}, [0xcc - 0xc4] = {0, 1, 0},
                                [0xcd - 0xc4] = {0, 2, 0}, [0xce - 0xc4] = {0, 4, 0}, [0xcf - 0xc4] = {0, 8, 0},
                                [0xd0 - 0xc4] = {0, 1, 0}, [0xd1 - 0xc4] = {0, 2, 0}, [0xd2 - 0xc4] = {0, 4, 0},
                                [0xd3 - 0xc4] = {0, 8, 0}, [0xd4 - 0xc4] = {0, 2, 0}, [0xd5 - 0xc4] = {0, 3, 0},
                                [0xd6 - 0xc4] = {0, 5, 0}, [0xd7 - 0xc4] = {0, 9, 0}, [0xd8 - 0xc4] = {0, 17, 0},
                                [0xd9 - 0xc4] = {1, 0, 1}, [0xda - 0xc4] = {2, 0, 1}, [0xdb - 0xc4] = {4, 0, 1},
                                [0xdc - 0xc4] = {2, 0, 2}, [0xdd - 0xc4] = {4, 0, 2}, [0xde - 0xc4] = {2, 0, 3},
                                [0xdf - 0xc4] = {4, 0, 3},
                        };
                        uint64_t n;

                        if (b < 0xc4 || b > 0xdf)
                                return -EBADMSG; /* 0xc1: never used */
                        hdr += t[b - 0xc4].lenbytes;
                        if (len - off < hdr)
                                return -EBADMSG;
                        n = be(buf + off + 1, t[b - 0xc4].lenbytes);
                        switch (t[b - 0xc4].kind) {
                        case 1:
                                skip = n;
                                break;
                        case 2:
                                count = n;
                                break;
                        case 3:
                                count = 2 * n;
                                break;
                        case 4:
                                skip = n + t[b - 0xc4].fixed;
                                break;
                        default:
                                skip = t[b - 0xc4].fixed;
                        }
                }
                if (len - off < hdr || len - off - hdr < skip)
                        return -EBADMSG;
                off += hdr + skip;
                if (count > len - off)
                        return -EBADMSG;
                pending += count;
                if (pending > len - off + 1)
                        return -EBADMSG;
        }
        return off == len ? 0 : -EBADMSG;
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

        if (msgpack_precheck(buf, len) < 0)
                return fail(FRAME_ERR_MSGPACK, ret_why, -EBADMSG);
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
