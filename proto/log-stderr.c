/* SPDX-License-Identifier: MIT */
/*
 * log-stderr.c owns how vigil's own lines reach stderr. By default a record
 * is written at once, blocking. In bounded mode (log_stderr_bounded(): the
 * supervisor) nothing ever waits for the reader: records go through a file
 * description of this process's own, opened O_NONBLOCK on the same pipe or
 * terminal (the inherited one stays blocking, since the shell, the outer
 * process and an interactive REPL share it), or with MSG_DONTWAIT on a socket
 * (journald's stream); a regular file or /dev/null never stalls and keeps the
 * blocking path. A record that cannot go now waits in a FIFO of at most
 * LOG_STDERR_QUEUE_MAX bytes, so a reader paused for a while loses nothing;
 * past half of it the queue is congested while the reader still reads (a
 * producer that can wait, the children's relay, waits: a slow terminal gets
 * every line). Once it is full, new records are dropped whole until the queue
 * has drained to half, and then one line says how many were dropped and
 * where the full record is. On a pipe the last LOG_STDERR_RESERVE bytes
 * are kept free, so that line fits even at exit, when nobody has read at all.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "log-stderr.h"
#include "macro.h"

#define LOG_STDERR_RESERVE     1024u               /* of a pipe's capacity, for the last "dropped" line */
#define LOG_STDERR_RETRY_MSEC  20                  /* a pipe with room, but not for the next record */
#define LOG_STDERR_POLL_MSEC   100                 /* one wait of log_stderr_drain() */
#define LOG_STDERR_DRAIN_TOTAL (30 * USEC_PER_SEC) /* log_stderr_drain(), however fast the reader */
#define LOG_STDERR_STALL_USEC  (2 * USEC_PER_SEC)  /* a reader this long without reading has stopped */

struct log_stderr_record {
        struct log_stderr_record *next;
        size_t len, off;
        uint64_t lines; /* lines it holds; for a "dropped" notice, the lines it reports */
        bool notice;
        char text[];
};

static struct {
        pthread_mutex_t lock;
        bool bounded;
        int fd;             /* our own description of stderr (bounded), else STDERR_FILENO */
        bool sock, pipe;    /* send(MSG_DONTWAIT); keep LOG_STDERR_RESERVE free */
        bool wait_writable; /* why the last flush stopped: EAGAIN (else: the reserve) */
        bool draining;      /* log_stderr_drain(): nobody to tell */
        struct log_stderr_record *head, **tail;
        size_t queued;          /* bytes not yet written */
        uint64_t last_progress; /* the reader last took bytes (or the queue began), CLOCK_MONOTONIC */
        uint64_t dropped;       /* lines dropped since the last notice was queued */
        uint64_t dropped_total;
        char record[512];
        void (*waiter)(int fd, bool writable, void *userdata);
        void *waiter_userdata;
} q = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .fd = STDERR_FILENO,
        .tail = &q.head,
};

static uint64_t count_lines(const char *text, size_t len) {
        uint64_t n = 0;

        for (const char *p = text; (p = memchr(p, '\n', len - (size_t) (p - text))); p++)
                n++;
        return MAX(n, 1u);
}

static void write_all(int fd, const char *text, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, text, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                text += n;
                len -= (size_t) n;
        }
}

