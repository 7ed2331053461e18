// open_admin_store(): the address picks the implementation (admin_store.hpp).
#include <fmt/format.h>

#include "admin_store.hpp"
#include "etcd/address.hpp"

namespace sessionctl {

sessionbroker::Result<std::unique_ptr<AdminStore>> open_admin_store(const std::string& address) {
  if (address.starts_with(sessionbroker::detail::etcd::kScheme)) {  // as open_backend(), in builds without etcd too
#if defined(SESSIONBROKER_WITH_ETCD)
    return make_etcd_store(address);
#else
    return sessionbroker::Status(sessionbroker::ErrorCode::kInvalidArgument,
                                 fmt::format("store '{}': this build of sessionctl has no etcd backend", address));
#endif
  }
  return make_shm_store(address);
}

}  // namespace sessionctl
