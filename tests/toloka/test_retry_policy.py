"""RetryPolicy decisions without real time: a manual clock, fixed randomness, deadlines as seconds left."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.settings import TolokaSettings
from gateway.toloka.retry_budget import RetryBudget
from gateway.toloka.retry_policy import RetryPolicy
from tests.toloka.pause_log import PauseLog


def policy(
    *, rng: float = 0.5, max_attempts: int = 5, tokens: float = 10.0, clock: PauseLog | None = None
) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
        backoff_initial_s=0.2,
        backoff_max_s=10.0,
        request_timeout_s=30.0,
        budget=RetryBudget(max_tokens=tokens, token_ratio=0.1),
        clock=clock or PauseLog(),
        rng=lambda: rng,
    )


def unavailable(retry_after: float | None = None) -> errors.Unavailable:
    return errors.Unavailable(
        "Toloka is unavailable", retry_after=retry_after, metadata={"http_status": "503"}
    )


@pytest.mark.parametrize("status", [408, 429, 500, 503, 504])
def test_status_is_retried_when_a_later_attempt_may_succeed(status: int) -> None:
    assert policy().retries(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 502])
def test_status_is_not_retried_when_the_answer_is_definite(status: int) -> None:
    assert not policy().retries(status)


def test_backoff_doubles_per_attempt_up_to_the_cap_when_jitter_is_fixed() -> None:
    highest = policy(rng=1.0)
    assert [highest.backoff(n, None) for n in (1, 2, 3, 6, 7, 20)] == [0.2, 0.4, 0.8, 6.4, 10.0, 10.0]


def test_backoff_jitter_spans_half_to_all_of_the_ceiling_when_rng_spans_zero_to_one() -> None:
    assert policy(rng=0.0).backoff(3, None) == pytest.approx(0.4)
    assert policy(rng=0.5).backoff(3, None) == pytest.approx(0.6)
    assert policy(rng=1.0).backoff(3, None) == pytest.approx(0.8)


def test_backoff_is_never_shorter_than_retry_after_when_toloka_asks_for_a_pause() -> None:
    assert policy(rng=0.0).backoff(1, 3.0) == 3.0
    assert policy(rng=1.0).backoff(7, 3.0) == 10.0


def test_delay_is_the_backoff_when_attempts_budget_and_deadline_allow() -> None:
    assert policy(rng=0.0).delay(unavailable(), 2, remaining=5.0) == pytest.approx(0.2)
    assert policy(rng=0.0).delay(unavailable(), 2, remaining=None) == pytest.approx(0.2)


def test_delay_raises_the_failure_when_attempts_are_used_up() -> None:
    failure = unavailable()
    p = policy(max_attempts=3)
    p.delay(failure, 2, remaining=None)
    with pytest.raises(errors.Unavailable) as info:
        p.delay(failure, 3, remaining=None)
    assert info.value is failure


def test_delay_raises_with_retry_info_and_throttled_mark_when_the_budget_is_spent() -> None:
    p = policy(rng=1.0, tokens=4.0)
    p.budget.on_failure()
    p.delay(unavailable(), 1, remaining=None)  # 3 of 4 tokens left: still retried
    p.budget.on_failure()
    failure = unavailable()
    with pytest.raises(errors.Unavailable) as info:
        p.delay(failure, 1, remaining=None)  # 2 of 4 left: half, no more retries
    assert info.value is failure
    assert failure.metadata["retries_throttled"] == "true"
    assert failure.retry_after == pytest.approx(0.2)  # the backoff it would have waited


def test_delay_keeps_toloka_retry_after_when_the_budget_is_spent() -> None:
    p = policy(tokens=2.0)
    p.budget.on_failure()
    failure = unavailable(retry_after=4.0)
    with pytest.raises(errors.Unavailable):
        p.delay(failure, 1, remaining=None)
    assert failure.retry_after == 4.0


def test_delay_returns_retry_after_to_the_caller_when_it_is_longer_than_backoff_max() -> None:
    failure = errors.RateLimited("Toloka's quota is exhausted", retry_after=30.0)
    with pytest.raises(errors.RateLimited) as info:
        policy().delay(failure, 1, remaining=None)
    assert info.value.retry_after == 30.0
    assert "retries_throttled" not in failure.metadata


def test_delay_waits_out_retry_after_when_it_is_within_backoff_max() -> None:
    assert policy(rng=0.0).delay(unavailable(retry_after=10.0), 1, remaining=None) == 10.0


def test_delay_raises_with_the_pause_as_retry_info_when_it_would_outlast_the_deadline() -> None:
    failure = unavailable()
    with pytest.raises(errors.Unavailable):
        policy(rng=1.0).delay(failure, 3, remaining=0.8)  # a pause of exactly what is left: no
    assert failure.retry_after == pytest.approx(0.8)


def test_delay_keeps_toloka_retry_after_when_the_deadline_is_too_close() -> None:
    failure = unavailable(retry_after=2.0)
    with pytest.raises(errors.Unavailable):
        policy().delay(failure, 1, remaining=1.0)
    assert failure.retry_after == 2.0


def test_attempt_timeout_is_the_request_timeout_when_there_is_no_deadline() -> None:
    assert policy().attempt_timeout(None, cut_at_deadline=True) == 30.0


def test_attempt_is_cut_at_the_deadline_when_the_request_may_be_repeated() -> None:
    assert policy().attempt_timeout(1.5, cut_at_deadline=True) == 1.5
    assert policy().attempt_timeout(99.0, cut_at_deadline=True) == 30.0


def test_attempt_is_not_cut_at_the_deadline_when_the_request_must_not_be_repeated_blind() -> None:
    assert policy().attempt_timeout(1.5, cut_at_deadline=False) == 30.0


@pytest.mark.parametrize("cut", [True, False])
def test_nothing_is_sent_when_the_deadline_has_passed(cut: bool) -> None:
    with pytest.raises(errors.DeadlineExceeded) as info:
        policy().attempt_timeout(0.0, cut_at_deadline=cut)
    assert info.value.metadata == {}


def test_check_deadline_names_attempts_and_the_last_failure_when_the_deadline_has_passed() -> None:
    p = policy()
    p.check_deadline(unavailable(), 2, remaining=0.1)
    p.check_deadline(unavailable(), 2, remaining=None)
    with pytest.raises(errors.DeadlineExceeded) as info:
        p.check_deadline(unavailable(), 2, remaining=-0.5)
    assert info.value.metadata == {"attempts": "2", "http_status": "503"}


async def test_pause_waits_on_the_injected_clock() -> None:
    clock = PauseLog()
    before = clock.now()
    await policy(clock=clock).pause(1.25)
    assert clock.pauses == [1.25] and clock.now() == before + 1.25


def test_policy_from_settings_uses_the_toloka_settings_when_built_for_a_client() -> None:
    settings = TolokaSettings(
        max_attempts=2, backoff_initial_s=1.0, backoff_max_s=3.0, retry_budget_tokens=6.0
    )
    p = RetryPolicy.from_settings(settings, rng=lambda: 1.0)
    assert (p.max_attempts, p.request_timeout_s, p.budget.tokens) == (2, 30.0, 6.0)
    assert [p.backoff(n, None) for n in (1, 2, 3)] == [1.0, 2.0, 3.0]
