/* SPDX-License-Identifier: MIT */
/*
 * script-python.c owns the embedded CPython of vigil-script: its
 * configuration (isolated from the user's PYTHON* environment, UTF-8 stdio,
 * Debian's or nix's stdlib and site-packages, vigil's package dir first) and
 * the `_vigil` module:
 *
 *   _vigil.request(type, machine, **fields) -> (reply_type, fields: dict, data: bytes)
 *       One routed request. The body is filled by walking the message table
 *       (msg_info_get(type)->fields), so Python names fields exactly as
 *       proto/msg.h does. The GIL is released while the reply is awaited, so
 *       other Python threads (start_all, console followers) run meanwhile;
 *       the main thread wakes every 200 ms to let Ctrl-C raise. The keyword
 *       wait_ms (not a message field) bounds the wait: past it the request is
 *       abandoned (its late reply is dropped) and RemoteError(-ETIMEDOUT)
 *       raised; failure diagnostics use it so that a hung guest cannot hang
 *       them. Raises _vigil.RemoteError(code, message) for MSG_ERROR and
 *       _vigil.ChannelLost(code, message) once the supervisor is gone.
 *   _vigil.event(name, message)          MSG_EVENT for the supervisor's timeline
 *   _vigil.journal_subtest(name, what)   journal a subtest boundary (begin/end/failed)
 *   _vigil.msg_types                     {"M_EXECUTE": 202, ...}
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "script-python.h"

#ifndef VIGIL_PYTHON_HOME
#define VIGIL_PYTHON_HOME ""
#endif

#define MAIN_THREAD_POLL_MS 200

static struct script_channel *vigil_channel;
static unsigned long main_thread_ident;
static PyObject *remote_error, *channel_lost;

static PyObject *raise_pair(PyObject *type, long long code, const char *message) {
        PyObject *exc = PyObject_CallFunction(type, "Ls", code, message ? message : "");

        if (exc) {
                PyErr_SetObject(type, exc);
                Py_DECREF(exc);
        }
        return NULL;
}

static PyObject *raise_lost(int r) {
        const char *reason = NULL;

        (void) script_channel_lost(vigil_channel, &reason);
        return raise_pair(channel_lost, r, reason ? reason : strerror(-r));
}

/* Store one keyword argument into the body at @f. Strings are borrowed from
 * the Python objects, which the caller's kwargs keep alive for the call. */
static int field_from_python(const struct msg_info *info, const struct msg_field *f, PyObject *v, void *body) {
        char *p = (char *) body + f->offset;

        switch (f->type) {
        case FIELD_U64: {
                unsigned long long x = PyLong_AsUnsignedLongLong(v);

                if (x == (unsigned long long) -1 && PyErr_Occurred())
                        return -1;
                *(uint64_t *) p = x;
                return 0;
        }
        case FIELD_I64: {
                long long x = PyLong_AsLongLong(v);

                if (x == -1 && PyErr_Occurred())
                        return -1;
                *(int64_t *) p = x;
                return 0;
        }
        case FIELD_BOOL: {
                int x = PyObject_IsTrue(v);

                if (x < 0)
                        return -1;
                *(bool *) p = x;
                return 0;
        }
        case FIELD_STR: {
                Py_ssize_t n;
                const char *s = PyUnicode_AsUTF8AndSize(v, &n);

                if (!s)
                        return -1;
                if ((size_t) n != strlen(s)) {
                        PyErr_Format(PyExc_ValueError, "%s: field '%s' contains a NUL character", info->name, f->name);
                        return -1;
                }
                if (f->max && (size_t) n > f->max) {
                        PyErr_Format(PyExc_ValueError, "%s: field '%s' is %zd bytes, the protocol allows at most %zu",
                                     info->name, f->name, n, f->max);
                        return -1;
                }
                *(const char **) p = s;
                return 0;
        }
        case FIELD_BIN: {
                char *s;
                Py_ssize_t n;

                if (PyBytes_AsStringAndSize(v, &s, &n) < 0)
                        return -1;
                if (f->max && (size_t) n > f->max) {
                        PyErr_Format(PyExc_ValueError, "%s: field '%s' is %zd bytes, the protocol allows at most %zu",
                                     info->name, f->name, n, f->max);
                        return -1;
                }
                *(struct msg_bytes *) p = (struct msg_bytes){.data = (uint8_t *) s, .len = (size_t) n};
                return 0;
        }
        case FIELD_STRV:
        case _FIELD_TYPE_MAX:
                break;
        }
        PyErr_Format(PyExc_TypeError, "%s: field '%s' cannot be sent from Python", info->name, f->name);
        return -1;
}

