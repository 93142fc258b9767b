"""Test configuration: one thread, deterministic seeds, hypothesis-safe
module table."""
import sys

import pytest
import torch

# First import of the package: a torch/torchaudio pair that cannot load
# together stops the run here with one message naming both versions and the
# fix (muselq_sb.utils.environment), not with an import error per test.
import muselq_sb  # noqa: F401  isort: skip
from speechbrain.utils.importutils import LazyModule


def _drop_unimportable_lazy_modules() -> None:
    """Removes SpeechBrain lazy modules whose import fails (optional
    integrations such as k2) from ``sys.modules``: hypothesis scans every
    module's ``__file__``, and these raise ImportError instead of
    AttributeError."""
    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule):
            try:
                getattr(module, "__file__")
            except ImportError:
                del sys.modules[name]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    _drop_unimportable_lazy_modules()
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """After collection imported everything, before hypothesis scans."""
    _drop_unimportable_lazy_modules()
