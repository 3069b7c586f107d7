"""The Toloka REST API emulator: Toloka's wire behaviour, a simulated crowd, fault injection and a request log.

Public names: `EmulatorState`, `Fault`, `RecordedRequest` (state), `create_app` (aiohttp app),
`EmulatorServer` and `run_forever` (server). Seeded data is listed in `gateway.emulator.state`, the
control endpoints in `control_routes` and `crowd_control`, the crowd in `crowd`, quality control in
`quality`, search requests in `listing`, un-emulated endpoints in `coverage`, and the choices where Toloka
is undocumented in each resource's routes module (`task_routes`, `suite_routes`, `pool_routes`,
`pool_admin`, `project_routes`, `assignment_routes`, `restriction_routes`, `skill_routes`,
`aggregation_routes`). The user's guide is docs/emulator.md.
"""

from gateway.emulator.app import create_app
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer, run_forever
from gateway.emulator.state import EmulatorState, RecordedRequest

__all__ = ["EmulatorServer", "EmulatorState", "Fault", "RecordedRequest", "create_app", "run_forever"]
