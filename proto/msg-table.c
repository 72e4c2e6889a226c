/* SPDX-License-Identifier: MIT */
/*
 * msg-table.c owns the one table describing every message: its name, which
 * direction it may travel, which worker kinds may send it, how the supervisor
 * routes it, and the ordered field list the codec uses. Adding a message means
 * adding a row here, a struct in msg.h and a line in docs/protocol.md;
 * test-msg-table walks the table and pins PROTO_VERSION to it.
 */
#include <stddef.h>

#include "macro.h"
#include "msg.h"

/* The table is laid out by hand, one message per entry. */
/* clang-format off */
#define F(st, member, t, mx) { #member, (t), offsetof(struct st, member), (mx), false }
#define F_OPTIONAL(st, member, t) { #member, (t), offsetof(struct st, member), 0, true }
#define FIELDS(st, ...)                                                                            \
        .size = sizeof(struct st), .fields = (const struct msg_field[]){ __VA_ARGS__ },            \
        .n_fields = sizeof((const struct msg_field[]){ __VA_ARGS__ }) / sizeof(struct msg_field)
#define NO_FIELDS .size = sizeof(struct msg_empty), .fields = NULL, .n_fields = 0

#define W KINDS_WORKERS
#define MACHINE_REQ(nm, st, idem, ...)                                                             \
        {                                                                                          \
                .name = nm, .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = KIND_BIT(KIND_SCRIPT),   \
                .route = ROUTE_REQUEST, .target = KIND_BIT(KIND_MACHINE), .idempotent = idem,      \
                FIELDS(st, __VA_ARGS__)                                                            \
        }
#define REPLY(nm, fin, st, ...)                                                                    \
        {                                                                                          \
                .name = nm, .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = W, .route = ROUTE_REPLY, \
                .final = fin, FIELDS(st, __VA_ARGS__)                                              \
        }

/* M_EXECUTE and M_READ: one body, two replay rules. */
#define EXECUTE_FIELDS                                                                             \
        F(msg_m_execute, machine, FIELD_STR, NAME_MAX_LEN),                                        \
        F(msg_m_execute, command, FIELD_STR, MSG_TEXT_MAX),                                        \
        F(msg_m_execute, timeout_s, FIELD_I64, 0),                                                 \
        F(msg_m_execute, check_return, FIELD_BOOL, 0),                                             \
        F(msg_m_execute, check_output, FIELD_BOOL, 0)

