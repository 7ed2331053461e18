// client.cpp: sessionbroker.Client, a process's attachment to a store (sb_client), the revoke
// callback trampoline and the registry of live clients.
//
// Fork: a Client made before a fork attaches again, to the same store name, on its first use in
// the child (client_handle); its revoke callback is registered on the new handle. The parent's
// handle is forgotten, not freed (sbpy.hpp). detach() is final, in the child too.
// Revoke callbacks: the library calls revoke_trampoline from its revoke thread (or a locking
// thread); it takes the GIL with PyGILState_Ensure, calls the user's callable and reports an
// exception with PyErr_WriteUnraisable: nothing propagates into the library. Nothing calls into
// Python from the library's threads unless on_revoke was given a callable.
#include "sbpy.hpp"

namespace sbpy {

PyTypeObject* g_client_type = nullptr;

namespace {

ClientObject* g_live = nullptr;  // the registry: every ClientObject not yet deallocated

const char* const kRevokeKinds[] = {"requested", "released", "lost"};

void revoke_trampoline(void* ctx, int kind, const char* id, size_t id_len, uint64_t token) {
  if (_Py_IsFinalizing()) return;  // interpreter exit: _detach_all stops the revoke thread first
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject* callback = static_cast<RevokeBox*>(ctx)->callback;
  if (callback != nullptr) {
    Py_INCREF(callback);  // on_revoke may replace it while it runs
    const char* name = kind >= 0 && kind <= 2 ? kRevokeKinds[kind] : "unknown";
    PyObject* r = PyObject_CallFunction(callback, "sNK", name,
                                        PyUnicode_DecodeUTF8(id, static_cast<Py_ssize_t>(id_len), "surrogateescape"),
                                        static_cast<unsigned long long>(token));
    if (r == nullptr) PyErr_WriteUnraisable(callback);
    Py_XDECREF(r);
    Py_DECREF(callback);
  }
  PyGILState_Release(gil);
}

// Frees the handle if this process made it; the GIL is released because sb_client_free waits for
// the revoke thread, which may be waiting for the GIL in revoke_trampoline.
void free_handle(ClientObject* self) {
  sb_client* c = self->c;
  self->c = nullptr;
  if (c == nullptr || self->epoch != g_fork_epoch) return;
  Py_BEGIN_ALLOW_THREADS
  sb_client_free(c);
  Py_END_ALLOW_THREADS
}

PyObject* client_attach(PyObject*, PyObject* store) {
  if (!PyUnicode_Check(store)) return PyErr_Format(PyExc_TypeError, "store must be str, not %.100s", Py_TYPE(store)->tp_name);
  const char* name = PyUnicode_AsUTF8(store);
  if (name == nullptr) return nullptr;
  auto* self = PyObject_New(ClientObject, g_client_type);
  if (self == nullptr) return nullptr;
  self->c = nullptr;
  self->store = Py_NewRef(store);
  self->revoke = nullptr;
  self->epoch = g_fork_epoch;
  self->detached = false;
  self->prev = nullptr;
  self->next = g_live;
  if (g_live != nullptr) g_live->prev = self;
  g_live = self;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = sb_attach(name, &self->c);
  Py_END_ALLOW_THREADS
  if (rc != SB_OK) {
    raise_code(rc);
    Py_DECREF(self);
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(self);
}

void client_dealloc(ClientObject* self) {
  if (self->prev != nullptr) self->prev->next = self->next;
  else g_live = self->next;
  if (self->next != nullptr) self->next->prev = self->prev;
  free_handle(self);  // no callback can come after it
  if (self->revoke != nullptr) {
    Py_XDECREF(self->revoke->callback);
    PyMem_RawFree(self->revoke);
  }
  Py_XDECREF(self->store);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);
}

PyObject* client_detach(ClientObject* self, PyObject*) {
  if (self->detached) Py_RETURN_NONE;
  self->detached = true;
  if (self->epoch != g_fork_epoch) Py_RETURN_NONE;  // the parent's registration is the parent's
  int rc;
  sb_client* c = self->c;
  Py_BEGIN_ALLOW_THREADS
  rc = sb_detach(c);
  Py_END_ALLOW_THREADS
  if (rc != SB_OK) return raise_code(rc);
  Py_RETURN_NONE;
}

PyObject* client_on_revoke(ClientObject* self, PyObject* callback) {
  if (callback != Py_None && !PyCallable_Check(callback))
    return PyErr_Format(PyExc_TypeError, "on_revoke takes a callable or None, not %.100s", Py_TYPE(callback)->tp_name);
  sb_client* c = client_handle(self);
  if (c == nullptr) return nullptr;
  if (self->revoke == nullptr) {
    self->revoke = static_cast<RevokeBox*>(PyMem_RawCalloc(1, sizeof(RevokeBox)));
    if (self->revoke == nullptr) return PyErr_NoMemory();
  }
  PyObject* old = self->revoke->callback;
  self->revoke->callback = callback == Py_None ? nullptr : Py_NewRef(callback);
  Py_XDECREF(old);
  // Registered once, removed with None: the trampoline reads the box's callback under the GIL.
  const int rc = callback == Py_None ? sb_on_revoke(c, nullptr, nullptr) : sb_on_revoke(c, revoke_trampoline, self->revoke);
  if (rc != SB_OK) return raise_code(rc);
  Py_RETURN_NONE;
}

PyObject* client_max_value_bytes(ClientObject* self, void*) {
  sb_client* c = client_handle(self);
  return c == nullptr ? nullptr : PyLong_FromUnsignedLong(sb_max_value_bytes(c));
}

PyObject* client_store(ClientObject* self, void*) { return Py_NewRef(self->store); }

PyObject* client_repr(ClientObject* self) {
  return PyUnicode_FromFormat("<sessionbroker.Client store=%R%s>", self->store, self->detached ? " detached" : "");
}

}  // namespace

sb_client* client_handle(ClientObject* self) {
  if (self->detached) {
    raise_msg(SB_DETACHED, "the client was detached");
    return nullptr;
  }
  if (self->epoch == g_fork_epoch) return self->c;
  // First use in a forked child: attach this process under the same store name.
  const char* name = PyUnicode_AsUTF8(self->store);
  sb_client* fresh = nullptr;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = sb_attach(name, &fresh);
  Py_END_ALLOW_THREADS
  if (rc != SB_OK) {
    raise_code(rc);
    return nullptr;
  }
  if (self->epoch == g_fork_epoch || self->detached) {
    // Another thread attached (or detached) while this one waited without the GIL: use its.
    Py_BEGIN_ALLOW_THREADS
    sb_client_free(fresh);
    Py_END_ALLOW_THREADS
    if (!self->detached) return self->c;
    raise_msg(SB_DETACHED, "the client was detached");
    return nullptr;
  }
  self->c = fresh;  // the parent's handle is forgotten (sbpy.hpp)
  self->epoch = g_fork_epoch;
  if (self->revoke != nullptr && self->revoke->callback != nullptr) {
    rc = sb_on_revoke(fresh, revoke_trampoline, self->revoke);
    if (rc != SB_OK) {
      raise_code(rc);
      return nullptr;
    }
  }
  return fresh;
}

void detach_all() {
  // Each client is referenced while the GIL is released, so it stays in the list and its next
  // link is valid once the GIL is back (other threads may deallocate other clients meanwhile).
  ClientObject* self = g_live;
  Py_XINCREF(self);
  while (self != nullptr) {
    if (!self->detached && self->epoch == g_fork_epoch) {
      self->detached = true;
      sb_client* c = self->c;
      Py_BEGIN_ALLOW_THREADS
      sb_detach(c);
      Py_END_ALLOW_THREADS
    }
    ClientObject* next = self->next;
    Py_XINCREF(next);
    Py_DECREF(self);  // may deallocate it (unlinking it); next is held
    self = next;
  }
}


// client_sessions.cpp: open, create, open_or_create, destroy, list.
extern PyMethodDef g_client_session_methods[];

bool init_client_type(PyObject* module) {
  static PyMethodDef methods[] = {
      {"attach", client_attach, METH_O | METH_STATIC,
       "attach(store) -> Client: attaches this process to the store (a segment name)."},
      {"detach", reinterpret_cast<PyCFunction>(client_detach), METH_NOARGS,
       "Releases every lock of this process and unregisters it; idempotent. Later calls raise Detached."},
      {"on_revoke", reinterpret_cast<PyCFunction>(client_on_revoke), METH_O,
       "on_revoke(callback or None): callback(kind, session_id, token) from the revoke thread."},
      g_client_session_methods[0], g_client_session_methods[1], g_client_session_methods[2],
      g_client_session_methods[3], g_client_session_methods[4],
      {nullptr, nullptr, 0, nullptr}};
  static PyGetSetDef getset[] = {
      {"max_value_bytes", reinterpret_cast<getter>(client_max_value_bytes), nullptr, "The store's limit on one value.", nullptr},
      {"store", reinterpret_cast<getter>(client_store), nullptr, "The store name given to attach.", nullptr},
      {nullptr, nullptr, nullptr, nullptr, nullptr}};
  static PyType_Slot slots[] = {
      {Py_tp_dealloc, reinterpret_cast<void*>(client_dealloc)},
      {Py_tp_repr, reinterpret_cast<void*>(client_repr)},
      {Py_tp_methods, methods},
      {Py_tp_getset, getset},
      {Py_tp_doc, const_cast<char*>("A process's attachment to a store. Make one with Client.attach(store).")},
      {0, nullptr}};
  static PyType_Spec spec = {"sessionbroker.Client", sizeof(ClientObject), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
  g_client_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  return g_client_type != nullptr && PyModule_AddObjectRef(module, "Client", reinterpret_cast<PyObject*>(g_client_type)) == 0;
}

}  // namespace sbpy
