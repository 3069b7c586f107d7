"""`Relay`: what the REST front needs of the Toloka client (`TolokaClient.relay`)."""

from __future__ import annotations

from typing import Protocol

from gateway.call import Call
from gateway.toloka.request import Reply, TolokaRequest


class Relay(Protocol):
    """Sends a relayed request through the one choke point."""

    async def relay(self, request: TolokaRequest, call: Call) -> Reply:
        """Send `request` through the choke point; the answer's `relayed` must be released."""
        ...
