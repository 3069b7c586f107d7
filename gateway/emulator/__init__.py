"""The Toloka REST API emulator: Toloka's wire behaviour, fault injection and a request log.

Public names: `EmulatorState`, `Fault`, `RecordedRequest` (state), `create_app` (aiohttp app),
`EmulatorServer` and `run_forever` (server). Seeded pools are listed in `gateway.emulator.state`,
the control endpoints in `gateway.emulator.control_routes`, behaviour choices where Toloka is
undocumented in `task_routes` and `pool_routes`.
"""

from gateway.emulator.app import create_app
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer, run_forever
from gateway.emulator.state import EmulatorState, RecordedRequest

__all__ = ["EmulatorServer", "EmulatorState", "Fault", "RecordedRequest", "create_app", "run_forever"]
