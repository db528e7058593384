"""Will the model load in its HAMi slice? vLLM's memory budget, estimated before anyone pays.

vLLM (v1 engine, the release line of versions.VLLM_IMAGE) sizes its memory like this:
- budget = total x `--gpu-memory-utilization` (default 0.9), total from torch.cuda.mem_get_info,
  which HAMi-core clamps to the slice (vllm/v1/worker/gpu_worker.py `Worker.init_device`:
  `requested_memory = total_memory * gpu_memory_utilization`).
- At start the free memory must be at least that budget, or vLLM refuses ("Free memory on device
  ... is less than desired GPU memory utilization", same function). Under HAMi the CUDA context
  the process created before that snapshot already counts against the slice, so the context must
  fit in the slice's remaining (1 - utilization) share: the STARTUP check below.
- Inside the budget: the weights, the activation peak of a profiling forward pass over
  `--max-num-batched-tokens` tokens, non-torch memory the pass adds (cuBLAS workspaces, NCCL,
  attention-backend buffers) and, since v0.21 (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 by
  default), the CUDA graphs unless `--enforce-eager` (`Worker.determine_available_memory`,
  vllm/utils/mem_utils.py `memory_profiling`: non_kv_cache_memory = weights + torch peak increase
  + non-torch increase). The rest is KV cache.
- The KV cache must hold one `--max-model-len` request (vllm/v1/core/kv_cache_utils.py
  `check_enough_kv_cache_memory`: cdiv(max_model_len, block_size) blocks, plus the null block the
  block pool keeps), or vLLM refuses to start.

The overheads cannot be known exactly without running the model, so each is a named range (LOW,
HIGH) with its source. Verdicts (issue 9): `fits` with the HIGH overheads, `tight` only with the
LOW ones, `no` not even with the LOW ones (weights alone, or one max-length sequence), `unknown`
without model facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hamieks.config import vllm_args
from hamieks.modelfit.facts import ModelFacts

if TYPE_CHECKING:
    from hamieks import catalog

MIB = 1024 * 1024

FITS, TIGHT, NO, UNKNOWN = "fits", "tight", "no", "unknown"

# vllm/config/cache.py CacheConfig.block_size: 16 tokens per KV block on CUDA.
KV_BLOCK_TOKENS = 16


@dataclass(frozen=True)
class Bound:
    """An overhead's plausible range in MiB (or a factor), and where it comes from."""

    low: float
    high: float
    source: str


CUDA_CONTEXT_MIB = Bound(
    300, 600,
    "nvidia-smi per-process memory of a process that only initialised CUDA through PyTorch with lazy module "
    "loading (CUDA 12/13): ~300 MiB on T4/A10G; HIGH adds cuBLAS/cuBLASLt handles and the distributed init vLLM "
    "does before its memory snapshot (gpu_worker.Worker.init_device)")
NON_TORCH_MIB = Bound(
    64, 256,
    "vLLM's own logs of the profiling run's non-torch increase: 0.16 GiB (vllm PR #12126, H100), 0.13 GiB "
    "(vllm-ascend PR #8289); LOW is a cuBLAS workspace")
ACTIVATION_FACTOR = Bound(
    1.0, 2.0,
    "multiplier on the forward pass's largest live tensors per batched token (gate/up and activation outputs "
    "of the MLP, q/k/v and residuals); HIGH covers PyTorch allocator rounding and torch.compile buffers")
SAMPLER_COPIES = Bound(
    1, 3,
    "float32 logits of max_num_seqs rows x vocab in the profiling sampler run (gpu_model_runner "
    "_dummy_sampler_run); HIGH: the softmax / top-p sort copies")
CUDA_GRAPH_MIB_PER_SIZE = Bound(
    4, 24,
    "per captured batch size, piecewise and full decode graphs (FULL_AND_PIECEWISE): vLLM logs 'Estimated CUDA "
    "graph memory' 0.09 GiB for 5 captures, 0.36 GiB for 16 and 1.62 GiB for 86 (vllm PR #39559, gpustack/runner "
    "PR #251, club-3090 #434): ~19-23 MiB each on large models")

# vllm/engine/arg_utils.py EngineArgs.get_batch_defaults, OpenAI API server context: GPUs that show
# >= 70 GiB (and are not an A100) get 8192 batched tokens and 1024 sequences, the rest 2048 / 256.
# Under HAMi the memory the process sees is the slice.
LARGE_GPU_MIB = 70 * 1024
DEFAULT_BATCHED_TOKENS = (2048, 8192)  # (other GPUs, large GPUs)
DEFAULT_MAX_NUM_SEQS = (256, 1024)
# vllm/config/vllm.py VllmConfig._set_cudagraph_sizes: capture up to min(2 x max_num_seqs, 512,
# max_num_batched_tokens), sizes [1, 2, 4] + every 8 up to 256 + every 16 above.
MAX_CUDAGRAPH_CAPTURE = 512
# vllm/model_executor/layers/quantization/awq.py AWQLinearMethod.apply: from 256 tokens on, the
# plain AWQ kernel dequantizes the layer's weight to float16 and runs a dense matmul.
AWQ_DEQUANT_MIN_TOKENS = 256


