// lock.cpp: sessionbroker.Lock (sb_lock), one thread's lock on part of a session, used as a
// mapping of attribute names to bytes and as a context manager (commit + unlock on a normal exit,
// discard + unlock on an exception).
//
// Each access is one C call: lock[name] reads straight into a new bytes object (sb_get_alloc's
// allocator makes it), lock[name] = value passes the str's cached UTF-8 or the bytes' own buffer.
// A Lock that is garbage-collected while still held is discarded (its uncommitted writes dropped).
// Thread safety: as sbpy.hpp; like the C API's, a lock belongs to the thread using it.
#include "sbpy.hpp"

namespace sbpy {

PyTypeObject* g_lock_type = nullptr;

// lock_ops.cpp: commit, unlock, discard, TTL, destroy, the context manager.
extern PyMethodDef g_lock_op_methods[];
extern const int g_lock_op_count;

namespace {

struct NewBytes {
  PyObject* obj = nullptr;
};

void* alloc_bytes(void* ctx, size_t size) {
  auto* nb = static_cast<NewBytes*>(ctx);
  Py_CLEAR(nb->obj);
  nb->obj = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
  return nb->obj == nullptr ? nullptr : PyBytes_AS_STRING(nb->obj);
}

// Whether the lock's view holds `name` (one sb_get that copies nothing). -1 with an exception.
int has(sb_lock* l, const char* name, Py_ssize_t len) {
  char none;
  size_t size;
  int found;
  const int rc = sb_get(l, name, static_cast<size_t>(len), &none, 0, &size, &found);
  if (rc != SB_OK) return raise_code(rc), -1;
  return found;
}

// lock[name] -> bytes; KeyError if absent. lock.get(name, default=None).
PyObject* read(LockObject* self, PyObject* key, PyObject* dflt) {
  sb_lock* l = lock_handle(self);
  const char* name;
  Py_ssize_t len;
  if (l == nullptr || !text_arg(key, "attribute name", &name, &len)) return nullptr;
  NewBytes nb;
  void* out;
  size_t size;
  int found = 0;
  const int rc = sb_get_alloc(l, name, static_cast<size_t>(len), alloc_bytes, &nb, &out, &size, &found);
  if (rc != SB_OK || !found) {
    Py_XDECREF(nb.obj);
    if (PyErr_Occurred()) return nullptr;  // the allocation failed
    if (rc != SB_OK) return raise_code(rc);
    if (dflt != nullptr) return Py_NewRef(dflt);
    PyErr_SetObject(PyExc_KeyError, key);
    return nullptr;
  }
  return nb.obj;
}

PyObject* lock_subscript(LockObject* self, PyObject* key) { return read(self, key, nullptr); }

PyObject* lock_get(LockObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const kNames[] = {"name", "default"};
  PyObject* a[2];
  if (!parse_args("get", args, nargs, kwnames, kNames, 2, a)) return nullptr;
  if (a[0] == nullptr) return PyErr_Format(PyExc_TypeError, "get() missing required argument 'name'");
  return read(self, a[0], a[1] == nullptr ? Py_None : a[1]);
}

// lock[name] = value (bytes, str as UTF-8, or any bytes-like object); del lock[name].
int lock_ass_subscript(LockObject* self, PyObject* key, PyObject* value) {
  sb_lock* l = lock_handle(self);
  const char* name;
  Py_ssize_t len;
  if (l == nullptr || !text_arg(key, "attribute name", &name, &len)) return -1;
  int rc;
  if (value == nullptr) {
    const int found = has(l, name, len);
    if (found <= 0) {
      if (found == 0) PyErr_SetObject(PyExc_KeyError, key);
      return -1;
    }
    rc = sb_erase(l, name, static_cast<size_t>(len));
  } else if (PyBytes_Check(value) || PyUnicode_Check(value)) {
    const char* data;
    Py_ssize_t size;
    if (!text_arg(value, "value", &data, &size)) return -1;
    rc = sb_put(l, name, static_cast<size_t>(len), data, static_cast<size_t>(size));
  } else {
    Py_buffer view;
    if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0) {
      PyErr_Format(PyExc_TypeError, "value must be bytes or str, not %.100s", Py_TYPE(value)->tp_name);
      return -1;
    }
    rc = sb_put(l, name, static_cast<size_t>(len), view.buf, static_cast<size_t>(view.len));
    PyBuffer_Release(&view);
  }
  if (rc != SB_OK) return raise_code(rc), -1;
  return 0;
}

int lock_contains(LockObject* self, PyObject* key) {
  sb_lock* l = lock_handle(self);
  const char* name;
  Py_ssize_t len;
  if (l == nullptr || !text_arg(key, "attribute name", &name, &len)) return -1;
  return has(l, name, len);
}

int add_item(void* ctx, const char* name, size_t name_len, const void* value, size_t value_len) {
  PyObject* key = PyUnicode_DecodeUTF8(name, static_cast<Py_ssize_t>(name_len), "surrogateescape");
  PyObject* val = PyBytes_FromStringAndSize(static_cast<const char*>(value), static_cast<Py_ssize_t>(value_len));
  const int r = key != nullptr && val != nullptr ? PyDict_SetItem(static_cast<PyObject*>(ctx), key, val) : -1;
  Py_XDECREF(key);
  Py_XDECREF(val);
  return r != 0;  // stop at the first error
}

// items() -> dict[str, bytes]: every attribute the lock covers, with its own writes.
PyObject* lock_items(LockObject* self, PyObject*) {
  sb_lock* l = lock_handle(self);
  if (l == nullptr) return nullptr;
  PyObject* dict = PyDict_New();
  if (dict == nullptr) return nullptr;
  const int rc = sb_get_all(l, add_item, dict);
  if (rc != SB_OK || PyErr_Occurred()) {
    Py_DECREF(dict);
    return PyErr_Occurred() ? nullptr : raise_code(rc);
  }
  return dict;
}

PyObject* lock_token(LockObject* self, void*) {
  sb_lock* l = lock_handle(self);
  return l == nullptr ? nullptr : PyLong_FromUnsignedLongLong(sb_lock_token(l));
}

PyObject* lock_session(LockObject* self, void*) { return Py_NewRef(reinterpret_cast<PyObject*>(self->session)); }

void lock_dealloc(LockObject* self) {
  if (self->l != nullptr && self->epoch == g_fork_epoch) sb_discard(self->l);  // a parent's: forgotten
  Py_XDECREF(self->session);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);
}

}  // namespace

