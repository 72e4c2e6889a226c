/* SPDX-License-Identifier: MIT */
/*
 * msg.h owns the vocabulary every vigil process speaks: the message types
 * (append-only, in numbered blocks), the decoded body of each type, and the
 * metadata table that says who may send what. Bodies travel as a msgpack
 * array of fields in declaration order; codec.c turns them into these structs
 * using the field lists in msg-table.c, so handlers never see msgpack.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bump whenever a body layout or the table changes; test-msg-table pins it. */
#define PROTO_VERSION 5

/* The supervisor numbers the requests it routes below this; a worker serving
 * brokered channels (MSG_CHANNEL) renumbers their requests at or above it, so
 * one seq names one request whichever way it came. */
#define ROUTE_SEQ_DIRECT 0x80000000u

/* Hard caps. A frame is one SOCK_SEQPACKET datagram. */
#define FRAME_MAX     (128u * 1024u)
#define CHUNK_MAX     (96u * 1024u) /* payload bytes in one MSG_CHUNK */
#define FRAME_FDS_MAX 4u
#define MSG_STR_MAX   4096u         /* default cap for a string field */
#define MSG_TEXT_MAX  (64u * 1024u) /* cap for long text fields (config JSON, commands) */
#define MSG_STRV_MAX  256u          /* elements in a string vector */
#define NAME_MAX_LEN  64u           /* machine / child names */

enum worker_kind {
        KIND_SUPERVISOR,
        KIND_MACHINE,
        KIND_SWITCH,
        KIND_SCRIPT,
        KIND_TEST,
        _KIND_MAX,
        _KIND_INVALID = -22,
};
#define KIND_BIT(k)   (1u << (k))
#define KINDS_WORKERS (KIND_BIT(KIND_MACHINE) | KIND_BIT(KIND_SWITCH) | KIND_BIT(KIND_SCRIPT) | KIND_BIT(KIND_TEST))

enum msg_dir {
        DIR_TO_WORKER = 1u << 0, /* supervisor -> worker */
        DIR_TO_SUP = 1u << 1,    /* worker -> supervisor */
};

/* How the supervisor treats a message arriving from a worker. */
enum msg_route {
        ROUTE_LOCAL,   /* handled by the supervisor itself */
        ROUTE_REQUEST, /* forwarded to the child named by field 0 (a string) */
        ROUTE_REPLY,   /* part of the answer to a routed request; goes back by seq */
};

enum msg_type {
        /* 1..99: generic, every kind */
        MSG_HELLO = 1,      /* w->s  first frame of every worker */
        MSG_CONFIG = 2,     /* s->w  after FD_RESTOREs: the worker's configuration */
        MSG_READY = 3,      /* w->s  worker finished start-up (or re-attach) */
        MSG_OK = 4,         /* reply: success without data */
        MSG_ERROR = 5,      /* reply: failure with code and message */
        MSG_CHUNK = 6,      /* reply part: a slice of a bulk payload, same seq as the request */
        MSG_PING = 7,       /* either direction */
        MSG_PONG = 8,       /* answer to PING, same seq */
        MSG_FD_RESTORE = 9, /* s->w  one stored fd handed back after a restart */
        MSG_EVENT = 10,     /* w->s  a structured event for the timeline/journal */

        /* 100..199: supervisor services */
        MSG_FD_STORE = 100,     /* w->s  keep this fd for me across restarts (fd attached) */
        MSG_FD_FORGET = 101,    /* w->s  drop a stored fd */
        MSG_SPAWN = 102,        /* w->s  start a process for me (stdin/out/err fds attached) */
        MSG_SPAWNED = 103,      /* s->w  reply to SPAWN */
        MSG_PROC_EXIT = 104,    /* s->w  a process spawned for this worker exited */
        MSG_PROC_KILL = 105,    /* w->s  signal a process spawned for this worker */
        MSG_PROC_LIST = 106,    /* s->w  after restart: a process still running for this worker */
        MSG_CHANNEL_OPEN = 107, /* w->s  broker a direct channel to the child named by field 0 */
        MSG_CHANNEL = 108,      /* s->w  one end of a brokered channel (fd attached): the reply to
                                 *       CHANNEL_OPEN (its seq) to the opener, seq 0 to the other end */

