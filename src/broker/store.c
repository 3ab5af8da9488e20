/*  store.c — durable streams on LMDB (see store.h for the layout).

    Why the writes are queued: LMDB allows one write transaction at a time,
    and a transaction that hits MDB_MAP_FULL can only be aborted.  Keeping
    the batch's writes as a list of (db, key, value) in one arena lets the
    commit be retried after the map grew, costs one memcpy per event, and
    makes the commit the single place where I/O errors appear, which is
    where the broker can still REJECT instead of acknowledging.

    Sync policy: the environment runs with MDB_NOSYNC; a commit whose queue
    touched a stream with sync "always" (an event or a cursor ack) turns it
    off for that commit, so LMDB's own ordered data-then-meta fsyncs make
    the transaction durable before store_commit returns.  "interval" syncs
    from store_tick, "never" leaves it to the kernel.  Durability against a
    process crash (SIGKILL) does not depend on the policy at all: a
    committed transaction is in the page cache.                             */
#include "store.h"
#include <lmdb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <czmq.h>

#define DEFAULT_MAP       (64ULL * 1024 * 1024)
#define MAX_MAP           (1ULL << 40)      /*  1 TiB of address space     */
#define MAX_DBS           4096
#define EVENT_HEAD        14                /*  ts, topic len, id len, hdr len */
#define RETENTION_BUDGET  4096
#define DEDUP_BUDGET      4096

typedef enum { OP_PUT, OP_APPEND, OP_DEL } op_kind_t;

typedef struct {
    op_kind_t kind;
    MDB_dbi dbi;
    size_t koff, klen, voff, vlen;
} op_t;

typedef struct {
    uint64_t seq;
    uint16_t attempts;
    bool acked;
} cstate_t;

struct store_cursor {
    store_stream_t *stream;
    char name [256];
    char group [256];
    uint64_t floor;
    /*  Per-seq state at or above the floor, sorted by seq; the live part
        starts at head so the floor moving up costs no memmove.             */
    cstate_t *states;
    size_t head, len, cap;
    size_t acked_count;
    bool dirty;                 /*  header (floor) must be written          */
    bool deleted;
};

struct store_stream {
    stream_config_t config;
    MDB_dbi dbi;
    uint64_t first;             /*  committed range                         */
    uint64_t last;
    uint64_t next;              /*  next seq to assign                      */
    uint64_t bytes;             /*  committed record bytes                  */
    uint64_t pending_bytes;
    uint64_t expired;
    bool dirty;                 /*  appended in the current queue           */
    zlistx_t *cursors;          /*  store_cursor_t * (owned)                */
};

struct store {
    MDB_env *env;
    char *dir;
    uint64_t map_size;
    uint64_t max_map;           /*  ceiling for growth (store_set_max_size) */
    MDB_dbi meta, cursors, cstate, dedup, dlq;
    zlistx_t *streams;          /*  store_stream_t * (owned)                */
    /*  The queue: ops index into arena.                                    */
    op_t *ops;
    size_t op_count, op_cap;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    bool need_sync;
    bool cursors_dirty;         /*  some cursor's floor moved               */
    bool unsynced;              /*  committed without fsync                 */
    int64_t unsynced_since_ms;
    int64_t dedup_window_ms;
    size_t retention_budget;
    uint64_t commits, syncs, failures;
    int64_t last_tick_ms;
    char error [512];
};

/*  ---- helpers ------------------------------------------------------ */

static void
s_put_u64 (uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p [i] = (uint8_t) v;
        v >>= 8;
    }
}

static uint64_t
s_get_u64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p [i];
    return v;
}

static void
s_put_u32 (uint8_t *p, uint32_t v)
{
    p [0] = (uint8_t) (v >> 24); p [1] = (uint8_t) (v >> 16);
    p [2] = (uint8_t) (v >> 8); p [3] = (uint8_t) v;
}

static uint32_t
s_get_u32 (const uint8_t *p)
{
    return ((uint32_t) p [0] << 24) | ((uint32_t) p [1] << 16) | ((uint32_t) p [2] << 8) | p [3];
}

static int
s_errno (int rc)
{
    if (rc == 0)
        return 0;
    if (rc == MDB_MAP_FULL)
        return -ENOSPC;
    if (rc > 0)
        return -rc;                 /*  a system errno                     */
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    if (rc == MDB_DBS_FULL || rc == MDB_READERS_FULL || rc == MDB_TXN_FULL)
        return -ENOMEM;
    return -EIO;                    /*  MDB_PANIC, MDB_CORRUPTED ...       */
}

/*  LMDB reports a write that ran out of space part-way as EIO (a short
    write): ask the filesystem whether it is full.                          */
static int
s_write_error (store_t *self, int rc, size_t wanted)
{
    if (rc != EIO && rc != ENOSPC)
        return rc;
    struct statvfs st;
    if (statvfs (self->dir, &st) == 0) {
        uint64_t avail = (uint64_t) st.f_bavail * st.f_frsize;
        if (avail < wanted + 1024 * 1024)
            return ENOSPC;
    }
    return rc;
}

/*  Double the map (at most to the ceiling); false when it cannot grow.
    Only valid with no transaction open, which is how callers use it.       */
static bool
s_grow (store_t *self)
{
    uint64_t size = self->map_size * 2;
    if (size > self->max_map)
        size = self->max_map;
    if (size <= self->map_size || mdb_env_set_mapsize (self->env, (size_t) size))
        return false;
    self->map_size = size;
    return true;
}

void
store_set_max_size (store_t *self, uint64_t bytes)
{
    self->max_map = bytes && bytes < MAX_MAP ? bytes : MAX_MAP;
}

static void
s_fail (store_t *self, const char *what, int rc)
{
    snprintf (self->error, sizeof self->error, "%s: %s in %s", what,
              rc == MDB_MAP_FULL ? "the store is full (store_max_size reached)"
              : rc == ENOSPC ? "no space left on the device" : mdb_strerror (rc),
              self->dir);
}

uint16_t
store_reject_code (int rc)
{
    return rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG ? 507 : 503;
}

const char *
store_last_error (const store_t *self)
{
    return self->error;
}

const char *
store_dir (const store_t *self)
{
    return self->dir;
}

uint64_t
store_map_size (const store_t *self)
{
    return self->map_size;
}

const char *
store_sync_name (stream_sync_t sync)
{
    return sync == STREAM_SYNC_ALWAYS ? "always" : sync == STREAM_SYNC_INTERVAL ? "interval"
                                                                                : "never";
}

/*  ---- the queue ---------------------------------------------------- */

static int
s_reserve (store_t *self, size_t bytes)
{
    if (self->op_count == self->op_cap) {
        size_t cap = self->op_cap ? self->op_cap * 2 : 1024;
        op_t *ops = realloc (self->ops, cap * sizeof (op_t));
        if (!ops)
            return -ENOMEM;
        self->ops = ops;
        self->op_cap = cap;
    }
    if (self->arena_len + bytes > self->arena_cap) {
        size_t cap = self->arena_cap ? self->arena_cap : 65536;
        while (cap < self->arena_len + bytes)
            cap *= 2;
        uint8_t *arena = realloc (self->arena, cap);
        if (!arena)
            return -ENOMEM;
        self->arena = arena;
        self->arena_cap = cap;
    }
    return 0;
}

/*  Queue an op whose key and value bytes the caller writes into the arena
    at the returned pointers (key first, then value).                        */
