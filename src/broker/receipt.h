/*  receipt.h — read receipts: a PING whose PONG says the client has read
    every DELIVER sent before it (receipt.c).                                */
#ifndef BUSD_RECEIPT_H_INCLUDED
#define BUSD_RECEIPT_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include "state.h"

/*  A subscription asks for a receipt once DELIVERs not yet known to be
    read hold this fraction of its queue_bytes.                              */
#define RECEIPT_FRACTION 4

/*  session has DELIVERs worth a receipt: one PING goes out at the end of
    the batch, unless one is already on its way.                             */
void receipt_want (session_t *session);
/*  End of the batch (work.c), after the DELIVERBs left: send the PINGs.     */
void receipt_send_due (broker_t *self);
/*  A PONG: true when it was session's receipt (what it covers is released
    and the channels fed again).                                            */
bool receipt_pong (session_t *session, uint64_t nonce);
/*  session_free: forget it.                                                 */
void receipt_forget (session_t *session);

#endif
