// module.cpp: PyInit__sessionbroker (the module's only exported symbol), the exception classes,
// the fork and exit hooks, and the argument helpers the object files share (sbpy.hpp).
//
// Exceptions: sessionbroker.Error (attribute .code) and one subclass per result code of
// sessionbroker.h, each with a class attribute .code, so raising one is a PyErr_SetString.
#include "sbpy.hpp"

#include <pthread.h>

#include <cmath>

namespace sbpy {

unsigned long g_fork_epoch = 0;

namespace {

PyObject* g_error = nullptr;
// Indexed by result code; [0] unused. Names as in the Python API (SB_SYSTEM is SystemFailure:
// SystemError is a builtin).
constexpr int kCodes = SB_UNAVAILABLE + 1;
PyObject* g_classes[kCodes] = {};
const char* const kClassNames[kCodes] = {
    nullptr,       "InvalidArgument", "TooLarge",         "NotFound", "AlreadyExists",
    "StaleToken",  "Timeout",         "CapacityExceeded", "NoSegment", "Incompatible",
    "Corrupt",     "PermissionDenied", "Detached",        "NotHeld",  "SystemFailure",
    "Busy",        "Unavailable"};

PyObject* class_of(int code) { return code > 0 && code < kCodes ? g_classes[code] : nullptr; }

}  // namespace

PyObject* raise_msg(int code, const char* message) {
  if (PyObject* cls = class_of(code)) {
    PyErr_SetString(cls, message);
    return nullptr;
  }
  // A code this module does not know (a newer library): the base class, the code on the instance.
  PyObject* exc = PyObject_CallFunction(g_error, "s", message);
  if (exc == nullptr) return nullptr;
  PyObject* num = PyLong_FromLong(code);
  if (num != nullptr && PyObject_SetAttrString(exc, "code", num) == 0) PyErr_SetObject(g_error, exc);
  Py_XDECREF(num);
  Py_DECREF(exc);
  return nullptr;
}

PyObject* raise_code(int code) {
  const char* message = sb_last_error();
  return raise_msg(code, message != nullptr && *message != '\0' ? message : sb_code_name(code));
}

bool add_exceptions(PyObject* module) {
  g_error = PyErr_NewExceptionWithDoc("sessionbroker.Error",
                                      "A sessionbroker call failed; .code is its result code (sessionbroker.h).",
                                      nullptr, nullptr);
  if (g_error == nullptr || PyModule_AddObjectRef(module, "Error", g_error) < 0) return false;
  for (int code = 1; code < kCodes; ++code) {
    PyObject* attrs = Py_BuildValue("{s:i,s:s}", "code", code, "__doc__", sb_code_name(code));
    if (attrs == nullptr) return false;
    char qualified[64];
    PyOS_snprintf(qualified, sizeof qualified, "sessionbroker.%s", kClassNames[code]);
    g_classes[code] = PyErr_NewException(qualified, g_error, attrs);
    Py_DECREF(attrs);
    if (g_classes[code] == nullptr || PyModule_AddObjectRef(module, kClassNames[code], g_classes[code]) < 0)
      return false;
  }
  return true;
}

bool parse_args(const char* fname, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                const char* const* names, int n, PyObject** out) {
  if (nargs > n) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fname, n, nargs);
    return false;
  }
  for (int i = 0; i < n; ++i) out[i] = i < nargs ? args[i] : nullptr;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    int i = 0;
    while (i < n && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) ++i;
    if (i == n) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
      return false;
    }
    if (out[i] != nullptr) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, names[i]);
      return false;
    }
    out[i] = args[nargs + k];
  }
  return true;
}

bool text_arg(PyObject* obj, const char* what, const char** data, Py_ssize_t* len) {
  if (PyUnicode_Check(obj)) {
    *data = PyUnicode_AsUTF8AndSize(obj, len);
    return *data != nullptr;
  }
  if (PyBytes_Check(obj)) {
    *data = PyBytes_AS_STRING(obj);
    *len = PyBytes_GET_SIZE(obj);
    return true;
  }
  PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(obj)->tp_name);
  return false;
}

