// The state `sessionctl dump` shows, and its two renderings (table for people, JSON for scripts).
// The JSON shape is documented at the top of dump_render.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sessionbroker/shm/constants.hpp"
#include "admin.hpp"

namespace sessionctl {

struct ClientRow {
  std::uint32_t slot;
  std::int32_t pid;
  sessionbroker::shm::ClientState state;  // kLive or kDead; free slots are not listed
  std::uint64_t grants, waits;
};

// Each session is consistent in itself (copied under its mutex); sessions are not frozen together.
struct DumpModel {
  std::string segment;
  std::vector<sessionbroker::detail::SessionSnapshot> sessions;  // by slot
  std::vector<ClientRow> clients;                                // by slot
  std::uint32_t free_blocks = 0;
  std::uint64_t next_token = 0;
};

// "none", "shared" or "exclusive": the names of the JSON output (also used by the admin commands).
const char* mode_name(sessionbroker::shm::LockMode m);

std::string render_table(const DumpModel& m);
std::string render_json(const DumpModel& m);  // pretty-printed, newline-terminated

}  // namespace sessionctl
