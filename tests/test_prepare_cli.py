"""Tests of ``python -m muselq_sb.prepare <dataset>`` (the dispatcher)."""
import doctest
import subprocess
import sys
from types import SimpleNamespace

import pytest

import muselq_sb.prepare.__main__ as dispatcher
from muselq_sb.dataio.manifest import read_task
from muselq_sb.prepare.common import PrepareError
from tests.fixtures.nsynth import write_nsynth_tree
from tests.fixtures.vocalset import write_vocalset_tree


def test_module_entry_point(tmp_path):
    tree = write_nsynth_tree(tmp_path / "nsynth")
    done = subprocess.run(
        [sys.executable, "-m", "muselq_sb.prepare", "nsynth",
         "--data_folder", str(tree["root"]),
         "--save_folder", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "task nsynth_instrument" in done.stdout
    assert read_task(tmp_path / "out" / "nsynth_pitch")["splits"] == {
        "train": 4, "valid": 2, "test": 2}


def test_dispatches_options(tmp_path, capsys):
    tree = write_vocalset_tree(tmp_path / "vocalset")
    assert dispatcher.main(["vocalset", "--data_folder", str(tree["root"]),
                            "--save_folder", str(tmp_path / "out"),
                            "--chunk_seconds", "2"]) == 0
    assert "task vocalset_singer" in capsys.readouterr().out
    info = read_task(tmp_path / "out" / "vocalset_technique")
    assert info["chunk_seconds"] == 2.0


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(SystemExit) as err:
        dispatcher.main(["timit", "--data_folder", "x", "--save_folder", "y"])
    message = str(err.value.code)
    assert "unknown dataset 'timit'" in message
    for name in ("music4all", "fma", "folder", "mtat", "mtg_jamendo",
                 "giantsteps", "gtzan", "emomusic", "nsynth", "vocalset"):
        assert name in message


def test_module_not_written_yet(monkeypatch):
    monkeypatch.setattr(dispatcher, "DATASETS",
                        dispatcher.DATASETS + ("not_written_yet",))
    with pytest.raises(SystemExit, match="'not_written_yet' is not available"):
        dispatcher.main(["not_written_yet"])


def test_usage(capsys):
    assert dispatcher.main([]) == 2
    assert "datasets: music4all, fma" in capsys.readouterr().err
    assert dispatcher.main(["--help"]) == 0
    assert "usage: python -m muselq_sb.prepare <dataset>" in \
        capsys.readouterr().out


def test_dataset_help(capsys):
    with pytest.raises(SystemExit) as err:
        dispatcher.main(["emomusic", "--help"])
    assert err.value.code == 0
    assert "--crop_seconds" in capsys.readouterr().out


def test_prepare_error_is_one_line(tmp_path, capsys):
    code = dispatcher.main(["emomusic", "--data_folder", str(tmp_path),
                            "--save_folder", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'songs_info.csv'}: ")
    assert "Traceback" not in err


MODULES_WITH_SHARED_CLI = ("gtzan", "mtat", "mtg_jamendo", "giantsteps",
                           "emomusic", "nsynth", "vocalset")


@pytest.mark.parametrize("name", MODULES_WITH_SHARED_CLI)
def test_dataset_usage_names_the_command(name, capsys):
    with pytest.raises(SystemExit) as err:
        dispatcher.main([name, "--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m muselq_sb.prepare {name} ")
    assert "--data_folder" in out and "--save_folder" in out


@pytest.mark.parametrize("name", MODULES_WITH_SHARED_CLI)
def test_prepare_error_is_one_line_in_every_module(name, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    args = ["--data_folder", str(missing), "--save_folder", str(tmp_path / "o")]
    assert dispatcher.main([name, *args]) == 1
    via_dispatcher = capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        dispatcher.load_module(name).main(args)
    assert err.value.code == 1
    direct = capsys.readouterr().err
    assert via_dispatcher == direct
    assert direct.startswith("error: ") and direct.count("\n") == 1


def test_module_run_directly_reports_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "muselq_sb.prepare.vocalset",
         "--data_folder", str(tmp_path), "--save_folder", str(tmp_path / "o")],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {tmp_path / 'FULL'}: VocalSet FULL folder not found\n")


def test_status_of_modules_without_run_cli(monkeypatch, capsys, tmp_path):
    def raises(argv):
        raise PrepareError("bad row", tmp_path / "a.csv", 3)

    modules = {"raises": SimpleNamespace(main=raises),
               "path": SimpleNamespace(main=lambda argv: tmp_path)}
    monkeypatch.setattr(dispatcher, "load_module", modules.__getitem__)
    assert dispatcher.main(["raises"]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'a.csv'}:3: bad row\n"
    assert dispatcher.main(["path"]) == 0  # a main returning its task folder


def test_docstring_examples():
    # pytest's --doctest-modules leaves __main__.py out: run them here.
    result = doctest.testmod(dispatcher)
    assert result.attempted >= 3 and result.failed == 0
