"""vLLM args: parsed as `vllm serve` parses them, refused where hami-eks or HAMi cannot serve them."""

from __future__ import annotations

import pytest

from hamieks import catalog
from hamieks.config import vllm_args
from hamieks.config.settings import ServiceSettings
from hamieks.modelfit import facts

DEMO_T4_ARGS = ("--dtype", "auto", "--gpu-memory-utilization", "0.65", "--max-model-len", "2048", "--max-num-seqs", "3")
DEMO_AWQ_ARGS = ("--quantization", "awq", "--dtype", "auto", "--gpu-memory-utilization", "0.65",
                 "--max-model-len", "2048", "--max-num-seqs", "4")


def service(args: tuple[str, ...] = (), model: str = "Qwen/Qwen2.5-1.5B-Instruct") -> ServiceSettings:
    return ServiceSettings(name="svc", model=model, gpu_type="T4", node_group="t4", replicas=1, gpumem=7500,
                           gpumem_percentage=None, args=args, image="vllm/vllm-openai:v0.33.0")


def problems(args: tuple[str, ...] = (), model: str = "Qwen/Qwen2.5-1.5B-Instruct",
             gpu: catalog.GpuModel = catalog.T4, gpus: int = 1) -> list[tuple[str, str]]:
    return vllm_args.problems(service(args, model), gpu, gpus)


# ---- parsing --------------------------------------------------------------------------------------

def test_parse_forms_vllm_accepts() -> None:
    parsed = vllm_args.parse(["--max_model_len=4096", "--enforce-eager", "--dtype", "half", "-tp", "2",
                              "--served-model-name", "a", "b", "--max-num-seqs", "8"])
    assert parsed.value("--max-model-len") == "4096"
    assert parsed.has("--enforce-eager") and parsed.options["--enforce-eager"] == ()
    assert parsed.value("--dtype") == "half"  # the flag before it did not swallow it
    assert parsed.value("--tensor-parallel-size") == "2"
    assert parsed.options["--served-model-name"] == ("a", "b")
    assert parsed.value("--max-num-seqs") == "8"
    assert parsed.positionals == () and parsed.duplicates == ()


@pytest.mark.parametrize(("text", "value"), [("2048", 2048), ("32k", 32000), ("32K", 32768), ("1M", 1048576)])
def test_human_readable_sizes(text: str, value: int) -> None:
    assert vllm_args.parse_size(text) == value


def test_demo_args_have_no_problems() -> None:
    assert problems(DEMO_T4_ARGS) == []
    assert problems(DEMO_AWQ_ARGS, "solidrust/Mistral-7B-Instruct-v0.3-AWQ", catalog.A10G) == []


# ---- what the program owns --------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (("--port", "9000"), "--port is set by hami-eks"),
    (("--port=9000",), "--port is set by hami-eks"),
    (("--host", "127.0.0.1"), "--host is set by hami-eks"),
    (("--model", "other/model"), "remove --model"),
    (("--uds", "/tmp/vllm.sock"), "--uds"),
    (("other/model",), "is not an option"),
    (("--max-model-len", "2048", "--max_model_len=4096"), "--max-model-len is given more than once"),
    (("--served-model-name", "chat"), "--served-model-name Qwen/Qwen2.5-1.5B-Instruct chat"),
    (("--max-model-len", "lots"), "--max-model-len: 'lots' is not a number"),
    (("--gpu-memory-utilization", "65"), "--gpu-memory-utilization must be a fraction"),
    (("--dtype", "fp16"), "--dtype must be one of"),
    (("--kv-cache-dtype", "int4"), "--kv-cache-dtype must be one of"),
])
def test_refused_args_name_the_fix(args: tuple[str, ...], needle: str) -> None:
    found = problems(args)
    assert [field for field, _ in found] == ["args"], found
    assert needle in found[0][1]


def test_served_model_name_that_keeps_the_model_is_fine() -> None:
    svc = service(("--served-model-name", "Qwen/Qwen2.5-1.5B-Instruct", "qwen-small"))
    assert vllm_args.problems(svc, catalog.T4, 1) == []
    assert vllm_args.served_model_names(svc) == ("Qwen/Qwen2.5-1.5B-Instruct", "qwen-small")
    assert vllm_args.served_model_names(service()) == ("Qwen/Qwen2.5-1.5B-Instruct",)


@pytest.mark.parametrize("model", ["", "  ", "Qwen2.5 1.5B", "no-org", "org/na me", "org//name", "a/b--c"])
def test_invalid_models_are_refused(model: str) -> None:
    found = problems(model=model)
    assert found and found[0][0] == "model"
    assert "Qwen/Qwen2.5-1.5B-Instruct" in found[0][1]  # the message shows a valid example


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-1.5B-Instruct", "solidrust/Mistral-7B-Instruct-v0.3-AWQ",
                                   "/models/my-finetune"])
def test_valid_models_pass(model: str) -> None:
    assert problems(model=model) == []


# ---- GPU architecture and parallelism under HAMi ---------------------------------------------------

