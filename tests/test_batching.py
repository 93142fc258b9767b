"""Tests of muselq_sb.dataio.batching with real DataLoaders and workers."""
from __future__ import annotations

import logging
import pickle
import random

import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import DynamicBatchSampler

from muselq_sb.dataio.audio import audio_pipeline
from muselq_sb.dataio.batching import (
    DurationBatcher, EmptyBatch, SkipCounter, SkipEmptyCollate,
)
from tests.fixtures.audio import write_audio


def test_collate_drops_empty_items_and_pads_the_rest():
    batch = SkipEmptyCollate()([
        {"id": "a", "sig": torch.ones(5)},
        {"id": "b", "sig": torch.zeros(0)},
        {"id": "c", "sig": torch.ones(3)},
    ])
    assert batch.id == ["a", "c"] and batch.n_skipped == 1
    assert batch.sig.data.shape == (2, 5)
    assert torch.allclose(batch.sig.lengths, torch.tensor([1.0, 0.6]))


def test_collate_returns_counted_empty_batch_when_nothing_is_left():
    empty = SkipEmptyCollate()([{"id": "b", "sig": torch.zeros(0)},
                                {"id": "c", "sig": torch.zeros(0)}])
    assert isinstance(empty, EmptyBatch) and empty.n_skipped == 2
    assert len(empty) == 0


def test_collate_passes_padded_batch_options_and_pickles():
    collate = pickle.loads(pickle.dumps(SkipEmptyCollate(padding_kwargs={"value": -1.0})))
    batch = collate([{"sig": torch.ones(1)}, {"sig": torch.ones(2)}])
    assert batch.sig.data[0].tolist() == [1.0, -1.0] and batch.n_skipped == 0


def test_skip_counts_reach_the_main_process_from_workers(tmp_path, caplog):
    good = [str(write_audio(tmp_path / f"g{i}.wav", seconds=0.2, seed=i)) for i in range(4)]
    bad = [str(tmp_path / "missing.wav"), str(tmp_path / "junk.mp3")]
    (tmp_path / "junk.mp3").write_bytes(b"junk" * 50)
    paths = [good[0], bad[0], good[1], good[2], bad[1], good[3]]
    data = {f"i{k}": {"path": p, "start": "", "stop": ""} for k, p in enumerate(paths)}
    ds = DynamicItemDataset(data, dynamic_items=[audio_pipeline()], output_keys=["id", "sig"])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2,
                                         collate_fn=SkipEmptyCollate())
    counter = SkipCounter()
    seen = []
    for batch in loader:
        counter.add(batch)
        seen += batch.id if batch is not None else []
    assert sorted(seen) == sorted(f"i{k}" for k, p in enumerate(paths) if p in good)
    assert counter.total == 2
    with caplog.at_level(logging.WARNING):
        assert counter.report_and_reset() == 2
    assert "skipped 2 unreadable audio files this epoch" in caplog.text
    assert counter.total == 0 and counter.report_and_reset() == 0


def test_streamed_batches_by_duration_are_those_of_the_file_path():
    rng = random.Random(0)
    durations = [rng.choice([30.0, 30.0, 30.0, rng.uniform(1.0, 30.0)]) for _ in range(500)]
    files = DynamicBatchSampler(range(len(durations)), max_batch_length=480.0,
                                num_buckets=10, lengths_list=durations, shuffle=False)
    stream = DurationBatcher(480.0, 10)(range(len(durations)), length=durations.__getitem__)
    assert sorted(map(tuple, stream)) == sorted(map(tuple, files))
