"""A service's vLLM `args`, read the way `vllm serve <model> <args...>` reads them, and checked
against what hami-eks owns and what vLLM can run under HAMi.

Sources (vLLM, the release line of versions.VLLM_IMAGE):
- vllm/engine/arg_utils.py `EngineArgs.add_cli_args` and vllm/entrypoints/openai/cli_args.py:
  option names, the short aliases (-tp, -pp, -dp, -q), `--served-model-name` (nargs="+"),
  `--max-model-len` accepting human-readable sizes ("32k" = 32000, "32K" = 32768).
- vllm/utils FlexibleArgumentParser: `--max_model_len` is the same option as `--max-model-len`
  (underscores are normalised to dashes) and `--opt=value` equals `--opt value`.
- argparse semantics: an option given twice silently keeps the LAST value; an extra positional
  after the model is "unrecognized arguments" and the server exits.
- vllm/model_executor/layers/quantization/auto_awq.py `AutoAWQConfig.override_quantization_method`
  (and auto_gptq.py `AutoGPTQConfig`, the same): an AWQ (GPTQ) checkpoint given no `--quantization`,
  or `awq`, `awq_marlin`, `marlin` (`gptq`, `gptq_marlin`, `marlin`), loads as `auto_awq`
  (`auto_gptq`), whose `get_quant_method` picks the Marlin kernel on CUDA when
  utils/marlin_utils.py `check_marlin_supported` says so: `query_marlin_supported_quant_types` returns
  nothing below compute 7.5, so Marlin runs from the T4 up (`AutoAWQConfig.get_min_capability` 75).
  `--quantization awq` is therefore an alias, not the old slow kernel (vLLM main at commit
  2211d887, the stored source closest to v0.33.0).
- vllm/v1/worker/gpu_worker.py `_check_if_gpu_supports_dtype` (platform
  `check_if_supports_dtype`): bfloat16 needs compute capability >= 8.0.
- HAMi examples/nvidia/vllm_cross_vgpu.yaml: tensor parallelism across HAMi vGPUs needs
  `--disable-custom-all-reduce` (CUDA IPC does not work between HAMi-virtualised devices).

The functions take any object with the service fields they read (`ServiceLike`), so settings.py
can call them without an import cycle.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hamieks import versions

if TYPE_CHECKING:
    from hamieks import catalog


class ServiceLike(Protocol):
    """The ServiceSettings fields the checks read."""

    @property
    def model(self) -> str: ...

    @property
    def args(self) -> tuple[str, ...]: ...

    @property
    def trust_remote_code(self) -> bool: ...


class DtypeFacts(Protocol):
    """What the warnings read of a model's facts (hamieks.modelfit.facts.ModelFacts): config
    parsing stays below model fit, which imports it."""

    @property
    def torch_dtype(self) -> str: ...


# vLLM's own defaults for the options the checks read: vllm/config/cache.py CacheConfig
# `gpu_memory_utilization: float = Field(default=0.92, ...)` (0.9 before), EngineArgs takes it from there.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.92
DEFAULT_TENSOR_PARALLEL_SIZE = 1

# The port and host the probes, the Service and the NetworkPolicy are built for
# (workloads.VLLM_PORT is vllm serve's default 8000; the default host 0.0.0.0 is what the kubelet
# and the Service reach). `--uds` replaces TCP with a unix socket: nothing could reach the server.
_OWNED_BY_PROGRAM = {
    "--port": "the probes, the Service and the NetworkPolicy use vLLM's default port 8000 "
              "(hamieks.kube.workloads.VLLM_PORT); remove --port",
    "--host": "the server must listen on all interfaces (vLLM's default) for the kubelet's probes and "
              "the Service to reach it; remove --host",
    "--uds": "a unix socket replaces the TCP port the probes and the Service use; remove --uds",
    "--model": "the model is the service's `model` field (it becomes `vllm serve <model>`); remove "
               "--model from args and set `model` instead",
    # Args are plain text in the stack file, the Deployment and `kubectl describe`; the key reaches
    # every server from a Secret as VLLM_API_KEY, which vLLM reads like --api-key (vllm/envs.py).
    "--api-key": "args are stored in plain text; remove it (its value is not shown here) and run "
                 "`pulumi config set --secret vllmApiKey <key>`: every server then requires it",
}
# Options whose value is a secret: never repeated in a message.
SECRET_OPTIONS = frozenset({"--api-key"})
# Runs Python code from the model's repository inside the server: allowed only where the service
# says so with `trustRemoteCode: true`.
TRUST_REMOTE_CODE = "--trust-remote-code"

# Flags that never take a value: the parser must not swallow the next token as their value.
BOOLEAN_FLAGS = frozenset({
    "--enforce-eager", "--disable-custom-all-reduce", "--trust-remote-code", "--enable-prefix-caching",
    "--no-enable-prefix-caching", "--enable-chunked-prefill", "--no-enable-chunked-prefill",
    "--disable-log-requests", "--enable-log-requests", "--disable-log-stats", "--enable-auto-tool-choice",
    "--disable-sliding-window", "--skip-tokenizer-init", "--enable-lora", "--disable-frontend-multiprocessing",
    "--enable-sleep-mode", "--disable-fastapi-docs", "--enable-prompt-tokens-details", "--async-scheduling",
    "--no-async-scheduling", "--enable-expert-parallel", "--disable-uvicorn-access-log",
    "--enable-server-load-tracking", "--enable-force-include-usage", "--enable-request-id-headers", "--headless",
})
# Options that take one or more values (argparse nargs="+"): every following non-option token.
MULTI_VALUE_OPTIONS = frozenset({"--served-model-name", "--middleware", "--allowed-origins"})
# Short aliases vLLM registers (arg_utils.py add_argument("--tensor-parallel-size", "-tp", ...)).
ALIASES = {
    "-tp": "--tensor-parallel-size", "-pp": "--pipeline-parallel-size", "-dp": "--data-parallel-size",
    "-q": "--quantization", "-O": "--compilation-config",
}

DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
# vllm/config/cache.py `CacheDType` (every value it lists) -> bytes per cached element. "auto"
# follows the model dtype. vllm/utils/torch_utils.py STR_DTYPE_TO_TORCH_DTYPE stores the fp8 and
# per-token-head variants in one-byte tensors (int8/uint8/float8); the 4-bit ones pack two values a
# byte, NVFP4 adding one fp8 scale per 16 values (0.5 + 1/16); turboquant_k8v4 is 8-bit K + 4-bit V,
# k3v4 3-bit K + 4-bit V. Per-token-head scales (one float32 per token and head) are left out: under
# 4% of a 128-wide head.
KV_CACHE_DTYPE_BYTES: dict[str, float | None] = {
    "auto": None, "float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1,
    "fp8_ds_mla": 1, "nvfp4_ds_mla": 0.5625, "turboquant_k8v4": 0.75, "turboquant_4bit_nc": 0.5,
    "turboquant_k3v4_nc": 0.4375, "turboquant_3bit_nc": 0.375, "int4_per_token_head": 0.5,
    "int8_per_token_head": 1, "fp8_per_token_head": 1, "nvfp4": 0.5625, "nvfp4_4over6": 0.5625,
}

# The oldest GPU architecture the current vLLM images carry kernels for. vLLM's CMake builds
# compute 7.5+ for CUDA >= 12.8, and torch 2.11 dropped Volta from its cu128/cu129 wheels
# (pytorch/pytorch#172352), so neither the plain (CUDA 13) tag nor the -cu129 variant of
# versions.VLLM_IMAGE runs on a V100 (compute 7.0). See ../shared/docs/DESIGN.md §3 (vLLM).
MIN_COMPUTE_CAPABILITY = (7, 5)
# Marlin kernels (awq_marlin, gptq_marlin, marlin, and what awq / gptq resolve to): marlin_utils
# `query_marlin_supported_quant_types` supports compute 7.5+ (AutoAWQConfig.get_min_capability 75).
MARLIN_MIN_COMPUTE_CAPABILITY = (7, 5)
BF16_MIN_COMPUTE_CAPABILITY = (8, 0)

# A Hugging Face repo id: "org/name", letters, digits, '-', '_', '.', at most 96 characters
# (huggingface_hub.utils.validate_repo_id), no '--' or '..'.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class VllmArgs:
    """The args as vLLM's parser sees them: the last value of every option wins."""

    options: dict[str, tuple[str, ...]]  # canonical "--name" -> values (() for a flag)
    positionals: tuple[str, ...]
    duplicates: tuple[str, ...]  # options given more than once, in order of first repetition

    def has(self, name: str) -> bool:
        return name in self.options

    def value(self, name: str) -> str | None:
        values = self.options.get(name)
        return values[-1] if values else None


