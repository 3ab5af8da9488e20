/*  counters.h — the broker's counters, listed once.

    stats_t (state.h), the CTL `stats` reply (ctl.c) and /metrics
    (metrics.c) are all generated from this table, so a counter cannot be
    added to one and forgotten in another.  Every entry only ever grows:
    Prometheus reads a counter that goes down as a restart.  Gauges (live
    sessions, queued events ...) are not counters and are computed where
    they are reported.

    X (field, CTL key, metric name without busd_ prefix, help).  A metric
    name of "" means the counter is exported another way (per policy).     */
#ifndef BUSD_COUNTERS_H_INCLUDED
#define BUSD_COUNTERS_H_INCLUDED

#define BUSD_COUNTERS(X) \
    X (accepted,         "accepted",         "events_accepted_total",     "PUBs accepted") \
    X (rejected,         "rejected",         "events_rejected_total",     "PUBs rejected") \
    X (duplicates,       "duplicates",       "events_duplicate_total",    "PUBs dropped by the dedup window") \
    X (unrouted,         "unrouted",         "events_unrouted_total",     "accepted PUBs that matched no subscription") \
    X (delivered,        "delivered",        "events_delivered_total",    "DELIVERs sent (redeliveries included)") \
    X (redelivered,      "redelivered",      "events_redelivered_total",  "redeliveries sent") \
    X (dropped,          "dropped",          "",                          "events dropped by an overflow policy") \
    X (dead_lettered,    "dead_lettered",    "events_dead_lettered_total", "events sent to the dead-letter store") \
    X (discarded_on_end, "discarded_on_end", "events_discarded_on_end_total", "events a non-durable subscription left when it ended") \
    X (protocol_errors,  "protocol_errors",  "protocol_errors_total",     "malformed messages answered with ERROR 400") \
    X (send_failures,    "send_failures",    "send_failures_total",       "sends refused by the socket") \
    X (gaps,             "gaps",             "gaps_total",                "GAP messages sent") \
    X (acks,             "acks",             "acks_total",                "ACKs received") \
    X (nacks,            "nacks",            "nacks_total",               "NACKs received") \
    X (events_in_bytes,  "bytes_in",         "bytes_in_total",            "payload bytes accepted") \
    X (sessions_opened,  "sessions_opened",  "sessions_opened_total",     "sessions started by HELLO") \
    X (sessions_expired, "sessions_expired", "sessions_expired_total",    "sessions expired by silence") \
    X (subs_over_limit,  "subscriptions_over_limit", "subscriptions_over_limit_total", "subscriptions ended with SUBEND 429 by a memory limit") \
    X (throttle_events,  "throttle_events",  "throttle_events_total",     "times a publisher was throttled") \
    X (batches,          "batches",          "batches_total",             "ROUTER batches handled") \
    X (messages_in,      "messages_in",      "messages_in_total",         "messages received") \
    X (pubb_in,          "pubb_in",          "pubb_total",                "PUBB messages received (PROTOCOL §8.2)") \
    X (deliverb_out,     "deliverb_out",     "deliverb_total",            "DELIVERB messages sent") \
    X (ackb_in,          "ackb_in",          "ackb_total",                "ACKB messages received") \
    X (receipts_sent,    "receipts_sent",    "receipts_total",            "read-receipt PINGs sent to subscribers that hold credit without returning it") \
    X (auth_refused,     "auth_refused",     "auth_refused_total",        "connections refused by authentication (ZAP)") \
    X (acl_denied,       "acl_denied",       "acl_denied_total",          "requests denied by the ACL (403)") \
    X (over_limit,       "over_limit",       "over_limit_total",          "requests refused by an abuse limit (429)") \
    X (sessions_replaced, "sessions_replaced", "sessions_replaced_total", "sessions ended because another connection used their routing id")

#endif
