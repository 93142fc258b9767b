"""The pictures of ``docs/demo_corpus.md``: spectrograms and label counts.

Authors
 * muselq_sb team
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from muselq_sb.dataio.audio import load_audio
from muselq_sb.dataio.demo_corpus import SAMPLE_RATE, STYLES_INDEX
from muselq_sb.dataio.manifest import SPLITS, read_manifest
from muselq_sb.lobes.frontend import MelFrontend


def plot_demo_corpus(root: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Draws ``demo_spectrograms.png`` and ``demo_labels.png`` into ``out_dir``.

    Arguments
    ---------
    root : path-like
        A built demo corpus.
    out_dir : path-like
        Where the pictures go.

    Returns
    -------
    list of pathlib.Path
        The two picture files.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def rows(task: str) -> list[dict]:
        return [r for s in SPLITS for r in read_manifest(root / "tasks" / task / f"{s}.csv")]

    genre, key, lead = rows("demo_genre"), rows("demo_key"), rows("demo_instrument")
    key_of = {r["ID"]: r["label"] for r in key}
    lead_of = {r["ID"]: r["label"] for r in lead}
    first_of_genre = {r["label"]: r for r in sorted(genre, key=lambda r: r["ID"])}
    picks = [(f"{g} / {key_of[r['ID']]} / lead {lead_of[r['ID']]}", r["path"])
             for g, r in sorted(first_of_genre.items())][:4]
    picks += [(f"note: {rows('demo_nsynth_instrument')[0]['label']}",
               rows("demo_nsynth_instrument")[0]["path"]),
              (f"voice: {rows('demo_vocal_technique')[0]['label']}",
               rows("demo_vocal_technique")[0]["path"])]
    frontend = MelFrontend(sample_rate=SAMPLE_RATE)
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 2.2 * len(picks)))
    for ax, (title, path) in zip(axes, picks):
        y = load_audio(path, sample_rate=SAMPLE_RATE)
        with torch.no_grad():
            spec = frontend(y[None], torch.ones(1))[0][0].T.numpy()
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                  extent=(0, y.numel() / SAMPLE_RATE, 0, frontend.n_mels))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    spectrograms = out_dir / "demo_spectrograms.png"
    fig.savefig(spectrograms, dpi=55)
    plt.close(fig)

    emotion, tempo = rows("demo_emotion"), rows("demo_tempo")
    counts = {
        "genre": [r["label"] for r in genre], "lead instrument": [r["label"] for r in lead],
        "key": [r["label"] for r in key],
        "tags": [t for r in rows("demo_tags") for t in r["tags"].split(";")],
        "vocal technique": [r["label"] for r in rows("demo_vocal_technique")],
    }
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, (title, values) in zip(axes.flat, counts.items()):
        names, n = np.unique(values, return_counts=True)
        ax.bar(range(len(names)), n)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_title(title)
    axes.flat[5].hist([float(r["tempo"]) for r in tempo], bins=20)
    axes.flat[5].set_title("tempo (BPM)")
    axes.flat[6].hist([int(r["pitch"]) for r in rows("demo_nsynth_pitch")], bins=49)
    axes.flat[6].set_title("note pitch (MIDI)")
    genre_of = {r["ID"]: r["label"] for r in genre}
    axes.flat[7].scatter([float(r["valence"]) for r in emotion],
                         [float(r["arousal"]) for r in emotion], s=8,
                         c=[STYLES_INDEX[genre_of[r["ID"]]] for r in emotion],
                         cmap="tab10")
    axes.flat[7].set_xlabel("valence")
    axes.flat[7].set_ylabel("arousal")
    axes.flat[7].set_title("emotion (colour = genre)")
    fig.tight_layout()
    labels = out_dir / "demo_labels.png"
    fig.savefig(labels, dpi=70)
    plt.close(fig)
    return [spectrograms, labels]
