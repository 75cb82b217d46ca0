"""The provisioning API example (examples/provisioner_api)."""
