#include "keep_alive.hpp"

#include <pthread.h>

#include <algorithm>
#include <vector>

namespace sessionbroker::detail::etcd {

using Req = etcdserverpb::LeaseKeepAliveRequest;
using Resp = etcdserverpb::LeaseKeepAliveResponse;

struct KeepAlive::Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<Req, Resp>> rw;
  std::thread reader;
  Clock::time_point opened;  // when the reader began opening it
  bool ready = false;     // GUARDED_BY(KeepAlive::mu_): rw is set (opening can block on a stopped member)
  bool done = false;      // GUARDED_BY(KeepAlive::mu_): the reader saw the stream end
  bool answered = false;  // GUARDED_BY(KeepAlive::mu_): at least one answer arrived
};

KeepAlive::KeepAlive(Client& client, OnLost on_lost) : client_(client), on_lost_(std::move(on_lost)) {
  supervisor_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "sb-keepalive");
    run();
  });
}

KeepAlive::~KeepAlive() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    if (stream_) stream_->ctx.TryCancel();
  }
  cv_.notify_all();
  supervisor_.join();
}

void KeepAlive::add(const Lease& lease, std::optional<Clock::time_point> first_renewal) {
  {
    std::lock_guard lk(mu_);
    const auto ttl = std::chrono::seconds(lease.ttl_seconds);
    const Entry e{ttl, lease.sent_at + ttl, first_renewal.value_or(Clock::now()), std::nullopt};
    leases_[lease.id] = e;
    // The supervisor plans again before it next sleeps; asleep, it need only wake for this lease
    // when it would sleep past its first renewal or deadline.
    if (!asleep_until_ || *asleep_until_ <= std::min(e.next_send, e.deadline)) return;
  }
  cv_.notify_all();
}

void KeepAlive::remove(std::int64_t lease_id) {
  std::lock_guard lk(mu_);
  leases_.erase(lease_id);
}

