"""The training loop: one process and two (gloo on CPU) train the same heads, and a fit
interrupted after some epochs continues to the result of an uninterrupted one."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from geoai.models import build_head, fit_head

HEADS = ("linear-mse", "linear-haversine", "geocell")
# Two processes sum their gradient shares in another order than one process adds a batch up:
# the heads differ by float rounding only.
WEIGHT_TOLERANCE = 1e-5  # measured: at most 2.4e-7
KM_TOLERANCE = 1e-5  # relative; measured: at most 3.9e-7


def _data(seed: int = 0):
    """Embeddings that determine where they were taken (over Europe), split train/val."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(61, 8)).astype(np.float32)
    latlon = np.stack([48 + 6 * np.tanh(emb[:, 0]), 9 + 12 * np.tanh(emb[:, 1])], axis=1)
    return emb[:45], latlon[:45], emb[45:], latlon[45:]


def _fit(head_type: str, **kwargs):
    train_emb, train_latlon, val_emb, val_latlon = _data()
    torch.manual_seed(0)
    extra = {"cell_min_samples": 4, "cell_max_samples": 12} if head_type == "geocell" else {}
    head = build_head(head_type, 8, train_latlon=train_latlon, **extra)
    # 45 samples in batches of 11: the last batch holds one sample, so one process gets none of it.
    settings = {"epochs": 6, "patience": 6, "lr": 0.05, "batch_size": 11, "seed": 3, **kwargs}
    return fit_head(head, train_emb, train_latlon, None, val_emb, val_latlon, **settings)


def _fit_in_process_group(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        for head_type in HEADS:
            head, result = _fit(head_type)
            if rank == 0:
                save_file({k: v.contiguous() for k, v in head.state_dict().items()}, f"{out}/{head_type}.safetensors")
                with open(f"{out}/{head_type}.json", "w") as fh:
                    json.dump([e.val_mean_km for e in result.epochs], fh)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_train_the_heads_one_process_trains(tmp_path):
    mp.spawn(_fit_in_process_group, args=(2, str(tmp_path / "group"), str(tmp_path)), nprocs=2)
    for head_type in HEADS:
        head, result = _fit(head_type)
        two = load_file(str(tmp_path / f"{head_type}.safetensors"))
        for name, weight in head.state_dict().items():
            torch.testing.assert_close(two[name], weight, atol=WEIGHT_TOLERANCE, rtol=WEIGHT_TOLERANCE,
                                       msg=lambda m: f"{head_type} {name}: {m}")
        two_km = json.loads((tmp_path / f"{head_type}.json").read_text())
        assert two_km == pytest.approx([e.val_mean_km for e in result.epochs], rel=KM_TOLERANCE), head_type


class Interrupted(Exception):
    pass


def test_an_interrupted_fit_continues_to_the_uninterrupted_result(tmp_path):
    whole, whole_result = _fit("geocell", epochs=7, patience=7)

    def stop_after_three(record):
        if record.epoch == 3:
            raise Interrupted
    checkpoint = tmp_path / "fit.pt"
    with pytest.raises(Interrupted):
        _fit("geocell", epochs=7, patience=7, checkpoint=checkpoint, resume_key="k", log=stop_after_three)
    assert checkpoint.is_file()
    resumed, result = _fit("geocell", epochs=7, patience=7, checkpoint=checkpoint, resume_key="k")

    assert result.resumed_at == 3 and result.epochs_run == 7
    for name, weight in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], weight), name  # one process: bit for bit
    assert [e.val_mean_km for e in result.epochs] == [e.val_mean_km for e in whole_result.epochs]
    assert result.best_epoch == whole_result.best_epoch
    assert not checkpoint.exists()  # a finished fit leaves no checkpoint behind


def test_a_checkpoint_of_another_run_is_not_continued(tmp_path):
    checkpoint = tmp_path / "fit.pt"

    def stop(record):
        raise Interrupted
    with pytest.raises(Interrupted):
        _fit("linear-haversine", checkpoint=checkpoint, resume_key="seed 3", log=stop)
    with pytest.warns(UserWarning, match="another training run"):
        _, result = _fit("linear-haversine", checkpoint=checkpoint, resume_key="seed 4")
    assert result.resumed_at == 0 and result.epochs_run == 6


def test_a_damaged_checkpoint_is_not_continued(tmp_path):
    checkpoint = tmp_path / "fit.pt"
    checkpoint.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.warns(UserWarning, match="cannot be read"):
        _, result = _fit("linear-haversine", checkpoint=checkpoint, resume_key="k")
    assert result.resumed_at == 0 and result.epochs_run == 6
