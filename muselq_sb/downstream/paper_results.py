"""The columns of the paper's Table 3 and its reported rows.

Numbers from Vavaroutsos et al., "Linear Complexity Self-Supervised Learning
for Music Understanding with Random Quantizer" (SAC '26), Table 3 (selected
rows), as summarised in the project's paper notes.

Authors
 * muselq_sb team
"""
from __future__ import annotations

from typing import NamedTuple


class Column(NamedTuple):
    """One result column: its header, the task (``task.json`` name), the metric."""

    label: str
    task: str
    metric: str


TABLE3_COLUMNS: tuple[Column, ...] = (
    Column("MTAT ROC", "mtat", "roc_auc"),
    Column("MTAT AP", "mtat", "ap"),
    Column("MTG ROC", "mtg_top50", "roc_auc"),
    Column("MTG AP", "mtg_top50", "ap"),
    Column("GS", "giantsteps_key", "key_weighted"),
    Column("GTZAN", "gtzan", "accuracy"),
    Column("MTG-genre ROC", "mtg_genre", "roc_auc"),
    Column("MTG-genre AP", "mtg_genre", "ap"),
    Column("EMO A", "emomusic", "r2_arousal"),
    Column("EMO V", "emomusic", "r2_valence"),
    Column("NS-inst", "nsynth_instrument", "accuracy"),
    Column("MTG-inst ROC", "mtg_instrument", "roc_auc"),
    Column("MTG-inst AP", "mtg_instrument", "ap"),
    Column("NS-pitch", "nsynth_pitch", "accuracy"),
    Column("VS-tech", "vocalset_technique", "accuracy"),
    Column("VS-singer", "vocalset_singer", "accuracy"),
)

# Not in the paper's table; reported after its columns when prepared.
EXTRA_COLUMNS: tuple[Column, ...] = (
    Column("MTG-mood ROC", "mtg_moodtheme", "roc_auc"),
    Column("MTG-mood AP", "mtg_moodtheme", "ap"),
)

MAIN_COLUMNS = TABLE3_COLUMNS + EXTRA_COLUMNS

_PAPER_VALUES = {
    "BRN att large (M4A only)": (
        0.862, 0.367, 0.766, 0.208, 0.887, 0.441, 0.788, 0.119,
        0.610, 0.354, 0.706, 0.684, 0.144, 0.893, 0.574, 0.983,
    ),
    "BRN sum large (M4A only)": (
        0.870, 0.383, 0.767, 0.212, 0.836, 0.586, 0.793, 0.121,
        0.629, 0.321, 0.740, 0.688, 0.140, 0.878, 0.583, 0.978,
    ),
    "BRN sum large (200k h)": (
        0.870, 0.397, 0.776, 0.227, 0.845, 0.666, 0.803, 0.130,
        0.666, 0.448, 0.756, 0.708, 0.155, 0.884, 0.647, 0.992,
    ),
    "MERT-330M": (
        0.891, 0.432, 0.786, 0.235, 0.856, 0.689, 0.816, 0.137,
        0.714, 0.413, 0.659, 0.717, 0.163, 0.928, 0.642, 0.905,
    ),
}


def paper_rows() -> dict[str, dict[str, float]]:
    """The paper's rows as ``{model: {column label: value}}``.

    Example
    -------
    >>> paper_rows()["MERT-330M"]["GTZAN"]
    0.689
    """
    return {
        model: {col.label: value for col, value in zip(TABLE3_COLUMNS, values)}
        for model, values in _PAPER_VALUES.items()
    }
