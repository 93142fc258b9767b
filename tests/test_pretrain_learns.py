"""Pre-training learns: after a few dozen steps on music with structure, the
validation masked-token accuracy beats always predicting the most frequent
token, and the masked mel MSE beats predicting the mean mel frame (the two
baselines ``SSLStats`` logs next to the metrics)."""
from muselq_sb.pretrain.report import read_metrics
from tests.fixtures.audio import write_audio
from tests.recipe_utils import tiny_brain

PITCHES = [110 * 2 ** (5 * i / 12) for i in range(4)]  # fourths from A2


def test_masked_prediction_beats_both_baselines(tmp_path):
    # 24 songs, each a steady rich tone at one of four pitches (six songs
    # each, so that every pitch is in the training split): the pitch of a
    # masked span can only be told from the unmasked context
    for i in range(24):
        write_audio(tmp_path / "songs" / f"s{i:02d}.wav", 4.0, 24000,
                    freq=PITCHES[i % 4], seed=i, harmonics=40, decay=0.0,
                    noise=0.003)
    # a high peak lr: a few dozen steps instead of hundreds
    _, _, fit = tiny_brain(tmp_path / "run", tmp_path / "songs",
                           total_steps=60, lr=0.01)
    fit()
    valid = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl")
             if r["stage"] == "valid"]
    first, last = valid[0], valid[-1]
    assert last["step"] == 60 and first["step"] < 20
    assert last["acc"] > first["acc"] and last["mse"] < first["mse"]
    assert last["acc"] > last["majority_acc"] + 0.1, last
    assert last["mse"] < 0.8 * last["mean_mse"], last
