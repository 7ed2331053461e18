// session.cpp: sessionbroker.Session (sb_session): id, token, release() and lock().
//
// lock() first tries without waiting, with the GIL held (one C call: the common case, a lock on
// a cached process lock, costs no GIL round trip); only if that is busy and the caller allows a
// wait does it call again with the timeout and the GIL released, so other Python threads run
// while it waits. Thread safety: as sbpy.hpp; a Session may be shared by threads.
#include "sbpy.hpp"

namespace sbpy {

PyTypeObject* g_session_type = nullptr;

namespace {

constexpr Py_ssize_t kStackNames = 8;

// The session's handle, or NULL with Detached raised when it was made before a fork.
sb_session* live(SessionObject* self) {
  if (self->epoch == g_fork_epoch) return self->s;
  raise_msg(SB_DETACHED, "this session handle was made before fork(): open the session again in this process");
  return nullptr;
}

void session_dealloc(SessionObject* self) {
  if (self->epoch == g_fork_epoch) sb_session_free(self->s);  // else the parent's: forgotten
  Py_XDECREF(self->client);
  Py_XDECREF(self->id);
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);
}

// The names' UTF-8 views, valid while `seq` (a list or tuple, not mutated meanwhile) lives.
struct Names {
  const char* stack_ptrs[kStackNames];
  size_t stack_lens[kStackNames];
  const char** ptrs = stack_ptrs;
  size_t* lens = stack_lens;
  Py_ssize_t count = 0;
  ~Names() {
    if (ptrs != stack_ptrs) PyMem_Free(ptrs), PyMem_Free(lens);
  }
  bool fill(PyObject* seq) {
    count = PySequence_Fast_GET_SIZE(seq);
    if (count > kStackNames) {
      ptrs = PyMem_New(const char*, count);
      lens = PyMem_New(size_t, count);
      if (ptrs == nullptr || lens == nullptr) return PyErr_NoMemory(), false;
    }
    PyObject** items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < count; ++i) {
      Py_ssize_t len;
      if (!text_arg(items[i], "attribute name", &ptrs[i], &len)) return false;
      lens[i] = static_cast<size_t>(len);
    }
    return true;
  }
};

int lock_call(sb_session* s, const Names* names, int mode, std::int64_t timeout_ms, sb_lock** out) {
  if (names == nullptr) return sb_lock_all(s, mode, timeout_ms, out);
  return sb_lock_attrs(s, names->ptrs, names->lens, static_cast<size_t>(names->count), mode, timeout_ms, out);
}

// The blocking path: `names` must stay valid without the GIL, so a list is copied to a tuple
// (another thread may change the list meanwhile) and the views are taken from the copy.
int wait_for_lock(sb_session* s, PyObject* names_arg, int mode, std::int64_t timeout_ms, sb_lock** out) {
  PyObject* frozen = nullptr;
  Names names;
  if (names_arg != nullptr) {
    frozen = PySequence_Tuple(names_arg);
    if (frozen == nullptr || !names.fill(frozen)) {
      Py_XDECREF(frozen);
      return -1;
    }
  }
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = lock_call(s, frozen == nullptr ? nullptr : &names, mode, timeout_ms, out);
  Py_END_ALLOW_THREADS
  Py_XDECREF(frozen);
  return rc;
}

