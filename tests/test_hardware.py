"""CPU feature detection behind the bf16-on-CPU warning."""
from muselq_sb.utils.hardware import bf16_is_slow_on_cpu, cpu_flags


def write(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(
        "processor\t: 0\nmodel name\t: Test CPU\n"
        f"flags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    return path


def test_amx_makes_bf16_fast(tmp_path):
    path = write(tmp_path, "fpu avx512f avx512_bf16 amx_bf16 amx_tile")
    assert "amx_tile" in cpu_flags(path)
    assert not bf16_is_slow_on_cpu(path)


def test_avx512_bf16_alone_is_slow(tmp_path):
    path = write(tmp_path, "fpu avx512f avx512_bf16")
    assert cpu_flags(path) == {"fpu", "avx512f", "avx512_bf16"}
    assert bf16_is_slow_on_cpu(path)


def test_unreadable_cpuinfo_counts_as_slow(tmp_path):
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert bf16_is_slow_on_cpu(tmp_path / "missing")