def canonical(option: str) -> str:
    """`--max_model_len` -> `--max-model-len`, `-tp` -> `--tensor-parallel-size`."""
    if option in ALIASES:
        return ALIASES[option]
    if option.startswith("--"):
        return "--" + option[2:].replace("_", "-")
    return option


def _is_option(token: str) -> bool:
    # A negative number ("-1" for --max-model-len) is a value, not an option.
    return token.startswith("-") and not re.fullmatch(r"-[0-9.]+", token)


def parse(args: Sequence[str]) -> VllmArgs:
    """Split `args` into options and positionals as vLLM's argparse-based parser would."""
    options: dict[str, tuple[str, ...]] = {}
    positionals: list[str] = []
    duplicates: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not _is_option(token):
            positionals.append(token)
            continue
        name, has_inline, inline = token.partition("=")
        name = canonical(name)
        values: tuple[str, ...]
        if has_inline:
            values = (inline,)
        elif name in BOOLEAN_FLAGS:
            values = ()
        elif name in MULTI_VALUE_OPTIONS:
            taken: list[str] = []
            while i < len(args) and not _is_option(args[i]):
                taken.append(args[i])
                i += 1
            values = tuple(taken)
        elif i < len(args) and not _is_option(args[i]):
            values = (args[i],)
            i += 1
        else:
            values = ()  # an unknown flag, or a value-taking option missing its value
        if name in options and name not in duplicates:
            duplicates.append(name)
        options[name] = values
    return VllmArgs(options, tuple(positionals), tuple(duplicates))


