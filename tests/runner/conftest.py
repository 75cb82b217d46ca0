"""Shared runner-test fixtures: one RSA key per session, JIT configs built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from actions_scaleset.runner import JitConfig, RunnerCredentials, RunnerSettings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

BROKER = "https://broker.actions.githubusercontent.com/"
PIPELINES = "https://pipelinesghubeus22.actions.githubusercontent.com/SYNTHETICTENANT/"
TOKEN_URL = (
    "https://tokenghub.actions.githubusercontent.com/_apis/oauth2/token/66666666-7777-8888-9999-000000000000"
)
TOKEN_URL_V2 = (
    "https://token.actions.githubusercontent.com/_apis/oauth2/token/66666666-7777-8888-9999-000000000000"
)
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="session")
def rsa_key() -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_config(
    key: RSAPrivateKey,
    *,
    v2: bool = True,
    ephemeral: bool = True,
    fips: bool = True,
    skip_session_recover: bool = False,
    migrate: bool = False,
) -> JitConfig:
    """A JIT config; `migrate` adds `authorizationUrlV2` and `enableAuthMigrationByDefault`."""
    runner = RunnerSettings(
        agent_id=6858,
        agent_name="scaleset-runner-x7k2p",
        pool_id=5,
        server_url=PIPELINES,
        server_url_v2=BROKER if v2 else "",
        use_v2_flow=v2,
        ephemeral=ephemeral,
        disable_update=True,
        skip_session_recover=skip_session_recover,
    )
    credentials = RunnerCredentials(
        client_id=CLIENT_ID,
        authorization_url=TOKEN_URL,
        require_fips_cryptography=fips,
        authorization_url_v2=TOKEN_URL_V2 if migrate else None,
        enable_auth_migration_by_default=migrate,
    )
    return JitConfig.create(runner, credentials, key)


@pytest.fixture
def jit_config(rsa_key: RSAPrivateKey) -> JitConfig:
    return make_config(rsa_key)
