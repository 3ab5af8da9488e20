/*  fakewire.h — a test double for src/broker/wire.c.

    Unit tests of channel.c and sub.c link this instead of the ROUTER: every
    send is decoded and recorded, and a test can make the next sends fail
    the way the socket would (-EAGAIN at the HWM, -EHOSTUNREACH for a peer
    that left).                                                              */
#ifndef FAKEWIRE_H_INCLUDED
#define FAKEWIRE_H_INCLUDED

#include "broker.h"

#define FAKEWIRE_MAX 4096

typedef struct {
    busp_header_t h;            /*  decoded header (its strings not valid)  */
    session_t *session;
    size_t payload_size;
} fakewire_sent_t;

extern fakewire_sent_t fakewire_sent [FAKEWIRE_MAX];
extern size_t fakewire_count;
/*  Sends fail with this code while fakewire_fail_count > 0 (then 0 again). */
extern int fakewire_fail_code;
extern int fakewire_fail_count;

void fakewire_reset (void);
/*  How many recorded sends had this command.                                */
size_t fakewire_count_of (uint8_t command);
/*  The i-th recorded send with this command, or NULL.                       */
const fakewire_sent_t *fakewire_nth (uint8_t command, size_t i);

#endif
