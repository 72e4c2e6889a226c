/* SPDX-License-Identifier: MIT */
/*
 * test-machine-resume-agent: proves that vigil-resume (the agent a boot-cache
 * save leaves in the guest) reads its request, the guest's uptime and the
 * shares' /proc/mounts lines right, and turns mount options into mount(2)'s
 * flags and data as mount(8) would. It matters because the agent mounts the
 * shares and sets the clock of every restored guest: a wrong flag or a lost
 * option is a share mounted read-only or with another cache mode.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

#include "macro.h"

#define RESUME_AGENT_TEST 1
#include "../../workers/machine/resume-agent.c"
#include "tap.h"

int main(void) {
        uint64_t usec = 0, cs = 0;
        unsigned long flags = 0;
        char data[64];

        uint64_t cont = 7;
        CHECK(resume_parse_request("1700000000400000 1234\n", &usec, &cs, &cont) == 0 && usec == 1700000000400000ull &&
                      cs == 1234 && cont == 0,
              "the request: the host's time in microseconds and the uptime in centiseconds (no cont time: 0)");
        CHECK(resume_parse_request("1700000000400000 1234 1700000000100000\n", &usec, &cs, &cont) == 0 &&
                      usec == 1700000000400000ull && cs == 1234 && cont == 1700000000100000ull,
              "a third field: the host's time when the VM went on");
        CHECK(resume_parse_request("1700000000400000 0012", &usec, &cs, &cont) == 0 && cs == 12,
              "leading zeros (an uptime under 1 s) and no newline");
        CHECK(resume_parse_request("1700000000400000\n", &usec, &cs, &cont) < 0, "one number is a bad request");
        CHECK(resume_parse_request("17x 12\n", &usec, &cs, &cont) < 0, "a non-digit is a bad request");
        CHECK(resume_parse_request("", &usec, &cs, &cont) < 0, "an empty request is bad");
        CHECK(resume_parse_request("99999999999999999999999 1\n", &usec, &cs, &cont) < 0,
              "an overflowing number is bad");
        CHECK(resume_parse_request("1 2 3 4\n", &usec, &cs, &cont) < 0 &&
                      resume_parse_request("1 2 \n", &usec, &cs, &cont) < 0,
              "a fourth field, or a third that is no number, is bad");
        CHECK(resume_parse_uptime("5.39 4.12\n", &cs) == 0 && cs == 539, "/proc/uptime in centiseconds");
        CHECK(resume_parse_uptime("12345.07 1.00\n", &cs) == 0 && cs == 1234507, "a long uptime");
        CHECK(resume_parse_uptime("5 4\n", &cs) < 0 && resume_parse_uptime("5.3 4\n", &cs) < 0,
              "an uptime without two decimals is refused");

        CHECK(resume_clock_usec(1000000, 500, 512) == 1120000, "the time the job took is added");
        CHECK(resume_clock_usec(1000000, 512, 500) == 1000000, "an uptime going back adds nothing");
        CHECK(resume_clock_cont_usec(1700000000000000ull, 5000000000ull, 5250000000ull) == 1700000000250000ull,
              "with the host's time at cont: plus what the guest's monotonic clock counted since the agent waited "
              "(it stood still while the VM was paused)");
        CHECK(resume_clock_cont_usec(1700000000000000ull, 5000000000ull, 4000000000ull) == 1700000000000000ull,
              "a monotonic clock going back adds nothing");

        char escaped[] = "/tmp/a\\040b\\134c\\011d\\012";
        resume_unescape(escaped);
        CHECK(streq(escaped, "/tmp/a b\\c\td\n"), "octal escapes of /proc/mounts undone (%s)", escaped);
        char odd[] = "/x\\9y\\04";
        resume_unescape(odd);
        CHECK(streq(odd, "/x\\9y\\04"), "what is no escape stays as it is (%s)", odd);

        CHECK(resume_mount_options("rw,relatime,sync,dirsync,access=client,trans=virtio", &flags, data, sizeof data) ==
                              0 &&
                      flags == (MS_RELATIME | MS_SYNCHRONOUS | MS_DIRSYNC) &&
                      streq(data, "access=client,trans=virtio"),
              "a 9p share's options: flags and the file system's data (%lx, %s)", flags, data);
        CHECK(resume_mount_options("ro,nosuid,nodev,noexec,noatime,nodiratime,strictatime,lazytime,mand,nosymfollow",
                                   &flags, data, sizeof data) == 0 &&
                      flags == (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
                                MS_STRICTATIME | MS_LAZYTIME | MS_MANDLOCK | 256) &&
                      data[0] == 0,
              "every flag word /proc/mounts shows is a flag (%lx)", flags);
        CHECK(resume_mount_options("rwx,r,cache=loose", &flags, data, sizeof data) == 0 && flags == 0 &&
                      streq(data, "rwx,r,cache=loose"),
              "a word a flag's name begins with is data (%s)", data);
        CHECK(resume_mount_options("", &flags, data, sizeof data) == 0 && flags == 0 && data[0] == 0, "no options");
        CHECK(resume_mount_options("trans=virtio,msize=512000,version=9p2000.L,posixacl,cache=mmap", &flags, data,
                                   16) < 0,
              "data larger than the buffer is refused, not cut");

        char shares[] = "shared /tmp/shared 9p rw,relatime,trans=virtio 0 0\n"
                        "short line\n"
                        "xchg /tmp/x\\040y 9p rw 0 0";
        char *f[4];
        size_t pos = 0;
        CHECK(resume_next_share(shares, &pos, f) == 1 && streq(f[0], "shared") && streq(f[1], "/tmp/shared") &&
                      streq(f[2], "9p") && streq(f[3], "rw,relatime,trans=virtio"),
              "a /proc/mounts line split into source, target, type and options");
        CHECK(resume_next_share(shares, &pos, f) == -1, "a line with fewer fields is reported, to be skipped");
        CHECK(resume_next_share(shares, &pos, f) == 1 && streq(f[1], "/tmp/x\\040y") && streq(f[3], "rw"),
              "the last line without a newline");
        CHECK(resume_next_share(shares, &pos, f) == 0, "then the end");
        return tap_done();
}
