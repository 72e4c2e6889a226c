/* SPDX-License-Identifier: MIT */
/*
 * Proves the machine console's contract on its own: lines reach the log file and the ring, reads wait for lines,
 * time out or end with the machine, and a restarted worker's console continues from its log file.
 * Why it matters: wait_for_console_text, the console log and boot-failure messages rest on it, and a worker
 * restart must not renumber or lose lines a script already read.
 */
#include <event2/event.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "machine-console.h"
#include "macro.h"
#include "tap.h"

struct answers {
        unsigned n;
        uint32_t seq;
        int error;
        char text[256];
        uint64_t next;
};

static void on_answer(void *userdata, uint32_t seq, const char *text, size_t len, uint64_t next_line) {
        struct answers *a = userdata;

        a->n++;
        a->seq = seq;
        a->error = 0;
        (void) snprintf(a->text, sizeof a->text, "%.*s", (int) len, text ?: "");
        a->next = next_line;
}

static void on_answer_error(void *userdata, uint32_t seq, int error, const char *message) {
        struct answers *a = userdata;

        a->n++;
        a->seq = seq;
        a->error = error;
        (void) snprintf(a->text, sizeof a->text, "%s", message);
}

static const struct machine_console_ops ops = {.answer = on_answer, .answer_error = on_answer_error};

static void feed(struct machine_console *c, const char *s) {
        machine_console_feed(c, (const uint8_t *) s, strlen(s));
}

static bool file_is(const char *path, const char *want) {
        char buf[512];
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return false;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        return streq(buf, want);
}

int main(void) {
        char dir[] = "/tmp/test-machine-console.XXXXXX", out[64], log[96], tail[512];
        struct event_base *base = event_base_new();
        struct machine_console *c = NULL;
        struct answers a = {};
        struct machine_console_params p = {.machine = "alpha", .out_dir = out};

        if (!base || !mkdtemp(dir))
                return EXIT_FAILURE;
        (void) snprintf(out, sizeof out, "%s/out", dir);
        (void) snprintf(log, sizeof log, "%s/alpha-console.log", out);

        /* A first start creates the output dir and the log file. */
        CHECK(machine_console_new(base, &p, &ops, &a, &c) == 0, "new: console of a first start");
        feed(c, "boot\r\nline two  \nta");
        CHECK(file_is(log, "boot\nline two\n"), "feed: finished lines, cleaned, in <out>/<name>-console.log");
        CHECK(machine_console_read(c, 1, 0, 0, false) == 0 && a.n == 1 && a.seq == 1 &&
                      streq(a.text, "boot\nline two\n") && a.next == 2,
              "read: lines from 0 answered at once, next line 2");

        /* A read past the end waits for the next line. */
        CHECK(machine_console_read(c, 2, 2, -1, false) == 0 && a.n == 1, "read: past the end waits");
        feed(c, "il");
        CHECK(a.n == 1, "read: an unfinished line does not answer it");
        feed(c, "\n");
        CHECK(a.n == 2 && a.seq == 2 && streq(a.text, "tail\n") && a.next == 3, "read: answered by the next line");

        /* Its timeout answers it with nothing new. */
        CHECK(machine_console_read(c, 3, 3, 20, false) == 0 && a.n == 2, "read: with a timeout waits");
        (void) event_base_dispatch(base);
        CHECK(a.n == 3 && a.seq == 3 && streq(a.text, "") && a.next == 3,
              "read: timeout answers empty, next unchanged");

        /* The machine's end answers every waiting read; no machine answers at once. */
        CHECK(machine_console_read(c, 4, 3, -1, false) == 0 && a.n == 3, "read: waits for the machine");
        machine_console_answer_all(c);
        CHECK(a.n == 4 && a.seq == 4 && streq(a.text, ""), "answer_all: the machine stopped, the read is answered");
        CHECK(machine_console_read(c, 5, 3, -1, true) == 0 && a.n == 5 && a.seq == 5, "read: ended answers at once");

        /* EOF flushes an unfinished last line. */
        feed(c, "last words");
        machine_console_eof(c);
        CHECK(file_is(log, "boot\nline two\ntail\nlast words\n"), "eof: the unfinished line is written");

        /* Error messages quote the last lines and the hypervisor's stderr. */
        machine_console_stderr_line(c, "old qemu");
        machine_console_stderr_forget(c);
        machine_console_stderr_line(c, "could not open disk");
        machine_console_describe_tail(c, tail, sizeof tail);
        CHECK(streq(tail, "last console lines: boot|line two|tail|last words|; qemu stderr: could not open disk"),
              "describe_tail: last lines and this hypervisor's stderr (got \"%s\")", tail);

        /* A pending read is dropped, not answered, when the worker exits. */
        CHECK(machine_console_read(c, 6, 99, -1, false) == 0, "read: pending at exit");
        c = machine_console_free(c);
        CHECK(a.n == 5, "free: pending reads are not answered");

        /* A restarted worker continues from the log: same numbers, appended file. */
        p.restarted = true;
        CHECK(machine_console_new(base, &p, &ops, &a, &c) == 0, "new: console of a restarted worker");
        CHECK(machine_console_read(c, 7, 2, 0, false) == 0 && a.seq == 7 && streq(a.text, "tail\nlast words\n") &&
                      a.next == 4,
              "restart: the ring is refilled from the log, numbering unchanged");
        feed(c, "after\n");
        CHECK(machine_console_read(c, 8, 4, 0, false) == 0 && streq(a.text, "after\n") && a.next == 5,
              "restart: new lines continue the numbering");
        CHECK(file_is(log, "boot\nline two\ntail\nlast words\nafter\n"), "restart: the log is appended to");
        c = machine_console_free(c);

        /* A first start again truncates it. */
        p.restarted = false;
        CHECK(machine_console_new(base, &p, &ops, &a, &c) == 0 && file_is(log, ""), "new: a first start truncates");
        CHECK(machine_console_read(c, 9, 0, 0, false) == 0 && a.next == 0, "new: numbering starts at 0");
        c = machine_console_free(c);

        /* An output dir that cannot be made fails with the reason. */
        p.out_dir = "/proc/no-such-dir";
        CHECK(machine_console_new(base, &p, &ops, &a, &c) < 0 && !c, "new: an unwritable output dir fails");

        (void) unlink(log);
        (void) rmdir(out);
        (void) rmdir(dir);
        event_base_free(base);
        return tap_done();
}
