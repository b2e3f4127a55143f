"""Lambda's execution models (`--mode`), as what differs between them.

The value is also AWS_LAMBDA_INITIALIZATION_TYPE for every process and the Telemetry
`initializationType`. Facts and their sources: /work/shared/reference/lambda-platform.md
(sections 1 LMI, 2 SnapStart, 5 Telemetry) and lambda-lifecycle.md.
"""

from __future__ import annotations

from dataclasses import dataclass

ON_DEMAND = "on-demand"
PROVISIONED_CONCURRENCY = "provisioned-concurrency"
SNAP_START = "snap-start"
MANAGED_INSTANCES = "lambda-managed-instances"
MODES = (ON_DEMAND, PROVISIONED_CONCURRENCY, SNAP_START, MANAGED_INSTANCES)

ALL_SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")

# SnapStart: the runtime's restore (its after-restore hooks until it asks for the first
# invocation) must finish within 10 s, else SnapStartTimeoutException
# (AWS docs lambda-runtime-environment.html, via lambda-platform.md section 2).
RESTORE_TIMEOUT_S = 10.0

# Telemetry buffers are flushed before SHUTDOWN on LMI, for at most this long
# (RIE-LMI rapid/shutdown.go and interop/events_api.go Flush).
SHUTDOWN_TELEMETRY_FLUSH_S = 1.0


@dataclass(frozen=True)
class ExecutionModel:
    name: str
    # The environment is frozen (SIGSTOP) whenever every process waits on /next.
    freezes: bool
    # External extensions may register for INVOKE (LMI: only SHUTDOWN, 403 otherwise).
    invoke_registration: bool
    # Telemetry subscription schemaVersion values accepted (LMI: only 2025-01-29).
    schema_versions: tuple
    # platform.runtimeDone per invocation (LMI: none).
    runtime_done: bool
    # The runtime's share of the shutdown phase after SIGTERM. lambda-lifecycle.md gives
    # the managed service ~300 ms; RIE-LMI gives the runtime 600 ms (30 % of 2,000 ms).
    runtime_shutdown_grace_s: float
    # Telemetry is flushed to subscribers between the runtime's end and SHUTDOWN (LMI).
    flush_telemetry_before_shutdown: bool
    # Several runtime worker processes take invocations concurrently (LMI).
    concurrent: bool


MODELS = {
    ON_DEMAND: ExecutionModel(ON_DEMAND, True, True, ALL_SCHEMA_VERSIONS, True, 0.300, False, False),
    PROVISIONED_CONCURRENCY: ExecutionModel(PROVISIONED_CONCURRENCY, True, True, ALL_SCHEMA_VERSIONS, True, 0.300, False, False),
    SNAP_START: ExecutionModel(SNAP_START, True, True, ALL_SCHEMA_VERSIONS, True, 0.300, False, False),
    MANAGED_INSTANCES: ExecutionModel(MANAGED_INSTANCES, False, False, ("2025-01-29",), False, 0.600, True, True),
}

# The answer to a registration that asks for INVOKE where it is not allowed, byte for byte
# what RIE-LMI renders (rapi/handler/agentregister.go, constants.go, render_error.go).
INVALID_EVENT_TYPE = "Extension.InvalidEventType"
INVOKE_REFUSED_MESSAGE = "INVOKE: ErrorInvalidEventType"
