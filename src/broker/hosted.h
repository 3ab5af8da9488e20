/*  hosted.h — plugins running out of process under busd-plugin-host, as
    they report themselves (CTL "plugin-host"), for CTL "plugins".

    busd does not start busd-plugin-host, so it cannot count its restarts;
    the host's keeper (the member that holds the plugin's group while the
    plugin child restarts) tells the broker instead, each time a count
    changes.  A report lives on the session that sent it and ends with it:
    one small record per session, so no client can grow this table beyond
    what its sessions already cost.                                          */
#ifndef BUSD_HOSTED_H_INCLUDED
#define BUSD_HOSTED_H_INCLUDED

#include "state.h"

/*  Store the report in req on session (replacing its previous one).
    Returns 200, or 400 with a sentence in err naming the bad key.          */
int hosted_report (broker_t *self, session_t *session, const cJSON *req,
                   char *err, size_t err_size);

/*  Append one entry per reported plugin name (the newest report wins) to
    the CTL "plugins" list.                                                  */
void hosted_list (broker_t *self, cJSON *list);

/*  The session's connection closed (auth.c): when it is a host's keeper,
    say so, since the host restarts it and the group is held meanwhile only
    by the plugin's own members.                                              */
void hosted_disconnected (session_t *session);

/*  Free the session's report (session_free).                               */
void hosted_forget (session_t *session);

#endif
