/* SPDX-License-Identifier: MIT */
/*
 * guest-proto.h owns the reference backdoor protocol spoken with the guest's
 * root shell on hvc0 (nixos-test-driver §2.3), as pure code: building the
 * command lines exactly like the reference, and a state machine that eats the
 * shell's byte stream in whatever chunks it arrives and reports the ready
 * line, a decoded command output, an exit status or a resync nonce. Guest
 * bytes are untrusted: every buffer is bounded, anything that is not what the
 * current phase expects is a protocol error with a clear message, never a
 * crash and never unbounded growth.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defaults.h"

#define GUEST_READY_LINE         "Spawning backdoor root shell..."
#define GUEST_STATUS_COMMAND     "echo ${PIPESTATUS[0]}\n"
#define GUEST_OUTPUT_MAX_DEFAULT DEFAULT_OUTPUT_MAX

enum guest_phase {
        GUEST_PHASE_IDLE,   /* nothing expected: bytes are stray and dropped */
        GUEST_PHASE_READY,  /* waiting for GUEST_READY_LINE */
        GUEST_PHASE_OUTPUT, /* reading the base64 line of a command's stdout */
        GUEST_PHASE_STATUS, /* reading the ${PIPESTATUS[0]} line */
        GUEST_PHASE_NONCE,  /* discarding everything up to the nonce line */
        _GUEST_PHASE_MAX,
};

enum guest_event {
        GUEST_EVENT_NONE,   /* all bytes consumed, need more */
        GUEST_EVENT_READY,  /* the ready line was seen */
        GUEST_EVENT_OUTPUT, /* the output line is complete: guest_proto_take_output() */
        GUEST_EVENT_STATUS, /* the status line was parsed: guest_proto_status() */
        GUEST_EVENT_SYNCED, /* the nonce line was seen */
        GUEST_EVENT_ERROR,  /* protocol error: guest_proto_error(); phase is IDLE again */
        _GUEST_EVENT_MAX,
};

#define GUEST_NONCE_MAX 64u

/* Where the parser is in the fast framing's output. */
enum guest_raw {
        GUEST_RAW_BYTES,  /* raw bytes, up to a NUL */
        GUEST_RAW_ESCAPE, /* after a NUL: '.' a NUL byte, '+' base64 follows, '\n' the end */
        GUEST_RAW_BASE64, /* base64 of the rest, up to a NUL */
        GUEST_RAW_END,    /* after the base64 part's NUL: '\n' */
};

struct guest_proto {
        enum guest_phase phase;
        size_t output_max;

        /* READY / NONCE: streaming substring match (KMP), so a marker split
         * across any number of reads is still found with O(1) memory. */
        char marker[GUEST_NONCE_MAX + 2];
        size_t marker_len;
        size_t marker_fail[GUEST_NONCE_MAX + 2];
        size_t matched;
        /* NONCE after a command that may have ended the shell: the ready line
         * of a fresh shell counts too (a second matcher over the same bytes). */
        bool alt_active;
        size_t alt_fail[GUEST_NONCE_MAX + 2];
        size_t alt_matched;

        /* OUTPUT: incremental base64 decoding into out[] (<= output_max). */
        uint8_t *out;
        size_t out_len;
        size_t out_alloc;
        uint8_t quad[4];
        unsigned n_quad;
        unsigned n_pad;
        bool fast;          /* the fast framing's output (see guest_build_fast_command()) */
        enum guest_raw raw; /* where in it */

        /* STATUS */
        char line[24];
        size_t line_len;
        int status;

        uint64_t stray_bytes; /* bytes dropped in IDLE, for a diagnostic */
        char error[160];
};

void guest_proto_init(struct guest_proto *gp, size_t output_max);
void guest_proto_done(struct guest_proto *gp);

/* Enter a phase. guest_proto_expect_nonce() copies @nonce (the text the guest
 * will print on its own line, <= GUEST_NONCE_MAX bytes). */
