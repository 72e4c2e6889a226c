/* SPDX-License-Identifier: MIT */
/*
 * frame.h: the envelope [version, type, seq, body] as one msgpack value in one
 * datagram. frame_encode() builds the bytes; frame_decode() checks the
 * envelope, the version, the type table and the body codec. Pure code.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct frame {
        int type;
        uint32_t seq;
        const struct msg_info *info;
        void *body; /* decoded body, info->size bytes, owned by the frame */
};

enum frame_error {
        FRAME_OK = 0,
        FRAME_ERR_TOO_BIG,
        FRAME_ERR_MSGPACK,  /* not a single complete msgpack value */
        FRAME_ERR_ENVELOPE, /* not a 4-array of the right types */
        FRAME_ERR_VERSION,
        FRAME_ERR_UNKNOWN_TYPE,
        FRAME_ERR_BODY, /* body does not match the type's fields */
        _FRAME_ERR_MAX,
};

const char *frame_error_to_string(enum frame_error e);

/* Encode into a fresh malloc'd buffer. -E2BIG if larger than FRAME_MAX. */
int frame_encode(int type, uint32_t seq, const void *body, uint8_t **ret_buf, size_t *ret_len);

/* Decode @len bytes. Returns 0 and fills @ret, or a negative errno and sets
 * *ret_why (if non-NULL) to the reason. */
int frame_decode(const uint8_t *buf, size_t len, struct frame *ret, enum frame_error *ret_why);

/* Release the decoded body. Safe on a zeroed frame. */
void frame_done(struct frame *f);