# ---- typed values ---------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """vLLM's human-readable integers (arg_utils.human_readable_int): "2048", "32k" (x1000),
    "32K" (x1024), "1m" / "1M"; raise ValueError otherwise."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a number of tokens (e.g. 2048 or 32k)")
    number, suffix = match.groups()
    scale = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "K": 1024, "M": 1024**2, "G": 1024**3}[suffix]
    value = float(number) * scale
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number of tokens")
    return int(value)


AUTO_MAX_MODEL_LEN = -1


def int_option(parsed: VllmArgs, name: str) -> int | None:
    """The option's value as an int (None when absent); ValueError when it is not one."""
    raw = parsed.value(name)
    if raw is None:
        return None
    if name == "--max-model-len" and raw.strip().lower() in ("auto", "-1"):
        # vllm/engine/arg_utils.py: `--max-model-len -1` or `auto` fits the length to the KV cache.
        return AUTO_MAX_MODEL_LEN
    return parse_size(raw)


def gpu_memory_utilization(parsed: VllmArgs) -> float:
    raw = parsed.value("--gpu-memory-utilization")
    return DEFAULT_GPU_MEMORY_UTILIZATION if raw is None else float(raw)


def served_model_names(service: ServiceLike) -> tuple[str, ...]:
    """The names vLLM answers to (its /v1/models lists the first): `model` unless overridden.

    verify and clients use `service.model`; problems() guarantees it is among these names.
    """
    names = parse(service.args).options.get("--served-model-name")
    return names if names else (service.model,)


def _capability(gpu: catalog.GpuModel) -> tuple[int, int]:
    major, _, minor = gpu.compute_capability.partition(".")
    return int(major), int(minor or 0)


# ---- checks ---------------------------------------------------------------------------------------

def model_problem(model: str) -> str | None:
    """Why `model` cannot be served, or None: a Hugging Face id `org/name` or an absolute path."""
    if not model.strip():
        return ("is empty; set a Hugging Face model id such as Qwen/Qwen2.5-1.5B-Instruct (or an absolute "
                "path inside the image)")
    if model != model.strip() or any(c.isspace() for c in model):
        return f"{model!r} contains whitespace; use a Hugging Face id 'org/name' such as Qwen/Qwen2.5-1.5B-Instruct"
    if model.startswith("/"):
        return None
    if (not _REPO_ID.fullmatch(model) or len(model) > 96 or "--" in model or ".." in model
            or model.endswith((".", "-"))):
        return (f"{model!r} is not a Hugging Face model id ('org/name', letters, digits, '-', '_', '.') or an "
                f"absolute path; e.g. Qwen/Qwen2.5-1.5B-Instruct")
    return None


