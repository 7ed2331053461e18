/*
 * sessionbroker.h: the C API of libsessionbroker, for every language's FFI (C99, no C++ needed).
 *
 *   sb_client* c;  sb_session* s;  sb_lock* l;
 *   if (sb_attach("sessionbroker", &c) != SB_OK) die(sb_last_error());
 *   sb_open_or_create(c, "user:42", 8, 0, &s, NULL);
 *   const char* names[] = {"cart"};  size_t lens[] = {4};
 *   sb_lock_attrs(s, names, lens, 1, SB_EXCLUSIVE, 100, &l);     (wait at most 100 ms)
 *   sb_put(l, "cart", 4, "3 apples", 8);
 *   sb_unlock(l);                                                 (commits, unlocks, frees l)
 *   sb_session_free(s);  sb_client_free(c);
 *
 * Semantics are those of the C++ API (client.hpp): a process lock per session with a fencing
 * token, cached until another process asks for it; thread locks on attributes or the whole session.
 *
 * Conventions.
 *   - Every function that can fail returns an int result code: SB_OK (0) or one of the codes below,
 *     which equal sessionbroker::ErrorCode. sb_last_error() gives the calling thread's message for
 *     its most recent failed call. No function throws, aborts on bad input, or keeps a pointer the
 *     caller passed beyond the call (ids, names and values are copied).
 *   - Strings are byte strings with explicit lengths (not NUL-terminated), except segment names.
 *   - Timeouts are relative, in milliseconds: timeout_ms < 0 waits without limit; 0 never waits
 *     (a try-lock: granted at once or SB_BUSY, and nothing is queued nor asked of any holder).
 *   - Handles are opaque and are freed by the caller with their free function; a handle may be
 *     freed in any order with respect to the others (a lock keeps what it needs alive).
 *   - Values come out into memory the caller owns: a buffer it passes, or memory from an allocator
 *     callback it passes. Nothing the library returns must be freed with the library's allocator.
 *   - Thread safety: as in C++: clients and sessions may be used from any thread; a lock belongs to
 *     the thread using it. Process safety: after fork() the child's handles fail with SB_DETACHED;
 *     the child calls sb_attach itself.
 */
#ifndef SESSIONBROKER_H
#define SESSIONBROKER_H

#include <stddef.h>
#include <stdint.h>

#if defined(SESSIONBROKER_STATIC)
#define SB_API
#else
#define SB_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- result codes (equal to sessionbroker::ErrorCode) ---- */
enum {
  SB_OK = 0,
  SB_INVALID_ARGUMENT = 1,  /* empty or malformed input */
  SB_TOO_LARGE = 2,         /* session id, attribute name or value over its limit */
  SB_NOT_FOUND = 3,         /* unknown session, or destroyed/expired while in use */
  SB_ALREADY_EXISTS = 4,    /* sb_create of an id that exists */
  SB_STALE_TOKEN = 5,       /* the lock was lost (revoked by deadline, broken, destroyed): no data given */
  SB_TIMEOUT = 6,           /* the timeout passed before the lock was granted */
  SB_CAPACITY_EXCEEDED = 7, /* client table, session table, lock records or attribute memory full */
  SB_NO_SEGMENT = 8,        /* the store does not exist, or was removed */
  SB_INCOMPATIBLE = 9,      /* store of another layout version or built differently */
  SB_CORRUPT = 10,          /* the store fails validation */
  SB_PERMISSION_DENIED = 11,/* the store exists but this user may not use it */
  SB_DETACHED = 12,         /* use after detach, or of a parent's handle in a forked child */
  SB_NOT_HELD = 13,         /* release or unlock of a lock that is not held */
  SB_SYSTEM = 14,           /* an operating-system call failed; the message names it */
  SB_BUSY = 15,             /* a try-lock (timeout 0) could not be granted at once */
  SB_UNAVAILABLE = 16       /* the store cannot be reached (no etcd member answers, or none has a leader) */
};

/* The code's name ("stale token"), a static string; "unknown" for other numbers. */
SB_API const char* sb_code_name(int code);
/* The message of the calling thread's most recent failed call ("" if none). Valid until that thread
 * calls into the library again. */
SB_API const char* sb_last_error(void);

/* ---- handles ---- */
typedef struct sb_client sb_client;   /* an attached process */
typedef struct sb_session sb_session; /* one session, shared by the threads of the process */
typedef struct sb_lock sb_lock;       /* one thread's lock on part of a session */

enum { SB_SHARED = 0, SB_EXCLUSIVE = 1 };

/* ---- client ---- */
/* Attaches this process to the store (a segment name). *out is set only on success. */
SB_API int sb_attach(const char* store, sb_client** out);
/* Releases every lock and queue entry of this process and unregisters it; handles fail with
 * SB_DETACHED afterwards. Idempotent. */
SB_API int sb_detach(sb_client* c);
/* Detaches (if not done) and frees the handle. NULL is ignored. */
SB_API void sb_client_free(sb_client* c);
/* The store's limit on one attribute value, in bytes. */
SB_API uint32_t sb_max_value_bytes(const sb_client* c);

/* Revoke events, told to the callback from the library's revoke thread (or a locking thread): keep
 * it short, do not lock the session in it. */
enum { SB_REVOKE_REQUESTED = 0, SB_REVOKE_RELEASED = 1, SB_REVOKE_LOST = 2 };
typedef void (*sb_revoke_fn)(void* ctx, int kind, const char* session_id, size_t id_len, uint64_t token);
/* Registers (or, with fn NULL, removes) the callback. */
SB_API int sb_on_revoke(sb_client* c, sb_revoke_fn fn, void* ctx);

