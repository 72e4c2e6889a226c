/* SPDX-License-Identifier: MIT */
/*
 * test-ssh-argv: proves the SSH backend's targets and OpenSSH argv: `ssh:[user@]host[:port]`
 * and the "ssh" object parse or are refused by name, and every ssh process runs in batch mode over one
 * ControlMaster with the chosen known_hosts policy.
 * Why: a password prompt or a host-key question would hang a whole run, and a mux client
 * that quietly became its own master would escape the supervisor.
 */
#include <string.h>

#include "argv-check.h"
#include "machine-config.h"
#include "macro.h"
#include "ssh-argv.h"
#include "tap.h"

static int parse_json(const char *json, struct ssh_target *t, char *err, size_t size) {
        json_object *o = json_tokener_parse(json);
        int r;

        if (!o)
                return 12345;
        r = ssh_target_from_json(o, t, err, size);
        json_object_put(o);
        return r;
}

static void test_address(void) {
        struct ssh_target t = {};
        char err[SSH_ERROR_MAX];

        CHECK(ssh_target_parse_address("alice@box.example:2222", &t, err, sizeof err) == 0 && streq(t.user, "alice") &&
                      streq(t.host, "box.example") && t.port == 2222,
              "user@host:port");
        CHECK(ssh_target_parse_address("10.0.0.5", &t, err, sizeof err) == 0 && !t.user && streq(t.host, "10.0.0.5") &&
                      t.port == 0,
              "bare host: no user, ssh's port");
        CHECK(ssh_target_parse_address("root@[fd00::5]:22", &t, err, sizeof err) == 0 && streq(t.host, "fd00::5") &&
                      t.port == 22,
              "bracketed IPv6 with port");
        CHECK(ssh_target_parse_address("fd00::5", &t, err, sizeof err) == -EINVAL && strstr(err, "brackets"),
              "bare IPv6 refused: %s", err);
        CHECK(ssh_target_parse_address("-oProxyCommand=x", &t, err, sizeof err) == -EINVAL &&
                      strstr(err, "not a host name"),
              "a host that ssh would read as an option: %s", err);
        CHECK(ssh_target_parse_address("bob smith@h", &t, err, sizeof err) == -EINVAL && strstr(err, "user name"),
              "bad user named: %s", err);
        CHECK(ssh_target_parse_address("h:0", &t, err, sizeof err) == -EINVAL && strstr(err, "port \"0\""),
              "port 0 refused: %s", err);
        CHECK(ssh_target_parse_address("h:99999", &t, err, sizeof err) == -EINVAL && strstr(err, "1..65535"),
              "port too large: %s", err);
        CHECK(ssh_target_parse_address("h:", &t, err, sizeof err) == -EINVAL, "empty port");
        CHECK(ssh_target_parse_address("", &t, err, sizeof err) == -EINVAL, "empty host");
        CHECK(ssh_target_parse_address("[::1", &t, err, sizeof err) == -EINVAL && strstr(err, "']'"),
              "unclosed bracket: %s", err);
        ssh_target_done(&t);
}

