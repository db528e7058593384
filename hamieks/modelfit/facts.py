"""What the memory estimate needs to know about a model, from its config.json and safetensors.

A `ModelFacts` holds the attention shape (for the KV cache), the bytes of every stored tensor
grouped by safetensors dtype (for the weights) and where the numbers came from. Facts come from
the table recorded in this package (`recorded.json`, the shipped stacks' models and popular
serving models) or from the Hugging Face Hub (`hub.py`).

Weights are counted as stored: packed int32 AWQ/GPTQ tensors (qweight, qzeros, g_idx) keep
their stored bytes, because vLLM loads them as they are; floating-point tensors take the serving
dtype's bytes, because vLLM casts them on load (vllm/model_executor/model_loader: weights are
created in `model_config.dtype`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

# safetensors dtype names -> bytes per element (safetensors format spec, Dtype).
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
}
# Floating-point tensors vLLM casts to the serving dtype; every other dtype is loaded as stored.
CAST_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
TORCH_TO_SAFETENSORS = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}

# Decoder architectures whose tensor shapes `estimate_parameter_bytes` knows (transformers'
# modeling_<type>.py): q/k/v/o projections, a gated MLP, RMSNorms, embeddings.
_PER_LAYER_NORMS = {"llama": 2, "mistral": 2, "qwen2": 2, "qwen3": 2, "gemma": 2, "gemma2": 4, "gemma3_text": 4}
_QK_NORM = frozenset({"qwen3", "gemma3_text"})  # per-head RMSNorm on q and k (head_dim each)
_QKV_BIAS = frozenset({"qwen2"})  # Qwen2 always has q/k/v biases


@dataclass(frozen=True)
class Quantization:
    """A checkpoint's quantization_config, as vLLM reads it."""

    method: str  # "awq", "gptq", ...
    bits: int | None = None
    group_size: int | None = None
    zero_point: bool | None = None


