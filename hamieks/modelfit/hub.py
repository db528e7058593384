"""Model facts for any model: recorded in the repository, cached on disk, or read from the Hub.

`lookup(repo)` answers from `recorded.json` first, then from the disk cache
(~/.cache/hami-eks/models/<org>--<name>.json), then from the Hugging Face Hub with
`huggingface_hub`: config.json (`hf_hub_download`) and the safetensors headers (the first
100 kB of each shard through `HfApi.parse_safetensors_file_metadata`, the request
`get_safetensors_metadata` makes), never the weights. It returns None, never raises and never
hangs, when the facts cannot be had: offline (HF_HUB_OFFLINE=1), no network, an unknown model, a
gated model without HF_TOKEN, a non-safetensors checkpoint of an unknown architecture. The caller
reports `unknown`.

The environment is read at call time, not at import (huggingface_hub reads it at import):
HF_ENDPOINT (a mirror, or the tests' fake Hub), HF_TOKEN, HF_HUB_OFFLINE.

Why not `get_safetensors_metadata` itself: it downloads a sharded model's index into the global
Hugging Face cache; this module keeps every file it downloads under its own cache directory.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from hamieks.modelfit import facts as facts_mod
from hamieks.modelfit.facts import SAFETENSORS_DTYPE_BYTES, ModelFacts

DEFAULT_ENDPOINT = "https://huggingface.co"
# A plan must stay fast: each HTTP request gets this many seconds, the whole lookup DEADLINE.
REQUEST_TIMEOUT_SECONDS = 5.0
DEADLINE_SECONDS = 10.0
CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
_TRUE = {"1", "true", "yes", "on"}

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hami-eks" / "models"


def _cache_file(cache_dir: Path, repo: str) -> Path:
    # Hugging Face's own cache naming: "org/name" -> "org--name" (repo ids cannot contain "--").
    return cache_dir / (repo.replace("/", "--") + ".json")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def lookup(repo: str, *, cache_dir: Path | None = None, use_network: bool = True) -> ModelFacts | None:
    """Facts for `repo`: recorded, cached, or fetched (when allowed); None when unavailable."""
    found = facts_mod.recorded(repo)
    if found is not None:
        return found
    cache_dir = cache_dir or default_cache_dir()
    cached = _read_cache(cache_dir, repo)
    if cached is not None:
        return cached
    if not use_network or offline() or not repo or repo.startswith("/"):
        return None
    fetched = _with_deadline(lambda: fetch_facts(repo, cache_dir=cache_dir), DEADLINE_SECONDS)
    if fetched is not None:
        _write_cache(cache_dir, fetched)
    return fetched


def _read_cache(cache_dir: Path, repo: str) -> ModelFacts | None:
    path = _cache_file(cache_dir, repo)
    try:
        return ModelFacts.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring unreadable model-facts cache %s: %s", path, exc)
        return None


def _write_cache(cache_dir: Path, found: ModelFacts) -> None:
    path = _cache_file(cache_dir, found.repo)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(found.to_json(), indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # a read-only home must not break a plan
        log.warning("cannot cache model facts in %s: %s", path, exc)


def _with_deadline(work: Any, seconds: float) -> ModelFacts | None:
    """Run `work` in a daemon thread: a stalled connection cannot hold the plan (or the
    interpreter's exit) beyond `seconds`."""
    result: list[ModelFacts | None] = [None]

    def run() -> None:
        try:
            result[0] = work()
        except Exception as exc:  # any failure of the Hub means "unknown", never a traceback
            log.info("model facts lookup failed: %s", exc)

    thread = threading.Thread(target=run, name="hami-eks-hub-lookup", daemon=True)
    thread.start()
    thread.join(seconds)
    return result[0]


def fetch_facts(repo: str, *, cache_dir: Path | None = None,
                timeout: float = REQUEST_TIMEOUT_SECONDS) -> ModelFacts | None:
    """Read config.json and the safetensors headers of `repo` from the Hub; None when it cannot.

    Raises nothing for the expected failures (missing, gated, offline); other exceptions of
    huggingface_hub propagate to `lookup`, which turns them into None.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
    from huggingface_hub.utils.tqdm import disable_progress_bars

    disable_progress_bars()  # a few kB of headers; a progress bar would only garble the plan's output

    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/") or DEFAULT_ENDPOINT
    token = os.environ.get("HF_TOKEN") or None
    api = HfApi(endpoint=endpoint, token=token)
    files_dir = (cache_dir or default_cache_dir()) / "hub"
    try:
        # A HEAD first: huggingface_hub makes it without retries, so an unreachable Hub fails at once
        # (hf_hub_download retries with backoff for half a minute), and a missing model answers False.
        if not api.file_exists(repo, CONFIG_FILE):
            log.info("no config.json for %s at %s", repo, endpoint)
            return None
        config_path = str(api.hf_hub_download(repo, CONFIG_FILE, cache_dir=str(files_dir), etag_timeout=timeout))
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        parameter_bytes, how = _parameter_bytes(api, repo, config, files_dir, timeout)
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:  # GatedRepoError is a RepositoryNotFoundError
        log.info("no model facts for %s: %s", repo, exc)
        return None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        log.info("no model facts for %s: %s", repo, exc)
        return None
    if parameter_bytes is None:
        return None
    today = datetime.date.today().isoformat()
    try:
        return facts_mod.from_config(repo, config, parameter_bytes, date=today,
                                     source=f"{endpoint}/{repo}: config.json and {how}")
    except (KeyError, TypeError, ValueError) as exc:
        log.info("config.json of %s lacks the attention shape: %s", repo, exc)
        return None


def _parameter_bytes(api: Any, repo: str, config: dict[str, Any], files_dir: Path,
                     timeout: float) -> tuple[dict[str, int] | None, str]:
    """Stored bytes per dtype from the safetensors headers (single file or every shard of the index)."""
    if api.file_exists(repo, SINGLE_FILE):
        files = [SINGLE_FILE]
        how = f"the {SINGLE_FILE} header"
    elif api.file_exists(repo, INDEX_FILE):
        index_path = str(api.hf_hub_download(repo, INDEX_FILE, cache_dir=str(files_dir), etag_timeout=timeout))
        index = json.loads(Path(index_path).read_text(encoding="utf-8"))
        files = sorted(set(index.get("weight_map", {}).values()))
        how = f"the headers of its {len(files)} safetensors shards"
    else:
        estimate = facts_mod.estimate_parameter_bytes(config)
        return estimate, "parameter bytes estimated from the config's tensor shapes (no safetensors files)"
    totals: dict[str, int] = {}
    for filename in files:
        header = api.parse_safetensors_file_metadata(repo, filename, timeout=timeout)
        for tensor in header.tensors.values():
            count = 1
            for dim in tensor.shape:
                count *= dim
            totals[tensor.dtype] = totals.get(tensor.dtype, 0) + count * SAFETENSORS_DTYPE_BYTES.get(tensor.dtype, 1)
    return totals, how
