/*  security.c — credentials for libbusd connections (see security.h).     */
#include "security.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int
busd_cert_read_key (const char *path, const char *key, char *out)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return -ENOENT;
    char line [512];
    int rc = -EINVAL;
    size_t klen = strlen (key);
    while (fgets (line, sizeof line, file)) {
        const char *p = line + strspn (line, " \t");
        if (strncmp (p, key, klen) != 0)
            continue;
        p += klen;
        p += strspn (p, " \t");
        if (*p++ != '=')
            continue;
        p += strspn (p, " \t");
        if (*p++ != '"')
            continue;
        const char *end = strchr (p, '"');
        if (end && end - p == 40) {
            memcpy (out, p, 40);
            out [40] = 0;
            rc = 0;
        }
        break;
    }
    fclose (file);
    return rc;
}

static bool
s_z85_key (const char *text)
{
    uint8_t bin [32];
    return text && strlen (text) == 40 && zmq_z85_decode (bin, text) != NULL;
}

int
busd_security_init (busd_security_t *self, const busd_client_options_t *opts)
{
    memset (self, 0, sizeof *self);
    //  An empty string (an unset-but-exported variable) means not given.
    busd_client_options_t given = *opts;
    if (given.curve_server_key && !*given.curve_server_key)
        given.curve_server_key = NULL;
    if (given.curve_cert && !*given.curve_cert)
        given.curve_cert = NULL;
    if (given.plain_user && !*given.plain_user)
        given.plain_user = NULL;
    if (given.plain_password && !*given.plain_password)
        given.plain_password = NULL;
    opts = &given;
    bool curve = opts->curve_server_key || opts->curve_cert;
    bool plain = opts->plain_user || opts->plain_password;
    if (curve && plain)
        return -EINVAL;
    if (plain) {
        if (!opts->plain_user || !opts->plain_password
        ||  strlen (opts->plain_user) > 255 || strlen (opts->plain_password) > 255)
            return -EINVAL;
        snprintf (self->user, sizeof self->user, "%s", opts->plain_user);
        snprintf (self->password, sizeof self->password, "%s", opts->plain_password);
        self->mechanism = 1;
        return 0;
    }
    if (!curve)
        return 0;
    //  Both halves are needed: the broker's key to know whom we talk to,
    //  ours to be known.
    if (!opts->curve_server_key || !opts->curve_cert)
        return -EINVAL;
    if (s_z85_key (opts->curve_server_key))
        snprintf (self->server_public, sizeof self->server_public, "%s", opts->curve_server_key);
    else {
        //  A path: the broker's public certificate.
        int rc = busd_cert_read_key (opts->curve_server_key, "public-key", self->server_public);
        if (rc)
            return rc;
    }
    int rc = busd_cert_read_key (opts->curve_cert, "public-key", self->public_key);
    if (rc == 0)
        rc = busd_cert_read_key (opts->curve_cert, "secret-key", self->secret_key);
    if (rc == -EINVAL) {
        //  Given the public file: the secret one sits next to it.
        char path [4096];
        snprintf (path, sizeof path, "%s_secret", opts->curve_cert);
        rc = busd_cert_read_key (path, "public-key", self->public_key);
        if (rc == 0)
            rc = busd_cert_read_key (path, "secret-key", self->secret_key);
    }
    if (rc || !s_z85_key (self->server_public) || !s_z85_key (self->public_key)
    ||  !s_z85_key (self->secret_key)) {
        busd_security_clear (self);
        return rc ? rc : -EINVAL;
    }
    self->mechanism = 2;
    return 0;
}

int
busd_security_apply (const busd_security_t *self, void *socket)
{
    int rc = 0;
    if (self->mechanism == 1) {
        rc = zmq_setsockopt (socket, ZMQ_PLAIN_USERNAME, self->user, strlen (self->user));
        if (rc == 0)
            rc = zmq_setsockopt (socket, ZMQ_PLAIN_PASSWORD, self->password, strlen (self->password));
    }
    else
    if (self->mechanism == 2) {
        rc = zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, self->server_public, 40);
        if (rc == 0)
            rc = zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, self->public_key, 40);
        if (rc == 0)
            rc = zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, self->secret_key, 40);
    }
    return rc ? -errno : 0;
}

void
busd_security_clear (busd_security_t *self)
{
    //  volatile: the compiler must not drop a wipe of memory about to die.
    volatile char *p = (volatile char *) self;
    for (size_t i = 0; i < sizeof *self; i++)
        p [i] = 0;
}
