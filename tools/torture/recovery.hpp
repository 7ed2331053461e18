// Time from a holder's SIGKILL to the next waiter's grant, with the broker up (it reclaims through
// a pidfd) and with no broker (waiters check their holders' liveness every 200 ms), beside the
// floor: the time a pidfd takes to report the death to the killer itself.
#pragma once

#include <string>

namespace torture {

int measure_recovery(const std::string& broker_path, const std::string& segment, int rounds);

}  // namespace torture
