// open_backend(): the store address picks the backend (backend.hpp).
#include <fmt/format.h>

#include "backend.hpp"
#include "shm_backend.hpp"
#if defined(SESSIONBROKER_WITH_ETCD)
#include "etcd/agent_backend.hpp"
#endif

namespace sessionbroker::detail {

Result<std::unique_ptr<Backend>> open_backend(const std::string& store) {
  if (store.starts_with("etcd://")) {
#if defined(SESSIONBROKER_WITH_ETCD)
    // In an agent process of its own: gRPC must never run in a process that forks (agent_backend.hpp).
    auto etcd = etcd::AgentBackend::attach(store);
    if (!etcd) return etcd.status();
    return std::unique_ptr<Backend>(std::move(*etcd));
#else
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("store '{}': this build of sessionbroker has no etcd backend", store));
#endif
  }
  auto shm = ShmBackend::attach(store);
  if (!shm) return shm.status();
  return std::unique_ptr<Backend>(std::move(*shm));
}

}  // namespace sessionbroker::detail
