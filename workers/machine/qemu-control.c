/* SPDX-License-Identifier: MIT */
/*
 * qemu-control.c owns QEMU's two control connections: the HMP monitor (whose
 * listening socket the backend accepts) and QMP (connected here): reading
 * them, deciding when an answer is complete (qemu-hmp.c, qemu-qmp.c), their
 * request queues (qemu-requests.c), and the ring of QMP events a script
 * fetches with qmp(""). What a request was for stays with the owner, told
 * through its qemu_requests_ops.
 */
#include <json-c/json.h>

#include "fd-util.h"
#include "log.h"
#include "machine-util.h"
#include "qemu-control.h"
#include "qemu-hmp.h"
#include "qemu-qmp.h"

#define QMP_EVENTS_MAX 256u
#define IO_READ_MAX    (64u * 1024u)

struct qemu_control {
        struct event_base *base;
        const struct qemu_requests_ops *ops;
        void *userdata;

        int monitor_fd;
        int qmp_fd;
        struct event *monitor_ev;
        struct event *qmp_ev;

        struct qemu_hmp_reply hmp;
        struct qemu_requests hmp_requests;

        struct qemu_qmp_reader qmp;
        struct qemu_requests qmp_requests;
        char *events[QMP_EVENTS_MAX];
        size_t n_events;
};

/* Bytes nobody asked for (a reply to a request of a worker that died) must
 * not be taken for the next reply. */
static void drain_stale(int fd) {
        char buf[4096];
        for (unsigned i = 0; i < 256 && read(fd, buf, sizeof buf) > 0; i++)
                ;
}

/* HMP: each request starts with an empty reply, and without what a reply to
 * nobody left in the socket. */
static void hmp_activate(void *userdata, const struct qemu_request *r) {
        struct qemu_control *q = userdata;

        qemu_hmp_reply_done(&q->hmp);
        if (r->command)
                drain_stale(q->monitor_fd);
}

static void control_answered(void *userdata, const struct qemu_request *r, const char *reply, size_t len) {
        struct qemu_control *q = userdata;
        q->ops->answered(q->userdata, r, reply, len);
}

static bool control_failed(void *userdata, const struct qemu_request *r, int error, const char *why) {
        struct qemu_control *q = userdata;
        return q->ops->failed(q->userdata, r, error, why);
}

static void control_dropped(void *userdata, const struct qemu_request *r, const char *why) {
        struct qemu_control *q = userdata;
        q->ops->dropped(q->userdata, r, why);
}

static const struct qemu_requests_ops hmp_ops = {
        .activate = hmp_activate,
        .answered = control_answered,
        .failed = control_failed,
        .dropped = control_dropped,
};

static const struct qemu_requests_ops qmp_ops = {
        .answered = control_answered,
        .failed = control_failed,
        .dropped = control_dropped,
};

static void monitor_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu_control *q = arg;
        char buf[IO_READ_MAX];
        ssize_t n = qemu_requests_read(&q->hmp_requests, &q->monitor_ev, buf, sizeof buf);

        if (n <= 0)
                return;
        if (!q->hmp_requests.active)
                return; /* stray output */
        if (qemu_hmp_reply_append(&q->hmp, buf, (size_t) n) < 0) {
                qemu_hmp_reply_done(&q->hmp);
                qemu_requests_complete(&q->hmp_requests, -E2BIG, "QEMU monitor reply too large", NULL, 0);
                return;
        }
        if (qemu_hmp_reply_complete(&q->hmp)) {
                size_t len = 0;
                _cleanup_free_ char *text = qemu_hmp_reply_take(&q->hmp, &len);
                qemu_requests_complete(&q->hmp_requests, 0, NULL, text, len);
        }
}

static void qmp_event_push(struct qemu_control *q, const char *line) {
        if (q->n_events == QMP_EVENTS_MAX) {
                free(q->events[0]);
                memmove(q->events, q->events + 1, (QMP_EVENTS_MAX - 1) * sizeof q->events[0]);
                q->n_events--;
        }
        q->events[q->n_events] = strdup(line);
        if (q->events[q->n_events])
                q->n_events++;
}

static void qmp_line(struct qemu_control *q, char *line) {
        struct qemu_requests *mq = &q->qmp_requests;
        enum qemu_qmp_kind kind;
        json_object *obj = NULL;

        if (qemu_qmp_classify(line, &kind, &obj) < 0) {
                log_warning("Ignoring a QMP line that is not a JSON object: %.200s", line);
                return;
        }
        if (kind == QEMU_QMP_EVENT) {
                qmp_event_push(q, line);
        } else if (mq->active) {
                if (!mq->active->command && !json_object_object_get_ex(obj, "QMP", NULL))
                        qemu_requests_complete(mq, -EPROTO, "QMP greeting lacks \"QMP\"", NULL, 0);
                else if (mq->active->startup && kind == QEMU_QMP_ERROR) {
                        char why[512];
                        (void) snprintf(why, sizeof why, "QMP refused %.200s: %.200s", mq->active->command, line);
                        qemu_requests_complete(mq, -EPROTO, why, NULL, 0);
                } else
                        qemu_requests_complete(mq, 0, NULL, line, strlen(line));
        }
        json_object_put(obj);
}

