"""benchmarks/bench: its table drives every part, its docstring lists them, and a run
writes only its own parts' sections of the results file."""
import re

import pytest

bench = pytest.importorskip("benchmarks.bench")


def test_docstring_lists_every_part_of_the_table():
    listed = re.findall(r"^([a-z])\. ", bench.__doc__, flags=re.M)
    assert listed == list(bench.PARTS)


def test_every_part_module_has_run_and_its_letter():
    for letter, part in bench.PARTS.items():
        module = bench.load_part(part)
        assert callable(module.run), part.module
        assert module.__doc__.startswith(f"{letter}. "), part.module


def test_unknown_part_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--parts", "bz"])
    assert exit_.value.code != 0
    assert "unknown parts z" in capsys.readouterr().err


def test_a_run_replaces_only_its_own_sections(tmp_path, monkeypatch):
    import types

    out = tmp_path / "RESULTS.md"
    out.write_text("# Results\n\nhand-written text\n\n<!-- begin bench-b -->\nold b\n"
                   "<!-- end bench-b -->\n\n<!-- begin bench-d -->\nthe GPU's d\n"
                   "<!-- end bench-d -->\n", encoding="utf-8")
    calls = []

    def measured(table, opts):
        calls.append(opts.quick)
        table.add("a measure, s", 1.5, 3.0, 0.5, "≤ 0.6×", True)
        table.note("how it was measured")

    def nothing(table, opts):       # d without CUDA: a note, no rows
        table.note("skipped: no CUDA device here")

    fakes = {"b_net1_cpu": measured, "d_cuda": nothing}
    monkeypatch.setattr(bench, "load_part", lambda part: types.SimpleNamespace(run=fakes[part.module]))
    assert bench.main(["--quick", "--parts", "bd", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert calls == [True]
    assert "hand-written text" in text and "old b" not in text
    assert "the GPU's d" in text                      # d measured nothing: its section stays
    b = text.split("<!-- begin bench-b -->")[1].split("<!-- end bench-b -->")[0]
    assert "### Part b:" in b and "Written by benchmarks/bench/b_net1_cpu.py" in b
    assert "| b " in b and "a measure, s" in b and "- b. how it was measured" in b
