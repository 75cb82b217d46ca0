"""Raw-httpx helpers that speak the wire as the spec writes it (the SDK clients are not used)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from actions_scaleset.testing import FakeGitHub

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

API = {"api-version": "6.0-preview"}


@attrs.frozen
class Admin:
    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def registration_token(http: httpx.AsyncClient, fake: FakeGitHub, scope_path: str = "orgs/acme") -> str:
    fake.config_url(scope_path.removeprefix("orgs/").removeprefix("repos/"))
    pat = fake.pat().token.get_secret_value()
    response = await http.post(
        f"{fake.base_url}/api/v3/{scope_path}/actions/runners/registration-token", headers=bearer(pat)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def bootstrap(http: httpx.AsyncClient, fake: FakeGitHub, scope: str = "acme") -> Admin:
    """PAT → registration token → runner-registration → the Actions URL and admin token."""
    config_url = fake.config_url(scope)
    parts = scope.split("/")
    scope_path = (
        f"repos/{scope}"
        if len(parts) == 2 and parts[0] != "enterprises"
        else (scope if parts[0] == "enterprises" else f"orgs/{scope}")
    )
    token = await registration_token(http, fake, scope_path)
    response = await http.post(
        f"{fake.base_url}/api/v3/actions/runner-registration",
        headers={"Authorization": f"RemoteAuth {token}"},
        json={"url": config_url, "runner_event": "register"},
    )
    assert response.status_code == 200, response.text
    return Admin(response.json()["url"], response.json()["token"])


async def actions(
    http: httpx.AsyncClient, admin: Admin, method: str, path: str, *, json_body: Any = None, **params: Any
) -> httpx.Response:
    kwargs: dict[str, Any] = {} if json_body is None else {"json": json_body}
    return await http.request(
        method, admin.url + path, params={**params, **API}, headers=admin.headers, **kwargs
    )


async def create_scale_set(
    http: httpx.AsyncClient,
    admin: Admin,
    name: str = "linux",
    labels: list[str] | None = None,
    group_id: int = 1,
) -> dict[str, Any]:
    body = {
        "name": name,
        "runnerGroupId": group_id,
        "labels": [{"type": "System", "name": label} for label in (labels or [name])],
        "RunnerSetting": {"disableUpdate": True},
        "createdOn": "0001-01-01T00:00:00Z",
    }
    response = await actions(http, admin, "POST", "_apis/runtime/runnerscalesets", json_body=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def create_session(
    http: httpx.AsyncClient, admin: Admin, scale_set_id: int, owner: str = "listener-0"
) -> httpx.Response:
    return await actions(
        http,
        admin,
        "POST",
        f"_apis/runtime/runnerscalesets/{scale_set_id}/sessions",
        json_body={"sessionId": "00000000-0000-0000-0000-000000000000", "ownerName": owner},
    )


async def poll(
    http: httpx.AsyncClient, session: dict[str, Any], last: int = 0, capacity: int = 10
) -> httpx.Response:
    params = {"lastMessageId": str(last)} if last else {}
    return await http.get(
        session["messageQueueUrl"],
        params=params,
        headers={
            **bearer(session["messageQueueAccessToken"]),
            "Accept": "application/json; api-version=6.0-preview",
            "X-ScaleSetMaxCapacity": str(capacity),
        },
    )


def events(message: httpx.Response) -> list[dict[str, Any]]:
    assert message.status_code == 200, message.text
    return list(json.loads(message.json()["body"]))


async def ack(http: httpx.AsyncClient, session: dict[str, Any], message_id: int) -> httpx.Response:
    return await http.delete(
        f"{session['messageQueueUrl']}/{message_id}", headers=bearer(session["messageQueueAccessToken"])
    )


async def acquire(
    http: httpx.AsyncClient, admin: Admin, session: dict[str, Any], scale_set_id: int, ids: list[int]
) -> httpx.Response:
    return await http.post(
        f"{admin.url}_apis/runtime/runnerscalesets/{scale_set_id}/acquirejobs",
        params=API,
        headers=bearer(session["messageQueueAccessToken"]),
        json=ids,
    )


async def generate_jit(http: httpx.AsyncClient, admin: Admin, scale_set_id: int, name: str) -> httpx.Response:
    return await actions(
        http,
        admin,
        "POST",
        f"_apis/runtime/runnerscalesets/{scale_set_id}/generatejitconfig",
        json_body={"name": name, "workFolder": "_work"},
    )


# ---------------------------------------------------------------------- the runner side


def decode_jit(blob: str) -> dict[str, Any]:
    outer = json.loads(base64.b64decode(blob))
    return {name: json.loads(base64.b64decode(value)) for name, value in outer.items()}


def _int(value: str) -> int:
    return int.from_bytes(base64.b64decode(value), "big")


def runner_key(rsaparams: dict[str, str]) -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateNumbers, RSAPublicNumbers

    public = RSAPublicNumbers(_int(rsaparams["exponent"]), _int(rsaparams["modulus"]))
    numbers = RSAPrivateNumbers(
        p=_int(rsaparams["p"]),
        q=_int(rsaparams["q"]),
        d=_int(rsaparams["d"]),
        dmp1=_int(rsaparams["dp"]),
        dmq1=_int(rsaparams["dq"]),
        iqmp=_int(rsaparams["inverseQ"]),
        public_numbers=public,
    )
    return numbers.private_key()


def credential(files: dict[str, Any], name: str) -> str:
    data = files[".credentials"]["Data"]
    return str(next(v for k, v in data.items() if k.lower() == name.lower()))


def client_assertion(
    files: dict[str, Any],
    now: float,
    *,
    lifetime: int = 300,
    audience: str | None = None,
    algorithm: str = "RS256",
) -> str:
    """The runner's client assertion, exactly per docs/protocol.md, "The OAuth client assertion"."""
    import jwt

    client_id = credential(files, "clientId")
    nbf = int(now)
    claims = {
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "iss": client_id,
        "aud": audience or credential(files, "authorizationUrl"),
        "nbf": nbf,
        "exp": nbf + lifetime,
    }
    key = runner_key(files[".credentials_rsaparams"])
    return jwt.encode(claims, key, algorithm=algorithm, headers={"typ": "JWT"})


