"""The provisioning API: start, list and remove JIT runners over HTTP, on the listener's provisioners.

    GITHUB_TOKEN=ghp_... PROVISIONER_API_TOKENS=ci=... \\
        python -m examples.provisioner_api --url https://github.com/ORG --runner-command ./run.sh

Modules, one job each: `settings` (the values), `config` (flags and environment), `cli`
(exit codes), `validate` (names, repositories, labels), `auth` (Bearer tokens),
`ratelimit` (per-token buckets), `state` (SQLite), `events` (fan-out to SSE and WebSocket
clients), `targets` (a request's scale set and client), `service` (runner life cycle),
`metrics` (Prometheus), `app` (the FastAPI routes). See docs/provisioning-api.md.
"""
