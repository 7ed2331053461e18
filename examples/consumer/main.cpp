// A program linked against an installed sessionbroker: adds 1 to a counter in a shared session,
// N times, under an exclusive lock on the attribute. Run it in several processes at once: the
// final counter is the sum of their increments.   usage: consumer SEGMENT SESSION N
#include <cstdio>
#include <string>

#include <sessionbroker/client.hpp>

using namespace sessionbroker;
using namespace std::chrono_literals;

int fail(const Status& st) { return std::fprintf(stderr, "consumer: %s\n", st.to_string().c_str()), 1; }

int main(int argc, char** argv) {
  if (argc != 4) return std::fprintf(stderr, "usage: consumer SEGMENT SESSION N\n"), 2;
  auto client = Client::attach(argv[1]);
  if (!client) return fail(client.status());
  auto session = (*client)->create(argv[2]);              // the first process creates it,
  if (session.code() == ErrorCode::kAlreadyExists) session = (*client)->open(argv[2]);  // the rest open it
  if (!session) return fail(session.status());
  for (int i = 0, n = std::stoi(argv[3]); i < n; ++i) {
    auto lock = session->lock({"counter"}, Mode::kExclusive, in(5s));
    if (!lock) return fail(lock.status());
    auto value = lock->get("counter");                     // committed value, under the lock
    if (!value) return fail(value.status());
    const long next = std::stol(value->value_or("0")) + 1;
    if (Status st = lock->put("counter", std::to_string(next)); !st) return fail(st);
    if (Status st = lock->unlock(); !st) return fail(st);  // commits: other processes see it now
  }
  std::printf("consumer %s: %s increments committed\n", argv[2], argv[3]);
  return (*client)->detach() ? 0 : 1;
}