def test_v100_is_refused_without_pointing_to_a_cu129_image() -> None:
    found = problems(gpu=catalog.V100_32)
    assert [field for field, _ in found] == ["gpuType"]
    message = found[0][1]
    assert "compute 7.0" in message and "no current vLLM image" in message
    assert "use the -cu129" not in message  # the old, wrong advice


def test_parallelism_beyond_the_pods_gpus_is_refused() -> None:
    found = problems(("--tensor-parallel-size", "2", "--disable-custom-all-reduce"), gpus=1)
    assert len(found) == 1 and "the pod gets 1" in found[0][1]
    found = problems(("-tp", "2", "-pp", "2", "--disable-custom-all-reduce"), gpus=2)
    assert len(found) == 1 and "= 4 GPUs" in found[0][1]


def test_tensor_parallelism_needs_disable_custom_all_reduce_under_hami() -> None:
    found = problems(("--tensor-parallel-size", "2"), gpus=2)
    assert len(found) == 1 and "--disable-custom-all-reduce" in found[0][1]
    assert problems(("--tensor-parallel-size", "2", "--disable-custom-all-reduce"), gpus=2) == []


def test_bf16_needs_ampere_but_marlin_runs_from_turing() -> None:
    assert "--dtype half" in problems(("--dtype", "bfloat16"))[0][1]
    # vLLM's marlin_utils.query_marlin_supported_quant_types supports compute 7.5: the T4 runs Marlin.
    for quantization in ("awq_marlin", "gptq_marlin", "marlin", "awq", "gptq"):
        assert problems(("--quantization", quantization)) == [], quantization
    assert problems(("--dtype", "bfloat16", "--quantization", "awq_marlin"), gpu=catalog.A10G) == []
    # Below 7.5 (a V100) Marlin has no kernels; the message says so beside the image's own refusal.
    on_volta = [message for _, message in problems(("--quantization", "awq_marlin"), gpu=catalog.V100_32)]
    assert any("needs compute 7.5+ (Marlin kernels)" in message for message in on_volta)


# ---- warnings ---------------------------------------------------------------------------------------

def test_quantization_awq_is_an_alias_that_runs_marlin_so_no_slow_kernel_warning() -> None:
    # auto_awq.py AutoAWQConfig.override_quantization_method takes "awq" like "awq_marlin".
    for gpu in (catalog.T4, catalog.A10G, catalog.L4):
        for quantization in ("awq", "gptq"):
            svc = service(("--quantization", quantization, "--dtype", "half"), "solidrust/Mistral-7B-Instruct-v0.3-AWQ")
            assert vllm_args.warnings(svc, gpu) == [], (gpu.short, quantization)


def test_every_kv_cache_dtype_of_the_pinned_vllm_is_accepted() -> None:
    # vllm/config/cache.py CacheDType at the pinned version.
    pinned = ("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla", "nvfp4_ds_mla",
              "turboquant_k8v4", "turboquant_4bit_nc", "turboquant_k3v4_nc", "turboquant_3bit_nc",
              "int4_per_token_head", "int8_per_token_head", "fp8_per_token_head", "nvfp4", "nvfp4_4over6")
    assert set(vllm_args.KV_CACHE_DTYPE_BYTES) == set(pinned)
    for dtype in pinned:
        assert problems(("--kv-cache-dtype", dtype)) == [], dtype
    assert vllm_args.KV_CACHE_DTYPE_BYTES["int8_per_token_head"] == 1
    assert vllm_args.KV_CACHE_DTYPE_BYTES["nvfp4"] == 0.5 + 1 / 16  # 4-bit values, one fp8 scale per 16


def test_max_model_len_auto_and_minus_one_are_accepted() -> None:
    for value in ("auto", "-1", "AUTO"):
        assert problems(("--max-model-len", value)) == [], value
    assert vllm_args.int_option(vllm_args.parse(["--max-model-len", "auto"]), "--max-model-len") == -1
    assert problems(("--max-model-len", "-2"))[0][1].startswith("--max-model-len")


def test_default_gpu_memory_utilization_is_the_pinned_vllms() -> None:
    # vllm/config/cache.py CacheConfig.gpu_memory_utilization default at v0.33.
    assert vllm_args.gpu_memory_utilization(vllm_args.parse([])) == 0.92


def test_bf16_model_with_dtype_auto_on_t4_warns() -> None:
    qwen = facts.recorded("Qwen/Qwen2.5-1.5B-Instruct")
    assert qwen is not None and qwen.torch_dtype == "bfloat16"
    (warning,) = vllm_args.warnings(service(DEMO_T4_ARGS), catalog.T4, qwen)
    assert "--dtype half" in warning
    assert vllm_args.warnings(service(DEMO_T4_ARGS), catalog.A10G, qwen) == []
    assert vllm_args.warnings(service(("--dtype", "half")), catalog.T4, qwen) == []
    assert vllm_args.warnings(service(DEMO_T4_ARGS), catalog.T4, None) == []  # unknown dtype: no guess
