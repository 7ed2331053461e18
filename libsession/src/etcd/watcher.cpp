#include "watcher.hpp"

#include <pthread.h>

#include <algorithm>
#include <vector>

namespace sessionbroker::detail::etcd {
namespace {
thread_local const void* tl_dispatching = nullptr;  // the Watcher whose callback this thread runs
}  // namespace

using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

struct Watcher::Watch {
  std::int64_t handle;
  std::string key, range_end;
  bool deletes_only = false;
  std::int64_t next = 0;     // GUARDED_BY(mu_): resume from here; 0 until the server said
  std::int64_t started = 0;  // GUARDED_BY(mu_): the revision the first creation started at
  enum class State { kCreating, kActive, kFailed } state = State::kCreating;  // GUARDED_BY(mu_)
  std::uint64_t sent_gen = 0;                 // GUARDED_BY(mu_): stream its create was sent on
  std::optional<Clock::time_point> awaiting;  // GUARDED_BY(mu_): create sent, not yet confirmed
  Status failure;                             // GUARDED_BY(mu_)
  OnEvents on_events;
  OnCompacted on_compacted;
};

struct Watcher::Stream {
  std::uint64_t gen = 0;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<WatchRequest, WatchResponse>> rw;
  std::thread reader;
  Clock::time_point opened;                   // when the reader began opening it
  bool ready = false;                         // GUARDED_BY(mu_): opened (may block on a stopped member)
  bool done = false;                          // GUARDED_BY(mu_): the reader saw the end
  bool restart = false;                       // GUARDED_BY(mu_): the server dropped a live watch
  bool answered = false;                      // GUARDED_BY(mu_)
  Clock::time_point last_answer;              // GUARDED_BY(mu_)
  std::optional<Clock::time_point> probe;     // GUARDED_BY(mu_): progress request unanswered since
};

Watcher::Watcher(Client& client) : client_(client) {
  supervisor_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "sb-watcher");
    run();
  });
}

Watcher::~Watcher() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    if (live_) live_->ctx.TryCancel();
  }
  cv_.notify_all();
  supervisor_.join();
}

Status Watcher::status() const {
  std::lock_guard lk(mu_);
  return status_;
}

bool Watcher::write(const WatchRequest& req) {
  std::lock_guard wl(write_mu_);
  return writable_ && writable_->rw->Write(req);
}

// Sends a create for every watch not yet created on the current stream.
void Watcher::send_creates() {
  std::lock_guard wl(write_mu_);
  if (!writable_) return;
  std::vector<WatchRequest> reqs;
  {
    std::lock_guard lk(mu_);
    for (auto& [handle, w] : watches_) {
      if (w->sent_gen == writable_->gen || w->state == Watch::State::kFailed) continue;
      w->sent_gen = writable_->gen;
      w->awaiting = Clock::now();
      auto* c = reqs.emplace_back().mutable_create_request();
      c->set_key(w->key);
      c->set_range_end(w->range_end);
      c->set_start_revision(w->next);
      c->set_watch_id(handle);
      if (w->deletes_only) c->add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
    }
  }
  for (const auto& r : reqs)
    if (!writable_->rw->Write(r)) return;  // the reader sees the end; the supervisor reconnects
}

Result<WatchStarted> Watcher::watch(const std::string& key, const std::string& range_end, std::int64_t start_revision,
                                    OnEvents on_events, OnCompacted on_compacted, bool deletes_only) {
  if (tl_dispatching == this)  // the reader that would confirm it is busy running this callback
    return Status{ErrorCode::kInvalidArgument, "etcd watch: watch() called from a watch callback"};
  auto w = std::make_shared<Watch>();
  w->key = key;
  w->range_end = range_end;
  w->deletes_only = deletes_only;
  w->next = std::max<std::int64_t>(start_revision, 0);
  w->on_events = std::move(on_events);
  w->on_compacted = std::move(on_compacted);
  {
    std::lock_guard lk(mu_);
    w->handle = ++next_handle_;
    watches_[w->handle] = w;
  }
  send_creates();
  const auto deadline = Clock::now() + client_.options().request_timeout;
  std::unique_lock lk(mu_);
  cv_.wait_until(lk, deadline, [&] { return stop_ || w->state != Watch::State::kCreating; });
  if (w->state == Watch::State::kActive) return WatchStarted{w->handle, w->started};
  Status why = w->state == Watch::State::kFailed ? w->failure
                                                 : Status{ErrorCode::kUnavailable,
                                                          "etcd watch: no member confirmed it within " +
                                                              std::to_string(client_.options().request_timeout.count()) +
                                                              " ms; stream: " + status_.to_string()};
  lk.unlock();
  cancel(w->handle);
  return why;
}

