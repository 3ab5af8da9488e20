/*  security.h — CURVE and PLAIN credentials of a libbusd connection.

    Kept out of client.c: the client only asks for the socket options to be
    applied on every (re)connect; reading czmq certificate files and
    checking keys lives here, without linking czmq into libbusd (the format
    is a few lines of text: `public-key = "Z85"`, `secret-key = "Z85"`).    */
#ifndef BUSD_LIB_SECURITY_H_INCLUDED
#define BUSD_LIB_SECURITY_H_INCLUDED

#include "busd/client.h"

typedef struct {
    int mechanism;              /*  0 none, 1 plain, 2 curve                */
    char server_public [41];    /*  Z85                                     */
    char public_key [41];
    char secret_key [41];
    char user [256];
    char password [256];
} busd_security_t;

/*  Read the options: 0, -EINVAL (a key that is not 40 Z85 characters, a
    certificate without a secret key, CURVE and PLAIN together, a user
    without a password), or -ENOENT (a file that cannot be read).           */
int busd_security_init (busd_security_t *self, const busd_client_options_t *opts);

/*  Set the socket options before zmq_connect.  0 or -errno.                 */
int busd_security_apply (const busd_security_t *self, void *socket);

/*  Wipe the secrets.                                                        */
void busd_security_clear (busd_security_t *self);

/*  The value of `key = "..."` in a czmq certificate file, into out (41).    */
int busd_cert_read_key (const char *path, const char *key, char *out);

#endif
