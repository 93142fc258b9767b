"""``python -m muselq_sb.downstream.sweep``: a suite's scores against one knob."""
import json

import pytest

from muselq_sb.downstream.sweep import main, parse_points, sweep_table


def _run(mean, metric="accuracy"):
    return {"main_metric": metric,
            "test": {metric: {"mean": mean, "ci95": [mean - 0.02, mean + 0.03]}}}


@pytest.fixture
def results():
    return {
        "w1": {"key": _run(0.80), "pitch": _run(0.70), "tempo": _run(0.5, "r2")},
        "w1_s2": {"key": _run(0.78), "pitch": _run(0.72), "tempo": _run(0.6, "r2")},
        "w025": {"key": _run(0.67), "pitch": _run(0.58),
                 "tempo": {"error": "probe failed"}},
        "random": {"key": _run(0.674), "pitch": _run(0.62), "tempo": _run(0.8, "r2")},
    }


def test_table_orders_values_and_keeps_each_seed(results):
    table = sweep_table(results, parse_points(["1=w1,w1_s2", "0.25=w025"]))
    # a task one variant failed is left out, not drawn with a hole
    assert list(table) == ["key accuracy", "pitch accuracy"]
    row = table["pitch accuracy"]
    assert row["x"] == [0.25, 1.0]
    assert [[m for m, _ in runs] for runs in row["runs"]] == [[0.58], [0.70, 0.72]]
    assert row["runs"][1][1][1] == pytest.approx([0.70, 0.75])
    assert row["baseline"] == pytest.approx([0.60, 0.65])


def test_command_line_writes_table_and_figure(results, tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(results))
    main([str(tmp_path), "--knob", "unmasked_weight",
          "--point", "0.25=w025", "--point", "1=w1,w1_s2"])
    text = (tmp_path / "sweep_unmasked_weight.md").read_text()
    assert text == capsys.readouterr().out
    header, _, key_row, pitch_row = text.splitlines()
    assert "unmasked_weight = 0.25" in header and "unmasked_weight = 1" in header
    assert key_row.startswith("| key accuracy | 0.670 [0.650, 0.700] | 0.800 ")
    assert "0.780 [0.760, 0.810]" in key_row and key_row.endswith("[0.654, 0.704] |")
    assert (tmp_path / "sweep_unmasked_weight.png").stat().st_size > 1000


def test_bad_points_and_unknown_variants_are_named(results, tmp_path):
    with pytest.raises(ValueError, match="'half=w05'"):
        parse_points(["half=w05"])
    with pytest.raises(ValueError, match="VALUE=VARIANT"):
        parse_points(["0.5="])
    with pytest.raises(KeyError, match="w2"):
        sweep_table(results, parse_points(["1=w1", "2=w2"]))
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--knob", "k", "--point", "1=w1", "--point", "2=w2"])