void Watcher::cancel(std::int64_t handle) {
  std::uint64_t sent_on = 0, gen = 0;
  {
    std::lock_guard lk(mu_);
    auto it = watches_.find(handle);
    if (it == watches_.end()) return;
    sent_on = it->second->sent_gen;
    gen = gen_;
    watches_.erase(it);
  }
  if (tl_dispatching != this) {
    std::lock_guard dl(dispatch_mu_);  // waits out a callback in progress: none runs after we return
  }
  if (sent_on == gen) {
    WatchRequest req;
    req.mutable_cancel_request()->set_watch_id(handle);
    (void)write(req);  // on failure the stream is gone, and the watch with it
  }
}

void Watcher::read_loop(Stream& s) {
  WatchResponse r;
  while (s.rw->Read(&r)) on_response(s, r);
  {
    std::lock_guard lk(mu_);
    s.done = true;
  }
  cv_.notify_all();
}

void Watcher::on_response(Stream& s, const WatchResponse& r) {
  {
    std::lock_guard lk(mu_);
    s.answered = true;
    s.last_answer = Clock::now();
    s.probe.reset();
    if (live_ == &s) status_ = Status::ok();  // not once serve() gave the stream up
  }
  if (r.created()) {
    {
      std::lock_guard lk(mu_);
      auto it = watches_.find(r.watch_id());
      if (it == watches_.end()) return;
      Watch& w = *it->second;
      w.awaiting.reset();
      if (r.canceled() && w.state == Watch::State::kCreating) {
        w.state = Watch::State::kFailed;
        w.failure = Status{ErrorCode::kInvalidArgument, "etcd refused the watch: " + r.cancel_reason()};
      } else if (r.canceled()) {
        s.restart = true;  // a live watch refused on resume: try it on another member
      } else {
        if (w.next <= 0) w.next = r.header().revision() + 1;  // started "now": after this revision
        if (w.state == Watch::State::kCreating) {
          w.started = w.next;
          w.state = Watch::State::kActive;
        }
      }
    }
    cv_.notify_all();
    if (r.compact_revision() == 0) return;
  }
  if (r.compact_revision() != 0) return deliver_compacted(r);
  if (r.canceled()) {
    std::lock_guard lk(mu_);
    if (watches_.count(r.watch_id())) s.restart = true;  // dropped by the server, not by us
    cv_.notify_all();
    return;
  }
  if (r.events_size() > 0) deliver_events(r);
}

void Watcher::deliver_events(const WatchResponse& r) {
  std::lock_guard dl(dispatch_mu_);
  WatchPtr w;
  Events fresh;
  const Events* events = &r.events();
  {
    std::lock_guard lk(mu_);
    auto it = watches_.find(r.watch_id());
    if (it == watches_.end()) return;  // cancelled
    w = it->second;
    if (r.events(0).kv().mod_revision() < w->next) {  // replayed after a resume: drop what was seen
      for (const auto& e : r.events())
        if (e.kv().mod_revision() >= w->next) *fresh.Add() = e;
      events = &fresh;
    }
    if (events->empty()) return;
    w->next = events->rbegin()->kv().mod_revision() + 1;
  }
  tl_dispatching = this;
  if (w->on_events) w->on_events(*events, r.header().revision());
  tl_dispatching = nullptr;
}

void Watcher::deliver_compacted(const WatchResponse& r) {
  std::lock_guard dl(dispatch_mu_);
  WatchPtr w;
  {
    std::lock_guard lk(mu_);
    auto it = watches_.find(r.watch_id());
    if (it == watches_.end()) return;
    w = it->second;
    watches_.erase(it);
  }
  cv_.notify_all();
  tl_dispatching = this;
  if (w->on_compacted) w->on_compacted(r.compact_revision());
  tl_dispatching = nullptr;
}

