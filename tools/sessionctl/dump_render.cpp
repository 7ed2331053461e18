// Renders a DumpModel as a table or as JSON.
//
// JSON shape (keys in this order; scripts may rely on every key being present):
//   {
//     "segment": "sessionbroker",
//     "sessions": [{
//       "id": "user:42",
//       "mode": "none" | "shared" | "exclusive",      // mode of the current holders
//       "version": 7,                                  // commits so far
//       "holders": [{"pid": 1234, "client": 0, "mode": "exclusive", "token": 1712000000123,
//                    "revoke_requested": false}],      // no particular order
//       "queue": [{"pid": 1240, "client": 3, "mode": "shared"}],   // FIFO: first is granted next
//       "attributes": [{"name": "cart", "size": 120}],              // by name; size in bytes
//       "idle_ms": 15,                                 // since the last grant, release or unlock
//       "ttl_ms": 1800000                              // idle expiry; 0 = never
//     }],                                              // by session slot
//     "clients": [{"slot": 0, "pid": 1234, "state": "live" | "dead" | "evicted", "grants": 12, "waits": 3}],
//     "free_blocks": 262100,                           // free attribute-store blocks
//     "next_token": 1712000000124                      // the token the next grant will get
//   }
//
// On an etcd store the same shape with these differences: "store" (the address) in place of
// "segment"; a holder's or waiter's "client" is its process lease; "version" and "idle_ms" are
// null (etcd keeps no commit count or idle clock); a client is {"lease", "host", "pid", "state":
// "live"}; no "free_blocks"; "next_token" is the least the next grant's token can be (the store's
// revision + 1: tokens are revisions).
#include "dump_render.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sessionctl {
namespace {

using sessionbroker::shm::ClientState;
using sessionbroker::shm::LockMode;
using Json = nlohmann::ordered_json;

const char* state_name(ClientState s) {
  switch (s) {
    case ClientState::kDead: return "dead";
    case ClientState::kEvicted: return "evicted";
    default: return "live";
  }
}

Json or_null(const std::optional<std::uint64_t>& v) { return v ? Json(*v) : Json(nullptr); }

Json session_json(const SessionRow& s) {
  Json holders = Json::array(), queue = Json::array(), attrs = Json::array();
  for (const auto& h : s.holders)
    holders.push_back({{"pid", h.pid}, {"client", h.client}, {"mode", mode_name(h.mode)}, {"token", h.token},
                       {"revoke_requested", h.revoke}});
  for (const auto& w : s.queue) queue.push_back({{"pid", w.pid}, {"client", w.client}, {"mode", mode_name(w.mode)}});
  for (const auto& a : s.attrs) attrs.push_back({{"name", a.name}, {"size", a.size}});
  return {{"id", s.id},     {"mode", mode_name(s.mode)}, {"version", or_null(s.version)},  {"holders", holders},
          {"queue", queue}, {"attributes", attrs},       {"idle_ms", or_null(s.idle_ms)}, {"ttl_ms", s.ttl_ms}};
}

// ---- table ----

using Row = std::vector<std::string>;

// Left-aligned columns two spaces apart; the last column is not padded.
std::string format_table(const std::vector<Row>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i)
      out += i + 1 < r.size() ? fmt::format("{:<{}}  ", r[i], width[i]) : r[i];
    out += '\n';
  }
  return out;
}

std::string join_or_dash(const std::vector<std::string>& parts) {
  if (parts.empty()) return "-";
  std::string out = parts[0];
  for (std::size_t i = 1; i < parts.size(); ++i) out += " " + parts[i];
  return out;
}

Row session_row(const SessionRow& s) {
  std::vector<std::string> holders, queue, attrs;
  for (const auto& h : s.holders) holders.push_back(fmt::format("{}@{}{}", h.pid, h.token, h.revoke ? "*" : ""));
  for (const auto& w : s.queue) queue.push_back(fmt::format("{}({})", w.pid, w.mode == LockMode::kShared ? "sh" : "ex"));
  for (const auto& a : s.attrs) attrs.push_back(fmt::format("{}({})", a.name, a.size));
  return {s.id, mode_name(s.mode), join_or_dash(holders), join_or_dash(queue), join_or_dash(attrs)};
}

std::string sessions_table(const DumpModel& m) {
  std::vector<Row> rows{{"SESSION", "MODE", "HOLDERS(pid@token)", "QUEUE(pid(mode), oldest first)", "ATTRIBUTES(name(bytes))"}};
  bool revoking = false;
  for (const auto& s : m.sessions) {
    rows.push_back(session_row(s));
    revoking |= std::any_of(s.holders.begin(), s.holders.end(), [](const auto& h) { return h.revoke; });
  }
  std::string out = format_table(rows);
  if (revoking) out += "* asked to release (a revoke request is pending)\n";
  return out;
}

std::string clients_table(const DumpModel& m) {
  if (m.etcd) {
    std::vector<Row> rows{{"LEASE", "HOST", "PID"}};
    for (const auto& c : m.clients) rows.push_back({std::to_string(c.id), c.host, std::to_string(c.pid)});
    return format_table(rows);
  }
  std::vector<Row> rows{{"CLIENT", "PID", "STATE", "GRANTS", "WAITS"}};
  for (const auto& c : m.clients)
    rows.push_back({std::to_string(c.id), std::to_string(c.pid), state_name(c.state), std::to_string(c.grants.value_or(0)),
                    std::to_string(c.waits.value_or(0))});
  return format_table(rows);
}

Json client_json(const DumpModel& m, const ClientRow& c) {
  if (m.etcd) return {{"lease", c.id}, {"host", c.host}, {"pid", c.pid}, {"state", state_name(c.state)}};
  return {{"slot", c.id}, {"pid", c.pid}, {"state", state_name(c.state)}, {"grants", or_null(c.grants)},
          {"waits", or_null(c.waits)}};
}

}  // namespace

const char* mode_name(LockMode m) {
  switch (m) {
    case LockMode::kShared: return "shared";
    case LockMode::kExclusive: return "exclusive";
    case LockMode::kNone: break;
  }
  return "none";
}

std::string render_json(const DumpModel& m) {
  Json sessions = Json::array(), clients = Json::array();
  for (const auto& s : m.sessions) sessions.push_back(session_json(s));
  for (const auto& c : m.clients) clients.push_back(client_json(m, c));
  Json doc = {{m.etcd ? "store" : "segment", m.store}, {"sessions", sessions}, {"clients", clients}};
  if (m.free_blocks) doc["free_blocks"] = *m.free_blocks;
  doc["next_token"] = m.next_token;
  return doc.dump(2) + "\n";
}

std::string render_table(const DumpModel& m) {
  std::string out =
      m.etcd ? fmt::format("store {}: {} sessions, {} clients, next token at least {}\n\n", m.store, m.sessions.size(),
                           m.clients.size(), m.next_token)
             : fmt::format("segment {}: {} sessions, {} clients, {} free blocks, next token {}\n\n", m.store,
                           m.sessions.size(), m.clients.size(), m.free_blocks.value_or(0), m.next_token);
  out += sessions_table(m);
  out += "\n";
  out += clients_table(m);
  return out;
}

}  // namespace sessionctl
