"""Probe layer selection and ProbeBrain training on synthetic embeddings."""
import inspect

import pytest
import torch
from speechbrain.nnet.schedulers import ReduceLROnPlateau
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.train_logger import FileTrainLogger

from muselq_sb.downstream.brain import ProbeBrain, StoppingEpochCounter, WindowDataset
from muselq_sb.downstream.probe import LayerSelector, Probe


def layered(batch=2, layers=4, dim=3):
    # layer l of every example is filled with the value l
    return torch.arange(layers, dtype=torch.float).view(1, layers, 1).expand(batch, layers, dim)


@pytest.mark.parametrize("layer, value", [(0, 0.0), (2, 2.0), (-1, 3.0), ("mean", 1.5)])
def test_layer_selection_modes(layer, value):
    out = LayerSelector(4, layer)(layered())
    assert out.shape == (2, 3)
    assert torch.all(out == value)


def test_weighted_layers_start_uniform_and_learn():
    selector = LayerSelector(4, "weighted")
    x = layered()
    assert torch.allclose(selector(x), torch.full((2, 3), 1.5))
    selector(x).sum().backward()
    assert selector.layer_logits.grad is not None
    assert selector.layer_logits.grad.abs().sum() > 0


@pytest.mark.parametrize("layer", ["last", 4, -5, "weighted_sum"])
def test_invalid_layer_options_fail_at_construction(layer):
    with pytest.raises(ValueError, match="layer"):
        LayerSelector(4, layer)


def test_probe_architecture_is_the_papers():
    probe = Probe(num_layers=3, input_dim=16, n_outputs=5, layer="mean")
    linear1, act, drop, linear2 = probe.mlp
    assert (linear1.in_features, linear1.out_features) == (16, 512)
    assert isinstance(act, torch.nn.ReLU) and drop.p == 0.25
    assert linear2.out_features == 5
    assert probe(torch.randn(7, 3, 16)).shape == (7, 5)


def test_a_standardized_probe_sees_every_layer_at_the_same_scale():
    """Scaling and shifting each layer of the training embeddings (and of
    the input) leaves a standardised probe's output unchanged."""
    x = torch.randn(50, 3, 8)
    scale, shift = torch.tensor([0.01, 1.0, 300.0]).view(1, 3, 1), torch.randn(1, 3, 8) * 20
    outputs = []
    for inputs in (x, x * scale + shift):
        torch.manual_seed(0)
        probe = Probe(num_layers=3, input_dim=8, n_outputs=4, standardize=True).eval()
        probe.fit_standardizer(inputs)
        outputs.append(probe(inputs[:5]))
    assert torch.allclose(outputs[0], outputs[1], atol=1e-4)
    with pytest.raises(ValueError, match="standardize=False"):
        Probe(num_layers=3, input_dim=8, n_outputs=4).fit_standardizer(x)


def separable_split(n_items, centres, generator, layers=3, windows=2):
    """Class information lives in layer 1 only; other layers are noise."""
    n_classes, dim = centres.shape
    targets = torch.arange(n_items) % n_classes
    emb = torch.randn(n_items, windows, layers, dim, generator=generator)
    noise = torch.randn(n_items, windows, dim, generator=generator)
    emb[:, :, 1] = centres[targets][:, None] + 0.3 * noise
    return list(emb.half()), targets, [f"item{i}" for i in range(n_items)]


def make_brain(tmp_path, task, probe, epochs=15, patience=15):
    counter = StoppingEpochCounter(epochs, patience, 0, "max")
    return ProbeBrain(
        modules={"probe": probe},
        opt_class=lambda params: torch.optim.Adam(params, lr=0.01),
        hparams={"task": task, "main_metric": None, "epoch_counter": counter,
                 "lr_annealing": ReduceLROnPlateau(1e-5, 0.5, 5, 0),
                 "train_logger": FileTrainLogger(str(tmp_path / "log.txt"))},
        run_opts={"noprogressbar": True, "device": "cpu"},
        checkpointer=Checkpointer(tmp_path / "save", {"probe": probe, "counter": counter}),
    )


def test_probe_learns_a_separable_task_far_above_chance(tmp_path):
    gen = torch.Generator().manual_seed(0)
    n_classes = 5
    task = {"name": "toy", "type": "multiclass", "classes": [str(c) for c in range(n_classes)],
            "metrics": ["accuracy"]}
    centres = 3 * torch.randn(n_classes, 8, generator=gen)
    train = WindowDataset(*separable_split(100, centres, gen))
    valid = WindowDataset(*separable_split(25, centres, gen))
    torch.manual_seed(0)
    brain = make_brain(tmp_path, task, Probe(3, 8, n_classes, layer="weighted", hidden_dim=32))
    brain.fit(brain.hparams.epoch_counter, train, valid,
              train_loader_kwargs={"batch_size": 16, "shuffle": True},
              valid_loader_kwargs={"batch_size": 16})
    brain.evaluate(valid, max_key="accuracy", test_loader_kwargs={"batch_size": 16})
    assert brain.test_stats["accuracy"] >= 0.9  # chance is 0.2
    best = brain.checkpointer.find_checkpoint(max_key="accuracy")
    assert best.meta["accuracy"] == pytest.approx(brain.test_stats["accuracy"])
    # the learned layer weights favour the informative layer
    weights = torch.softmax(brain.modules.probe.select.layer_logits, 0)
    assert weights.argmax().item() == 1


