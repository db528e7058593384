"""Model fit: the budget vLLM gets in a HAMi slice, what the weights and KV cache need, and the
model facts behind them (recorded, cached, or read from a fake Hugging Face Hub on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from hamieks import catalog, hami
from hamieks.config import stackfiles, vllm_args
from hamieks.config.settings import ServiceSettings, load_settings
from hamieks.modelfit import budget, facts, hub
from tests import fake_hf

DEMO_AWQ_ARGS = ("--quantization", "awq", "--dtype", "auto", "--gpu-memory-utilization", "0.65",
                 "--max-model-len", "2048", "--max-num-seqs", "4")
A10G_45 = hami.granted_memory_mib(None, 45, catalog.A10G.memory_mib)


def service(model: str, args: tuple[str, ...]) -> ServiceSettings:
    return ServiceSettings(name="svc", model=model, gpu_type="x", node_group="x", replicas=1, gpumem=None,
                           gpumem_percentage=45, args=args, image="vllm/vllm-openai:v0.33.0")


def known(repo: str) -> facts.ModelFacts:
    found = facts.recorded(repo)
    assert found is not None, repo
    return found


# ---- the demo, and the failures the issue names ---------------------------------------------------

def test_demo_servers_load_in_their_slices() -> None:
    settings = load_settings(stackfiles.load_stack_config(stackfiles.project_dir_default(), "demo"))
    groups = {g.name: g for g in settings.node_groups}
    budgets = {}
    for svc in settings.services:
        gpu = groups[svc.node_group].gpu
        granted = hami.granted_memory_mib(svc.gpumem, svc.gpumem_percentage, gpu.memory_mib)
        result = budget.fit(svc, granted, gpu, hub.lookup(svc.model, use_network=False))
        assert result.verdict in (budget.FITS, budget.TIGHT), result
        assert result.weights_mib is not None and 0 < result.weights_mib < result.budget_mib
        # At least one 2048-token sequence with the LOW overheads (else the verdict would be `no`).
        assert result.kv_cache_tokens_most is not None and result.kv_cache_tokens_most >= 2048
        budgets[gpu.short] = result.budget_mib
    # Issue 9: 0.65 x 7500 on the T4, 0.65 x 10362 (45% of an A10G as HAMi sees it) on the A10G.
    assert budgets == {"T4": 4875, "A10G": 6735}


def test_weights_that_exceed_the_budget_are_no() -> None:
    svc = service("Qwen/Qwen2.5-1.5B-Instruct", ("--dtype", "auto", "--gpu-memory-utilization", "0.65",
                                                  "--max-model-len", "2048", "--max-num-seqs", "3"))
    result = budget.fit(svc, 4000, catalog.T4, known(svc.model))
    assert result.verdict == budget.NO
    assert result.budget_mib == 2600 and result.weights_mib is not None and result.weights_mib > 2600
    assert "weights alone exceed the budget" in result.reason


def test_a_kv_cache_that_cannot_hold_one_sequence_is_no() -> None:
    args = (*DEMO_AWQ_ARGS[:6], "--max-model-len", "32768", *DEMO_AWQ_ARGS[8:])
    model = "solidrust/Mistral-7B-Instruct-v0.3-AWQ"
    result = budget.fit(service(model, args), A10G_45, catalog.A10G, known(model))
    assert result.verdict == budget.NO
    assert result.weights_mib is not None and result.weights_mib < result.budget_mib  # not the weights...
    assert "less than one --max-model-len 32768 sequence" in result.reason  # ...the KV cache
    # 2048 tokens in the same slice fit: the length is what breaks it.
    assert budget.fit(service(model, DEMO_AWQ_ARGS), A10G_45, catalog.A10G, known(model)).verdict == budget.FITS


def test_max_model_len_defaults_to_the_models_context() -> None:
    model = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    result = budget.fit(service(model, ("--gpu-memory-utilization", "0.65")), A10G_45, catalog.A10G, known(model))
    assert result.max_model_len == known(model).max_position_embeddings == 32768
    assert result.verdict == budget.NO


def test_unknown_model_offline_is_unknown_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    found = hub.lookup("nobody-here/no-such-model", cache_dir=tmp_path)
    assert found is None and time.monotonic() - start < 1
    result = budget.fit(service("nobody-here/no-such-model", ()), A10G_45, catalog.A10G, found)
    assert result.to_dict() == {"service": "svc", "model": "nobody-here/no-such-model", "verdict": "unknown",
                                "budgetMiB": int(A10G_45 * 0.92), "weightsMiB": None, "kvCacheTokens": None,
                                "kvCacheTokensRange": None,
                                "reason": result.reason}


def test_unreachable_hub_is_unknown_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    start = time.monotonic()
    assert hub.lookup("nobody-here/no-such-model", cache_dir=tmp_path) is None
    assert time.monotonic() - start < 5


# ---- the estimate's moving parts -------------------------------------------------------------------

def test_kv_cache_dtype_fp8_doubles_the_tokens() -> None:
    model = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    base = budget.fit(service(model, DEMO_AWQ_ARGS), 12000, catalog.A10G, known(model))
    fp8 = budget.fit(service(model, (*DEMO_AWQ_ARGS, "--kv-cache-dtype", "fp8")), 12000, catalog.A10G, known(model))
    assert base.kv_cache_tokens and fp8.kv_cache_tokens
    assert 1.9 < fp8.kv_cache_tokens / base.kv_cache_tokens < 2.1


def test_enforce_eager_frees_the_cuda_graph_memory() -> None:
    model = "Qwen/Qwen2.5-1.5B-Instruct"
    graphs = budget.fit(service(model, ()), 7500, catalog.T4, known(model))
    eager = budget.fit(service(model, ("--enforce-eager",)), 7500, catalog.T4, known(model))
    assert graphs.kv_cache_tokens is not None and eager.kv_cache_tokens is not None
    assert eager.kv_cache_tokens > graphs.kv_cache_tokens


def test_a_budget_that_leaves_no_room_for_the_cuda_context_is_no() -> None:
    model = "Qwen/Qwen2.5-0.5B-Instruct"
    args = ("--gpu-memory-utilization", "0.98", "--max-model-len", "2048")
    result = budget.fit(service(model, args), 4000, catalog.T4, known(model))
    assert result.verdict == budget.NO and "CUDA context" in result.reason


def test_max_model_len_beyond_the_model_is_no() -> None:
    model = "Qwen/Qwen2.5-1.5B-Instruct"
    result = budget.fit(service(model, ("--max-model-len", "64k")), 15360, catalog.T4, known(model))
    assert result.verdict == budget.NO and "max_position_embeddings" in result.reason


# ---- the range, the TIGHT verdict and the HIGH/LOW split ---------------------------------------------

QWEN_15B = "Qwen/Qwen2.5-1.5B-Instruct"
T4_SLICE_ARGS = ("--dtype", "half", "--gpu-memory-utilization", "0.65", "--max-num-seqs", "3",
                 "--max-num-batched-tokens", "1024")


def t4_fit(max_model_len: int) -> budget.ModelFit:
    # A 5900 MiB slice: the range stays below the model's 32768 positions.
    return budget.fit(service(QWEN_15B, (*T4_SLICE_ARGS, "--max-model-len", str(max_model_len))), 5900, catalog.T4,
                      known(QWEN_15B))


def test_a_length_between_the_high_and_low_estimates_is_tight_and_only_that() -> None:
    probe = t4_fit(2048)
    fewest, most = probe.to_dict()["kvCacheTokensRange"]
    assert probe.kv_cache_tokens == fewest < most < 32768  # the headline is the HIGH-overhead end
    # Fits with the HIGH overheads: fits. Only with the LOW ones: tight. Not even then: no.
    assert t4_fit(fewest).verdict == budget.FITS
    middle = (fewest + most) // 2 // 16 * 16
    tight = t4_fit(middle)
    assert tight.verdict == budget.TIGHT and "only if the overhead stays low" in tight.reason
    assert t4_fit(most + 32).verdict == budget.NO


def test_the_range_spans_the_measured_spread_of_the_overheads() -> None:
    # Issue 21: vLLM measured 1.4-1.7 GiB of activation + sampler peak on a 7B at 2048 batched tokens,
    # and 0.15-0.30 GiB non-torch: the range is at least that wide, and the non-torch bounds hold them.
    model = known("Qwen/Qwen2.5-7B-Instruct-AWQ")
    args = service(model.repo, DEMO_AWQ_ARGS)
    low = budget.fit(args, A10G_45, catalog.A10G, model)
    assert low.kv_cache_tokens is not None and low.kv_cache_tokens_most is not None
    page = model.kv_bytes_per_token(2) * 16
    span_mib = (low.kv_cache_tokens_most - low.kv_cache_tokens) // 16 * page / 2**20
    # HIGH - LOW overhead spans at least the measured spread of the peak (1.7 - 1.4 GiB) and non-torch.
    assert span_mib >= (1.7 - 1.4) * 1024 + (0.30 - 0.15) * 1024
    assert budget.NON_TORCH_MIB.low <= 0.15 * 1024 and budget.NON_TORCH_MIB.high >= 0.30 * 1024


# ---- parallelism: weights by TP x PP, KV heads per rank ------------------------------------------------

def test_tensor_parallel_halves_per_rank_weights_and_kv_heads() -> None:
    qwen14 = known("Qwen/Qwen2.5-14B-Instruct")
    # config.json: 48 layers, 8 KV heads of 128; bf16 on an A10G, so stored bytes = served bytes.
    total = sum(qwen14.parameter_bytes.values())
    one = budget.fit(service(qwen14.repo, ("--max-model-len", "4096")), 45000, catalog.L40S, qwen14)
    two = budget.fit(service(qwen14.repo, ("-tp", "2", "--disable-custom-all-reduce", "--max-model-len", "4096")),
                     45000, catalog.L40S, qwen14)
    assert one.weights_mib == -(-total // 2**20)
    assert two.weights_mib == -(-total // 2 // 2**20)
    assert qwen14.kv_bytes_per_token(2) == 2 * 48 * 8 * 128 * 2
    assert qwen14.kv_bytes_per_token(2, tensor_parallel=2) == 2 * 48 * 4 * 128 * 2
    assert qwen14.kv_bytes_per_token(2, tensor_parallel=16) == 2 * 48 * 1 * 128 * 2  # replicated, never 0
    assert qwen14.kv_bytes_per_token(2, pipeline_parallel=2) == 2 * 24 * 8 * 128 * 2
    # Each rank holds half the weights and half the KV heads, so more tokens fit per rank.
    assert one.kv_cache_tokens is not None and two.kv_cache_tokens is not None
    assert two.kv_cache_tokens > 2 * one.kv_cache_tokens


def test_data_parallel_does_not_split_the_weights_but_pipeline_does() -> None:
    qwen14 = known("Qwen/Qwen2.5-14B-Instruct")
    total_mib = -(-sum(qwen14.parameter_bytes.values()) // 2**20)
    dp = budget.fit(service(qwen14.repo, ("-dp", "2", "--max-model-len", "4096")), 45000, catalog.L40S, qwen14)
    pp = budget.fit(service(qwen14.repo, ("-pp", "2", "--max-model-len", "4096")), 45000, catalog.L40S, qwen14)
    assert dp.weights_mib == total_mib
    assert pp.weights_mib is not None and abs(pp.weights_mib - total_mib / 2) <= 1


# ---- AWQ: Marlin from compute 7.5, the plain kernel's dequant buffer only without it ---------------------

@pytest.mark.parametrize("gpu", [catalog.T4, catalog.A10G, catalog.L4], ids=lambda g: g.short)
def test_awq_runs_marlin_on_every_supported_gpu_and_only_plain_awq_pays_the_dequant(gpu: catalog.GpuModel) -> None:
    marlin = known("Qwen/Qwen2.5-7B-Instruct-AWQ")  # 4-bit, group 128, zero points: Marlin can take it
    plain = dataclasses.replace(marlin, quantization=facts.Quantization("awq", 4, 256, True))  # group 256: no
    args = ("--dtype", "half", "--max-model-len", "2048", "--max-num-seqs", "4")
    results = {}
    for name, model in (("marlin", marlin), ("plain", plain)):
        for quantization in ((), ("--quantization", "awq"), ("--quantization", "awq_marlin")):
            results[name, quantization] = budget.fit(service(model.repo, (*args, *quantization)), 12000, gpu, model)
    # `--quantization awq` is an alias at v0.33: the same estimate with or without it.
    for name in ("marlin", "plain"):
        assert len({results[name, q].kv_cache_tokens for q in ((), ("--quantization", "awq"),
                                                                 ("--quantization", "awq_marlin"))}) == 1
    # The plain kernel dequantizes gate_up to float16 (hidden x 2 x intermediate x 2 bytes): that much less KV.
    dequant_mib = marlin.hidden_size * 2 * marlin.intermediate_size * 2 / 2**20
    gap_tokens = results["marlin", ()].kv_cache_tokens - results["plain", ()].kv_cache_tokens  # type: ignore[operator]
    page_mib = marlin.kv_bytes_per_token(2) * 16 / 2**20
    assert abs(gap_tokens / 16 * page_mib - dequant_mib) <= page_mib


# ---- what the GPU shows, auto length, KV dtypes ---------------------------------------------------------

def test_a_whole_t4_gives_vllm_cudas_total_not_nvidia_smis() -> None:
    # 14930 MiB: torch.cuda.get_device_properties(0).total_memory on a T4 (published reading) vs
    # nvidia-smi's 15360 (catalog). A slice below that is what HAMi reports, unchanged.
    whole = budget.fit(service(QWEN_15B, ("--max-model-len", "2048")), catalog.T4.memory_mib, catalog.T4,
                       known(QWEN_15B))
    assert whole.budget_mib == int(14930 * 0.92)
    assert budget.fit(service(QWEN_15B, ()), 7500, catalog.T4, known(QWEN_15B)).budget_mib == int(7500 * 0.92)


@pytest.mark.parametrize("auto", ["auto", "-1"])
def test_auto_max_model_len_fits_the_length_to_the_cache_instead_of_refusing(auto: str) -> None:
    model = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    full = budget.fit(service(model, ("--gpu-memory-utilization", "0.65")), A10G_45, catalog.A10G, known(model))
    assert full.verdict == budget.NO  # the model's 32768 tokens do not fit...
    fitted = budget.fit(service(model, ("--gpu-memory-utilization", "0.65", "--max-model-len", auto)), A10G_45,
                        catalog.A10G, known(model))
    assert fitted.verdict in (budget.FITS, budget.TIGHT), fitted.reason  # ...so vLLM picks a shorter length
    assert fitted.max_model_len is not None and fitted.max_model_len < 32768


def test_quantized_kv_dtypes_scale_the_tokens_by_their_bytes() -> None:
    model = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    tokens = {}
    for dtype in ("auto", "int8_per_token_head", "nvfp4"):
        result = budget.fit(service(model, (*DEMO_AWQ_ARGS, "--kv-cache-dtype", dtype)), 12000, catalog.L4, known(model))
        assert result.kv_cache_tokens
        tokens[dtype] = result.kv_cache_tokens
    assert 1.9 < tokens["int8_per_token_head"] / tokens["auto"] < 2.1
    assert 3.4 < tokens["nvfp4"] / tokens["auto"] < 3.7  # 2 bytes / (0.5 + 1/16)


# ---- recorded facts ---------------------------------------------------------------------------------

RECORDED = json.loads((Path(facts.__file__).parent / "recorded.json").read_text())["models"]


@pytest.mark.parametrize("repo", sorted(RECORDED))
def test_recorded_entries_are_consistent_and_sourced(repo: str) -> None:
    entry = RECORDED[repo]
    assert entry["source"] and entry["date"]
    # The stored bytes agree with the recorded config's shapes and with the published parameter count.
    assert facts.estimate_parameter_bytes(entry["config"]) == entry["parameterBytes"]
    if "publishedParameters" in entry:
        assert sum(entry["parameterBytes"].values()) == 2 * entry["publishedParameters"]
    found = known(repo)
    assert found.kv_bytes_per_token(2) > 0 and found.max_position_embeddings >= 8192


def test_shipped_stacks_models_are_recorded() -> None:
    for stack in ("demo", "lean"):
        settings = load_settings(stackfiles.load_stack_config(stackfiles.project_dir_default(), stack))
        for svc in settings.services:
            assert facts.recorded(svc.model) is not None, (stack, svc.model)
    # The AWQ checkpoints are stored packed: int32 weights plus float16 scales and embeddings.
    assert set(known("Qwen/Qwen2.5-7B-Instruct-AWQ").parameter_bytes) == {"F16", "I32"}


# ---- the Hub, faked on 127.0.0.1 ----------------------------------------------------------------------

TINY_CONFIG = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
               "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
TINY_TENSORS = {"model.embed_tokens.weight": ("BF16", [1000, 64]), "lm_head.weight": ("BF16", [1000, 64]),
                "model.layers.0.mlp.up_proj.weight": ("BF16", [128, 64]), "model.norm.weight": ("F32", [64])}
TINY_BYTES = {"BF16": 2 * (1000 * 64 * 2 + 128 * 64), "F32": 4 * 64}


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    hub_ = fake_hf.FakeHub()
    hub_.add("test-org/tiny", {"config.json": TINY_CONFIG,
                               "model.safetensors": fake_hf.safetensors_file(TINY_TENSORS)})
    shard1 = dict(list(TINY_TENSORS.items())[:2])
    shard2 = dict(list(TINY_TENSORS.items())[2:])
    hub_.add("test-org/sharded", {
        "config.json": TINY_CONFIG,
        "model.safetensors.index.json": {"metadata": {"total_size": 1},
                                         "weight_map": {**{k: "model-1.safetensors" for k in shard1},
                                                        **{k: "model-2.safetensors" for k in shard2}}},
        "model-1.safetensors": fake_hf.safetensors_file(shard1),
        "model-2.safetensors": fake_hf.safetensors_file(shard2)})
    hub_.add("test-org/gated", {"config.json": TINY_CONFIG,
                                "model.safetensors": fake_hf.safetensors_file(TINY_TENSORS)}, gated_token="hf_secret")
    hub_.add("test-org/stalled", {"config.json": TINY_CONFIG}, delay_seconds=3)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with fake_hf.serve(hub_):
        monkeypatch.setenv("HF_ENDPOINT", hub_.url)
        yield hub_


def test_hub_lookup_reads_config_and_headers_only(fake_hub: fake_hf.FakeHub, tmp_path: Path) -> None:
    found = hub.lookup("test-org/tiny", cache_dir=tmp_path)
    assert found is not None
    assert dict(found.parameter_bytes) == TINY_BYTES
    assert (found.num_hidden_layers, found.num_key_value_heads, found.head_dim) == (2, 2, 16)
    assert found.source.startswith(fake_hub.url) and found.date
    weights = [r for r in fake_hub.requests if r.method == "GET" and r.path.endswith(".safetensors")]
    assert weights and all(r.range and r.range.startswith("bytes=0-") for r in weights)


def test_hub_lookup_is_cached_on_disk(fake_hub: fake_hf.FakeHub, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    first = hub.lookup("test-org/tiny", cache_dir=tmp_path)
    assert (tmp_path / "test-org--tiny.json").is_file()
    seen = len(fake_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.lookup("test-org/tiny", cache_dir=tmp_path) == first
    assert len(fake_hub.requests) == seen


def test_hub_lookup_reads_every_shard(fake_hub: fake_hf.FakeHub, tmp_path: Path) -> None:
    found = hub.lookup("test-org/sharded", cache_dir=tmp_path)
    assert found is not None and dict(found.parameter_bytes) == TINY_BYTES


def test_gated_model_needs_hf_token(fake_hub: fake_hf.FakeHub, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert hub.lookup("test-org/gated", cache_dir=tmp_path) is None
    assert hub.lookup("test-org/missing", cache_dir=tmp_path) is None
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert hub.lookup("test-org/gated", cache_dir=tmp_path) is not None
    assert fake_hub.requests[-1].authorization == "Bearer hf_secret"


def test_a_stalled_hub_cannot_hang_the_plan(fake_hub: fake_hf.FakeHub, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "DEADLINE_SECONDS", 0.5)
    start = time.monotonic()
    assert hub.lookup("test-org/stalled", cache_dir=tmp_path) is None
    assert time.monotonic() - start < 2


def test_fit_with_hub_facts(fake_hub: fake_hf.FakeHub, tmp_path: Path) -> None:
    found = hub.lookup("test-org/tiny", cache_dir=tmp_path)
    args = ("--max-model-len", "4096", "--gpu-memory-utilization", "0.8")
    result = budget.fit(service("test-org/tiny", args), 4000, catalog.L4, found)
    assert result.verdict == budget.FITS and result.weights_mib == 1
    assert vllm_args.problems(service("test-org/tiny", ()), catalog.L4, 1) == []


# ---- the stack report ---------------------------------------------------------------------------------

def test_stack_report_and_preflight_message() -> None:
    from hamieks.modelfit import report

    settings = load_settings(stackfiles.load_stack_config(stackfiles.project_dir_default(), "demo"))
    fits = report.model_fits(settings, lookup=lambda repo: hub.lookup(repo, use_network=False))
    assert [f.service for f in fits] == [s.name for s in settings.services]
    assert report.misfits(fits) == [] and report.format_warnings(fits) == []
    only = report.model_fits(settings, ["vllm-t4-qwen25-1-5b"], lookup=lambda repo: None)
    assert [f.verdict for f in only] == ["unknown"] and "unknown" in report.format_warnings(only)[0]
    bad = [budget.fit(service("Qwen/Qwen2.5-1.5B-Instruct", ("--gpu-memory-utilization", "0.5")), 4000,
                      catalog.T4, known("Qwen/Qwen2.5-1.5B-Instruct"), name="small")]
    message = report.format_misfits(bad, "demo")
    assert "small (Qwen/Qwen2.5-1.5B-Instruct)" in message and "hami-eks:allowModelMisfit" in message


def test_plan_json_models_carry_the_headline_and_the_range(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from hamieks import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["plan", "--stack", "demo", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert [m["service"] for m in models] == ["vllm-t4-qwen25-1-5b", "vllm-a10g-mistral7b-awq",
                                             "vllm-a10g-qwen25-7b-awq"]
    for entry in models:
        fewest, most = entry["kvCacheTokensRange"]
        assert entry["kvCacheTokens"] == fewest < most
        assert f"KV cache {fewest} tokens (range {fewest}-{most})" in entry["reason"]
