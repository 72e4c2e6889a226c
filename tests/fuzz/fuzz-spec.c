/* SPDX-License-Identifier: MIT */
/*
 * fuzz-spec.c: the spec and --config parsers (supervisor/run/run-plan.c) under
 * a fuzzer. A spec is hand-written or generated JSON: any text must either be
 * refused with a message (and -EINVAL) or load, finalize and render worker
 * configurations without a crash or a leak; a rendered machine or switch
 * config that the workers' parser (proto/worker-config.c) accepts must come
 * back equal to the struct it was written from. The first input byte picks the
 * parser (vigil spec or the reference's --config); the rest is the file.
 * Built for libFuzzer by tools/run-fuzz; built by meson as a replay test.
 */
#include <stdint.h>
#include <stdio.h>

#include "macro.h"
#include "run-plan.h"
#include "worker-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip_machine(const struct run_plan *p, size_t i, const struct run_dirs *d) {
        _cleanup_(machine_config_donep) struct machine_config a = {}, b = {};
        _cleanup_free_ char *json = NULL;
        char err[WORKER_CONFIG_ERROR_MAX];

        if (run_plan_machine_struct(p, i, d, &a) < 0 || worker_config_machine_write(&a, &json) < 0)
                return;
        if (worker_config_machine_parse(json, &b, err, sizeof err) == 0 &&
            !worker_config_equal(&worker_config_machine, &a, &b))
                __builtin_trap(); /* written and read by the same table, yet different */
}

static void roundtrip_switch(const struct run_plan *p, size_t i, const struct run_dirs *d) {
        _cleanup_(switch_config_donep) struct switch_config a = {}, b = {};
        _cleanup_free_ char *json = NULL;
        char err[WORKER_CONFIG_ERROR_MAX];

        if (run_plan_switch_struct(p, i, d, &a) < 0 || worker_config_switch_write(&a, &json) < 0)
                return;
        if (worker_config_switch_parse(json, &b, err, sizeof err) == 0 &&
            !worker_config_equal(&worker_config_switch, &a, &b))
                __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const struct run_dirs d = {.run_id = "0123456789abcdef",
                                   .tmp_dir = "/tmp/vigil-01234567",
                                   .out_dir = "/out",
                                   .guest_dir = "/guest",
                                   .guest_cmdline = "console=ttyS0",
                                   .debian_tree = "/cache/debian"};
        struct run_plan p;
        char *text, *err = NULL;
        int r;

        if (size < 1 || size > (1u << 16))
                return 0;
        text = malloc(size);
        if (!text)
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = 0;
        run_plan_init(&p);
        r = (data[0] & 1) ? run_plan_load_reference_config(&p, text, &err) : run_plan_load_spec(&p, text, &err);
        if (r < 0 && (r != -EINVAL || !err || !err[0]) && r != -ENOMEM)
                __builtin_trap(); /* a refusal names its reason */
        if (r >= 0 && !p.script)
                p.script = strdup("/t.py"); /* finalize wants one; the CLI gives it */
        if (r >= 0 && run_plan_finalize(&p, &err) >= 0) {
                /* Each config lists every node: render a few, or a 60-node spec costs
                 * milliseconds per input and the fuzzer crawls. */
                for (size_t i = 0; i < MIN(p.n_nodes, (size_t) 3); i++)
                        roundtrip_machine(&p, i, &d);
                for (size_t i = 0; i < p.n_vlans; i++)
                        roundtrip_switch(&p, i, &d);
                free(run_plan_script_config(&p, &d));
        }
        free(err);
        run_plan_done(&p);
        free(text);
        return 0;
}

#ifndef VIGIL_LIBFUZZER
#include "fuzz-replay.h"

int main(int argc, char **argv) {
        static const struct fuzz_seed seeds[] = {
                FUZZ_SEED("spec-router",
                          "\x00{\"nodes\": {\"router\": {\"vlans\": [1, 2], \"memory_mb\": 384}, \"a\": {\"vlans\": "
                          "[1]}, \"b\": {\"vlans\": [2], \"cpus\": 2}}, \"global_timeout\": 90, \"test_script\": "
                          "\"t.py\"}"),
                FUZZ_SEED("spec-nspawn", "\x00{\"nodes\": {\"c1\": {\"backend\": \"nspawn\", \"vlans\": [1]}, \"vm\": "
                                         "{\"kernel\": \"/k\", \"initrd\": \"/i\", \"append\": \"quiet\"}}}"),
                FUZZ_SEED("spec-start-script", "\x00{\"nodes\": {\"web\": {\"start_script\": \"/s/run-web-vm\"}}, "
                                               "\"vlans\": [1, 3]}"),
                FUZZ_SEED("spec-broken", "\x00{\"nodes\": {\n  \"a\": {\"vlans\": [1 2]}}}"),
                FUZZ_SEED("config",
                          "\x01{\"vms\": {\"web\": {\"name\": \"web\", \"start_script\": \"/s/bin/run-web-vm\"}}, "
                          "\"containers\": {}, \"vlans\": [1], \"global_timeout\": 30, \"enable_ssh_backdoor\": "
                          "false, \"test_script\": \"/s/t\"}"),
                FUZZ_SEED("config-containers", "\x01{\"vms\": {}, \"containers\": {\"c\": {}}}"),
        };

        return fuzz_replay_main(argc, argv, seeds, ELEMENTSOF(seeds));
}
#endif