@dataclass(frozen=True)
class ModelFit:
    service: str
    model: str
    verdict: str  # fits | tight | no | unknown
    budget_mib: int
    weights_mib: int | None
    kv_cache_tokens: int | None  # with the HIGH overheads (what vLLM would at least get)
    reason: str
    max_model_len: int | None = None
    full_length_sequences: int | None = None  # of --max-num-seqs, with the HIGH overheads

    def to_dict(self) -> dict[str, Any]:
        """The `plan --json` "models" entry."""
        return {"service": self.service, "model": self.model, "verdict": self.verdict,
                "budgetMiB": self.budget_mib, "weightsMiB": self.weights_mib,
                "kvCacheTokens": self.kv_cache_tokens, "reason": self.reason}


@dataclass(frozen=True)
class _Settings:
    """The vLLM settings the estimate needs, resolved with vLLM's defaults."""

    utilization: float
    max_model_len: int
    batched_tokens: int
    max_num_seqs: int
    enforce_eager: bool
    serving_dtype_bytes: int
    kv_dtype_bytes: int
    plain_awq: bool
    world: int


def _dtype_bytes(dtype: str) -> int:
    """Bytes per element of the serving dtype: 16-bit unless float32 is asked for. Under "auto" vLLM
    serves float32 checkpoints in 16 bits too (vllm/config/model.py dtype resolution)."""
    return 4 if dtype in ("float", "float32") else 2


def _resolve(parsed: vllm_args.VllmArgs, granted_mib: int, gpu: catalog.GpuModel, facts: ModelFacts) -> _Settings:
    large = granted_mib >= LARGE_GPU_MIB and "a100" not in gpu.name.lower()
    max_len = vllm_args.int_option(parsed, "--max-model-len")
    if max_len is None or max_len == -1:
        max_len = facts.max_position_embeddings
    batched = vllm_args.int_option(parsed, "--max-num-batched-tokens") or DEFAULT_BATCHED_TOKENS[large]
    seqs = vllm_args.int_option(parsed, "--max-num-seqs") or DEFAULT_MAX_NUM_SEQS[large]
    serving = _dtype_bytes(parsed.value("--dtype") or "auto")
    kv_dtype = parsed.value("--kv-cache-dtype") or "auto"
    kv_bytes = vllm_args.KV_CACHE_DTYPE_BYTES.get(kv_dtype) or serving
    quant = parsed.value("--quantization")
    capability = tuple(int(p) for p in gpu.compute_capability.split("."))
    awq = facts.quantization is not None and facts.quantization.method == "awq"
    # The plain AWQ kernel runs when forced, or when Marlin cannot (compute < 8.0).
    plain_awq = awq and (quant == "awq" or capability < vllm_args.MARLIN_MIN_COMPUTE_CAPABILITY)
    return _Settings(vllm_args.gpu_memory_utilization(parsed), max_len, batched, seqs,
                     parsed.has("--enforce-eager"), serving, kv_bytes, plain_awq, vllm_args.parallel_size(parsed))


def _capture_sizes(settings: _Settings) -> int:
    if settings.enforce_eager:
        return 0
    largest = min(2 * settings.max_num_seqs, MAX_CUDAGRAPH_CAPTURE, settings.batched_tokens)
    sizes = [s for s in [1, 2, 4, *range(8, 256, 8), *range(256, MAX_CUDAGRAPH_CAPTURE + 1, 16)] if s <= largest]
    return len(sizes)


def _overhead_mib(settings: _Settings, facts: ModelFacts, high: bool) -> float:
    """Everything inside the budget that is not weights or KV cache, with LOW or HIGH bounds."""

    def pick(bound: Bound) -> float:
        return bound.high if high else bound.low

    tokens = settings.batched_tokens
    q_out = facts.num_attention_heads * facts.head_dim
    kv_out = facts.num_key_value_heads * facts.head_dim
    per_token = 3 * facts.intermediate_size + 3 * facts.hidden_size + q_out + 2 * kv_out
    activation = tokens * per_token * settings.serving_dtype_bytes * pick(ACTIVATION_FACTOR)
    rows = min(settings.max_num_seqs, tokens)
    sampler = rows * facts.vocab_size * 4 * pick(SAMPLER_COPIES)
    dequant = 0
    if settings.plain_awq and tokens >= AWQ_DEQUANT_MIN_TOKENS:
        dequant = facts.hidden_size * 2 * facts.intermediate_size * 2  # merged gate_up weight in float16
    graphs = _capture_sizes(settings) * pick(CUDA_GRAPH_MIB_PER_SIZE)
    return (activation + sampler + dequant) / MIB + pick(NON_TORCH_MIB) + graphs


def _kv_tokens(kv_bytes_free: float, page_bytes: int) -> int:
    """Usable KV tokens: whole blocks, minus the block pool's null block."""
    blocks = math.floor(kv_bytes_free / page_bytes) if kv_bytes_free > 0 else 0
    return max(blocks - 1, 0) * KV_BLOCK_TOKENS


