"""The one place that builds boto3 clients.

boto3 itself resolves what a user expects an AWS tool to honour, so nothing here re-implements it:
- the stack's `aws:profile`, else `AWS_PROFILE`, else the default credential chain (env keys,
  SSO, instance/container roles);
- the region: the stack's `aws:region` when a command has a stack, else `AWS_REGION` /
  `AWS_DEFAULT_REGION` / the profile's region;
- `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>` (botocore >= 1.31 reads them
  natively, botocore/configprovider.py EnvironmentProvider for `endpoint_url`), which is how the
  tests point every call at a moto server on 127.0.0.1.
Every client uses botocore's "standard" retry mode: throttling and transient errors are retried
with backoff, as AWS recommends for new code, instead of the legacy mode's smaller error set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    TokenRetrievalError,
)

from hamieks.errors import HamiEksError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_eks import EKSClient
    from mypy_boto3_elb import ElasticLoadBalancingClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_pricing import PricingClient
    from mypy_boto3_service_quotas import ServiceQuotasClient
    from mypy_boto3_sts import STSClient

# Bounded timeouts: a stalled network is reported within CONNECT_TIMEOUT_S/READ_TIMEOUT_S times
# MAX_ATTEMPTS (about a minute at worst), not botocore's 60 s per try times the retries; after the
# first call that cannot reach AWS, every later call of the same session fails at once
# (`Aws._fail_fast`), so a command that asks many things still ends with one clear line.
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15
MAX_ATTEMPTS = 3  # the first try and two retries with backoff (botocore: total_max_attempts)
RETRY_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}, connect_timeout=CONNECT_TIMEOUT_S,
                      read_timeout=READ_TIMEOUT_S, user_agent_extra="hami-eks")
# botocore's "no answer" failures: the endpoint is down, unreachable or stalled.
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
UNREACHABLE_FIX = ("check the network, a proxy (HTTPS_PROXY) or AWS_ENDPOINT_URL; "
                   f"each call waited up to {CONNECT_TIMEOUT_S} s to connect and {READ_TIMEOUT_S} s for an answer, "
                   f"{MAX_ATTEMPTS} times")

# The Price List API answers only in a few regions; us-east-1 serves the prices of every region.
PRICING_API_REGION = "us-east-1"

# Error codes meaning "these credentials are not usable", as opposed to "not allowed to do this".
_BAD_CREDENTIAL_CODES = frozenset({
    "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException",
    "AuthFailure", "SignatureDoesNotMatch", "InvalidAccessKeyId", "RequestExpired",
})

CREDENTIALS_FIX = ("configure credentials: `aws configure`, `aws sso login --profile NAME` with "
                   "AWS_PROFILE=NAME, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; "
                   "`aws sts get-caller-identity` must work")


def stack_profile(config: Mapping[str, Any]) -> str | None:
    """The stack's `aws:profile`, which the Pulumi AWS provider uses over AWS_PROFILE; None when unset
    (boto3 then reads AWS_PROFILE itself)."""
    profile = config.get("aws:profile")
    return profile if isinstance(profile, str) and profile else None


class AwsCredentialsError(HamiEksError):
    """No usable AWS credentials (none found, unknown profile, expired or invalid keys)."""


class AwsError(HamiEksError):
    """An AWS call failed for a reason other than credentials (unreachable endpoint, denied...)."""


class AwsUnreachable(AwsError):
    """AWS did not answer (down, unreachable or stalled network): later calls are not tried."""


def describe_client_error(error: ClientError) -> str:
    """`Operation: Code: message`, the parts of a ClientError a user can act on."""
    info = error.response.get("Error", {})
    operation = getattr(error, "operation_name", "AWS call")
    # One line, bounded: a proxy or an emulator may answer with a whole HTML page.
    message = " ".join(str(info.get("Message", error)).split())[:200]
    return f"{operation}: {info.get('Code', 'Unknown')}: {message}"


def is_credentials_error(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code", "") in _BAD_CREDENTIAL_CODES


@contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """Turn botocore's exceptions into HamiEksErrors that say what to do (commands exit 2)."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError, ProfileNotFound, TokenRetrievalError) as exc:
        raise AwsCredentialsError(f"{what}: no usable AWS credentials ({exc}); {CREDENTIALS_FIX}") from None
    except NoRegionError:
        raise AwsError(f"{what}: no AWS region; set aws:region in the stack file or AWS_REGION") from None
    except ClientError as exc:
        if is_credentials_error(exc):
            raise AwsCredentialsError(f"{what}: AWS rejected the credentials ({describe_client_error(exc)}); "
                                      f"{CREDENTIALS_FIX}") from None
        raise AwsError(f"{what}: {describe_client_error(exc)}") from None
    except _UNREACHABLE as exc:
        raise AwsUnreachable(f"{what}: cannot reach AWS ({exc}); {UNREACHABLE_FIX}") from None
    except BotoCoreError as exc:
        raise AwsError(f"{what}: {exc}") from None