/* ---- sessions ---- */
/* ttl_ms: idle time after which the store expires the session; 0 = the store's default. */
SB_API int sb_create(sb_client* c, const char* id, size_t id_len, int64_t ttl_ms, sb_session** out);
SB_API int sb_open(sb_client* c, const char* id, size_t id_len, sb_session** out);
/* Opens the session, creating it (with ttl_ms) if absent; *created (if not NULL) says which. */
SB_API int sb_open_or_create(sb_client* c, const char* id, size_t id_len, int64_t ttl_ms, sb_session** out,
                             int* created);
/* Takes the session's exclusive lock (revoking holders politely), then destroys it. */
SB_API int sb_destroy(sb_client* c, const char* id, size_t id_len, int64_t timeout_ms);
/* Calls fn for every session id; fn returns non-zero to stop early. */
typedef int (*sb_id_fn)(void* ctx, const char* id, size_t id_len);
SB_API int sb_list(sb_client* c, sb_id_fn fn, void* ctx);
SB_API void sb_session_free(sb_session* s);
/* Gives the process-level lock back as soon as no thread holds a lock on the session. */
SB_API int sb_session_release(sb_session* s, int64_t timeout_ms);
/* The process lock's token, or 0 when not held. */
SB_API uint64_t sb_session_token(const sb_session* s);
/* The pids of the processes holding the session's process lock now (one exclusive holder, or the
 * shared holders; this process too if it holds it): up to cap of them into pids (NULL allowed when
 * cap is 0), and *count = how many there are (more than cap: call again with a larger buffer).
 * A snapshot for messages ("held by pid 1234"): a holder may release right after. */
SB_API int sb_session_holders(sb_session* s, int32_t* pids, size_t cap, size_t* count);

/* ---- locks ---- */
/* Locks `count` attributes (names[i] of name_lens[i] bytes; any order, duplicates allowed) for the
 * calling thread, all or none. timeout_ms 0: a try-lock (SB_BUSY if not grantable at once). */
SB_API int sb_lock_attrs(sb_session* s, const char* const* names, const size_t* name_lens, size_t count, int mode,
                         int64_t timeout_ms, sb_lock** out);
/* Locks the whole session. */
SB_API int sb_lock_all(sb_session* s, int mode, int64_t timeout_ms, sb_lock** out);
SB_API uint64_t sb_lock_token(const sb_lock* l);

/* Reads an attribute into buf (cap bytes). On SB_OK, *found says whether it exists and *len is its
 * size; if *len > cap nothing is copied: call again with a buffer of *len bytes. */
SB_API int sb_get(sb_lock* l, const char* name, size_t name_len, void* buf, size_t cap, size_t* len, int* found);
/* Reads an attribute into memory from alloc(ctx, size), which returns a buffer of at least size
 * bytes (or NULL: then SB_SYSTEM). On SB_OK with *found, *out is that buffer and *len the size;
 * the caller owns it. alloc is not called when the attribute does not exist; for an empty value
 * it is called with size 0 and may return NULL (then *out is NULL and *len 0). */
typedef void* (*sb_alloc_fn)(void* ctx, size_t size);
SB_API int sb_get_alloc(sb_lock* l, const char* name, size_t name_len, sb_alloc_fn alloc, void* ctx, void** out,
                        size_t* len, int* found);
/* Calls fn for every attribute the lock covers (committed state plus this lock's own writes);
 * fn returns non-zero to stop early. */
typedef int (*sb_attr_fn)(void* ctx, const char* name, size_t name_len, const void* value, size_t value_len);
SB_API int sb_get_all(sb_lock* l, sb_attr_fn fn, void* ctx);
/* Writes stay in the process until sb_commit or sb_unlock. REQUIRES an exclusive lock. */
SB_API int sb_put(sb_lock* l, const char* name, size_t name_len, const void* value, size_t value_len);
SB_API int sb_erase(sb_lock* l, const char* name, size_t name_len);
/* Makes this lock's writes visible to other processes atomically; SB_STALE_TOKEN if the lock was lost. */
SB_API int sb_commit(sb_lock* l);
/* Commits, unlocks and frees l, whatever the result (the process keeps its lock cached). */
SB_API int sb_unlock(sb_lock* l);
/* Drops this lock's uncommitted writes, unlocks and frees l. NULL is ignored. */
SB_API void sb_discard(sb_lock* l);

/* ---- expiry and destroy under a lock ---- */
/* The session's idle time to live: set it (0 = the store's default; the idle clock restarts
 * too), renew it (touch: the idle clock restarts now), read what is left (*ms; -1 when it never
 * expires). Any lock mode; fenced: SB_STALE_TOKEN, and nothing changes, once the lock was lost. */
SB_API int sb_set_ttl(sb_lock* l, int64_t ttl_ms);
SB_API int sb_touch(sb_lock* l);
SB_API int sb_ttl_remaining(sb_lock* l, int64_t* ms);
/* Destroys the session this lock holds. REQUIRES an exclusive lock on the whole session
 * (sb_lock_all; any other lock: SB_INVALID_ARGUMENT, and l is discarded). Frees l whatever the
 * result; SB_STALE_TOKEN (nothing destroyed) if it was lost. */
SB_API int sb_destroy_locked(sb_lock* l);

#ifdef __cplusplus
}
#endif

#endif /* SESSIONBROKER_H */
