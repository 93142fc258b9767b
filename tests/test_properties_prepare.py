"""Property tests: malformed annotations never crash a preparation script.

Every preparation script runs on a small valid tree whose annotation files
(and shipped split lists, passed explicitly) get one random mutation: a line
replaced by random text, deleted, duplicated, a field emptied or replaced, a
truncation, random bytes that are not UTF-8. The script must then either
succeed (complete task folders) or raise ``PrepareError`` naming the file
(and its line when it gives one) -- and leave no manifest behind.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muselq_sb.dataio.manifest import read_manifest, read_task
from muselq_sb.prepare.common import SPLITS_DIR, PrepareError
from muselq_sb.prepare.emomusic import SPLIT_LIST as EMOMUSIC_SPLIT, prepare_emomusic
from muselq_sb.prepare.folder import track_id_from_path
from muselq_sb.prepare.giantsteps import SPLIT_FILE as GIANTSTEPS_SPLIT
from muselq_sb.prepare.giantsteps import parse_key, prepare_giantsteps
from muselq_sb.prepare.gtzan import prepare_gtzan
from muselq_sb.prepare.mtat import prepare_mtat
from muselq_sb.prepare.mtg_jamendo import prepare_mtg_jamendo
from muselq_sb.prepare.nsynth import prepare_nsynth
from muselq_sb.prepare.pretrain import prepare_pretrain
from muselq_sb.prepare.vocalset import prepare_vocalset, singer_id
from tests.fixtures.emomusic import write_emomusic_tree
from tests.fixtures.fma import write_fma
from tests.fixtures.giantsteps import write_giantsteps_tree
from tests.fixtures.gtzan import write_gtzan_tree
from tests.fixtures.mtat import write_mtat_tree
from tests.fixtures.mtg_jamendo import write_mtg_jamendo_tree
from tests.fixtures.music4all import write_music4all
from tests.fixtures.nsynth import write_nsynth_tree
from tests.fixtures.vocalset import write_vocalset_tree

SPLIT_GTZAN = SPLITS_DIR / "gtzan"
ANNOTATION_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".key")
PROPERTY = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


WRITERS = {  # data set -> writes a valid tree (and split lists) under root
    "gtzan": lambda root: (write_gtzan_tree(root),
                           shutil.copytree(SPLIT_GTZAN, root / "splits")),
    "mtat": write_mtat_tree,
    "mtg_jamendo": write_mtg_jamendo_tree,
    "giantsteps": lambda root: (write_giantsteps_tree(root),
                                shutil.copy(GIANTSTEPS_SPLIT, root / "split.tsv")),
    "emomusic": lambda root: (write_emomusic_tree(root),
                              shutil.copy(EMOMUSIC_SPLIT, root / "split.tsv")),
    "nsynth": write_nsynth_tree,
    "music4all": write_music4all,
    "fma": write_fma,
}
PREPARERS = {  # data set -> (root, out) -> task folder(s)
    "gtzan": lambda root, out: prepare_gtzan(
        root, out, split_folder=root / "splits", allow_missing=True),
    "mtat": prepare_mtat,
    "mtg_jamendo": prepare_mtg_jamendo,
    "giantsteps": lambda root, out: prepare_giantsteps(
        root, out, split_file=root / "split.tsv", allow_missing=True),
    "emomusic": lambda root, out: prepare_emomusic(
        root, out, split_list=root / "split.tsv", allow_missing=True),
    "nsynth": lambda root, out: prepare_nsynth(root, out, allow_missing=True),
    "music4all": lambda root, out: prepare_pretrain(
        [{"type": "music4all", "path": str(root)}], out, segment_seconds=2.0),
    "fma": lambda root, out: prepare_pretrain(
        [{"type": "fma", "path": str(root)}], out, segment_seconds=2.0),
}
DATASETS = list(WRITERS)


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """One valid tree per data set and its annotation files."""
    made = {}
    for name in DATASETS:
        root = tmp_path_factory.mktemp(name) / "tree"
        WRITERS[name](root)
        files = sorted(p.relative_to(root) for p in root.rglob("*")
                       if p.is_file() and p.suffix in ANNOTATION_SUFFIXES)
        assert files, name
        made[name] = (root, files)
    return made


def _copy_tree(template, dest):
    """Hard-links every file of ``template`` under ``dest`` (fast)."""
    shutil.copytree(template, dest, copy_function=os.link)


FIELD = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
MUTATION = st.one_of(
    st.tuples(st.just("replace_line"), st.integers(0, 10**6), FIELD),
    st.tuples(st.just("delete_line"), st.integers(0, 10**6), st.just("")),
    st.tuples(st.just("duplicate_line"), st.integers(0, 10**6), st.just("")),
    st.tuples(st.just("replace_field"), st.integers(0, 10**6),
              st.one_of(st.just(""), st.just("-1"), st.just("nan"), st.just("1e999"),
                        st.just("x"), FIELD)),
    st.tuples(st.just("drop_last_field"), st.integers(0, 10**6), st.just("")),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just("")),
    st.tuples(st.just("insert"), st.integers(0, 10**6),
              st.sampled_from(["\t", ",", '"', "\n", "\x00", "{", "]"])),
    st.tuples(st.just("not_utf8"), st.integers(0, 10**6), st.just("")),
)


def mutate(path, mutation):
    """Applies ``mutation`` to the text file at ``path`` (a fresh inode)."""
    kind, where, text = mutation
    data = path.read_bytes()
    os.unlink(path)  # hard-linked to the template: never write through it
    if kind == "not_utf8":
        at = where % (len(data) + 1)
        path.write_bytes(data[:at] + b"\xff\xfe\xc3" + data[at:])
        return
    content = data.decode("utf-8")
    lines = content.split("\n")
    i = where % len(lines)
    sep = "\t" if "\t" in lines[i] else ","
    fields = lines[i].split(sep)
    if kind == "replace_line":
        lines[i] = text
    elif kind == "delete_line":
        del lines[i]
    elif kind == "duplicate_line":
        lines.insert(i, lines[i])
    elif kind == "replace_field":
        fields[where % len(fields)] = text
        lines[i] = sep.join(fields)
    elif kind == "drop_last_field":
        lines[i] = sep.join(fields[:-1])
    elif kind == "truncate":
        content = content[:where % (len(content) + 1)]
        path.write_text(content, encoding="utf-8")
        return
    elif kind == "insert":
        at = where % (len(content) + 1)
        path.write_text(content[:at] + text + content[at:], encoding="utf-8")
        return
    path.write_text("\n".join(lines), encoding="utf-8")


def check_complete(folder):
    """A task folder is whole: its task.json and every CSV it counts."""
    info = read_task(folder)
    for split, count in info["splits"].items():
        assert len(read_manifest(Path(folder) / f"{split}.csv")) == count
    files = {p.name for p in Path(folder).iterdir()}
    assert files == {"task.json", *(f"{s}.csv" for s in info["splits"])}, files


def check_outcome(prepare, out):
    """Success with complete task folders, or a PrepareError naming a file
    (and line) with no partial task folder left (a data set of several
    tasks may have finished the tasks before the failing one)."""
    try:
        result = prepare(out)
    except PrepareError as err:
        assert err.path, f"PrepareError without a file: {err}"
        assert str(err).startswith(err.path)
        if err.line is not None:
            assert err.line >= 1 and f"{err.path}:{err.line}: " in str(err)
        written = {p.parent for p in out.rglob("*") if p.is_file()} if out.exists() else set()
        for folder in written:
            check_complete(folder)
        return str(err)
    for folder in result if isinstance(result, (list, tuple)) else [result]:
        check_complete(folder)
    return None


@pytest.mark.parametrize("dataset", DATASETS)
def test_valid_tree_prepares(dataset, templates, tmp_path):
    root, _ = templates[dataset]
    assert check_outcome(lambda out: PREPARERS[dataset](root, out), tmp_path / "out") is None


@pytest.mark.parametrize("dataset", DATASETS)
@PROPERTY
@given(data=st.data())
def test_mutated_annotations_raise_only_prepare_error(dataset, templates, data):
    template, files = templates[dataset]
    rel = data.draw(st.sampled_from(files), label="file")
    mutation = data.draw(MUTATION, label="mutation")
    work = Path(tempfile.mkdtemp(prefix="mut_"))
    try:
        root = work / "tree"
        _copy_tree(template, root)
        mutate(root / rel, mutation)
        check_outcome(lambda out: PREPARERS[dataset](root, out), work / "out")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@PROPERTY
@given(name=FIELD, folder=st.sampled_from(["female1/arpeggios/belt", "male1",
                                           "female2/excerpts", ""]))
def test_vocalset_odd_file_names(name, folder, tmp_path_factory):
    template = tmp_path_factory.getbasetemp() / "vocalset_template"
    if not template.exists():
        write_vocalset_tree(template)
    work = Path(tempfile.mkdtemp(prefix="voc_"))
    try:
        root = work / "VocalSet"
        _copy_tree(template, root)
        odd = root / folder / (name.replace("/", "_") + ".wav")
        if odd.name not in (".wav", "..wav") and not odd.exists():
            odd.parent.mkdir(parents=True, exist_ok=True)
            odd.write_bytes(b"RIFF....WAVE")
        check_outcome(lambda out: prepare_vocalset(root, out), work / "out")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@PROPERTY
@given(text=FIELD)
def test_parse_key_raises_only_value_error(text):
    try:
        key = parse_key(text)
    except ValueError as err:
        assert repr(text) in str(err)
    else:
        tonic, mode = key.split(" ")
        assert mode in ("major", "minor") and parse_key(key) == key


@PROPERTY
@given(name=FIELD)
def test_singer_id_never_raises(name):
    assert singer_id(name) is None or isinstance(singer_id(name), str)


@PROPERTY
@given(parts=st.lists(FIELD.filter(lambda s: s not in ("", ".", "..") and "/" not in s
                                   and "\x00" not in s), min_size=1, max_size=3))
def test_folder_track_ids_are_safe(parts):
    track = track_id_from_path("/".join(parts), "folder")
    assert track.startswith("folder_") and "," not in track and "\n" not in track