async def oauth(http: httpx.AsyncClient, files: dict[str, Any], assertion: str) -> httpx.Response:
    return await http.post(
        credential(files, "authorizationUrl"),
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        headers={"Accept": "application/json"},
    )


async def runner_token(http: httpx.AsyncClient, files: dict[str, Any], now: float) -> str:
    response = await oauth(http, files, client_assertion(files, now))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def broker_url(files: dict[str, Any]) -> str:
    return str(files[".runner"]["ServerUrlV2"])


async def broker_session(http: httpx.AsyncClient, files: dict[str, Any], token: str) -> httpx.Response:
    runner = files[".runner"]
    return await http.post(
        broker_url(files) + "session",
        headers=bearer(token),
        json={
            "sessionId": "00000000-0000-0000-0000-000000000000",
            "ownerName": "test-host (PID: 1)",
            "agent": {
                "id": int(runner["AgentId"]),
                "name": runner["AgentName"],
                "version": "2.336.0",
                "osDescription": "Linux",
                "ephemeral": None,
                "status": 0,
                "provisioningState": None,
            },
            "useFipsEncryption": False,
        },
    )


async def broker_poll(
    http: httpx.AsyncClient, files: dict[str, Any], token: str, session_id: str, status: str = "Online"
) -> httpx.Response:
    return await http.get(
        broker_url(files) + "message",
        headers=bearer(token),
        params={
            "sessionId": session_id,
            "status": status,
            "runnerVersion": "2.336.0",
            "os": "Linux",
            "architecture": "X64",
            "disableUpdate": "true",
        },
    )
