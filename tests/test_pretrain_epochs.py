"""Every pre-training epoch draws its own batches (file path, one process).

SpeechBrain calls ``set_epoch`` only on a registered ``train_sampler``, and
outside DDP it does not register a ``batch_sampler``; the
``DynamicBatchSampler`` then served the same batches in the same order in
every epoch. ``BestRQBrain.make_dataloader`` registers it.
"""
import speechbrain as sb

from tests.recipe_utils import tiny_brain, write_songs

EPOCHS = 4


def batches_per_epoch(out, songs):
    """The item ids of every training batch, grouped by epoch."""
    brain, _, fit = tiny_brain(out, songs, total_steps=1000, number_of_epochs=EPOCHS,
                               max_batch_seconds=3.0)
    epochs = []
    start, fit_batch = brain.on_stage_start, brain.fit_batch

    def on_stage_start(stage, epoch=None):
        if stage == sb.Stage.TRAIN:
            epochs.append([])
        return start(stage, epoch)

    def recording(batch):
        epochs[-1].append(tuple(batch.id))
        return fit_batch(batch)

    brain.on_stage_start, brain.fit_batch = on_stage_start, recording
    fit()
    return epochs


def test_each_epoch_draws_new_batches_reproducibly(tmp_path):
    songs = write_songs(tmp_path / "songs", count=12, seconds=1.0)
    first = batches_per_epoch(tmp_path / "a", songs)
    assert len(first) == EPOCHS and all(len(e) > 3 for e in first)
    # the same items each epoch, in other batches or another order
    assert all(sorted(sum(e, ())) == sorted(sum(first[0], ())) for e in first)
    assert len(set(map(tuple, first))) == EPOCHS
    # and the same epochs again from the same seed
    assert batches_per_epoch(tmp_path / "b", songs) == first
