"""Will the model load in its HAMi slice? vLLM's memory budget, estimated before anyone pays.

vLLM (v1 engine, vllm/vllm-openai:v0.33.0 = versions.VLLM_IMAGE; read at vLLM main commits
002f10e0 / f03f9783, the stored source closest to that tag) sizes its memory like this:
- budget = total x `--gpu-memory-utilization` (default 0.92, vllm/config/cache.py CacheConfig),
  total from torch.cuda.mem_get_info (vllm/v1/worker/gpu_worker.py `Worker.init_device`:
  `requested_memory = total_memory * gpu_memory_utilization`). HAMi-core clamps that total to the
  slice; a whole GPU shows CUDA's total, which is below nvidia-smi's memory.total
  (`CUDA_VISIBLE_MIB`).
- At start the free memory must be at least that budget, or vLLM refuses ("Free memory on device
  ... is less than desired GPU memory utilization", same function). Under HAMi the CUDA context
  the process created before that snapshot already counts against the slice, so the context must
  fit in the slice's remaining (1 - utilization) share: the STARTUP check below.
- Inside the budget: the weights, the activation peak of a profiling forward pass over
  `--max-num-batched-tokens` tokens and of the dummy sampler run, non-torch memory the pass adds
  (cuBLAS workspaces, NCCL, attention-backend buffers) and the CUDA graphs unless `--enforce-eager`
  (`Worker.determine_available_memory`: `available_kv_cache_memory = requested_memory -
  non_kv_cache_memory - cudagraph_memory_estimate`, the estimate applied while
  VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS is on, the default since v0.21). Both model runners
  estimate their graphs: the V2 runner (vllm/v1/worker/gpu/model_runner.py, default for dense
  models since v0.25.1) returned 0 from `profile_cudagraph_memory` until vllm PR #53306 (merged
  2026-08, forward-fixed by #53682 / #53955) made it call cudagraph_utils.py
  `profile_cudagraph_memory`; v0.33 has that, so graphs stay inside the budget for either runner.
  The rest is KV cache.
- The KV cache must hold one `--max-model-len` request (vllm/v1/core/kv_cache_utils.py
  `check_enough_kv_cache_memory`: cdiv(max_model_len, block_size) blocks, plus the null block the
  block pool keeps), or vLLM refuses to start. `--max-model-len -1` / `auto` instead fits the
  length to the cache (same module, the auto-fit path), so it only needs one block.

The overheads cannot be known exactly without running the model, so each is a named range (LOW,
HIGH) with its source, calibrated against published startups (tests/test_modelfit_calibration.py).
The KV cache therefore comes as a range: `kv_cache_tokens` (HIGH overheads, the headline vLLM
should at least get) to `kv_cache_tokens_most` (LOW overheads). Verdicts (issue 9): `fits` with the
HIGH overheads, `tight` only with the LOW ones, `no` not even with the LOW ones (weights alone, or
one max-length sequence), `unknown` without model facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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
    128, 310,
    "vLLM's own logs of the profiling run's non-torch increase on CUDA: 0.15-0.30 GiB measured on the "
    "T4/A10G services (issue 21), 0.16 GiB (vllm PR #12126, H100), 0.13 GiB (vllm-ascend PR #8289); LOW stays "
    "under the 0.56 GiB that a published A100 startup left for activations, sampler and non-torch together "
    "(tests/test_modelfit_calibration.py)")
TP_NON_TORCH_MIB = Bound(
    0, 768,
    "added with tensor parallelism: NCCL communicator buffers (and custom all-reduce's, where it runs). A "
    "published TP=2 A100 startup left ~1.5 GiB of non-KV overhead per rank where one GPU left 0.56 GiB "
    "(tests/test_modelfit_calibration.py)")
ACTIVATION_FACTOR = Bound(
    1.0, 2.5,
    "multiplier on the forward pass's largest live tensors per batched token (gate/up and activation outputs "
    "of the MLP, q/k/v and residuals); covers PyTorch allocator rounding and torch.compile buffers. Calibrated "
    "on published startups (tests/test_modelfit_calibration.py): a dense 7B at 2048 batched tokens and 256 "
    "sequences left 0.56 GiB for activations, sampler and non-torch together on an A100")
SAMPLER_COPIES = Bound(
    1, 2,
    "float32-sized copies of the max_num_seqs x vocab logits in the profiling sampler run (gpu_model_runner "
    "_dummy_sampler_run): the logits, and the softmax / top-p sort copy of the PyTorch-native sampler")
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
# plain AWQ kernel dequantizes the layer's weight to float16 and runs a dense matmul. At v0.33 that
# kernel only runs for AWQ checkpoints Marlin cannot take (auto_awq.py AutoAWQConfig.get_quant_method
# falls back to it when marlin_utils.check_marlin_supported is false): 4-bit with a group size in
# MARLIN_GROUP_SIZES, with zero points, runs Marlin on every GPU hami-eks supports (compute 7.5+).
AWQ_DEQUANT_MIN_TOKENS = 256
MARLIN_AWQ_BITS = (4,)  # AutoAWQConfig.TYPE_MAP
MARLIN_GROUP_SIZES = (-1, 32, 64, 128)  # marlin_utils.MARLIN_SUPPORTED_GROUP_SIZES

# What CUDA reports as the device's total (torch.cuda.mem_get_info, which vLLM sizes its budget
# from) is below nvidia-smi's memory.total (catalog.GpuModel.memory_mib): the driver keeps the
# difference. Published torch.cuda.get_device_properties(0).total_memory readings: T4 14930 MiB with
# a 2025 driver (15079-15109 MiB with older ones; the newer figure, the pinned image needs driver
# 580), A10G 22587 MiB, H100 80GB HBM3 81089 MiB (81082-81090), A100-SXM4-40GB 40536 MiB (Paddle's
# get_device_properties docs). Other GPUs: nvidia-smi's figure less the largest gap measured here
# (H100's 470 MiB).
CUDA_VISIBLE_MIB = {"Tesla T4": 14930, "NVIDIA A10G": 22587, "NVIDIA H100 80GB HBM3": 81089,
                    "NVIDIA A100-SXM4-40GB": 40536,
                    # Derived from two published startups of one A100 80GB server at utilization 0.25
                    # and 0.5 (same weights and overheads, KV 5.01 vs 24.83 GiB: 0.25 x total = 19.82 GiB).
                    "NVIDIA A100-SXM4-80GB": 81184}
UNMEASURED_DRIVER_RESERVE_MIB = 470


def cuda_visible_mib(gpu: catalog.GpuModel) -> int:
    """The total a process on the whole GPU sees (and vLLM multiplies by the utilization)."""
    return CUDA_VISIBLE_MIB.get(gpu.name, gpu.memory_mib - UNMEASURED_DRIVER_RESERVE_MIB)


@dataclass(frozen=True)
class ModelFit:
    service: str
    model: str
    verdict: str  # fits | tight | no | unknown
    budget_mib: int
    weights_mib: int | None
    kv_cache_tokens: int | None  # with the HIGH overheads: the safe headline, what vLLM should at least get
    reason: str
    max_model_len: int | None = None
    full_length_sequences: int | None = None  # of --max-num-seqs, with the HIGH overheads
    kv_cache_tokens_most: int | None = None  # with the LOW overheads: the top of the range

    def to_dict(self) -> dict[str, Any]:
        """The `plan --json` "models" entry: `kvCacheTokens` is the headline (HIGH overheads),
        `kvCacheTokensRange` [fewest, most] what vLLM may report between the HIGH and LOW overheads."""
        span = None if self.kv_cache_tokens is None or self.kv_cache_tokens_most is None else \
            [self.kv_cache_tokens, self.kv_cache_tokens_most]
        return {"service": self.service, "model": self.model, "verdict": self.verdict,
                "budgetMiB": self.budget_mib, "weightsMiB": self.weights_mib,
                "kvCacheTokens": self.kv_cache_tokens, "kvCacheTokensRange": span, "reason": self.reason}


@dataclass(frozen=True)
class _Settings:
    """The vLLM settings the estimate needs, resolved with vLLM's defaults."""

    utilization: float
    max_model_len: int
    batched_tokens: int
    max_num_seqs: int
    enforce_eager: bool
    serving_dtype_bytes: int
    kv_dtype_bytes: float
    plain_awq: bool
    tensor_parallel: int
    pipeline_parallel: int
    auto_length: bool


