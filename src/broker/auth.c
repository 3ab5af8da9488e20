/*  auth.c — ZAP handler, listeners, credential stores, ACL (see auth.h).

    Why every connection goes through ZAP, even unauthenticated ones: libzmq
    lets a peer pick its own routing id, and a ROUTER only knows peers by
    that id.  The User-Id a ZAP reply assigns is the one thing a peer cannot
    choose, so sessions remember it and every message is checked against
    it.  The routing ids libzmq generates itself start from rand(): seeded
    here from the kernel and never shown to anyone (CTL shows session ids),
    a peer cannot name the id the next client will get (libzmq aborts when
    a generated id is already taken).                                         */
#include "broker.h"
#include "auth.h"
#include "topic.h"
#include "utf8.h"
#include "util.h"
#include "clock.h"
#include "hosted.h"
#include "endpoint.h"
#include <dirent.h>
#include <errno.h>
#include <sys/random.h>
#include <sys/stat.h>

#define ZAP_ENDPOINT   "inproc://zeromq.zap.01"
#define META_IDENTITY  "X-Busd-Identity"
#define MAX_LISTENERS  (CONFIG_MAX_BINDS * 2)

typedef enum { MECH_NONE = 0, MECH_PLAIN, MECH_CURVE } mech_t;

static const char *s_mech_names [] = { "none", "plain", "curve" };

typedef struct {
    char endpoint [256];
    mech_t mech;
} listener_t;

typedef struct {
    zhashx_t *curve_keys;       /*  Z85 public key -> identity name         */
    zhashx_t *passwords;        /*  user -> password                        */
    acl_t *acl;
} stores_t;

struct auth {
    zsock_t *zap;
    void *monitor;              /*  PAIR: the ROUTER's disconnect events    */
    listener_t listeners [MAX_LISTENERS];
    int listener_count;
    uint8_t server_public [32];
    uint8_t server_secret [32];
    bool have_server_key;
    stores_t stores;
    uint64_t connections;       /*  User-Id serial                          */
};

/*  ------------------------------------------------------------------
    Configuration                                                           */

static int
s_mech (const char *name, mech_t *mech)
{
    for (int i = 0; i < 3; i++)
        if (strcmp (name, s_mech_names [i]) == 0) {
            *mech = (mech_t) i;
            return 0;
        }
    return -EINVAL;
}

static int
s_listeners (const config_t *config, listener_t *out, int *count, char *errors, size_t size)
{
    const char *src = config->file ? config->file : "configuration";
    int rc = 0;
    *count = 0;
    mech_t mech = MECH_NONE;
    if (config->auth && s_mech (config->auth, &mech)) {
        busp_appendf (errors, size, "%s: key 'auth': '%s' is not one of none, plain, curve\n",
                      src, config->auth);
        return -EINVAL;
    }
    for (int i = 0; i < config->bind_count && *count < MAX_LISTENERS; i++) {
        snprintf (out [*count].endpoint, sizeof out [*count].endpoint, "%s", config->binds [i]);
        out [(*count)++].mech = mech;
    }
    if (!config->listeners_json)
        return 0;
    cJSON *array = cJSON_Parse (config->listeners_json);
    const cJSON *item;
    int index = 0;
    cJSON_ArrayForEach (item, array) {
        const cJSON *bind = cJSON_GetObjectItemCaseSensitive (item, "bind");
        const cJSON *auth = cJSON_GetObjectItemCaseSensitive (item, "auth");
        const cJSON *key;
        cJSON_ArrayForEach (key, item)
            if (strcmp (key->string, "bind") && strcmp (key->string, "auth")) {
                busp_appendf (errors, size, "%s: listeners[%d]: unknown key '%s' (expected bind, auth)\n",
                              src, index, key->string);
                rc = -EINVAL;
            }
        char why [200] = "";
        if (!cJSON_IsString (bind)
        ||  busp_endpoint_check (bind->valuestring, true, why, sizeof why)) {
            busp_appendf (errors, size, "%s: listeners[%d]: 'bind' must be an endpoint like tcp://0.0.0.0:7461%s%s\n",
                          src, index, why [0] ? ": " : "", why);
            rc = -EINVAL;
        }
        else
        if (!cJSON_IsString (auth) || s_mech (auth->valuestring, &mech)) {
            busp_appendf (errors, size, "%s: listeners[%d]: 'auth' must be none, plain or curve\n",
                          src, index);
            rc = -EINVAL;
        }
        else
        if (*count >= MAX_LISTENERS) {
            busp_appendf (errors, size, "%s: at most %d listeners\n", src, MAX_LISTENERS);
            rc = -EINVAL;
        }
        else {
            snprintf (out [*count].endpoint, sizeof out [*count].endpoint, "%s", bind->valuestring);
            out [(*count)++].mech = mech;
        }
        index++;
    }
    cJSON_Delete (array);
    return rc;
}

