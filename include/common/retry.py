"""Retry with exponential backoff and jitter (tenacity), and circuit breakers (pybreaker).

One place for the backoff rules every external call uses, so the numbers in the design documents
(e.g. the reef uploader's ``min(180, 5 * 2**n)`` seconds) are configuration, not copied loops.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pybreaker
import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")

CircuitBreakerError = pybreaker.CircuitBreakerError


def backoff_delay(attempt: int, base: float, cap: float, jitter: bool = False) -> float:
    """Delay before retry number ``attempt`` (0-based): ``min(cap, base * 2**attempt)``; with
    ``jitter`` the AWS "full jitter" variant, uniform in ``[0, that]``."""
    delay = min(cap, base * (2**attempt))
    return random.uniform(0, delay) if jitter else delay


def retrying(
    *,
    attempts: int = 5,
    base: float = 1.0,
    cap: float = 60.0,
    jitter: bool = True,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    give_up_on: tuple[type[BaseException], ...] = (),
    sleep: Callable[[float], None] = time.sleep,
    name: str = "call",
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` with exponential backoff (full jitter by default)."""
    wait = (
        tenacity.wait_random_exponential(multiplier=base, max=cap)
        if jitter
        else tenacity.wait_exponential(multiplier=base, max=cap, exp_base=2)
    )
    retry = tenacity.retry_if_exception_type(retry_on)
    if give_up_on:
        retry = retry & tenacity.retry_if_not_exception_type(give_up_on)

    def _before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (attempt %d/%d): %s; retrying in %.1f s",
            name,
            state.attempt_number,
            attempts,
            exc,
            state.next_action.sleep if state.next_action else 0.0,
        )

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait,
        retry=retry,
        reraise=True,
        sleep=sleep,
        before_sleep=_before_sleep,
    )


def retry_call(fn: Callable[..., T], *args: Any, policy: tenacity.Retrying, **kwargs: Any) -> T:
    return policy(fn, *args, **kwargs)


_BREAKERS: dict[str, pybreaker.CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def circuit_breaker(
    name: str,
    *,
    fail_max: int = 5,
    reset_timeout: float = 30.0,
    exclude: tuple[type[BaseException], ...] = (),
) -> pybreaker.CircuitBreaker:
    """The process-wide breaker called ``name`` (created on first use).

    After ``fail_max`` consecutive failures it opens and calls fail fast with
    :data:`CircuitBreakerError` for ``reset_timeout`` seconds, then lets one trial call through.
    """
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(name)
        if breaker is None:
            breaker = pybreaker.CircuitBreaker(
                fail_max=fail_max,
                reset_timeout=reset_timeout,
                exclude=list(exclude),
                name=name,
            )
            _BREAKERS[name] = breaker
        return breaker


def reset_breakers() -> None:
    """Forget every breaker (tests)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()
