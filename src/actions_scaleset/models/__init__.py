"""Wire types: frozen attrs classes built by one cattrs converter."""

from ._converter import (
    ZERO_TIME,
    camel_wire,
    converter,
    format_timestamp,
    parse_timestamp,
    structure,
    to_camel,
    unstructure,
)
from ._rest import (
    ActionsPermissions,
    GitHubJitConfig,
    GitHubRunner,
    GitHubRunnerGroup,
    GitHubRunnerLabel,
    GitHubUser,
    Installation,
    InstallationToken,
    Organization,
    RegistrationToken,
)

__all__ = [
    "ZERO_TIME",
    "ActionsPermissions",
    "GitHubJitConfig",
    "GitHubRunner",
    "GitHubRunnerGroup",
    "GitHubRunnerLabel",
    "GitHubUser",
    "Installation",
    "InstallationToken",
    "Organization",
    "RegistrationToken",
    "camel_wire",
    "converter",
    "format_timestamp",
    "parse_timestamp",
    "structure",
    "to_camel",
    "unstructure",
]
