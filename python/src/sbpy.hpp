// sbpy.hpp: what the files of the extension module sessionbroker._sessionbroker share: the three
// object types over the C API's handles (sessionbroker.h), the exception classes, the fork epoch
// and the argument helpers. The module is a thin layer: each Python call is one C call on the hot
// path (a lock on a cached process lock, get, put, unlock), plus argument conversion.
//
// Thread safety: everything here runs with the GIL held (it guards every field below), except the
// C calls wrapped in Py_BEGIN/END_ALLOW_THREADS: the blocking waits (a lock that must wait,
// release, destroy, attach, detach), and revoke_trampoline, which takes the GIL itself
// (PyGILState_Ensure) and runs only when the user registered a callback. A handle used while the
// GIL is released stays alive because the Python object that owns it is referenced by the caller.
//
// Process safety (fork): g_fork_epoch counts the forks this process is a child of (bumped by the
// os.register_at_fork after_in_child hook and by a pthread_atfork child handler, for servers that
// fork from C without telling Python). A handle made in an earlier epoch belongs to the parent:
// Session and Lock refuse it (Detached); a Client attaches again to the same store on its first
// use in the child. Parent handles are never freed in a child, only forgotten: a thread of the
// parent may have held the library's process-local locks at fork().
//
// Invariants: ClientObject::c is NULL only while attach() builds the object; SessionObject::s is
// never NULL; LockObject::l is NULL once the lock was unlocked, discarded or destroyed.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>

#include <sessionbroker/sessionbroker.h>

namespace sbpy {

// The callback of Client.on_revoke, in memory of its own: the library keeps a pointer to it
// (ctx), and it is freed only after the handle that calls it is freed.
struct RevokeBox {
  PyObject* callback;  // strong reference, or NULL
};

struct ClientObject {
  PyObject_HEAD
  sb_client* c;
  PyObject* store;        // str: the name given to attach, used again after fork
  RevokeBox* revoke;      // NULL until on_revoke is first called
  unsigned long epoch;    // g_fork_epoch when c was attached
  bool detached;          // detach() was called: no re-attach after fork either
  ClientObject* prev;     // the registry of live clients (detached at interpreter exit)
  ClientObject* next;
};

struct SessionObject {
  PyObject_HEAD
  sb_session* s;
  ClientObject* client;  // strong reference
  PyObject* id;          // str
  unsigned long epoch;
};

struct LockObject {
  PyObject_HEAD
  sb_lock* l;
  SessionObject* session;  // strong reference
  unsigned long epoch;
};

extern PyTypeObject* g_client_type;
extern PyTypeObject* g_session_type;
extern PyTypeObject* g_lock_type;
extern unsigned long g_fork_epoch;

// ---- errors (module.cpp) ----
// Raises the exception class of `code` with sb_last_error()'s message. Returns NULL.
PyObject* raise_code(int code);
// Raises `code`'s class with a message of the module's own. Returns NULL.
PyObject* raise_msg(int code, const char* message);
// Adds Error and its subclasses to the module. Returns false with an exception set.
bool add_exceptions(PyObject* module);

// ---- arguments (module.cpp) ----
// FASTCALL arguments by position or keyword into out[0..n) (NULL where not given); TypeError on
// an unknown keyword, a duplicate or too many positionals.
bool parse_args(const char* fname, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                const char* const* names, int n, PyObject** out);
// A str as UTF-8 (pointer valid while `obj` lives) or bytes as they are; TypeError otherwise.
bool text_arg(PyObject* obj, const char* what, const char** data, Py_ssize_t* len);
// Seconds (int or float) or None to milliseconds: None -> `none_ms`; a fraction of a millisecond
// rounds up (so a small timeout never becomes a try-lock). ValueError when negative or NaN, or
// when zero and `zero_ok` is false.
bool seconds_arg(PyObject* obj, std::int64_t none_ms, bool zero_ok, std::int64_t* ms);

// ---- objects (client.cpp, session.cpp, lock.cpp) ----
bool init_client_type(PyObject* module);
bool init_session_type(PyObject* module);
bool init_lock_type(PyObject* module);
// The client's handle for a call: re-attached first if made before a fork; NULL with Detached
// raised after detach().
sb_client* client_handle(ClientObject* self);
// Wraps a session handle (takes ownership of s). NULL (and s freed) on failure.
PyObject* new_session(ClientObject* client, sb_session* s, PyObject* id);
// The lock's handle for a call, or NULL with NotHeld (already unlocked) or Detached (taken
// before a fork) raised.
sb_lock* lock_handle(LockObject* self);
// Wraps a lock handle (takes ownership of l).
PyObject* new_lock(SessionObject* session, sb_lock* l);
// Detaches every client of this process (interpreter exit: no revoke callback after it).
void detach_all();

}  // namespace sbpy