static PyObject *field_to_python(const struct msg_field *f, const void *body) {
        const char *p = (const char *) body + f->offset;

        switch (f->type) {
        case FIELD_U64:
                return PyLong_FromUnsignedLongLong(*(const uint64_t *) p);
        case FIELD_I64:
                return PyLong_FromLongLong(*(const int64_t *) p);
        case FIELD_BOOL:
                return PyBool_FromLong(*(const bool *) p);
        case FIELD_STR: {
                const char *s = *(char *const *) p;

                return PyUnicode_DecodeUTF8(s ? s : "", s ? (Py_ssize_t) strlen(s) : 0, "replace");
        }
        case FIELD_BIN: {
                const struct msg_bytes *b = (const struct msg_bytes *) p;

                return PyBytes_FromStringAndSize((const char *) b->data, (Py_ssize_t) b->len);
        }
        case FIELD_STRV: {
                char *const *v = *(char **const *) p;
                PyObject *list = PyList_New(0);

                for (size_t i = 0; list && v && v[i]; i++) {
                        PyObject *s = PyUnicode_DecodeUTF8(v[i], (Py_ssize_t) strlen(v[i]), "replace");

                        if (!s || PyList_Append(list, s) < 0) {
                                Py_XDECREF(s);
                                Py_CLEAR(list);
                                break;
                        }
                        Py_DECREF(s);
                }
                return list;
        }
        case _FIELD_TYPE_MAX:
                break;
        }
        PyErr_SetString(PyExc_TypeError, "unknown field type in the message table");
        return NULL;
}

static PyObject *body_to_dict(const struct msg_info *info, const void *body) {
        PyObject *d = PyDict_New();

        for (size_t i = 0; d && i < info->n_fields; i++) {
                PyObject *v = field_to_python(&info->fields[i], body);

                if (!v || PyDict_SetItemString(d, info->fields[i].name, v) < 0)
                        Py_CLEAR(d);
                Py_XDECREF(v);
        }
        return d;
}

static PyObject *reply_to_python(struct script_pending *p, size_t reply_max) {
        const struct frame *f = &p->final;

        if (p->error)
                return raise_lost(p->error);
        if (p->failed)
                return raise_pair(remote_error, p->failed, p->failed_message ?: strerror(-p->failed));
        if (f->type == MSG_ERROR) {
                const struct msg_error *e = f->body;

                return raise_pair(remote_error, e->code, e->message);
        }
        if (p->overflow) {
                char msg[160];

                snprintf(msg, sizeof(msg), "the reply was larger than %zu bytes (vigil's cap on one reply)",
                         reply_max);
                return raise_pair(remote_error, -EFBIG, msg);
        }
        PyObject *fields = body_to_dict(f->info, f->body);
        if (!fields)
                return NULL;
        return Py_BuildValue("iNy#", f->type, fields, p->data ? (const char *) p->data : "", (Py_ssize_t) p->len);
}