std::optional<Clock::time_point> KeepAlive::alive_until(std::int64_t lease_id) const {
  std::lock_guard lk(mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return std::nullopt;
  return it->second.deadline;
}

milliseconds KeepAlive::answer_timeout(const Entry& e) const {
  const auto third = std::chrono::duration_cast<milliseconds>(e.ttl) / 3;
  return std::min(client_.options().attempt_timeout, std::max(third, milliseconds(200)));
}

void KeepAlive::read_loop(Stream& s) {
  Resp r;
  while (s.rw->Read(&r)) {
    on_answer(r);
    std::lock_guard lk(mu_);
    s.answered = true;
  }
  {
    std::lock_guard lk(mu_);
    s.done = true;
  }
  cv_.notify_all();
}

void KeepAlive::on_answer(const Resp& r) {
  {
    std::lock_guard lk(mu_);
    auto it = leases_.find(r.id());
    if (it == leases_.end()) return;  // removed meanwhile
    Entry& e = it->second;
    if (r.ttl() <= 0) {
      lost_.emplace_back(r.id(), "etcd answered TTL " + std::to_string(r.ttl()) + ": the lease expired or was revoked");
      leases_.erase(it);
    } else if (e.in_flight) {
      e.deadline = std::max(e.deadline, *e.in_flight + std::chrono::seconds(r.ttl()));
      e.in_flight.reset();
    }
  }
  cv_.notify_all();
}

// REQUIRES: mu_ held. Forgets (and queues for on_lost) the leases whose deadline passed; when
// connected, picks the renewals due and notes a renewal unanswered too long (the stream's member
// is stopped or cut off); says when to look again.
KeepAlive::Round KeepAlive::plan(Clock::time_point now, bool connected) {
  Round r{{}, now + client_.options().watch_heartbeat, false};
  for (auto it = leases_.begin(); it != leases_.end();) {
    Entry& e = it->second;
    if (e.deadline <= now) {
      lost_.emplace_back(it->first, "no renewal answered before its TTL ran out (" + std::to_string(e.ttl.count()) +
                                        " s after the last answered renewal)");
      it = leases_.erase(it);
      continue;
    }
    r.wake = std::min(r.wake, e.deadline);
    if (connected && e.in_flight) {
      const auto limit = *e.in_flight + answer_timeout(e);
      r.stream_dead = r.stream_dead || limit <= now;
      r.wake = std::min(r.wake, limit);
    } else if (connected && e.next_send <= now) {
      e.in_flight = now;  // not later than the actual send: conservative
      e.next_send = now + std::chrono::duration_cast<milliseconds>(e.ttl) / 3;
      r.to_send.push_back(it->first);
    } else if (connected) {
      r.wake = std::min(r.wake, e.next_send);
    }
    ++it;
  }
  return r;
}

// REQUIRES: lk holds mu_. Runs on_lost for the queued leases with mu_ released.
void KeepAlive::report_lost(std::unique_lock<std::mutex>& lk) {
  auto lost = std::move(lost_);
  lost_.clear();
  lk.unlock();
  for (auto& [id, why] : lost) on_lost_(id, why);
  lk.lock();
}

// REQUIRES: lk holds mu_. Renews over one stream until it ends, fails a write, or goes quiet
// (not opened, or a renewal unanswered, within its patience).
void KeepAlive::serve(std::unique_lock<std::mutex>& lk, Stream& s) {
  const auto patience = client_.options().attempt_timeout;
  while (!stop_ && !s.done) {
    Round r = plan(Clock::now(), s.ready);
    if (!lost_.empty()) report_lost(lk);
    if (r.stream_dead || (!s.ready && s.opened + patience <= Clock::now())) return;
    if (!s.ready) r.wake = std::min(r.wake, s.opened + patience);
    if (r.to_send.empty()) {
      asleep_until_ = r.wake;
      cv_.wait_until(lk, r.wake);
      asleep_until_.reset();
      continue;
    }
    lk.unlock();
    bool ok = true;
    for (auto id : r.to_send) {
      Req req;
      req.set_id(id);
      if (!(ok = s.rw->Write(req))) break;
    }
    lk.lock();
    if (!ok) return;
  }
}

void KeepAlive::run() {
  const std::size_t n = client_.endpoint_count();
  std::size_t ep = client_.preferred();
  milliseconds pause{10};
  std::unique_lock lk(mu_);
  while (!stop_) {
    auto s = std::make_unique<Stream>();
    Client::prepare_stream_context(s->ctx);
    stream_ = s.get();
    for (auto& [id, e] : leases_) {
      e.in_flight.reset();
      e.next_send = Clock::now();  // renew everything at once on a new stream
    }
    s->opened = Clock::now();
    // The reader opens the stream: opening waits for a connection, which a stopped member never
    // completes, and the supervisor must keep counting deadlines meanwhile.
    s->reader = std::thread([this, st = s.get(), ep] {
      pthread_setname_np(pthread_self(), "sb-keepalive-rd");
      auto rw = client_.endpoint(ep).keep_alive->LeaseKeepAlive(&st->ctx);
      {
        std::lock_guard g(mu_);
        st->rw = std::move(rw);
        st->ready = true;
      }
      cv_.notify_all();
      read_loop(*st);
    });
    serve(lk, *s);
    stream_ = nullptr;
    const bool answered = s->answered;
    const bool ended = s->done;
    lk.unlock();
    if (!ended) s->ctx.TryCancel();
    s->reader.join();
    (void)s->rw->Finish();
    s.reset();
    lk.lock();
    if (stop_) break;
    if (answered) client_.prefer(ep);
    ep = (ep + 1) % n;  // the member failed us: the next one
    // Between attempts, keep counting deadlines (a lease may run out while no member answers).
    const auto resume = Clock::now() + (answered ? milliseconds(0) : pause);
    pause = answered ? milliseconds(10) : std::min(pause * 2, milliseconds(200));
    while (!stop_ && Clock::now() < resume) {
      Round r = plan(Clock::now(), false);
      if (!lost_.empty()) report_lost(lk);
      asleep_until_ = std::min(resume, r.wake);
      cv_.wait_until(lk, *asleep_until_);
      asleep_until_.reset();
    }
  }
  stream_ = nullptr;
}

}  // namespace sessionbroker::detail::etcd