static op_t *
s_queue (store_t *self, op_kind_t kind, MDB_dbi dbi, size_t klen, size_t vlen,
         uint8_t **key_p, uint8_t **val_p)
{
    if (s_reserve (self, klen + vlen))
        return NULL;
    op_t *op = &self->ops [self->op_count++];
    op->kind = kind;
    op->dbi = dbi;
    op->koff = self->arena_len;
    op->klen = klen;
    op->voff = self->arena_len + klen;
    op->vlen = vlen;
    *key_p = self->arena + op->koff;
    if (val_p)
        *val_p = self->arena + op->voff;
    self->arena_len += klen + vlen;
    return op;
}

static void
s_queue_clear (store_t *self)
{
    self->op_count = 0;
    self->arena_len = 0;
    self->need_sync = false;
}

bool
store_pending (const store_t *self)
{
    return self->op_count > 0 || self->cursors_dirty;
}

bool
store_pending_sync (const store_t *self)
{
    return store_pending (self) && self->need_sync;
}

/*  ---- open / close ------------------------------------------------- */

static int
s_open_dbi (store_t *self, MDB_txn *txn, const char *name, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open (txn, name, MDB_CREATE, dbi);
    if (rc)
        s_fail (self, name, rc);
    return rc;
}

store_t *
store_open (const char *dir, uint64_t initial_map, char *err, size_t err_size, int *rc_p)
{
    int dummy;
    if (!rc_p)
        rc_p = &dummy;
    *rc_p = 0;
    store_t *self = calloc (1, sizeof (store_t));
    if (!self || !(self->dir = strdup (dir))
    ||  !(self->streams = zlistx_new ())) {
        snprintf (err, err_size, "%s: out of memory", dir);
        *rc_p = -ENOMEM;
        if (self)
            free (self->dir);
        free (self);
        return NULL;
    }
    self->map_size = initial_map ? initial_map : DEFAULT_MAP;
    self->max_map = MAX_MAP;
    self->retention_budget = RETENTION_BUDGET;
    if (mkdir (dir, 0750) && errno != EEXIST) {
        *rc_p = -errno;
        snprintf (err, err_size, "data_dir %s: cannot create: %s", dir, strerror (errno));
        store_destroy (&self);
        return NULL;
    }
    int rc = mdb_env_create (&self->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs (self->env, MAX_DBS);
    if (rc == 0)
        rc = mdb_env_set_mapsize (self->env, (size_t) self->map_size);
    if (rc == 0)
        rc = mdb_env_open (self->env, dir, MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD, 0640);
    if (rc == 0) {
        //  An existing environment may be larger than asked for.
        MDB_envinfo info;
        mdb_env_info (self->env, &info);
        if (info.me_mapsize > self->map_size)
            self->map_size = info.me_mapsize;
        MDB_txn *txn;
        rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc == 0) {
            rc = s_open_dbi (self, txn, "meta", &self->meta);
            if (rc == 0)
                rc = s_open_dbi (self, txn, "cursors", &self->cursors);
            if (rc == 0)
                rc = s_open_dbi (self, txn, "cstate", &self->cstate);
            if (rc == 0)
                rc = s_open_dbi (self, txn, "dedup", &self->dedup);
            if (rc == 0)
                rc = s_open_dbi (self, txn, "dlq", &self->dlq);
            if (rc == 0)
                rc = mdb_txn_commit (txn);
            else
                mdb_txn_abort (txn);
        }
    }
    if (rc) {
        *rc_p = s_errno (rc);
        snprintf (err, err_size, "data_dir %s: cannot open the LMDB environment: %s", dir,
                  mdb_strerror (rc));
        store_destroy (&self);
        return NULL;
    }
    return self;
}

static void
s_cursor_free (store_cursor_t **cursor_p)
{
    store_cursor_t *cursor = *cursor_p;
    if (cursor) {
        free (cursor->states);
        free (cursor);
        *cursor_p = NULL;
    }
}

static void
s_cursor_destructor (void **item_p)
{
    s_cursor_free ((store_cursor_t **) item_p);
}

static void
s_stream_free (store_stream_t **stream_p)
{
    store_stream_t *stream = *stream_p;
    if (stream) {
        zlistx_destroy (&stream->cursors);
        free (stream);
        *stream_p = NULL;
    }
}

void
store_destroy (store_t **self_p)
{
    store_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (self->streams) {
        store_stream_t *stream = zlistx_first (self->streams);
        while (stream) {
            s_stream_free (&stream);
            stream = zlistx_next (self->streams);
        }
        zlistx_destroy (&self->streams);
    }
    if (self->env) {
        //  Whatever "interval" or "never" left in the page cache.
        if (self->unsynced)
            mdb_env_sync (self->env, 1);
        mdb_env_close (self->env);
    }
    free (self->ops);
    free (self->arena);
    free (self->dir);
    free (self);
}

/*  ---- streams ------------------------------------------------------ */

static size_t
s_meta_key (uint8_t *key, const char *name)
{
    size_t len = strlen (name);
    key [0] = 's';
    key [1] = ':';
    memcpy (key + 2, name, len);
    return len + 2;
}