static const struct msg_info table[] = {
        [MSG_HELLO] = { .name = "HELLO", .dir = DIR_TO_SUP, .senders = W,
                        FIELDS(msg_hello, F(msg_hello, proto, FIELD_U64, 0),
                               F(msg_hello, kind, FIELD_STR, NAME_MAX_LEN),
                               F(msg_hello, name, FIELD_STR, NAME_MAX_LEN),
                               F(msg_hello, pid, FIELD_I64, 0)) },
        [MSG_CONFIG] = { .name = "CONFIG", .dir = DIR_TO_WORKER,
                         FIELDS(msg_config, F(msg_config, restarts, FIELD_U64, 0),
                                F(msg_config, run_id, FIELD_STR, NAME_MAX_LEN),
                                F(msg_config, json, FIELD_STR, MSG_TEXT_MAX)) },
        [MSG_READY] = { .name = "READY", .dir = DIR_TO_SUP, .senders = W, NO_FIELDS },
        [MSG_OK] = { .name = "OK", .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = W, .route = ROUTE_REPLY,
                     .final = true, NO_FIELDS },
        [MSG_ERROR] = REPLY("ERROR", true, msg_error, F(msg_error, code, FIELD_I64, 0),
                            F(msg_error, message, FIELD_STR, MSG_STR_MAX)),
        [MSG_CHUNK] = REPLY("CHUNK", false, msg_chunk, F(msg_chunk, data, FIELD_BIN, CHUNK_MAX)),
        [MSG_PING] = { .name = "PING", .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = W,
                       FIELDS(msg_ping, F(msg_ping, payload, FIELD_BIN, CHUNK_MAX)) },
        [MSG_PONG] = { .name = "PONG", .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = W,
                       FIELDS(msg_ping, F(msg_ping, payload, FIELD_BIN, CHUNK_MAX)) },
        [MSG_FD_RESTORE] = { .name = "FD_RESTORE", .dir = DIR_TO_WORKER,
                             FIELDS(msg_fd_restore, F(msg_fd_restore, name, FIELD_STR, NAME_MAX_LEN)) },
        [MSG_EVENT] = { .name = "EVENT", .dir = DIR_TO_SUP, .senders = W,
                        FIELDS(msg_event, F(msg_event, event, FIELD_STR, NAME_MAX_LEN),
                               F(msg_event, message, FIELD_STR, MSG_STR_MAX)) },

        [MSG_FD_STORE] = { .name = "FD_STORE", .dir = DIR_TO_SUP, .senders = W,
                           FIELDS(msg_fd_store, F(msg_fd_store, name, FIELD_STR, NAME_MAX_LEN)) },
        [MSG_FD_FORGET] = { .name = "FD_FORGET", .dir = DIR_TO_SUP, .senders = W,
                            FIELDS(msg_fd_forget, F(msg_fd_forget, name, FIELD_STR, NAME_MAX_LEN)) },
        [MSG_SPAWN] = { .name = "SPAWN", .dir = DIR_TO_SUP,
                        .senders = KIND_BIT(KIND_MACHINE) | KIND_BIT(KIND_SWITCH) | KIND_BIT(KIND_TEST),
                        FIELDS(msg_spawn, F(msg_spawn, name, FIELD_STR, NAME_MAX_LEN),
                               F(msg_spawn, argv, FIELD_STRV, MSG_STRV_MAX),
                               F(msg_spawn, env, FIELD_STRV, MSG_STRV_MAX),
                               F(msg_spawn, cwd, FIELD_STR, MSG_STR_MAX),
                               F(msg_spawn, stdio, FIELD_U64, 0),
                               F_OPTIONAL(msg_spawn, machine, FIELD_BOOL)) },
        [MSG_SPAWNED] = { .name = "SPAWNED", .dir = DIR_TO_WORKER,
                          FIELDS(msg_spawned, F(msg_spawned, name, FIELD_STR, NAME_MAX_LEN),
                                 F(msg_spawned, pid, FIELD_I64, 0)) },
        [MSG_PROC_EXIT] = { .name = "PROC_EXIT", .dir = DIR_TO_WORKER,
                            FIELDS(msg_proc_exit, F(msg_proc_exit, name, FIELD_STR, NAME_MAX_LEN),
                                   F(msg_proc_exit, pid, FIELD_I64, 0), F(msg_proc_exit, code, FIELD_I64, 0),
                                   F(msg_proc_exit, signal, FIELD_I64, 0)) },
        [MSG_PROC_KILL] = { .name = "PROC_KILL", .dir = DIR_TO_SUP,
                            .senders = KIND_BIT(KIND_MACHINE) | KIND_BIT(KIND_SWITCH) | KIND_BIT(KIND_TEST),
                            FIELDS(msg_proc_kill, F(msg_proc_kill, name, FIELD_STR, NAME_MAX_LEN),
                                   F(msg_proc_kill, signal, FIELD_I64, 0)) },
        [MSG_PROC_LIST] = { .name = "PROC_LIST", .dir = DIR_TO_WORKER,
                            FIELDS(msg_proc_list, F(msg_proc_list, name, FIELD_STR, NAME_MAX_LEN),
                                   F(msg_proc_list, pid, FIELD_I64, 0)) },
        [MSG_CHANNEL_OPEN] = { .name = "CHANNEL_OPEN", .dir = DIR_TO_SUP,
                               .senders = KIND_BIT(KIND_SCRIPT) | KIND_BIT(KIND_TEST),
                               .target = KIND_BIT(KIND_MACHINE) | KIND_BIT(KIND_TEST),
                               FIELDS(msg_channel_open, F(msg_channel_open, target, FIELD_STR, NAME_MAX_LEN)) },
        [MSG_CHANNEL] = { .name = "CHANNEL", .dir = DIR_TO_WORKER, .final = true,
                          FIELDS(msg_channel, F(msg_channel, peer, FIELD_STR, NAME_MAX_LEN),
                                 F(msg_channel, kind, FIELD_STR, NAME_MAX_LEN)) },

        [MSG_M_START] = MACHINE_REQ("M_START", msg_m_start, true, F(msg_m_start, machine, FIELD_STR, NAME_MAX_LEN),
                                    F(msg_m_start, allow_reboot, FIELD_BOOL, 0)),
        [MSG_M_CONNECT] = MACHINE_REQ("M_CONNECT", msg_m_timeout, true,
                                      F(msg_m_timeout, machine, FIELD_STR, NAME_MAX_LEN),
                                      F(msg_m_timeout, timeout_ms, FIELD_I64, 0)),
        [MSG_M_EXECUTE] = MACHINE_REQ("M_EXECUTE", msg_m_execute, false, EXECUTE_FIELDS),
        [MSG_M_READ] = MACHINE_REQ("M_READ", msg_m_execute, true, EXECUTE_FIELDS),
        [MSG_M_WAIT_UNTIL] = MACHINE_REQ("M_WAIT_UNTIL", msg_m_wait_until, true,
                                         F(msg_m_wait_until, machine, FIELD_STR, NAME_MAX_LEN),
                                         F(msg_m_wait_until, command, FIELD_STR, MSG_TEXT_MAX),
                                         F(msg_m_wait_until, timeout_s, FIELD_I64, 0),
                                         F(msg_m_wait_until, want_success, FIELD_BOOL, 0)),
        [MSG_M_SHUTDOWN] = MACHINE_REQ("M_SHUTDOWN", msg_m_simple, false,
                                       F(msg_m_simple, machine, FIELD_STR, NAME_MAX_LEN)),
        [MSG_M_CRASH] = MACHINE_REQ("M_CRASH", msg_m_simple, false, F(msg_m_simple, machine, FIELD_STR, NAME_MAX_LEN)),
        [MSG_M_REBOOT] = MACHINE_REQ("M_REBOOT", msg_m_simple, false,
                                     F(msg_m_simple, machine, FIELD_STR, NAME_MAX_LEN)),
        [MSG_M_WAIT_SHUTDOWN] = MACHINE_REQ("M_WAIT_SHUTDOWN", msg_m_timeout, true,
                                            F(msg_m_timeout, machine, FIELD_STR, NAME_MAX_LEN),
                                            F(msg_m_timeout, timeout_ms, FIELD_I64, 0)),
        [MSG_M_MONITOR] = MACHINE_REQ("M_MONITOR", msg_m_text, false, F(msg_m_text, machine, FIELD_STR, NAME_MAX_LEN),
                                      F(msg_m_text, text, FIELD_STR, MSG_TEXT_MAX)),
        [MSG_M_QMP] = MACHINE_REQ("M_QMP", msg_m_text, false, F(msg_m_text, machine, FIELD_STR, NAME_MAX_LEN),
                                  F(msg_m_text, text, FIELD_STR, MSG_TEXT_MAX)),
        [MSG_M_CONSOLE_READ] = MACHINE_REQ("M_CONSOLE_READ", msg_m_console_read, true,
                                           F(msg_m_console_read, machine, FIELD_STR, NAME_MAX_LEN),
                                           F(msg_m_console_read, from_line, FIELD_U64, 0),
                                           F(msg_m_console_read, timeout_ms, FIELD_I64, 0)),
        [MSG_M_SEND_CONSOLE] = MACHINE_REQ("M_SEND_CONSOLE", msg_m_text, false,
                                           F(msg_m_text, machine, FIELD_STR, NAME_MAX_LEN),
                                           F(msg_m_text, text, FIELD_STR, MSG_TEXT_MAX)),
        [MSG_M_STATE] = MACHINE_REQ("M_STATE", msg_m_simple, true, F(msg_m_simple, machine, FIELD_STR, NAME_MAX_LEN)),
        [MSG_M_SET_LINK] = MACHINE_REQ("M_SET_LINK", msg_m_set_link, true,
                                       F(msg_m_set_link, machine, FIELD_STR, NAME_MAX_LEN),
                                       F(msg_m_set_link, nic, FIELD_STR, NAME_MAX_LEN),
                                       F(msg_m_set_link, up, FIELD_BOOL, 0)),
        [MSG_M_EXEC_RESULT] = REPLY("M_EXEC_RESULT", true, msg_m_exec_result,
                                    F(msg_m_exec_result, status, FIELD_I64, 0),
                                    F(msg_m_exec_result, length, FIELD_U64, 0)),
        [MSG_M_TEXT_RESULT] = REPLY("M_TEXT_RESULT", true, msg_m_text_result,
                                    F(msg_m_text_result, length, FIELD_U64, 0),
                                    F(msg_m_text_result, next_line, FIELD_U64, 0)),
        [MSG_M_STATE_RESULT] = REPLY("M_STATE_RESULT", true, msg_m_state_result,
                                     F(msg_m_state_result, booted, FIELD_BOOL, 0),
                                     F(msg_m_state_result, connected, FIELD_BOOL, 0),
                                     F(msg_m_state_result, pid, FIELD_I64, 0),
                                     F(msg_m_state_result, backend, FIELD_STR, NAME_MAX_LEN),
                                     F(msg_m_state_result, worker_pid, FIELD_I64, 0)),

        [MSG_W_SET_LINK] = { .name = "W_SET_LINK", .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = KIND_BIT(KIND_SCRIPT),
                             .route = ROUTE_REQUEST, .target = KIND_BIT(KIND_SWITCH), .idempotent = true,
                             FIELDS(msg_w_set_link, F(msg_w_set_link, vlan_switch, FIELD_STR, NAME_MAX_LEN),
                                    F(msg_w_set_link, from, FIELD_STR, NAME_MAX_LEN),
                                    F(msg_w_set_link, to, FIELD_STR, NAME_MAX_LEN),
                                    F(msg_w_set_link, both, FIELD_BOOL, 0), F(msg_w_set_link, drop, FIELD_BOOL, 0),
                                    F(msg_w_set_link, loss_ppm, FIELD_U64, 0), F(msg_w_set_link, dup_ppm, FIELD_U64, 0),
                                    F(msg_w_set_link, delay_us, FIELD_U64, 0),
                                    F(msg_w_set_link, jitter_us, FIELD_U64, 0)) },
        [MSG_W_CLEAR] = { .name = "W_CLEAR", .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = KIND_BIT(KIND_SCRIPT),
                          .route = ROUTE_REQUEST, .target = KIND_BIT(KIND_SWITCH), .idempotent = true,
                          FIELDS(msg_w_clear, F(msg_w_clear, vlan_switch, FIELD_STR, NAME_MAX_LEN),
                                 F(msg_w_clear, from, FIELD_STR, NAME_MAX_LEN), F(msg_w_clear, to, FIELD_STR, NAME_MAX_LEN),
                                 F(msg_w_clear, both, FIELD_BOOL, 0)) },
        [MSG_W_STATS] = { .name = "W_STATS", .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = KIND_BIT(KIND_SCRIPT),
                          .route = ROUTE_REQUEST, .target = KIND_BIT(KIND_SWITCH), .idempotent = true,
                          FIELDS(msg_m_simple, F(msg_m_simple, machine, FIELD_STR, NAME_MAX_LEN)) },

        [MSG_S_RESULT] = { .name = "S_RESULT", .dir = DIR_TO_SUP, .senders = KIND_BIT(KIND_SCRIPT),
                           FIELDS(msg_s_result, F(msg_s_result, exit_code, FIELD_I64, 0),
                                  F(msg_s_result, message, FIELD_STR, MSG_STR_MAX)) },
        [MSG_S_ADD_MACHINE] = { .name = "S_ADD_MACHINE", .dir = DIR_TO_SUP, .senders = KIND_BIT(KIND_SCRIPT),
                                FIELDS(msg_s_add_machine, F(msg_s_add_machine, name, FIELD_STR, NAME_MAX_LEN),
                                       F(msg_s_add_machine, start_command, FIELD_STR, MSG_STR_MAX),
                                       F(msg_s_add_machine, keep_state, FIELD_BOOL, 0)) },

        [MSG_T_ECHO] = { .name = "T_ECHO", .dir = DIR_TO_SUP | DIR_TO_WORKER, .senders = KIND_BIT(KIND_TEST),
                         .route = ROUTE_REQUEST, .target = KIND_BIT(KIND_TEST), .idempotent = true,
                         FIELDS(msg_t_echo, F(msg_t_echo, target, FIELD_STR, NAME_MAX_LEN),
                                F(msg_t_echo, payload, FIELD_BIN, CHUNK_MAX)) },
        [MSG_T_ECHO_REPLY] = REPLY("T_ECHO_REPLY", true, msg_t_echo, F(msg_t_echo, target, FIELD_STR, NAME_MAX_LEN),
                                   F(msg_t_echo, payload, FIELD_BIN, CHUNK_MAX)),
};
/* clang-format on */

const struct msg_info *msg_info_get(int type) {
        if (type <= 0 || (size_t) type >= ELEMENTSOF(table))
                return NULL;
        if (!table[type].name)
                return NULL;
        return &table[type];
}

int msg_type_limit(void) {
        return (int) ELEMENTSOF(table);
}

static const char *const kind_names[_KIND_MAX] = {
        [KIND_SUPERVISOR] = "supervisor", [KIND_MACHINE] = "machine", [KIND_SWITCH] = "switch",
        [KIND_SCRIPT] = "script",         [KIND_TEST] = "test",
};

const char *worker_kind_to_string(enum worker_kind k) {
        if (k < 0 || k >= _KIND_MAX)
                return NULL;
        return kind_names[k];
}

enum worker_kind worker_kind_from_string(const char *s) {
        if (!s)
                return _KIND_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(kind_names); i++)
                if (streq(kind_names[i], s))
                        return (enum worker_kind) i;
        return _KIND_INVALID;
}