static void qmp_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu_control *q = arg;
        uint8_t buf[IO_READ_MAX];
        ssize_t n = qemu_requests_read(&q->qmp_requests, &q->qmp_ev, buf, sizeof buf);

        if (n <= 0)
                return;
        for (size_t off = 0; off < (size_t) n;) {
                size_t used = 0;
                char *line = NULL;
                int r = qemu_qmp_reader_feed(&q->qmp, buf + off, (size_t) n - off, &used, &line);
                off += used;
                if (r == -E2BIG)
                        log_warning("Dropped a QMP line longer than %u bytes", QEMU_QMP_LINE_MAX);
                if (r == 1) {
                        qmp_line(q, line);
                        free(line);
                }
                if (q->qmp_fd < 0)
                        break;
        }
}

int qemu_control_new(struct event_base *base, const struct qemu_requests_ops *ops, void *userdata,
                     struct qemu_control **ret) {
        struct qemu_control *q = calloc(1, sizeof *q);

        if (!q)
                return -ENOMEM;
        q->base = base;
        q->ops = ops;
        q->userdata = userdata;
        q->monitor_fd = q->qmp_fd = -EBADF;
        qemu_hmp_reply_init(&q->hmp, 0);
        qemu_qmp_reader_init(&q->qmp, 0);
        if (qemu_requests_init(&q->hmp_requests, base, "the QEMU monitor", &q->monitor_fd, &hmp_ops, q) < 0 ||
            qemu_requests_init(&q->qmp_requests, base, "QMP", &q->qmp_fd, &qmp_ops, q) < 0) {
                qemu_control_free(q);
                return -ENOMEM;
        }
        *ret = q;
        return 0;
}

struct qemu_control *qemu_control_free(struct qemu_control *q) {
        if (!q)
                return NULL;
        qemu_control_close(q);
        qemu_requests_done(&q->hmp_requests);
        qemu_requests_done(&q->qmp_requests);
        qemu_hmp_reply_done(&q->hmp);
        qemu_qmp_reader_done(&q->qmp);
        for (size_t i = 0; i < q->n_events; i++)
                free(q->events[i]);
        free(q);
        return NULL;
}

int *qemu_control_monitor_fd(struct qemu_control *q) {
        return &q->monitor_fd;
}

int *qemu_control_qmp_fd(struct qemu_control *q) {
        return &q->qmp_fd;
}

void qemu_control_adopt_monitor(struct qemu_control *q, int fd) {
        safe_close(q->monitor_fd);
        q->monitor_fd = fd;
}

int qemu_control_connect_qmp(struct qemu_control *q, const char *dir, const char *name) {
        return machine_connect_unix(dir, name, &q->qmp_fd);
}

int qemu_control_watch(struct qemu_control *q, bool restored) {
        int r;

        if (restored) {
                if (q->monitor_fd >= 0)
                        drain_stale(q->monitor_fd);
                if (q->qmp_fd >= 0)
                        drain_stale(q->qmp_fd);
        }
        if (q->monitor_fd >= 0 &&
            (r = machine_event_watch(q->base, q->monitor_fd, EV_READ | EV_PERSIST, monitor_cb, q, &q->monitor_ev)) < 0)
                return r;
        if (q->qmp_fd >= 0 &&
            (r = machine_event_watch(q->base, q->qmp_fd, EV_READ | EV_PERSIST, qmp_cb, q, &q->qmp_ev)) < 0)
                return r;
        return 0;
}

int qemu_control_submit(struct qemu_control *q, enum qemu_control_channel channel, int kind, bool startup,
                        const char *command, uint32_t seq) {
        return qemu_requests_submit(channel == QEMU_HMP ? &q->hmp_requests : &q->qmp_requests, kind, startup, command,
                                    seq);
}

int qemu_control_submit_fd(struct qemu_control *q, int kind, bool startup, const char *command, int fd) {
        return qemu_requests_submit_fd(&q->qmp_requests, kind, startup, command, fd);
}

char *qemu_control_take_events(struct qemu_control *q, size_t *ret_len) {
        size_t len = 0;
        char *text, *p;

        for (size_t i = 0; i < q->n_events; i++)
                len += strlen(q->events[i]) + 1;
        text = malloc(len + 1);
        if (!text)
                return NULL;
        p = text;
        for (size_t i = 0; i < q->n_events; i++) {
                p = stpcpy(p, q->events[i]);
                *p++ = '\n';
                free(q->events[i]);
        }
        *p = 0;
        q->n_events = 0;
        *ret_len = len;
        return text;
}

int qemu_control_quit(struct qemu_control *q) {
        if (q->monitor_fd < 0)
                return -ENOTCONN;
        return machine_write_all(q->monitor_fd, "quit\n");
}

void qemu_control_fail_all(struct qemu_control *q, const char *why) {
        if (!q)
                return;
        qemu_requests_fail_all(&q->hmp_requests, why);
        qemu_requests_fail_all(&q->qmp_requests, why);
        qemu_hmp_reply_done(&q->hmp);
        qemu_qmp_reader_done(&q->qmp);
}

void qemu_control_close(struct qemu_control *q) {
        if (!q)
                return;
        machine_event_free(&q->monitor_ev);
        machine_event_free(&q->qmp_ev);
        q->monitor_fd = safe_close(q->monitor_fd);
        q->qmp_fd = safe_close(q->qmp_fd);
}
