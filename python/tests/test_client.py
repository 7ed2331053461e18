"""Client: attach, sessions by id, list, destroy, detach, and the exception classes."""
import pytest

import sessionbroker
from conftest import MAX_VALUE

CODES = {
    "InvalidArgument": 1, "TooLarge": 2, "NotFound": 3, "AlreadyExists": 4, "StaleToken": 5,
    "Timeout": 6, "CapacityExceeded": 7, "NoSegment": 8, "Incompatible": 9, "Corrupt": 10,
    "PermissionDenied": 11, "Detached": 12, "NotHeld": 13, "SystemFailure": 14, "Busy": 15,
    "Unavailable": 16,
}


def test_every_result_code_has_an_error_subclass_with_that_code():
    for name, code in CODES.items():
        cls = getattr(sessionbroker, name)
        assert issubclass(cls, sessionbroker.Error)
        assert cls.code == code
        assert cls.__module__ == "sessionbroker"


def test_attach_to_a_missing_store_raises_no_segment_with_a_message():
    with pytest.raises(sessionbroker.NoSegment) as info:
        sessionbroker.Client.attach("sbtest-py-no-such-store")
    assert info.value.code == 8
    assert str(info.value)


def test_attach_takes_a_str():
    with pytest.raises(TypeError):
        sessionbroker.Client.attach(b"bytes-name")


def test_client_cannot_be_constructed_directly():
    with pytest.raises(TypeError):
        sessionbroker.Client()


def test_max_value_bytes_is_the_brokers_limit(client):
    assert client.max_value_bytes == MAX_VALUE


def test_create_then_open_gives_the_same_session(client):
    created = client.create("user:1")
    assert created.id == "user:1"
    opened = client.open("user:1")
    assert opened.id == "user:1"
    with created.lock(["a"]) as lock:
        lock["a"] = b"x"
    with opened.lock(["a"]) as lock:
        assert lock["a"] == b"x"


def test_create_of_an_existing_id_raises_already_exists(client):
    client.create("dup")
    with pytest.raises(sessionbroker.AlreadyExists):
        client.create("dup")


def test_open_of_a_missing_id_raises_not_found(client):
    with pytest.raises(sessionbroker.NotFound):
        client.open("nobody")


def test_empty_id_raises_invalid_argument(client):
    with pytest.raises(sessionbroker.InvalidArgument):
        client.create("")


def test_id_over_the_limit_raises_too_large(client):
    with pytest.raises(sessionbroker.TooLarge):
        client.create("x" * 129)


def test_open_or_create_says_whether_it_created(client):
    s, created = client.open_or_create("oc", ttl=60)
    assert created is True and s.id == "oc"
    s2, created2 = client.open_or_create("oc")
    assert created2 is False and s2.id == "oc"


def test_ttl_must_be_positive_or_none(client):
    with pytest.raises(ValueError):
        client.create("t", ttl=0)
    with pytest.raises(ValueError):
        client.create("t", ttl=-1)
    with pytest.raises(TypeError):
        client.create("t", ttl="long")


def test_list_names_every_session(client):
    for i in range(3):
        client.create(f"l{i}")
    assert sorted(client.list()) == ["l0", "l1", "l2"]


def test_non_ascii_ids_round_trip_through_list(client):
    client.create("café:☕")
    assert client.list() == ["café:☕"]


def test_destroy_removes_the_session(client):
    client.create("gone")
    client.destroy("gone", timeout=1.0)
    assert client.list() == []
    with pytest.raises(sessionbroker.NotFound):
        client.open("gone")


def test_destroy_of_a_missing_session_raises_not_found(client):
    with pytest.raises(sessionbroker.NotFound):
        client.destroy("never")


def test_keyword_arguments_are_checked(client):
    with pytest.raises(TypeError):
        client.create("k", tll=5)
    with pytest.raises(TypeError):
        client.create(id="k", ttl=None, extra=1)
    with pytest.raises(TypeError):
        client.create()


def test_detach_is_idempotent_and_later_calls_raise_detached(client):
    s = client.create("d")
    client.detach()
    client.detach()
    with pytest.raises(sessionbroker.Detached) as info:
        client.open("d")
    assert info.value.code == 12
    with pytest.raises(sessionbroker.Detached):
        client.list()
    with pytest.raises(sessionbroker.Detached):
        client.max_value_bytes
    with pytest.raises(sessionbroker.Detached):
        s.lock(["a"])


def test_detach_releases_the_process_locks(store, client):
    s = client.create("held")
    with s.lock(["a"]):
        pass
    assert s.token != 0  # cached after the unlock
    client.detach()
    other = sessionbroker.Client.attach(store)
    try:
        with other.open("held").lock(["a"], timeout=0) as lock:  # would be Busy if still held
            assert lock.token != 0
    finally:
        other.detach()
