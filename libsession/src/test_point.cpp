#include "test_point.hpp"

namespace sessionbroker::detail {

std::atomic<TestHook> g_test_hook{nullptr};

}  // namespace sessionbroker::detail
