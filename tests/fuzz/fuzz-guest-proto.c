/* SPDX-License-Identifier: MIT */
/*
 * fuzz-guest-proto.c: the guest shell protocol parser (workers/machine/
 * guest-proto.c) under a fuzzer. Guest bytes are untrusted: whatever a guest
 * prints, in whatever chunks, the parser must consume it with progress, keep
 * a decoded output within output_max, name every protocol error, and never
 * crash. The first input byte picks the phase and a chunk size, the rest is
 * the guest's stream; after each event the parser is driven on as the
 * machine worker drives it (ready -> output -> status -> ...). Built for
 * libFuzzer by tools/run-fuzz; built by meson as a corpus replay test.
 */
#include <stdint.h>
#include <stdio.h>

#include "guest-proto.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_OUTPUT_MAX 4096u

static void expect_phase(struct guest_proto *gp, unsigned which) {
        switch (which % 5) {
        case 0:
                guest_proto_expect_ready(gp);
                break;
        case 1:
                guest_proto_expect_output(gp);
                break;
        case 2:
                guest_proto_expect_output_fast(gp);
                break;
        case 3:
                guest_proto_expect_status(gp);
                break;
        default:
                if (guest_proto_expect_nonce(gp, "vigil-sync-0123456789abcdef") < 0)
                        __builtin_trap();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct guest_proto gp;
        size_t off = 1, chunk;
        unsigned events = 0;

        if (size < 1)
                return 0;
        chunk = 1 + (data[0] >> 3); /* 1..32 bytes per read */
        guest_proto_init(&gp, FUZZ_OUTPUT_MAX);
        expect_phase(&gp, data[0] & 7);
        while (off < size) {
                size_t len = MIN(chunk, size - off), used = 0;
                enum guest_event ev = guest_proto_feed(&gp, data + off, len, &used);

                if (used > len || (used == 0 && ev == GUEST_EVENT_NONE))
                        __builtin_trap(); /* no progress, or more than it was given */
                off += used;
                switch (ev) {
                case GUEST_EVENT_NONE:
                        break;
                case GUEST_EVENT_READY:
                case GUEST_EVENT_SYNCED:
                        expect_phase(&gp, 1 + events++);
                        break;
                case GUEST_EVENT_OUTPUT: {
                        size_t n = 0;
                        uint8_t *out = guest_proto_take_output(&gp, &n);
                        if (!out || n > FUZZ_OUTPUT_MAX || out[n] != 0)
                                __builtin_trap();
                        free(out);
                        guest_proto_expect_status(&gp);
                        break;
                }
                case GUEST_EVENT_STATUS:
                        (void) guest_proto_status(&gp);
                        expect_phase(&gp, events++);
                        break;
                case GUEST_EVENT_ERROR: {
                        const char *e = guest_proto_error(&gp);
                        if (!e || !e[0])
                                __builtin_trap(); /* an error names itself */
                        expect_phase(&gp, events++);
                        break;
                }
                case _GUEST_EVENT_MAX:
                        __builtin_trap();
                }
        }
        guest_proto_done(&gp);
        return 0;
}

#ifndef VIGIL_LIBFUZZER
#include "fuzz-replay.h"

int main(int argc, char **argv) {
        static const struct fuzz_seed seeds[] = {
                FUZZ_SEED("ready", "\x00noise\r\nSpawning backdoor root shell...\n"),
                FUZZ_SEED("output", "\x01"
                                    "aGVsbG8K\n0\n"),
                FUZZ_SEED("output-fast-raw", "\x02!hello\n\x00\n3\n"),
                FUZZ_SEED("output-fast-b64", "\x02"
                                             "aGVsbG8K\n0\n"),
                FUZZ_SEED("status", "\x03"
                                    "127\n"),
                FUZZ_SEED("nonce", "\x04junk\nvigil-sync-0123456789abcdef\n"),
                FUZZ_SEED("ready-split", "\x08Spawning backdoor root shell...\naGk=\n1\n"),
                FUZZ_SEED("bad-base64", "\x01"
                                        "a$$$\n"),
                FUZZ_SEED("bad-status", "\x03x1\n"),
        };

        return fuzz_replay_main(argc, argv, seeds, ELEMENTSOF(seeds));
}
#endif
