"""`FakeGitHub`: a stateful, strict, offline simulation of GitHub's side.

    from actions_scaleset.testing import FakeGitHub

    fake = FakeGitHub()
    async with fake.http_client() as http:          # in-process, no sockets
        ...
    async with fake.serve() as base_url:            # loopback, hypercorn
        ...

It serves GitHub REST (GHES style, `/api/v3`), the Actions scale-set service, the
scale-set message queue, and the runner side (OAuth token endpoint, broker, run
service, results), all from one state model, with fault injection
(`fake.faults`), token expiry (`fake.expire_tokens`), a request log
(`fake.requests`) and `fake.snapshot()`. `RunnerFleet` is a `Scaler` whose runners
are in-process `RunnerClient`s, to test a listener end to end. See docs/testing.md.
"""

from ._fake import FakeGitHub
from ._faults import Fault, Faults
from ._fleet import RunnerFleet
from ._model import JobState
from ._tokens import TokenKind
from ._views import JobInfo, RecordedRequest, RunnerInfo, ScaleSetInfo, Snapshot
from ._wire import Statistics
from ._workload import PlannedJob, Workload

__all__ = [
    "FakeGitHub",
    "Fault",
    "Faults",
    "JobInfo",
    "JobState",
    "PlannedJob",
    "RecordedRequest",
    "RunnerFleet",
    "RunnerInfo",
    "ScaleSetInfo",
    "Snapshot",
    "Statistics",
    "TokenKind",
    "Workload",
]
