"""kfkd_kit.utils.atomic.atomic_write, and the writers that use it (plots, synthetic): a reader
sees the old file or the complete new one; a writer that fails leaves the old file as it was."""
import os
import re
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest

from kfkd_kit.data import synthetic_dataset
from kfkd_kit.commands import _plots as plots
from kfkd_kit.utils.atomic import atomic_write

OLD = b"old content, complete\n" * 1000


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(OLD)
    return path


def _snapshot(path):
    """The file's bytes and inode, and the names in its folder."""
    return path.read_bytes(), path.stat().st_ino, sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("interruption", [RuntimeError, KeyboardInterrupt])
def test_a_writer_stopped_half_way_leaves_the_old_file_untouched(old_file, interruption):
    before = _snapshot(old_file)
    with pytest.raises(interruption):
        with atomic_write(old_file, "wb") as f:
            f.write(b"new, half written")
            f.flush()
            raise interruption("stopped half way")
    assert _snapshot(old_file) == before          # same bytes, same inode, no temporary file


def test_a_reader_during_the_write_sees_the_complete_old_file(old_file):
    with open(old_file, "rb") as opened_before:
        with atomic_write(old_file, "wb") as f:
            f.write(b"new content, first half ")
            f.flush()
            os.fsync(f.fileno())
            assert old_file.read_bytes() == OLD                  # a reader opening it now
            with open(old_file, "rb") as reader:
                assert reader.read() == OLD
            f.write(b"and second half\n")
        assert old_file.read_bytes() == b"new content, first half and second half\n"
        assert opened_before.read() == OLD      # a reader that had it open keeps the old file


def test_the_new_file_arrives_by_os_replace_from_the_same_folder(old_file, monkeypatch):
    calls = []
    real_replace = os.replace

    def recording_replace(src, dst, *args, **kwargs):
        calls.append((os.fspath(src), os.fspath(dst), os.path.getsize(src)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", recording_replace)
    inode = old_file.stat().st_ino
    with atomic_write(old_file, "w") as f:
        f.write("new")
        assert calls == []                      # nothing replaced while the block runs
    [(src, dst, size)] = calls
    assert dst == os.fspath(old_file) and size == 3
    assert os.path.dirname(src) == os.fspath(old_file.parent) and not os.path.exists(src)
    assert old_file.stat().st_ino != inode
    assert old_file.read_text() == "new"


def test_modes_permissions_and_fsync(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_write(target, "w") as f:
        f.write("first")
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    target.chmod(0o640)
    with atomic_write(target, "wb", fsync=True) as f:
        f.write(b"second")
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o640          # the replaced file's permissions
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with pytest.raises(ValueError):
        with atomic_write(target, "a"):
            pass


# -- the writers that use it ---------------------------------------------------------------------
def test_a_figure_that_fails_half_way_leaves_the_old_png(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    images = np.zeros((2, 96 * 96), np.uint8)
    points = np.full((2, 30), 48.0)
    plots.prediction_grid(images, points, path)
    before = _snapshot(path)
    assert before[0].startswith(b"\x89PNG")

    def savefig_fails_half_way(self, fname, **kwargs):
        fname.write(b"\x89PNG\r\n\x1a\n and half an image")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig_fails_half_way)
    with pytest.raises(OSError, match="disk full"):
        plots.prediction_grid(images, points + 1, path)
    assert _snapshot(path) == before
    monkeypatch.undo()
    plots.prediction_grid(images, points + 1, path)       # and a good write does replace it
    assert path.read_bytes() != before[0] and path.stat().st_ino != before[1]


def test_the_synthetic_writer_failing_mid_write_leaves_the_old_dataset(tmp_path, monkeypatch):
    paths = synthetic_dataset.write_kaggle_dataset(tmp_path, n_train=6, n_test=2, seed=0)
    before = {name: _snapshot(path) for name, path in paths.items()}

    def fsync_fails(fd):          # the data are written, not yet on disk: a full disk says so
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError, match="no space"):
        synthetic_dataset.write_kaggle_dataset(tmp_path, n_train=9, n_test=2, seed=1)
    assert {name: _snapshot(path) for name, path in paths.items()} == before


def test_hand_written_results_never_sit_inside_a_generated_section():
    """write_section replaces everything between its markers, so a heading inside a generated
    section past its first line is hand-written text that the next run of its script would
    erase."""
    results = Path(__file__).resolve().parents[2] / "docs" / "RESULTS.md"
    sections = re.findall(r"<!-- begin (\S+) -->\n(.*?)<!-- end \1 -->",
                          results.read_text(encoding="utf-8"), re.S)
    assert sections, "docs/RESULTS.md has no generated section"
    for name, text in sections:
        headings = [line for line in text.splitlines()[1:] if line.startswith("#")]
        assert not headings, f"section {name} holds hand-written headings: {headings}"
