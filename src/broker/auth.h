/*  auth.h — who is on the other end of each connection, and what it may do.

    busd runs a ZAP handler (RFC 27) for every connection on every listener,
    NULL mechanism included: it checks CURVE keys and PLAIN passwords, and
    gives each connection a User-Id no other connection ever gets plus its
    ACL identity as metadata.  Every message then carries them
    (zmq_msg_gets), so a session is bound to the connection that said HELLO
    and a peer reusing its routing id reaches nothing (PROTOCOL §4).  The
    handler runs on the broker's own thread (a REP socket in its zloop): the
    stores and the ACL need no locks and a reload swaps them between
    messages.                                                                */
#ifndef BUSD_AUTH_H_INCLUDED
#define BUSD_AUTH_H_INCLUDED

#include "state.h"
#include "acl.h"

/*  Identity of in-process peers (plugins over inproc://): no ZAP runs for
    them and the ACL does not apply.                                         */
#define AUTH_INTERNAL "internal"

/*  Check the security settings of a configuration: listener mechanisms,
    and that every file they name loads (server certificate, client keys,
    passwords, ACL).  Errors are appended one per line, naming the file.
    0 or -EINVAL.                                                            */
int auth_check_config (const config_t *config, char *errors, size_t size);

/*  Start the ZAP handler and load the stores.  Must run before the ROUTER
    binds: a handshake that finds no handler would pass unchecked.           */
int auth_start (broker_t *self);
void auth_stop (broker_t *self);

/*  Make libzmq's generated routing ids unguessable.  Call right before the
    ROUTER is created (libzmq draws its first id from rand() then).          */
void auth_seed_routing_ids (void);

/*  Bind every listener of the configuration ("bind" with "auth", and
    "listeners") on the ROUTER, each with its own mechanism.  0 or -errno.   */
int auth_bind_listeners (broker_t *self);

/*  Reload: client keys, passwords and the ACL from the new configuration
    (already checked), then apply the ACL to live subscriptions: one no
    longer allowed ends with SUBEND 403.  0, or -EINVAL with the running
    stores kept.                                                             */
int auth_reload (broker_t *self, const config_t *config);

/*  Mark the sessions whose connections closed (the ROUTER's monitor): no
    send reaches their routing ids any more; the first attempt ends them.
    Run before a batch is handled; also polled by the loop.                  */
void auth_poll_disconnects (broker_t *self);

/*  The connection a message came from: its User-Id, identity and address.
    trusted is set for in-process peers.                                     */
typedef struct {
    const char *user_id;        /*  "" for in-process peers                 */
    const char *identity;
    const char *peer;
    bool trusted;
} auth_conn_t;
void auth_conn (zmq_msg_t *frame, auth_conn_t *conn);

/*  The ACL in force, or NULL when none is configured (all allowed).         */
const acl_t *auth_acl (const broker_t *self);

/*  ACL helpers for the command handlers: true when allowed; otherwise why
    names the rule, and the denial is counted.                               */
bool auth_may_publish (broker_t *self, const session_t *session, const char *topic,
                       size_t len, char *why, size_t size);
bool auth_may_subscribe (broker_t *self, const session_t *session, const char *pattern,
                         const char *group, char *why, size_t size);
bool auth_may_ctl (broker_t *self, const session_t *session, const char *cmd,
                   char *why, size_t size);

#endif
