"""The downstream suite end to end on every data set's fixture tree:
native layout -> preparation script -> probes -> results table."""
import math

import pytest

from muselq_sb.downstream.suite import discover_tasks, run_suite
from muselq_sb.prepare.emomusic import prepare_emomusic
from muselq_sb.prepare.giantsteps import prepare_giantsteps
from muselq_sb.prepare.gtzan import prepare_gtzan
from muselq_sb.prepare.mtat import prepare_mtat
from muselq_sb.prepare.mtg_jamendo import prepare_mtg_jamendo
from muselq_sb.prepare.nsynth import prepare_nsynth
from muselq_sb.prepare.vocalset import prepare_vocalset
from tests.fixtures.emomusic import write_emomusic_tree
from tests.fixtures.giantsteps import write_giantsteps_tree
from tests.fixtures.gtzan import write_gtzan_tree
from tests.fixtures.mtat import write_mtat_tree
from tests.fixtures.mtg_jamendo import write_mtg_jamendo_tree
from tests.fixtures.nsynth import write_nsynth_tree
from tests.fixtures.vocalset import write_vocalset_tree
from tests.test_downstream_suite import FAST, REPO, make_run

EXPECTED = {
    "gtzan", "mtat", "emomusic", "giantsteps_key", "nsynth_instrument",
    "nsynth_pitch", "vocalset_technique", "vocalset_singer", "mtg_top50",
    "mtg_genre", "mtg_instrument", "mtg_moodtheme",
}


TOO_SMALL_FOR_ROC = {"mtat", "mtg_top50", "mtg_genre", "mtg_instrument",
                     "mtg_moodtheme"}


def prepare_all(root, tasks):
    prepare_gtzan(write_gtzan_tree(root / "gtzan")["root"], tasks, allow_missing=True)
    prepare_mtat(write_mtat_tree(root / "mtat")["root"], tasks)
    prepare_emomusic(write_emomusic_tree(root / "emo")["root"], tasks,
                     allow_missing=True)
    prepare_giantsteps(write_giantsteps_tree(root / "gs")["root"], tasks,
                       allow_missing=True)
    prepare_nsynth(write_nsynth_tree(root / "nsynth")["root"], tasks)
    prepare_vocalset(write_vocalset_tree(root / "vocalset")["root"], tasks)
    prepare_mtg_jamendo(write_mtg_jamendo_tree(root / "mtg")["root"], tasks)


@pytest.fixture(scope="module")
def fixture_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixtures_suite")
    tasks = root / "tasks"
    prepare_all(root, tasks)
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:  # skip `pip freeze` per run
        patch.setattr("speechbrain.utils.logger.get_environment_description",
                      lambda: "test environment")
        results = run_suite(make_run(root), tasks, out,
                            hparams_dir=REPO / "hparams" / "downstream",
                            baselines=False, n_seeds=1,
                            run_opts={"device": "cpu", "noprogressbar": True},
                            overrides=FAST + "window_seconds: 2.0\n")
    return results, out, tasks


def test_every_fixture_task_is_discovered(fixture_suite):
    _, _, tasks = fixture_suite
    assert set(discover_tasks(tasks)) == EXPECTED


def test_every_fixture_task_runs_to_metrics(fixture_suite):
    results, out, _ = fixture_suite
    (variant, per_task), = results.items()
    assert set(per_task) == EXPECTED
    for task, result in per_task.items():
        if task in TOO_SMALL_FOR_ROC:
            # the tiny fixture splits have no tag with both positive and
            # negative clips: extraction and training ran, the metric
            # refuses with a clear message instead of a meaningless number
            assert "no label has both positive and negative" in result["error"]
            continue
        assert "error" not in result, (task, result.get("error"))
        metrics = result["test"]
        assert metrics, task
        finite = [v["mean"] for k, v in metrics.items() if k != "loss"]
        assert finite and all(math.isfinite(v) for v in finite), (task, metrics)
    table = (out / "results.md").read_text()
    for column in ("GTZAN", "MTAT ROC", "GS", "EMO A", "NS-pitch", "VS-singer"):
        assert column in table