// Watches one stream until it ends, goes quiet past attempt_timeout with a probe or a create
// outstanding, or the server dropped a live watch. Called and returns with mu_ held.
Status Watcher::serve(std::unique_lock<std::mutex>& lk, Stream& s) {
  const auto heartbeat = client_.options().watch_heartbeat;
  const auto patience = client_.options().attempt_timeout;
  while (!stop_ && !s.done && !s.restart) {
    const auto now = Clock::now();
    if (!s.ready) {
      if (s.opened + patience <= now) return Status{ErrorCode::kUnavailable, "no connection within " +
                                                                                std::to_string(patience.count()) + " ms"};
      cv_.wait_until(lk, s.opened + patience);
      continue;
    }
    auto wake = now + heartbeat;
    bool dead = s.probe && *s.probe + patience <= now;
    if (s.probe) wake = std::min(wake, *s.probe + patience);
    for (auto& [h, w] : watches_) {
      if (!w->awaiting || w->sent_gen != s.gen) continue;
      dead = dead || *w->awaiting + patience <= now;
      wake = std::min(wake, *w->awaiting + patience);
    }
    if (dead) return Status{ErrorCode::kUnavailable, "went silent for " + std::to_string(patience.count()) + " ms"};
    const bool need_creates =
        std::any_of(watches_.begin(), watches_.end(), [&](auto& kv) {
          return kv.second->sent_gen != s.gen && kv.second->state != Watch::State::kFailed;
        });
    if (need_creates) {
      lk.unlock();
      send_creates();
      lk.lock();
      continue;
    }
    if (!s.probe && s.last_answer + heartbeat <= now) {
      s.probe = now;
      lk.unlock();
      WatchRequest req;
      req.mutable_progress_request();
      (void)write(req);
      lk.lock();
      continue;
    }
    if (!s.probe) wake = std::min(wake, s.last_answer + heartbeat);
    cv_.wait_until(lk, wake);
  }
  if (s.restart) return Status{ErrorCode::kUnavailable, "the member dropped a watch"};
  return Status::ok();  // ended by itself (Finish says why), or stopping
}

void Watcher::run() {
  const std::size_t n = client_.endpoint_count();
  std::size_t ep = client_.preferred();
  milliseconds pause{10};
  std::unique_lock lk(mu_);
  while (!stop_) {
    auto s = std::make_shared<Stream>();
    s->gen = ++gen_;
    s->last_answer = Clock::now() - client_.options().watch_heartbeat;  // probe at once
    Client::prepare_stream_context(s->ctx);
    live_ = s.get();
    s->opened = Clock::now();
    // The reader opens the stream: opening waits for a connection, which a stopped member never
    // completes; serve() gives up on it after attempt_timeout.
    s->reader = std::thread([this, s, ep] {
      pthread_setname_np(pthread_self(), "sb-watcher-rd");
      auto rw = client_.endpoint(ep).watch->Watch(&s->ctx);
      {
        std::lock_guard wl(write_mu_);
        std::lock_guard g(mu_);
        s->rw = std::move(rw);
        s->ready = true;
        if (live_ == s.get()) writable_ = s;  // not once the supervisor gave up on it
      }
      cv_.notify_all();
      read_loop(*s);
    });
    Status why = serve(lk, *s);
    live_ = nullptr;
    const bool answered = s->answered;
    const bool ended = s->done;  // by itself: Finish gives the server's or transport's reason
    lk.unlock();
    if (!ended) s->ctx.TryCancel();
    {
      std::lock_guard wl(write_mu_);
      writable_.reset();
    }
    s->reader.join();
    const grpc::Status end = s->rw->Finish();
    lk.lock();
    if (stop_) break;
    if (why.is_ok()) why = Status{ErrorCode::kUnavailable, end.ok() ? "the stream ended" : end.error_message()};
    status_ = Status{ErrorCode::kUnavailable, "etcd watch stream at " + client_.endpoint(ep).target + ": " +
                                                  why.message()};
    for (auto& [h, w] : watches_) w->awaiting.reset();
    if (answered) client_.prefer(ep);
    ep = (ep + 1) % n;
    const auto resume = Clock::now() + (answered ? milliseconds(0) : pause);
    pause = answered ? milliseconds(10) : std::min(pause * 2, milliseconds(200));
    cv_.wait_until(lk, resume, [&] { return stop_; });
  }
  live_ = nullptr;
}

}  // namespace sessionbroker::detail::etcd
