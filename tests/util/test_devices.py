"""Devices: the choice (CUDA, then MPS, then the CPU; each torchrun process its own GPU), with availability
monkeypatched, since this machine has no GPU; every refusal (a device not there, a precision it cannot run, a
CPU-only feature on a GPU), each before any model loads and naming the setting and what is available."""

import inspect
import json

import numpy as np
import pytest
import torch
from helpers import write_tiny_recipe

from minilm import cli
from minilm.encoder import SentenceEncoder
from minilm.run.recipe import RecipeError, load_recipe
from minilm.train import distributed
from minilm.util import devices


@pytest.fixture()
def gpus(monkeypatch):
    """Pretend to have ``n`` CUDA devices (and MPS or not)."""

    def have(n: int, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
        monkeypatch.setattr(devices, "mps_available", lambda: mps)

    return have


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Any model load fails the test: refusals must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the refusal")

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", refuse)


# ------------------------------------------------------------------------------------------- the choice


@pytest.mark.parametrize(
    "cuda, mps, expected", [(2, True, "cuda:0"), (0, True, "mps"), (0, False, "cpu"), (1, False, "cuda:0")]
)
def test_auto_chooses_cuda_then_mps_then_cpu(gpus, cuda, mps, expected):
    gpus(cuda, mps)
    assert devices.resolve_device("auto") == torch.device(expected)
    assert devices.resolve_device(None) == torch.device(expected)


def test_named_devices_resolve(gpus):
    gpus(2, mps=True)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert devices.resolve_device("CUDA") == torch.device("cuda", 0)
    assert devices.resolve_device("mps") == torch.device("mps")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert devices.available_devices() == ["cpu", "cuda", "cuda:0", "cuda:1", "mps"]


@pytest.mark.parametrize(
    "setting, message",
    [
        ("cuda", r"\[train\] device 'cuda': no CUDA device here .*available: cpu$"),
        ("cuda:0", r"\[train\] device 'cuda:0': no CUDA device here"),
        ("mps", r"\[train\] device 'mps': no MPS \(Apple GPU\) device here; available: cpu$"),
        ("gpu", r"\[train\] device must be one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
        ("cpu:3", r"\[train\] device must be one of"),
        (3, r"\[train\] device must be a string such as 'cuda', got int 3"),
    ],
)
def test_a_device_that_is_not_here_is_refused_naming_what_is(gpus, setting, message):
    gpus(0)
    with pytest.raises(ValueError, match=message):
        devices.resolve_device(setting, "[train] device")


def test_a_cuda_index_beyond_the_devices_is_refused(gpus):
    gpus(2)
    with pytest.raises(
        ValueError,
        match=r"device 'cuda:2': there are 2 CUDA device\(s\); available: cpu, cuda, "
        r"cuda:0, cuda:1",
    ):
        devices.resolve_device("cuda:2", "device")


def test_under_torchrun_each_process_takes_its_local_rank_gpu(gpus, monkeypatch):
    gpus(4)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert distributed.process_device("auto") == torch.device("cuda", 2)
    assert distributed.process_device("cuda") == torch.device("cuda", 2)
    assert distributed.process_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"'cuda:1' would put all 4 torchrun processes on one GPU; use 'cuda'"):
        distributed.process_device("cuda:1")
    monkeypatch.setenv("LOCAL_RANK", "5")
    with pytest.raises(ValueError, match=r"LOCAL_RANK 5: this machine has 4 CUDA device\(s\)"):
        distributed.process_device("auto")


def test_under_torchrun_mps_is_refused(gpus, monkeypatch):
    gpus(0, mps=True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"torchrun's 2 processes train on CUDA \(nccl\) or the CPU \(gloo\)"):
        distributed.process_device("mps")


def test_one_process_keeps_the_device_it_names(gpus, monkeypatch):
    gpus(2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.process_device("cuda:1") == torch.device("cuda", 1)


# ------------------------------------------------------------------------------------------- precision


def test_this_cpu_runs_every_precision():
    assert devices.precision_support(torch.device("cpu")) == ["fp32", "bf16", "fp16"]
    assert devices.check_precision("bf16", torch.device("cpu")) is torch.bfloat16


def test_fp16_on_a_cpu_without_it_is_refused(monkeypatch):
    monkeypatch.setattr(devices, "_cpu_autocast_runs", lambda dtype: dtype == torch.bfloat16)
    with pytest.raises(ValueError, match=r"\[train\] precision 'fp16' is not supported on cpu; it runs fp32, bf16$"):
        devices.check_precision("fp16", torch.device("cpu"))


def test_bf16_on_a_gpu_without_it_is_refused(gpus, monkeypatch):
    gpus(1)
    monkeypatch.setattr(devices, "_cuda_bf16", lambda: False)
    assert devices.precision_support(torch.device("cuda", 0)) == ["fp32", "fp16"]
    with pytest.raises(ValueError, match=r"'bf16' is not supported on cuda:0 \(Fake GPU 0\); it runs fp32, fp16"):
        devices.check_precision("bf16", torch.device("cuda", 0))


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match=r"\[train\] precision must be one of fp32, bf16, fp16, got 'fp8'"):
        devices.check_precision("fp8", torch.device("cpu"))


def test_tf32_is_refused_off_cuda():
    with pytest.raises(ValueError, match=r"\[train\] tf32 = true needs a CUDA device .* this run is on cpu"):
        devices.check_tf32(True, torch.device("cpu"))
    devices.check_tf32(False, torch.device("cpu"))


# ------------------------------------------------------------------------------------------- CPU-only machinery


def test_cpu_only_features_are_refused_by_name_on_a_gpu(gpus):
    gpus(1)
    with pytest.raises(
        ValueError, match=r"--quantized-model is a CPU technique and this runs on cuda:0 \(Fake GPU 0\)"
    ):
        devices.check_cpu_only("--quantized-model", torch.device("cuda", 0))
    devices.check_cpu_only("--quantized-model", torch.device("cpu"))


def test_on_a_gpu_the_cpu_techniques_are_off_by_default(monkeypatch):
    """Encode worker threads: one batch at a time off the CPU. Cheap dropout masks: a tensor off the CPU (a meta
    tensor stands in for a GPU one here) goes through torch's own dropout, and no cheap mask is drawn. The int8 model
    is never used unless asked for (``quantized_model=False`` is the default)."""
    from minilm.fast import dropout as cheap
    from minilm.fast.workers import default_workers

    for device in (torch.device("cuda", 0), torch.device("mps")):
        assert default_workers(device, compiled=False) == 1
    assert default_workers(torch.device("cpu"), compiled=False) == (2 if torch.get_num_threads() >= 2 else 1)

    calls = []
    monkeypatch.setattr(cheap, "keep_mask", lambda *a, **k: calls.append("cheap mask"))
    real_dropout = cheap.F.dropout
    monkeypatch.setattr(
        cheap.F, "dropout", lambda x, p, training: calls.append("torch") or real_dropout(x, p, training)
    )
    out = cheap.Dropout(0.1).train()(torch.ones(4, 8, device="meta"))
    assert out.device.type == "meta" and calls == ["torch"]
    assert inspect.signature(SentenceEncoder.encode).parameters["quantized_model"].default is False


@pytest.mark.parametrize(
    "option, message",
    [
        ({"quantized_model": True}, r"^quantized_model=True is a CPU technique and this runs on cuda:0 \(Fake GPU 0\)"),
        ({"workers": 2}, r"^workers=2 is a CPU technique and this runs on cuda:0 \(Fake GPU 0\): drop workers=2"),
    ],
)
def test_encode_on_a_gpu_refuses_a_cpu_technique_by_name(tiny_base, gpus, monkeypatch, option, message):
    gpus(1)
    model = SentenceEncoder.from_pretrained(tiny_base, device="cpu")
    monkeypatch.setattr(SentenceEncoder, "device", property(lambda self: torch.device("cuda", 0)))

    class Tokenised(Exception):
        pass

    def tokenise(*args, **kwargs):
        raise Tokenised

    monkeypatch.setattr(model.tokenizer, "encode_ids", tokenise)
    with pytest.raises(ValueError, match=message):  # before anything is tokenised
        model.encode(["a sentence"], **option)
    with pytest.raises(Tokenised):  # workers=1 and the defaults ask for no CPU technique: on to the work
        model.encode(["a sentence"], workers=1)
    with pytest.raises(Tokenised):
        model.encode(["a sentence"])


def test_encode_on_the_cpu_takes_the_cpu_techniques(tiny_base):
    model = SentenceEncoder.from_pretrained(tiny_base, device="cpu")
    plain = model.encode(["a sentence", "another one"], workers=1)
    assert np.allclose(model.encode(["a sentence", "another one"], workers=2), plain, atol=1e-6)
    assert model.encode(["a sentence"], quantized_model=True).dtype == np.float32


def test_the_unpadded_path_is_the_cpus_and_a_gpu_takes_the_padded_one(tiny_base, monkeypatch):
    assert devices.unpadded_by_default(torch.device("cpu"))
    assert not devices.unpadded_by_default(torch.device("cuda", 0))
    model = SentenceEncoder.from_pretrained(tiny_base)
    assert model.unpadded is True
    monkeypatch.setattr(SentenceEncoder, "device", property(lambda self: torch.device("cuda", 0)))
    assert model.unpadded is False  # decided by where the model is, also after a .to()
    model.unpadded = True  # set explicitly: kept
    assert model.unpadded is True


def test_to_device_leaves_a_cpu_tensor_on_the_cpu():
    t = torch.arange(3)
    assert devices.to_device(t, torch.device("cpu")) is t


# ------------------------------------------------------------------------------------------- loading, dtype


def test_from_pretrained_refuses_a_missing_device_before_reading_anything(gpus, tmp_path):
    gpus(0)
    with pytest.raises(ValueError, match=r"device 'cuda': no CUDA device here"):
        SentenceEncoder.from_pretrained(tmp_path / "no-such-model", device="cuda")


def test_from_pretrained_refuses_an_unknown_dtype(tmp_path):
    with pytest.raises(ValueError, match=r"dtype must be torch.float32, torch.float16 or torch.bfloat16 .*int8"):
        SentenceEncoder.from_pretrained(tmp_path / "no-such-model", dtype=torch.int8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "float16", "bf16"])