@dataclass(frozen=True)
class ModelFacts:
    repo: str
    model_type: str
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    torch_dtype: str  # "bfloat16" | "float16" | "float32"
    max_position_embeddings: int
    parameter_bytes: Mapping[str, int]  # safetensors dtype -> bytes stored
    source: str
    date: str  # when the facts were read (YYYY-MM-DD)
    quantization: Quantization | None = None
    tie_word_embeddings: bool = False
    notes: tuple[str, ...] = field(default=())
    # Multi-head latent attention (DeepSeek-V2/V3, config.json kv_lora_rank): the cache holds one
    # compressed latent per token and layer instead of K and V per head.
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int = 0

    @property
    def is_mla(self) -> bool:
        return bool(self.kv_lora_rank)

    def kv_bytes_per_token(self, kv_dtype_bytes: float, tensor_parallel: int = 1, pipeline_parallel: int = 1) -> int:
        """KV-cache bytes one token takes on one GPU (vllm/v1/kv_cache_interface.py page sizes).

        Standard attention (`FullAttentionSpec`): K and V, 2 x layers x kv_heads x head_dim x bytes,
        with each tensor-parallel rank holding max(1, kv_heads // tp) heads (vllm/config/model.py
        `ModelConfig.get_num_kv_heads`: KV heads are replicated when there are fewer than ranks).
        MLA (`MLAAttentionSpec`, built by vllm/model_executor/layers/attention/mla_attention.py
        `get_kv_cache_spec` with num_kv_heads=1 and head_size = kv_lora_rank + qk_rope_head_dim): one
        latent "head" per token and layer, the same on every tensor-parallel rank.
        Pipeline parallelism gives each rank ceil(layers / pp) layers.
        """
        layers = -(-self.num_hidden_layers // max(pipeline_parallel, 1))
        if self.kv_lora_rank:
            return int(layers * (self.kv_lora_rank + self.qk_rope_head_dim) * kv_dtype_bytes)
        heads = max(1, self.num_key_value_heads // max(tensor_parallel, 1))
        return int(2 * layers * heads * self.head_dim * kv_dtype_bytes)

    def weights_bytes(self, serving_dtype_bytes: int) -> int:
        """GPU bytes of the weights once loaded: float tensors in the serving dtype, the rest as stored."""
        total = 0
        for dtype, stored in self.parameter_bytes.items():
            if dtype in CAST_DTYPES:
                total += stored // SAFETENSORS_DTYPE_BYTES[dtype] * serving_dtype_bytes
            else:
                total += stored
        return total

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["parameter_bytes"] = dict(self.parameter_bytes)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelFacts:
        values = dict(data)
        quant = values.get("quantization")
        values["quantization"] = Quantization(**quant) if quant else None
        values["parameter_bytes"] = dict(values["parameter_bytes"])
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """Multimodal checkpoints keep the language model's fields under text_config."""
    text = config.get("text_config")
    return text if isinstance(text, Mapping) and "num_hidden_layers" in text else config


def _quantization(config: Mapping[str, Any]) -> Quantization | None:
    quant = config.get("quantization_config")
    if not isinstance(quant, Mapping) or not quant.get("quant_method"):
        return None
    bits = quant.get("bits", quant.get("w_bit"))
    group = quant.get("group_size", quant.get("q_group_size"))
    zero = quant.get("zero_point")
    return Quantization(str(quant["quant_method"]).lower(), int(bits) if bits is not None else None,
                        int(group) if group is not None else None, bool(zero) if zero is not None else None)


def from_config(repo: str, config: Mapping[str, Any], parameter_bytes: Mapping[str, int], *,
                source: str, date: str, notes: tuple[str, ...] = ()) -> ModelFacts:
    """Facts from a config.json mapping; KeyError/ValueError when the attention shape is missing."""
    text = _text_config(config)
    heads = int(text["num_attention_heads"])
    hidden = int(text["hidden_size"])
    # transformers >= 4.56 writes "dtype"; older configs "torch_dtype"; the text model's wins.
    dtype = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype")
                or config.get("dtype") or "float32")
    return ModelFacts(
        repo=repo,
        model_type=str(text.get("model_type") or config.get("model_type") or ""),
        num_hidden_layers=int(text["num_hidden_layers"]),
        num_attention_heads=heads,
        num_key_value_heads=int(text.get("num_key_value_heads") or heads),
        head_dim=int(text.get("head_dim") or hidden // heads),
        hidden_size=hidden,
        intermediate_size=int(text.get("intermediate_size") or 4 * hidden),
        vocab_size=int(text.get("vocab_size") or config.get("vocab_size") or 0),
        torch_dtype=dtype,
        max_position_embeddings=int(text.get("max_position_embeddings") or config["max_position_embeddings"]),
        parameter_bytes=dict(parameter_bytes),
        source=source,
        date=date,
        quantization=_quantization(config),
        tie_word_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
        notes=notes,
        kv_lora_rank=int(text["kv_lora_rank"]) if text.get("kv_lora_rank") else None,
        qk_rope_head_dim=int(text.get("qk_rope_head_dim") or 0),
    )


def estimate_parameter_bytes(config: Mapping[str, Any]) -> dict[str, int] | None:
    """Stored bytes per safetensors dtype from the architecture's tensor shapes, or None when the
    architecture is not one this function knows (then only safetensors metadata can tell).

    Dense decoders of the llama family: embeddings, per layer q/k/v/o and gate/up/down projections
    plus norms, a final norm, and lm_head unless tied. AWQ/GPTQ linear layers are stored packed:
    qweight and qzeros in int32 (bits/8 bytes per weight), scales in float16 per group, and for
    GPTQ a g_idx of one int32 per input row (AutoAWQ / AutoGPTQ checkpoint layout).
    """
    text = _text_config(config)
    model_type = str(text.get("model_type") or config.get("model_type") or "")
    if model_type not in _PER_LAYER_NORMS:
        return None
    hidden = int(text["hidden_size"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    inter = int(text["intermediate_size"])
    layers = int(text["num_hidden_layers"])
    vocab = int(text["vocab_size"])
    tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    q_out, kv_out = heads * head_dim, kv_heads * head_dim
    linears = [(hidden, q_out), (hidden, kv_out), (hidden, kv_out), (q_out, hidden),
               (hidden, inter), (hidden, inter), (inter, hidden)]  # (in, out) per layer

    float_params = vocab * hidden * (1 if tied else 2) + hidden  # embeddings (+ lm_head) + final norm
    per_layer_float = _PER_LAYER_NORMS[model_type] * hidden
    if model_type in _QK_NORM:
        per_layer_float += 2 * head_dim
    if model_type in _QKV_BIAS or text.get("attention_bias"):
        per_layer_float += q_out + 2 * kv_out + (hidden if text.get("attention_bias") else 0)
    float_params += layers * per_layer_float

    quant = _quantization(config)
    dtype = TORCH_TO_SAFETENSORS.get(str(text.get("torch_dtype") or text.get("dtype") or "bfloat16"), "BF16")
    if quant is None or quant.method not in ("awq", "gptq") or not quant.bits or not quant.group_size:
        linear_params = layers * sum(i * o for i, o in linears)
        return {dtype: (float_params + linear_params) * SAFETENSORS_DTYPE_BYTES[dtype]}
    int32_bytes = 0
    scale_params = 0
    for fan_in, fan_out in linears:
        groups = fan_in // quant.group_size if quant.group_size > 0 else 1
        int32_bytes += fan_in * fan_out * quant.bits // 8  # qweight
        int32_bytes += groups * fan_out * quant.bits // 8  # qzeros
        scale_params += groups * fan_out  # scales
        if quant.method == "gptq":
            int32_bytes += fan_in * 4  # g_idx
    # Quantized checkpoints keep scales and the unquantized tensors in float16 (their torch_dtype).
    return {"F16" if dtype == "F32" else dtype: (float_params + layers * scale_params) * 2, "I32": layers * int32_bytes}


@cache
def _recorded_table() -> dict[str, ModelFacts]:
    raw = json.loads(resources.files("hamieks.modelfit").joinpath("recorded.json").read_text(encoding="utf-8"))
    table: dict[str, ModelFacts] = {}
    for repo, entry in raw["models"].items():
        table[repo] = from_config(repo, entry["config"], entry["parameterBytes"], source=entry["source"],
                                  date=entry["date"], notes=tuple(entry.get("notes", ())))
    return table


def recorded(repo: str) -> ModelFacts | None:
    """The facts recorded in the repository for this model id, or None."""
    return _recorded_table().get(repo)


def recorded_models() -> tuple[str, ...]:
    return tuple(_recorded_table())
