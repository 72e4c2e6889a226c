/* SPDX-License-Identifier: MIT */
/*
 * Proves the message table is complete and consistent, and pins
 * PROTO_VERSION to its contents: changing any row without bumping the
 * version fails here, so peers of different builds never misread a frame.
 */
#include <stdint.h>

#include "macro.h"
#include "msg.h"
#include "tap.h"

/* Update both together when the table changes (the test prints the new value). */
#define PINNED_VERSION  5
#define PINNED_CHECKSUM UINT64_C(0x500cf923338eccb7)

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
        const uint8_t *p = data;
        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * UINT64_C(0x100000001b3);
        return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) {
        return fnv(h, s, strlen(s) + 1);
}

static uint64_t fnv_u(uint64_t h, uint64_t v) {
        return fnv(h, &v, sizeof(v));
}

int main(void) {
        uint64_t sum = UINT64_C(0xcbf29ce484222325);
        int rows = 0;

        for (int t = 0; t < msg_type_limit(); t++) {
                const struct msg_info *i = msg_info_get(t);
                if (!i)
                        continue;
                rows++;
                CHECK(i->name && *i->name, "type %d has a name", t);
                CHECK(i->dir != 0, "%s has a direction", i->name);
                CHECK(!(i->dir & DIR_TO_SUP) || i->senders != 0, "%s: worker->sup messages name their senders",
                      i->name);
                CHECK(i->size > 0 && (i->n_fields == 0 || i->fields), "%s has a body layout", i->name);
                for (int u = t + 1; u < msg_type_limit(); u++) {
                        const struct msg_info *j = msg_info_get(u);
                        if (j && streq(i->name, j->name))
                                CHECK(false, "%s is not duplicated (also type %d)", i->name, u);
                }
                for (size_t f = 0; f < i->n_fields; f++) {
                        CHECK(i->fields[f].offset + sizeof(uint8_t) <= i->size, "%s.%s lies inside the struct",
                              i->name, i->fields[f].name);
                        CHECK(i->fields[f].type >= 0 && i->fields[f].type < _FIELD_TYPE_MAX, "%s.%s has a valid type",
                              i->name, i->fields[f].name);
                        /* Left out, it decodes as 0 / false: never a NULL string a handler would trip on. */
                        if (i->fields[f].optional)
                                CHECK(i->fields[f].type == FIELD_U64 || i->fields[f].type == FIELD_I64 ||
                                              i->fields[f].type == FIELD_BOOL,
                                      "%s.%s: an optional field is a scalar", i->name, i->fields[f].name);
                        if (f > 0 && i->fields[f - 1].optional)
                                CHECK(i->fields[f].optional, "%s.%s: no required field after an optional one", i->name,
                                      i->fields[f].name);
                }
                if (i->route == ROUTE_REQUEST) {
                        CHECK(i->n_fields > 0 && i->fields[0].type == FIELD_STR,
                              "%s: routed request has a name in field 0", i->name);
                        CHECK(i->target != 0 && (i->dir & DIR_TO_WORKER), "%s: routed request has a target kind",
                              i->name);
                }
                if (i->route == ROUTE_REPLY)
                        CHECK((i->dir & DIR_TO_WORKER) && (i->dir & DIR_TO_SUP), "%s: routed reply travels both ways",
                              i->name);

                sum = fnv_u(sum, (uint64_t) t);
                sum = fnv_str(sum, i->name);
                sum = fnv_u(sum, i->dir);
                sum = fnv_u(sum, i->senders);
                sum = fnv_u(sum, i->route);
                sum = fnv_u(sum, i->target);
                sum = fnv_u(sum, i->idempotent);
                sum = fnv_u(sum, i->final);
                for (size_t f = 0; f < i->n_fields; f++) {
                        sum = fnv_str(sum, i->fields[f].name);
                        sum = fnv_u(sum, i->fields[f].type);
                        sum = fnv_u(sum, i->fields[f].max);
                        sum = fnv_u(sum, i->fields[f].optional);
                }
        }
        CHECK(rows > 20, "table has %d rows", rows);
        CHECK(msg_info_get(0) == NULL && msg_info_get(-1) == NULL && msg_info_get(100000) == NULL,
              "out-of-range types are unknown");
        CHECK(worker_kind_from_string("machine") == KIND_MACHINE && worker_kind_from_string("nope") == _KIND_INVALID,
              "kind names round-trip");
        for (int k = 0; k < _KIND_MAX; k++)
                CHECK(worker_kind_from_string(worker_kind_to_string(k)) == k, "kind %d round-trips", k);

        CHECK(PROTO_VERSION == PINNED_VERSION && sum == PINNED_CHECKSUM,
              "PROTO_VERSION %d pinned to table checksum 0x%016llx (pinned 0x%016llx): bump PROTO_VERSION and "
              "update PINNED_* when the table changes",
              PROTO_VERSION, (unsigned long long) sum, (unsigned long long) PINNED_CHECKSUM);
        return tap_done();
}
