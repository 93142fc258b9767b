"""Shared helpers of the benchmark scripts: command line, threads, interleaved
timing, peak-memory measurement in a fresh child process, tables and JSON.

Timings on a shared machine are noisy, so compared callables are timed
round-robin in the same process (``interleaved_times``) and reported as
medians and ratios of medians. CPU tensors are not seen by ``tracemalloc``,
so memory is the increase of the peak resident set size (``VmHWM``, reset
through ``/proc/self/clear_refs``) over one measured call, in a child forked
from a clean fork server (``peak_memory``).

Authors
 * muselq_sb team
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

#: Repository root (the hparams files are read from here).
ROOT = Path(__file__).resolve().parents[1]
#: Folder the scripts write their JSON to by default.
RESULTS_DIR = Path("results/bench")
#: Folder of the plots shown in docs/benchmarks.md.
IMG_DIR = Path("docs/img")


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """Argument parser with the options every benchmark shares.

    Arguments
    ---------
    name : str
        Script name (``results/bench/<name>.json`` is the default output).
    description : str
        Help text.

    Returns
    -------
    argparse.ArgumentParser
        With ``--out``, ``--threads``, ``--repeats`` and ``--quick``.

    Example
    -------
    >>> args = parser("demo", "A demo.").parse_args(["--quick"])
    >>> args.quick, args.threads, args.out
    (True, 2, 'results/bench/demo.json')
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=str(RESULTS_DIR / f"{name}.json"),
                   help="JSON file for the results")
    p.add_argument("--threads", type=int, default=2,
                   help="torch intra-op threads (same for every compared side)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed calls per configuration (interleaved)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, finishes in seconds (smoke test)")
    return p


def set_threads(threads: int) -> None:
    """Sets torch's intra-op threads (and one inter-op thread).

    Example
    -------
    >>> set_threads(1); torch.get_num_threads()
    1
    """
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def interleaved_times(
    calls: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1,
) -> dict[str, list[float]]:
    """Wall-clock seconds of each callable, timed round-robin.

    Every round calls each callable once, in a rotating order, so slow
    phases of a shared machine hit all of them alike.

    Arguments
    ---------
    calls : mapping
        Name -> zero-argument callable.
    repeats : int
        Timed rounds.
    warmup : int
        Untimed rounds first.

    Returns
    -------
    dict
        Name -> list of ``repeats`` durations.

    Example
    -------
    >>> t = interleaved_times({"a": lambda: None, "b": lambda: None}, 3)
    >>> sorted(t), len(t["a"])
    (['a', 'b'], 3)
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def summary(times: Sequence[float]) -> dict[str, float]:
    """Median, min and max (seconds) and count of repeated timings.

    Example
    -------
    >>> summary([3.0, 1.0, 2.0])
    {'median_s': 2.0, 'min_s': 1.0, 'max_s': 3.0, 'n': 3}
    """
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "n": len(times),
    }


def ratio(numerator: float, denominator: float) -> Optional[float]:
    """``numerator / denominator`` rounded to 3 places, None if undefined.

    Example
    -------
    >>> ratio(10.0, 4.0), ratio(1.0, 0.0)
    (2.5, None)
    """
    if not denominator or numerator is None:
        return None
    return round(numerator / denominator, 3)


def _status_kib(key: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as f:
        return int(re.search(rf"^{key}:\s+(\d+)", f.read(), re.M).group(1))


def release_memory() -> None:
    """Collects garbage and hands freed heap pages back to the system."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def measure_call(call: Callable[[], Any]) -> dict[str, float]:
    """Seconds and peak RSS increase (MiB) of one call in this process.

    The baseline is the resident size after releasing freed memory; the
    peak is the high-water mark, reset just before the call (Linux >= 4.0).

    Example
    -------
    >>> m = measure_call(lambda: torch.ones(4_000_000).sum())
    >>> sorted(m), m["peak_mib"] >= 0
    (['baseline_mib', 'peak_mib', 'seconds'], True)
    """
    release_memory()
    baseline = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return {
        "seconds": seconds,
        "peak_mib": round((peak - baseline) / 1024, 1),
        "baseline_mib": round(baseline / 1024, 1),
    }


def _child(conn, builder, kwargs, threads) -> None:
    """Fork-server child: build, then measure one call, report by pipe."""
    try:
        set_threads(threads)
        call = builder(**kwargs)
        conn.send(measure_call(call))
    except Exception as err:  # reported to the parent, which records it
        conn.send({"error": f"{type(err).__name__}: {err}"})


_CONTEXT: Optional[mp.context.BaseContext] = None


def _context() -> mp.context.BaseContext:
    """A fork-server context whose server has imported torch and the script.

    Children fork from that clean server (no torch thread pool yet), so each
    configuration runs in a fresh process without paying the imports again.
    """
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["__main__", "torch", "common"])
    return _CONTEXT


