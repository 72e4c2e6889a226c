/* SPDX-License-Identifier: MIT */
/*
 * report.c owns report.html: one self-contained file (no network, no external
 * asset) that shows a run from what it recorded in its output directory. The
 * page itself (report/report.html, embedded at build time) is a fixed
 * template; this file streams the data into it as inert script blocks: the
 * timeline's events one JSON object per line, each machine's console one JSON
 * string per line, screenshots as base64, and the names of pcaps and JUnit
 * files. Nothing is held whole in memory, and every quantity a run of hours
 * can grow (commands, events, console bytes, line length, images) is capped
 * by struct report_limits, keeping the start and the end of what was cut.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"
#include "report-template.h"
#include "report.h"

#define REPORT_MARKER         "<!--VIGIL-DATA-->"
#define REPORT_EVENT_LINE_MAX (64u * 1024u) /* a timeline line; sup-timeline writes < 8 KiB */
#define REPORT_CONSOLE_MIN    (64u * 1024u) /* each machine's share never goes below this */

static void json_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}
#define _cleanup_jput_ _cleanup_(json_putp)

static void dirents_freep(struct dirent ***list) {
        free(*list);
}

/* ---- writing into the page ---- */

/* JSON text inside a <script> block: '<' only occurs inside strings, where
 * \u003c means the same, so no "</script" or "<!--" can end or confuse it. */
static void report_put_json(FILE *out, json_object *o) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

        for (; s && *s; s++) {
                if (*s == '<')
                        fputs("\\u003c", out);
                else
                        fputc(*s, out);
        }
        fputc('\n', out);
}

