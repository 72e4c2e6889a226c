/* SPDX-License-Identifier: MIT */
/*
 * Proves that every lifecycle event's MESSAGE_ID is a distinct 32-hex-digit id, that each has an entry in
 * docs/vigil.catalog with a Subject and explanatory text, and that CODE_FILE drops the build-relative "../".
 * It matters because journalctl MESSAGE_ID= and `journalctl -x` are how users find and understand vigil's events.
 */
#include <ctype.h>
#include <string.h>

#include "log.h"
#include "tap.h"

static bool is_id128(const char *s) {
        if (!s || strlen(s) != 32)
                return false;
        for (size_t i = 0; i < 32; i++)
                if (!isxdigit((unsigned char) s[i]) || isupper((unsigned char) s[i]))
                        return false;
        return true;
}

/* The catalog entry for @id: true if "-- id" is followed by a Subject: header and, after the blank line, text. */
static bool catalog_has(const char *catalog, const char *id) {
        char head[64];
        const char *p, *end;

        snprintf(head, sizeof(head), "\n-- %s\n", id);
        p = strstr(catalog, head);
        if (!p)
                return false;
        p += strlen(head);
        end = strstr(p, "\n-- ");
        end = end ?: p + strlen(p);
        const char *subject = strstr(p, "Subject: ");
        const char *blank = strstr(p, "\n\n");
        return subject && subject < end && blank && blank < end && blank + 2 < end && !isspace(blank[2]);
}

int main(int argc, char **argv) {
        static char catalog[1 << 16];
        size_t n = 0;
        FILE *f;

        if (argc != 2 || !(f = fopen(argv[1], "re"))) {
                fprintf(stderr, "usage: test-log-ids PATH-TO-vigil.catalog (cannot open it)\n");
                return 2;
        }
        catalog[n++] = '\n';
        n += fread(catalog + n, 1, sizeof(catalog) - n - 1, f);
        catalog[n] = '\0';
        fclose(f);
        CHECK(n > 1 && n < sizeof(catalog) - 1, "the catalog was read whole (%zu bytes)", n);

        CHECK(!log_event_message_id(LOG_EVENT_NONE), "LOG_EVENT_NONE has no MESSAGE_ID");
        for (int a = LOG_EVENT_NONE + 1; a < _LOG_EVENT_MAX; a++) {
                const char *id = log_event_message_id(a);
                bool unique = true;

                for (int b = LOG_EVENT_NONE + 1; b < a; b++)
                        unique = unique && log_event_message_id(b) && id && strcmp(id, log_event_message_id(b)) != 0;
                CHECK(is_id128(id), "%s: MESSAGE_ID %s is 32 lower-case hex digits", log_event_to_string(a),
                      id ?: "(null)");
                CHECK(unique, "%s: MESSAGE_ID is not shared with an earlier event", log_event_to_string(a));
                CHECK(id && catalog_has(catalog, id), "%s: the catalog has an entry with Subject and text",
                      log_event_to_string(a));
        }
        CHECK(strcmp(log_code_file("../supervisor/sup-tree.c"), "supervisor/sup-tree.c") == 0,
              "CODE_FILE drops the build directory's ../");
        CHECK(strcmp(log_code_file("./a/../b.c"), "a/../b.c") == 0, "CODE_FILE keeps inner ../");
        return tap_done();
}
