/* SPDX-License-Identifier: MIT */
/*
 * switch-core.h: the pure parts of vigil's L2 switch. A MAC learning table
 * deciding where a frame goes; link rules deciding what happens to it on the
 * way (drop, loss, duplication, delay) between two named machines; the pcap
 * record format; the VDE control-socket request a QEMU `-netdev vde`
 * sends; and the naming and retry schedule of TAP ports. No I/O here:
 * switch-main.c and switch-tap.c feed bytes and carry out verdicts.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define SWITCH_PORTS_MAX    256
#define SWITCH_MACS_MAX     1024
#define SWITCH_MAC_AGE_USEC (300ULL * 1000000ULL)
#define SWITCH_RULES_MAX    4096 /* a 64-node fleet split 32|32 is 2048 directed rules */
#define SWITCH_FRAME_MAX    9216 /* jumbo frames; larger datagrams are dropped */
#define ETH_HEADER_LEN      14

struct mac_entry {
        uint8_t mac[6];
        int port;
        uint64_t seen_usec;
};

struct mac_table {
        struct mac_entry e[SWITCH_MACS_MAX];
        size_t n;
};

/* Learn the source of a frame that entered on @in, and fill @out with the
 * ports it must leave on (never @in). @up[p] says whether port p exists.
 * Returns the number of egress ports; 0 for a runt frame. */
size_t mac_table_forward(struct mac_table *t, int in, const uint8_t *frame, size_t len, uint64_t now_usec,
                         const bool *up, size_t n_ports, int *out);
/* Forget everything learned on @port (it closed). */
void mac_table_forget_port(struct mac_table *t, int port);

struct link_rule {
        char from[NAME_MAX_LEN + 1]; /* "" = any machine */
        char to[NAME_MAX_LEN + 1];
        bool drop;
        uint32_t loss_ppm;
        uint32_t dup_ppm;
        uint64_t delay_us;
        uint64_t jitter_us;
};

struct link_rules {
        struct link_rule r[SWITCH_RULES_MAX];
        size_t n;
        uint64_t rng; /* xorshift64 state; never 0 */
};

struct link_verdict {
        unsigned copies;   /* 0 = dropped, 1 = normal, 2 = duplicated */
        uint64_t delay_us; /* hold the frame this long first */
};

void link_rules_init(struct link_rules *r, uint64_t seed);
/* Add or replace the rule for (from, to). -ENOSPC when full, -EINVAL for a ppm > 1e6. */
int link_rules_set(struct link_rules *r, const struct link_rule *rule);
/* Remove the rule for (from, to); from == "" && to == "" removes all. Returns how many went. */
size_t link_rules_clear(struct link_rules *r, const char *from, const char *to);
/* The most specific matching rule decides: exact pair, then one side wildcard, then both. */
struct link_verdict link_rules_decide(struct link_rules *r, const char *from, const char *to);

/* pcap (microsecond, LINKTYPE_ETHERNET). Buffers must hold 24 / 16 bytes. */
#define PCAP_FILE_HEADER_LEN   24
#define PCAP_RECORD_HEADER_LEN 16
void pcap_file_header(uint8_t out[PCAP_FILE_HEADER_LEN]);
void pcap_record_header(uint8_t out[PCAP_RECORD_HEADER_LEN], uint64_t realtime_usec, size_t len);
/* The bytes one record takes (header + frame) when @hdr is a record header
 * this switch could have written and the whole record fits in @remaining
 * bytes; 0 otherwise. A switch killed in the middle of a write leaves a
 * partial record: the restarted one cuts the file after the last whole one. */
size_t pcap_record_span(const uint8_t hdr[PCAP_RECORD_HEADER_LEN], uint64_t remaining);

/* The request a libvdeplug client writes on the control socket. */
#define VDE_SWITCH_MAGIC 0xfeedfaceu
#define VDE_REQUEST_MIN  122 /* magic, version, type, sockaddr_un; description follows */
struct vde_request {
        char path[108]; /* the client's data socket */
        char description[129];
        int port; /* requested port, 0 = any */
};
/* -EBADMSG for anything that is not a version-3 REQ_NEW_CONTROL/REQ_NEW_PORT0 request
 * with an absolute, NUL-terminated AF_UNIX path. */
int vde_request_parse(const uint8_t *buf, size_t len, struct vde_request *ret);

/* TAP ports (containers). A name is what the kernel takes for an interface
 * (1..15 bytes, no '/', ':' or whitespace, not "." or ".."); vigil's own are
 * vg<vlan>n<node>. */
#define SWITCH_TAP_NAME_MAX 15
bool tap_name_valid(const char *name);
/* A TAP whose network namespace died is re-created under the same name; the
 * name may stay taken for a moment while the kernel tears the old one down.
 * Delay before attempt @attempt (0-based): 10 ms doubling up to 2 s, about
 * two minutes in all; 0 once the attempts are used up. */
#define SWITCH_TAP_RETRY_MAX 64
uint64_t tap_retry_delay_usec(unsigned attempt);
