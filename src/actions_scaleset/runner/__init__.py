"""Be a self-hosted runner: JIT config, OAuth, broker and pipelines sessions, jobs (docs/protocol.md,
"The runner side").

```python
from actions_scaleset.runner import JitConfig, RunnerClient

async with RunnerClient(JitConfig.decode(blob)) as runner:
    async for request in runner.job_requests():
        job = await runner.acquire_job(request)
        ...
        await job.complete("succeeded")
```
"""

from ._broker import DEFAULT_RUNNER_VERSION, RunnerIdentity
from ._client import RunnerClient
from ._crypto import (
    RSAParameters,
    decrypt_message_body,
    encrypt_message_body,
    unwrap_session_key,
    wrap_session_key,
)
from ._jitconfig import JitConfig, RunnerCredentials, RunnerSettings
from ._jobmessage import JobMessage, JobStepInfo, JobVariable, MaskHint, ServiceEndpoint
from ._jobs import Annotation, Conclusion, Job, JobRequest, Step, StepStatus
from ._messages import (
    AgentRefresh,
    BrokerMigration,
    ForceTokenRefresh,
    JobCancellation,
    PipelineJobRequest,
    RunnerJobRequest,
    RunnerMessage,
    RunnerRefresh,
    RunnerRefreshConfig,
    RunnerShutdown,
    UnknownMessage,
    parse_message,
)
from ._oauth import RunnerTokens, build_client_assertion

__all__ = [
    "DEFAULT_RUNNER_VERSION",
    "AgentRefresh",
    "Annotation",
    "BrokerMigration",
    "Conclusion",
    "ForceTokenRefresh",
    "JitConfig",
    "Job",
    "JobCancellation",
    "JobMessage",
    "JobRequest",
    "JobStepInfo",
    "JobVariable",
    "MaskHint",
    "PipelineJobRequest",
    "RSAParameters",
    "RunnerClient",
    "RunnerCredentials",
    "RunnerIdentity",
    "RunnerJobRequest",
    "RunnerMessage",
    "RunnerRefresh",
    "RunnerRefreshConfig",
    "RunnerSettings",
    "RunnerShutdown",
    "RunnerTokens",
    "ServiceEndpoint",
    "Step",
    "StepStatus",
    "UnknownMessage",
    "build_client_assertion",
    "decrypt_message_body",
    "encrypt_message_body",
    "parse_message",
    "unwrap_session_key",
    "wrap_session_key",
]
