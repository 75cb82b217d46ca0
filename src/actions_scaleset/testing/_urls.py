"""Where everything lives on the fake's one host (all URLs hang off the request's origin).

{origin}/api/v3/…                                   GitHub REST (GHES style)
{origin}/_services/pipelines/{tenant}/_apis/…       Actions service (admin URL)
{origin}/_services/broker/scalesets/message         scale-set message queue
{origin}/_services/broker/{session,message,acknowledge}   runner broker (ServerUrlV2)
{origin}/_services/token/_apis/oauth2/token/{tenant}      runner OAuth token endpoint
{origin}/_services/run/{n}/{acquirejob,renewjob,completejob}   run service
{origin}/_services/results/twirp/…                  results service
{origin}/_services/blob/…                           signed log-upload URLs
"""

from __future__ import annotations

import attrs

__all__ = ["Urls"]


@attrs.frozen
class Urls:
    origin: str

    @property
    def rest(self) -> str:
        return f"{self.origin}/api/v3"

    def admin(self, tenant: str) -> str:
        """The Actions service base returned by `actions/runner-registration` (trailing `/`)."""
        return f"{self.origin}/_services/pipelines/{tenant}/"

    def acquire_jobs(self, tenant: str, scale_set_id: int) -> str:
        return f"{self.admin(tenant)}_apis/runtime/runnerscalesets/{scale_set_id}/acquirejobs"

    @property
    def message_queue(self) -> str:
        return f"{self.origin}/_services/broker/scalesets/message"

    @property
    def broker(self) -> str:
        return f"{self.origin}/_services/broker/"

    def token(self, tenant: str) -> str:
        return f"{self.origin}/_services/token/_apis/oauth2/token/{tenant}"

    @property
    def run_service(self) -> str:
        return f"{self.origin}/_services/run/1/"

    @property
    def results(self) -> str:
        return f"{self.origin}/_services/results/"

    def blob(self, path: str, signature: str) -> str:
        return f"{self.origin}/_services/blob/{path}?sv=2025-11-05&sr=b&sp=cw&sig={signature}"
