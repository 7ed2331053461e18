"""Lock: the mapping, the context manager, commit/unlock/discard, try-lock, TTL and destroy."""
import threading

import pytest

import sessionbroker
from conftest import MAX_VALUE


@pytest.fixture
def session(client):
    return client.create("s")


def test_writes_are_committed_when_the_block_ends_normally(client, session):
    with session.lock(["cart"], exclusive=True, timeout=0.1) as lock:
        lock["cart"] = b"apples"
    with client.open("s").lock(["cart"]) as lock:
        assert lock["cart"] == b"apples"


def test_writes_are_discarded_when_the_block_raises(session):
    with session.lock(["cart"]) as lock:
        lock["cart"] = b"before"
    with pytest.raises(RuntimeError):
        with session.lock(["cart"]) as lock:
            lock["cart"] = b"after"
            raise RuntimeError("request failed")
    with session.lock(["cart"]) as lock:
        assert lock["cart"] == b"before"


def test_str_values_are_stored_as_utf8(session):
    with session.lock(["n"]) as lock:
        lock["n"] = "naïve"
    with session.lock(["n"]) as lock:
        assert lock["n"] == "naïve".encode()


def test_bytes_like_values_are_accepted_and_other_types_are_not(session):
    with session.lock(["v"]) as lock:
        lock["v"] = bytearray(b"ba")
        assert lock["v"] == b"ba"
        lock["v"] = memoryview(b"mv")
        assert lock["v"] == b"mv"
        with pytest.raises(TypeError):
            lock["v"] = 42


def test_reading_an_absent_attribute(session):
    with session.lock(["a", "b"]) as lock:
        with pytest.raises(KeyError):
            lock["a"]
        assert lock.get("a") is None
        assert lock.get("a", b"dflt") == b"dflt"
        assert "a" not in lock
        lock["a"] = b""
        assert "a" in lock
        assert lock["a"] == b""


def test_delete_removes_and_raises_key_error_when_absent(session):
    with session.lock(["a"]) as lock:
        lock["a"] = b"1"
    with session.lock(["a"]) as lock:
        del lock["a"]
        assert "a" not in lock
        with pytest.raises(KeyError):
            del lock["a"]
    with session.lock(["a"]) as lock:
        assert lock.get("a") is None


def test_items_gives_every_covered_attribute_with_own_writes(session):
    with session.lock(None) as lock:
        lock["x"] = b"1"
        lock["y"] = b"2"
    with session.lock() as lock:
        lock["z"] = "3"
        assert lock.items() == {"x": b"1", "y": b"2", "z": b"3"}


def test_a_name_the_lock_does_not_cover_raises_invalid_argument(session):
    with session.lock(["cart"]) as lock:
        with pytest.raises(sessionbroker.InvalidArgument):
            lock["other"] = b"x"
        with pytest.raises(sessionbroker.InvalidArgument):
            lock["other"]


def test_a_value_over_the_limit_raises_too_large(session):
    with session.lock(["big"]) as lock:
        lock["big"] = b"x" * MAX_VALUE
        with pytest.raises(sessionbroker.TooLarge):
            lock["big"] = b"x" * (MAX_VALUE + 1)


def test_a_shared_lock_reads_but_does_not_write(session):
    with session.lock(["a"]) as lock:
        lock["a"] = b"v"
    with session.lock(["a"], exclusive=False) as lock:
        assert lock["a"] == b"v"
        with pytest.raises(sessionbroker.Error):
            lock["a"] = b"w"


def test_names_must_be_a_list_not_a_string(session):
    with pytest.raises(TypeError):
        session.lock("cart")
    with pytest.raises(TypeError):
        session.lock([1])


def test_commit_publishes_before_unlock_and_unlock_twice_raises_not_held(client, session):
    lock = session.lock(["a"])
    lock["a"] = b"1"
    lock.commit()
    lock["a"] = b"2"
    lock.discard()  # drops only what came after the commit
    lock.discard()  # a second discard does nothing
    with pytest.raises(sessionbroker.NotHeld):
        lock.unlock()
    with pytest.raises(sessionbroker.NotHeld):
        lock["a"]
    lock = session.lock(["a"])
    assert lock["a"] == b"1"
    lock.unlock()
    with pytest.raises(sessionbroker.NotHeld):
        lock.unlock()


def test_tokens_are_nonzero_while_held_and_zero_after_release(session):
    assert session.token == 0
    with session.lock(["a"]) as lock:
        held = lock.token
        assert held != 0 and session.token == held
    assert session.token == held  # the process lock stays cached
    session.release(timeout=1)
    assert session.token == 0
    with pytest.raises(sessionbroker.NotHeld):
        session.release()
    with session.lock(["a"]) as lock:
        assert lock.token > held  # a new grant, a larger token


def test_try_lock_raises_busy_while_another_thread_holds_the_name(session):
    held = session.lock(["a"])
    outcome = []

    def other():
        try:
            session.lock(["a"], timeout=0)
            outcome.append("granted")
        except sessionbroker.Busy as e:
            outcome.append(e.code)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    held.unlock()
    assert outcome == [15]
    with session.lock(["a"], timeout=0):  # free again: granted at once
        pass


def test_a_wait_that_outlasts_its_timeout_raises_timeout(session):
    held = session.lock(["a"])
    errors = []

    def other():
        try:
            session.lock(["a"], timeout=0.05)
        except sessionbroker.Timeout as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    held.unlock()
    assert len(errors) == 1


def test_ttl_can_be_set_touched_and_read(session):
    with session.lock() as lock:
        lock.set_ttl(100)
        left = lock.ttl_remaining()
        assert left is not None and 90 < left <= 100
        lock.touch()
        lock.set_ttl(None)  # the store's default (the broker's 30 min)
        left = lock.ttl_remaining()
        assert left is not None and left > 100
        with pytest.raises(ValueError):
            lock.set_ttl(0)


def test_destroy_under_the_whole_exclusive_lock_removes_the_session(client, session):
    with session.lock(None, exclusive=True) as lock:
        lock["a"] = b"1"
        lock.destroy()
        with pytest.raises(sessionbroker.NotHeld):
            lock["a"]
    assert client.list() == []


def test_destroy_needs_the_whole_session_lock(client, session):
    with session.lock(["a"]) as lock:
        with pytest.raises(sessionbroker.InvalidArgument):
            lock.destroy()
    assert client.list() == ["s"]


def test_a_lock_dropped_without_unlock_is_discarded(session):
    lock = session.lock(["a"])
    lock["a"] = b"lost"
    del lock
    with session.lock(["a"], timeout=0) as lock:  # the name is free again
        assert lock.get("a") is None


def test_a_lock_on_many_names_covers_each_of_them(session):
    names = [f"n{i}" for i in range(12)]  # more than the module keeps on its stack
    with session.lock(names) as lock:
        for i, name in enumerate(names):
            lock[name] = str(i)
    with session.lock(tuple(reversed(names)), exclusive=False) as lock:
        assert lock.items() == {name: str(i).encode() for i, name in enumerate(names)}
