/* SPDX-License-Identifier: MIT */
/*
 * guest-proto.c: the backdoor shell protocol as a byte-driven state machine
 * (see guest-proto.h). Pure: no I/O, no logging.
 */
#include <inttypes.h>
#include <stdarg.h>

#include "guest-proto.h"
#include "macro.h"

/* clang-format off */
static const char *const phase_names[_GUEST_PHASE_MAX] = {
        [GUEST_PHASE_IDLE] = "idle",
        [GUEST_PHASE_READY] = "waiting for the ready line",
        [GUEST_PHASE_OUTPUT] = "reading command output",
        [GUEST_PHASE_STATUS] = "reading the exit status",
        [GUEST_PHASE_NONCE] = "resynchronising",
};
/* clang-format on */

void guest_proto_init(struct guest_proto *gp, size_t output_max) {
        *gp = (struct guest_proto){
                .phase = GUEST_PHASE_IDLE,
                .output_max = output_max > 0 ? output_max : GUEST_OUTPUT_MAX_DEFAULT,
        };
}

void guest_proto_done(struct guest_proto *gp) {
        free(gp->out);
        gp->out = NULL;
        gp->out_len = gp->out_alloc = 0;
}

/* KMP failure function of @m: longest proper prefix that is also a suffix. */
static void kmp_table(const char *m, size_t len, size_t *fail) {
        fail[0] = 0;
        for (size_t i = 1, k = 0; i < len; i++) {
                while (k > 0 && m[i] != m[k])
                        k = fail[k - 1];
                if (m[i] == m[k])
                        k++;
                fail[i] = k;
        }
}

/* One byte through a matcher; true when it completes @m. */
static bool kmp_step(const char *m, size_t len, const size_t *fail, size_t *matched, char c) {
        while (*matched > 0 && c != m[*matched])
                *matched = fail[*matched - 1];
        if (c == m[*matched])
                (*matched)++;
        if (*matched < len)
                return false;
        *matched = 0;
        return true;
}

static void set_marker(struct guest_proto *gp, const char *m, size_t len) {
        memcpy(gp->marker, m, len);
        gp->marker_len = len;
        gp->matched = 0;
        kmp_table(m, len, gp->marker_fail);
}

void guest_proto_reset(struct guest_proto *gp) {
        guest_proto_done(gp);
        gp->phase = GUEST_PHASE_IDLE;
        gp->matched = 0;
        gp->alt_active = false;
        gp->alt_matched = 0;
        gp->n_quad = gp->n_pad = 0;
        gp->fast = false;
        gp->raw = GUEST_RAW_BYTES;
        gp->line_len = 0;
}

void guest_proto_expect_ready(struct guest_proto *gp) {
        guest_proto_reset(gp);
        set_marker(gp, GUEST_READY_LINE, strlen(GUEST_READY_LINE));
        gp->phase = GUEST_PHASE_READY;
}

void guest_proto_expect_output(struct guest_proto *gp) {
        guest_proto_reset(gp);
        gp->phase = GUEST_PHASE_OUTPUT;
}

void guest_proto_expect_output_fast(struct guest_proto *gp) {
        guest_proto_expect_output(gp);
        gp->fast = true;
}

void guest_proto_expect_status(struct guest_proto *gp) {
        guest_proto_reset(gp);
        gp->phase = GUEST_PHASE_STATUS;
}

static bool nonce_valid(const char *nonce) {
        size_t n = strlen(nonce);
        if (n < 2 || n > GUEST_NONCE_MAX)
                return false;
        for (const char *c = nonce; *c; c++)
                if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') || *c == '-' ||
                      *c == '_'))
                        return false;
        return true;
}

int guest_proto_expect_nonce(struct guest_proto *gp, const char *nonce) {
        char m[GUEST_NONCE_MAX + 2];

        if (!nonce_valid(nonce))
                return -EINVAL;
        guest_proto_reset(gp);
        size_t n = strlen(nonce);
        memcpy(m, nonce, n);
        m[n] = '\n';
        set_marker(gp, m, n + 1);
        gp->phase = GUEST_PHASE_NONCE;
        return 0;
}

int guest_proto_expect_nonce_or_ready(struct guest_proto *gp, const char *nonce) {
        int r = guest_proto_expect_nonce(gp, nonce);

        if (r < 0)
                return r;
        kmp_table(GUEST_READY_LINE, strlen(GUEST_READY_LINE), gp->alt_fail);
        gp->alt_active = true;
        return 0;
}

