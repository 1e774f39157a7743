"""One real `lfr eval` run on a small real subset: the report is complete and its figures sane."""

import csv
import json

import pytest

from lfr_cli.main import main

pytestmark = pytest.mark.integration


def test_a_small_real_run_reports_rates_groups_review_and_a_recommendation(tmp_path, data_dir, models_dir):
    out = tmp_path / "out"
    exclusions = tmp_path / "exclusions.csv"
    small_run = [
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
    assert main(small_run) == 0
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
    assert main([*small_run, "--exclusions", str(exclusions)]) == 0
    reviewed = json.loads((out / "report.json").read_text())
    assert reviewed["exclusions"] == [[top["probe"], top["subject_id"]]]
    assert reviewed["reviewed"]["impostor_pairs"] < reviewed["labelled"]["impostor_pairs"]
    assert "as reviewed" in (out / "report.md").read_text()


def test_bad_input_is_counted_and_reported_never_dropped_or_fatal(tmp_path, data_dir, models_dir):
    import shutil

    mated = tmp_path / "mated"
    for identity in ("Colin_Powell", "Ariel_Sharon", "George_W_Bush"):
        (mated / "images" / identity).mkdir(parents=True)
        for n in (1, 2, 3):
            shutil.copy(
                data_dir / "lfw" / "images" / identity / f"{identity}_{n:04d}.jpg",
                mated / "images" / identity / f"{n}.jpg",
            )
    broken = (data_dir / "lfw" / "images" / "Colin_Powell" / "Colin_Powell_0004.jpg").read_bytes()
    (mated / "images" / "Colin_Powell" / "4.jpg").write_bytes(broken[: len(broken) // 3])  # truncated
    (mated / "images" / "Colin_Powell" / "notes.txt").write_text("not a photo")
    rows = [f"{i}/{n}.jpg,{i},M" for i in ("Colin_Powell", "Ariel_Sharon", "George_W_Bush") for n in (1, 2, 3)]
    rows += ["Colin_Powell/4.jpg,Colin_Powell,M", "Nobody/1.jpg,Nobody,F"]  # a label naming a missing file
    (mated / "labels.csv").write_text("path,identity,sex\n" + "\n".join(rows) + "\n")
    strangers = tmp_path / "strangers"
    (strangers / "images").mkdir(parents=True)
    utk = sorted((data_dir / "utkface" / "images").glob("*.jpg"))[:6]
    for path in utk:
        shutil.copy(path, strangers / "images" / path.name)
    (strangers / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    labels = [f"{p.name},{'F' if i % 2 else 'M'}" for i, p in enumerate(utk)] + ["gone.jpg,F"]
    (strangers / "labels.csv").write_text("file,sex\n" + "\n".join(labels) + "\n")

    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "--dataset",
            str(mated),
            "--nonmated",
            str(strangers),
            "--out",
            str(out),
            "--filler",
            "0",
            "--thresholds",
            "0.4:0.8:0.1",
            "--cache",
            str(tmp_path / "cache"),
            "--models-dir",
            str(models_dir),
            "--min-group-n",
            "30",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["data_problems"]["mated"] == {"not_an_image_file": 1, "label_names_missing_file": 1}
    assert report["data_problems"]["strangers"] == {"label_names_missing_file": 1, "image_without_labels": 1}
    view = report["labelled"]
    assert view["probe_failures"]["mated"]["overall"] == {"undecodable": 1}  # the truncated photo, a miss
    assert view["probe_failures"]["nonmated"]["overall"] == {"not_an_image": 1}  # JPEG magic, then garbage
    assert view["mated_searches"] == 7 and view["nonmated_searches"] == 7
    groups = view["thresholds"][0]["groups"]
    assert "warning" in groups["fpir"]["strangers.sex"]["F"]  # 3 probes: an interval, not a bare rate
    assert groups["tpir"]["mated.sex"]["M"]["n"] == 7
    assert report["watchlist"]["failures_to_enrol"]["subjects"]["groups"]["mated.sex"]["M"]["n"] == 3


def test_a_small_multi_shot_run_compares_single_shots_with_fused_templates(tmp_path, data_dir, models_dir):
    out = tmp_path / "out"
    args = [
        "eval", "--dataset", str(data_dir / "lfw"), "--out", str(out), "--multi-shot", "3",
        "--max-subjects", "20", "--max-nonmated", "20", "--filler", "60", "--thresholds", "0.30:0.80:0.05",
        "--cache", str(tmp_path / "cache"), "--models-dir", str(models_dir),
    ]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "multishot-3.json").read_text())
    assert report["k"] == 3 and report["people"] == {"mated": 20, "non_mated": 20}
    mated = {m: report["views"][m]["thresholds"][0]["tpir"]["n"] for m in ("single", "mean", "best")}
    assert mated == {"single": 60, "mean": 20, "best": 20}  # K single searches per person, one fused
    at = report["at_calibrated_threshold"]
    assert at["mean"]["tpir"]["rate"] >= at["single"]["tpir"]["rate"]  # fusing 3 shots helps
    assert "| mean |" in (out / "multishot-3.md").read_text()
    assert main(["eval", "--dataset", str(data_dir / "lfw"), "--out", str(out), "--multi-shot", "1"]) == 2