def _dtype_bytes(dtype: str) -> int:
    """Bytes per element of the serving dtype: 16-bit unless float32 is asked for. Under "auto" vLLM
    serves float32 checkpoints in 16 bits too (vllm/config/model.py dtype resolution)."""
    return 4 if dtype in ("float", "float32") else 2


def _resolve(parsed: vllm_args.VllmArgs, granted_mib: int, gpu: catalog.GpuModel, facts: ModelFacts) -> _Settings:
    large = granted_mib >= LARGE_GPU_MIB and "a100" not in gpu.name.lower()
    max_len = vllm_args.int_option(parsed, "--max-model-len")
    auto_length = max_len == vllm_args.AUTO_MAX_MODEL_LEN
    if max_len is None or auto_length:
        max_len = facts.max_position_embeddings
    batched = vllm_args.int_option(parsed, "--max-num-batched-tokens") or DEFAULT_BATCHED_TOKENS[large]
    seqs = vllm_args.int_option(parsed, "--max-num-seqs") or DEFAULT_MAX_NUM_SEQS[large]
    serving = _dtype_bytes(parsed.value("--dtype") or "auto")
    kv_dtype = parsed.value("--kv-cache-dtype") or "auto"
    kv_bytes = vllm_args.KV_CACHE_DTYPE_BYTES.get(kv_dtype) or serving
    tensor_parallel, pipeline_parallel = vllm_args.model_parallel_size(parsed)
    return _Settings(vllm_args.gpu_memory_utilization(parsed), max_len, batched, seqs,
                     parsed.has("--enforce-eager"), serving, kv_bytes, _plain_awq(facts, gpu),
                     tensor_parallel, pipeline_parallel, auto_length)


