"""Installs the muselq_sb SpeechBrain plugin (``pip install -e .[dev]``)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = {}
exec((HERE / "muselq_sb" / "version.py").read_text(), VERSION)

# Versions pinned to those the test suite runs with (CPU, Python 3.11).
# torch/torchaudio 2.11 come from PyPI (CUDA wheels that also run on CPU);
# the pin keeps pip away from any other local torch build.
INSTALL_REQUIRES = [
    "torch>=2.11.0,<2.12",
    "torchaudio==2.11.0",
    "speechbrain==1.1.2",
    "hyperpyyaml==1.2.*",
    "sentencepiece==0.2.*",
    "mir_eval==0.8.*",
    "soundfile==0.14.*",
    "numpy==2.4.*",
    "scipy==1.17.*",
    "scikit-learn==1.9.*",
    "tqdm==4.*",
    "matplotlib==3.11.*",
    "tensorboard==2.21.*",
    "safetensors==0.8.*",
    "huggingface_hub==2.4.*",
    "psutil==7.*",
    "webdataset==1.0.*",
    "av>=14,<19",
]
EXTRAS = {
    "dev": [
        "pytest==9.*", "hypothesis==6.*", "onnx==1.23.*",
        "onnxruntime==1.31.*", "onnxscript==0.7.*", "transformers==5.*",
    ],
    "bench": ["transformers==5.*"],
    "export": ["onnx==1.23.*", "onnxruntime==1.31.*", "onnxscript==0.7.*"],
}

setup(
    name="muselq_sb",
    version=VERSION["__version__"],
    description=(
        "Linear-complexity music foundation models (BEST-RQ + SummaryMixing)"
        " for SpeechBrain: pre-training, MIR probes, inference."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["muselq_sb", "muselq_sb.*"]),
    package_data={"muselq_sb": ["resources/*", "resources/**/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "muselq-demo-corpus=muselq_sb.prepare.demo:main",
            "muselq-embed=muselq_sb.inference.cli:main",
        ]
    },
    license="Apache-2.0",
)
