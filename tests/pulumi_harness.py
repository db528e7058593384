"""Run __main__.py as `pulumi up` would, against mocks, and record the resource graph.

The Pulumi CLI gives a program the project's config defaults plus the stack file's values;
mocks alone would give it nothing, so the stack files would never be tested. This harness
loads both (hamieks.config.stackfiles, the loader the offline CLI uses too), hands them to the
runtime with set_all_config, and records every RegisterResource request: type, name, parent,
provider, explicit dependencies and inputs. AWS data sources are answered from a small fake
region in which one zone lacks g5.12xlarge, as in real us-west-2.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from hamieks.config import stackfiles

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
DEPLOYER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Deployer"
SECRET_PLACEHOLDER = "mock-secret-value"

# zone -> instance types offered there. us-west-2a lacks g5.12xlarge and g6.12xlarge.
FAKE_OFFERINGS = {
    "a": {"g4dn.xlarge", "g4dn.2xlarge", "g4dn.12xlarge", "g5.xlarge", "g5.2xlarge", "g6.xlarge"},
    "b": "*", "c": "*", "d": "*",
}


def offered(region: str, instance_types: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for suffix, types in FAKE_OFFERINGS.items():
        for it in instance_types:
            if types == "*" or it in types:
                pairs.append((it, f"{region}{suffix}"))
    return pairs


@dataclass
class Registered:
    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    dependencies: list[str]
    inputs: dict[str, Any]
    timeouts: dict[str, str] = field(default_factory=dict)


@dataclass
class ProgramRun:
    stack: str
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    error: Exception | None = None
    warnings: list[str] = field(default_factory=list)
    component_outputs: dict[str, Any] = field(default_factory=dict)  # urn -> register_outputs

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registered:
        matches = [r for r in self.of_type(type_) if r.name == name]
        assert len(matches) == 1, f"expected one {type_} named {name}, found {len(matches)}"
        return matches[0]

    def ancestors(self, resource: Registered) -> list[Registered]:
        chain, parent = [], resource.parent
        while parent:
            found = [r for r in self.resources if r.urn == parent]
            if not found:
                break
            chain.append(found[0])
            parent = found[0].parent
        return chain

    def descendants(self, resource: Registered) -> list[Registered]:
        return [r for r in self.resources if resource in self.ancestors(r)]

    def depends_on(self, resource: Registered, target: Registered) -> bool:
        """Whether the resource, or a component it belongs to, explicitly depends on the target.

        A dependency on a component is sent to the engine as dependencies on the resources
        inside it, so depending on any of those counts as depending on the component.
        """
        targets = {target.urn} | {r.urn for r in self.descendants(target)}
        return any(targets & set(r.dependencies) for r in [resource, *self.ancestors(resource)])


class FakeCloud(pulumi.runtime.Mocks):
    def __init__(self, run: ProgramRun, region: str, caller: str = DEPLOYER_ROLE,
                 existing_clusters: tuple[str, ...] = ()):
        self.run = run
        self.region = region
        self.caller = caller  # the IAM role or user whose session runs `up`
        self.existing_clusters = existing_clusters

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "eks:index:Cluster":
            name = args.inputs.get("name", args.name)
            endpoint = f"https://{name.upper()}.gr7.{self.region}.eks.amazonaws.com"
            issuer = f"oidc.eks.{self.region}.amazonaws.com/id/EXAMPLE{name.upper()}"
            outputs.update({
                "kubeconfigJson": json.dumps({"apiVersion": "v1", "kind": "Config",
                                              "clusters": [{"name": name, "cluster": {"server": endpoint}}]}),
                "kubeconfig": {"apiVersion": "v1", "kind": "Config"},
                "core": {"endpoint": endpoint, "cluster": None},
                "oidcProviderArn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}",
                "oidcProviderUrl": f"https://{issuer}",
            })
        elif args.typ == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{args.name}"
            outputs["name"] = args.name
        elif args.typ == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"status": "deployed", "version": args.inputs.get("version")}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            wanted = [v for f in args.args.get("filters", []) if f["name"] == "instance-type" for v in f["values"]]
            pairs = offered(self.region, wanted)
            return {"id": self.region, "instanceTypes": [p[0] for p in pairs],
                    "locations": [p[1] for p in pairs], "locationTypes": ["availability-zone"] * len(pairs)}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            kind, name = self.caller.split(":")[-1].split("/", 1)
            arn = (f"arn:aws:sts::{ACCOUNT}:assumed-role/{name.rsplit('/', 1)[-1]}/session" if kind == "role"
                   else self.caller)
            return {"accountId": ACCOUNT, "arn": arn, "userId": "AROAEXAMPLE:session", "id": ACCOUNT}
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            # IAM's answer for a plain user ARN is an empty issuer; the program compares issuers
            # of assumed roles, and users are their own issuer here.
            return {"arn": args.args["arn"], "issuerArn": self.caller, "issuerId": "AROAEXAMPLE",
                    "issuerName": self.caller.rsplit("/", 1)[-1], "sessionName": "session", "id": args.args["arn"]}
        if args.token == "aws:eks/getClusters:getClusters":
            return {"id": self.region, "names": list(self.existing_clusters)}
        if args.token == "aws:eks/getAddonVersion:getAddonVersion":
            # A made-up build per (add-on, minor), enough to see which minor was asked for.
            version = f"v0.{args.args['kubernetesVersion']}-{args.args['addonName']}-eksbuild.default"
            return {"id": version, "addonName": args.args["addonName"], "version": version,
                    "kubernetesVersion": args.args["kubernetesVersion"], "mostRecent": args.args.get("mostRecent")}
        if args.token == "eks:index:Cluster/getKubeconfig":
            # What pulumi-eks generateKubeconfig writes for a profile: `aws eks get-token ... --profile`.
            command = ["eks", "get-token", "--cluster-name", "c", "--output", "json"]
            if args.args.get("profileName"):
                command += ["--profile", args.args["profileName"]]
            return {"result": json.dumps({"users": [{"name": "aws", "user": {"exec": {"command": "aws",
                                                                                      "args": command}}}]})}
        raise NotImplementedError(f"the fake cloud does not answer {args.token}")


class Secret(str):
    """A string input that the program marked secret."""


def plain(value: Any) -> Any:
    """Inputs as plain data, without resolving resource references (that would need the
    program's event loop): a reference becomes its URN, a secret a `Secret` (or its value)."""
    if isinstance(value, dict):
        sig = value.get(rpc._special_sig_key)
        if sig == rpc._special_secret_sig:
            return _secret(plain(value.get("value")))
        if sig == rpc._special_resource_sig:
            return value.get("urn")
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Struct carries every number as a double
    return value


def _secret(value: Any) -> Any:
    if isinstance(value, str):
        return Secret(value)
    if isinstance(value, dict):
        return {k: _secret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_secret(v) for v in value]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, keeping what Mocks.new_resource is not shown: parent, provider, deps."""

    def __init__(self, mocks: FakeCloud):
        super().__init__(mocks)
        self.run = mocks.run

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.run.resources.append(Registered(
                urn=response.urn, type=request.type, name=request.name, parent=request.parent,
                provider=request.provider, custom=request.custom, dependencies=list(request.dependencies),
                inputs=plain(json_format.MessageToDict(request.object)),
                timeouts=json_format.MessageToDict(request.customTimeouts),
            ))
        return response


    def RegisterResourceOutputs(self, request):
        """A component's register_outputs, kept by URN as the engine would store them (secrets as
        Pulumi's secret signature objects)."""
        self.run.component_outputs[request.urn] = plain(json_format.MessageToDict(request.outputs))
        return super().RegisterResourceOutputs(request)

    def Call(self, request):
        """A method call on a component (e.g. eks Cluster.getKubeconfig): answered by the mocks'
        `call` like an invoke; the mock monitor of this Pulumi version has no Call of its own."""
        # As MockMonitor.Invoke: this runs on an executor thread, and deserializing the
        # `__self__` resource reference needs an event loop there.
        pulumi_mocks._ensure_event_loop()
        args = rpc.deserialize_properties(request.args)
        ret = self.mocks.call(pulumi_mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        ret_proto = pulumi_mocks._sync_await(rpc.serialize_properties(ret, {}))
        return provider_pb2.CallResponse(**{"return": ret_proto})


class _EngineLog(logging.Logger):
    """Where pulumi.log.* goes under mocks: warnings are kept for assertions."""

    def __init__(self, run: ProgramRun):
        super().__init__("pulumi-engine")
        self.run = run

    def warning(self, msg, *args, **kwargs):
        self.run.warnings.append(str(msg))


def stack_config(stack: str, project_dir: Path = REPO, overrides: dict[str, Any] | None = None):
    values = stackfiles.load_stack_config(project_dir, stack)
    # The program prices live from AWS by default; under test it must never call AWS.
    values["hami-eks:prices"] = "recorded"
    values.update(overrides or {})
    return stackfiles.to_pulumi_config(values, SECRET_PLACEHOLDER)


def run_program(stack: str, overrides: dict[str, Any] | None = None, preview: bool = False,
                project_dir: Path = REPO, expect_error: bool = False, caller: str = DEPLOYER_ROLE,
                existing_clusters: tuple[str, ...] = ()) -> ProgramRun:
    """Run __main__.py for the stack in a fresh Pulumi runtime context.

    A program error is raised, unless expect_error: then it is in `run.error`, beside whatever
    the program registered before failing.
    """
    config, secret_keys = stack_config(stack, project_dir, overrides)
    region = config.get("aws:region", "us-west-2")
    run = ProgramRun(stack=stack)
    contextvars.Context().run(_run, run, config, secret_keys, region, preview, caller, existing_clusters)
    if run.error is not None and not expect_error:
        raise run.error
    if run.error is None and expect_error:
        raise AssertionError(f"the program succeeded for {stack} although an error was expected")
    return run


def _run(run: ProgramRun, config, secret_keys, region, preview, caller, existing_clusters) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        mocks = FakeCloud(run, region, caller, existing_clusters)
        pulumi.runtime.set_mocks(mocks, project="hami-eks", stack=run.stack, preview=preview,
                                 monitor=RecordingMonitor(mocks), logger=_EngineLog(run))
        pulumi.runtime.set_all_config(config, secret_keys)
        try:
            runpy.run_path(str(REPO / "__main__.py"), run_name="__main__")
        except Exception as exc:
            run.error = exc
        loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
        if run.error is not None:
            return
        root = pulumi.runtime.get_root_resource()
        for name, value in root.outputs.items():
            output = pulumi.Output.from_input(value)
            run.outputs[name] = loop.run_until_complete(output.future())
            if loop.run_until_complete(output.is_secret()):
                run.secret_outputs.add(name)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
