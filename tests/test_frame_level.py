"""Frame-level tasks (beats, chords): metrics against hand-computed values,
annotation layouts and their errors, and the suite end to end on fixture
trees of every layout and on the demo corpus."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from muselq_sb.dataio import demo_corpus as synth
from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.downstream.frame_metrics import (
    MAJMIN_CLASSES,
    beat_scores,
    chord_scores,
    decode_beats,
    frame_task_metrics,
)
from muselq_sb.downstream.frame_targets import frame_targets, parse_annotation
from muselq_sb.downstream.targets import TargetError
from muselq_sb.inference.embedding import frame_embed, hidden_states
from muselq_sb.prepare import demo
from muselq_sb.prepare.annotations import read_annotation
from muselq_sb.prepare.common import PrepareError
from muselq_sb.prepare.frame_tasks import prepare_frame_task
from muselq_sb.downstream.suite import run_suite
from tests.test_downstream_suite import make_run

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {"beat_threshold": 0.3, "min_beat_interval": 0.25, "beat_trim_seconds": 0.0}


# ---------------------------------------------------------------- metrics
def test_beat_scores_of_known_beat_lists():
    ref = np.arange(20) * 0.5  # 120 BPM, 10 s, downbeat every 4 beats
    down = ref[::4]
    perfect = beat_scores([(ref, down)], [(ref, down)], trim_seconds=0.0)
    assert perfect == {"beat_f": 1.0, "cmlt": 1.0, "amlt": 1.0, "downbeat_f": 1.0}
    # double tempo (0 to 9.5 s every 0.25 s): every reference beat found
    # (R = 1), 20 of 39 estimates right (P = 20/39): F = 2PR / (P + R) =
    # 40/59; continuity only at another metrical level (AMLt)
    double = beat_scores([(ref, None)], [(np.arange(39) * 0.25, np.array([]))], 0.0)
    assert double["beat_f"] == pytest.approx(40 / 59)
    assert double["cmlt"] == 0.0 and double["amlt"] == 1.0
    assert "downbeat_f" not in double  # no reference positions
    # off-beat: every estimate 250 ms from a beat (outside 70 ms), AMLt accepts
    off = beat_scores([(ref, down)], [(ref[:-1] + 0.25, np.array([]))], 0.0)
    assert off["beat_f"] == 0.0 and off["cmlt"] == 0.0 and off["amlt"] == 1.0
    assert off["downbeat_f"] == 0.0
    # trimming drops the beats of the first 5 s from both lists: the half of
    # the estimate that is wrong (the first 5 s) no longer counts
    half = np.r_[ref[:10] + 0.2, ref[10:]]
    assert beat_scores([(ref, None)], [(half, [])], 5.0)["beat_f"] == 1.0
    assert beat_scores([(ref, None)], [(half, [])], 0.0)["beat_f"] == 0.5


def test_decoded_one_hot_targets_give_the_quantised_beats():
    ref = (np.array([0.02, 0.51, 1.0, 1.49, 2.03]), np.array([0.02, 2.03]))
    targets = frame_targets("beats", ref, n_frames=60, frame_rate=25.0)
    assert targets.tolist().count(2) == 2 and targets.tolist().count(1) == 3
    posteriors = np.eye(3)[targets.numpy()]
    beats, downbeats = decode_beats(posteriors, 25.0)
    assert beats.tolist() == pytest.approx([0.0, 0.52, 1.0, 1.48, 2.04])
    assert downbeats.tolist() == pytest.approx([0.0, 2.04])
    scores = frame_task_metrics({"type": "beats"}, [posteriors], [ref], 25.0, OPTIONS)
    assert scores == {"beat_f": 1.0, "cmlt": 1.0, "amlt": 1.0, "downbeat_f": 1.0}


def test_decoder_keeps_the_higher_of_close_peaks_and_the_threshold():
    p = np.tile([1.0, 0.0, 0.0], (30, 1))
    p[[5, 8, 20]] = [[0.4, 0.6, 0], [0.1, 0.9, 0], [0.9, 0.1, 0]]
    beats, _ = decode_beats(p, frame_rate=10.0, threshold=0.3, min_interval=0.5)
    assert beats.tolist() == [0.8]  # 0.5 s is too close to 0.8 s; 2.0 s is weak


def test_chord_scores_of_a_known_sequence():
    ref = (np.array([[0, 2], [2, 4], [4, 5], [5, 6], [6, 8.]]),
           ["C:maj", "A:min7", "F:maj/3", "N", "B:dim"])
    est = (np.array([[0, 3], [3, 4], [4, 6], [6, 8.]]),
           ["C:maj", "A:min", "F:maj", "N"])
    # majmin: C right 2 s; A:min7 vs C 1 s wrong, vs A:min 1 s right; F/3 vs
    # F 1 s right; N vs F 1 s wrong; B:dim out of gamut: (2 + 1 + 1) / 6.
    # root: same, but B:dim counts (vs N: wrong): 4 / 8
    scores = chord_scores([ref], [est])
    assert scores == {"majmin": pytest.approx(4 / 6), "root": pytest.approx(4 / 8)}
    # two tracks pool their seconds: a perfect 2 s track adds 2 of 2
    two = chord_scores([ref, (np.array([[0, 2.]]), ["G:min"])],
                       [est, (np.array([[0, 2.]]), ["G:min"])])
    assert two["majmin"] == pytest.approx(6 / 8)


def test_chord_targets_and_decoding_round_trip():
    ref = (np.array([[0.0, 1.0], [1.0, 2.5], [2.5, 4.0]]), ["E:min", "B:7", "B:dim"])
    targets = frame_targets("chords", ref, n_frames=110, frame_rate=25.0)
    assert MAJMIN_CLASSES[targets[0]] == "E:min" and MAJMIN_CLASSES[targets[30]] == "B:maj"
    assert targets[80] == -100 and targets[105] == 0  # dim: ignored; after the end: N
    posteriors = np.eye(25)[targets.clamp(min=0).numpy()]
    scores = frame_task_metrics({"type": "chords"}, [posteriors], [ref], 25.0, OPTIONS)
    # frame 25 (1.0 s, B) covers [0.98, 1.02): the change at 1.0 s comes half
    # a frame early, 0.02 s wrong of the 2.5 s majmin scores (B:dim is out)
    assert scores["majmin"] == pytest.approx((2.5 - 0.02) / 2.5)


def test_frame_embed_is_the_hidden_states_and_aligned_log_mel():
    model = make_run_model()
    wav = torch.randn(1, 24000 * 3)
    frames, lens = frame_embed(model, wav)
    hidden, _ = hidden_states(model, wav)
    assert torch.equal(frames[:, -1], hidden[-1]) and lens.tolist() == [frames.shape[2]]
    mel_frames, mel_lens = frame_embed(model, wav, layers="log_mel")
    assert mel_frames.shape[2] == frames.shape[2] and torch.equal(mel_lens, lens)
    mel, _ = model.features(wav, torch.ones(1))
    assert torch.allclose(mel_frames[0, 0, 1, :128], mel[0, 4:8].mean(0), atol=1e-5)


def make_run_model():
    from muselq_sb.inference.embedding import load_model
    import tempfile
    return load_model(make_run(Path(tempfile.mkdtemp())))


# ------------------------------------------------------------ annotations
BAD_FILES = [
    ("a.beats", "0.5 1\n1.0 2 x\n", 2, "3 fields"),
    ("a.beats", "0.5\nabc\n", 2, "not a number"),
    ("a.beats", "0.5 1\n1.0\n", 2, "some beats have a position"),
    ("a.beats", "0.5 1\n1.0 0\n", 2, "integer >= 1"),
    ("a.beats", "# comment\n\n1.0\n0.5\n", 4, "increasing"),
    ("a.lab", "0 1 C\n0.5 2 G\n", 2, "non-overlapping"),
    ("a.lab", "0 1 C\n1 1 G\n", 2, "start < end"),
    ("a.lab", "0 1 C\n1 2 H:maj\n", 2, "not a Harte label"),
    ("a.lab", "0 1\n", 1, "expected 'start end label'"),
    ("a.jams", '{"annotations": [\n{"namespace": "beat", "data": [\n'
               '{"time": 0.5, "value": 1},\n{"time": -1, "value": 2}]}]}', 4, ">= 0"),
    ("a.jams", '{"annotations": [\n{"namespace": "chord", "data": [\n'
               '{"time": 0, "duration": 1, "value": "C"},\n'
               '{"time": 1, "duration": 1, "value": "Q"}]}]}', 4, "Harte"),
    ("a.jams", '{"annotations": [\n{"namespace": "beat",\n "data": [}]}', 3,
     "not valid JSON"),
]


@pytest.mark.parametrize("name, text, line, message", BAD_FILES)
def test_malformed_annotations_name_file_and_line(tmp_path, name, text, line, message):
    path = tmp_path / name
    path.write_text(text)
    kind = "chords" if name.endswith(".lab") or '"chord"' in text else "beats"
    with pytest.raises(PrepareError, match=message) as err:
        read_annotation(path, kind)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_bad_manifest_cell_names_csv_line():
    with pytest.raises(TargetError, match=r"^t.csv:7: malformed beats annotation"):
        parse_annotation("beats", '[["x", 1]]', "t.csv", 7)


def write_track(folder: Path, name: str, seconds: float, seed: int):
    """A short demo-synthesiser track; returns its labels (beats, chords)."""
    styles, keys = sorted(synth.STYLES), synth.KEYS
    y, labels = synth.render_music(styles[seed % len(styles)], keys[(5 * seed) % 24],
                                   seconds, np.random.default_rng(seed))
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(str(folder / f"{name}.wav"), y, synth.SAMPLE_RATE, subtype="PCM_16")
    return labels


def jams(namespace, observations):
    return json.dumps({"file_metadata": {"duration": 0}, "annotations": [
        {"namespace": "tempo", "data": []},
        {"namespace": namespace, "data": observations}]}, indent=1)


LAYOUTS = {
    "beats_text": ("beats", lambda lab: "\n".join(f"{t:.4f}\t{p}" for t, p in lab["beats"]),
                   ".beats"),
    "beats_jams": ("beats", lambda lab: jams("beat", [
        {"time": t, "duration": 0.0, "value": p, "confidence": None}
        for t, p in lab["beats"]]), ".wav.jams"),
    "chords_lab": ("chords", lambda lab: "\n".join(f"{s:.4f} {e:.4f} {c}"
                                                   for s, e, c in lab["chords"]), ".lab"),
    "chords_jams": ("chords", lambda lab: jams("chord", [
        {"time": s, "duration": e - s, "value": c, "confidence": 1.0}
        for s, e, c in lab["chords"]]), ".jams"),
}


def make_layout_tree(root: Path, layout: str, n_tracks: int = 6, seconds: float = 3.0):
    """Audio and annotation files of ``n_tracks``; returns the task kind and
    every track's labels."""
    kind, write, suffix = LAYOUTS[layout]
    tracks = {}
    for k in range(n_tracks):
        tracks[f"track{k}"] = labels = write_track(root / "audio", f"track{k}", seconds, k)
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"track{k}{suffix}").write_text(write(labels))
    return kind, tracks


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_fixture_trees_prepare_into_frame_tasks(tmp_path, layout):
    kind, tracks = make_layout_tree(tmp_path, layout, n_tracks=3)
    folder = prepare_frame_task(kind, tmp_path / "audio", tmp_path / "tasks",
                                tmp_path / "annotations", name=layout,
                                split_shares=(1, 1, 1))
    info = read_task(folder)
    assert info["type"] == kind and info["splits"] == {"train": 1, "valid": 1, "test": 1}
    row = read_manifest(folder / "train.csv")[0]
    reference = parse_annotation(kind, row[kind], folder / "train.csv", 2)
    labels = tracks[row["ID"]]
    if kind == "beats":
        assert reference[0] == pytest.approx([t for t, _ in labels["beats"]], abs=1e-4)
        assert reference[1] == pytest.approx([t for t, p in labels["beats"] if p == 1],
                                             abs=1e-4)
    else:
        assert reference[1] == [c for _, _, c in labels["chords"]]