bool seconds_arg(PyObject* obj, std::int64_t none_ms, bool zero_ok, std::int64_t* ms) {
  if (obj == nullptr || obj == Py_None) {
    *ms = none_ms;
    return true;
  }
  const double s = PyFloat_AsDouble(obj);
  if (s == -1.0 && PyErr_Occurred()) return false;
  if (std::isnan(s) || s < 0 || (s == 0 && !zero_ok)) {
    PyErr_Format(PyExc_ValueError, zero_ok ? "seconds must be >= 0 or None, not %R" : "seconds must be > 0 or None, not %R",
                 obj);
    return false;
  }
  const double m = std::ceil(s * 1000.0);
  // Past about 146 million years (inf too): a timeout has no limit; a TTL saturates.
  *ms = m < 4.6e18 ? static_cast<std::int64_t>(m) : none_ms < 0 ? -1 : std::int64_t{1} << 62;
  return true;
}

namespace {

// The child of every fork (os.fork through Python, or fork() from C, as uWSGI does unless told
// to call Python's hooks): the handles made before it belong to the parent.
void bump_epoch() { ++g_fork_epoch; }

PyObject* after_fork_in_child(PyObject*, PyObject*) {
  bump_epoch();
  Py_RETURN_NONE;
}

PyObject* detach_all_at_exit(PyObject*, PyObject*) {
  detach_all();
  Py_RETURN_NONE;
}

PyMethodDef g_module_methods[] = {
    {"_after_fork_in_child", after_fork_in_child, METH_NOARGS,
     "os.register_at_fork hook: handles made before the fork belong to the parent."},
    {"_detach_all", detach_all_at_exit, METH_NOARGS,
     "atexit hook: detaches every client, so no revoke callback runs during interpreter shutdown."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef g_module = {PyModuleDef_HEAD_INIT, "sessionbroker._sessionbroker",
                        "The native part of sessionbroker (a thin layer over sessionbroker.h).", -1,
                        g_module_methods, nullptr, nullptr, nullptr, nullptr};

// os.register_at_fork(after_in_child=_after_fork_in_child) and atexit.register(_detach_all).
bool register_hooks(PyObject* module) {
  PyObject* hook = PyObject_GetAttrString(module, "_after_fork_in_child");
  PyObject* exit_hook = PyObject_GetAttrString(module, "_detach_all");
  PyObject* os = PyImport_ImportModule("os");
  PyObject* atexit = PyImport_ImportModule("atexit");
  bool ok = false;
  if (hook != nullptr && exit_hook != nullptr && os != nullptr && atexit != nullptr) {
    PyObject* reg = PyObject_GetAttrString(os, "register_at_fork");
    PyObject* kw = Py_BuildValue("{s:O}", "after_in_child", hook);
    PyObject* empty = PyTuple_New(0);
    PyObject* r1 = reg && kw && empty ? PyObject_Call(reg, empty, kw) : nullptr;
    PyObject* r2 = r1 ? PyObject_CallMethod(atexit, "register", "O", exit_hook) : nullptr;
    ok = r2 != nullptr;
    Py_XDECREF(reg), Py_XDECREF(kw), Py_XDECREF(empty), Py_XDECREF(r1), Py_XDECREF(r2);
  }
  Py_XDECREF(hook), Py_XDECREF(exit_hook), Py_XDECREF(os), Py_XDECREF(atexit);
  return ok && pthread_atfork(nullptr, nullptr, bump_epoch) == 0;
}

}  // namespace
}  // namespace sbpy

extern "C" __attribute__((visibility("default"))) PyObject* PyInit__sessionbroker() {
  using namespace sbpy;
  PyObject* module = PyModule_Create(&g_module);
  if (module == nullptr) return nullptr;
  if (!add_exceptions(module) || !init_client_type(module) || !init_session_type(module) ||
      !init_lock_type(module) || !register_hooks(module)) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
