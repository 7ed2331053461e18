// lock_ops.cpp: the Lock methods that end or manage the lock: commit, unlock, discard, the
// context manager, set_ttl/touch/ttl_remaining and destroy. Thread safety: as sbpy.hpp.
//
// unlock(), discard() and destroy() consume the handle (the C API frees it whatever the result),
// so the object forgets it first; a second unlock() raises NotHeld, a second discard() does
// nothing (so __exit__ after an explicit unlock() or destroy() inside the block is harmless).
#include "sbpy.hpp"

namespace sbpy {
namespace {

PyObject* done(int rc) {
  if (rc != SB_OK) return raise_code(rc);
  Py_RETURN_NONE;
}

PyObject* lock_commit(LockObject* self, PyObject*) {
  sb_lock* l = lock_handle(self);
  return l == nullptr ? nullptr : done(sb_commit(l));
}

PyObject* lock_unlock(LockObject* self, PyObject*) {
  sb_lock* l = lock_handle(self);
  if (l == nullptr) return nullptr;
  self->l = nullptr;
  return done(sb_unlock(l));
}

PyObject* lock_discard(LockObject* self, PyObject*) {
  if (self->l == nullptr) Py_RETURN_NONE;
  sb_lock* l = lock_handle(self);
  if (l == nullptr) return nullptr;
  self->l = nullptr;
  sb_discard(l);
  Py_RETURN_NONE;
}

PyObject* lock_enter(LockObject* self, PyObject*) {
  if (lock_handle(self) == nullptr) return nullptr;
  return Py_NewRef(reinterpret_cast<PyObject*>(self));
}

// __exit__(exc_type, exc, tb): commit + unlock on a normal exit, discard on an exception (which
// then propagates). A lock already unlocked or destroyed in the block is left alone.
PyObject* lock_exit(LockObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) return PyErr_Format(PyExc_TypeError, "__exit__() takes 3 arguments (%zd given)", nargs);
  if (self->l == nullptr) Py_RETURN_FALSE;
  if (args[0] == Py_None) {
    PyObject* r = lock_unlock(self, nullptr);
    if (r == nullptr) return nullptr;
    Py_DECREF(r);
    Py_RETURN_FALSE;
  }
  PyObject* r = lock_discard(self, nullptr);
  Py_XDECREF(r);
  if (r == nullptr) return nullptr;
  Py_RETURN_FALSE;
}

PyObject* lock_set_ttl(LockObject* self, PyObject* seconds) {
  std::int64_t ms;
  if (!seconds_arg(seconds, 0, false, &ms)) return nullptr;
  sb_lock* l = lock_handle(self);
  return l == nullptr ? nullptr : done(sb_set_ttl(l, ms));
}

PyObject* lock_touch(LockObject* self, PyObject*) {
  sb_lock* l = lock_handle(self);
  return l == nullptr ? nullptr : done(sb_touch(l));
}

PyObject* lock_ttl_remaining(LockObject* self, PyObject*) {
  sb_lock* l = lock_handle(self);
  if (l == nullptr) return nullptr;
  std::int64_t ms = 0;
  const int rc = sb_ttl_remaining(l, &ms);
  if (rc != SB_OK) return raise_code(rc);
  if (ms < 0) Py_RETURN_NONE;  // never expires
  return PyFloat_FromDouble(static_cast<double>(ms) / 1000.0);
}

PyObject* lock_destroy(LockObject* self, PyObject*) {
  sb_lock* l = lock_handle(self);
  if (l == nullptr) return nullptr;
  self->l = nullptr;
  return done(sb_destroy_locked(l));
}

}  // namespace

// Copied into the Lock type's method table by init_lock_type (lock.cpp).
PyMethodDef g_lock_op_methods[] = {
    {"commit", reinterpret_cast<PyCFunction>(lock_commit), METH_NOARGS,
     "Makes this lock's writes visible to other processes at once; StaleToken if the lock was lost."},
    {"unlock", reinterpret_cast<PyCFunction>(lock_unlock), METH_NOARGS,
     "Commits, then unlocks (the process keeps its lock cached). NotHeld if already unlocked."},
    {"discard", reinterpret_cast<PyCFunction>(lock_discard), METH_NOARGS,
     "Drops the uncommitted writes, then unlocks. Does nothing if already unlocked."},
    {"__enter__", reinterpret_cast<PyCFunction>(lock_enter), METH_NOARGS, nullptr},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(lock_exit)), METH_FASTCALL,
     "Commits and unlocks on a normal exit, discards on an exception."},
    {"set_ttl", reinterpret_cast<PyCFunction>(lock_set_ttl), METH_O,
     "set_ttl(seconds or None): the session's idle time to live from now; None = the store's default."},
    {"touch", reinterpret_cast<PyCFunction>(lock_touch), METH_NOARGS, "Restarts the session's idle clock now."},
    {"ttl_remaining", reinterpret_cast<PyCFunction>(lock_ttl_remaining), METH_NOARGS,
     "Seconds left before the session expires (float), or None if it never expires."},
    {"destroy", reinterpret_cast<PyCFunction>(lock_destroy), METH_NOARGS,
     "Destroys the session; needs the exclusive whole-session lock. The lock is gone afterwards."},
};
extern const int g_lock_op_count = sizeof g_lock_op_methods / sizeof g_lock_op_methods[0];

}  // namespace sbpy
