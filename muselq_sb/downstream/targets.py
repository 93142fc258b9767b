"""Reads the targets of a prepared task (``task.json`` + manifest rows).

Authors
 * muselq_sb team
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

PROBE_TYPES = ("multiclass", "multilabel", "regression")


class TargetError(ValueError):
    """A manifest row has a target the task does not allow (names file:line)."""


class TaskTargets:
    """Encodes manifest rows of one task into target tensors.

    Arguments
    ---------
    task : mapping
        The content of ``task.json``.

    Example
    -------
    >>> t = TaskTargets({"name": "toy", "type": "multilabel", "target": "tags",
    ...                  "classes": ["rock", "pop", "jazz"]})
    >>> t.num_outputs
    3
    >>> t.encode([{"tags": "rock;jazz"}, {"tags": ""}], "train.csv").tolist()
    [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    """

    def __init__(self, task: Mapping) -> None:
        self.type = task["type"]
        if self.type not in PROBE_TYPES:
            raise TargetError(
                f"task {task.get('name')!r}: type {self.type!r} cannot be "
                f"probed; expected one of {list(PROBE_TYPES)}"
            )
        target = task["target"]
        self.columns = [target] if isinstance(target, str) else list(target)
        self.classes = list(task.get("classes") or [])
        if self.type != "regression" and not self.classes:
            raise TargetError(f"task {task.get('name')!r}: task.json lists no classes")
        self.index = {name: i for i, name in enumerate(self.classes)}

    @property
    def num_outputs(self) -> int:
        """Number of probe outputs (classes, or regression targets)."""
        return len(self.columns) if self.type == "regression" else len(self.classes)

    def encode(
        self, rows: Sequence[Mapping[str, str]], csv_path: str | Path
    ) -> torch.Tensor:
        """Targets of ``rows``: class index [N], multi-hot [N, C] or values [N, K].

        Raises ``TargetError`` naming ``csv_path`` and the line of a bad row.
        """
        encoded = [self._encode_row(row, csv_path, i + 2) for i, row in enumerate(rows)]
        if self.type == "multiclass":
            return torch.tensor(encoded, dtype=torch.long)
        return torch.tensor(encoded, dtype=torch.float32).reshape(
            len(rows), self.num_outputs
        )

    def _encode_row(self, row: Mapping[str, str], path: str | Path, line: int):
        missing = [c for c in self.columns if c not in row]
        if missing:
            raise TargetError(f"{path}:{line}: row lacks target columns {missing}")
        if self.type == "regression":
            try:
                return [float(row[c]) for c in self.columns]
            except ValueError:
                raise TargetError(
                    f"{path}:{line}: expected numbers in {self.columns}, got "
                    f"{[row[c] for c in self.columns]}"
                ) from None
        names = [n for n in str(row[self.columns[0]]).split(";") if n]
        unknown = [n for n in names if n not in self.index]
        if unknown:
            raise TargetError(
                f"{path}:{line}: unknown class {unknown}; task.json lists "
                f"{len(self.classes)} classes"
            )
        if self.type == "multiclass":
            if len(names) != 1:
                raise TargetError(f"{path}:{line}: expected one class, got {names}")
            return self.index[names[0]]
        hot = [0.0] * len(self.classes)
        for name in names:
            hot[self.index[name]] = 1.0
        return hot


def item_groups(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """The averaging key of each row: its ``group`` when set, else its ID.

    Example
    -------
    >>> item_groups([{"ID": "a", "group": "s1"}, {"ID": "b", "group": ""},
    ...              {"ID": "c"}])
    ['s1', 'b', 'c']
    """
    return [row.get("group") or row["ID"] for row in rows]
