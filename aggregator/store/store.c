/*
 * The store's environment: opening (schema check, initialisation, migrations), transactions,
 * LMDB error translation, map resizing, statistics and online backup.
 */
#include "store/store_internal.h"

#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const db_names[RSRE__DB_COUNT] = {
    [RSRE__DB_INCIDENTS] = "incidents", [RSRE__DB_EVIDENCE] = "evidence",
    [RSRE__DB_ACTIONS] = "actions",     [RSRE__DB_APPROVALS] = "approvals",
    [RSRE__DB_RULES] = "rules",         [RSRE__DB_AUDIT] = "audit",
    [RSRE__DB_COOLDOWNS] = "cooldowns", [RSRE__DB_META] = "meta",
    [RSRE__DB_AGENTS] = "agents",       [RSRE__DB_NOTIFY] = "notify",
};

/*
 * Migration hooks, one row per schema step: {from, "what changed", run} upgrades `from` to
 * `from + 1`. A change that needs the next version adds a row here and bumps
 * RSRE_STORE_SCHEMA_VERSION. 1 -> 2 added the `agents` database (agents.c), 2 -> 3 the
 * `notify` database (notifications.c).
 */
static const struct rsre__store_migration migrations[] = {
    {1, "agents database: ingest dedupe state per node", rsre__store_migrate_1_to_2},
    {2, "notify database: in-app notifications, chat threads", rsre__store_migrate_2_to_3},
    {0, NULL, NULL}, /* end of table (rows without `run` are skipped) */
};

const char *rsre__store_db_name(int db) {
    return db >= 0 && db < RSRE__DB_COUNT ? db_names[db] : "?";
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rsre__store_mdb_err(const struct rsre_store *store, int rc, const char *what) {
    const char *dir = store ? store->dir : "?";
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return RSRE_ENOTFOUND;
    case MDB_KEYEXIST:
        return RSRE_EEXIST;
    case MDB_MAP_FULL:
        RSRE_LOG(RSRE_LOG_ERROR, "store",
                 "store map is full: dir=%s map_size=%zu op=%s; the transaction was aborted and "
                 "nothing it wrote was kept; raise the map size or prune old records",
                 dir, store ? store->map_size : 0, what);
        return RSRE_EMAPFULL;
    default:
        break;
    }
    RSRE_LOG(RSRE_LOG_ERROR, "store", "lmdb failure: dir=%s op=%s mdb_rc=%d mdb_error=\"%s\"", dir,
             what, rc, mdb_strerror(rc));
    switch (rc) {
    case MDB_TXN_FULL:
    case MDB_BAD_VALSIZE:
    case MDB_READERS_FULL:
    case MDB_DBS_FULL:
    case MDB_TLS_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
        return RSRE_ELIMIT;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        return RSRE_ECORRUPT;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        return RSRE_ESCHEMA;
    default:
        if (rc > 0 && rc < 4096) {
            return -rc; /* an errno value from the system */
        }
        return RSRE_ESTORE;
    }
}

int rsre__store_txn_fail(rsre_store_txn *txn, int rc, const char *what) {
    int err = rsre__store_mdb_err(txn->store, rc, what);
    if (rc != MDB_NOTFOUND && rc != MDB_KEYEXIST && txn->mdb != NULL) {
        mdb_txn_abort(txn->mdb);
        txn->mdb = NULL;
        txn->err = err;
    }
    return err;
}

int rsre__store_txn_check(const rsre_store_txn *txn, int write) {
    if (txn == NULL) {
        return -EINVAL;
    }
    if (txn->mdb == NULL) {
        return txn->err;
    }
    if (write && txn->rdonly) {
        return -EROFS;
    }
    return 0;
}

const char *rsre__store_key_repr(char *buf, size_t cap, const void *key, size_t len) {
    const unsigned char *k = key;
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        if (k[i] >= 0x21 && k[i] < 0x7f && k[i] != '\\' && k[i] != '"') {
            buf[o++] = (char)k[i];
        } else {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", k[i]);
        }
    }
    buf[o] = '\0';
    return buf;
}

/* --- transactions --------------------------------------------------------------------------- */

static void txn_release(rsre_store_txn *txn) {
    struct rsre_store *s = txn->store;
    pthread_mutex_lock(&s->lock);
    if (!txn->rdonly) {
        s->writing = 0;
    }
    s->active--;
    pthread_mutex_unlock(&s->lock);
    free(txn);
}