void guest_proto_expect_ready(struct guest_proto *gp);
void guest_proto_expect_output(struct guest_proto *gp);
/* The fast framing's output (guest_build_fast_command()). */
void guest_proto_expect_output_fast(struct guest_proto *gp);
void guest_proto_expect_status(struct guest_proto *gp);
int guest_proto_expect_nonce(struct guest_proto *gp, const char *nonce);
/* As guest_proto_expect_nonce(), but GUEST_READY_LINE ends the wait as well
 * (GUEST_EVENT_READY): after execute(check_output=False) the shell either
 * lives on and answers the nonce, or died and a fresh one announces itself. */
int guest_proto_expect_nonce_or_ready(struct guest_proto *gp, const char *nonce);
void guest_proto_reset(struct guest_proto *gp);

/* Eat bytes until an event or the end of @buf. *ret_consumed says how many
 * bytes were used; call again with the rest after handling the event. As in
 * the reference, bytes after the ready line in the same chunk are consumed
 * and dropped (nothing may follow the ready line). */
enum guest_event guest_proto_feed(struct guest_proto *gp, const uint8_t *buf, size_t len, size_t *ret_consumed);

/* After GUEST_EVENT_OUTPUT: the decoded bytes; ownership moves to the caller
 * (a NUL is appended, not counted in *ret_len). */
uint8_t *guest_proto_take_output(struct guest_proto *gp, size_t *ret_len);
int guest_proto_status(const struct guest_proto *gp);
const char *guest_proto_error(const struct guest_proto *gp);

/* Python shlex.quote(). */
int guest_shell_quote(const char *s, char **ret);

/* The execute line of the reference driver (with its trailing newline):
 *   timeout N bash -c '<set -euo pipefail; CMD>' | (base64 -w 0; echo)
 * timeout_s < 0 omits the `timeout N ` prefix. */
int guest_build_command(const char *command, int64_t timeout_s, char **ret);

/* The fast framing (docs/machine.md, "Fast path"), fork-only: the command
 * runs as the first element of a pipeline in the backdoor shell (a subshell,
 * no exec of bash), its stdout a pipe that the backdoor shell itself reads
 * to EOF with the `read` builtin (`lastpipe`, job control off), as base64
 * does in the reference, so a background job holding stdout blocks alike;
 * the status is ${PIPESTATUS[0]}. The reading is a shell function,
 * __vigil_r, which a line with @define true defines first with __vigil_e
 * (once per shell: bash reads its script a byte at a time, so a short line
 * is a fast one):
 *   { BASH_ARGV0=bash; ...; set -euo pipefail; eval 'CMD'; } | __vigil_r [N]; __vigil_e "${PIPESTATUS[@]}"
 * A line with @define false on a shell without the functions (a fresh one)
 * answers NUL '?' (a protocol error naming it). The reply is the output,
 * then the status line in the same round trip:
 *   output := (byte other than NUL | NUL '.')* (NUL '\n' | NUL '+' base64 NUL '\n')
 * i.e. raw bytes (the tty is raw, 8-bit clean) with each NUL byte sent as
 * NUL '.'; after GUEST_FAST_RAW_MAX bytes the rest goes through `base64 -w 0`
 * (the builtins read a pipe byte by byte). timeout_s > 0 adds a builtin-only
 * watchdog standing in for coreutils `timeout N` (status 124); 0 is no
 * timeout, as for `timeout 0`. Nothing is left in the guest but the
 * functions: no file, no variable, no fd. */
#define GUEST_FAST_CHUNK   4096
#define GUEST_FAST_CHUNKS  1
#define GUEST_FAST_RAW_MAX (GUEST_FAST_CHUNK * GUEST_FAST_CHUNKS)
int guest_build_fast_call(const char *command, int64_t timeout_s, bool define, char **ret);
/* guest_build_fast_call() with @define true: works on any shell. */
int guest_build_fast_command(const char *command, int64_t timeout_s, char **ret);

/* A resync command whose output line (@nonce) does not occur in its own text,
 * so a tty echo of the command can never be mistaken for the answer. */
int guest_build_nonce_command(const char *nonce, char **ret);