static void test_json(void) {
        struct ssh_target t = {};
        char err[SSH_ERROR_MAX];

        CHECK(parse_json("{\"host\":\"h\",\"user\":\"u\",\"port\":2200,\"identity_file\":\"/k/id\","
                         "\"known_hosts\":\"/k/known\",\"proxy_jump\":\"gw@jump:22,j2\","
                         "\"options\":[\"ProxyCommand=socat - UNIX-CONNECT:/s\"],\"connect_timeout_s\":3}",
                         &t, err, sizeof err) == 0,
              "full object parses (%s)", err);
        CHECK(streq(t.host, "h") && streq(t.user, "u") && t.port == 2200 && streq(t.identity_file, "/k/id") &&
                      t.known_hosts == SSH_KNOWN_HOSTS_FILE && streq(t.known_hosts_file, "/k/known") &&
                      streq(t.proxy_jump, "gw@jump:22,j2") && strv_length(t.options) == 1 && t.connect_timeout_s == 3,
              "fields");
        ssh_target_done(&t);
        CHECK(parse_json("{\"host\":\"h\"}", &t, err, sizeof err) == 0 && t.known_hosts == SSH_KNOWN_HOSTS_STRICT &&
                      t.connect_timeout_s == SSH_CONNECT_TIMEOUT_DEFAULT && !t.user,
              "defaults: strict host keys, 10 s connect timeout");
        ssh_target_done(&t);

        static const struct {
                const char *json, *needle;
        } bad[] = {
                {"{}", "missing \"host\""},
                {"{\"host\":\"h\",\"hots\":1}", "unknown key \"hots\""},
                {"{\"host\":\"h\",\"known_hosts\":\"yes\"}", "\"known_hosts\" must be"},
                {"{\"host\":\"h\",\"identity_file\":\"id_rsa\"}", "absolute path"},
                {"{\"host\":\"h\",\"port\":70000}", "\"port\" must be an integer in 1..65535"},
                {"{\"host\":\"h\",\"options\":[\"BatchMode=no\"]}", "\"BatchMode\" is set by vigil"},
                {"{\"host\":\"h\",\"options\":[\"controlpath=/x\"]}", "is set by vigil"},
                {"{\"host\":\"h\",\"options\":[\"-v\"]}", "options[0] must be"},
                {"{\"host\":\"h\",\"options\":\"A=b\"}", "must be a list"},
                {"{\"host\":\"h\",\"proxy_jump\":\"-oProxyCommand=x\"}", "proxy_jump"},
                {"{\"host\":\"h;reboot\"}", "not a host name"},
                {"{\"host\":\"h\",\"user\":\"\"}", "not a user name"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                err[0] = 0;
                CHECK(parse_json(bad[i].json, &t, err, sizeof err) == -EINVAL && strstr(err, bad[i].needle),
                      "%s refused: %s", bad[i].json, err);
        }
}

static bool has_pair(char **argv, const char *flag, const char *value) {
        for (size_t i = 0; argv[i] && argv[i + 1]; i++)
                if (streq(argv[i], flag) && streq(argv[i + 1], value))
                        return true;
        return false;
}

static bool any_prefix(char **argv, const char *prefix) {
        for (; *argv; argv++)
                if (strncmp(*argv, prefix, strlen(prefix)) == 0)
                        return true;
        return false;
}

static void test_argv(void) {
        struct ssh_target t = {};
        char err[SSH_ERROR_MAX];
        char **v = NULL;
        size_t n;

        (void) parse_json("{\"host\":\"box\",\"port\":2200,\"identity_file\":\"/k/id\",\"known_hosts\":\"accept-new\","
                          "\"proxy_jump\":\"jump\",\"options\":[\"Compression=yes\"]}",
                          &t, err, sizeof err);
        CHECK(ssh_build_argv(&t, "/tmp/r/vm-state-box", SSH_ROLE_MASTER, NULL, &v) == 0, "master argv builds");
        n = strv_length(v);
        CHECK(streq(v[0], "ssh") && argv_has(v, "-M") && argv_has(v, "-N") && has_pair(v, "-o", "ControlMaster=yes") &&
                      has_pair(v, "-o", "ControlPersist=no"),
              "master: -M -N in the foreground (ControlPersist=no)");
        CHECK(has_pair(v, "-o", "BatchMode=yes") && argv_index(v, "BatchMode=yes") < argv_index(v, "Compression=yes"),
              "BatchMode=yes before the user's options (the first value wins)");
        CHECK(has_pair(v, "-o", "ControlPath=/tmp/r/vm-state-box/ssh-control"), "control socket in the state dir");
        CHECK(has_pair(v, "-o", "StrictHostKeyChecking=accept-new") &&
                      has_pair(v, "-o", "UserKnownHostsFile=/tmp/r/vm-state-box/known_hosts") &&
                      has_pair(v, "-o", "GlobalKnownHostsFile=/dev/null") && has_pair(v, "-o", "HashKnownHosts=no"),
              "accept-new records into the run's own known_hosts, readable");
        CHECK(has_pair(v, "-o", "ServerAliveInterval=5") && has_pair(v, "-o", "ServerAliveCountMax=3"),
              "the master notices a dead link");
        CHECK(has_pair(v, "-i", "/k/id") && has_pair(v, "-o", "IdentitiesOnly=yes") && has_pair(v, "-J", "jump") &&
                      has_pair(v, "-p", "2200") && has_pair(v, "-l", "root"),
              "key, ProxyJump, port, user root by default");
        CHECK(argv_index(v, "Compression=yes") < argv_index(v, "ConnectTimeout=10") && streq(v[n - 1], "box"),
              "user options before vigil's overridable defaults; the host last");
        v = strv_free(v);

        CHECK(ssh_build_argv(&t, "/tmp/r/vm-state-box", SSH_ROLE_SESSION, ssh_backdoor_command, &v) == 0 &&
                      argv_has(v, "-T") && has_pair(v, "-o", "ControlMaster=no") && !argv_has(v, "-M") &&
                      streq(v[strv_length(v) - 1], ssh_backdoor_command) && streq(v[strv_length(v) - 2], "box") &&
                      !has_pair(v, "-o", "ServerAliveInterval=5"),
              "session: a mux client (never a master), no tty, the backdoor command last");
        CHECK(strstr(ssh_backdoor_command, "echo 'Spawning backdoor root shell...'") &&
                      strstr(ssh_backdoor_command, "exec bash --norc"),
              "the backdoor prints the reference's ready line, then bash reads commands");
        v = strv_free(v);

        CHECK(ssh_build_argv(&t, "/s", SSH_ROLE_TTY, NULL, &v) == 0 && argv_has(v, "-tt") &&
                      has_pair(v, "-e", "none") && streq(v[strv_length(v) - 1], "box"),
              "tty: forced pty, no escape character, login shell");
        v = strv_free(v);
        CHECK(ssh_build_argv(&t, "/s", SSH_ROLE_CHECK, NULL, &v) == 0 && has_pair(v, "-O", "check"), "-O check");
        v = strv_free(v);
        CHECK(ssh_build_argv(&t, "/s", SSH_ROLE_EXIT, NULL, &v) == 0 && has_pair(v, "-O", "exit"), "-O exit");
        v = strv_free(v);
        CHECK(ssh_build_argv(&t, "/s", SSH_ROLE_EXEC, NULL, &v) == -EINVAL, "exec needs a command");
        CHECK(ssh_build_argv(&t, "/s", SSH_ROLE_MASTER, "true", &v) == -EINVAL, "the master takes none");
        CHECK(ssh_build_argv(&t,
                             "/tmp/a-state-dir-so-long-that-the-control-socket-and-its-temporary-suffix-"
                             "cannot-be-bound",
                             SSH_ROLE_MASTER, NULL, &v) == -ENAMETOOLONG,
              "control path too long for sun_path with OpenSSH's temporary suffix");
        ssh_target_done(&t);

        (void) parse_json("{\"host\":\"h\",\"user\":\"u\",\"known_hosts\":\"/k/kh\"}", &t, err, sizeof err);
        CHECK(ssh_build_argv(&t, "/s", SSH_ROLE_EXEC, "true", &v) == 0 &&
                      has_pair(v, "-o", "StrictHostKeyChecking=yes") &&
                      has_pair(v, "-o", "UserKnownHostsFile=/k/kh") && has_pair(v, "-l", "u") && !argv_has(v, "-p") &&
                      !argv_has(v, "-J") && !argv_has(v, "-i"),
              "a known_hosts file is checked strictly; no port/jump/key unless given");
        v = strv_free(v);
        ssh_target_done(&t);

        (void) parse_json("{\"host\":\"h\"}", &t, err, sizeof err);
        CHECK(ssh_build_argv(&t, "/s", SSH_ROLE_EXEC, "true", &v) == 0 &&
                      has_pair(v, "-o", "StrictHostKeyChecking=yes") && !any_prefix(v, "UserKnownHostsFile=") &&
                      !any_prefix(v, "GlobalKnownHostsFile="),
              "strict keeps the user's known_hosts files");
        v = strv_free(v);
        ssh_target_done(&t);
}

static void test_machine_config(void) {
        struct machine_config c;
        char err[MACHINE_CONFIG_ERROR_MAX];

        CHECK(machine_config_parse("{\"name\":\"remote\",\"backend\":\"ssh\",\"state_dir\":\"/tmp/r/vm-state-remote\","
                                   "\"out_dir\":\"/o\",\"ssh\":{\"host\":\"10.0.0.5\",\"user\":\"ops\"}}",
                                   &c, err, sizeof err) == 0,
              "an ssh machine config parses (%s)", err);
        CHECK(c.backend_kind == MACHINE_BACKEND_SSH && streq(c.ssh_host, "10.0.0.5") && streq(c.ssh_user, "ops") &&
                      c.n_vlans == 0 && !c.start_script && !c.tree,
              "backend ssh, its target, no VLANs");
        machine_config_done(&c);
        CHECK(machine_config_parse("{\"name\":\"remote\",\"backend\":\"ssh\",\"state_dir\":\"/s\",\"out_dir\":\"/o\"}",
                                   &c, err, sizeof err) == -EINVAL &&
                      strstr(err, "missing \"ssh\""),
              "no ssh object: %s", err);
        CHECK(machine_config_parse("{\"name\":\"remote\",\"backend\":\"ssh\",\"state_dir\":\"/s\",\"out_dir\":\"/o\","
                                   "\"ssh\":{\"host\":\"h\",\"known_hosts\":\"maybe\"}}",
                                   &c, err, sizeof err) == -EINVAL &&
                      strstr(err, "\"known_hosts\" must be"),
              "the ssh object's refusals come through: %s", err);
        CHECK(machine_config_parse("{\"name\":\"remote\",\"backend\":\"ssh\",\"state_dir\":\"/tmp/"
                                   "a-state-dir-long-enough-for-the-monitor-but-not-for-ssh-control-and-suffix\","
                                   "\"out_dir\":\"/o\",\"ssh\":{\"host\":\"h\"}}",
                                   &c, err, sizeof err) == -EINVAL &&
                      strstr(err, "control socket"),
              "a state_dir too long for the control socket: %s", err);
        CHECK(machine_config_parse("{\"name\":\"x\",\"backend\":\"telnet\",\"state_dir\":\"/s\",\"out_dir\":\"/o\"}",
                                   &c, err, sizeof err) == -EINVAL &&
                      strstr(err, "\"ssh\""),
              "unknown backends list ssh among the known: %s", err);
}

int main(void) {
        test_machine_config();
        test_address();
        test_json();
        test_argv();
        return tap_done();
}
