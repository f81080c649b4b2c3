from __future__ import annotations

import threading

import pytest

from notifier.locks import NonBlockingLock, redis_client


@pytest.fixture(params=["redis", "in-process"])
def lock_backend(request, settings):
    if request.param == "in-process":
        settings.REDIS_URL = ""
    elif not settings.REDIS_URL:
        pytest.fail("REDIS_URL must point at the test Redis (make pytest sets it)")
    return request.param


def test_it_lets_only_one_holder_in(lock_backend):
    first = NonBlockingLock("test-one-holder", ttl_seconds=30)
    second = NonBlockingLock("test-one-holder", ttl_seconds=30)
    assert first.acquire()
    try:
        assert not second.acquire()
    finally:
        assert first.release()
    assert second.acquire()
    assert second.release()


def test_it_releases_only_the_owners_lock(lock_backend):
    owner = NonBlockingLock("test-owner", ttl_seconds=30)
    other = NonBlockingLock("test-owner", ttl_seconds=30)
    assert owner.acquire()
    assert not other.acquire()
    assert not other.release()  # not acquired: must not delete the owner's key
    assert not NonBlockingLock("test-owner", ttl_seconds=30).acquire()
    assert owner.release()


def test_it_does_not_release_a_lock_taken_over_after_expiry(settings):
    client = redis_client()
    assert client is not None
    stale = NonBlockingLock("test-expiry", ttl_seconds=30)
    assert stale.acquire()
    client.delete(stale.key)  # as if its expiry passed
    successor = NonBlockingLock("test-expiry", ttl_seconds=30)
    assert successor.acquire()
    assert not stale.release()
    assert client.get(successor.key) == successor.token.encode()
    assert successor.release()


def test_it_sets_an_expiry_on_the_redis_key():
    client = redis_client()
    assert client is not None
    lock = NonBlockingLock("test-ttl", ttl_seconds=120)
    with lock as acquired:
        assert acquired
        assert 0 < client.ttl(lock.key) <= 120
    assert client.get(lock.key) is None


def test_it_admits_exactly_one_of_many_concurrent_takers(lock_backend):
    barrier = threading.Barrier(8)
    winners: list[NonBlockingLock] = []

    def take() -> None:
        lock = NonBlockingLock("test-race", ttl_seconds=30)
        barrier.wait(timeout=10)
        if lock.acquire():
            winners.append(lock)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(winners) == 1
    assert winners[0].release()


def test_it_refuses_a_ttl_below_one_second():
    with pytest.raises(ValueError, match="ttl_seconds: must be at least 1"):
        NonBlockingLock("test-bad", ttl_seconds=0)
