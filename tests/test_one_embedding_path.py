"""One path from audio to embeddings: the Python API, the command line and
the downstream suite's extraction give identical embeddings of a file."""
import numpy as np
import torch

from muselq_sb.dataio.manifest import SPLITS, write_task
from muselq_sb.downstream.cache import (
    WindowConfig, encoder_identity, load_embedder, load_or_extract,
)
from muselq_sb.inference import cli
from muselq_sb.inference.encoder import MusicEncoder
from tests.fixtures.audio import write_audio
from tests.recipe_utils import write_run_folder


def test_api_cli_and_suite_give_identical_embeddings(tmp_path):
    run = write_run_folder(tmp_path / "run")
    song = write_audio(tmp_path / "in" / "song.flac", 2.3, 44100, channels=2, seed=4)
    api = MusicEncoder.from_path(run).encode_file(song, layers="all", pooling="mean")
    assert cli.main([str(run), str(song), str(tmp_path / "out"), "--layers", "all",
                     "--pooling", "mean", "--no-progress"]) == 0
    from_cli = torch.from_numpy(np.load(tmp_path / "out" / "song.flac.npy"))
    row = {"ID": "song", "path": str(song), "duration": 2.3, "label": "x"}
    task = write_task(tmp_path / "task", "toy", "multiclass", "label",
                      {s: [row] for s in SPLITS}, classes=["x"], metrics=["accuracy"])
    suite = load_or_extract(task, "test", tmp_path / "cache",
                            lambda: load_embedder(str(run)),
                            encoder_identity(str(run)), WindowConfig(None))
    assert api.shape == (3, 32)  # every hidden state, mean-pooled
    assert torch.equal(from_cli, api)
    assert torch.equal(suite["embeddings"][0][0], api.half())  # the cache is float16
