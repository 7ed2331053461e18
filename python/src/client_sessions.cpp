// client_sessions.cpp: the Client methods that name sessions: open, create, open_or_create,
// destroy (which waits, with the GIL released) and list. Thread safety: as sbpy.hpp.
#include "sbpy.hpp"

namespace sbpy {
namespace {

// The session id argument: a str (UTF-8); the pointer lives as long as `id`.
bool id_arg(PyObject* id, const char** data, Py_ssize_t* len) {
  if (!PyUnicode_Check(id)) {
    PyErr_Format(PyExc_TypeError, "session id must be str, not %.100s", Py_TYPE(id)->tp_name);
    return false;
  }
  *data = PyUnicode_AsUTF8AndSize(id, len);
  return *data != nullptr;
}

PyObject* client_open(ClientObject* self, PyObject* id) {
  const char* data;
  Py_ssize_t len;
  if (!id_arg(id, &data, &len)) return nullptr;
  sb_client* c = client_handle(self);
  if (c == nullptr) return nullptr;
  sb_session* s = nullptr;
  const int rc = sb_open(c, data, static_cast<size_t>(len), &s);
  if (rc != SB_OK) return raise_code(rc);
  return new_session(self, s, id);
}

// create(id, ttl=None) and open_or_create(id, ttl=None).
PyObject* create_common(ClientObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, bool or_open) {
  static const char* const kNames[] = {"id", "ttl"};
  PyObject* a[2];
  const char* fname = or_open ? "open_or_create" : "create";
  if (!parse_args(fname, args, nargs, kwnames, kNames, 2, a)) return nullptr;
  if (a[0] == nullptr) return PyErr_Format(PyExc_TypeError, "%s() missing required argument 'id'", fname);
  const char* data;
  Py_ssize_t len;
  std::int64_t ttl_ms;
  if (!id_arg(a[0], &data, &len) || !seconds_arg(a[1], 0, false, &ttl_ms)) return nullptr;
  sb_client* c = client_handle(self);
  if (c == nullptr) return nullptr;
  sb_session* s = nullptr;
  int created = 0;
  const int rc = or_open ? sb_open_or_create(c, data, static_cast<size_t>(len), ttl_ms, &s, &created)
                         : sb_create(c, data, static_cast<size_t>(len), ttl_ms, &s);
  if (rc != SB_OK) return raise_code(rc);
  PyObject* session = new_session(self, s, a[0]);
  if (session == nullptr || !or_open) return session;
  return Py_BuildValue("(NO)", session, created ? Py_True : Py_False);
}

PyObject* client_create(ClientObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return create_common(self, args, nargs, kwnames, false);
}

PyObject* client_open_or_create(ClientObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return create_common(self, args, nargs, kwnames, true);
}

PyObject* client_destroy(ClientObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const kNames[] = {"id", "timeout"};
  PyObject* a[2];
  if (!parse_args("destroy", args, nargs, kwnames, kNames, 2, a)) return nullptr;
  if (a[0] == nullptr) return PyErr_Format(PyExc_TypeError, "destroy() missing required argument 'id'");
  const char* data;
  Py_ssize_t len;
  std::int64_t timeout_ms;
  if (!id_arg(a[0], &data, &len) || !seconds_arg(a[1], -1, true, &timeout_ms)) return nullptr;
  sb_client* c = client_handle(self);
  if (c == nullptr) return nullptr;
  int rc;
  Py_BEGIN_ALLOW_THREADS  // a[0] (the id) is held by the caller
  rc = sb_destroy(c, data, static_cast<size_t>(len), timeout_ms);
  Py_END_ALLOW_THREADS
  if (rc != SB_OK) return raise_code(rc);
  Py_RETURN_NONE;
}

int append_id(void* ctx, const char* id, size_t len) {
  PyObject* str = PyUnicode_DecodeUTF8(id, static_cast<Py_ssize_t>(len), "surrogateescape");
  if (str == nullptr) return 1;
  const int r = PyList_Append(static_cast<PyObject*>(ctx), str);
  Py_DECREF(str);
  return r != 0;  // stop at the first error
}

PyObject* client_list(ClientObject* self, PyObject*) {
  sb_client* c = client_handle(self);
  if (c == nullptr) return nullptr;
  PyObject* ids = PyList_New(0);
  if (ids == nullptr) return nullptr;
  const int rc = sb_list(c, append_id, ids);
  if (PyErr_Occurred()) {
    Py_DECREF(ids);
    return nullptr;
  }
  if (rc != SB_OK) {
    Py_DECREF(ids);
    return raise_code(rc);
  }
  return ids;
}

}  // namespace

// Copied into the Client type's method table by init_client_type (client.cpp).
PyMethodDef g_client_session_methods[] = {
    {"open", reinterpret_cast<PyCFunction>(client_open), METH_O, "open(id) -> Session; NotFound if absent."},
    {"create", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_create)), METH_FASTCALL | METH_KEYWORDS,
     "create(id, ttl=None) -> Session; ttl in seconds, None = the store's default. AlreadyExists if present."},
    {"open_or_create", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_open_or_create)),
     METH_FASTCALL | METH_KEYWORDS, "open_or_create(id, ttl=None) -> (Session, created)."},
    {"destroy", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(client_destroy)), METH_FASTCALL | METH_KEYWORDS,
     "destroy(id, timeout=None): takes the session's exclusive lock (waiting at most timeout seconds), then destroys it."},
    {"list", reinterpret_cast<PyCFunction>(client_list), METH_NOARGS, "list() -> list[str]: every session id."},
};

}  // namespace sbpy