def fit(service: vllm_args.ServiceLike, granted_mib: int, gpu: catalog.GpuModel,
        facts: ModelFacts | None, name: str | None = None) -> ModelFit:
    """Estimate whether `service` loads in a slice of `granted_mib` (hami.granted_memory_mib) on `gpu`.

    `name` defaults to the service's `name` attribute (ServiceSettings has one).
    """
    label = name if name is not None else str(getattr(service, "name", ""))
    parsed = vllm_args.parse(service.args)
    try:
        utilization = vllm_args.gpu_memory_utilization(parsed)
    except ValueError:
        utilization = vllm_args.DEFAULT_GPU_MEMORY_UTILIZATION
    budget = int(granted_mib * utilization)
    if facts is None:
        return ModelFit(label, service.model, UNKNOWN, budget, None, None,
                        f"no facts for {service.model} (not recorded and the Hugging Face Hub was not reachable); "
                        f"budget {granted_mib} MiB x {utilization:g} = {budget} MiB")
    try:
        settings = _resolve(parsed, granted_mib, gpu, facts)
    except ValueError as exc:
        return ModelFit(label, service.model, UNKNOWN, budget, None, None, f"args cannot be read: {exc}")

    world = max(settings.world, 1)
    weights = math.ceil(facts.weights_bytes(settings.serving_dtype_bytes) / world / MIB)
    head = f"budget {granted_mib} MiB x {settings.utilization:g} = {budget} MiB, weights {weights} MiB"
    if settings.max_model_len > facts.max_position_embeddings:
        return ModelFit(label, service.model, NO, budget, weights, None,
                        f"--max-model-len {settings.max_model_len} exceeds the model's max_position_embeddings "
                        f"{facts.max_position_embeddings}; vLLM refuses it: lower --max-model-len")

    page = facts.kv_bytes_per_token(settings.kv_dtype_bytes) * KV_BLOCK_TOKENS // world
    need_blocks = math.ceil(settings.max_model_len / KV_BLOCK_TOKENS)
    results = {}
    for high in (False, True):
        free = (budget - weights - _overhead_mib(settings, facts, high)) * MIB
        results[high] = _kv_tokens(free, page)
    low_tokens, high_tokens = results[False], results[True]
    concurrent = min(high_tokens // KV_BLOCK_TOKENS // need_blocks, settings.max_num_seqs)
    headroom = granted_mib - budget
    low_overhead = round(_overhead_mib(settings, facts, False))

    if weights > budget:
        return ModelFit(label, service.model, NO, budget, weights, 0,
                        f"{head}: the weights alone exceed the budget; raise --gpu-memory-utilization or the "
                        f"slice (gpumem / gpumemPercentage), or use a smaller or quantized model",
                        settings.max_model_len, 0)
    if low_tokens < need_blocks * KV_BLOCK_TOKENS:
        what = "no KV cache at all" if low_tokens == 0 else f"at most {low_tokens} KV-cache tokens"
        return ModelFit(label, service.model, NO, budget, weights, high_tokens,
                        f"{head}, at least {low_overhead} MiB other overhead: {what}, less than one "
                        f"--max-model-len {settings.max_model_len} sequence; vLLM refuses to start: lower "
                        f"--max-model-len, raise the slice or --gpu-memory-utilization",
                        settings.max_model_len, 0)
    if headroom < CUDA_CONTEXT_MIB.low:
        return ModelFit(label, service.model, NO, budget, weights, high_tokens,
                        f"{head}: the {headroom} MiB of the slice outside the budget cannot hold the CUDA context "
                        f"(>= {CUDA_CONTEXT_MIB.low:g} MiB), so vLLM finds less free memory than it wants and refuses "
                        f"to start; lower --gpu-memory-utilization", settings.max_model_len, concurrent)

    kv_range = f"KV cache {high_tokens}-{low_tokens} tokens" if high_tokens != low_tokens else \
        f"KV cache {high_tokens} tokens"
    sequences = f"{concurrent} of {settings.max_num_seqs} --max-num-seqs sequences of {settings.max_model_len} tokens"
    if high_tokens < need_blocks * KV_BLOCK_TOKENS:
        return ModelFit(label, service.model, TIGHT, budget, weights, high_tokens,
                        f"{head}, {kv_range}: one {settings.max_model_len}-token sequence fits only if the overhead "
                        f"stays low; lower --max-model-len or raise the slice for margin",
                        settings.max_model_len, concurrent)
    if headroom < CUDA_CONTEXT_MIB.high:
        return ModelFit(label, service.model, TIGHT, budget, weights, high_tokens,
                        f"{head}, {kv_range}, {sequences}; but only {headroom} MiB of the slice is left outside the "
                        f"budget for the CUDA context (up to {CUDA_CONTEXT_MIB.high:g} MiB): lower "
                        f"--gpu-memory-utilization for margin", settings.max_model_len, concurrent)
    return ModelFit(label, service.model, FITS, budget, weights, high_tokens, f"{head}, {kv_range}, {sequences}",
                    settings.max_model_len, concurrent)
