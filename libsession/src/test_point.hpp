// Named points in the library where a test can stall a thread to force an interleaving (a detach
// between a commit's staging and its publication, say) without fixed sleeps. With no hook set, a
// point costs one relaxed load of a process-local word and a predicted branch. Nothing in the
// segment depends on a hook: a hook only delays the calling thread.
//
// Thread safety: set_test_hook() may be called at any time from any thread; a hook runs on the
// thread that reached the point and must be thread-safe itself.
#pragma once

#include <atomic>

namespace sessionbroker::detail {

enum class TestPoint {
  kCommitStaged,      // BlobStore::commit: the new chain is written, not yet published (no mutex held)
  kDetachDraining,    // ShmBackend::detach: the gate is closed; waiting for calls in flight to end
  kWakesDeferred,     // DeferredWakes::flush: words bumped under a session mutex now unlocked, not yet woken
  kFastPublished,     // LockTable::acquire_fast: the session's fast word names the record, still kFree
  kFastReleasing,     // LockTable::release_fast: the record is kReleasing, the fast word still names it
  kWatchEvents,       // EtcdBackend: a session watch's events arrived, not yet applied to its view
  kCopiedWithoutMutex,  // BlobStore::take_copy_unlocked: the chain is copied, not yet checked again
  kQueueing,          // ShmBackend::acquire: a request that may wait, about to enter LockTable::acquire
};

using TestHook = void (*)(TestPoint);
extern std::atomic<TestHook> g_test_hook;

inline void set_test_hook(TestHook hook) { g_test_hook.store(hook, std::memory_order_release); }

inline void test_point(TestPoint p) {
  if (TestHook h = g_test_hook.load(std::memory_order_acquire)) [[unlikely]] h(p);
}

}  // namespace sessionbroker::detail
