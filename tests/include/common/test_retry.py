from __future__ import annotations

import pytest

from include.common.retry import (
    CircuitBreakerError,
    backoff_delay,
    circuit_breaker,
    reset_breakers,
    retrying,
)


def test_backoff_delay_matches_reef_uploader_rule() -> None:
    assert [backoff_delay(n, 5, 180) for n in range(7)] == [5, 10, 20, 40, 80, 160, 180]
    for n in range(10):
        assert 0 <= backoff_delay(n, 5, 60, jitter=True) <= min(60, 5 * 2**n)


def test_retrying_retries_then_succeeds() -> None:
    sleeps: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("503")
        return "ok"

    policy = retrying(attempts=5, base=1, cap=8, jitter=False, sleep=sleeps.append)
    assert policy(flaky) == "ok"
    assert calls["n"] == 3 and sleeps == [1, 2]


def test_retrying_gives_up_and_reraises() -> None:
    sleeps: list[float] = []
    policy = retrying(attempts=3, base=1, cap=2, jitter=True, sleep=sleeps.append)
    with pytest.raises(TimeoutError):
        policy(lambda: (_ for _ in ()).throw(TimeoutError("slow")))
    assert len(sleeps) == 2 and all(0 <= s <= 2 for s in sleeps)


def test_retrying_does_not_retry_permanent_errors() -> None:
    calls = {"n": 0}

    def bad() -> None:
        calls["n"] += 1
        raise ValueError("bad request")

    policy = retrying(attempts=5, retry_on=(ConnectionError,), sleep=lambda s: None)
    with pytest.raises(ValueError):
        policy(bad)
    assert calls["n"] == 1


def test_circuit_breaker_opens_and_fails_fast() -> None:
    reset_breakers()
    breaker = circuit_breaker("s3-test", fail_max=2, reset_timeout=60)
    assert circuit_breaker("s3-test") is breaker
    calls = {"n": 0}

    def down() -> None:
        calls["n"] += 1
        raise ConnectionError("S3 down")

    for _ in range(2):
        with pytest.raises((ConnectionError, CircuitBreakerError)):
            breaker.call(down)
    with pytest.raises(CircuitBreakerError):
        breaker.call(down)
    assert calls["n"] == 2  # the third call never reached S3
    reset_breakers()
