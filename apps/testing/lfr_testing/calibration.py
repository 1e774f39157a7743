"""A synthetic model calibration (lfr_faces.calibration, format 2) for unit tests: an FMR falling
tenfold every 0.03 from 1e-4 at 0.50, counts where they are 10 or more and a fitted band beyond, one
group eight times worse than overall and one too small to count. Real curves are the shipped file's."""

from __future__ import annotations

from lfr_faces.calibration import Calibration

GRID = [round(0.50 + 0.01 * i, 2) for i in range(31)]  # 0.50 .. 0.80
PAIRS = 100_000_000


def fmr_curve(faces: int, scale: float, pairs: int = PAIRS) -> dict:
    points, band = [], []
    for t in GRID:
        fmr = scale * 1e-4 * 10 ** (-(t - 0.50) / 0.03)
        points.append([t, int(fmr * pairs), pairs])
        band.append([t, fmr, fmr / 2, fmr * 2])
    return {"faces": faces, "points": points, "tail": {"method": "gpd", "u": 0.5, "band": band}}


def calibration_data(**changes) -> dict:
    data = {
        "model_id": "sface-2021dec",
        "format": 2,
        "model_min": 0.55,
        "model_max": 0.78,
        "equitability_floor": 0.60,
        "fmr": {
            "curves": {"all": fmr_curve(5000, 1.0), "children": fmr_curve(400, 8.0), "tiny": fmr_curve(20, 1000.0)}
        },
        "per_pass": {"ratio": 2.0, "ratio_upper": 4.0},
        "recall": {
            "single_shot": [[t, int(100 * (1 - t)), 100] for t in GRID],
            "per_pass": [[t, 17 if t < 0.7 else 10, 17] for t in GRID],
        },
    }
    data.update(changes)
    return data


def synthetic(**changes) -> Calibration:
    return Calibration.from_dict(calibration_data(**changes))
