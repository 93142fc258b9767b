"""The environment guard (torch + torchaudio load together) and the lock
that installs the pair CI tested."""
import importlib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from muselq_sb.utils import environment
from muselq_sb.utils.environment import (
    IncompatibleTorchaudioError,
    check_torch_audio,
    import_torchaudio,
)

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
BROKEN = "undefined symbol: torch_exception_get_what_without_backtrace"


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            pins.setdefault(req.name.lower().replace("_", "-"), set()).update(
                str(s.version) for s in req.specifier
            )
    return pins


def test_installed_pair_computes_a_mel_spectrogram():
    summary = check_torch_audio()
    assert metadata.version("torchaudio") in summary
    assert "mel spectrogram OK" in summary


def test_unloadable_torchaudio_names_the_pair_and_the_fix(monkeypatch):
    real_import = importlib.import_module

    def fake_import(name, *args):
        if name == "torchaudio":
            raise OSError(f"libtorchaudio.so: {BROKEN}")
        return real_import(name, *args)

    monkeypatch.setattr(environment.importlib, "import_module", fake_import)
    with pytest.raises(IncompatibleTorchaudioError) as info:
        import_torchaudio()
    message = str(info.value)
    assert f"torchaudio {metadata.version('torchaudio')}" in message
    assert f"torch {metadata.version('torch')}" in message
    assert BROKEN in message
    assert "pip install -c requirements/lock.txt" in message


def test_package_import_fails_once_with_the_message(tmp_path):
    """A torchaudio whose library does not load (simulated by a package that
    raises as the real one does) stops ``import muselq_sb`` and the
    environment check with the guard's message, not SpeechBrain's OSError."""
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text(f"raise OSError({BROKEN!r})\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    for args in (["-c", "import muselq_sb"], ["-m", "muselq_sb.utils.environment"]):
        proc = subprocess.run(
            [sys.executable, *args], env=env, capture_output=True, text=True
        )
        assert proc.returncode != 0
        assert "does not work with torch" in proc.stderr
        assert "requirements/lock.txt" in proc.stderr


def test_lock_pins_every_requirement_of_setup_py():
    """Every requirement of the package and of each extra is pinned in the
    lock to one exact version inside setup.py's range (run `make lock` after
    changing setup.py)."""
    pins = _lock_pins()
    requires = metadata.requires("muselq_sb")
    assert requires
    for text in requires:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is in setup.py but not in {LOCK}"
        for version in pins[name]:
            assert req.specifier.contains(version, prereleases=True), (
                f"{LOCK} pins {name}=={version} outside setup.py's {req.specifier}"
            )


def test_lock_installs_the_pair_the_guard_recommends():
    pins = _lock_pins()
    assert (pins["torch"], pins["torchaudio"]) == (
        {environment.TESTED_PAIR[0]},
        {environment.TESTED_PAIR[1]},
    )