static void report_put_attr(FILE *out, const char *s) {
        static const char *const esc[256] = {
                ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;"};

        for (; *s; s++) {
                const char *e = esc[(unsigned char) *s];
                if (e)
                        fputs(e, out);
                else
                        fputc(*s, out);
        }
}

static void report_put_base64(FILE *out, FILE *in) {
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        unsigned char b[3];
        size_t n, col = 0;

        while ((n = fread(b, 1, 3, in)) > 0) {
                unsigned v = (unsigned) b[0] << 16 | (n > 1 ? (unsigned) b[1] << 8 : 0) | (n > 2 ? b[2] : 0);
                fputc(tab[v >> 18 & 63], out);
                fputc(tab[v >> 12 & 63], out);
                fputc(n > 1 ? tab[v >> 6 & 63] : '=', out);
                fputc(n > 2 ? tab[v & 63] : '=', out);
                if ((col += 4) >= 76) {
                        fputc('\n', out);
                        col = 0;
                }
        }
}

/* Read one line of at most @size - 1 bytes into @buf; the rest of a longer
 * line is skipped (*@ret_cut says so). 0 at EOF, else 1. Never grows memory. */
static int report_read_line(FILE *in, char *buf, size_t size, bool *ret_cut) {
        size_t len;
        int c;

        if (!fgets(buf, (int) size, in))
                return 0;
        len = strlen(buf);
        *ret_cut = false;
        if (len > 0 && buf[len - 1] == '\n')
                buf[--len] = 0;
        else if (len == size - 1) {
                *ret_cut = true;
                while ((c = fgetc(in)) != EOF && c != '\n')
                        ;
        }
        return 1;
}

/* ---- the timeline ---- */

enum report_class {
        REPORT_SKIP,    /* bookkeeping nobody needs to see (fd_stored) */
        REPORT_COMMAND, /* a machine's command: the bulk of a long run */
        REPORT_OTHER,
};

static enum report_class report_classify(json_object *o) {
        json_object *ev, *name;
        const char *e;

        if (!json_object_object_get_ex(o, "event", &ev) || !(e = json_object_get_string(ev)))
                return REPORT_SKIP;
        if (streq(e, "fd_stored"))
                return REPORT_SKIP;
        if (streq(e, "worker_event") && json_object_object_get_ex(o, "name", &name) &&
            streq(json_object_get_string(name) ?: "", "command"))
                return REPORT_COMMAND;
        return REPORT_OTHER;
}

static json_object *report_parse_event(const char *line) {
        json_object *o = json_tokener_parse(line);

        if (o && !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

struct report_counts {
        size_t total[3];
        size_t kept[3];
        size_t seen[3];
};

/* Keep the first half and the last half of each class: the start of a run
 * says how it was set up, the end how it failed. */
static bool report_keep(struct report_counts *c, enum report_class k, size_t max) {
        size_t i = c->seen[k]++;

        if (k == REPORT_SKIP)
                return false;
        if (c->total[k] <= max || i < max / 2 || i >= c->total[k] - (max - max / 2)) {
                c->kept[k]++;
                return true;
        }
        return false;
}

static int report_events(FILE *out, FILE *in, const struct report_limits *lim, struct report_counts *c) {
        _cleanup_free_ char *buf = malloc(REPORT_EVENT_LINE_MAX);
        bool cut;

        if (!buf)
                return -ENOMEM;
        /* Pass 1 counts, so pass 2 knows where "the last half" begins. */
        while (report_read_line(in, buf, REPORT_EVENT_LINE_MAX, &cut) > 0) {
                _cleanup_jput_ json_object *o = cut ? NULL : report_parse_event(buf);
                if (o)
                        c->total[report_classify(o)]++;
        }
        rewind(in);
        fputs("<script type=\"text/plain\" id=\"vigil-events\">\n", out);
        while (report_read_line(in, buf, REPORT_EVENT_LINE_MAX, &cut) > 0) {
                _cleanup_jput_ json_object *o = cut ? NULL : report_parse_event(buf);
                if (!o)
                        continue;
                enum report_class k = report_classify(o);
                if (report_keep(c, k, k == REPORT_COMMAND ? lim->commands_max : lim->events_max))
                        report_put_json(out, o);
        }
        fputs("</script>\n", out);
        return 0;
}

/* ---- consoles ---- */

static int report_console_line(FILE *out, const char *line) {
        _cleanup_jput_ json_object *s = json_object_new_string(line);

        if (!s)
                return -ENOMEM;
        report_put_json(out, s);
        return 0;
}

/* One machine's console: whole when it fits @budget, else the first quarter
 * and the last three quarters with a {"omitted": BYTES} line between. */
static int report_console(FILE *out, const char *dir, const char *file, size_t budget, size_t line_max,
                          json_object *meta) {
        char path[4096], machine[256];
        _cleanup_free_ char *buf = malloc(line_max + 1);
        _cleanup_fclose_ FILE *in = NULL;
        size_t used = 0, head = budget / 4;
        struct stat st;
        bool cut;
        int r = 0;

        if (!buf)
                return -ENOMEM;
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        snprintf(machine, sizeof(machine), "%.*s", (int) (strlen(file) - strlen("-console.log")), file);
        in = fopen(path, "re");
        if (!in || fstat(fileno(in), &st) < 0)
                return 0; /* gone since readdir: nothing to show */

        fputs("<script type=\"text/plain\" class=\"vigil-console\" data-machine=\"", out);
        report_put_attr(out, machine);
        fputs("\">\n", out);
        while (r >= 0 && ((size_t) st.st_size <= budget || used < head) &&
               report_read_line(in, buf, line_max + 1, &cut) > 0) {
                used += strlen(buf) + 1;
                r = report_console_line(out, buf);
        }
        if (r >= 0 && (size_t) st.st_size > budget) {
                off_t tail = (off_t) (budget - head), from = st.st_size - tail;
                _cleanup_jput_ json_object *gap = json_object_new_object();

                if (!gap)
                        return -ENOMEM;
                json_object_object_add(gap, "omitted", json_object_new_int64((int64_t) (from - (off_t) used)));
                report_put_json(out, gap);
                if (fseeko(in, from, SEEK_SET) == 0) {
                        (void) report_read_line(in, buf, line_max + 1, &cut); /* a partial line */
                        while (r >= 0 && report_read_line(in, buf, line_max + 1, &cut) > 0)
                                r = report_console_line(out, buf);
                }
        }
        fputs("</script>\n", out);

        json_object *m = json_object_new_object();
        json_object_object_add(m, "bytes", json_object_new_int64((int64_t) st.st_size));
        json_object_object_add(m, "cut", json_object_new_boolean((size_t) st.st_size > budget));
        json_object_object_add(meta, machine, m);
        return r;
}

/* ---- files beside the timeline ---- */

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n > m && streq(s + n - m, suffix);
}

static void report_image(FILE *out, const char *dir, const char *name, const struct report_limits *lim,
                         size_t *n_images, json_object *linked) {
        char path[4096];
        _cleanup_fclose_ FILE *in = NULL;
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        in = fopen(path, "re");
        if (!in || fstat(fileno(in), &st) < 0)
                return;
        if (*n_images >= lim->images_max || (size_t) st.st_size > lim->image_bytes_max) {
                json_object_array_add(linked, json_object_new_string(name));
                return;
        }
        (*n_images)++;
        fputs("<script type=\"text/plain\" class=\"vigil-shot\" data-name=\"", out);
        report_put_attr(out, name);
        fputs("\">\n", out);
        report_put_base64(out, in);
        fputs("\n</script>\n", out);
}

static int report_files(FILE *out, const char *dir, const struct report_limits *lim, json_object *meta) {
        _cleanup_(dirents_freep) struct dirent **list = NULL;
        json_object *pcaps = json_object_new_array(), *xml = json_object_new_array(),
                    *linked = json_object_new_array(), *consoles = json_object_new_object();
        size_t n_consoles = 0, n_images = 0, budget;
        int n, r = 0;

        json_object_object_add(meta, "pcaps", pcaps);
        json_object_object_add(meta, "junit", xml);
        json_object_object_add(meta, "screenshots_linked", linked);
        json_object_object_add(meta, "consoles", consoles);
        if (!pcaps || !xml || !linked || !consoles)
                return -ENOMEM;
        n = scandir(dir, &list, NULL, alphasort);
        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++)
                n_consoles += ends_with(list[i]->d_name, "-console.log");
        budget = n_consoles ? MAX(lim->console_bytes_max / n_consoles, (size_t) REPORT_CONSOLE_MIN) : 0;
        for (int i = 0; i < n; i++) {
                const char *name = list[i]->d_name;
                if (r >= 0 && ends_with(name, "-console.log"))
                        r = report_console(out, dir, name, budget, lim->console_line_max, consoles);
                else if (ends_with(name, ".pcap"))
                        json_object_array_add(pcaps, json_object_new_string(name));
                else if (ends_with(name, ".xml"))
                        json_object_array_add(xml, json_object_new_string(name));
                else if (ends_with(name, ".png"))
                        report_image(out, dir, name, lim, &n_images, linked);
        }
        for (int i = 0; i < n; i++)
                free(list[i]);
        return r;
}

/* ---- the page ---- */

static int report_fill(FILE *out, const char *dir, FILE *timeline, const struct report_limits *lim) {
        _cleanup_jput_ json_object *meta = json_object_new_object();
        struct report_counts c = {};
        int r;

        if (!meta)
                return -ENOMEM;
        r = report_events(out, timeline, lim, &c);
        if (r >= 0)
                r = report_files(out, dir, lim, meta);
        if (r < 0)
                return r;
        json_object_object_add(meta, "version", json_object_new_string(VIGIL_VERSION));
        json_object_object_add(meta, "out_dir", json_object_new_string(dir));
        json_object_object_add(meta, "generated", json_object_new_int64((int64_t) time(NULL)));
        json_object_object_add(meta, "commands_total", json_object_new_int64((int64_t) c.total[REPORT_COMMAND]));
        json_object_object_add(meta, "commands_kept", json_object_new_int64((int64_t) c.kept[REPORT_COMMAND]));
        json_object_object_add(meta, "events_total", json_object_new_int64((int64_t) c.total[REPORT_OTHER]));
        json_object_object_add(meta, "events_kept", json_object_new_int64((int64_t) c.kept[REPORT_OTHER]));
        fputs("<script type=\"text/plain\" id=\"vigil-meta\">\n", out);
        report_put_json(out, meta);
        fputs("</script>\n", out);
        return 0;
}

int report_hydra_products(const char *out_dir) {
        const char *out = getenv("out");
        _cleanup_(dirents_freep) struct dirent **list = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        char path[4096];
        size_t n_out;
        int n;

        if (!out || out[0] != '/' || strncmp(out_dir, out, n_out = strlen(out)) != 0 ||
            (out_dir[n_out] && out_dir[n_out] != '/'))
                return 0;
        snprintf(path, sizeof(path), "%s/nix-support", out);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        snprintf(path, sizeof(path), "%s/nix-support/hydra-build-products", out);
        f = fopen(path, "ae");
        if (!f)
                return -errno;
        fprintf(f, "report vigil-report %s report.html\n", out_dir);
        n = scandir(out_dir, &list, NULL, alphasort);
        for (int i = 0; i < n; i++) {
                const char *name = list[i]->d_name;
                if (ends_with(name, ".xml"))
                        fprintf(f, "file junit %s/%s\n", out_dir, name);
                else if (ends_with(name, "-console.log") || streq(name, "timeline.jsonl"))
                        fprintf(f, "file log %s/%s\n", out_dir, name);
                free(list[i]);
        }
        return fflush(f) == 0 ? 0 : -errno;
}

int report_write(const char *out_dir, const struct report_limits *lim, char **ret_error) {
        const char *marker = memmem(report_template, report_template_len, REPORT_MARKER, strlen(REPORT_MARKER));
        char path[4096], tmp[4200];
        _cleanup_fclose_ FILE *timeline = NULL;
        FILE *out;
        int r;

        if (!marker)
                return asprintf(ret_error, "the report template has no %s marker", REPORT_MARKER), -EINVAL;
        snprintf(path, sizeof(path), "%s/timeline.jsonl", out_dir);
        timeline = fopen(path, "re");
        if (!timeline)
                return r = -errno, asprintf(ret_error, "cannot read %s: %s", path, strerror(-r)), r;
        snprintf(path, sizeof(path), "%s/report.html", out_dir);
        snprintf(tmp, sizeof(tmp), "%s/.report.html.tmp", out_dir);
        out = fopen(tmp, "we");
        if (!out)
                return r = -errno, asprintf(ret_error, "cannot write %s: %s", tmp, strerror(-r)), r;

        fwrite(report_template, 1, (size_t) (marker - report_template), out);
        r = report_fill(out, out_dir, timeline, lim);
        marker += strlen(REPORT_MARKER);
        fwrite(marker, 1, report_template_len - (size_t) (marker - report_template), out);
        if (r >= 0 && (ferror(out) || fflush(out) != 0))
                r = -(errno ?: EIO);
        if (fclose(out) != 0 && r >= 0)
                r = -(errno ?: EIO);
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return asprintf(ret_error, "cannot write %s: %s", path, strerror(-r)), r;
        }
        return 0;
}