def test_a_malformed_annotation_writes_nothing(tmp_path):
    make_layout_tree(tmp_path, "chords_lab", n_tracks=3)
    bad = tmp_path / "annotations" / "track2.lab"
    bad.write_text(bad.read_text() + "\n9.0 8.0 C:maj\n")
    with pytest.raises(PrepareError, match=rf"^{bad}:\d+: segment 9.0 - 8.0 s"):
        prepare_frame_task("chords", tmp_path / "audio", tmp_path / "tasks",
                           tmp_path / "annotations")
    assert not (tmp_path / "tasks").exists()


def test_annotation_without_audio_is_an_error_or_skipped(tmp_path):
    make_layout_tree(tmp_path, "beats_text", n_tracks=3)
    (tmp_path / "audio" / "track1.wav").unlink()
    with pytest.raises(PrepareError, match=r"track1.beats:1: audio file .* not found"):
        prepare_frame_task("beats", tmp_path / "audio", tmp_path / "tasks",
                           tmp_path / "annotations")
    folder = prepare_frame_task("beats", tmp_path / "audio", tmp_path / "tasks",
                                tmp_path / "annotations", allow_missing=True,
                                split_shares=(1, 1, 1))
    assert read_task(folder)["skipped"]["missing"] == 1


# ------------------------------------------------------------------ suite
@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Every layout's fixture tree and the demo corpus's two frame-level tasks,
    through run_suite with both baselines and two seeds."""
    root = tmp_path_factory.mktemp("frame_suite")
    run = make_run(root)
    hparams = root / "hparams"
    hparams.mkdir()
    for layout, (kind, _, _) in LAYOUTS.items():
        make_layout_tree(root / layout, layout)
        prepare_frame_task(kind, root / layout / "audio", root / "tasks",
                           root / layout / "annotations", name=layout,
                           split_shares=(4, 1, 1))
        (hparams / f"{layout}.yaml").write_text(
            f"base: {REPO}/hparams/downstream/{kind}.yaml\ntask_name: {layout}\n")
    demo.build_demo_corpus(root / "tasks" / "demo", seed=0, n_music=10, n_notes=1,
                           n_voice=1, clip_seconds=3.0, workers=1, progress=False)
    for name in ("demo_beats", "demo_chords"):
        (hparams / f"{name}.yaml").write_text(
            f"base: {REPO}/hparams/downstream/{name}.yaml\n")
    results = run_suite(run, root / "tasks", root / "out", hparams_dir=hparams,
                        tasks=sorted(LAYOUTS) + ["demo_beats", "demo_chords"], n_seeds=2, run_opts={"noprogressbar": True},
                        overrides="number_of_epochs: 2\nhidden_dim: 8\nbatch_size: 2\n")
    return root, results


def test_suite_runs_every_layout_and_the_demo_tasks(suite):
    root, results = suite
    tasks = sorted(LAYOUTS) + ["demo_beats", "demo_chords"]
    for variant in ("checkpoint", "random", "logmel"):
        assert sorted(results[variant]) == tasks
        for task in tasks:
            entry = results[variant][task]
            assert "error" not in entry, (variant, task, entry.get("error"))
            assert entry["seeds"] == [1234, 1235]
            main = "beat_f" if "beats" in task else "majmin"
            summary = entry["test"][main]
            assert len(summary["values"]) == 2 and 0.0 <= summary["mean"] <= 1.0
            assert summary["ci95"] is not None
    run = results["checkpoint"]["chords_lab"]["runs"][0]
    assert run["frame_rate"] == 25.0 and run["metrics"] == ["majmin", "root"]


def test_frame_caches_are_whole_tracks_and_shared(suite):
    root, _ = suite
    cache = torch.load(root / "out" / "checkpoint" / "beats_text" / "embeddings" /
                       "train.pt", weights_only=True)
    x = cache["embeddings"][0]  # 3 s: one window of 76 frames, every layer
    assert x.shape == (1, 3, 76, 16) and cache["frame_rate"] == 25.0
    logmel = torch.load(root / "out" / "logmel" / "demo_chords" / "embeddings" /
                        "test.pt", weights_only=True)["embeddings"][0]
    assert logmel.shape == (1, 1, 76, 256)
    # the two demo tasks cut the same clips: the same frames (item store)
    frames = {}
    for task in ("demo_beats", "demo_chords"):
        for split in ("train", "valid", "test"):
            cache = torch.load(root / "out" / "checkpoint" / task / "embeddings" /
                               f"{split}.pt", weights_only=True)
            frames.setdefault(task, {}).update(zip(cache["ids"], cache["embeddings"]))
    assert sorted(frames["demo_beats"]) == sorted(frames["demo_chords"])
    assert all(torch.equal(x, frames["demo_chords"][i])
               for i, x in frames["demo_beats"].items())


def test_frame_results_in_the_report(suite):
    root, _ = suite
    md = (root / "out" / "results.md").read_text()
    for column in ("demo_beats beat_f", "demo_beats downbeat_f", "demo_beats cmlt",
                   "demo_beats amlt", "demo_chords majmin", "demo_chords root",
                   "chords_jams majmin", "beats_jams beat_f"):
        assert column in md
    header = (root / "out" / "results.csv").read_text().splitlines()[0]
    assert "demo_chords majmin ci95_low" in header
    assert (root / "out" / "results.png").stat().st_size > 0
