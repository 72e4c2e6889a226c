/* SPDX-License-Identifier: MIT */
/*
 * switch-core.c owns the switch's decisions: where a frame goes (MAC
 * learning with ageing, flooding of broadcast, multicast and unknown
 * destinations), what the fault rules do to it, the exact bytes of the
 * pcap and VDE formats, and which TAP names are valid and when a vanished
 * TAP is tried again. Pure functions over caller-owned state.
 */
#include <sys/socket.h>

#include "macro.h"
#include "switch-core.h"

static bool mac_eq(const uint8_t *a, const uint8_t *b) {
        return memcmp(a, b, 6) == 0;
}

static struct mac_entry *mac_find(struct mac_table *t, const uint8_t *mac, uint64_t now) {
        for (size_t i = 0; i < t->n; i++)
                if (mac_eq(t->e[i].mac, mac))
                        return now - t->e[i].seen_usec <= SWITCH_MAC_AGE_USEC ? &t->e[i] : NULL;
        return NULL;
}

static void mac_learn(struct mac_table *t, const uint8_t *mac, int port, uint64_t now) {
        size_t oldest = 0;

        if (mac[0] & 1)
                return; /* a multicast source is bogus: never learn it */
        for (size_t i = 0; i < t->n; i++) {
                if (mac_eq(t->e[i].mac, mac)) {
                        t->e[i].port = port;
                        t->e[i].seen_usec = now;
                        return;
                }
                if (t->e[i].seen_usec < t->e[oldest].seen_usec)
                        oldest = i;
        }
        if (t->n < SWITCH_MACS_MAX)
                oldest = t->n++;
        memcpy(t->e[oldest].mac, mac, 6);
        t->e[oldest].port = port;
        t->e[oldest].seen_usec = now;
}

size_t mac_table_forward(struct mac_table *t, int in, const uint8_t *frame, size_t len, uint64_t now_usec,
                         const bool *up, size_t n_ports, int *out) {
        const uint8_t *dst = frame, *src = frame + 6;
        struct mac_entry *e;
        size_t n = 0;

        if (len < ETH_HEADER_LEN)
                return 0;
        mac_learn(t, src, in, now_usec);
        if (!(dst[0] & 1) && (e = mac_find(t, dst, now_usec)) && e->port != in && (size_t) e->port < n_ports &&
            up[e->port]) {
                out[0] = e->port;
                return 1;
        }
        for (size_t p = 0; p < n_ports; p++)
                if (up[p] && (int) p != in)
                        out[n++] = (int) p;
        return n;
}

void mac_table_forget_port(struct mac_table *t, int port) {
        for (size_t i = 0; i < t->n;)
                if (t->e[i].port == port)
                        t->e[i] = t->e[--t->n];
                else
                        i++;
}

void link_rules_init(struct link_rules *r, uint64_t seed) {
        *r = (struct link_rules){.rng = seed ? seed : 0x9e3779b97f4a7c15ULL};
}

static struct link_rule *rule_find(struct link_rules *r, const char *from, const char *to) {
        for (size_t i = 0; i < r->n; i++)
                if (streq(r->r[i].from, from) && streq(r->r[i].to, to))
                        return &r->r[i];
        return NULL;
}

int link_rules_set(struct link_rules *r, const struct link_rule *rule) {
        struct link_rule *slot;

        if (rule->loss_ppm > 1000000 || rule->dup_ppm > 1000000)
                return -EINVAL;
        slot = rule_find(r, rule->from, rule->to);
        if (!slot) {
                if (r->n >= SWITCH_RULES_MAX)
                        return -ENOSPC;
                slot = &r->r[r->n++];
        }
        *slot = *rule;
        return 0;
}

size_t link_rules_clear(struct link_rules *r, const char *from, const char *to) {
        size_t gone = 0;

        if (!*from && !*to) {
                gone = r->n;
                r->n = 0;
                return gone;
        }
        for (size_t i = 0; i < r->n;)
                if (streq(r->r[i].from, from) && streq(r->r[i].to, to)) {
                        r->r[i] = r->r[--r->n];
                        gone++;
                } else
                        i++;
        return gone;
}

static uint64_t rng_next(struct link_rules *r) {
        uint64_t x = r->rng;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r->rng = x;
        return x;
}

static bool rng_chance(struct link_rules *r, uint32_t ppm) {
        return ppm > 0 && rng_next(r) % 1000000 < ppm;
}

struct link_verdict link_rules_decide(struct link_rules *r, const char *from, const char *to) {
        const struct link_rule *best = NULL;
        struct link_verdict v = {.copies = 1};
        int best_score = -1;