static int
s_load_server_cert (const char *path, uint8_t *public_key, uint8_t *secret_key,
                    char *errors, size_t size)
{
    zcert_t *cert = zcert_load (path);
    if (!cert) {
        busp_appendf (errors, size, "%s: cannot load the CURVE server certificate (make one with busd-keygen)\n",
                      path);
        return -EINVAL;
    }
    static const uint8_t zero [32] = { 0 };
    int rc = 0;
    if (memcmp (zcert_secret_key (cert), zero, 32) == 0) {
        busp_appendf (errors, size, "%s: no secret key in this certificate (give the _secret file)\n",
                      path);
        rc = -EINVAL;
    }
    else {
        memcpy (public_key, zcert_public_key (cert), 32);
        memcpy (secret_key, zcert_secret_key (cert), 32);
    }
    zcert_destroy (&cert);
    return rc;
}

/*  Every file in dir except *_secret is a client's public certificate; its
    identity is the certificate's "name" metadata, else the file name
    without its extension.                                                  */
static int
s_load_curve_dir (const char *dir, zhashx_t **keys_p, char *errors, size_t size)
{
    DIR *d = opendir (dir);
    if (!d) {
        busp_appendf (errors, size, "%s: cannot open the CURVE clients directory: %s\n",
                      dir, strerror (errno));
        return -EINVAL;
    }
    zhashx_t *keys = zhashx_new ();
    zhashx_set_destructor (keys, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_duplicator (keys, (zhashx_duplicator_fn *) strdup);
    int rc = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (e->d_name [0] == '.')
            continue;
        size_t len = strlen (e->d_name);
        if (len > 7 && strcmp (e->d_name + len - 7, "_secret") == 0)
            continue;
        char path [4096];
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat (path, &st) || !S_ISREG (st.st_mode))
            continue;
        zcert_t *cert = zcert_load (path);
        if (!cert) {
            busp_appendf (errors, size, "%s: not a CURVE certificate\n", path);
            rc = -EINVAL;
            continue;
        }
        char name [256];
        const char *meta = zcert_meta (cert, "name");
        if (meta && *meta)
            snprintf (name, sizeof name, "%s", meta);
        else {
            snprintf (name, sizeof name, "%s", e->d_name);
            char *dot = strrchr (name, '.');
            if (dot && dot != name)
                *dot = 0;
        }
        zhashx_update (keys, zcert_public_txt (cert), name);
        zcert_destroy (&cert);
    }
    closedir (d);
    if (rc)
        zhashx_destroy (&keys);
    else
        *keys_p = keys;
    return rc;
}