def start_memory_server() -> None:
    """Starts the fork server now, so its imports overlap the timing runs."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def peak_memory(
    builder: Callable[..., Callable[[], Any]],
    kwargs: Mapping[str, Any],
    threads: int,
) -> dict[str, Any]:
    """Peak RSS increase of one call, measured in a fresh child process.

    Arguments
    ---------
    builder : callable
        Module-level function; ``builder(**kwargs)`` builds the model and
        inputs (and may warm up) and returns the zero-argument call to
        measure.
    kwargs : mapping
        Picklable keyword arguments of ``builder``.
    threads : int
        torch threads in the child.

    Returns
    -------
    dict
        ``seconds``, ``peak_mib`` and ``baseline_mib`` of the call, or
        ``error`` when the child failed.
    """
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, builder, dict(kwargs), threads))
    proc.start()
    sender.close()
    ready = wait([receiver, proc.sentinel])
    if receiver in ready and receiver.poll():
        result = receiver.recv()
    else:
        result = {"error": f"child exited with code {proc.exitcode}"}
    proc.join()
    return result


def machine_info(threads: int) -> dict[str, Any]:
    """CPU model, cores, ISA flags of note, torch version and threads.

    Example
    -------
    >>> info = machine_info(2)
    >>> {"cpu", "cores", "torch", "threads", "amx"} <= set(info)
    True
    """
    model, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            text = f.read()
        model = re.search(r"^model name\s*:\s*(.*)$", text, re.M).group(1)
        flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1)
    except (OSError, AttributeError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "amx": "amx_bf16" in flags.split(),
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "torch": torch.__version__,
        "threads": threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Writes ``payload`` as indented JSON, creating parent folders.

    Example
    -------
    >>> import tempfile
    >>> p = write_json(Path(tempfile.mkdtemp()) / "a" / "r.json", {"x": 1})
    >>> json.loads(p.read_text())
    {'x': 1}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def benchmark_result(name: str, threads: int, config: Mapping[str, Any],
                     rows: Sequence[Mapping[str, Any]], **sections: Any) -> dict:
    """The JSON payload of a benchmark: its name, the machine, its
    configuration, its rows, then ``sections`` (checks, ratios...).

    Example
    -------
    >>> r = benchmark_result("toy", 1, {"quick": True}, [], checks={})
    >>> list(r)
    ['benchmark', 'machine', 'config', 'rows', 'checks']
    """
    return {"benchmark": name, "machine": machine_info(threads),
            "config": config, "rows": rows, **sections}


def report(result: dict, columns: Sequence[str], out: str | Path,
           lines: Sequence[str] = ()) -> dict:
    """Prints the rows of ``result`` as a table, then ``lines``; writes the
    JSON to ``out`` and returns ``result``.

    Example
    -------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "toy.json"
    >>> _ = report({"rows": [{"a": 1}]}, ["a"], out, ["done"])  # doctest: +ELLIPSIS
    | a |
    |---|
    | 1 |
    done
    wrote .../toy.json
    """
    print(format_table(result["rows"], columns))
    for line in lines:
        print(line)
    print(f"wrote {write_json(out, result)}")
    return result


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (floats with 3 significant digits).

    Example
    -------
    >>> print(format_table([{"a": 1.23456, "b": None}], ["a", "b"]))
    | a | b |
    |---|---|
    | 1.23 | - |
    """

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |"
              for r in rows]
    return "\n".join(lines)


def dtype_of(name: str) -> torch.dtype:
    """``"fp32"`` / ``"bf16"`` -> torch dtype.

    Example
    -------
    >>> dtype_of("bf16")
    torch.bfloat16
    """
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if name not in dtypes:
        raise ValueError(f"unknown dtype {name!r}; valid: {list(dtypes)}")
    return dtypes[name]


def cast_model(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``model.to(dtype)``, keeping a ``MusicModel``'s log-mel front-end fp32.

    ``MelFrontend`` computes its spectrogram in float32 and fails against a
    bf16 filterbank, so the front-end stays float32; run bf16 models under
    ``precision(dtype)`` so the encoder's inputs follow.

    Example
    -------
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> m.frontend = torch.nn.Linear(2, 2)
    >>> m = cast_model(m, torch.bfloat16)
    >>> m[0].weight.dtype, m.frontend.weight.dtype
    (torch.bfloat16, torch.float32)
    """
    model.to(dtype)
    if hasattr(model, "frontend"):
        model.frontend.float()
    return model


def precision(dtype: torch.dtype, device: str = "cpu"):
    """Autocast to ``dtype`` for half types, a no-op context for float32.

    Example
    -------
    >>> with precision(torch.bfloat16):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=dtype)


def load_hparams(size: str, overrides: Optional[Mapping[str, Any]] = None,
                 name: str = "brn_sum") -> dict:
    """The objects of ``hparams/<name>.yaml`` at model ``size``.

    Example
    -------
    >>> h = load_hparams("tiny", {"num_layers": 1})
    >>> h["model"].num_layers, h["d_model"]
    (1, 192)
    """
    from muselq_sb.utils.hparams import load_hparams as load

    return load(ROOT / "hparams" / f"{name}.yaml", {"size": size, **(overrides or {})})


def size_values(size: str) -> dict:
    """The values of ``hparams/brn_sum.yaml`` at model ``size`` (nothing built).

    Example
    -------
    >>> size_values("tiny")["d_model"]
    192
    """
    from muselq_sb.utils.hparams import load_plain_hparams

    return load_plain_hparams(ROOT / "hparams" / "brn_sum.yaml", {"size": size})


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` as ``FlopCounterMode`` counts them.

    Example
    -------
    >>> a = torch.ones(8, 4); b = torch.ones(4, 2)
    >>> count_flops(lambda: a @ b)
    128
    """
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
