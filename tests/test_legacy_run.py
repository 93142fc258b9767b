"""A run written before the sizes moved to yaml (its ``hyperparams.yaml``
names ``muselq_sb.utils.presets.preset``, which is gone) still loads,
embeds as it did then, and packages.

``tests/fixtures/legacy_run`` is a 1-step ``brn_sum`` run of that code
(``--size=tiny`` with smaller layers, ``kernel_size`` and ``lr`` left to the
preset); ``expected_mean_embeddings.pt`` is what ``MusicEncoder.from_run``
gave for the input below then.
"""
from pathlib import Path

import torch

from muselq_sb.inference.encoder import MusicEncoder
from muselq_sb.inference.package import package_model

LEGACY = Path(__file__).parent / "fixtures" / "legacy_run"


def test_legacy_run_embeds_as_before_and_packages(tmp_path):
    text = (LEGACY / "hyperparams.yaml").read_text()
    assert "!apply:muselq_sb.utils.presets.preset [tiny, kernel_size]" in text
    encoder = MusicEncoder.from_run(LEGACY)
    conv = encoder.model.encoder.layers[0].convolution_branch.csgu.conv.inner.conv
    assert conv.kernel_size == (15,)  # the tiny preset
    wav = torch.sin(torch.arange(36000) * 0.05)[None] * 0.3
    got = encoder.encode_batch(wav, layers="all", pooling="mean")[0]
    expected = torch.load(LEGACY / "expected_mean_embeddings.pt", weights_only=True)
    assert torch.allclose(got, expected, atol=1e-5)
    folder = package_model(LEGACY, tmp_path / "model")
    assert "!apply" not in (folder / "hyperparams.yaml").read_text()
    assert "warm-up to 0.001 over" in (folder / "README.md").read_text()
    packaged = MusicEncoder.from_folder(folder)
    assert torch.equal(packaged.encode_batch(wav, layers="all", pooling="mean")[0], got)
