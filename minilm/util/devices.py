"""Which device a model runs on, which precisions it takes, and what the CPU-only machinery may do there.

One reading of a device setting for every command and API: ``"auto"`` (or None) picks as sentence-transformers does,
CUDA, then MPS (Apple), then the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and ``"mps"`` name one. A device that is not
there, a precision it cannot run and a CPU-only feature asked for on an accelerator are refused here, before any
model loads, by the setting's name and with what is available. Under torchrun each process trains on its own GPU
(``minilm.train.distributed.process_device``).
"""

from __future__ import annotations

import functools
import re

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The devices this process can use, as a device setting names them."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if mps_available():
        names.append("mps")
    return names


def auto_device() -> torch.device:
    """sentence-transformers' choice when no device is given: CUDA, then MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(setting: str | torch.device | None, where: str = "device") -> torch.device:
    """The device ``setting`` names (None or "auto": ``auto_device``); a ValueError naming ``where`` (the setting, e.g.
    ``[train] device``) and the devices available when it is malformed or not on this machine."""
    if setting is None or setting == "auto":
        return auto_device()
    if isinstance(setting, torch.device):
        text = str(setting)
    elif isinstance(setting, str):
        text = setting.strip().lower()
    else:
        raise ValueError(f"{where} must be a string such as 'cuda', got {type(setting).__name__} {setting!r}")
    found = _DEVICE.fullmatch(text)
    if found is None or (found.group(1) != "cuda" and found.group(2) not in (None, "0")):
        raise ValueError(f"{where} must be one of {', '.join(DEVICE_CHOICES)}, got {setting!r}")
    kind, index = found.group(1), found.group(2)
    available = ", ".join(available_devices())
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{where} {setting!r}: no CUDA device here (this torch build has CUDA "
                f"{torch.version.cuda or 'none'}); available: {available}"
            )
        if index is not None and int(index) >= torch.cuda.device_count():
            raise ValueError(
                f"{where} {setting!r}: there are {torch.cuda.device_count()} CUDA device(s); available: {available}"
            )
        return torch.device("cuda", int(index) if index is not None else torch.cuda.current_device())
    if kind == "mps" and not mps_available():
        raise ValueError(f"{where} {setting!r}: no MPS (Apple GPU) device here; available: {available}")
    return torch.device(kind)


# ------------------------------------------------------------------------------------------- precision


@functools.cache
def _cpu_autocast_runs(dtype: torch.dtype) -> bool:
    """Whether this torch's CPU autocast computes a matmul in ``dtype`` (older builds turn fp16 autocast off)."""
    import warnings

    with warnings.catch_warnings():  # an unsupported dtype is announced as a warning and autocast switched off
        warnings.simplefilter("ignore")
        with torch.autocast("cpu", dtype=dtype):
            a = torch.ones(2, 2)
            return (a @ a).dtype == dtype


def _cuda_bf16() -> bool:
    """Native bf16 on the current CUDA device (Ampere, sm80, and later); emulation on older GPUs is slow."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no emulation and no keyword
        return torch.cuda.is_bf16_supported()


def precision_support(device: torch.device) -> list[str]:
    """The ``[train] precision`` values ``device`` runs (fp32 always)."""
    kind = device.type
    supported = ["fp32"]
    if kind == "cuda":
        if _cuda_bf16():
            supported.append("bf16")
        supported.append("fp16")
    elif kind == "mps":
        mps = torch.backends.mps
        if getattr(mps, "is_macos_or_newer", lambda *_: False)(14, 0):
            supported.append("bf16")
        supported.append("fp16")
    elif kind == "cpu":
        supported += [name for name in ("bf16", "fp16") if _cpu_autocast_runs(PRECISIONS[name])]
    return supported


def check_precision(precision: str, device: torch.device, where: str = "[train] precision") -> torch.dtype:
    """The autocast dtype of ``precision`` on ``device``; a ValueError naming ``where`` when it is not a precision or
    the device cannot run it."""
    if precision not in PRECISIONS:
        raise ValueError(f"{where} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    supported = precision_support(device)
    if precision not in supported:
        raise ValueError(
            f"{where} {precision!r} is not supported on {describe_device(device)}; it runs {', '.join(supported)}"
        )
    return PRECISIONS[precision]


def check_tf32(tf32: bool, device: torch.device, where: str = "[train] tf32") -> None:
    """TF32 matmuls are an NVIDIA (Ampere and later) number format: refused by name on any other device."""
    if tf32 and device.type != "cuda":
        raise ValueError(
            f"{where} = true needs a CUDA device (TF32 is an NVIDIA matmul format); this run is on "
            f"{describe_device(device)}: set it to false"
        )


# ------------------------------------------------------------------------------------------- CPU-only machinery


def check_cpu_only(feature: str, device: torch.device) -> None:
    """Refuse, naming ``feature`` (an option as the user gave it), a CPU technique asked for on another device."""
    if device.type != "cpu":
        raise ValueError(
            f"{feature} is a CPU technique and this runs on {describe_device(device)}: drop "
            f"{feature}, or run on the CPU (device 'cpu')"
        )


def unpadded_by_default(device: torch.device) -> bool:
    """Whether a model on ``device`` runs the unpadded path (``minilm.fast.unpadded``) unless told otherwise.

    On the CPU it was measured faster (benchmarks/README.md). Elsewhere the padded path: the unpadded layout costs a
    few host syncs per forward (its lengths are read back to cut attention groups), which stall a GPU's queue, and
    no GPU measurement says otherwise yet (``benchmarks/bench_gpu.py`` measures both when it runs on one).
    """
    return device.type == "cpu"


# ------------------------------------------------------------------------------------------- data to the device


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``. To a CUDA device from the CPU the copy goes through pinned memory and does not wait:
    the host goes on queueing work while the bytes travel (a copy from pageable memory would block it)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


# ------------------------------------------------------------------------------------------- what ran


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA A100-SXM4-40GB)``, ``mps`` or ``cpu``."""
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def environment(device: torch.device, precision: str = "fp32") -> dict[str, str]:
    """What a run ran on: device, its compute dtype, the torch and CUDA versions (for run.json, the card, the log)."""
    return {
        "device": describe_device(device),
        "precision": precision,
        "dtype": str(PRECISIONS.get(precision, torch.float32)).removeprefix("torch."),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
    }


def environment_line(env: dict[str, str]) -> str:
    """``on cuda:0 (NVIDIA L4), bf16 autocast (master weights float32), torch 2.5.1, CUDA 12.4``."""
    compute = "float32" if env["precision"] == "fp32" else f"{env['precision']} autocast (master weights float32)"
    return f"on {env['device']}, {compute}, torch {env['torch']}, CUDA {env['cuda']}"


DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(value: torch.dtype | str | None, where: str = "dtype") -> torch.dtype | None:
    """A model's weight dtype from a torch dtype or its name (None: leave it float32); ValueError naming ``where``."""
    if value is None or isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if isinstance(value, str) and value.strip().lower().removeprefix("torch.") in DTYPES:
        return DTYPES[value.strip().lower().removeprefix("torch.")]
    raise ValueError(f"{where} must be torch.float32, torch.float16 or torch.bfloat16 (or one's name), got {value!r}")