        /* 200..299: machine operations, requested by the script worker, routed by name */
        MSG_M_START = 200,
        MSG_M_CONNECT = 201,
        MSG_M_EXECUTE = 202,
        MSG_M_WAIT_UNTIL = 203,
        MSG_M_SHUTDOWN = 204,
        MSG_M_CRASH = 205,
        MSG_M_REBOOT = 206,
        MSG_M_WAIT_SHUTDOWN = 207,
        MSG_M_MONITOR = 208,
        MSG_M_QMP = 209,
        MSG_M_CONSOLE_READ = 210,
        MSG_M_SEND_CONSOLE = 211,
        MSG_M_STATE = 212,
        MSG_M_SET_LINK = 213,
        MSG_M_READ = 214,        /* an M_EXECUTE whose command only reads: replayed after a worker restart */
        MSG_M_EXEC_RESULT = 250, /* reply to EXECUTE / WAIT_UNTIL, after its CHUNKs */
        MSG_M_TEXT_RESULT = 251, /* reply to MONITOR / QMP / CONSOLE_READ, after its CHUNKs */
        MSG_M_STATE_RESULT = 252,

        /* 300..399: script worker */
        MSG_S_RESULT = 300,      /* w->s  the test verdict, just before the script worker exits */
        MSG_S_ADD_MACHINE = 301, /* w->s  create_machine(): add a machine worker to the live run; OK/ERROR */

        /* 400..499: switch operations, requested by the script worker, routed to "vlan<N>" */
        MSG_W_SET_LINK = 400, /* fault rule between two machines (or all: "") */
        MSG_W_CLEAR = 401,    /* remove rules */
        MSG_W_STATS = 402,    /* -> M_TEXT_RESULT with JSON counters after CHUNKs */

        /* 900..999: test worker (fault injection, routing benchmarks) */
        MSG_T_ECHO = 900,       /* routed to the child named by field 0 */
        MSG_T_ECHO_REPLY = 901, /* reply to ECHO */

        _MSG_TYPE_MAX = 1000,
        _MSG_TYPE_INVALID = -22,
};

struct msg_bytes {
        uint8_t *data;
        size_t len;
};

/* ---- bodies (field order = wire order) ---- */

struct msg_hello {
        uint64_t proto;
        char *kind; /* "machine", "switch", "script", "test" */
        char *name;
        int64_t pid;
};

struct msg_config {
        uint64_t restarts; /* 0 on first start; >0 means re-attach */
        char *run_id;
        char *json; /* kind-specific configuration, JSON text */
};

struct msg_empty {
        uint8_t unused_;
};

struct msg_error {
        int64_t code; /* negative errno, or a vigil-specific negative code */
        char *message;
};

struct msg_chunk {
        struct msg_bytes data;
};

struct msg_ping {
        struct msg_bytes payload;
};

struct msg_fd_restore {
        char *name;
};

struct msg_event {
        char *event;   /* short machine-readable event name, e.g. "booted" */
        char *message; /* human text */
};

struct msg_fd_store {
        char *name;
};

struct msg_fd_forget {
        char *name;
};

/* stdio says which of stdin(1)/stdout(2)/stderr(4) fds are attached, in that
 * order; missing ones are /dev/null. */
struct msg_spawn {
        char *name;
        char **argv;
        char **env; /* full environment of the new process */
        char *cwd;  /* "" for the supervisor's cwd */
        uint64_t stdio;
        bool machine; /* optional: this process is the machine itself (QEMU, the container), not a helper */
};

struct msg_spawned {
        char *name;
        int64_t pid;
};

struct msg_proc_exit {
        char *name;
        int64_t pid;
        int64_t code;   /* exit code, or -1 if killed by a signal */
        int64_t signal; /* signal number, or 0 */
};

struct msg_proc_kill {
        char *name;
        int64_t signal;
};

struct msg_proc_list {
        char *name;
        int64_t pid;
};

/* Machine requests: field 0 is always the machine name (routing key). */
struct msg_m_simple {
        char *machine;
};