int rsre_store_txn_begin(rsre_store *store, int rdonly, rsre_store_txn **out) {
    if (store == NULL || out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    if (!rdonly && store->read_only) {
        return -EROFS;
    }
    pthread_mutex_lock(&store->lock);
    if (!rdonly && store->writing && pthread_equal(store->writer, pthread_self())) {
        pthread_mutex_unlock(&store->lock);
        RSRE_LOG(RSRE_LOG_ERROR, "store",
                 "write transaction begun while this thread already has one: dir=%s", store->dir);
        return -EDEADLK;
    }
    unsigned others = store->active;
    store->active++;
    pthread_mutex_unlock(&store->lock);

    rsre_store_txn *txn = calloc(1, sizeof(*txn));
    int rc = txn ? 0 : -ENOMEM;
    MDB_txn *mdb = NULL;
    if (rc == 0) {
        int mrc = mdb_txn_begin(store->env, NULL, rdonly ? MDB_RDONLY : 0, &mdb);
        if (mrc == MDB_MAP_RESIZED && others == 0) {
            /* Another process grew the map; adopt its size and retry once. */
            mrc = mdb_env_set_mapsize(store->env, 0);
            if (mrc == 0) {
                MDB_envinfo info;
                mdb_env_info(store->env, &info);
                store->map_size = info.me_mapsize;
                mrc = mdb_txn_begin(store->env, NULL, rdonly ? MDB_RDONLY : 0, &mdb);
            }
        }
        if (mrc != 0) {
            rc = rsre__store_mdb_err(store, mrc, "txn_begin");
        }
    }
    pthread_mutex_lock(&store->lock);
    if (rc != 0) {
        store->active--;
    } else if (!rdonly) {
        store->writing = 1;
        store->writer = pthread_self();
    }
    pthread_mutex_unlock(&store->lock);
    if (rc != 0) {
        free(txn);
        return rc;
    }
    txn->store = store;
    txn->mdb = mdb;
    txn->rdonly = rdonly != 0;
    *out = txn;
    return 0;
}

int rsre_store_txn_commit(rsre_store_txn *txn) {
    if (txn == NULL) {
        return -EINVAL;
    }
    int rc;
    if (txn->mdb == NULL) {
        rc = txn->err;
    } else {
        int mrc = mdb_txn_commit(txn->mdb); /* frees the LMDB txn even when it fails */
        txn->mdb = NULL;
        rc = mrc ? rsre__store_mdb_err(txn->store, mrc, "commit") : 0;
    }
    txn_release(txn);
    return rc;
}

void rsre_store_txn_abort(rsre_store_txn *txn) {
    if (txn == NULL) {
        return;
    }
    if (txn->mdb != NULL) {
        mdb_txn_abort(txn->mdb);
    }
    txn_release(txn);
}

/* --- schema and migrations ------------------------------------------------------------------ */

int rsre__store_migrate(rsre_store_txn *txn, uint32_t from, uint32_t to,
                        const struct rsre__store_migration *table, size_t n) {
    for (uint32_t v = from; v < to; v++) {
        const struct rsre__store_migration *m = NULL;
        for (size_t i = 0; i < n; i++) {
            if (table[i].from == v && table[i].run != NULL) {
                m = &table[i];
                break;
            }
        }
        if (m == NULL) {
            RSRE_LOG(RSRE_LOG_ERROR, "store",
                     "no migration from schema %u to %u: dir=%s; this store cannot be opened by "
                     "this binary",
                     v, v + 1, txn->store->dir);
            return RSRE_ESCHEMA;
        }
        RSRE_LOG(RSRE_LOG_INFO, "store", "migrating store schema %u -> %u (%s): dir=%s", v, v + 1,
                 m->what ? m->what : "", txn->store->dir);
        int rc = m->run(txn);
        if (rc != 0) {
            RSRE_LOG(RSRE_LOG_ERROR, "store", "migration from schema %u failed: dir=%s err=\"%s\"",
                     v, txn->store->dir, rsre_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* Opens every named database in `txn` (creating them unless the store is read-only). */
static int open_dbs(rsre_store *s, MDB_txn *mdb) {
    for (int i = 0; i < RSRE__DB_COUNT; i++) {
        int rc = mdb_dbi_open(mdb, db_names[i], s->read_only ? 0 : MDB_CREATE, &s->dbi[i]);
        if (rc == MDB_NOTFOUND) {
            RSRE_LOG(RSRE_LOG_ERROR, "store", "store lacks database %s: dir=%s", db_names[i],
                     s->dir);
            return RSRE_ESCHEMA;
        }
        if (rc != 0) {
            return rsre__store_mdb_err(s, rc, "dbi_open");
        }
    }
    return 0;
}

static int write_meta(rsre_store_txn *txn, const RobotSre__Store__Meta *meta) {
    return rsre__store_put(txn, RSRE__DB_META, RSRE__META_SCHEMA, strlen(RSRE__META_SCHEMA),
                           RSRE__K_META, &meta->base, 0);
}

/* Initialises a brand-new store: creates the databases and records the schema version. */
static int init_fresh(rsre_store_txn *txn) {
    rsre_store *s = txn->store;
    int rc = open_dbs(s, txn->mdb);
    if (rc != 0) {
        return rc;
    }
    RobotSre__Store__Meta meta = ROBOT_SRE__STORE__META__INIT;
    meta.schema_version = RSRE_STORE_SCHEMA_VERSION;
    meta.created_at_ms = now_ms();
    meta.created_by = "robot-sre aggregator store";
    rc = write_meta(txn, &meta);
    if (rc == 0) {
        RSRE_LOG(RSRE_LOG_INFO, "store", "initialised new store: dir=%s schema=%u", s->dir,
                 RSRE_STORE_SCHEMA_VERSION);
        s->schema_version = RSRE_STORE_SCHEMA_VERSION;
    }
    return rc;
}

/*
 * Checks the schema of an existing store (its `meta` database is open as s->dbi[META]) and
 * migrates it if it is older than this binary's.
 */
static int check_schema(rsre_store_txn *txn) {
    rsre_store *s = txn->store;
    ProtobufCMessage *m = NULL;
    int rc = rsre__store_get(txn, RSRE__DB_META, RSRE__META_SCHEMA, strlen(RSRE__META_SCHEMA),
                             RSRE__K_META, &m);
    if (rc == RSRE_ENOTFOUND) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "store has no schema record: dir=%s", s->dir);
        return RSRE_ESCHEMA;
    }
    if (rc != 0) {
        return rc;
    }
    RobotSre__Store__Meta *meta = (RobotSre__Store__Meta *)m;
    uint32_t version = meta->schema_version;
    if (version > RSRE_STORE_SCHEMA_VERSION) {
        RSRE_LOG(RSRE_LOG_ERROR, "store",
                 "store was written by a newer schema: dir=%s store_schema=%u binary_schema=%u; "
                 "refusing to open it (run a binary that knows schema %u, or restore a backup)",
                 s->dir, version, RSRE_STORE_SCHEMA_VERSION, version);
        protobuf_c_message_free_unpacked(m, NULL);
        return RSRE_ESCHEMA;
    }
    rc = open_dbs(s, txn->mdb);
    if (rc == 0 && version < RSRE_STORE_SCHEMA_VERSION) {
        if (s->read_only) {
            RSRE_LOG(RSRE_LOG_ERROR, "store",
                     "store needs migration from schema %u to %u but is opened read-only: dir=%s",
                     version, RSRE_STORE_SCHEMA_VERSION, s->dir);
            rc = RSRE_ESCHEMA;
        } else {
            rc = rsre__store_migrate(txn, version, RSRE_STORE_SCHEMA_VERSION, migrations,
                                     sizeof(migrations) / sizeof(migrations[0]));
            if (rc == 0) {
                meta->migrated_from = version;
                meta->migrated_at_ms = now_ms();
                meta->schema_version = RSRE_STORE_SCHEMA_VERSION;
                rc = write_meta(txn, meta);
            }
            version = RSRE_STORE_SCHEMA_VERSION;
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc == 0) {
        s->schema_version = version;
    }
    return rc;
}

/* Opens the databases of a new or existing store and checks or initialises its schema. */
static int open_store(rsre_store *s) {
    struct rsre_store_txn txn = {.store = s, .rdonly = s->read_only};
    int rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn.mdb);
    if (rc != 0) {
        return rsre__store_mdb_err(s, rc, "txn_begin");
    }
    rc = mdb_dbi_open(txn.mdb, db_names[RSRE__DB_META], 0, &s->dbi[RSRE__DB_META]);
    if (rc == MDB_NOTFOUND) {
        MDB_dbi main_dbi;
        MDB_stat st;
        rc = mdb_dbi_open(txn.mdb, NULL, 0, &main_dbi);
        if (rc == 0) {
            rc = mdb_stat(txn.mdb, main_dbi, &st);
        }
        if (rc != 0) {
            rc = rsre__store_mdb_err(s, rc, "stat");
        } else if (st.ms_entries != 0) {
            RSRE_LOG(RSRE_LOG_ERROR, "store",
                     "directory holds an LMDB database that is not a robot-sre store: dir=%s",
                     s->dir);
            rc = RSRE_ESCHEMA;
        } else if (s->read_only) {
            RSRE_LOG(RSRE_LOG_ERROR, "store", "no store to open read-only: dir=%s", s->dir);
            rc = RSRE_ENOTFOUND;
        } else {
            rc = init_fresh(&txn);
        }
    } else if (rc != 0) {
        rc = rsre__store_mdb_err(s, rc, "dbi_open");
    } else {
        rc = check_schema(&txn);
    }
    if (txn.mdb == NULL) {
        return rc; /* a failure already aborted it */
    }
    if (rc != 0) {
        mdb_txn_abort(txn.mdb);
        return rc;
    }
    /* Committing (also when read-only) keeps the database handles open for the env. */
    rc = mdb_txn_commit(txn.mdb);
    return rc ? rsre__store_mdb_err(s, rc, "commit") : 0;
}

int rsre_store_open(const char *dir, const struct rsre_store_options *opts, rsre_store **out) {
    if (dir == NULL || *dir == '\0' || out == NULL) {
        return -EINVAL;
    }
    *out = NULL;
    struct rsre_store_options o = {0};
    if (opts != NULL) {
        o = *opts;
    }
    if (o.map_size == 0) {
        o.map_size = RSRE_STORE_MAP_SIZE_DEFAULT;
    }
    if (!o.read_only && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int err = -errno;
        RSRE_LOG(RSRE_LOG_ERROR, "store", "cannot create store directory: dir=%s err=\"%s\"", dir,
                 strerror(-err));
        return err;
    }
    rsre_store *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->read_only = o.read_only != 0;
    s->map_size = o.map_size;

    int rc = mdb_env_create(&s->env);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(s->env, RSRE__DB_COUNT);
    }
    char data[4096];
    if ((size_t)snprintf(data, sizeof(data), "%s/data.mdb", dir) >= sizeof(data)) {
        rsre_store_close(s);
        return -ENAMETOOLONG;
    }
    int fresh = access(data, F_OK) != 0;
    if (rc == 0 && fresh) {
        /* An existing file keeps the size recorded in it (LMDB's default when none is set);
         * it grows to o.map_size below if that is larger. */
        rc = mdb_env_set_mapsize(s->env, o.map_size);
    }
    if (rc == 0 && o.max_readers != 0) {
        rc = mdb_env_set_maxreaders(s->env, o.max_readers);
    }
    if (rc == 0) {
        /* No MDB_NOSYNC / MDB_NOMETASYNC: a commit is durable when it returns. MDB_NOTLS lets
         * read transactions move between threads and a thread hold several. */
        unsigned flags = MDB_NOTLS | (s->read_only ? MDB_RDONLY : 0);
        rc = mdb_env_open(s->env, dir, flags, 0600);
    }
    if (rc != 0) {
        rc = rsre__store_mdb_err(s, rc, "env_open");
        rsre_store_close(s);
        return rc;
    }
    int dead = 0;
    if (mdb_reader_check(s->env, &dead) == 0 && dead > 0) {
        RSRE_LOG(RSRE_LOG_INFO, "store", "cleared stale reader slots: dir=%s count=%d", dir, dead);
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (!s->read_only && info.me_mapsize < o.map_size) {
        rc = mdb_env_set_mapsize(s->env, o.map_size);
        if (rc != 0) {
            rc = rsre__store_mdb_err(s, rc, "set_mapsize");
            rsre_store_close(s);
            return rc;
        }
        mdb_env_info(s->env, &info);
    }
    s->map_size = info.me_mapsize;
    rc = open_store(s);
    if (rc != 0) {
        rsre_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void rsre_store_close(rsre_store *store) {
    if (store == NULL) {
        return;
    }
    if (store->env != NULL) {
        mdb_env_close(store->env);
    }
    pthread_mutex_destroy(&store->lock);
    free(store->dir);
    free(store);
}

int rsre_store_map_resize(rsre_store *store, size_t map_size) {
    if (store == NULL || map_size == 0) {
        return -EINVAL;
    }
    pthread_mutex_lock(&store->lock);
    unsigned active = store->active;
    pthread_mutex_unlock(&store->lock);
    if (active != 0) {
        return -EBUSY;
    }
    int rc = mdb_env_set_mapsize(store->env, map_size);
    if (rc != 0) {
        return rsre__store_mdb_err(store, rc, "set_mapsize");
    }
    MDB_envinfo info;
    mdb_env_info(store->env, &info);
    store->map_size = info.me_mapsize;
    RSRE_LOG(RSRE_LOG_INFO, "store", "map resized: dir=%s map_size=%zu", store->dir,
             store->map_size);
    return 0;
}

int rsre_store_info(rsre_store *store, struct rsre_store_info *info) {
    if (store == NULL || info == NULL) {
        return -EINVAL;
    }
    memset(info, 0, sizeof(*info));
    rsre_store_txn *txn;
    int rc = rsre_store_txn_begin(store, 1, &txn);
    if (rc != 0) {
        return rc;
    }
    MDB_envinfo ei;
    MDB_stat es;
    mdb_env_info(store->env, &ei);
    mdb_env_stat(store->env, &es);
    info->map_size = ei.me_mapsize;
    info->page_size = es.ms_psize;
    info->map_used = (ei.me_last_pgno + 1) * (size_t)es.ms_psize;
    info->schema_version = store->schema_version;
    size_t *counts[RSRE__DB_COUNT] = {
        [RSRE__DB_INCIDENTS] = &info->incidents, [RSRE__DB_EVIDENCE] = &info->evidence,
        [RSRE__DB_ACTIONS] = &info->actions,     [RSRE__DB_APPROVALS] = &info->approvals,
        [RSRE__DB_RULES] = &info->rules,         [RSRE__DB_AUDIT] = &info->audit,
        [RSRE__DB_COOLDOWNS] = &info->cooldowns,
    };
    for (int i = 0; i < RSRE__DB_COUNT && rc == 0; i++) {
        MDB_stat st;
        if (counts[i] == NULL) {
            continue;
        }
        int mrc = mdb_stat(txn->mdb, store->dbi[i], &st);
        if (mrc != 0) {
            rc = rsre__store_txn_fail(txn, mrc, "stat");
        } else {
            *counts[i] = st.ms_entries;
        }
    }
    rsre_store_txn_abort(txn);
    return rc;
}

/* --- backup --------------------------------------------------------------------------------- */

/* fsyncs the file or directory at `path`. */
static int fsync_path(const char *path, int dir) {
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int rsre_store_backup(rsre_store *store, const char *dest_dir) {
    if (store == NULL || dest_dir == NULL || *dest_dir == '\0') {
        return -EINVAL;
    }
    pthread_mutex_lock(&store->lock);
    int self_writing = store->writing && pthread_equal(store->writer, pthread_self());
    pthread_mutex_unlock(&store->lock);
    if (self_writing) {
        return -EDEADLK;
    }
    if (mkdir(dest_dir, 0700) != 0 && errno != EEXIST) {
        int err = -errno;
        RSRE_LOG(RSRE_LOG_ERROR, "store", "backup: cannot create dir=%s err=\"%s\"", dest_dir,
                 strerror(-err));
        return err;
    }
    char data[4096];
    if ((size_t)snprintf(data, sizeof(data), "%s/data.mdb", dest_dir) >= sizeof(data)) {
        return -ENAMETOOLONG;
    }
    if (access(data, F_OK) == 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "backup: destination already holds a store: dir=%s",
                 dest_dir);
        return -EEXIST;
    }
    int rc = mdb_env_copy2(store->env, dest_dir, MDB_CP_COMPACT);
    if (rc != 0) {
        return rsre__store_mdb_err(store, rc, "backup_copy");
    }
    rc = fsync_path(data, 0);
    if (rc == 0) {
        rc = fsync_path(dest_dir, 1);
    }
    if (rc != 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "backup: fsync failed: dir=%s err=\"%s\"", dest_dir,
                 strerror(-rc));
        return rc;
    }
    /* Prove the copy is usable: it opens as a store of our schema and its audit chain holds. */
    struct rsre_store_options o = {.map_size = store->map_size, .read_only = 1};
    rsre_store *copy = NULL;
    rc = rsre_store_open(dest_dir, &o, &copy);
    struct rsre_store_audit_report report;
    if (rc == 0) {
        rc = rsre_store_audit_verify(copy, &report);
    }
    rsre_store_close(copy);
    if (rc != 0) {
        RSRE_LOG(RSRE_LOG_ERROR, "store", "backup does not verify: src=%s dest=%s err=\"%s\"",
                 store->dir, dest_dir, rsre_strerror(rc));
        return rc;
    }
    RSRE_LOG(RSRE_LOG_INFO, "store",
             "backup written and verified: src=%s dest=%s audit_records=%llu", store->dir, dest_dir,
             (unsigned long long)report.count);
    return 0;
}
