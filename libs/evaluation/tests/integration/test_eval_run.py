"""One real `lfr eval` run on a small real subset: the report is complete and its figures sane."""

import csv
import json

import pytest

from lfr_cli.main import main

pytestmark = pytest.mark.integration


def test_a_small_real_run_reports_rates_groups_review_and_a_recommendation(tmp_path, data_dir, models_dir):
    out = tmp_path / "out"
    exclusions = tmp_path / "exclusions.csv"
    code = main(
        [
            "eval",
            "--dataset",
            str(data_dir / "lfw"),
            "--nonmated",
            str(data_dir / "utkface"),
            "--out",
            str(out),
            "--max-subjects",
            "25",
            "--max-nonmated",
            "150",
            "--filler",
            "60",
            "--thresholds",
            "0.30:0.80:0.05",
            "--cache",
            str(tmp_path / "cache"),
            "--models-dir",
            str(models_dir),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    view = report["labelled"]
    rows = view["thresholds"]
    assert [r["threshold"] for r in rows] == pytest.approx([0.3 + 0.05 * i for i in range(11)])
    tpir = [r["tpir"]["rate"] for r in rows]
    fpir = [r["fpir"]["rate"] for r in rows]
    assert tpir == sorted(tpir, reverse=True) and fpir == sorted(fpir, reverse=True)
    assert tpir[0] > 0.9 and fpir[0] > fpir[-1]
    for row in rows:
        for key in ("tpir", "fnir", "fpir", "fmr"):
            assert {"rate", "k", "n", "ci95"} <= row[key].keys()
        assert {"utkface.race_utk", "utkface.sex", "utkface.age_band"} <= row["groups"]["fpir"].keys()
        assert row["tests"]["fpir"]["utkface.race_utk"] <= 1.0
    assert view["watchlist_size"] == report["watchlist"]["entries"] > 25
    assert "failures_to_enrol" in report["watchlist"] and report["recommended_threshold"] is not None
    for name in ("report.md", "rates.png", "fpir_by_group.png", "det.png", "review.png", "review.csv"):
        assert (out / name).stat().st_size > 0

    # A reviewer confirms the top pair as the same person: both views are reported, and it is excluded.
    with (out / "review.csv").open() as f:
        top = next(csv.DictReader(f))
    exclusions.write_text(f"probe,subject_id,same_person\n{top['probe']},{top['subject_id']},yes\n")
    assert (
        main(
            [
                "eval",
                "--dataset",
                str(data_dir / "lfw"),
                "--nonmated",
                str(data_dir / "utkface"),
                "--out",
                str(out),
                "--max-subjects",
                "25",
                "--max-nonmated",
                "150",
                "--filler",
                "60",
                "--thresholds",
                "0.30:0.80:0.05",
                "--cache",
                str(tmp_path / "cache"),
                "--models-dir",
                str(models_dir),
                "--exclusions",
                str(exclusions),
            ]
        )
        == 0
    )
    reviewed = json.loads((out / "report.json").read_text())
    assert reviewed["exclusions"] == [[top["probe"], top["subject_id"]]]
    assert reviewed["reviewed"]["impostor_pairs"] < reviewed["labelled"]["impostor_pairs"]
    assert "as reviewed" in (out / "report.md").read_text()
