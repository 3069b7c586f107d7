"""`once`: the producing call gets its own message; every duplicate gets it back, marked replayed."""

from __future__ import annotations

import uuid

import pytest

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.call import Call
from gateway.dedupe import LocalDeduplicator
from gateway.dedupe.once import once
from gateway.dedupe.store import HeldClaim
from gateway.settings import DedupeSettings


async def test_reply_is_produced_once_and_replayed_with_its_operation_id_when_duplicates_follow() -> None:
    dedupe = LocalDeduplicator(settings=DedupeSettings())
    operation_id, runs = str(uuid.uuid4()), []

    async def produce(_: HeldClaim) -> pb.SetReworkRulesResponse:
        runs.append(1)
        return pb.SetReworkRulesResponse(changed=True)

    async def ask(fingerprint: str = "fp") -> pb.SetReworkRulesResponse:
        return await once(
            dedupe,
            namespace="rework",
            operation_id=operation_id,
            fingerprint=fingerprint,
            produce=produce,
            parse=pb.SetReworkRulesResponse.FromString,
            call=Call(),
        )

    first = await ask()
    again = await ask()
    assert (first.operation_id, first.replayed, first.changed) == (operation_id, False, True)
    assert (again.operation_id, again.replayed, again.changed) == (operation_id, True, True)
    assert len(runs) == 1
    with pytest.raises(errors.AlreadyExists):
        await ask("another request")
