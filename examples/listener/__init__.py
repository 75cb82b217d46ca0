"""The reference listener: autoscale self-hosted runners for one or many scale sets.

    python -m examples.listener --url https://github.com/ORG --scale-set linux \\
        --max-runners 10 --runner-command ./run.sh          # GITHUB_TOKEN in the environment
    python -m examples.listener --simulate                  # offline: the live demo

Modules, one job each: `config` (flags, environment, TOML), `settings` (the values),
`app` (start-up, signals, shutdown), `scaler` (the scaling rules), `provisioner` (the
protocol) with `command`, `docker` and `simulate`, `metrics`, `logs`, and `demo`.
"""