/*  user=password per line; blank lines and lines starting with # skipped. */
static int
s_load_passwords (const char *path, zhashx_t **table_p, char *errors, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    int rc = busp_read_file (path, &text, &len);
    if (rc) {
        busp_appendf (errors, size, "%s: cannot open the PLAIN password file: %s\n", path,
                      strerror (-rc));
        return -EINVAL;
    }
    zhashx_t *table = zhashx_new ();
    zhashx_set_destructor (table, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_duplicator (table, (zhashx_duplicator_fn *) strdup);
    int line = 0;
    rc = 0;
    char *p = text;
    while (p && *p) {
        line++;
        char *eol = strchr (p, '\n');
        if (eol)
            *eol = 0;
        size_t n = strlen (p);
        if (n && p [n - 1] == '\r')
            p [n - 1] = 0;
        char *s = p + strspn (p, " \t");
        if (*s && *s != '#') {
            char *eq = strchr (s, '=');
            if (!eq || eq == s) {
                busp_appendf (errors, size, "%s:%d: expected user=password\n", path, line);
                rc = -EINVAL;
            }
            else {
                *eq = 0;
                zhashx_update (table, s, eq + 1);
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    free (text);
    if (rc)
        zhashx_destroy (&table);
    else
        *table_p = table;
    return rc;
}

static void
s_stores_free (stores_t *stores)
{
    zhashx_destroy (&stores->curve_keys);
    zhashx_destroy (&stores->passwords);
    acl_destroy (&stores->acl);
}

static int
s_stores_load (const config_t *config, stores_t *stores, char *errors, size_t size)
{
    memset (stores, 0, sizeof *stores);
    int rc = 0;
    if (config->curve_clients_dir
    &&  s_load_curve_dir (config->curve_clients_dir, &stores->curve_keys, errors, size))
        rc = -EINVAL;
    if (config->plain_passwords
    &&  s_load_passwords (config->plain_passwords, &stores->passwords, errors, size))
        rc = -EINVAL;
    if (config->acl_file) {
        char acl_errors [4096];
        if (acl_load_file (config->acl_file, &stores->acl, acl_errors, sizeof acl_errors)) {
            busp_appendf (errors, size, "%s", acl_errors);
            rc = -EINVAL;
        }
    }
    if (rc)
        s_stores_free (stores);
    return rc;
}

int
auth_check_config (const config_t *config, char *errors, size_t size)
{
    listener_t listeners [MAX_LISTENERS];
    int count;
    int rc = s_listeners (config, listeners, &count, errors, size);
    const char *src = config->file ? config->file : "configuration";
    bool curve = false, plain = false;
    for (int i = 0; i < count; i++) {
        curve |= listeners [i].mech == MECH_CURVE;
        plain |= listeners [i].mech == MECH_PLAIN;
    }
    if (curve && !zmq_has ("curve")) {
        busp_appendf (errors, size, "%s: auth 'curve': this libzmq has no CURVE support\n", src);
        rc = -EINVAL;
    }
    if (curve && (!config->curve_server_cert || !config->curve_clients_dir)) {
        busp_appendf (errors, size, "%s: a curve listener needs curve_server_cert and curve_clients_dir\n",
                      src);
        rc = -EINVAL;
    }
    if (plain && !config->plain_passwords) {
        busp_appendf (errors, size, "%s: a plain listener needs plain_passwords\n", src);
        rc = -EINVAL;
    }
    if (config->curve_server_cert) {
        uint8_t pub [32], sec [32];
        if (s_load_server_cert (config->curve_server_cert, pub, sec, errors, size))
            rc = -EINVAL;
    }
    stores_t stores;
    if (s_stores_load (config, &stores, errors, size))
        rc = -EINVAL;
    else
        s_stores_free (&stores);
    return rc;
}

/*  ------------------------------------------------------------------
    ZAP (RFC 27)                                                            */

static void
s_meta_add (zchunk_t *chunk, const char *name, const char *value)
{
    size_t nlen = strlen (name), vlen = strlen (value);
    uint8_t head [5];
    head [0] = (uint8_t) nlen;
    zchunk_extend (chunk, head, 1);
    zchunk_extend (chunk, name, nlen);
    head [0] = (uint8_t) (vlen >> 24);
    head [1] = (uint8_t) (vlen >> 16);
    head [2] = (uint8_t) (vlen >> 8);
    head [3] = (uint8_t) vlen;
    zchunk_extend (chunk, head, 4);
    zchunk_extend (chunk, value, vlen);
}

/*  Constant time: a password check must not tell how much of it matched.  */
static bool
s_same (const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned diff = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= ((const uint8_t *) a) [i] ^ ((const uint8_t *) b) [i];
    return diff == 0;
}

static int
s_on_zap (zloop_t *loop, zsock_t *reader, void *arg)
{
    broker_t *self = arg;
    struct auth *auth = self->auth;
    zmsg_t *request = zmsg_recv (reader);
    if (!request)
        return 0;
    char *version = zmsg_popstr (request);
    char *request_id = zmsg_popstr (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    char *identity = zmsg_popstr (request);
    char *mechanism = zmsg_popstr (request);
    const char *status = "400", *text = "refused";
    char user_id [64] = "", name [256] = "";
    int index = -1;
    if (domain && strncmp (domain, "busd-", 5) == 0)
        index = atoi (domain + 5);
    if (!version || strcmp (version, "1.0") || !mechanism || index < 0
    ||  index >= auth->listener_count)
        text = "malformed ZAP request";
    else {
        mech_t want = auth->listeners [index].mech;
        if (want == MECH_NONE && strcmp (mechanism, "NULL") == 0) {
            snprintf (name, sizeof name, "%s", ACL_ANONYMOUS);
            status = "200";
        }
        else
        if (want == MECH_PLAIN && strcmp (mechanism, "PLAIN") == 0) {
            zframe_t *user = zmsg_pop (request);
            zframe_t *pass = zmsg_pop (request);
            const char *stored = NULL;
            char user_name [256] = "";
            if (user && zframe_size (user) < sizeof user_name) {
                memcpy (user_name, zframe_data (user), zframe_size (user));
                stored = auth->stores.passwords && busp_utf8_valid (user_name, zframe_size (user))
                       ? zhashx_lookup (auth->stores.passwords, user_name) : NULL;
            }
            if (stored && pass && s_same (stored, strlen (stored), zframe_data (pass), zframe_size (pass))) {
                snprintf (name, sizeof name, "%s", user_name);
                status = "200";
            }
            else
                text = "wrong user name or password";
            zframe_destroy (&user);
            zframe_destroy (&pass);
        }
        else
        if (want == MECH_CURVE && strcmp (mechanism, "CURVE") == 0) {
            zframe_t *key = zmsg_pop (request);
            if (key && zframe_size (key) == 32 && auth->stores.curve_keys) {
                char z85 [41];
                zmq_z85_encode (z85, zframe_data (key), 32);
                const char *known = zhashx_lookup (auth->stores.curve_keys, z85);
                if (known) {
                    snprintf (name, sizeof name, "%s", known);
                    status = "200";
                }
                else
                    text = "unknown client key";
            }
            zframe_destroy (&key);
        }
        else
            text = "mechanism not allowed on this listener";
    }
    if (streq (status, "200"))
        snprintf (user_id, sizeof user_id, "c%llu", (unsigned long long) ++auth->connections);
    else {
        self->stats.auth_refused++;
        log_notice ("refused a %s connection from %s: %s", mechanism ? mechanism : "?",
                    address ? address : "?", text);
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    zmsg_addstr (reply, request_id ? request_id : "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, streq (status, "200") ? "OK" : text);
    zmsg_addstr (reply, user_id);
    zchunk_t *meta = zchunk_new (NULL, 0);
    if (streq (status, "200"))
        s_meta_add (meta, META_IDENTITY, name);
    zmsg_addmem (reply, zchunk_data (meta), zchunk_size (meta));
    zchunk_destroy (&meta);
    if (zmsg_send (&reply, reader))
        zmsg_destroy (&reply);
    zstr_free (&version);
    zstr_free (&request_id);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&identity);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
    return 0;
}

/*  ------------------------------------------------------------------
    Lifecycle                                                               */

void
auth_seed_routing_ids (void)
{
    //  zsys_init seeds rand() from the clock; run it first so our seed is
    //  the one libzmq's ROUTER reads.
    zsys_init ();
    unsigned int seed;
    if (getrandom (&seed, sizeof seed, 0) != (ssize_t) sizeof seed) {
        FILE *f = fopen ("/dev/urandom", "rb");
        if (!f || fread (&seed, 1, sizeof seed, f) != sizeof seed)
            seed = (unsigned) busp_wall_us () ^ (unsigned) getpid ();
        if (f)
            fclose (f);
    }
    srand (seed);
}

int
auth_start (broker_t *self)
{
    char errors [4096] = "";
    struct auth *auth = calloc (1, sizeof *auth);
    if (!auth)
        return -ENOMEM;
    self->auth = auth;
    if (s_listeners (self->config, auth->listeners, &auth->listener_count, errors, sizeof errors)
    ||  (self->config->curve_server_cert
         && s_load_server_cert (self->config->curve_server_cert, auth->server_public,
                                auth->server_secret, errors, sizeof errors))
    ||  s_stores_load (self->config, &auth->stores, errors, sizeof errors)) {
        log_error ("security settings: %s", errors);
        return -EINVAL;
    }
    auth->have_server_key = self->config->curve_server_cert != NULL;
    auth->zap = zsock_new (ZMQ_REP);
    if (!auth->zap || zsock_bind (auth->zap, "%s", ZAP_ENDPOINT) != 0) {
        log_error ("cannot start the ZAP handler (is another one bound in this process?)");
        return -EADDRINUSE;
    }
    if (zloop_reader (self->loop, auth->zap, s_on_zap, self))
        return -ENOMEM;
    if (auth->stores.acl)
        log_notice ("ACL %s: %zu identities; everything else is denied",
                    self->config->acl_file, acl_size (auth->stores.acl));
    return 0;
}

void
auth_stop (broker_t *self)
{
    struct auth *auth = self->auth;
    if (!auth)
        return;
    if (auth->zap && self->loop)
        zloop_reader_end (self->loop, auth->zap);
    if (auth->monitor) {
        zmq_pollitem_t item = { auth->monitor, 0, ZMQ_POLLIN, 0 };
        if (self->loop)
            zloop_poller_end (self->loop, &item);
        if (self->router)
            zmq_socket_monitor (self->router, NULL, 0);
        int zero = 0;
        zmq_setsockopt (auth->monitor, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close (auth->monitor);
        auth->monitor = NULL;
    }
    zsock_destroy (&auth->zap);
    s_stores_free (&auth->stores);
    memset (auth->server_secret, 0, sizeof auth->server_secret);
    free (auth);
    self->auth = NULL;
}

static bool
s_is_local (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0 || strncmp (endpoint, "inproc://", 9) == 0)
        return true;
    const char *host = strncmp (endpoint, "tcp://", 6) == 0 ? endpoint + 6 : NULL;
    if (!host)
        return false;
    return strncmp (host, "127.", 4) == 0 || strncmp (host, "localhost:", 10) == 0
        || strncmp (host, "[::1]:", 6) == 0;
}

/*  Disconnect events: once a session's connection closes, nothing meant
    for it is ever sent to a later connection that reuses its routing id
    (sends go by routing id; the event is queued before libzmq can attach a
    newcomer under the same id).                                             */
static int
s_on_monitor (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    auth_poll_disconnects (arg);
    return 0;
}

void
auth_poll_disconnects (broker_t *self)
{
    struct auth *auth = self->auth;
    if (!auth || !auth->monitor)
        return;
    while (true) {
        zmq_msg_t event, endpoint;
        zmq_msg_init (&event);
        if (zmq_msg_recv (&event, auth->monitor, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&event);
            return;
        }
        zmq_msg_init (&endpoint);
        if (zmq_msg_more (&event))
            zmq_msg_recv (&endpoint, auth->monitor, 0);
        if (zmq_msg_size (&event) >= 6) {
            const uint8_t *d = zmq_msg_data (&event);
            uint16_t id;
            int32_t fd;
            memcpy (&id, d, 2);
            memcpy (&fd, d + 2, 4);
            if (id == ZMQ_EVENT_DISCONNECTED) {
                ptrvec_t gone = { 0 };
                for (session_t *s = zhashx_first (self->sessions); s; s = zhashx_next (self->sessions))
                    if (!s->dead && !s->trusted && s->fd == fd)
                        ptrvec_push (&gone, s);
                //  Not ended here: a group member's in-flight deliveries
                //  return to the group at ack_wait as usual (a restarting
                //  member rejoins meanwhile).  But nothing more is sent to
                //  its routing id; the first attempt ends it.
                for (size_t i = 0; i < gone.size; i++) {
                    session_t *s = gone.items [i];
                    log_info ("client '%s' (%s) disconnected", s->name, s->id_hex);
                    s->disconnected = true;
                    hosted_disconnected (s);
                }
                ptrvec_free (&gone);
            }
        }
        zmq_msg_close (&event);
        zmq_msg_close (&endpoint);
    }
}

int
auth_bind_listeners (broker_t *self)
{
    struct auth *auth = self->auth;
    void *router = self->router;
    char monitor_ep [64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://busd-monitor-%p", (void *) self);
    auth->monitor = zmq_socket (zsys_init (), ZMQ_PAIR);
    if (!auth->monitor
    ||  zmq_socket_monitor (router, monitor_ep, ZMQ_EVENT_DISCONNECTED)
    ||  zmq_connect (auth->monitor, monitor_ep)) {
        log_error ("cannot monitor the ROUTER: %s", zmq_strerror (errno));
        return -EINVAL;
    }
    zmq_pollitem_t item = { auth->monitor, 0, ZMQ_POLLIN, 0 };
    if (zloop_poller (self->loop, &item, s_on_monitor, self))
        return -ENOMEM;
    for (int i = 0; i < auth->listener_count; i++) {
        listener_t *l = &auth->listeners [i];
        char domain [32];
        snprintf (domain, sizeof domain, "busd-%d", i);
        int zero = 0, one = 1;
        int rc = zmq_setsockopt (router, ZMQ_ZAP_DOMAIN, domain, strlen (domain));
        if (rc == 0 && l->mech == MECH_NONE)
            rc = zmq_setsockopt (router, ZMQ_PLAIN_SERVER, &zero, sizeof zero);
        else
        if (rc == 0 && l->mech == MECH_PLAIN)
            rc = zmq_setsockopt (router, ZMQ_PLAIN_SERVER, &one, sizeof one);
        else
        if (rc == 0 && l->mech == MECH_CURVE) {
            if (!auth->have_server_key) {
                log_error ("cannot bind %s with auth curve: no curve_server_cert", l->endpoint);
                return -EINVAL;
            }
            rc = zmq_setsockopt (router, ZMQ_CURVE_SECRETKEY, auth->server_secret, 32);
            if (rc == 0)
                rc = zmq_setsockopt (router, ZMQ_CURVE_PUBLICKEY, auth->server_public, 32);
            if (rc == 0)
                rc = zmq_setsockopt (router, ZMQ_CURVE_SERVER, &one, sizeof one);
        }
        if (rc) {
            log_error ("cannot set up auth %s for %s: %s", s_mech_names [l->mech], l->endpoint,
                       zmq_strerror (errno));
            return -EINVAL;
        }
        if (zmq_bind (router, l->endpoint)) {
            log_error ("cannot bind %s: %s", l->endpoint, zmq_strerror (errno));
            return -EADDRINUSE;
        }
        char last [256];
        size_t size = sizeof last;
        if (zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, last, &size))
            snprintf (last, sizeof last, "%s", l->endpoint);
        zlistx_add_end (self->bound, last);
        log_notice ("busd %s listening on %s (auth %s)", PACKAGE_VERSION, last,
                    s_mech_names [l->mech]);
        if (l->mech == MECH_NONE && !s_is_local (l->endpoint))
            log_warning ("%s accepts anyone who can reach it without authentication: "
                         "use auth curve beyond loopback (doc/security.md)", l->endpoint);
    }
    return 0;
}

/*  ------------------------------------------------------------------
    Per message                                                             */

void
auth_conn (zmq_msg_t *frame, auth_conn_t *conn)
{
    const char *user_id = zmq_msg_gets (frame, "User-Id");
    const char *peer = zmq_msg_gets (frame, "Peer-Address");
    if (!user_id && !peer) {
        //  No ZAP ran and no transport address: an inproc:// peer, in this
        //  process (plugins).
        *conn = (auth_conn_t) { "", AUTH_INTERNAL, "inproc", true };
        return;
    }
    if (!user_id) {
        //  A network peer that bypassed ZAP cannot happen (every listener
        //  has a ZAP domain, so libzmq refuses pre-ZAP handshakes); if it
        //  ever did, it gets the least: anonymous, under a User-Id no ZAP
        //  reply uses, which never matches a session of another peer.
        *conn = (auth_conn_t) { "unchecked", ACL_ANONYMOUS, peer, false };
        return;
    }
    const char *identity = zmq_msg_gets (frame, META_IDENTITY);
    *conn = (auth_conn_t) { user_id, identity ? identity : ACL_ANONYMOUS, peer ? peer : "", false };
}

const acl_t *
auth_acl (const broker_t *self)
{
    return self->auth ? self->auth->stores.acl : NULL;
}

bool
auth_may_publish (broker_t *self, const session_t *session, const char *topic, size_t len,
                  char *why, size_t size)
{
    const acl_t *acl = auth_acl (self);
    if (!acl || session->trusted)
        return true;
    //  Every PUB comes here: no reason text for an allowed one (it would be
    //  formatted and thrown away), only for the rare denial.
    if (acl_may_publish (acl, session->identity, topic, len, NULL, 0))
        return true;
    acl_may_publish (acl, session->identity, topic, len, why, size);
    self->stats.acl_denied++;
    return false;
}

bool
auth_may_subscribe (broker_t *self, const session_t *session, const char *pattern,
                    const char *group, char *why, size_t size)
{
    const acl_t *acl = auth_acl (self);
    if (!acl || session->trusted)
        return true;
    if (acl_may_subscribe (acl, session->identity, pattern, strlen (pattern), why, size)
    &&  (!group || acl_may_join (acl, session->identity, group, why, size)))
        return true;
    self->stats.acl_denied++;
    return false;
}

bool
auth_may_ctl (broker_t *self, const session_t *session, const char *cmd, char *why, size_t size)
{
    const acl_t *acl = auth_acl (self);
    if (!acl || session->trusted)
        return true;
    if (acl_may_ctl (acl, session->identity, cmd, why, size))
        return true;
    self->stats.acl_denied++;
    return false;
}

int
auth_reload (broker_t *self, const config_t *config)
{
    struct auth *auth = self->auth;
    if (!auth)
        return 0;
    char errors [4096] = "";
    stores_t fresh;
    if (s_stores_load (config, &fresh, errors, sizeof errors)) {
        log_error ("reload: security settings kept as running:\n%s", errors);
        return -EINVAL;
    }
    s_stores_free (&auth->stores);
    auth->stores = fresh;
    if (!fresh.acl)
        return 0;
    //  Subscriptions the new ACL no longer allows end now, with the rule.
    ptrvec_t doomed = { 0 };
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        if (!session->trusted && !session->dead) {
            sub_t *sub = zhashx_first (session->subs);
            while (sub) {
                if (!acl_may_subscribe (fresh.acl, session->identity, sub->pattern,
                                        strlen (sub->pattern), NULL, 0)
                ||  (sub->channel->group
                     && !acl_may_join (fresh.acl, session->identity, sub->channel->group, NULL, 0)))
                    ptrvec_push (&doomed, sub);
                sub = zhashx_next (session->subs);
            }
        }
        session = zhashx_next (self->sessions);
    }
    for (size_t i = 0; i < doomed.size; i++) {
        sub_t *sub = doomed.items [i];
        session = sub->session;
        char why [512];
        if (acl_may_subscribe (fresh.acl, session->identity, sub->pattern, strlen (sub->pattern),
                               why, sizeof why))
            acl_may_join (fresh.acl, session->identity, sub->channel->group, why, sizeof why);
        log_notice ("reload: ending subscription %u of '%s' to '%s': %s", sub->sub_id,
                    session->name, sub->pattern, why);
        self->stats.acl_denied++;
        zhashx_delete (session->subs, (void *) ((uintptr_t) sub->sub_id + 1));
        channel_t *channel = sub->channel;
        if (channel->members.size == 1 && channel->pending_gap) {
            sub_send_gap (sub, channel->pending_gap);
            channel->pending_gap = 0;
        }
        sub_send_subend (sub, BUSP_E_FORBIDDEN, why);
        channel_remove_member (channel, sub);
        sub_free (&sub);
    }
    ptrvec_free (&doomed);
    return 0;
}
