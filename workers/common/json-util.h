/* SPDX-License-Identifier: MIT */
/* json-util.h: cleanup helper and typed getters for json-c, shared by workers. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

static inline void json_object_putp(json_object **j) {
        if (*j)
                json_object_put(*j);
}
#define _cleanup_json_ __attribute__((cleanup(json_object_putp)))