def problems(service: ServiceLike, gpu: catalog.GpuModel, gpus_per_pod: int) -> list[tuple[str, str]]:
    """Configuration errors as (field, message-with-fix); field is "model", "args" or "gpuType".

    The caller prefixes the service's key (e.g. "hami-eks:services[name]") and collects them with
    the other settings problems. `gpus_per_pod` is what the pod's `nvidia.com/gpu` limit gives it.
    """
    found: list[tuple[str, str]] = []
    model_error = model_problem(service.model)
    if model_error:
        found.append(("model", model_error))

    parsed = parse(service.args)
    for extra in parsed.positionals:
        found.append(("args", f"{extra!r} is not an option (args follow `vllm serve <model>`, which takes "
                              f"no second positional and would exit); give options as '--name value'"))
    for name, why in _OWNED_BY_PROGRAM.items():
        if parsed.has(name):
            found.append(("args", f"{name} is set by hami-eks: {why}"))
    for name in parsed.duplicates:
        last = "" if name in SECRET_OPTIONS else f" ({parsed.value(name)!r})"
        found.append(("args", f"{name} is given more than once; vLLM would silently use the last value{last}: "
                              f"keep one"))
    if parsed.has(TRUST_REMOTE_CODE) and not service.trust_remote_code:
        found.append(("args", f"{TRUST_REMOTE_CODE} runs Python code from {service.model!r}'s repository inside "
                              f"the server (with the HF token and the node's network): set `trustRemoteCode: true` "
                              f"on this service if you have reviewed that code, or remove the flag"))

    names = parsed.options.get("--served-model-name")
    if names is not None and service.model not in names:
        shown = " ".join(names) or "(no name)"
        found.append(("args", f"--served-model-name {shown} drops {service.model!r}, the name clients, the "
                              f"README's curl and `verify` send as \"model\"; list it too: "
                              f"--served-model-name {service.model} {shown}".rstrip()))

    found.extend(_value_problems(parsed))
    found.extend(_gpu_problems(parsed, gpu, gpus_per_pod))
    return found