/*  Read first (by MDB_FIRST), last and bytes in txn.                        */
static int
s_stream_load (store_t *self, MDB_txn *txn, store_stream_t *stream)
{
    uint8_t kbuf [80];
    MDB_val key = { s_meta_key (kbuf, stream->config.name), kbuf }, val;
    stream->last = 0;
    stream->bytes = 0;
    int rc = mdb_get (txn, self->meta, &key, &val);
    if (rc == 0 && val.mv_size >= 16) {
        stream->last = s_get_u64 (val.mv_data);
        stream->bytes = s_get_u64 ((uint8_t *) val.mv_data + 8);
    }
    else
    if (rc != MDB_NOTFOUND && rc != 0)
        return rc;
    MDB_cursor *c;
    rc = mdb_cursor_open (txn, stream->dbi, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get (c, &k, &v, MDB_FIRST);
    stream->first = rc == 0 && k.mv_size == 8 ? s_get_u64 (k.mv_data) : stream->last + 1;
    //  Trust the events over the meta record, should they ever disagree.
    if (mdb_cursor_get (c, &k, &v, MDB_LAST) == 0 && k.mv_size == 8
    &&  s_get_u64 (k.mv_data) > stream->last)
        stream->last = s_get_u64 (k.mv_data);
    mdb_cursor_close (c);
    if (stream->first > stream->last + 1)
        stream->first = stream->last + 1;
    stream->next = stream->last + 1;
    return 0;
}

static int s_cursors_load (store_t *self, MDB_txn *txn, store_stream_t *stream);

int
store_stream_open (store_t *self, const stream_config_t *config, store_stream_t **stream_p)
{
    store_stream_t *stream = store_stream_find (self, config->name);
    if (stream) {
        stream->config = *config;
        if (stream_p)
            *stream_p = stream;
        return 0;
    }
    //  A DBI opened in a write transaction must be committed before other
    //  transactions may use it: commit what is queued first.
    int rc = store_commit (self);
    if (rc)
        return rc;
    stream = calloc (1, sizeof (store_stream_t));
    if (!stream || !(stream->cursors = zlistx_new ())) {
        free (stream);
        return -ENOMEM;
    }
    zlistx_set_destructor (stream->cursors, s_cursor_destructor);
    stream->config = *config;
    char dbname [80];
    snprintf (dbname, sizeof dbname, "e:%s", config->name);
    MDB_txn *txn;
    rc = mdb_txn_begin (self->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open (txn, dbname, MDB_CREATE, &stream->dbi);
        if (rc == 0)
            rc = s_stream_load (self, txn, stream);
        if (rc == 0)
            rc = s_cursors_load (self, txn, stream);
        if (rc == 0)
            rc = mdb_txn_commit (txn);
        else
            mdb_txn_abort (txn);
    }
    if (rc) {
        s_fail (self, dbname, rc);
        s_stream_free (&stream);
        return s_errno (rc);
    }
    zlistx_add_end (self->streams, stream);
    if (stream_p)
        *stream_p = stream;
    return 0;
}

store_stream_t *
store_stream_find (store_t *self, const char *name)
{
    store_stream_t *stream = zlistx_first (self->streams);
    while (stream) {
        if (strcmp (stream->config.name, name) == 0)
            return stream;
        stream = zlistx_next (self->streams);
    }
    return NULL;
}

store_stream_t *
store_stream_at (store_t *self, size_t index)
{
    store_stream_t *stream = zlistx_first (self->streams);
    while (stream && index--)
        stream = zlistx_next (self->streams);
    return stream;
}

const char *
store_stream_name (const store_stream_t *stream)
{
    return stream->config.name;
}

const stream_config_t *
store_stream_config (const store_stream_t *stream)
{
    return &stream->config;
}

uint64_t
store_stream_first (const store_stream_t *stream)
{
    return stream->first;
}

uint64_t
store_stream_last (const store_stream_t *stream)
{
    return stream->last;
}

uint64_t
store_stream_next (const store_stream_t *stream)
{
    return stream->next;
}

uint64_t
store_stream_events (const store_stream_t *stream)
{
    return stream->last + 1 - stream->first;
}

uint64_t
store_stream_bytes (const store_stream_t *stream)
{
    return stream->bytes;
}

uint64_t
store_stream_expired (const store_stream_t *stream)
{
    return stream->expired;
}

static int
s_write_meta (store_t *self, MDB_txn *txn, store_stream_t *stream)
{
    uint8_t kbuf [80], vbuf [16];
    MDB_val key = { s_meta_key (kbuf, stream->config.name), kbuf };
    s_put_u64 (vbuf, stream->last);
    s_put_u64 (vbuf + 8, stream->bytes);
    MDB_val val = { sizeof vbuf, vbuf };
    return mdb_put (txn, self->meta, &key, &val, 0);
}

/*  Run fn in a write transaction of its own (after the queue committed),
    growing the map when it runs out.                                        */
static int
s_write_txn (store_t *self, int (*fn) (store_t *, MDB_txn *, void *), void *arg,
             const char *what)
{
    int rc = store_commit (self);
    if (rc)
        return rc;
    for (int tries = 0; ; tries++) {
        MDB_txn *txn;
        rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc == 0) {
            rc = fn (self, txn, arg);
            if (rc == 0)
                rc = mdb_txn_commit (txn);
            else
                mdb_txn_abort (txn);
        }
        if (rc == MDB_MAP_FULL && tries < 8 && s_grow (self))
            continue;
        break;
    }
    if (rc) {
        rc = s_write_error (self, rc, 0);
        s_fail (self, what, rc);
        return s_errno (rc);
    }
    self->unsynced = true;
    mdb_env_sync (self->env, 1);
    self->unsynced = false;
    return 0;
}

static int
s_purge_fn (store_t *self, MDB_txn *txn, void *arg)
{
    store_stream_t *stream = arg;
    int rc = mdb_drop (txn, stream->dbi, 0);
    if (rc)
        return rc;
    uint64_t bytes = stream->bytes;
    stream->bytes = 0;
    rc = s_write_meta (self, txn, stream);
    stream->bytes = bytes;
    return rc;
}

int
store_stream_purge (store_t *self, store_stream_t *stream)
{
    int rc = s_write_txn (self, s_purge_fn, stream, "purge");
    if (rc == 0) {
        stream->first = stream->last + 1;
        stream->bytes = 0;
    }
    return rc;
}

