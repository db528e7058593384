"""The thin reading layer: what `verify` asks of a cluster, through the official `kubernetes` client.

Objects are read as the API serves them (`_preload_content=False` + JSON), i.e. plain dicts with
the same keys as `kubectl get -o json`, so the checks are pure functions over API JSON and the
tests' fake API server serves ordinary Kubernetes JSON.

Two failure classes: `ClusterUnreachable` (no kubeconfig, no connection, credentials refused:
nothing can be checked, exit 2) is raised; a failing exec or service-proxy call is a result,
reported by the check that needed it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream

from hamieks import hami
from hamieks.errors import HamiEksError

JsonObject = dict[str, Any]


class ClusterUnreachable(HamiEksError):
    """The cluster cannot be reached or refuses the kubeconfig's credentials."""


@dataclass(frozen=True)
class Snapshot:
    """Everything the object checks read, fetched in one round."""

    nodes: list[JsonObject]
    namespace: JsonObject | None  # the model servers' namespace; None when it does not exist
    pods: list[JsonObject]  # in the model servers' namespace
    deployments: list[JsonObject]  # in the model servers' namespace
    scheduler_deployments: list[JsonObject]  # HAMi's, in any namespace
    device_plugin_pods: list[JsonObject]  # HAMi's, in any namespace
    daemonsets: list[JsonObject]  # every DaemonSet in the cluster (to find other device plugins)


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    returncode: int | None  # None: the command could not be run (see error)
    error: str = ""


@dataclass(frozen=True)
class ProxyResponse:
    """An HTTP answer to the chat completion: through the service proxy, or inside a pod."""

    status: int  # 0: no HTTP response at all (see body)
    body: str
    seconds: float
    timed_out: bool = False  # no response because our read timeout expired