// lock(names=None, exclusive=True, timeout=None) -> Lock
PyObject* session_lock(SessionObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const kNames[] = {"names", "exclusive", "timeout"};
  PyObject* a[3];
  if (!parse_args("lock", args, nargs, kwnames, kNames, 3, a)) return nullptr;
  PyObject* names_arg = a[0] == Py_None ? nullptr : a[0];
  if (names_arg != nullptr && (PyUnicode_Check(names_arg) || PyBytes_Check(names_arg)))
    return PyErr_Format(PyExc_TypeError, "names must be a list of str (or None for the whole session), not a string");
  int mode = SB_EXCLUSIVE;
  if (a[1] != nullptr) {
    const int truth = PyObject_IsTrue(a[1]);
    if (truth < 0) return nullptr;
    mode = truth ? SB_EXCLUSIVE : SB_SHARED;
  }
  std::int64_t timeout_ms;
  if (!seconds_arg(a[2], -1, true, &timeout_ms)) return nullptr;
  sb_session* s = live(self);
  if (s == nullptr) return nullptr;
  PyObject* seq = nullptr;
  Names names;
  if (names_arg != nullptr) {
    seq = PySequence_Fast(names_arg, "names must be a list of str or None");
    if (seq == nullptr) return nullptr;
    if (!names.fill(seq)) return Py_DECREF(seq), nullptr;
  }
  sb_lock* l = nullptr;
  int rc = lock_call(s, seq == nullptr ? nullptr : &names, mode, 0, &l);
  Py_XDECREF(seq);
  if (rc == SB_BUSY && timeout_ms != 0) rc = wait_for_lock(s, names_arg, mode, timeout_ms, &l);
  if (rc == -1) return nullptr;
  if (rc != SB_OK) return raise_code(rc);
  return new_lock(self, l);
}

// release(timeout=None): gives the process lock back once no thread holds the session.
PyObject* session_release(SessionObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const kNames[] = {"timeout"};
  PyObject* a[1];
  std::int64_t timeout_ms;
  if (!parse_args("release", args, nargs, kwnames, kNames, 1, a) || !seconds_arg(a[0], -1, true, &timeout_ms))
    return nullptr;
  sb_session* s = live(self);
  if (s == nullptr) return nullptr;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = sb_session_release(s, timeout_ms);
  Py_END_ALLOW_THREADS
  if (rc != SB_OK) return raise_code(rc);
  Py_RETURN_NONE;
}

PyObject* session_id(SessionObject* self, void*) { return Py_NewRef(self->id); }

PyObject* session_token(SessionObject* self, void*) {
  sb_session* s = live(self);
  return s == nullptr ? nullptr : PyLong_FromUnsignedLongLong(sb_session_token(s));
}

PyObject* session_repr(SessionObject* self) { return PyUnicode_FromFormat("<sessionbroker.Session id=%R>", self->id); }

}  // namespace

PyObject* new_session(ClientObject* client, sb_session* s, PyObject* id) {
  auto* self = PyObject_New(SessionObject, g_session_type);
  if (self == nullptr) {
    sb_session_free(s);
    return nullptr;
  }
  self->s = s;
  self->client = reinterpret_cast<ClientObject*>(Py_NewRef(reinterpret_cast<PyObject*>(client)));
  self->id = Py_NewRef(id);
  self->epoch = g_fork_epoch;
  return reinterpret_cast<PyObject*>(self);
}

bool init_session_type(PyObject* module) {
  static PyMethodDef methods[] = {
      {"lock", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(session_lock)), METH_FASTCALL | METH_KEYWORDS,
       "lock(names=None, exclusive=True, timeout=None) -> Lock. names None: the whole session; timeout in seconds, "
       "None = no limit, 0 = try-lock (Busy)."},
      {"release", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(session_release)),
       METH_FASTCALL | METH_KEYWORDS, "release(timeout=None): gives the process lock back once no thread holds it."},
      {nullptr, nullptr, 0, nullptr}};
  static PyGetSetDef getset[] = {
      {"id", reinterpret_cast<getter>(session_id), nullptr, "The session id.", nullptr},
      {"token", reinterpret_cast<getter>(session_token), nullptr, "The process lock's token, 0 if not held.", nullptr},
      {nullptr, nullptr, nullptr, nullptr, nullptr}};
  static PyType_Slot slots[] = {
      {Py_tp_dealloc, reinterpret_cast<void*>(session_dealloc)},
      {Py_tp_repr, reinterpret_cast<void*>(session_repr)},
      {Py_tp_methods, methods},
      {Py_tp_getset, getset},
      {Py_tp_doc, const_cast<char*>("A session, shared by the threads of this process (Client.open/create).")},
      {0, nullptr}};
  static PyType_Spec spec = {"sessionbroker.Session", sizeof(SessionObject), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
  g_session_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  return g_session_type != nullptr &&
         PyModule_AddObjectRef(module, "Session", reinterpret_cast<PyObject*>(g_session_type)) == 0;
}

}  // namespace sbpy