/*  Delete every key of db that starts with prefix.                          */
static int
s_del_prefix (MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t len)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open (txn, dbi, &c);
    if (rc)
        return rc;
    MDB_val k = { len, (void *) prefix }, v;
    rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= len && memcmp (k.mv_data, prefix, len) == 0) {
        rc = mdb_cursor_del (c, 0);
        if (rc == 0)
            rc = mdb_cursor_get (c, &k, &v, MDB_GET_CURRENT);
        if (rc == EINVAL)
            rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

typedef struct {
    const char *name;
    MDB_dbi dbi;
    bool have_dbi;
} delete_ctx_t;

static int
s_delete_fn (store_t *self, MDB_txn *txn, void *arg)
{
    delete_ctx_t *ctx = arg;
    int rc = 0;
    if (!ctx->have_dbi) {
        char dbname [80];
        snprintf (dbname, sizeof dbname, "e:%s", ctx->name);
        rc = mdb_dbi_open (txn, dbname, 0, &ctx->dbi);
        if (rc == MDB_NOTFOUND)
            return MDB_NOTFOUND;
        if (rc)
            return rc;
    }
    rc = mdb_drop (txn, ctx->dbi, 1);
    if (rc)
        return rc;
    uint8_t kbuf [80];
    MDB_val key = { s_meta_key (kbuf, ctx->name), kbuf };
    rc = mdb_del (txn, self->meta, &key, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    //  Cursors of the stream: keys "<stream>\0...".
    size_t plen = strlen (ctx->name) + 1;
    rc = s_del_prefix (txn, self->cursors, ctx->name, plen);
    if (rc == 0)
        rc = s_del_prefix (txn, self->cstate, ctx->name, plen);
    return rc;
}

int
store_stream_delete (store_t *self, store_stream_t **stream_p)
{
    store_stream_t *stream = *stream_p;
    delete_ctx_t ctx = { stream->config.name, stream->dbi, true };
    int rc = s_write_txn (self, s_delete_fn, &ctx, "stream delete");
    if (rc)
        return rc;
    void *handle = zlistx_find (self->streams, stream);
    if (handle)
        zlistx_detach (self->streams, handle);
    s_stream_free (stream_p);
    return 0;
}

int
store_stream_delete_name (store_t *self, const char *name)
{
    store_stream_t *stream = store_stream_find (self, name);
    if (stream)
        return store_stream_delete (self, &stream);
    delete_ctx_t ctx = { name, 0, false };
    int rc = s_write_txn (self, s_delete_fn, &ctx, "stream delete");
    return rc == -ENOENT ? -ENOENT : rc;
}

int
store_stream_names (store_t *self, void (*fn) (const char *name, void *arg), void *arg)
{
    //  The main database lists the named ones: a stream is "e:<name>".
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return s_errno (rc);
    MDB_dbi main_dbi;
    MDB_cursor *c;
    rc = mdb_dbi_open (txn, NULL, 0, &main_dbi);
    if (rc == 0)
        rc = mdb_cursor_open (txn, main_dbi, &c);
    if (rc == 0) {
        MDB_val k = { 2, "e:" }, v;
        rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && k.mv_size > 2 && memcmp (k.mv_data, "e:", 2) == 0) {
            char name [80];
            size_t len = k.mv_size - 2 < 79 ? k.mv_size - 2 : 79;
            memcpy (name, (char *) k.mv_data + 2, len);
            name [len] = 0;
            fn (name, arg);
            rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close (c);
    }
    mdb_txn_abort (txn);
    return rc == MDB_NOTFOUND ? 0 : s_errno (rc);
}

/*  ---- appends ------------------------------------------------------- */

uint64_t
store_append (store_t *self, store_stream_t *stream, int64_t ts_us,
              const char *topic, size_t topic_len, const char *msg_id, size_t msg_id_len,
              const void *headers, size_t headers_len, const void *payload, size_t payload_len)
{
    if (topic_len > 255 || msg_id_len > 255 || headers_len > UINT32_MAX)
        return 0;
    size_t vlen = EVENT_HEAD + topic_len + msg_id_len + headers_len + payload_len;
    uint8_t *k, *v;
    if (!s_queue (self, OP_APPEND, stream->dbi, 8, vlen, &k, &v))
        return 0;
    uint64_t seq = stream->next++;
    s_put_u64 (k, seq);
    s_put_u64 (v, (uint64_t) ts_us);
    v [8] = (uint8_t) topic_len;
    v [9] = (uint8_t) msg_id_len;
    s_put_u32 (v + 10, (uint32_t) headers_len);
    uint8_t *p = v + EVENT_HEAD;
    memcpy (p, topic, topic_len);
    p += topic_len;
    if (msg_id_len)
        memcpy (p, msg_id, msg_id_len);
    p += msg_id_len;
    if (headers_len)
        memcpy (p, headers, headers_len);
    p += headers_len;
    if (payload_len)
        memcpy (p, payload, payload_len);
    stream->pending_bytes += vlen;
    stream->dirty = true;
    if (stream->config.sync == STREAM_SYNC_ALWAYS)
        self->need_sync = true;
    return seq;
}

static bool
s_parse_event (const MDB_val *k, const MDB_val *v, store_event_t *ev)
{
    if (k->mv_size != 8 || v->mv_size < EVENT_HEAD)
        return false;
    const uint8_t *p = v->mv_data;
    ev->seq = s_get_u64 (k->mv_data);
    ev->ts_us = (int64_t) s_get_u64 (p);
    ev->topic_len = p [8];
    ev->msg_id_len = p [9];
    ev->headers_len = s_get_u32 (p + 10);
    if (EVENT_HEAD + ev->topic_len + ev->msg_id_len + ev->headers_len > v->mv_size)
        return false;
    ev->topic = (const char *) p + EVENT_HEAD;
    ev->msg_id = ev->topic + ev->topic_len;
    ev->headers = ev->headers_len ? ev->msg_id + ev->msg_id_len : NULL;
    ev->payload = (const uint8_t *) ev->msg_id + ev->msg_id_len + ev->headers_len;
    ev->payload_len = v->mv_size - EVENT_HEAD - ev->topic_len - ev->msg_id_len
                    - ev->headers_len;
    return true;
}

/*  Whether the front event of stream is over one of its limits.             */
static bool
s_over_limit (const store_stream_t *stream, int64_t now_us, const MDB_val *front)
{
    uint64_t events = stream->last + 1 - stream->first;
    if (events == 0)
        return false;
    if (stream->config.max_events > 0 && events > (uint64_t) stream->config.max_events)
        return true;
    if (stream->config.max_bytes > 0 && stream->bytes > (uint64_t) stream->config.max_bytes)
        return true;
    if (stream->config.max_age_ms > 0 && now_us > 0 && front && front->mv_size >= 8) {
        int64_t ts = (int64_t) s_get_u64 (front->mv_data);
        if (ts < now_us - stream->config.max_age_ms * 1000)
            return true;
    }
    return false;
}

/*  Remove events from the front of stream while it is over a limit, at
    most budget of them.  Updates first/bytes in memory (the caller's txn
    writes meta).                                                            */
static int
s_retention (store_t *self, MDB_txn *txn, store_stream_t *stream, int64_t now_us,
             size_t budget, size_t *removed_p)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open (txn, stream->dbi, &c);
    if (rc)
        return rc;
    size_t removed = 0;
    MDB_val k, v;
    rc = mdb_cursor_get (c, &k, &v, MDB_FIRST);
    while (rc == 0 && removed < budget && s_over_limit (stream, now_us, &v)) {
        size_t size = v.mv_size;
        rc = mdb_cursor_del (c, 0);
        if (rc)
            break;
        stream->bytes = stream->bytes > size ? stream->bytes - size : 0;
        stream->first++;
        removed++;
        rc = mdb_cursor_get (c, &k, &v, MDB_GET_CURRENT);
        if (rc == EINVAL)
            rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
        if (rc == 0 && k.mv_size == 8)
            stream->first = s_get_u64 (k.mv_data);
    }
    mdb_cursor_close (c);
    if (rc == MDB_NOTFOUND) {
        stream->first = stream->last + 1;
        rc = 0;
    }
    stream->expired += removed;
    *removed_p = removed;
    return rc;
}

/*  ---- cursors: queue helpers --------------------------------------- */

static size_t
s_cursor_key (uint8_t *key, const store_cursor_t *cursor)
{
    size_t slen = strlen (cursor->stream->config.name);
    size_t nlen = strlen (cursor->name);
    memcpy (key, cursor->stream->config.name, slen + 1);
    memcpy (key + slen + 1, cursor->name, nlen + 1);
    return slen + nlen + 2;
}

static int
s_queue_cursor_header (store_t *self, store_cursor_t *cursor)
{
    uint8_t kbuf [400];
    size_t klen = s_cursor_key (kbuf, cursor);
    size_t glen = strlen (cursor->group);
    uint8_t *k, *v;
    if (!s_queue (self, OP_PUT, self->cursors, klen - 1, 8 + glen, &k, &v))
        return -ENOMEM;
    //  The header key is "<stream>\0<name>" (no trailing NUL): cstate
    //  keys extend it with "\0" + seq and must not collide.
    memcpy (k, kbuf, klen - 1);
    s_put_u64 (v, cursor->floor);
    memcpy (v + 8, cursor->group, glen);
    return 0;
}

static int
s_queue_cstate (store_t *self, store_cursor_t *cursor, const cstate_t *state, bool del)
{
    uint8_t kbuf [400];
    size_t klen = s_cursor_key (kbuf, cursor);
    uint8_t *k, *v;
    if (!s_queue (self, del ? OP_DEL : OP_PUT, self->cstate, klen + 8, del ? 0 : 3, &k, &v))
        return -ENOMEM;
    memcpy (k, kbuf, klen);
    s_put_u64 (k + klen, state->seq);
    if (!del) {
        v [0] = state->acked;
        v [1] = (uint8_t) (state->attempts >> 8);
        v [2] = (uint8_t) state->attempts;
    }
    if (cursor->stream->config.sync == STREAM_SYNC_ALWAYS)
        self->need_sync = true;
    return 0;
}

/*  ---- commit -------------------------------------------------------- */

static int
s_apply (store_t *self, MDB_txn *txn)
{
    for (size_t i = 0; i < self->op_count; i++) {
        op_t *op = &self->ops [i];
        MDB_val key = { op->klen, self->arena + op->koff };
        MDB_val val = { op->vlen, self->arena + op->voff };
        int rc;
        if (op->kind == OP_DEL) {
            rc = mdb_del (txn, op->dbi, &key, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
        else
            rc = mdb_put (txn, op->dbi, &key, &val, op->kind == OP_APPEND ? MDB_APPEND : 0);
        if (rc)
            return rc;
    }
    return 0;
}

int
store_commit (store_t *self)
{
    if (self->op_count == 0 && !self->cursors_dirty)
        return 0;
    //  Cursor headers last, once each, whatever number of acks moved them.
    if (self->cursors_dirty) {
        store_stream_t *stream = zlistx_first (self->streams);
        while (stream) {
            store_cursor_t *cursor = zlistx_first (stream->cursors);
            while (cursor) {
                if (cursor->dirty && s_queue_cursor_header (self, cursor)) {
                    s_queue_clear (self);
                    return -ENOMEM;
                }
                cursor->dirty = false;
                cursor = zlistx_next (stream->cursors);
            }
            stream = zlistx_next (self->streams);
        }
        self->cursors_dirty = false;
    }
    int rc = 0;
    size_t nstreams = zlistx_size (self->streams);
    //  The new range and what retention removes become true only when the
    //  transaction commits: keep the old values to restore otherwise.
    uint64_t saved [nstreams ? nstreams : 1][4];
    size_t i = 0;
    store_stream_t *stream;
    for (stream = zlistx_first (self->streams); stream; stream = zlistx_next (self->streams), i++) {
        saved [i][0] = stream->first;
        saved [i][1] = stream->last;
        saved [i][2] = stream->bytes;
        saved [i][3] = stream->expired;
    }
    for (int tries = 0; ; tries++) {
        MDB_txn *txn;
        rc = mdb_txn_begin (self->env, NULL, 0, &txn);
        if (rc == 0) {
            rc = s_apply (self, txn);
            for (stream = zlistx_first (self->streams); rc == 0 && stream;
                 stream = zlistx_next (self->streams)) {
                if (!stream->dirty)
                    continue;
                bool was_empty = stream->first > stream->last;
                stream->last = stream->next - 1;
                stream->bytes += stream->pending_bytes;
                if (was_empty)
                    stream->first = stream->first > stream->last ? stream->last + 1
                                                                 : stream->first;
                //  Count and byte limits, bounded: a commit removes at most
                //  the budget per stream; store_tick catches up.
                size_t removed = 0;
                rc = s_retention (self, txn, stream, 0, self->retention_budget, &removed);
                if (rc == 0)
                    rc = s_write_meta (self, txn, stream);
            }
            if (rc == 0) {
                //  Fsync in LMDB's own order (data, then meta) when asked.
                if (self->need_sync)
                    mdb_env_set_flags (self->env, MDB_NOSYNC, 0);
                rc = mdb_txn_commit (txn);
                if (self->need_sync)
                    mdb_env_set_flags (self->env, MDB_NOSYNC, 1);
            }
            else
                mdb_txn_abort (txn);
        }
        if (rc == 0)
            break;
        i = 0;
        for (stream = zlistx_first (self->streams); stream; stream = zlistx_next (self->streams), i++) {
            stream->first = saved [i][0];
            stream->last = saved [i][1];
            stream->bytes = saved [i][2];
            stream->expired = saved [i][3];
        }
        if (rc == MDB_MAP_FULL && tries < 16 && s_grow (self))
            continue;
        break;
    }
    for (stream = zlistx_first (self->streams); stream; stream = zlistx_next (self->streams)) {
        //  After a failure the appends are forgotten: their seqs are given
        //  out again, and their PUBs are rejected by the caller.
        if (rc)
            stream->next = stream->last + 1;
        stream->pending_bytes = 0;
        stream->dirty = false;
    }
    bool synced = self->need_sync;
    if (rc)
        rc = s_write_error (self, rc, self->arena_len * 2);
    s_queue_clear (self);
    if (rc) {
        self->failures++;
        s_fail (self, "commit", rc);
        return s_errno (rc);
    }
    self->commits++;
    if (synced) {
        self->syncs++;
        self->unsynced = false;
    }
    else
    if (!self->unsynced) {
        self->unsynced = true;
        self->unsynced_since_ms = zclock_mono ();
    }
    self->error [0] = 0;
    return 0;
}

uint64_t
store_commits (const store_t *self)
{
    return self->commits;
}

uint64_t
store_syncs (const store_t *self)
{
    return self->syncs;
}

uint64_t
store_commit_failures (const store_t *self)
{
    return self->failures;
}

void
store_set_retention_budget (store_t *self, size_t events)
{
    self->retention_budget = events ? events : 1;
}

/*  ---- tick: interval sync, age retention, dedup expiry -------------- */

typedef struct {
    int64_t now_ms, now_us;
    bool changed;
} tick_ctx_t;

static int
s_tick_fn (store_t *self, MDB_txn *txn, void *arg)
{
    tick_ctx_t *ctx = arg;
    int rc = 0;
    for (store_stream_t *stream = zlistx_first (self->streams); rc == 0 && stream;
         stream = zlistx_next (self->streams)) {
        size_t removed = 0;
        rc = s_retention (self, txn, stream, ctx->now_us, self->retention_budget, &removed);
        if (rc == 0 && removed) {
            rc = s_write_meta (self, txn, stream);
            ctx->changed = true;
        }
    }
    if (rc == 0 && self->dedup_window_ms > 0) {
        MDB_cursor *c;
        rc = mdb_cursor_open (txn, self->dedup, &c);
        if (rc)
            return rc;
        MDB_val k, v;
        size_t removed = 0;
        int64_t before = ctx->now_us / 1000 - self->dedup_window_ms;
        rc = mdb_cursor_get (c, &k, &v, MDB_FIRST);
        while (rc == 0 && removed < DEDUP_BUDGET && k.mv_size >= 8
           &&  (int64_t) s_get_u64 (k.mv_data) < before) {
            rc = mdb_cursor_del (c, 0);
            removed++;
            if (rc == 0)
                rc = mdb_cursor_get (c, &k, &v, MDB_GET_CURRENT);
            if (rc == EINVAL)
                rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close (c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (removed)
            ctx->changed = true;
    }
    return rc;
}

/*  Whether a tick would find work, cheaply (no write transaction when the
    answer is no: a write transaction costs a commit even when empty).       */
static bool
s_tick_needed (store_t *self, int64_t now_us)
{
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return false;
    bool needed = false;
    for (store_stream_t *stream = zlistx_first (self->streams); !needed && stream;
         stream = zlistx_next (self->streams)) {
        MDB_cursor *c;
        if (mdb_cursor_open (txn, stream->dbi, &c) == 0) {
            MDB_val k, v;
            if (mdb_cursor_get (c, &k, &v, MDB_FIRST) == 0)
                needed = s_over_limit (stream, now_us, &v);
            mdb_cursor_close (c);
        }
    }
    if (!needed && self->dedup_window_ms > 0) {
        MDB_cursor *c;
        if (mdb_cursor_open (txn, self->dedup, &c) == 0) {
            MDB_val k, v;
            if (mdb_cursor_get (c, &k, &v, MDB_FIRST) == 0 && k.mv_size >= 8)
                needed = (int64_t) s_get_u64 (k.mv_data) < now_us / 1000 - self->dedup_window_ms;
            mdb_cursor_close (c);
        }
    }
    mdb_txn_abort (txn);
    return needed;
}

/*  A write that only moves LMDB's transaction id on.                      */
static int
s_touch_fn (store_t *self, MDB_txn *txn, void *arg)
{
    uint8_t value [8];
    s_put_u64 (value, self->commits);
    MDB_val key = { 5, "touch" }, val = { sizeof value, value };
    return mdb_put (txn, self->meta, &key, &val, 0);
}

int
store_tick (store_t *self, int64_t now_ms, int64_t now_wall_us)
{
    int rc = 0;
    if (s_tick_needed (self, now_wall_us)) {
        tick_ctx_t ctx = { now_ms, now_wall_us, false };
        rc = s_write_txn (self, s_tick_fn, &ctx, "retention");
        //  LMDB reuses the pages a transaction freed only once a later one
        //  has committed; when the map is at its ceiling every append fails
        //  and no later one would.  Commit one small write so that the
        //  space retention just freed is usable at once.
        if (rc == 0 && ctx.changed)
            rc = s_write_txn (self, s_touch_fn, NULL, "retention");
    }
    if (self->unsynced) {
        //  The shortest interval among the streams asks for the sync.
        int64_t interval = -1;
        for (store_stream_t *stream = zlistx_first (self->streams); stream;
             stream = zlistx_next (self->streams))
            if (stream->config.sync == STREAM_SYNC_INTERVAL
            &&  (interval < 0 || stream->config.sync_interval_ms < interval))
                interval = stream->config.sync_interval_ms;
        if (interval >= 0 && zclock_mono () - self->unsynced_since_ms >= interval) {
            int src = mdb_env_sync (self->env, 1);
            if (src) {
                s_fail (self, "sync", src);
                return s_errno (src);
            }
            self->unsynced = false;
            self->syncs++;
        }
    }
    self->last_tick_ms = now_ms;
    return rc;
}

/*  ---- reading -------------------------------------------------------- */

int
store_read (store_t *self, store_stream_t *stream, uint64_t from, size_t max_events,
            store_read_fn *fn, void *arg)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return s_errno (rc);
    MDB_cursor *c;
    rc = mdb_cursor_open (txn, stream->dbi, &c);
    if (rc) {
        mdb_txn_abort (txn);
        return s_errno (rc);
    }
    uint8_t kbuf [8];
    s_put_u64 (kbuf, from);
    MDB_val k = { 8, kbuf }, v;
    int count = 0;
    rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && (size_t) count < max_events) {
        store_event_t ev;
        if (!s_parse_event (&k, &v, &ev)) {
            rc = MDB_CORRUPTED;
            break;
        }
        count++;
        if (fn (&ev, arg))
            break;
        rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (c);
    mdb_txn_abort (txn);
    if (rc && rc != MDB_NOTFOUND)
        return s_errno (rc);
    return count;
}

/*  ts of the event with seq (which exists), or INT64_MAX.                    */
static int64_t
s_ts_at (MDB_cursor *c, uint64_t seq)
{
    uint8_t kbuf [8];
    s_put_u64 (kbuf, seq);
    MDB_val k = { 8, kbuf }, v;
    if (mdb_cursor_get (c, &k, &v, MDB_SET_RANGE) || v.mv_size < 8)
        return INT64_MAX;
    return (int64_t) s_get_u64 (v.mv_data);
}

uint64_t
store_resolve_from (store_t *self, store_stream_t *stream, store_from_t from, int64_t value)
{
    switch (from) {
        case STORE_FROM_NEW:
            return stream->next;
        case STORE_FROM_FIRST:
            return stream->first;
        case STORE_FROM_LAST:
            return stream->last >= stream->first ? stream->last : stream->last + 1;
        case STORE_FROM_SEQ:
            return (uint64_t) value < stream->first ? stream->first : (uint64_t) value;
        case STORE_FROM_TIME:
            break;
    }
    //  Acceptance times grow with seq (one clock stamps them in order), so
    //  the first event at or after T is found by binary search over seqs.
    uint64_t lo = stream->first, hi = stream->last + 1;
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return stream->first;
    MDB_cursor *c;
    if (mdb_cursor_open (txn, stream->dbi, &c) == 0) {
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (s_ts_at (c, mid) < value)
                lo = mid + 1;
            else
                hi = mid;
        }
        mdb_cursor_close (c);
    }
    mdb_txn_abort (txn);
    return lo;
}

/*  ---- cursors -------------------------------------------------------- */

static store_cursor_t *
s_cursor_new (store_stream_t *stream, const char *name, size_t name_len, const char *group,
              size_t group_len, uint64_t floor)
{
    store_cursor_t *cursor = calloc (1, sizeof (store_cursor_t));
    if (!cursor)
        return NULL;
    cursor->stream = stream;
    if (name_len > 255)
        name_len = 255;
    if (group_len > 255)
        group_len = 255;
    memcpy (cursor->name, name, name_len);
    memcpy (cursor->group, group, group_len);
    cursor->floor = floor;
    return cursor;
}

/*  Index of seq's state, or where it would go.                              */
static size_t
s_state_find (const store_cursor_t *cursor, uint64_t seq, bool *found)
{
    size_t lo = cursor->head, hi = cursor->head + cursor->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cursor->states [mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < cursor->head + cursor->len && cursor->states [lo].seq == seq;
    return lo;
}

static cstate_t *
s_state_get (store_cursor_t *cursor, uint64_t seq, bool create)
{
    bool found;
    size_t at = s_state_find (cursor, seq, &found);
    if (found)
        return &cursor->states [at];
    if (!create)
        return NULL;
    size_t end = cursor->head + cursor->len;
    if (end == cursor->cap) {
        if (cursor->head > 0) {
            memmove (cursor->states, cursor->states + cursor->head, cursor->len * sizeof (cstate_t));
            at -= cursor->head;
            cursor->head = 0;
            end = cursor->len;
        }
        if (end == cursor->cap) {
            size_t cap = cursor->cap ? cursor->cap * 2 : 64;
            cstate_t *states = realloc (cursor->states, cap * sizeof (cstate_t));
            if (!states)
                return NULL;
            cursor->states = states;
            cursor->cap = cap;
        }
    }
    memmove (cursor->states + at + 1, cursor->states + at, (end - at) * sizeof (cstate_t));
    cursor->len++;
    cursor->states [at] = (cstate_t) { seq, 0, false };
    return &cursor->states [at];
}

static int
s_cursors_load (store_t *self, MDB_txn *txn, store_stream_t *stream)
{
    const char *sname = stream->config.name;
    size_t slen = strlen (sname) + 1;
    MDB_cursor *c;
    int rc = mdb_cursor_open (txn, self->cursors, &c);
    if (rc)
        return rc;
    MDB_val k = { slen, (void *) sname }, v;
    rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size > slen && memcmp (k.mv_data, sname, slen) == 0) {
        if (v.mv_size >= 8) {
            store_cursor_t *cursor = s_cursor_new (stream, (char *) k.mv_data + slen,
                                                   k.mv_size - slen,
                                                   (char *) v.mv_data + 8, v.mv_size - 8,
                                                   s_get_u64 (v.mv_data));
            if (!cursor) {
                rc = ENOMEM;
                break;
            }
            zlistx_add_end (stream->cursors, cursor);
        }
        rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close (c);
    if (rc != MDB_NOTFOUND && rc != 0)
        return rc;
    //  Per-seq state, in key order = seq order per cursor.
    for (store_cursor_t *cursor = zlistx_first (stream->cursors); cursor;
         cursor = zlistx_next (stream->cursors)) {
        uint8_t kbuf [400];
        size_t klen = s_cursor_key (kbuf, cursor);
        rc = mdb_cursor_open (txn, self->cstate, &c);
        if (rc)
            return rc;
        MDB_val key = { klen, kbuf }, val;
        rc = mdb_cursor_get (c, &key, &val, MDB_SET_RANGE);
        while (rc == 0 && key.mv_size == klen + 8 && memcmp (key.mv_data, kbuf, klen) == 0) {
            uint64_t seq = s_get_u64 ((uint8_t *) key.mv_data + klen);
            if (val.mv_size >= 3 && seq >= cursor->floor) {
                const uint8_t *p = val.mv_data;
                cstate_t *state = s_state_get (cursor, seq, true);
                if (!state) {
                    rc = ENOMEM;
                    break;
                }
                state->acked = p [0] != 0;
                state->attempts = (uint16_t) ((p [1] << 8) | p [2]);
                if (state->acked)
                    cursor->acked_count++;
            }
            rc = mdb_cursor_get (c, &key, &val, MDB_NEXT);
        }
        mdb_cursor_close (c);
        if (rc != MDB_NOTFOUND && rc != 0)
            return rc;
        rc = 0;
    }
    return 0;
}

int
store_cursor_open (store_t *self, store_stream_t *stream, const char *name, const char *group,
                   uint64_t start, store_cursor_t **cursor_p, bool *created)
{
    store_cursor_t *cursor = store_cursor_find (stream, name);
    if (created)
        *created = !cursor;
    if (!cursor) {
        if (!group)
            group = "";
        cursor = s_cursor_new (stream, name, strlen (name), group, strlen (group), start);
        if (!cursor)
            return -ENOMEM;
        if (!zlistx_add_end (stream->cursors, cursor)) {
            s_cursor_free (&cursor);
            return -ENOMEM;
        }
        cursor->dirty = true;
        self->cursors_dirty = true;
        if (stream->config.sync == STREAM_SYNC_ALWAYS)
            self->need_sync = true;
    }
    *cursor_p = cursor;
    return 0;
}

store_cursor_t *
store_cursor_find (store_stream_t *stream, const char *name)
{
    store_cursor_t *cursor = zlistx_first (stream->cursors);
    while (cursor) {
        if (strcmp (cursor->name, name) == 0)
            return cursor;
        cursor = zlistx_next (stream->cursors);
    }
    return NULL;
}

size_t
store_cursor_count (store_stream_t *stream)
{
    return zlistx_size (stream->cursors);
}

store_cursor_t *
store_cursor_at (store_stream_t *stream, size_t index)
{
    store_cursor_t *cursor = zlistx_first (stream->cursors);
    while (cursor && index--)
        cursor = zlistx_next (stream->cursors);
    return cursor;
}

const char *
store_cursor_name (const store_cursor_t *cursor)
{
    return cursor->name;
}

const char *
store_cursor_group (const store_cursor_t *cursor)
{
    return cursor->group;
}

store_stream_t *
store_cursor_stream (const store_cursor_t *cursor)
{
    return cursor->stream;
}

uint64_t
store_cursor_floor (const store_cursor_t *cursor)
{
    return cursor->floor;
}

bool
store_cursor_acked (const store_cursor_t *cursor, uint64_t seq)
{
    if (seq < cursor->floor)
        return true;
    bool found;
    size_t at = s_state_find (cursor, seq, &found);
    return found && cursor->states [at].acked;
}

uint16_t
store_cursor_attempts (const store_cursor_t *cursor, uint64_t seq)
{
    bool found;
    size_t at = s_state_find (cursor, seq, &found);
    return found ? cursor->states [at].attempts : 0;
}

int
store_cursor_delivered (store_t *self, store_cursor_t *cursor, uint64_t seq, uint16_t attempt)
{
    if (seq < cursor->floor)
        return -ENOENT;
    cstate_t *state = s_state_get (cursor, seq, true);
    if (!state)
        return -ENOMEM;
    if (state->acked)
        return 0;
    state->attempts = attempt;
    return s_queue_cstate (self, cursor, state, false);
}

/*  Pop acknowledged states at the floor, moving it up.                     */
static int
s_advance_floor (store_t *self, store_cursor_t *cursor)
{
    while (cursor->len && cursor->states [cursor->head].seq <= cursor->floor) {
        cstate_t *state = &cursor->states [cursor->head];
        if (state->seq == cursor->floor && !state->acked)
            break;
        if (state->acked)
            cursor->acked_count--;
        if (state->seq == cursor->floor)
            cursor->floor++;
        int rc = s_queue_cstate (self, cursor, state, true);
        cursor->head++;
        cursor->len--;
        cursor->dirty = true;
        self->cursors_dirty = true;
        if (rc)
            return rc;
    }
    if (cursor->len == 0)
        cursor->head = 0;
    return 0;
}

int
store_cursor_ack (store_t *self, store_cursor_t *cursor, uint64_t seq)
{
    if (seq < cursor->floor)
        return -ENOENT;
    if (seq == cursor->floor) {
        //  The common case (acks in order): no state to keep at all.
        bool found;
        size_t at = s_state_find (cursor, seq, &found);
        if (found) {
            if (cursor->states [at].acked)
                return -ENOENT;
            cursor->states [at].acked = true;
            cursor->acked_count++;
        }
        else {
            cursor->floor++;
            cursor->dirty = true;
            self->cursors_dirty = true;
        }
        if (cursor->stream->config.sync == STREAM_SYNC_ALWAYS)
            self->need_sync = true;
        return s_advance_floor (self, cursor);
    }
    cstate_t *state = s_state_get (cursor, seq, true);
    if (!state)
        return -ENOMEM;
    if (state->acked)
        return -ENOENT;
    state->acked = true;
    cursor->acked_count++;
    return s_queue_cstate (self, cursor, state, false);
}

int
store_cursor_skip_to (store_t *self, store_cursor_t *cursor, uint64_t seq)
{
    if (seq <= cursor->floor)
        return 0;
    while (cursor->len && cursor->states [cursor->head].seq < seq) {
        cstate_t *state = &cursor->states [cursor->head];
        if (state->acked)
            cursor->acked_count--;
        int rc = s_queue_cstate (self, cursor, state, true);
        cursor->head++;
        cursor->len--;
        if (rc)
            return rc;
    }
    cursor->floor = seq;
    cursor->dirty = true;
    self->cursors_dirty = true;
    return s_advance_floor (self, cursor);
}

uint64_t
store_cursor_acked_between (const store_cursor_t *cursor, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    uint64_t acked = 0;
    if (from < cursor->floor) {
        uint64_t below = (to < cursor->floor ? to : cursor->floor) - from;
        acked += below;
        from = cursor->floor;
    }
    bool found;
    for (size_t i = s_state_find (cursor, from, &found);
         i < cursor->head + cursor->len && cursor->states [i].seq < to; i++)
        acked += cursor->states [i].acked;
    return acked;
}

uint64_t
store_cursor_lag (const store_cursor_t *cursor)
{
    const store_stream_t *stream = cursor->stream;
    uint64_t from = cursor->floor > stream->first ? cursor->floor : stream->first;
    if (from > stream->last)
        return 0;
    uint64_t span = stream->last - from + 1;
    return span > cursor->acked_count ? span - cursor->acked_count : 0;
}

size_t
store_cursor_acked_above (const store_cursor_t *cursor)
{
    return cursor->acked_count;
}

size_t
store_cursor_pending (const store_cursor_t *cursor)
{
    size_t pending = 0;
    for (size_t i = cursor->head; i < cursor->head + cursor->len; i++)
        if (!cursor->states [i].acked && cursor->states [i].attempts > 0)
            pending++;
    return pending;
}

int
store_cursor_delete (store_t *self, store_cursor_t **cursor_p)
{
    store_cursor_t *cursor = *cursor_p;
    if (!cursor)
        return 0;
    uint8_t kbuf [400];
    size_t klen = s_cursor_key (kbuf, cursor);
    uint8_t *k;
    if (!s_queue (self, OP_DEL, self->cursors, klen - 1, 0, &k, NULL))
        return -ENOMEM;
    memcpy (k, kbuf, klen - 1);
    for (size_t i = cursor->head; i < cursor->head + cursor->len; i++)
        if (s_queue_cstate (self, cursor, &cursor->states [i], true))
            return -ENOMEM;
    store_stream_t *stream = cursor->stream;
    void *handle = zlistx_find (stream->cursors, cursor);
    if (handle)
        zlistx_delete (stream->cursors, handle);
    *cursor_p = NULL;
    return 0;
}

/*  ---- dedup ---------------------------------------------------------- */

void
store_set_dedup_window (store_t *self, int64_t window_ms)
{
    self->dedup_window_ms = window_ms;
}

/*  Dedup key: ts_ms 8, topic length 1, topic, msg_id.  A 255-byte topic
    with a 255-byte msg_id (a valid PUB) is longer than the keys LMDB takes
    (511 bytes): such a key keeps the head of msg_id and an FNV-1a hash of
    all of it, and the rest of msg_id goes in the value.  An entry with an
    empty value is the plain form.                                          */
#define DEDUP_HASH  8

static uint64_t
s_fnv1a (const char *data, size_t size)
{
    uint64_t hash = 14695981039346656037ULL;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ (uint8_t) data [i]) * 1099511628211ULL;
    return hash;
}

int
store_dedup_add (store_t *self, const char *topic, size_t topic_len, const char *msg_id,
                 size_t msg_id_len, int64_t ts_ms)
{
    if (topic_len > 255 || msg_id_len > 255)
        return -EINVAL;
    size_t max_key = (size_t) mdb_env_get_maxkeysize (self->env);
    size_t head = msg_id_len, tail = 0, hash = 0;
    if (9 + topic_len + msg_id_len > max_key) {
        hash = DEDUP_HASH;
        head = max_key - 9 - topic_len - hash;
        tail = msg_id_len - head;
    }
    uint8_t *k, *v;
    if (!s_queue (self, OP_PUT, self->dedup, 9 + topic_len + head + hash, tail, &k, &v))
        return -ENOMEM;
    s_put_u64 (k, (uint64_t) ts_ms);
    k [8] = (uint8_t) topic_len;
    memcpy (k + 9, topic, topic_len);
    memcpy (k + 9 + topic_len, msg_id, head);
    if (hash) {
        s_put_u64 (k + 9 + topic_len + head, s_fnv1a (msg_id, msg_id_len));
        memcpy (v, msg_id + head, tail);
    }
    return 0;
}

int
store_dedup_load (store_t *self, int64_t since_ms,
                  void (*fn) (const char *, size_t, const char *, size_t, int64_t, void *),
                  void *arg)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return s_errno (rc);
    MDB_cursor *c;
    rc = mdb_cursor_open (txn, self->dedup, &c);
    if (rc == 0) {
        uint8_t kbuf [8];
        s_put_u64 (kbuf, (uint64_t) (since_ms > 0 ? since_ms : 0));
        MDB_val k = { 8, kbuf }, v;
        rc = mdb_cursor_get (c, &k, &v, MDB_SET_RANGE);
        while (rc == 0) {
            const uint8_t *p = k.mv_data;
            if (k.mv_size >= 9 && 9 + (size_t) p [8] <= k.mv_size) {
                const char *msg_id = (const char *) p + 9 + p [8];
                size_t msg_id_len = k.mv_size - 9 - p [8];
                char joined [256];
                bool ok = true;
                if (v.mv_size) {
                    //  The long form: head, hash, and the tail in the value.
                    ok = msg_id_len >= DEDUP_HASH
                      && msg_id_len - DEDUP_HASH + v.mv_size <= 255;
                    if (ok) {
                        msg_id_len -= DEDUP_HASH;
                        memcpy (joined, msg_id, msg_id_len);
                        memcpy (joined + msg_id_len, v.mv_data, v.mv_size);
                        msg_id = joined;
                        msg_id_len += v.mv_size;
                    }
                }
                if (ok)
                    fn ((const char *) p + 9, p [8], msg_id, msg_id_len,
                        (int64_t) s_get_u64 (p), arg);
            }
            rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close (c);
    }
    mdb_txn_abort (txn);
    return rc == MDB_NOTFOUND ? 0 : s_errno (rc);
}

size_t
store_dedup_size (store_t *self)
{
    MDB_txn *txn;
    if (mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn))
        return 0;
    MDB_stat st;
    size_t size = mdb_stat (txn, self->dedup, &st) == 0 ? st.ms_entries : 0;
    mdb_txn_abort (txn);
    return size;
}

/*  ---- dead letters -------------------------------------------------- */

/*  Record: ts_us 8, attempts 2, original_seq 8, reason len 2, sub len 2,
    then reason, subscription and the event record (as in a stream).        */
int
store_dlq_put (store_t *self, const store_dlq_t *entry)
{
    const store_event_t *ev = &entry->event;
    size_t rlen = strlen (entry->reason), slen = strlen (entry->subscription);
    if (rlen > 65535 || slen > 65535 || ev->topic_len > 255 || ev->msg_id_len > 255)
        return -EINVAL;
    size_t elen = EVENT_HEAD + ev->topic_len + ev->msg_id_len + ev->headers_len
                + ev->payload_len;
    size_t vlen = 22 + rlen + slen + elen;
    uint8_t *k, *v;
    if (!s_queue (self, OP_PUT, self->dlq, 8, vlen, &k, &v))
        return -ENOMEM;
    s_put_u64 (k, entry->id);
    s_put_u64 (v, (uint64_t) entry->ts_us);
    v [8] = (uint8_t) (entry->attempts >> 8);
    v [9] = (uint8_t) entry->attempts;
    s_put_u64 (v + 10, entry->original_seq);
    v [18] = (uint8_t) (rlen >> 8);
    v [19] = (uint8_t) rlen;
    v [20] = (uint8_t) (slen >> 8);
    v [21] = (uint8_t) slen;
    uint8_t *p = v + 22;
    memcpy (p, entry->reason, rlen);
    p += rlen;
    memcpy (p, entry->subscription, slen);
    p += slen;
    s_put_u64 (p, (uint64_t) ev->ts_us);
    p [8] = (uint8_t) ev->topic_len;
    p [9] = (uint8_t) ev->msg_id_len;
    s_put_u32 (p + 10, (uint32_t) ev->headers_len);
    p += EVENT_HEAD;
    memcpy (p, ev->topic, ev->topic_len);
    p += ev->topic_len;
    if (ev->msg_id_len)
        memcpy (p, ev->msg_id, ev->msg_id_len);
    p += ev->msg_id_len;
    if (ev->headers_len)
        memcpy (p, ev->headers, ev->headers_len);
    p += ev->headers_len;
    if (ev->payload_len)
        memcpy (p, ev->payload, ev->payload_len);
    return 0;
}

int
store_dlq_del (store_t *self, uint64_t id)
{
    uint8_t *k;
    if (!s_queue (self, OP_DEL, self->dlq, 8, 0, &k, NULL))
        return -ENOMEM;
    s_put_u64 (k, id);
    return 0;
}

int
store_dlq_load (store_t *self, void (*fn) (const store_dlq_t *entry, void *arg), void *arg)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin (self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return s_errno (rc);
    MDB_cursor *c;
    rc = mdb_cursor_open (txn, self->dlq, &c);
    if (rc == 0) {
        MDB_val k, v;
        rc = mdb_cursor_get (c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            const uint8_t *p = v.mv_data;
            if (k.mv_size == 8 && v.mv_size >= 22) {
                size_t rlen = (size_t) (p [18] << 8 | p [19]);
                size_t slen = (size_t) (p [20] << 8 | p [21]);
                if (22 + rlen + slen <= v.mv_size) {
                    char reason [rlen + 1], sub [slen + 1];
                    memcpy (reason, p + 22, rlen);
                    reason [rlen] = 0;
                    memcpy (sub, p + 22 + rlen, slen);
                    sub [slen] = 0;
                    MDB_val ek = k, ev = { v.mv_size - 22 - rlen - slen,
                                           (uint8_t *) p + 22 + rlen + slen };
                    store_dlq_t entry = {
                        .id = s_get_u64 (k.mv_data), .ts_us = (int64_t) s_get_u64 (p),
                        .attempts = (uint16_t) (p [8] << 8 | p [9]),
                        .original_seq = s_get_u64 (p + 10),
                        .reason = reason, .subscription = sub
                    };
                    if (s_parse_event (&ek, &ev, &entry.event))
                        fn (&entry, arg);
                }
            }
            rc = mdb_cursor_get (c, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close (c);
    }
    mdb_txn_abort (txn);
    return rc == MDB_NOTFOUND ? 0 : s_errno (rc);
}