class Aws:
    """A boto3 session for one region, handing out (cached) clients with the standard retry mode."""

    def __init__(self, region: str | None = None, profile: str | None = None) -> None:
        with translated_errors("AWS session"):
            # profile None lets boto3 read AWS_PROFILE itself; region None lets it read AWS_REGION.
            self.session = boto3.Session(profile_name=profile, region_name=region)
        resolved = self.session.region_name
        if not resolved:
            raise AwsError("no AWS region: set aws:region in the stack file, or AWS_REGION")
        self.region: str = resolved
        self._clients: dict[tuple[str, str], Any] = {}
        self.unreachable: str | None = None  # the first "no answer" this session met

    def has_credentials(self) -> bool:
        """Whether the credential chain resolves to something (it does not prove AWS accepts it)."""
        try:
            return self.session.get_credentials() is not None
        except BotoCoreError:
            return False

    def _client(self, service: str, region: str | None) -> Any:
        key = (service, region or self.region)
        if key not in self._clients:
            with translated_errors(f"{service} client"):
                client = self.session.client(service, region_name=key[1], config=RETRY_CONFIG)  # type: ignore[call-overload]
            # botocore's event hooks (botocore/client.py BaseClient._make_api_call emits
            # after-call-error; botocore/endpoint.py Endpoint._send emits before-send).
            client.meta.events.register("after-call-error", self._note_unreachable)
            client.meta.events.register("before-send", self._fail_fast)
            self._clients[key] = client
        return self._clients[key]

    def _note_unreachable(self, exception: Exception | None = None, **_: Any) -> None:
        if isinstance(exception, _UNREACHABLE) and self.unreachable is None:
            self.unreachable = str(exception)

    def _fail_fast(self, **_: Any) -> None:
        if self.unreachable is not None:
            raise AwsUnreachable(f"AWS did not answer an earlier call ({self.unreachable}), so this one was not "
                                 f"tried; {UNREACHABLE_FIX}")

    def sts(self) -> STSClient:
        client: STSClient = self._client("sts", None)
        return client

    def ec2(self, region: str | None = None) -> EC2Client:
        client: EC2Client = self._client("ec2", region)
        return client

    def eks(self) -> EKSClient:
        client: EKSClient = self._client("eks", None)
        return client

    def service_quotas(self) -> ServiceQuotasClient:
        client: ServiceQuotasClient = self._client("service-quotas", None)
        return client

    def pricing(self) -> PricingClient:
        client: PricingClient = self._client("pricing", PRICING_API_REGION)
        return client

    def elbv2(self) -> ElasticLoadBalancingv2Client:
        client: ElasticLoadBalancingv2Client = self._client("elbv2", None)
        return client

    def elb(self) -> ElasticLoadBalancingClient:
        client: ElasticLoadBalancingClient = self._client("elb", None)
        return client

    def logs(self) -> CloudWatchLogsClient:
        client: CloudWatchLogsClient = self._client("logs", None)
        return client

    def ecr(self) -> Any:  # no mypy-boto3-ecr stubs installed: untyped
        return self._client("ecr", None)