def test_a_half_precision_model_encodes_to_float32(tiny_base, dtype):
    sentences = ["a cat sat on the mat", "the weather is lovely today", "he drove to the stadium"]
    reference = SentenceEncoder.from_pretrained(tiny_base).encode(sentences)
    model = SentenceEncoder.from_pretrained(tiny_base, dtype=dtype)
    assert next(model.parameters()).dtype == devices.resolve_dtype(dtype)
    got = model.encode(sentences)
    assert got.dtype == np.float32 and model.encode(sentences, convert_to_tensor=True).dtype == torch.float32
    cosine = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.999


def test_half_and_bfloat16_of_a_loaded_model_encode_to_float32(tiny_base):
    for convert in (lambda m: m.half(), lambda m: m.bfloat16()):
        model = convert(SentenceEncoder.from_pretrained(tiny_base))
        assert model.encode(["hello there"]).dtype == np.float32


def test_every_output_of_a_half_model_is_float32(tiny_base):
    for dtype in (torch.float16, torch.bfloat16):
        model = SentenceEncoder.from_pretrained(tiny_base, dtype=dtype)
        rows = model.encode(["hello there", "a cat"], convert_to_numpy=False)
        tokens = model.encode(["hello there"], output_value="token_embeddings")
        assert {row.dtype for row in rows} == {tokens[0].dtype} == {torch.float32}
        assert model.encode("hello there").dtype == np.float32  # one sentence: one row