struct msg_m_start {
        char *machine;
        bool allow_reboot;
};

struct msg_m_timeout {
        char *machine;
        int64_t timeout_ms; /* <0: no timeout */
};

struct msg_m_execute {
        char *machine;
        char *command;
        int64_t timeout_s; /* guest-side `timeout`; <0: none */
        bool check_return;
        bool check_output;
};

struct msg_m_wait_until {
        char *machine;
        char *command;
        int64_t timeout_s;
        bool want_success;
};

struct msg_m_text {
        char *machine;
        char *text; /* HMP command, QMP JSON, console bytes */
};

struct msg_m_console_read {
        char *machine;
        uint64_t from_line; /* index of the first line wanted */
        int64_t timeout_ms; /* wait this long for at least one line; 0: don't wait */
};

struct msg_m_set_link {
        char *machine;
        char *nic; /* device id, "" for the reference default (first VLAN NIC) */
        bool up;
};

struct msg_m_exec_result {
        int64_t status;
        uint64_t length; /* bytes delivered in the preceding CHUNKs */
};

struct msg_m_text_result {
        uint64_t length;
        uint64_t next_line; /* CONSOLE_READ: index after the last line returned */
};

struct msg_m_state_result {
        bool booted;
        bool connected;
        int64_t pid;
        char *backend;
        int64_t worker_pid; /* the machine worker's own pid (for fault-injection tests) */
};

/* A link rule applies to frames from machine @from to machine @to ("" = any);
 * with @both it applies in both directions. Probabilities are parts per million. */
struct msg_w_set_link {
        char *vlan_switch; /* routing key: the switch child, "vlan<N>" */
        char *from;
        char *to;
        bool both;
        bool drop;
        uint64_t loss_ppm;
        uint64_t dup_ppm;
        uint64_t delay_us;
        uint64_t jitter_us;
};

struct msg_w_clear {
        char *vlan_switch;
        char *from; /* "" = every rule */
        char *to;
        bool both;
};

struct msg_s_result {
        int64_t exit_code;
        char *message;
};

struct msg_s_add_machine {
        char *name;          /* the new machine (and child) name */
        char *start_command; /* a NixOS run-<name>-vm start script */
        bool keep_state;     /* keep an existing state directory (--keep-machine-state semantics) */
};

struct msg_channel_open {
        char *target;
};

struct msg_channel {
        char *peer; /* the child at the other end */
        char *kind; /* its kind */
};

struct msg_t_echo {
        char *target;
        struct msg_bytes payload;
};

/* ---- the table ---- */

enum field_type {
        FIELD_U64,
        FIELD_I64,
        FIELD_BOOL,
        FIELD_STR,  /* char *, NUL-terminated, no embedded NUL, <= max bytes */
        FIELD_BIN,  /* struct msg_bytes, <= max bytes */
        FIELD_STRV, /* char **, NULL-terminated, <= max elements of <= MSG_STR_MAX bytes */
        _FIELD_TYPE_MAX,
};

struct msg_field {
        const char *name;
        enum field_type type;
        size_t offset;
        size_t max;
        /* May be left out at the end of a body (decoded as 0 / false): lets a
         * message grow a trailing field that older senders do not write.
         * Only scalars, and only after every required field. */
        bool optional;
};

struct msg_info {
        const char *name;
        unsigned dir;     /* enum msg_dir bits */
        unsigned senders; /* KIND_BIT()s allowed to send it to the supervisor */
        enum msg_route route;
        unsigned target; /* ROUTE_REQUEST, CHANNEL_OPEN: KIND_BIT()s the named child may be */
        bool idempotent; /* ROUTE_REQUEST: may be replayed after the target restarts */
        bool final;      /* ROUTE_REPLY, or the supervisor's own answer (CHANNEL): ends the request */
        size_t size;     /* sizeof the body struct */
        const struct msg_field *fields;
        size_t n_fields;
};

/* NULL for an unknown or retired type. */
const struct msg_info *msg_info_get(int type);

/* Largest valid type value + 1, for table walks. */
int msg_type_limit(void);

const char *worker_kind_to_string(enum worker_kind k);
enum worker_kind worker_kind_from_string(const char *s);
