"""The retry budget: retries stop when most attempts fail, and come back with successes."""

from __future__ import annotations

from gateway.toloka.retry_budget import RetryBudget


def test_retries_stop_after_half_the_budget_when_every_attempt_fails() -> None:
    budget = RetryBudget(max_tokens=10, token_ratio=0.1)
    allowed = 0
    for _ in range(20):
        budget.on_failure()
        allowed += budget.allows_retry()
    assert allowed == 4  # 9, 8, 7, 6 tokens left allow a retry; 5 and fewer do not
    assert budget.tokens == 0


def test_retries_return_when_successes_refill_the_budget() -> None:
    budget = RetryBudget(max_tokens=10, token_ratio=0.1)
    for _ in range(10):
        budget.on_failure()
    successes = 0
    while not budget.allows_retry():
        budget.on_success()
        successes += 1
    assert successes == 51  # just over half the budget, 0.1 token each


def test_occasional_failures_never_throttle_when_most_attempts_succeed() -> None:
    budget = RetryBudget(max_tokens=10, token_ratio=0.1)
    for i in range(10_000):
        if i % 20 == 0:  # 5% of attempts fail
            budget.on_failure()
        else:
            budget.on_success()
        assert budget.allows_retry()
