/*  commands.h — one received BUSP message to its handler.                 */
#ifndef BUSD_COMMANDS_H_INCLUDED
#define BUSD_COMMANDS_H_INCLUDED

#include "state.h"

/*  Handle one message (frames [0] is the routing id).  too_many: the peer
    sent more frames than wire_recv keeps.                                   */
void commands_handle (broker_t *self, zmq_msg_t *frames, int nframes, bool too_many);

#endif