def fit_regression(tmp_path, torch_seed):
    """A regression probe (targets linear in layer 0), early stopping with
    patience 3, trained in ``tmp_path``."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(60, 1, 2, 4, generator=gen)
    y = torch.stack([x[:, 0, 0, 0], -x[:, 0, 0, 1]], 1)  # linear in layer 0
    task = {"name": "emo", "type": "regression", "target": ["arousal", "valence"],
            "metrics": ["r2_arousal", "r2_valence"]}
    data = WindowDataset(list(x), y, [str(i) for i in range(60)])
    torch.manual_seed(torch_seed)
    brain = make_brain(tmp_path, task, Probe(2, 4, 2, layer=0, hidden_dim=32),
                       epochs=200, patience=3)
    brain.fit(brain.hparams.epoch_counter, data, data,
              train_loader_kwargs={"batch_size": 10, "shuffle": True},
              valid_loader_kwargs={"batch_size": 10})
    return brain, data


def test_early_stopping_and_regression_targets(tmp_path):
    brain, data = fit_regression(tmp_path, 0)
    counter = brain.hparams.epoch_counter
    assert counter.should_stop and counter.current < 200
    brain.evaluate(data, max_key="r2", test_loader_kwargs={"batch_size": 10})
    assert brain.test_stats["r2_arousal"] > 0.8 and brain.test_stats["r2_valence"] > 0.8


def test_window_dataset_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="one of each per item"):
        WindowDataset([torch.zeros(1, 2, 3)], torch.tensor([0, 1]), ["a"])


def test_a_checkpoint_is_saved_only_at_a_new_best_and_only_the_best_is_kept(tmp_path):
    gen = torch.Generator().manual_seed(2)
    task = {"name": "toy", "type": "multiclass", "classes": ["0", "1", "2"],
            "metrics": ["accuracy"]}
    centres = 0.7 * torch.randn(3, 8, generator=gen)  # hard: scores go up and down
    train = WindowDataset(*separable_split(60, centres, gen))
    valid = WindowDataset(*separable_split(30, centres, gen))
    torch.manual_seed(0)
    brain = make_brain(tmp_path, task, Probe(3, 8, 3, layer="weighted", hidden_dim=16),
                       epochs=25, patience=25)
    scores, saved = [], []
    update, save = brain.hparams.epoch_counter.update_metric, brain.checkpointer.save_checkpoint
    brain.hparams.epoch_counter.update_metric = lambda s: (scores.append(s), update(s))[1]
    brain.checkpointer.save_checkpoint = lambda **kw: (saved.append(kw["meta"]), save(**kw))[1]
    brain.fit(brain.hparams.epoch_counter, train, valid,
              train_loader_kwargs={"batch_size": 16, "shuffle": True},
              valid_loader_kwargs={"batch_size": 16})
    assert len(scores) == 25 and 2 <= len(saved) < 26
    assert saved[-1] == {"epoch": 25}  # the finished state, after training
    saved_scores = [m["accuracy"] for m in saved[:-1]]
    assert saved_scores == sorted(set(saved_scores))  # each save a new best
    assert saved_scores[-1] == max(scores)
    kept = list((tmp_path / "save").glob("CKPT+*"))
    assert len(kept) == 2  # the best and the finished state
    assert brain.checkpointer.find_checkpoint(max_key="accuracy").meta.items() >= saved[-2].items()
    # SpeechBrain appends to its default importance_keys list when it is not
    # passed: the list (shared by every later call) must stay empty
    default = inspect.signature(Checkpointer.save_and_keep_only).parameters
    assert default["importance_keys"].default == []


def test_a_finished_probe_started_again_trains_no_further(tmp_path):
    """A suite run again in the same folder: each probe recovers its
    finished state, trains no epoch and tests the same best checkpoint."""
    gen = torch.Generator().manual_seed(3)
    task = {"name": "toy", "type": "multiclass", "classes": ["0", "1", "2"],
            "metrics": ["accuracy"]}
    centres = 0.7 * torch.randn(3, 8, generator=gen)
    train = WindowDataset(*separable_split(60, centres, gen))
    valid = WindowDataset(*separable_split(30, centres, gen))
    loaders = dict(train_loader_kwargs={"batch_size": 16, "shuffle": True},
                   valid_loader_kwargs={"batch_size": 16})
    results = []
    for run in range(2):
        torch.manual_seed(run)  # the second run starts from other weights
        brain = make_brain(tmp_path, task, Probe(3, 8, 3, layer="weighted", hidden_dim=16),
                           epochs=20, patience=20)
        scores, update = [], brain.hparams.epoch_counter.update_metric
        brain.hparams.epoch_counter.update_metric = lambda s: (scores.append(s), update(s))[1]
        brain.fit(brain.hparams.epoch_counter, train, valid, **loaders)
        brain.evaluate(valid, max_key="accuracy", test_loader_kwargs={"batch_size": 16})
        results.append((len(scores), brain.test_stats))
    assert results[0][0] == 20 and results[1][0] == 0
    assert results[1][1] == results[0][1]


def test_an_early_stopped_probe_started_again_stays_stopped(tmp_path):
    """SpeechBrain's own counter saves only the epoch: started again, a probe
    that stopped early forgot its best score and trained on."""
    results = []
    for run in range(2):  # the second run starts from other weights
        brain, data = fit_regression(tmp_path, run)
        counter = brain.hparams.epoch_counter
        trained = (counter.current, counter.should_stop)
        brain.evaluate(data, max_key="r2", test_loader_kwargs={"batch_size": 10})
        results.append((*trained, brain.test_stats))
    assert results[0][1] and results[0][0] < 200  # it did stop early
    assert results[1] == results[0]