def _value_problems(parsed: VllmArgs) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in ("--max-model-len", "--max-num-seqs", "--max-num-batched-tokens",
                 "--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size"):
        if not parsed.has(name):
            continue
        try:
            value = int_option(parsed, name)
        except ValueError as exc:
            found.append(("args", f"{name}: {exc}"))
            continue
        if value is None:
            found.append(("args", f"{name} needs a value, e.g. {name} 2048"))
        elif value < 1 and not (name == "--max-model-len" and value == -1):
            found.append(("args", f"{name} must be at least 1, got {value}"))
    if parsed.has("--gpu-memory-utilization"):
        raw = parsed.value("--gpu-memory-utilization")
        try:
            utilization = float(raw) if raw is not None else None
        except ValueError:
            utilization = None
        if utilization is None or not 0 < utilization <= 1:
            found.append(("args", f"--gpu-memory-utilization must be a fraction in (0, 1] of the GPU memory "
                                  f"the pod sees (its HAMi slice), got {raw!r}; e.g. 0.9"))
    dtype = parsed.value("--dtype")
    if parsed.has("--dtype") and dtype not in DTYPES:
        found.append(("args", f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}"))
    kv_dtype = parsed.value("--kv-cache-dtype")
    if parsed.has("--kv-cache-dtype") and kv_dtype not in KV_CACHE_DTYPE_BYTES:
        found.append(("args", f"--kv-cache-dtype must be one of {', '.join(KV_CACHE_DTYPE_BYTES)}, got {kv_dtype!r}"))
    return found


def model_parallel_size(parsed: VllmArgs) -> tuple[int, int]:
    """(tensor, pipeline) parallel sizes: what splits the weights and the KV cache of one model copy
    (vllm ParallelConfig.world_size = tp x pp; data parallelism runs whole copies)."""
    sizes = []
    for name in ("--tensor-parallel-size", "--pipeline-parallel-size"):
        try:
            sizes.append(max(int_option(parsed, name) or 1, 1))
        except ValueError:  # reported by _value_problems
            sizes.append(1)
    return sizes[0], sizes[1]


def parallel_size(parsed: VllmArgs) -> int:
    """GPUs one server uses: tensor x pipeline x data parallel (vllm ParallelConfig.world_size * dp)."""
    size = 1
    for name in ("--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size"):
        with contextlib.suppress(ValueError):  # reported by _value_problems
            size *= int_option(parsed, name) or 1
    return size


def _gpu_problems(parsed: VllmArgs, gpu: catalog.GpuModel, gpus_per_pod: int) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    capability = _capability(gpu)
    if capability < MIN_COMPUTE_CAPABILITY:
        found.append(("gpuType", f"{gpu.short} (compute {gpu.compute_capability}) is in no current vLLM image: "
                                 f"{versions.VLLM_IMAGE} and its -cu129 variant are built for compute "
                                 f"{'.'.join(map(str, MIN_COMPUTE_CAPABILITY))}+ (vLLM's CUDA >= 12.8 build and "
                                 f"torch 2.11 dropped Volta, pytorch/pytorch#172352); serve it on a T4 (g4dn), "
                                 f"A10G (g5), L4 (g6) or L40S (g6e) node group"))
    world = parallel_size(parsed)
    if world > gpus_per_pod:
        found.append(("args", f"--tensor-parallel-size x --pipeline-parallel-size x --data-parallel-size = {world} "
                              f"GPUs, but the pod gets {gpus_per_pod} (nvidia.com/gpu: {gpus_per_pod}); use 1 for "
                              f"each, or a larger slice of one GPU (gpumem / gpumemPercentage) instead"))
    try:
        tensor_parallel = int_option(parsed, "--tensor-parallel-size") or 1
    except ValueError:
        tensor_parallel = 1
    if tensor_parallel > 1 and not parsed.has("--disable-custom-all-reduce"):
        found.append(("args", "tensor parallelism under HAMi needs --disable-custom-all-reduce (custom all-reduce "
                              "uses CUDA IPC, which fails between HAMi vGPUs; HAMi examples/nvidia/"
                              "vllm_cross_vgpu.yaml): add it to args"))
    quantization = parsed.value("--quantization")
    if quantization in ("awq_marlin", "gptq_marlin", "marlin") and capability < MARLIN_MIN_COMPUTE_CAPABILITY:
        found.append(("args", f"--quantization {quantization} needs compute "
                              f"{'.'.join(map(str, MARLIN_MIN_COMPUTE_CAPABILITY))}+ (Marlin kernels), but "
                              f"{gpu.short} is {gpu.compute_capability}; leave --quantization out on this GPU"))
    if parsed.value("--dtype") == "bfloat16" and capability < BF16_MIN_COMPUTE_CAPABILITY:
        found.append(("args", f"--dtype bfloat16 needs compute 8.0+ and {gpu.short} is {gpu.compute_capability}: "
                              f"vLLM refuses to start; use --dtype half"))
    return found


def warnings(service: ServiceLike, gpu: catalog.GpuModel, facts: DtypeFacts | None = None) -> list[str]:
    """Settings that run, but slower or less precisely than they could; one sentence each with the fix.

    `facts` (the model's config facts, when known) enables the dtype check.
    """
    found: list[str] = []
    parsed = parse(service.args)
    capability = _capability(gpu)
    # No warning for `--quantization awq` / `gptq`: at the pinned vLLM they resolve to auto_awq /
    # auto_gptq, which run Marlin wherever it can (module docstring).
    dtype = parsed.value("--dtype") or "auto"
    if (facts is not None and dtype == "auto" and facts.torch_dtype == "bfloat16"
            and capability < BF16_MIN_COMPUTE_CAPABILITY):
        found.append(f"{service.model} is a bfloat16 model and {gpu.short} (compute {gpu.compute_capability}) has "
                     f"no bfloat16: with --dtype auto vLLM casts it to float16 itself; say so with --dtype half")
    return found
