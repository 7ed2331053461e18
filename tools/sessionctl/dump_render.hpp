// The state `sessionctl dump` shows, and its two renderings (table for people, JSON for scripts).
// The JSON shape is documented at the top of dump_render.cpp.
#pragma once

#include <string>

#include "admin_store.hpp"

namespace sessionctl {

// "none", "shared" or "exclusive": the names of the JSON output (also used by the admin commands).
const char* mode_name(sessionbroker::shm::LockMode m);

std::string render_table(const DumpModel& m);
std::string render_json(const DumpModel& m);  // pretty-printed, newline-terminated

}  // namespace sessionctl