/* One non-blocking write: bytes written or -errno. */
static ssize_t out(const char *text, size_t len) {
        ssize_t n;

        do
                n = q.sock ? send(q.fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL) : write(q.fd, text, len);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

/* Room in the pipe for @len more bytes and the reserve (always, if not a pipe or not known). */
static bool room_for(size_t len) {
        int size, used = 0;

        if (!q.pipe)
                return true;
        size = fcntl(q.fd, F_GETPIPE_SZ);
        if (size <= 0 || ioctl(q.fd, FIONREAD, &used) < 0)
                return true;
        return used == 0 || (size_t) used + len + LOG_STDERR_RESERVE <= (size_t) size;
}

static int enqueue(const char *text, size_t len, uint64_t lines, bool notice) {
        struct log_stderr_record *r = malloc(sizeof(*r) + len);

        if (!r)
                return -ENOMEM;
        *r = (struct log_stderr_record){.len = len, .lines = lines, .notice = notice};
        memcpy(r->text, text, len);
        if (!q.head)
                q.last_progress = now_usec();
        *q.tail = r;
        q.tail = &r->next;
        q.queued += len;
        return 0;
}

static void dequeue(void) {
        struct log_stderr_record *r = q.head;

        q.head = r->next;
        if (!q.head)
                q.tail = &q.head;
        q.queued -= r->len - r->off;
        free(r);
}

static int notice_format(char *buf, size_t size, uint64_t lines) {
        int n = snprintf(buf, size, "vigil: %llu line%s dropped: stderr was not read fast enough; %s\n",
                         (unsigned long long) lines, lines == 1 ? "" : "s",
                         q.record[0] ? q.record : "see the journal");
        return MIN(n, (int) size - 1);
}

/* Lines were dropped and the queue has drained to half: say so, in their place. */
static void notice_if_drained(void) {
        char buf[sizeof(q.record) + 160];

        if (q.dropped == 0 || q.queued > LOG_STDERR_QUEUE_MAX / 2)
                return;
        if (enqueue(buf, (size_t) notice_format(buf, sizeof(buf), q.dropped), q.dropped, true) >= 0)
                q.dropped = 0;
}

static int flush_locked(void) {
        while (q.head) {
                struct log_stderr_record *r = q.head;
                size_t left = r->len - r->off;
                ssize_t n;

                /* A record starts only if it fits whole beside the reserve. */
                if (r->off == 0 && !room_for(left)) {
                        q.wait_writable = false;
                        goto wait;
                }
                n = out(r->text + r->off, left);
                if (n == -EAGAIN) {
                        q.wait_writable = true;
                        goto wait;
                }
                if (n < 0) /* stderr is gone (EPIPE, EIO): there is nobody to tell */
                        n = (ssize_t) left;
                r->off += (size_t) n;
                q.queued -= (size_t) n;
                q.last_progress = now_usec();
                if (r->off == r->len)
                        dequeue();
                notice_if_drained();
        }
        return 0;
wait:
        if (q.waiter && !q.draining)
                q.waiter(q.fd, q.wait_writable, q.waiter_userdata);
        return 1;
}

int log_stderr_flush(void) {
        int r;

        pthread_mutex_lock(&q.lock);
        r = flush_locked();
        pthread_mutex_unlock(&q.lock);
        return r;
}

void log_stderr_write(const char *text, size_t len) {
        uint64_t lines;

        if (len == 0)
                return;
        pthread_mutex_lock(&q.lock);
        if (!q.bounded) {
                write_all(STDERR_FILENO, text, len);
                goto unlock;
        }
        lines = count_lines(text, len);
        notice_if_drained();
        if (q.dropped > 0 || q.queued + len > LOG_STDERR_QUEUE_MAX || enqueue(text, len, lines, false) < 0) {
                q.dropped += lines;
                q.dropped_total += lines;
                goto unlock;
        }
        (void) flush_locked();
unlock:
        pthread_mutex_unlock(&q.lock);
}

void log_stderr_set_waiter(void (*fn)(int fd, bool writable, void *userdata), void *userdata) {
        pthread_mutex_lock(&q.lock);
        q.waiter = fn;
        q.waiter_userdata = userdata;
        pthread_mutex_unlock(&q.lock);
}

/* Give up on what is queued: drop it and say so, in the reserve kept for this. */
static void give_up_locked(void) {
        char buf[sizeof(q.record) + 160];
        uint64_t lines = q.dropped;
        bool cut = q.head && q.head->off > 0;
        size_t len = 0;

        while (q.head) {
                if (q.head->off == 0) {
                        lines += q.head->lines;
                        q.dropped_total += q.head->notice ? 0 : q.head->lines;
                }
                dequeue();
        }
        q.dropped = 0;
        if (lines == 0)
                return;
        if (cut) /* only a record longer than the pipe is ever written in part */
                buf[len++] = '\n';
        len += (size_t) notice_format(buf + len, sizeof(buf) - len, lines);
        (void) out(buf, len);
}

void log_stderr_drain(uint64_t idle_usec) {
        uint64_t start = now_usec(), last = start;
        size_t before;

        pthread_mutex_lock(&q.lock);
        if (!q.bounded)
                goto unlock;
        q.draining = true;
        before = q.queued;
        while (flush_locked() > 0) {
                uint64_t now = now_usec();

                if (q.queued < before) {
                        before = q.queued;
                        last = now;
                }
                if (now - last >= idle_usec || now - start >= LOG_STDERR_DRAIN_TOTAL)
                        break;
                if (q.wait_writable)
                        (void) poll(&(struct pollfd){.fd = q.fd, .events = POLLOUT}, 1, LOG_STDERR_POLL_MSEC);
                else
                        (void) poll(NULL, 0, LOG_STDERR_RETRY_MSEC);
        }
        give_up_locked();
        q.draining = false;
unlock:
        pthread_mutex_unlock(&q.lock);
}

static void drain_at_exit(void) {
        log_stderr_drain(USEC_PER_SEC);
}

int log_stderr_bounded(const char *record) {
        struct stat st;
        int fd, r = 0;

        pthread_mutex_lock(&q.lock);
        if (record)
                snprintf(q.record, sizeof(q.record), "%s", record);
        if (q.bounded)
                goto unlock;
        if (fstat(STDERR_FILENO, &st) < 0) {
                r = -errno;
                goto unlock;
        }
        if (S_ISSOCK(st.st_mode)) {
                fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
                q.sock = true;
        } else if (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && isatty(STDERR_FILENO))) {
                /* A new open file description of the same pipe or terminal: O_NONBLOCK on it
                 * changes nothing for the processes sharing the inherited one. */
                fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                q.pipe = S_ISFIFO(st.st_mode);
        } else
                goto unlock; /* a file or /dev/null: blocking writes never stall */
        if (fd < 0) {
                r = -errno;
                q.sock = q.pipe = false;
                goto unlock;
        }
        q.fd = fd;
        q.bounded = true;
        (void) atexit(drain_at_exit);
unlock:
        pthread_mutex_unlock(&q.lock);
        return r;
}

bool log_stderr_congested(void) {
        bool r;

        pthread_mutex_lock(&q.lock);
        r = q.bounded && q.queued > LOG_STDERR_QUEUE_MAX / 2 && now_usec() - q.last_progress < LOG_STDERR_STALL_USEC;
        pthread_mutex_unlock(&q.lock);
        return r;
}

bool log_stderr_is_bounded(void) {
        return q.bounded;
}

uint64_t log_stderr_dropped_total(void) {
        return q.dropped_total;
}
