/* SPDX-License-Identifier: MIT */
/*
 * msg-table-json: prints proto/'s message table as one JSON object (protocol
 * version; per message its number, field names in wire order, whether it is
 * a final reply and which kinds send it), so tests written in another
 * language (minisup.py) can check that their copy of the protocol agrees.
 */
#include <stdio.h>

#include "msg.h"

int main(void) {
        const char *sep = "";

        printf("{\"version\": %d, \"messages\": {", PROTO_VERSION);
        for (int t = 0; t < msg_type_limit(); t++) {
                const struct msg_info *m = msg_info_get(t);
                if (!m)
                        continue;
                printf("%s\n \"%s\": {\"type\": %d, \"final\": %s, \"reply\": %s, \"machine_sends\": %s, \"fields\": "
                       "[",
                       sep, m->name, t, m->final ? "true" : "false", m->route == ROUTE_REPLY ? "true" : "false",
                       m->senders & KIND_BIT(KIND_MACHINE) ? "true" : "false");
                for (size_t i = 0; i < m->n_fields; i++)
                        printf("%s\"%s\"", i ? ", " : "", m->fields[i].name);
                printf("]}");
                sep = ",";
        }
        printf("\n}}\n");
        return 0;
}