        for (size_t i = 0; i < r->n; i++) {
                const struct link_rule *x = &r->r[i];
                int score;

                if ((*x->from && !streq(x->from, from)) || (*x->to && !streq(x->to, to)))
                        continue;
                score = (*x->from ? 2 : 0) + (*x->to ? 1 : 0);
                if (score > best_score) {
                        best = x;
                        best_score = score;
                }
        }
        if (!best)
                return v;
        if (best->drop || rng_chance(r, best->loss_ppm)) {
                v.copies = 0;
                return v;
        }
        if (rng_chance(r, best->dup_ppm))
                v.copies = 2;
        v.delay_us = best->delay_us;
        if (best->jitter_us)
                v.delay_us += rng_next(r) % (best->jitter_us + 1);
        return v;
}

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

void pcap_file_header(uint8_t out[PCAP_FILE_HEADER_LEN]) {
        put_le32(out, 0xa1b2c3d4u); /* microsecond timestamps */
        out[4] = 2;                 /* version 2.4 */
        out[5] = 0;
        out[6] = 4;
        out[7] = 0;
        put_le32(out + 8, 0);  /* thiszone */
        put_le32(out + 12, 0); /* sigfigs */
        put_le32(out + 16, SWITCH_FRAME_MAX);
        put_le32(out + 20, 1); /* LINKTYPE_ETHERNET */
}

void pcap_record_header(uint8_t out[PCAP_RECORD_HEADER_LEN], uint64_t realtime_usec, size_t len) {
        put_le32(out, (uint32_t) (realtime_usec / 1000000));
        put_le32(out + 4, (uint32_t) (realtime_usec % 1000000));
        put_le32(out + 8, (uint32_t) len);
        put_le32(out + 12, (uint32_t) len);
}

static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

size_t pcap_record_span(const uint8_t hdr[PCAP_RECORD_HEADER_LEN], uint64_t remaining) {
        uint32_t caplen = get_le32(hdr + 8), len = get_le32(hdr + 12);

        if (caplen != len || caplen < ETH_HEADER_LEN || caplen > SWITCH_FRAME_MAX || get_le32(hdr + 4) >= 1000000)
                return 0;
        if (remaining < PCAP_RECORD_HEADER_LEN + (uint64_t) caplen)
                return 0;
        return PCAP_RECORD_HEADER_LEN + caplen;
}

static uint32_t get_host32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
}

int vde_request_parse(const uint8_t *buf, size_t len, struct vde_request *ret) {
        /* Layout (packed, host byte order, as libvdeplug writes it): u32 magic,
         * u32 version, u32 type (low byte REQ_NEW_CONTROL=0 / REQ_NEW_PORT0=1,
         * port << 8), struct sockaddr_un (110 bytes), description. */
        const size_t sock_off = 12, path_off = sock_off + 2, desc_off = sock_off + 110;
        uint32_t type;
        uint16_t family;
        size_t plen;

        if (len < VDE_REQUEST_MIN || get_host32(buf) != VDE_SWITCH_MAGIC || get_host32(buf + 4) != 3)
                return -EBADMSG;
        type = get_host32(buf + 8);
        if ((type & 0xff) > 1)
                return -EBADMSG;
        memcpy(&family, buf + sock_off, 2);
        if (family != AF_UNIX)
                return -EBADMSG;
        plen = strnlen((const char *) buf + path_off, 108);
        if (plen == 0 || plen >= 108 || buf[path_off] != '/')
                return -EBADMSG;
        *ret = (struct vde_request){.port = (int) (type >> 8)};
        memcpy(ret->path, buf + path_off, plen);
        if (len > desc_off) {
                size_t dl = MIN(len - desc_off, sizeof(ret->description) - 1);
                memcpy(ret->description, buf + desc_off, dl);
                ret->description[strnlen(ret->description, dl)] = 0;
        }
        return 0;
}

bool tap_name_valid(const char *name) {
        size_t n = strnlen(name, SWITCH_TAP_NAME_MAX + 1);

        if (n == 0 || n > SWITCH_TAP_NAME_MAX || streq(name, ".") || streq(name, ".."))
                return false;
        for (size_t i = 0; i < n; i++)
                if (name[i] == '/' || name[i] == ':' || name[i] <= ' ' || name[i] == 0x7f)
                        return false;
        return true;
}

uint64_t tap_retry_delay_usec(unsigned attempt) {
        const uint64_t first = 10 * USEC_PER_MSEC, cap = 2 * USEC_PER_SEC;

        if (attempt >= SWITCH_TAP_RETRY_MAX)
                return 0;
        if (attempt >= 8) /* 10 ms << 8 is past the cap */
                return cap;
        return MIN(first << attempt, cap);
}
