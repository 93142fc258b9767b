"""``python -m muselq_sb.downstream.paired``: two recipes, paired by seed."""
import json

import pytest

from muselq_sb.downstream.paired import main, paired_table, verdict


def _run(acc, ap=None):
    metrics = {"accuracy": {"mean": acc}, "loss": {"mean": 1.0}}
    names = ["accuracy"]
    if ap is not None:
        metrics["ap"] = {"mean": ap}
        names.append("ap")
    return {"metrics": names, "test": metrics}


@pytest.fixture
def results():
    # recipe A beats B by 0.10 +- 0.01 on key in every pair; pitch differs
    # by +0.05 / -0.05 / 0: level. One task failed for one variant of A.
    return {
        "a1": {"key": _run(0.80, 0.5), "pitch": _run(0.70), "tempo": _run(0.4)},
        "a2": {"key": _run(0.71, 0.6), "pitch": _run(0.60), "tempo": {"error": "failed"}},
        "a3": {"key": _run(0.75, 0.4), "pitch": _run(0.65), "tempo": _run(0.5)},
        "b1": {"key": _run(0.70, 0.5), "pitch": _run(0.65), "tempo": _run(0.4)},
        "b2": {"key": _run(0.60, 0.6), "pitch": _run(0.65), "tempo": _run(0.4)},
        "b3": {"key": _run(0.66, 0.4), "pitch": _run(0.65), "tempo": _run(0.4)},
    }


def test_differences_are_taken_pair_by_pair(results):
    table = paired_table(results, ["a1", "a2", "a3"], ["b1", "b2", "b3"])
    # every declared metric, never the loss; a task one variant failed is left out
    assert list(table) == ["key accuracy", "key ap", "pitch accuracy"]
    key = table["key accuracy"]["diff"]
    assert key["values"] == pytest.approx([0.10, 0.11, 0.09])
    assert verdict(key) == "▲"
    # recipe means alone overlap (seed spread 0.045), the pairing resolves it
    assert table["key accuracy"]["a"]["std"] > 0.04
    assert verdict(table["pitch accuracy"]["diff"]) == "="
    assert table["key ap"]["diff"]["values"] == pytest.approx([0.0, 0.0, 0.0])
    # B against A is the mirror image
    back = paired_table(results, ["b1", "b2", "b3"], ["a1", "a2", "a3"])
    assert verdict(back["key accuracy"]["diff"]) == "▼"


def test_command_line_writes_table_and_figure(results, tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(results))
    main([str(tmp_path), "--name", "longer", "--a", "a1,a2,a3", "--b", "b1,b2,b3"])
    text = (tmp_path / "paired_longer.md").read_text()
    assert text == capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("| metric | a1 | b1 | a1 - b1 [95 % interval]")
    assert lines[2].startswith("| key accuracy | 0.753 ± 0.045 | 0.653 ± 0.050 | +0.100 [")
    assert lines[2].endswith("| ▲ |")
    assert lines[-1].endswith("1 / 0 / 2")
    assert (tmp_path / "paired_longer.png").stat().st_size > 1000


def test_mismatched_or_unknown_variants_are_named(results, tmp_path):
    with pytest.raises(ValueError, match="same number"):
        paired_table(results, ["a1", "a2"], ["b1"])
    with pytest.raises(ValueError, match="at least two"):
        paired_table(results, ["a1"], ["b1"])
    with pytest.raises(KeyError, match="b9"):
        paired_table(results, ["a1", "a2"], ["b1", "b9"])
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--name", "x", "--a", "a1,a2", "--b", "b1,b2"])
