/* SPDX-License-Identifier: MIT */
/*
 * console-log.c: serial console line handling (see console-log.h). Pure.
 */
#include "console-log.h"
#include "macro.h"

int console_splitter_init(struct console_splitter *s, size_t line_max) {
        *s = (struct console_splitter){.line_max = line_max > 0 ? line_max : CONSOLE_LINE_MAX_DEFAULT};
        s->partial = malloc(s->line_max + 1);
        if (!s->partial)
                return -ENOMEM;
        return 0;
}

void console_splitter_done(struct console_splitter *s) {
        free(s->partial);
        s->partial = NULL;
        s->len = 0;
}

/* Length of a valid UTF-8 sequence at @p (RFC 3629: no overlongs, no
 * surrogates, <= U+10FFFF), or 0 if the byte there starts none. */
static size_t utf8_valid_at(const uint8_t *p, size_t avail) {
        uint8_t c = p[0];
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF;

        if (c < 0x80)
                return 1;
        if (c < 0xC2)
                return 0;
        if (c < 0xE0)
                n = 2;
        else if (c < 0xF0) {
                n = 3;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F;
        } else if (c < 0xF5) {
                n = 4;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
        } else
                return 0;
        if (avail < n)
                return 0;
        if (p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (p[i] < 0x80 || p[i] > 0xBF)
                        return 0;
        return n;
}

/* Length of a trailing Python-whitespace code point ending at line[len-1], or 0. */
static size_t trailing_space(const char *line, size_t len) {
        const uint8_t *u = (const uint8_t *) line;
        uint8_t c = u[len - 1];

        if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F))
                return 1;
        if (c < 0x80)
                return 0;
        /* U+0085, U+00A0 */
        if (len >= 2 && u[len - 2] == 0xC2 && (c == 0x85 || c == 0xA0))
                return 2;
        if (len >= 3) {
                uint32_t cp =
                        ((uint32_t) (u[len - 3] & 0x0F) << 12) | ((uint32_t) (u[len - 2] & 0x3F) << 6) | (c & 0x3F);
                if ((u[len - 3] & 0xF0) == 0xE0 && (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
                                                    cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000))
                        return 3;
        }
        return 0;
}

size_t console_clean_line(char *line, size_t len) {
        const uint8_t *in = (const uint8_t *) line;
        size_t o = 0;

        for (size_t i = 0; i < len;) {
                size_t n = utf8_valid_at(in + i, len - i);
                if (n == 0) {
                        i++; /* errors="ignore" */
                        continue;
                }
                if (n == 1 && in[i] == '\r') {
                        i++;
                        continue;
                }
                memmove(line + o, line + i, n);
                o += n;
                i += n;
        }
        for (size_t t; o > 0 && (t = trailing_space(line, o)) > 0;)
                o -= t;
        line[o] = 0;
        return o;
}

static int emit(struct console_splitter *s, console_line_fn fn, void *userdata) {
        size_t n = console_clean_line(s->partial, s->len);
        s->len = 0;
        return fn(s->partial, n, userdata);
}