def _plain_awq(facts: ModelFacts, gpu: catalog.GpuModel) -> bool:
    """Whether the plain (dequantizing) AWQ kernel runs instead of Marlin. `--quantization awq`,
    `awq_marlin` and `marlin` all resolve to auto_awq (vllm_args module docstring), so only the
    checkpoint and the GPU decide."""
    quant = facts.quantization
    if quant is None or quant.method != "awq":
        return False
    capability = tuple(int(p) for p in gpu.compute_capability.split("."))
    marlin = (capability >= vllm_args.MARLIN_MIN_COMPUTE_CAPABILITY and quant.bits in MARLIN_AWQ_BITS
              and quant.group_size in MARLIN_GROUP_SIZES and quant.zero_point is not False)
    return not marlin


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
    tp = settings.tensor_parallel
    q_out = facts.num_attention_heads * facts.head_dim // tp
    kv_out = max(1, facts.num_key_value_heads // tp) * facts.head_dim
    per_token = 3 * facts.intermediate_size // tp + 3 * facts.hidden_size + q_out + 2 * kv_out
    activation = tokens * per_token * settings.serving_dtype_bytes * pick(ACTIVATION_FACTOR)
    rows = min(settings.max_num_seqs, tokens)
    sampler = rows * facts.vocab_size * 4 * pick(SAMPLER_COPIES)
    dequant = 0
    if settings.plain_awq and tokens >= AWQ_DEQUANT_MIN_TOKENS:
        dequant = facts.hidden_size * 2 * facts.intermediate_size * 2 // tp  # merged gate_up weight in float16
    graphs = _capture_sizes(settings) * pick(CUDA_GRAPH_MIB_PER_SIZE)
    non_torch = pick(NON_TORCH_MIB) + (pick(TP_NON_TORCH_MIB) if tp > 1 else 0)
    return (activation + sampler + dequant) / MIB + non_torch + graphs


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
    total = min(granted_mib, cuda_visible_mib(gpu))
    budget = int(total * utilization)
    if facts is None:
        return ModelFit(label, service.model, UNKNOWN, budget, None, None,
                        f"no facts for {service.model} (not recorded and the Hugging Face Hub was not reachable); "
                        f"budget {total} MiB x {utilization:g} = {budget} MiB")
    try:
        settings = _resolve(parsed, total, gpu, facts)
    except ValueError as exc:
        return ModelFit(label, service.model, UNKNOWN, budget, None, None, f"args cannot be read: {exc}")

    # Tensor and pipeline parallelism split one copy of the weights; data parallelism runs whole
    # copies (vllm ParallelConfig.world_size = tp x pp), so it does not divide them.
    split = settings.tensor_parallel * settings.pipeline_parallel
    weights = math.ceil(facts.weights_bytes(settings.serving_dtype_bytes) / split / MIB)
    head = f"budget {total} MiB x {settings.utilization:g} = {budget} MiB, weights {weights} MiB"
    if settings.max_model_len > facts.max_position_embeddings:
        return ModelFit(label, service.model, NO, budget, weights, None,
                        f"--max-model-len {settings.max_model_len} exceeds the model's max_position_embeddings "
                        f"{facts.max_position_embeddings}; vLLM refuses it: lower --max-model-len")

    page = facts.kv_bytes_per_token(settings.kv_dtype_bytes, settings.tensor_parallel,
                                    settings.pipeline_parallel) * KV_BLOCK_TOKENS
    need_blocks = 1 if settings.auto_length else math.ceil(settings.max_model_len / KV_BLOCK_TOKENS)
    results = {}
    for high in (False, True):
        free = (budget - weights - _overhead_mib(settings, facts, high)) * MIB
        results[high] = _kv_tokens(free, page)
    low_tokens, high_tokens = results[False], results[True]
    if settings.auto_length:  # vLLM lowers the length to what the cache holds
        settings = replace(settings, max_model_len=max(min(settings.max_model_len, high_tokens), KV_BLOCK_TOKENS))
    full_blocks = math.ceil(settings.max_model_len / KV_BLOCK_TOKENS)
    concurrent = min(high_tokens // KV_BLOCK_TOKENS // full_blocks, settings.max_num_seqs)
    headroom = total - budget
    low_overhead = round(_overhead_mib(settings, facts, False))

    def most(result: ModelFit) -> ModelFit:
        return replace(result, kv_cache_tokens_most=low_tokens if result.kv_cache_tokens is not None else None)

    if weights > budget:
        return most(ModelFit(label, service.model, NO, budget, weights, 0,
                        f"{head}: the weights alone exceed the budget; raise --gpu-memory-utilization or the "
                        f"slice (gpumem / gpumemPercentage), or use a smaller or quantized model",
                        settings.max_model_len, 0))
    if low_tokens < need_blocks * KV_BLOCK_TOKENS:
        what = "no KV cache at all" if low_tokens == 0 else f"at most {low_tokens} KV-cache tokens"
        return most(ModelFit(label, service.model, NO, budget, weights, high_tokens,
                        f"{head}, at least {low_overhead} MiB other overhead: {what}, less than one "
                        f"--max-model-len {settings.max_model_len} sequence; vLLM refuses to start: lower "
                        f"--max-model-len, raise the slice or --gpu-memory-utilization",
                        settings.max_model_len, 0))
    if headroom < CUDA_CONTEXT_MIB.low:
        return most(ModelFit(label, service.model, NO, budget, weights, high_tokens,
                        f"{head}: the {headroom} MiB of the slice outside the budget cannot hold the CUDA context "
                        f"(>= {CUDA_CONTEXT_MIB.low:g} MiB), so vLLM finds less free memory than it wants and refuses "
                        f"to start; lower --gpu-memory-utilization", settings.max_model_len, concurrent))

    # The headline (HIGH overheads) first; the range runs to what the LOW overheads would leave.
    kv_range = f"KV cache {high_tokens} tokens (range {high_tokens}-{low_tokens})" if high_tokens != low_tokens \
        else f"KV cache {high_tokens} tokens"
    sequences = f"{concurrent} of {settings.max_num_seqs} --max-num-seqs sequences of {settings.max_model_len} tokens"
    if high_tokens < need_blocks * KV_BLOCK_TOKENS:
        return most(ModelFit(label, service.model, TIGHT, budget, weights, high_tokens,
                        f"{head}, {kv_range}: one {settings.max_model_len}-token sequence fits only if the overhead "
                        f"stays low; lower --max-model-len or raise the slice for margin",
                        settings.max_model_len, concurrent))
    if headroom < CUDA_CONTEXT_MIB.high:
        return most(ModelFit(label, service.model, TIGHT, budget, weights, high_tokens,
                        f"{head}, {kv_range}, {sequences}; but only {headroom} MiB of the slice is left outside the "
                        f"budget for the CUDA context (up to {CUDA_CONTEXT_MIB.high:g} MiB): lower "
                        f"--gpu-memory-utilization for margin", settings.max_model_len, concurrent))
    return most(ModelFit(label, service.model, FITS, budget, weights, high_tokens, f"{head}, {kv_range}, {sequences}",
                    settings.max_model_len, concurrent))