static PyObject *vigil_request(PyObject *self, PyObject *args, PyObject *kwargs) {
        const struct msg_info *info;
        struct script_pending *p = NULL;
        _cleanup_free_ void *body = NULL;
        const char *machine;
        Py_ssize_t used = 0;
        long long wait_ms = -1;
        unsigned long long deadline = 0;
        int type, r;
        bool is_main;

        if (!PyArg_ParseTuple(args, "is:request", &type, &machine))
                return NULL;
        info = msg_info_get(type);
        /* Routed requests, and the supervisor's own services to the script (S_ADD_MACHINE):
         * both are answered by seq with OK/ERROR or a result. */
        if (!info || !(info->route == ROUTE_REQUEST || (info->route == ROUTE_LOCAL && type != MSG_S_RESULT)) ||
            !(info->senders & KIND_BIT(KIND_SCRIPT)) || info->n_fields == 0 || info->fields[0].type != FIELD_STR)
                return PyErr_Format(PyExc_ValueError, "message type %d is not a request", type);
        if (!vigil_channel)
                return raise_pair(channel_lost, -ENOTCONN, "no supervisor channel");

        PyObject *w = kwargs ? PyDict_GetItemString(kwargs, "wait_ms") : NULL;
        if (w) {
                used++;
                if (w != Py_None) {
                        wait_ms = PyLong_AsLongLong(w);
                        if (wait_ms == -1 && PyErr_Occurred())
                                return NULL;
                        if (wait_ms < 0 || wait_ms > INT_MAX)
                                return PyErr_Format(PyExc_ValueError, "wait_ms must be between 0 and %d", INT_MAX);
                }
        }

        body = calloc(1, info->size);
        if (!body)
                return PyErr_NoMemory();
        for (size_t i = 0; i < info->n_fields; i++) {
                const struct msg_field *f = &info->fields[i];
                PyObject *v;

                if (i == 0) {
                        if (strlen(machine) > f->max)
                                return PyErr_Format(PyExc_ValueError, "machine name '%s' is too long", machine);
                        *(const char **) ((char *) body + f->offset) = machine;
                        continue;
                }
                v = kwargs ? PyDict_GetItemString(kwargs, f->name) : NULL;
                if (!v)
                        return PyErr_Format(PyExc_TypeError, "%s needs the field '%s'", info->name, f->name);
                if (field_from_python(info, f, v, body) < 0)
                        return NULL;
                used++;
        }
        if (kwargs && PyDict_Size(kwargs) != used)
                return PyErr_Format(PyExc_TypeError, "%s: unknown field among %R", info->name, kwargs);

        Py_BEGIN_ALLOW_THREADS r = script_channel_send_request(vigil_channel, type, body, &p);
        Py_END_ALLOW_THREADS if (r == -EPIPE || r == -ECONNRESET || r == -EPROTO ||
                                 r == -ENOTCONN) return raise_lost(r);
        if (r == -E2BIG)
                return raise_pair(remote_error, r, "the request does not fit into one frame");
        if (r < 0)
                return PyErr_Format(PyExc_OSError, "cannot send %s: %s", info->name, strerror(-r));

        /* Only the main thread gets Python's signals: let it see Ctrl-C. */
        is_main = PyThread_get_thread_ident() == main_thread_ident;
        if (wait_ms >= 0)
                deadline = now_usec() + (unsigned long long) wait_ms * USEC_PER_MSEC;
        for (;;) {
                int slice = is_main ? MAIN_THREAD_POLL_MS : -1;

                if (wait_ms >= 0) {
                        unsigned long long now = now_usec();
                        int left = now < deadline ? (int) ((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC) : 0;

                        slice = slice < 0 ? left : MIN(slice, left);
                }
                Py_BEGIN_ALLOW_THREADS r = script_channel_wait(vigil_channel, p, slice);
                Py_END_ALLOW_THREADS if (r == 0) break;
                if (PyErr_CheckSignals() < 0) {
                        script_channel_release(vigil_channel, p);
                        return NULL;
                }
                if (wait_ms >= 0 && now_usec() >= deadline) {
                        script_channel_release(vigil_channel, p);
                        return raise_pair(remote_error, -ETIMEDOUT, "no answer in time (wait_ms)");
                }
        }

        PyObject *result = reply_to_python(p, SCRIPT_REPLY_MAX);
        script_channel_release(vigil_channel, p);
        return result;
}

static PyObject *vigil_event(PyObject *self, PyObject *args) {
        const char *name, *message;
        char ev[NAME_MAX_LEN + 1], msg[MSG_STR_MAX + 1];
        int r;

        if (!PyArg_ParseTuple(args, "ss:event", &name, &message))
                return NULL;
        if (!vigil_channel)
                Py_RETURN_NONE;
        snprintf(ev, sizeof(ev), "%s", name);
        snprintf(msg, sizeof(msg), "%s", message);
        Py_BEGIN_ALLOW_THREADS r =
                script_channel_send(vigil_channel, MSG_EVENT, &(struct msg_event){.event = ev, .message = msg});
        Py_END_ALLOW_THREADS if (r < 0) log_debug_errno(r, "Failed to send event %s", ev);
        Py_RETURN_NONE;
}

static PyObject *vigil_journal_subtest(PyObject *self, PyObject *args) {
        const char *name, *what;
        _cleanup_free_ char *field = NULL;

        if (!PyArg_ParseTuple(args, "ss:journal_subtest", &name, &what))
                return NULL;
        /* On stderr these would break the reference log format; journal only.
         * VIGIL_SUBTEST goes into these entries only: log_set_field() is not
         * safe while the channel thread may be logging. */
        if (!log_to_journal())
                Py_RETURN_NONE;
        if (asprintf(&field, "VIGIL_SUBTEST=%s", name) < 0)
                return PyErr_NoMemory();
        const char *extra[] = {field, NULL};
        if (streq(what, "begin")) {
                log_event(LOG_INFO, LOG_EVENT_SUBTEST_BEGIN, extra, "Subtest '%s' begins", name);
        } else {
                log_event(streq(what, "end") ? LOG_INFO : LOG_WARNING, LOG_EVENT_SUBTEST_END, extra, "Subtest '%s' %s",
                          name, streq(what, "end") ? "passed" : "failed");
        }
        Py_RETURN_NONE;
}

static PyMethodDef vigil_methods[] = {
        {"request", (PyCFunction) (void (*)(void)) vigil_request, METH_VARARGS | METH_KEYWORDS,
         "request(type, machine, **fields) -> (reply_type, fields, data)"},
        {"event", vigil_event, METH_VARARGS, "event(name, message): a timeline event for the supervisor"},
        {"journal_subtest", vigil_journal_subtest, METH_VARARGS, "journal_subtest(name, what)"},
        {},
};

static struct PyModuleDef vigil_module = {
        PyModuleDef_HEAD_INIT, .m_name = "_vigil",         .m_doc = "vigil-script's supervisor channel",
        .m_size = -1,          .m_methods = vigil_methods,
};

static PyObject *vigil_module_init(void) {
        PyObject *m = PyModule_Create(&vigil_module), *types;

        if (!m)
                return NULL;
        main_thread_ident = PyThread_get_thread_ident();
        remote_error = PyErr_NewException("_vigil.RemoteError", NULL, NULL);
        channel_lost = PyErr_NewException("_vigil.ChannelLost", NULL, NULL);
        types = PyDict_New();
        if (!remote_error || !channel_lost || !types)
                goto fail;
        for (int t = 0; t < msg_type_limit(); t++) {
                const struct msg_info *info = msg_info_get(t);
                PyObject *v;

                if (!info)
                        continue;
                v = PyLong_FromLong(t);
                if (!v || PyDict_SetItemString(types, info->name, v) < 0) {
                        Py_XDECREF(v);
                        goto fail;
                }
                Py_DECREF(v);
        }
        Py_INCREF(remote_error);
        Py_INCREF(channel_lost);
        if (PyModule_AddObject(m, "RemoteError", remote_error) < 0 ||
            PyModule_AddObject(m, "ChannelLost", channel_lost) < 0 || PyModule_AddObject(m, "msg_types", types) < 0)
                goto fail;
        return m;
fail:
        Py_XDECREF(types);
        Py_DECREF(m);
        return NULL;
}

/* PyImport_AppendInittab wants this exact signature. */
static PyObject *PyInit__vigil(void) {
        return vigil_module_init();
}

static int sys_path_add(PyObject *sys_path, const char *dir, bool front) {
        PyObject *s = PyUnicode_DecodeFSDefault(dir);
        int r;

        if (!s)
                return -1;
        r = front ? PyList_Insert(sys_path, 0, s) : PyList_Append(sys_path, s);
        Py_DECREF(s);
        return r;
}

int script_python_init(const char *pkgdir, struct script_channel *ch) {
        PyPreConfig pre;
        PyConfig config;
        PyStatus status;
        PyObject *sys_path, *runner;
        const char *pythonpath;

        vigil_channel = ch;

        /* UTF-8 stdio whatever the locale: guest output is logged verbatim. */
        PyPreConfig_InitIsolatedConfig(&pre);
        pre.utf8_mode = 1;
        status = Py_PreInitialize(&pre);
        if (PyStatus_Exception(status)) {
                log_error("Failed to pre-initialise Python: %s", status.err_msg ? status.err_msg : "?");
                return -EINVAL;
        }

        if (PyImport_AppendInittab("_vigil", PyInit__vigil) < 0)
                return -ENOMEM;

        /* Isolated: PYTHONHOME/PYTHONSTARTUP/user site must not change how a
         * test runs. The bits that matter are turned back on explicitly. */
        PyConfig_InitIsolatedConfig(&config);
        config.install_signal_handlers = 1; /* Ctrl-C raises KeyboardInterrupt in --interactive */
        config.faulthandler = 1;            /* a crash prints every thread's Python stack */
        config.site_import = 1;             /* dist-packages: extra Python packages from the distro */
        config.user_site_directory = 0;
        config.safe_path = 1;
        status = PyConfig_SetBytesString(&config, &config.program_name, "vigil-script");
        if (!PyStatus_Exception(status) && VIGIL_PYTHON_HOME[0])
                status = PyConfig_SetBytesString(&config, &config.home, VIGIL_PYTHON_HOME);
        if (!PyStatus_Exception(status))
                status = PyConfig_SetBytesArgv(&config, 1, (char *[]){(char *) "vigil-script", NULL});
        if (!PyStatus_Exception(status))
                status = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(status)) {
                log_error("Failed to initialise Python: %s", status.err_msg ? status.err_msg : "?");
                return -EINVAL;
        }

        sys_path = PySys_GetObject("path"); /* borrowed */
        if (!sys_path || sys_path_add(sys_path, pkgdir, true) < 0)
                goto fail;
        /* PYTHONPATH is the one environment input honoured (nix passes
         * extraPythonPackages this way); after the stdlib, never before. */
        pythonpath = getenv("PYTHONPATH");
        if (pythonpath && *pythonpath) {
                _cleanup_free_ char *copy = strdup(pythonpath);
                char *save = NULL;

                if (!copy)
                        goto fail;
                for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
                        if (*d && sys_path_add(sys_path, d, false) < 0)
                                goto fail;
        }

        runner = PyImport_ImportModule("vigil._runner");
        if (!runner)
                goto fail;
        Py_DECREF(runner);
        return 0;
fail:
        log_error("Failed to load vigil's Python package from %s:", pkgdir);
        PyErr_Print();
        return -ENOENT;
}

int script_python_run(const char *config_json, int *ret_code, char **ret_message) {
        PyObject *runner, *main_fn, *res = NULL;
        int code;
        const char *msg;

        runner = PyImport_ImportModule("vigil._runner");
        main_fn = runner ? PyObject_GetAttrString(runner, "main") : NULL;
        if (main_fn)
                res = PyObject_CallFunction(main_fn, "s", config_json);
        Py_XDECREF(main_fn);
        Py_XDECREF(runner);
        if (!res) {
                /* PyErr_Print() would exit the process on SystemExit. */
                if (PyErr_ExceptionMatches(PyExc_SystemExit))
                        PyErr_Clear();
                else
                        PyErr_Print();
                return -EIO;
        }
        if (!PyArg_ParseTuple(res, "is", &code, &msg)) {
                PyErr_Print();
                Py_DECREF(res);
                return -EIO;
        }
        *ret_message = strdup(msg);
        *ret_code = code;
        Py_DECREF(res);
        return *ret_message ? 0 : -ENOMEM;
}