def _read_timeout(exc: Exception) -> bool:
    """The request was sent and the answer did not come in time (urllib3 raises ReadTimeoutError
    itself for a POST, which it never retries, or wrapped in MaxRetryError)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        return isinstance(exc.reason, urllib3.exceptions.ReadTimeoutError)
    return isinstance(exc, urllib3.exceptions.ReadTimeoutError)


def _component(value: str) -> str:
    return f"{hami.COMPONENT_LABEL}={value}"


def _unreachable(kubeconfig: Path, exc: Exception) -> ClusterUnreachable:
    if isinstance(exc, ApiException) and exc.status in (401, 403):
        return ClusterUnreachable(
            f"--kubeconfig {kubeconfig}: the API server refused the credentials ({exc.status} {exc.reason}); "
            f"with the stack's EKS kubeconfig the AWS CLI must be on PATH and the caller must be one of the "
            f"stack's clusterAdmins (add a CI role with hami-eks:adminPrincipalArns)")
    reason = exc.reason if isinstance(exc, ApiException) else exc
    return ClusterUnreachable(f"--kubeconfig {kubeconfig}: cannot reach the cluster's API server ({reason}); "
                              f"is the cluster up and the kubeconfig the stack's current one?")


# (connect, read) seconds per API request: a stalled network is reported in seconds, not minutes;
# 20 s reads are ample for listing one namespace's objects.
REQUEST_TIMEOUT = (5.0, 20.0)


class Cluster:
    """One cluster, as the kubeconfig file describes it (its current context)."""

    def __init__(self, kubeconfig: Path, request_timeout: tuple[float, float] | None = None):
        self.kubeconfig = kubeconfig
        self.timeout = request_timeout or REQUEST_TIMEOUT
        if not kubeconfig.is_file():
            raise ClusterUnreachable(
                f"--kubeconfig {kubeconfig}: no such file; write it with "
                f"`pulumi stack output kubeconfig --show-secrets > {kubeconfig}`")
        configuration = client.Configuration()
        try:
            # The client assumes a mapping and fails on anything else with a TypeError.
            if not isinstance(yaml.safe_load(kubeconfig.read_text()), dict):
                raise ValueError("expected a kubeconfig document (apiVersion, clusters, contexts, users)")
            # persist_config=False: never write refreshed tokens back into the user's file.
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), client_configuration=configuration, persist_config=False)
        except (ConfigException, ValueError, OSError, yaml.YAMLError) as exc:
            raise ClusterUnreachable(f"--kubeconfig {kubeconfig}: not a usable kubeconfig ({exc})") from None
        # No retry: a down or stalled API server fails the round within REQUEST_TIMEOUT, and
        # --wait polls again anyway.
        configuration.retries = 0
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)

    def _json(self, method: Any, *args: Any, **kwargs: Any) -> JsonObject:
        response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
        document: JsonObject = json.loads(response.data)
        return document

    def _items(self, method: Any, *args: Any, **kwargs: Any) -> list[JsonObject]:
        items: list[JsonObject] = self._json(method, *args, **kwargs).get("items") or []
        return items

    def snapshot(self, namespace: str) -> Snapshot:
        """Read every object the checks need; ClusterUnreachable when the API cannot be read."""
        try:
            return Snapshot(
                nodes=self._items(self.core.list_node),
                namespace=self._namespace(namespace),
                pods=self._items(self.core.list_namespaced_pod, namespace),
                deployments=self._items(self.apps.list_namespaced_deployment, namespace),
                scheduler_deployments=self._items(
                    self.apps.list_deployment_for_all_namespaces,
                    label_selector=_component(hami.SCHEDULER_COMPONENT)),
                device_plugin_pods=self._items(
                    self.core.list_pod_for_all_namespaces,
                    label_selector=_component(hami.DEVICE_PLUGIN_COMPONENT)),
                daemonsets=self._items(self.apps.list_daemon_set_for_all_namespaces),
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(self.kubeconfig, exc) from None

    def _namespace(self, name: str) -> JsonObject | None:
        try:
            return self._json(self.core.read_namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def exec(self, namespace: str, pod: str, container: str, command: list[str],
             timeout: float = 60.0) -> ExecResult:
        """Run a command in a container through the API server's exec websocket."""
        try:
            ws = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace, command=command,
                        container=container, stdin=False, stdout=True, stderr=True, tty=False,
                        _preload_content=False)
        except ApiException as exc:  # the websocket handshake failed (pod gone, not running...)
            return ExecResult("", "", None, f"exec failed: {exc.reason}")
        try:
            ws.run_forever(timeout=timeout)
            stdout, stderr = ws.read_stdout(), ws.read_stderr()
            if ws.is_open():
                return ExecResult(stdout, stderr, None, f"no exit status after {timeout:.0f} s")
            try:
                code: int | None = ws.returncode
            except (TypeError, KeyError, IndexError, ValueError):  # no or unreadable status channel
                code = None
            return ExecResult(stdout, stderr, code, "" if code is not None else "no exit status")
        finally:
            ws.close()

    def get_service(self, namespace: str, service: str, port: int, path: str,
                    query: list[tuple[str, str]] | None = None) -> ProxyResponse:
        """GET through the API server's service proxy (as post_service), within REQUEST_TIMEOUT."""
        return self._through_service(namespace, service, port, path, self.timeout, method="GET",
                                     query_params=query or [], header_params={"Accept": "application/json"})

    def post_service(self, namespace: str, service: str, port: int, path: str, body: JsonObject,
                     timeout: float = 120.0) -> ProxyResponse:
        """POST JSON to a Service through the API server's service proxy (no port-forward)."""
        return self._through_service(namespace, service, port, path, timeout, method="POST", body=body,
                                     header_params={"Content-Type": "application/json", "Accept": "application/json"})

    def _through_service(self, namespace: str, service: str, port: int, path: str, timeout: Any,
                         **request_args: Any) -> ProxyResponse:
        """/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}; the generated connect_*
        methods take no request body, so the request is built with the client's own serializer,
        with its authentication. Every failure is a ProxyResponse, never an exception."""
        resource = (f"/api/v1/namespaces/{quote(namespace)}/services/{quote(service)}:{port}"
                    f"/proxy/{path.lstrip('/')}")
        started = time.monotonic()
        try:
            request = self.api.param_serialize(resource_path=resource, auth_settings=["BearerToken"], **request_args)
            response = self.api.call_api(*request, _request_timeout=timeout)
            response.read()  # type: ignore[no-untyped-call]
            text = (response.data or b"").decode("utf-8", "replace")
            return ProxyResponse(response.status, text, time.monotonic() - started)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return ProxyResponse(0, f"no response: {exc}", time.monotonic() - started, timed_out=_read_timeout(exc))
        except ApiException as exc:
            return ProxyResponse(exc.status or 0, str(exc.body or exc.reason), time.monotonic() - started)