int console_splitter_feed(struct console_splitter *s, const uint8_t *buf, size_t len, console_line_fn fn,
                          void *userdata) {
        int r;

        for (size_t i = 0; i < len;) {
                const uint8_t *nl = memchr(buf + i, '\n', len - i);
                size_t take = (nl ? (size_t) (nl - (buf + i)) : len - i);
                size_t room = s->line_max - s->len;

                if (take > room) {
                        /* Cap a runaway line: cut it here and continue with a new one. */
                        memcpy(s->partial + s->len, buf + i, room);
                        s->len += room;
                        i += room;
                        r = emit(s, fn, userdata);
                        if (r < 0)
                                return r;
                        continue;
                }
                memcpy(s->partial + s->len, buf + i, take);
                s->len += take;
                i += take;
                if (!nl)
                        break;
                i++; /* the '\n' */
                r = emit(s, fn, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int console_splitter_finish(struct console_splitter *s, console_line_fn fn, void *userdata) {
        if (s->len == 0)
                return 0;
        return emit(s, fn, userdata);
}

int console_ring_init(struct console_ring *r, size_t max_lines, size_t max_bytes) {
        *r = (struct console_ring){
                .max_lines = max_lines > 0 ? max_lines : CONSOLE_RING_LINES_DEFAULT,
                .max_bytes = max_bytes > 0 ? max_bytes : CONSOLE_RING_BYTES_DEFAULT,
        };
        r->lines = calloc(r->max_lines, sizeof *r->lines);
        r->lens = calloc(r->max_lines, sizeof *r->lens);
        if (!r->lines || !r->lens) {
                console_ring_done(r);
                return -ENOMEM;
        }
        return 0;
}

void console_ring_done(struct console_ring *r) {
        if (r->lines)
                for (size_t i = 0; i < r->max_lines; i++)
                        free(r->lines[i]);
        free(r->lines);
        free(r->lens);
        r->lines = NULL;
        r->lens = NULL;
        r->count = r->bytes = 0;
}

static void drop_oldest(struct console_ring *r) {
        r->bytes -= r->lens[r->head];
        free(r->lines[r->head]);
        r->lines[r->head] = NULL;
        r->head = (r->head + 1) % r->max_lines;
        r->count--;
        r->first++;
}

int console_ring_push(struct console_ring *r, const char *line, size_t len) {
        char *copy = malloc(len + 1);

        if (!copy)
                return -ENOMEM;
        memcpy(copy, line, len);
        copy[len] = 0;
        while (r->count > 0 && (r->count == r->max_lines || r->bytes + len > r->max_bytes))
                drop_oldest(r);
        size_t slot = (r->head + r->count) % r->max_lines;
        r->lines[slot] = copy;
        r->lens[slot] = len;
        r->count++;
        r->bytes += len;
        return 0;
}

uint64_t console_ring_end(const struct console_ring *r) {
        return r->first + r->count;
}

void console_ring_set_start(struct console_ring *r, uint64_t index) {
        while (r->count > 0)
                drop_oldest(r);
        r->first = index;
}

int console_ring_read(const struct console_ring *r, uint64_t from, size_t max_bytes, char **ret_text, size_t *ret_len,
                      uint64_t *ret_first, uint64_t *ret_next) {
        uint64_t start = MAX(from, r->first), end = console_ring_end(r), i;
        size_t total = 0;
        char *text, *p;

        if (start > end)
                start = end;
        for (i = start; i < end; i++) {
                size_t l = r->lens[(r->head + (i - r->first)) % r->max_lines] + 1;
                if (i > start && total + l > max_bytes)
                        break;
                total += l;
        }
        text = malloc(total + 1);
        if (!text)
                return -ENOMEM;
        p = text;
        for (uint64_t j = start; j < i; j++) {
                size_t slot = (r->head + (j - r->first)) % r->max_lines;
                memcpy(p, r->lines[slot], r->lens[slot]);
                p += r->lens[slot];
                *p++ = '\n';
        }
        *p = 0;
        *ret_text = text;
        *ret_len = total;
        *ret_first = start;
        *ret_next = i;
        return 0;
}

void console_ratelimit_init(struct console_ratelimit *rl, uint64_t interval_usec, unsigned burst) {
        *rl = (struct console_ratelimit){.interval_usec = interval_usec, .burst = burst};
}

bool console_ratelimit_allow(struct console_ratelimit *rl, uint64_t now_usec, uint64_t *ret_suppressed) {
        if (rl->begin == 0 || now_usec - rl->begin >= rl->interval_usec) {
                rl->begin = now_usec;
                rl->n = 0;
        }
        if (rl->n >= rl->burst) {
                rl->suppressed++;
                return false;
        }
        rl->n++;
        *ret_suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
}