_printf_(2, 3) static enum guest_event fail(struct guest_proto *gp, const char *fmt, ...) {
        va_list ap;
        int n;

        n = snprintf(gp->error, sizeof gp->error, "guest shell protocol error while %s: ", phase_names[gp->phase]);
        if (n < 0 || (size_t) n >= sizeof gp->error)
                n = 0;
        va_start(ap, fmt);
        (void) vsnprintf(gp->error + n, sizeof gp->error - (size_t) n, fmt, ap);
        va_end(ap);
        guest_proto_reset(gp);
        return GUEST_EVENT_ERROR;
}

/* Streaming KMP; returns the index just past the marker's end, or len. */
static size_t marker_scan(struct guest_proto *gp, const uint8_t *buf, size_t len, bool *ret_found) {
        for (size_t i = 0; i < len; i++) {
                char c = (char) buf[i];
                while (gp->matched > 0 && c != gp->marker[gp->matched])
                        gp->matched = gp->marker_fail[gp->matched - 1];
                if (c == gp->marker[gp->matched])
                        gp->matched++;
                if (gp->matched == gp->marker_len) {
                        gp->matched = 0;
                        *ret_found = true;
                        return i + 1;
                }
        }
        *ret_found = false;
        return len;
}

static int b64_value(uint8_t c) {
        if ('A' <= c && c <= 'Z')
                return c - 'A';
        if ('a' <= c && c <= 'z')
                return c - 'a' + 26;
        if ('0' <= c && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

static int out_reserve(struct guest_proto *gp, size_t extra) {
        if (gp->out_len + extra + 1 <= gp->out_alloc)
                return 0;
        size_t want = MAX(gp->out_alloc * 2, (size_t) 4096);
        while (want < gp->out_len + extra + 1)
                want *= 2;
        want = MIN(want, gp->output_max + 4);
        if (want < gp->out_len + extra + 1)
                return -E2BIG;
        uint8_t *p = realloc(gp->out, want);
        if (!p)
                return -ENOMEM;
        gp->out = p;
        gp->out_alloc = want;
        return 0;
}

static enum guest_event flush_quad(struct guest_proto *gp) {
        /* n_pad '=' at the end: 4 chars carry 3 - n_pad bytes. */
        size_t n = 3 - gp->n_pad;
        uint32_t v = 0;

        if (gp->out_len + n > gp->output_max)
                return fail(gp, "command output exceeds the limit of %zu bytes", gp->output_max);
        if (out_reserve(gp, n) < 0)
                return fail(gp, "out of memory for %zu bytes of command output", gp->out_len + n);
        for (unsigned i = 0; i < 4; i++)
                v = (v << 6) | gp->quad[i];
        uint8_t bytes[3] = {(uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v};
        memcpy(gp->out + gp->out_len, bytes, n);
        gp->out_len += n;
        gp->n_quad = 0;
        return GUEST_EVENT_NONE;
}

/* One base64 character (not '\n', not NUL) into the current group. */
static enum guest_event b64_char(struct guest_proto *gp, uint8_t c) {
        if (c == '=') {
                /* Padding only in the last two positions of the final group. */
                if (gp->n_quad < 2)
                        return fail(gp, "misplaced base64 padding");
                gp->quad[gp->n_quad++] = 0;
                gp->n_pad++;
        } else {
                int v = b64_value(c);
                if (v < 0)
                        return fail(gp, "unexpected byte 0x%02x in base64 output after %zu bytes", c, gp->out_len);
                if (gp->n_pad > 0)
                        return fail(gp, "base64 data after padding");
                gp->quad[gp->n_quad++] = (uint8_t) v;
        }
        if (gp->n_quad == 4) {
                /* Data after a padded group is refused above; a padded group
                 * stays "final" until the end of the line. */
                unsigned pad = gp->n_pad;
                if (flush_quad(gp) == GUEST_EVENT_ERROR)
                        return GUEST_EVENT_ERROR;
                gp->n_pad = pad;
        }
        return GUEST_EVENT_NONE;
}

static enum guest_event output_done(struct guest_proto *gp) {
        if (gp->n_quad != 0)
                return fail(gp, "base64 output ends in the middle of a group (%u stray characters)", gp->n_quad);
        if (out_reserve(gp, 0) < 0)
                return fail(gp, "out of memory");
        gp->out[gp->out_len] = 0;
        gp->phase = GUEST_PHASE_IDLE;
        return GUEST_EVENT_OUTPUT;
}

static enum guest_event out_append(struct guest_proto *gp, const uint8_t *p, size_t n) {
        if (gp->out_len + n > gp->output_max)
                return fail(gp, "command output exceeds the limit of %zu bytes", gp->output_max);
        if (out_reserve(gp, n) < 0)
                return fail(gp, "out of memory for %zu bytes of command output", gp->out_len + n);
        memcpy(gp->out + gp->out_len, p, n);
        gp->out_len += n;
        return GUEST_EVENT_NONE;
}

/* The fast framing's output (guest-proto.h): raw bytes with NUL escapes, then
 * either the end or the base64 of the rest. */
static enum guest_event feed_fast(struct guest_proto *gp, const uint8_t *buf, size_t len, size_t *ret_consumed) {
        size_t i = 0;

        while (i < len) {
                uint8_t c = buf[i];

                switch (gp->raw) {
                case GUEST_RAW_BYTES: {
                        const uint8_t *nul = memchr(buf + i, 0, len - i);
                        size_t take = nul ? (size_t) (nul - (buf + i)) : len - i;

                        if (out_append(gp, buf + i, take) == GUEST_EVENT_ERROR) {
                                *ret_consumed = len;
                                return GUEST_EVENT_ERROR;
                        }
                        i += take;
                        if (nul) {
                                gp->raw = GUEST_RAW_ESCAPE;
                                i++;
                        }
                        continue;
                }
                case GUEST_RAW_ESCAPE:
                        i++;
                        if (c == '.') {
                                if (out_append(gp, (const uint8_t *) "", 1) == GUEST_EVENT_ERROR) {
                                        *ret_consumed = len;
                                        return GUEST_EVENT_ERROR;
                                }
                                gp->raw = GUEST_RAW_BYTES;
                        } else if (c == '+')
                                gp->raw = GUEST_RAW_BASE64;
                        else if (c == '?') {
                                *ret_consumed = i;
                                return fail(gp, "the guest shell has no fast-channel reader function (a new shell); "
                                                "it is sent again with the next command");
                        } else if (c == '\n') {
                                *ret_consumed = i;
                                return output_done(gp);
                        } else {
                                *ret_consumed = i;
                                return fail(gp, "unexpected byte 0x%02x after a NUL in raw output", c);
                        }
                        continue;
                case GUEST_RAW_BASE64:
                        i++;
                        if (c == 0)
                                gp->raw = GUEST_RAW_END;
                        else if (b64_char(gp, c) == GUEST_EVENT_ERROR) {
                                *ret_consumed = i;
                                return GUEST_EVENT_ERROR;
                        }
                        continue;
                case GUEST_RAW_END:
                        *ret_consumed = ++i;
                        if (c != '\n')
                                return fail(gp, "unexpected byte 0x%02x after the base64 part of the output", c);
                        return output_done(gp);
                }
                *ret_consumed = len;
                return fail(gp, "invalid raw state");
        }
        *ret_consumed = len;
        return GUEST_EVENT_NONE;
}

static enum guest_event feed_output(struct guest_proto *gp, const uint8_t *buf, size_t len, size_t *ret_consumed) {
        if (gp->fast)
                return feed_fast(gp, buf, len, ret_consumed);
        for (size_t i = 0; i < len; i++) {
                if (buf[i] == '\n') {
                        *ret_consumed = i + 1;
                        return output_done(gp);
                }
                if (b64_char(gp, buf[i]) == GUEST_EVENT_ERROR) {
                        *ret_consumed = i + 1;
                        return GUEST_EVENT_ERROR;
                }
        }
        *ret_consumed = len;
        return GUEST_EVENT_NONE;
}

static enum guest_event parse_status(struct guest_proto *gp) {
        const char *p = gp->line, *end = gp->line + gp->line_len;
        bool neg = false;
        int64_t v = 0;
        size_t digits = 0;

        /* Python's int(s.strip()). */
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
                p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
                end--;
        if (p < end && (*p == '-' || *p == '+'))
                neg = *p++ == '-';
        for (; p < end && '0' <= *p && *p <= '9'; p++, digits++)
                if ((v = v * 10 + (*p - '0')) > INT32_MAX)
                        return fail(gp, "exit status out of range");
        if (digits == 0 || p != end)
                return fail(gp, "expected an exit status, got \"%.*s\"", (int) gp->line_len, gp->line);
        gp->status = (int) (neg ? -v : v);
        gp->phase = GUEST_PHASE_IDLE;
        return GUEST_EVENT_STATUS;
}

static enum guest_event feed_status(struct guest_proto *gp, const uint8_t *buf, size_t len, size_t *ret_consumed) {
        for (size_t i = 0; i < len; i++) {
                if (buf[i] == '\n') {
                        *ret_consumed = i + 1;
                        return parse_status(gp);
                }
                if (gp->line_len >= sizeof gp->line - 1) {
                        *ret_consumed = i + 1;
                        return fail(gp, "exit status line longer than %zu bytes", sizeof gp->line - 1);
                }
                gp->line[gp->line_len++] = (char) buf[i];
        }
        *ret_consumed = len;
        return GUEST_EVENT_NONE;
}

enum guest_event guest_proto_feed(struct guest_proto *gp, const uint8_t *buf, size_t len, size_t *ret_consumed) {
        bool found;
        size_t n;

        switch (gp->phase) {
        case GUEST_PHASE_IDLE:
                gp->stray_bytes += len;
                *ret_consumed = len;
                return GUEST_EVENT_NONE;
        case GUEST_PHASE_READY:
                (void) marker_scan(gp, buf, len, &found);
                /* The reference drops whatever followed the marker in that chunk. */
                *ret_consumed = len;
                if (!found)
                        return GUEST_EVENT_NONE;
                gp->phase = GUEST_PHASE_IDLE;
                return GUEST_EVENT_READY;
        case GUEST_PHASE_NONCE:
                if (gp->alt_active) {
                        static const char ready[] = GUEST_READY_LINE;
                        for (size_t i = 0; i < len; i++) {
                                bool nonce = kmp_step(gp->marker, gp->marker_len, gp->marker_fail, &gp->matched,
                                                      (char) buf[i]);
                                bool fresh = kmp_step(ready, sizeof ready - 1, gp->alt_fail, &gp->alt_matched,
                                                      (char) buf[i]);
                                if (!nonce && !fresh)
                                        continue;
                                /* A fresh shell's ready line: as in READY, the rest of the chunk goes. */
                                *ret_consumed = fresh ? len : i + 1;
                                gp->phase = GUEST_PHASE_IDLE;
                                gp->alt_active = false;
                                return fresh ? GUEST_EVENT_READY : GUEST_EVENT_SYNCED;
                        }
                        *ret_consumed = len;
                        return GUEST_EVENT_NONE;
                }
                n = marker_scan(gp, buf, len, &found);
                *ret_consumed = n;
                if (!found)
                        return GUEST_EVENT_NONE;
                gp->phase = GUEST_PHASE_IDLE;
                return GUEST_EVENT_SYNCED;
        case GUEST_PHASE_OUTPUT:
                return feed_output(gp, buf, len, ret_consumed);
        case GUEST_PHASE_STATUS:
                return feed_status(gp, buf, len, ret_consumed);
        case _GUEST_PHASE_MAX:
                break;
        }
        *ret_consumed = len;
        return fail(gp, "invalid phase");
}

uint8_t *guest_proto_take_output(struct guest_proto *gp, size_t *ret_len) {
        uint8_t *p = gp->out;

        if (!p) {
                p = calloc(1, 1);
                if (!p)
                        return NULL;
        }
        *ret_len = gp->out_len;
        gp->out = NULL;
        gp->out_len = gp->out_alloc = 0;
        return p;
}

int guest_proto_status(const struct guest_proto *gp) {
        return gp->status;
}

const char *guest_proto_error(const struct guest_proto *gp) {
        return gp->error;
}

static bool shell_safe(char c) {
        /* Python 3's shlex._find_unsafe: [^\w@%+=:,./-] with re.ASCII. */
        return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '_' || c == '@' ||
               c == '%' || c == '+' || c == '=' || c == ':' || c == ',' || c == '.' || c == '/' || c == '-';
}

int guest_shell_quote(const char *s, char **ret) {
        size_t n = strlen(s), quotes = 0;
        bool safe = n > 0;
        char *buf, *p;

        for (const char *c = s; *c; c++) {
                if (!shell_safe(*c))
                        safe = false;
                if (*c == '\'')
                        quotes++;
        }
        if (safe) {
                buf = strdup(s);
                if (!buf)
                        return -ENOMEM;
                *ret = buf;
                return 0;
        }
        /* Each ' becomes '"'"' (5 bytes for 1); plus the two outer quotes. */
        buf = malloc(n + quotes * 4 + 3);
        if (!buf)
                return -ENOMEM;
        p = buf;
        *p++ = '\'';
        for (const char *c = s; *c; c++) {
                if (*c == '\'') {
                        memcpy(p, "'\"'\"'", 5);
                        p += 5;
                } else
                        *p++ = *c;
        }
        *p++ = '\'';
        *p = 0;
        *ret = buf;
        return 0;
}

int guest_build_command(const char *command, int64_t timeout_s, char **ret) {
        _cleanup_free_ char *wrapped = NULL, *quoted = NULL;
        char prefix[48] = "";
        char *line;
        int r;

        if (asprintf(&wrapped, "set -euo pipefail; %s", command) < 0) {
                wrapped = NULL;
                return -ENOMEM;
        }
        r = guest_shell_quote(wrapped, &quoted);
        if (r < 0)
                return r;
        if (timeout_s >= 0)
                (void) snprintf(prefix, sizeof prefix, "timeout %" PRIi64 " ", timeout_s);
        if (asprintf(&line, "%sbash -c %s | (base64 -w 0; echo)\n", prefix, quoted) < 0)
                return -ENOMEM;
        *ret = line;
        return 0;
}

/* The reader, a function of the backdoor shell (bash reads its script from
 * the tty a byte at a time, so each byte of a command line costs a syscall:
 * the body is sent once per shell, each command then costs a short line).
 * It is the last element of a pipeline whose first is the command, and reads
 * the command's stdout (its own stdin) to EOF with builtins: a chunk up to a
 * NUL or GUEST_FAST_CHUNK bytes; a short one ended at a NUL, sent with that
 * NUL as NUL '.'. After GUEST_FAST_CHUNKS chunks `base64 -w 0` takes the rest,
 * as `read` costs a syscall per byte on a pipe (and, under TCG with a writer
 * blocked on the full pipe, more than base64's exec beyond 4 KiB). It prints
 * what EOF left and returns. `read -n` and ${#} must count bytes, not
 * characters: in a multibyte locale LC_ALL is C meanwhile (only then, as
 * each change costs a setlocale()), and set back as it was after.
 * With an argument N the command's first line is its subshell's pid, and
 * the reader starts the stand-in for coreutils `timeout N`: a watchdog
 * sleeps in `read -t N` on a fresh pty master (never readable) and, if the
 * command is still running then, leaves a child to SIGTERM its process tree,
 * children first, and exits 0 at once.
 * __vigil_e runs once the pipeline ended (the command has exited, not just
 * closed its stdout) and prints the end of the output and the status,
 * ${PIPESTATUS[0]}; with a watchdog, it SIGKILLs it first: one that was not
 * done sleeping says 137, one that fired 0, and then the status is 124 as
 * with timeout(1) (the watchdog does not wait for its kills, so a command
 * that dies of them cannot make the SIGKILL land first).
 * The status comes from the pipeline, never from `wait` on a process
 * substitution: bash (5.2) registers a process substitution after forking
 * it, so one that exits at once can be reaped unrecorded, and `wait` then
 * says -1 (measured: 10 in 2000 quick commands). `lastpipe` runs the
 * reader in the backdoor shell itself: one fork per command, and the
 * watchdog's pid passes to __vigil_e in __vigil_w, which it unsets. It
 * needs job control off: NixOS's backdoor is non-interactive (bash --norc
 * /dev/hvc0), so it is; `set +m` makes sure for a backdoor that is not
 * (commands ran in the shell's process group with the process substitution
 * too). The reader's other variables are local. */
/* clang-format off */
#define FAST_READER                                                                                     \
        "set +m; shopt -s lastpipe; "                                                                   \
        "__vigil_r() { local b v n=0 l; "                                                               \
        "if (($#)); then "                                                                              \
                "IFS= read -r b; "                                                                      \
                "( k() { local c; for c in $(</proc/$1/task/$1/children); do k $c; done; kill -TERM $1; }; " \
                "read -t $1 </dev/ptmx; kill -0 $b || exit 1; k $b & exit 0 ) "                         \
                ">/dev/null 2>&1 </dev/null & __vigil_w=$!; "                                           \
        "fi; "                                                                                          \
        "case ${LC_ALL-}${LC_CTYPE-}${LANG-} in ''|C|POSIX) ;; *) l=${LC_ALL+x}${LC_ALL-u}; LC_ALL=C;; esac; " \
        "while :; do "                                                                                  \
                "if IFS= read -r -d '' -n 4096 v; then "                                                \
                        "if ((${#v} < 4096)); then printf '%%s\\0.' \"$v\"; else printf %%s \"$v\"; fi; " \
                        "((++n < 1)) || { printf '\\0+'; base64 -w 0; v=; break; }; "                   \
                "else break; fi; "                                                                      \
        "done; "                                                                                        \
        "case $l in u) unset LC_ALL;; x*) LC_ALL=${l#x};; esac; "                                       \
        "printf %%s \"$v\"; }; "                                                                        \
        "__vigil_p() { BASH_ARGV0=bash; BASH_SUBSHELL=0; SHLVL=$((SHLVL + 1)); "                       \
                "unset -f __vigil_r __vigil_e __vigil_p; shopt -u lastpipe; set -euo pipefail; }; "     \
        "__vigil_e() { local s=$1; "                                                                    \
        "if [[ ${__vigil_w-} ]]; then kill -9 $__vigil_w 2>/dev/null; wait $__vigil_w 2>/dev/null && s=124; unset __vigil_w; fi; " \
        "printf '\\0\\n%%s\\n' $s; }; "
/* clang-format on */
_Static_assert(GUEST_FAST_CHUNK == 4096 && GUEST_FAST_CHUNKS == 1, "FAST_READER spells out the chunk sizes");

/* The command, as the pipeline's first element, as `bash -c` would run it:
 * $0 "bash", no positional parameters, not a subshell as far as
 * $BASH_SUBSHELL tells, one $SHLVL deeper, without the reader's functions or
 * `lastpipe`; stdin the backdoor's (hvc0), stdout the pipe the reader reads.
 * With a timeout it first says its pid (the watchdog's target). The
 * prologue is __vigil_p, a function the definitions carry: the call line is
 * ~100 bytes shorter for it (bash reads it a byte a syscall; docs/machine.md
 * has the measurement). Its assignments and options are global; `set --` stays outside (in a
 * function it would set the function's parameters), and bash runs a copy of
 * a function's body, so __vigil_p can unset itself. */
#define FAST_COMMAND "{ %s__vigil_p; set --; eval %s; } | __vigil_r%s; __vigil_e \"${PIPESTATUS[@]}\""

int guest_build_fast_call(const char *command, int64_t timeout_s, bool define, char **ret) {
        _cleanup_free_ char *quoted = NULL;
        char arg[32] = "";
        const char *pid = "";
        char *line;
        int r;

        r = guest_shell_quote(command, &quoted);
        if (r < 0)
                return r;
        if (timeout_s > 0) { /* 0 is no timeout, as for `timeout 0` */
                (void) snprintf(arg, sizeof arg, " %" PRIi64, timeout_s);
                pid = "echo $BASHPID; ";
        }
        if (define)
                r = asprintf(&line, FAST_READER FAST_COMMAND "\n", pid, quoted, arg);
        else
                /* A shell without the reader says so (a fresh one; one an
                 * older vigil defined has no __vigil_p). */
                r = asprintf(&line,
                             "if declare -F __vigil_p >/dev/null; then " FAST_COMMAND "; else printf '\\0?\\n'; fi\n",
                             pid, quoted, arg);
        if (r < 0)
                return -ENOMEM;
        *ret = line;
        return 0;
}

int guest_build_fast_command(const char *command, int64_t timeout_s, char **ret) {
        return guest_build_fast_call(command, timeout_s, true, ret);
}

int guest_build_nonce_command(const char *nonce, char **ret) {
        char *line;

        if (!nonce_valid(nonce))
                return -EINVAL;
        /* echo 'v''igil-sync-…' prints the nonce; the command text never contains it. */
        if (asprintf(&line, "echo '%c''%s'\n", nonce[0], nonce + 1) < 0)
                return -ENOMEM;
        *ret = line;
        return 0;
}
