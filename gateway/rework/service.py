"""SetReworkRules and GetReworkRules: a pool's re-execution rules, typed, changed safely.

SetReworkRules is a read-modify-write of the whole pool (Toloka's PUT replaces everything), so
per pool it runs under `PoolLock` (fleet-wide with Redis): two concurrent calls never interleave
their GET .. PUT .. reopen, and the later one sees the earlier one's result (last writer wins,
no lost or mixed update). With an `operation_id` it runs through the deduplicator under
`rework:<operation_id>`, keyed on the canonical request (rule order does not matter).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.dedupe.once import once
from gateway.dedupe.store import Deduplicator, HeldClaim
from gateway.rework.pool_lock import PoolLock
from gateway.rework.pool_writer import PoolWriter
from gateway.toloka.protocol import Toloka
from gateway.translate import quality_control as qc
from gateway.translate.ids import check_operation_id, check_pool_id

WRITABLE_STATUSES = ("OPEN", "CLOSED")


def fingerprint(req: pb.SetReworkRulesRequest) -> str:
    """A digest of the canonical request (rules as an unordered set; not the operation_id)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(orjson.dumps([req.pool_id, req.refuse_if_open]))
    h.update(qc.canonical_rules(req.rules))
    return h.hexdigest()


def _check_request(req: pb.SetReworkRulesRequest) -> None:
    problems = errors.ViolationList()
    check_pool_id(req.pool_id, problems)
    qc.check_rules(req.rules, problems)
    check_operation_id(req.operation_id, problems)
    problems.raise_if_any()


def _typed_rules(pool: dict[str, Any], pool_id: str) -> list[pb.ReworkRule]:
    """The pool's rework rules, or FailedPrecondition naming each rule the typed model cannot express."""
    parsed = qc.parse_pool_rules(pool)
    if parsed.unsupported:
        raise errors.FailedPrecondition(
            f"pool {pool_id} has re-execution rules the gateway cannot express "
            f"({parsed.unsupported[0].field}: {parsed.unsupported[0].description}); change them in Toloka",
            reason="UNSUPPORTED_REWORK_RULE",
            violations=parsed.unsupported,
        )
    return parsed.rules


class ReworkService:
    """The use cases behind SetReworkRules and GetReworkRules."""

    def __init__(self, *, toloka: Toloka, dedupe: Deduplicator, lock: PoolLock, writer: PoolWriter) -> None:
        self._toloka = toloka
        self._dedupe = dedupe
        self._lock = lock
        self._writer = writer

    @property
    def lock(self) -> PoolLock:
        """The pool write lock (its `degraded` flag feeds health and metrics)."""
        return self._lock

    async def get_rework_rules(self, req: pb.GetReworkRulesRequest, call: Call) -> pb.GetReworkRulesResponse:
        """The pool's re-execution rules, typed."""
        problems = errors.ViolationList()
        check_pool_id(req.pool_id, problems)
        problems.raise_if_any()
        pool = await self._toloka.get_pool(req.pool_id, call)
        return pb.GetReworkRulesResponse(rules=_typed_rules(pool, req.pool_id))

    async def set_rework_rules(self, req: pb.SetReworkRulesRequest, call: Call) -> pb.SetReworkRulesResponse:
        """Make the pool's re-execution rules exactly `req.rules`; once per operation_id."""
        _check_request(req)
        if not req.operation_id:
            return await self._apply(req, call)
        operation_id = req.operation_id.lower()

        async def produce(_: HeldClaim) -> pb.SetReworkRulesResponse:
            return await self._apply(req, call)

        return await once(
            self._dedupe,
            namespace="rework",
            operation_id=operation_id,
            fingerprint=fingerprint(req),
            produce=produce,
            parse=pb.SetReworkRulesResponse.FromString,
            call=call,
        )

    async def _apply(self, req: pb.SetReworkRulesRequest, call: Call) -> pb.SetReworkRulesResponse:
        pool_id = req.pool_id
        async with self._lock.hold(pool_id, call=call):
            pool = await self._toloka.get_pool(pool_id, call)
            status = str(pool.get("status", ""))
            if status not in WRITABLE_STATUSES:
                raise errors.FailedPrecondition(
                    f"pool {pool_id} is {status}; only OPEN or CLOSED pools can be changed",
                    reason=f"POOL_IS_{status or 'UNKNOWN'}",
                    metadata={"pool_status": status},
                )
            current = _typed_rules(pool, pool_id)
            if pool.get("auto_accept_solutions", True) is not False:
                refused = qc.assessment_rule_violations(req.rules)
                if refused:
                    raise errors.FailedPrecondition(
                        f"pool {pool_id} accepts assignments automatically, so {refused[0].field} "
                        "(an assessment rule) would never fire",
                        reason="POOL_AUTO_ACCEPTS",
                        violations=refused,
                    )
            if qc.same_rules(current, req.rules):
                return pb.SetReworkRulesResponse(rules=current, changed=False)
            if status == "OPEN" and req.refuse_if_open:
                raise errors.FailedPrecondition(
                    f"pool {pool_id} is OPEN and refuse_if_open is set",
                    reason="POOL_IS_OPEN",
                    metadata={"pool_status": status},
                )
            stored = await self._writer.write(
                pool_id, qc.merged_pool(pool, req.rules), was_open=status == "OPEN", call=call
            )
            return pb.SetReworkRulesResponse(rules=_typed_rules(stored, pool_id), changed=True)