@pytest.mark.slow
def test_a_half_model_encodes_what_sentence_transformers_does_in_float32(tiny_base):
    """sentence-transformers 6.2 returns the weights' dtype (a half model: float16 arrays and tensors; bfloat16:
    bfloat16 tensors, float32 arrays since numpy has no bfloat16); minilm returns float32 always, the same values."""
    from sentence_transformers import SentenceTransformer

    sentences = ["a cat sat on the mat", "the weather is lovely today", "he drove to the stadium"]
    for convert, st_numpy in ((lambda m: m.half(), np.float16), (lambda m: m.bfloat16(), np.float32)):
        theirs = convert(SentenceTransformer(str(tiny_base), device="cpu"))
        ours = convert(SentenceEncoder.from_pretrained(tiny_base))
        st_dtype = next(theirs.parameters()).dtype
        assert theirs.encode(sentences).dtype == st_numpy
        assert theirs.encode(sentences, convert_to_tensor=True).dtype == st_dtype
        got = ours.encode(sentences, convert_to_tensor=True)
        assert got.dtype == torch.float32 and ours.encode(sentences).dtype == np.float32
        reference = theirs.encode(sentences, convert_to_tensor=True).float()
        assert torch.nn.functional.cosine_similarity(got, reference).min() > 0.999