sb_lock* lock_handle(LockObject* self) {
  if (self->epoch != g_fork_epoch) {
    raise_msg(SB_DETACHED, "this lock was taken before fork(): it belongs to the parent process");
    return nullptr;
  }
  if (self->l == nullptr) raise_msg(SB_NOT_HELD, "the lock was already unlocked, discarded or destroyed");
  return self->l;
}

PyObject* new_lock(SessionObject* session, sb_lock* l) {
  auto* self = PyObject_New(LockObject, g_lock_type);
  if (self == nullptr) {
    sb_discard(l);
    return nullptr;
  }
  self->l = l;
  self->session = reinterpret_cast<SessionObject*>(Py_NewRef(reinterpret_cast<PyObject*>(session)));
  self->epoch = g_fork_epoch;
  return reinterpret_cast<PyObject*>(self);
}

bool init_lock_type(PyObject* module) {
  static PyMethodDef methods[16] = {
      {"get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(lock_get)), METH_FASTCALL | METH_KEYWORDS,
       "get(name, default=None) -> bytes or default."},
      {"items", reinterpret_cast<PyCFunction>(lock_items), METH_NOARGS,
       "items() -> dict[str, bytes]: every attribute the lock covers."}};
  for (int i = 0; i < g_lock_op_count; ++i) methods[2 + i] = g_lock_op_methods[i];  // the rest stay zero
  static PyGetSetDef getset[] = {
      {"token", reinterpret_cast<getter>(lock_token), nullptr, "The process lock's token this lock was granted under.", nullptr},
      {"session", reinterpret_cast<getter>(lock_session), nullptr, "The Session this lock is on.", nullptr},
      {nullptr, nullptr, nullptr, nullptr, nullptr}};
  static PyType_Slot slots[] = {
      {Py_tp_dealloc, reinterpret_cast<void*>(lock_dealloc)},
      {Py_tp_methods, methods},
      {Py_tp_getset, getset},
      {Py_mp_subscript, reinterpret_cast<void*>(lock_subscript)},
      {Py_mp_ass_subscript, reinterpret_cast<void*>(lock_ass_subscript)},
      {Py_sq_contains, reinterpret_cast<void*>(lock_contains)},
      {Py_tp_doc, const_cast<char*>("One thread's lock on part of a session (Session.lock).")},
      {0, nullptr}};
  static PyType_Spec spec = {"sessionbroker.Lock", sizeof(LockObject), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
  g_lock_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  return g_lock_type != nullptr && PyModule_AddObjectRef(module, "Lock", reinterpret_cast<PyObject*>(g_lock_type)) == 0;
}

}  // namespace sbpy
