"""boto3 sessions and clients, and AWS's errors turned into :class:`CloudError`.

boto3 is an optional dependency (``sweepherd[aws]``): it is imported here, lazily, and its
absence is a clear error. Every client honours ``SWEEPHERD_AWS_ENDPOINT_URL`` (or the
``endpoint_url`` given), which the tests point at a moto server on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from sweepherd._extras import install_extra_hint
from sweepherd.errors import CloudError

#: Environment variable naming an alternative AWS endpoint for every client (tests: moto).
ENDPOINT_ENV = "SWEEPHERD_AWS_ENDPOINT_URL"
INSTALL_HINT = install_extra_hint("aws")

# Error codes that mean "the request was fine, AWS has no room for it here or now": a launch
# is retried in another subnet (availability zone) or as on-demand instead of Spot.
CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "Unsupported",
    }
)

_HINTS = {
    "AuthFailure": "Check your AWS credentials (`aws sts get-caller-identity`).",
    "UnrecognizedClientException": "Check your AWS credentials (`aws sts get-caller-identity`).",
    "InvalidClientTokenId": "Check your AWS credentials (`aws sts get-caller-identity`).",
    "ExpiredToken": "Your AWS session expired; log in again (`aws sso login` or new keys).",
    "ExpiredTokenException": "Your AWS session expired; log in again (`aws sso login`).",
    "UnauthorizedOperation": "Your AWS identity lacks this permission; ask your admin for it.",
    "AccessDenied": "Your AWS identity lacks this permission; ask your admin for it.",
    "AccessDeniedException": "Your AWS identity lacks this permission; ask your admin for it.",
    "VcpuLimitExceeded": "Ask AWS for a higher vCPU quota for this instance family "
    "(Service Quotas > EC2), or lower max_nodes.",
    "InvalidKeyPair.NotFound": "Create the key pair in this region "
    "(`aws ec2 create-key-pair --key-name NAME`) or fix key_name.",
}


def boto3_module() -> ModuleType:
    """The boto3 module, or a :class:`CloudError` saying how to install it."""
    try:
        import boto3
    except ImportError:
        raise CloudError("boto3 is not installed.", hint=INSTALL_HINT) from None
    module: ModuleType = boto3
    return module


class AwsSession:
    """One region's boto3 session; hands out clients that honour the endpoint override."""

    def __init__(
        self,
        region: str,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
    ) -> None:
        boto3 = boto3_module()
        self.region = region
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
        try:
            self._session = boto3.session.Session(profile_name=profile, region_name=region)
        except Exception as exc:  # botocore's ProfileNotFound and friends
            raise CloudError(
                f"cannot open the AWS profile {profile!r}: {exc}",
                hint="List your profiles with `aws configure list-profiles`.",
            ) from None
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """A (cached) boto3 client for ``service`` in this session's region."""
        if service not in self._clients:
            from botocore.config import Config

            config = Config(retries={"max_attempts": 8, "mode": "standard"})
            with aws_errors(f"opening an AWS {service} client"):  # reads the credentials
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.endpoint_url, config=config
                )
        return self._clients[service]

    def require_credentials(self) -> str:
        """Check that credentials exist and work; return the account id.

        Raises :class:`CloudError` before anything is created when they are missing.
        """
        with aws_errors("reading your AWS credentials"):
            credentials = self._session.get_credentials()
        if credentials is None:
            raise CloudError(
                "no AWS credentials found; nothing was created.",
                hint="Run `aws configure` (or `aws sso login`), or set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then try again.",
            )
        with aws_errors("checking your AWS credentials"):
            identity = self.client("sts").get_caller_identity()
        return str(identity["Account"])


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn botocore's exceptions raised inside the block into :class:`CloudError`."""
    from botocore import exceptions as e

    try:
        yield
    except e.NoCredentialsError:
        raise CloudError(
            f"{action} failed: no AWS credentials found.",
            hint="Run `aws configure` (or `aws sso login`), or set AWS_PROFILE.",
        ) from None
    except (
        e.PartialCredentialsError,
        e.CredentialRetrievalError,
        e.TokenRetrievalError,
        e.SSOError,
        e.ProfileNotFound,
        e.InvalidConfigError,
        e.RefreshWithMFAUnsupportedError,
    ) as exc:
        raise CloudError(
            f"{action} failed: {exc}",
            hint="Check them with `aws sts get-caller-identity` (set both AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or a working profile; `aws sso login` if it uses SSO).",
        ) from None
    except e.ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise CloudError(f"{action} failed: {code}: {message}", hint=_HINTS.get(code)) from exc
    except e.BotoCoreError as exc:
        raise CloudError(
            f"{action} failed: {exc}",
            hint="Check your network connection and the region name.",
        ) from exc