def test_a_half_precision_model_is_refused_for_training(tiny_base):
    from minilm.losses import multiple_negatives_ranking_loss
    from minilm.train.samplers import RandomBatchSampler
    from minilm.train.trainer import TrainConfig, TrainData, Trainer

    model = SentenceEncoder.from_pretrained(tiny_base, dtype=torch.bfloat16)
    data = TrainData([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match=r"the model to train has torch.bfloat16 weights; training keeps float32"):
        Trainer(model, multiple_negatives_ranking_loss, data, RandomBatchSampler(2, 2), TrainConfig(batch_size=2))


# ------------------------------------------------------------------------------------------- recipes, commands


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.device=cuda", r"\[train\] device 'cuda': no CUDA device here"),
        ("train.device=tpu", r"\[train\] device must be one of"),
        ("train.precision=fp8", r"\[train\] precision must be one of fp32, bf16, fp16"),
        ("train.tf32=true", r"\[train\] tf32 = true needs a CUDA device"),
    ],
)
def test_a_recipe_is_refused_before_any_model_loads(tmp_path, tiny_base, gpus, override, message):
    gpus(0)
    path = write_tiny_recipe(tmp_path, tiny_base)
    with pytest.raises(RecipeError, match=rf"{path}: {message}"):
        load_recipe(path, [override])


def test_a_recipe_with_fp16_where_it_cannot_run_is_refused(tmp_path, tiny_base, monkeypatch):
    monkeypatch.setattr(devices, "_cpu_autocast_runs", lambda dtype: False)
    with pytest.raises(RecipeError, match=r"\[train\] precision 'fp16' is not supported on cpu; it runs fp32$"):
        load_recipe(write_tiny_recipe(tmp_path, tiny_base), ["train.precision=fp16"])


def run_cli(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["encode", "eval", "compare"])
def test_commands_refuse_a_missing_device_before_loading(tmp_path, command, gpus, no_model_loads, capsys):
    gpus(0)
    text = tmp_path / "in.txt"
    text.write_text("one\ntwo\n", encoding="utf-8")
    args = {
        "encode": ["encode", "--input", str(text), "--output", str(tmp_path / "out.npy")],
        "eval": ["eval", "--data", str(text), "--task", "similarity"],
        "compare": ["compare", "--input", str(text)],
    }[command]
    code, err = run_cli(args + ["--device", "cuda:1"], capsys)
    assert code == 2 and f"minilm {command}: error: --device 'cuda:1': no CUDA device here" in err


@pytest.mark.parametrize("command", ["encode", "compare"])
def test_quantized_model_on_a_gpu_is_refused_by_name(tmp_path, command, gpus, no_model_loads, capsys):
    gpus(1)
    text = tmp_path / "in.txt"
    text.write_text("one\n", encoding="utf-8")
    args = ["encode", "--output", str(tmp_path / "out.npy")] if command == "encode" else ["compare"]
    code, err = run_cli(args + ["--input", str(text), "--device", "cuda", "--quantized-model"], capsys)
    assert code == 2 and "--quantized-model is a CPU technique and this runs on cuda:0 (Fake GPU 0)" in err


def test_train_device_option_overrides_the_recipe(tmp_path, tiny_base, gpus, capsys):
    gpus(0)
    path = write_tiny_recipe(tmp_path, tiny_base)
    code, err = run_cli(["train", str(path), "--device", "mps", "--output", str(tmp_path / "out")], capsys)
    assert code == 2 and "[train] device 'mps': no MPS (Apple GPU) device here; available: cpu" in err


def test_sweep_on_a_gpu_refuses_forked_jobs(tmp_path, gpus, capsys):
    from minilm.sweep.runner import check_jobs_on_device

    gpus(1)
    with pytest.raises(ValueError, match=r"--jobs 2 forks worker processes, which CUDA does not survive"):
        check_jobs_on_device(2, torch.device("cuda", 0))
    check_jobs_on_device(2, torch.device("cpu"))


def test_run_json_says_what_the_run_ran_on(tmp_path, tiny_base):
    from minilm.run.output_dir import differences, run_record

    record = run_record(load_recipe(write_tiny_recipe(tmp_path, tiny_base), ["train.precision=bf16"]))
    env = json.loads(json.dumps(record))["environment"]
    assert env == {
        "device": "cpu",
        "precision": "bf16",
        "dtype": "bfloat16",
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
    }
    elsewhere = {**record, "environment": {**env, "device": "cuda:0 (Fake GPU 0)"}}
    elsewhere["recipe"] = {**record["recipe"], "train": {**record["recipe"]["train"], "device": "cuda"}}
    assert differences(record, elsewhere) == []  # a run may resume on another machine
