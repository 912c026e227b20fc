"""``reports/latest`` is the last ``run`` or ``gate``; every other command has its own
``latest-<command>``, as the README says."""

from __future__ import annotations

from pathlib import Path

from gateprobe.engine.report import latest_name, new_run_dir


def test_latest_follows_run_and_gate_only(tmp_path: Path) -> None:
    run = new_run_dir("run", root=tmp_path)
    compare = new_run_dir("compare", root=tmp_path)
    load = new_run_dir("load-latency", root=tmp_path)
    assert (tmp_path / "latest").resolve() == run  # a later compare or load run left it
    assert (tmp_path / "latest-compare").resolve() == compare
    assert (tmp_path / "latest-load-latency").resolve() == load
    gate = new_run_dir("gate", root=tmp_path)
    assert (tmp_path / "latest").resolve() == gate
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_symlink()) == [
        "latest", "latest-compare", "latest-load-latency"]


def test_an_explicit_report_dir_moves_no_link(tmp_path: Path) -> None:
    new_run_dir("run", root=tmp_path, explicit=tmp_path / "mine")
    assert not (tmp_path / "latest").exists()
    assert latest_name("discover") == "latest-discover"
