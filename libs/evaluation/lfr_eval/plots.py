"""The plots a reviewer wants: TPIR and FPIR against threshold, FPIR per group (log), DET."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float | None]]:
    return [r["threshold"] for r in rows], [r[key]["rate"] for r in rows]


def rates(view: dict, out: Path, recommended: float | None) -> None:
    rows = view["thresholds"]
    t, tpir = _series(rows, "tpir")
    _, fpir = _series(rows, "fpir")
    extrapolated = [r["fpir_at_target_size"]["from_fmr"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(t, tpir, label="TPIR")
    left.fill_between(t, [r["tpir"]["ci95"][0] for r in rows], [r["tpir"]["ci95"][1] for r in rows], alpha=0.2)
    left.set(xlabel="threshold", ylabel="TPIR", title="True positive identification rate", ylim=(0, 1))
    right.semilogy(t, [max(v or 0, 1e-9) for v in fpir], label=f"FPIR measured (N={view['watchlist_size']})")
    right.semilogy(t, [max(v, 1e-9) for v in extrapolated], "--", label="FPIR extrapolated to target size (FMR)")
    right.semilogy(t, [max(r["fpir"]["ci95"][1], 1e-9) for r in rows], ":", label="measured FPIR, 95% upper")
    right.set(
        xlabel="threshold",
        ylabel="FPIR (log; 1e-9 = none observed)",
        title="False positive identification rate",
    )
    for ax in (left, right):
        if recommended is not None:
            ax.axvline(recommended, color="red", lw=0.8, label=f"recommended {recommended:.2f}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def fpir_by_group(view: dict, out: Path) -> None:
    rows = view["thresholds"]
    attributes = list(rows[0]["groups"]["fpir"]) if rows else []
    if not attributes:
        return
    fig, axes = plt.subplots(1, len(attributes), figsize=(5 * len(attributes), 4), squeeze=False)
    for ax, attribute in zip(axes[0], attributes, strict=True):
        for group in rows[0]["groups"]["fpir"][attribute]:
            values = [r["groups"]["fpir"][attribute][group]["rate"] or 0 for r in rows]
            n = rows[0]["groups"]["fpir"][attribute][group]["n"]
            ax.semilogy([r["threshold"] for r in rows], [max(v, 1e-5) for v in values], label=f"{group} (n={n})")
        ax.set(xlabel="threshold", ylabel="FPIR (log; 1e-5 = none observed)", title=attribute)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def det(view: dict, out: Path) -> None:
    rows = view["thresholds"]
    fpir = [max(r["fpir"]["rate"] or 0, 1e-6) for r in rows]
    fnir = [r["fnir"]["rate"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(fpir, fnir, marker=".")
    for r, x, y in zip(rows, fpir, fnir, strict=True):
        if round(r["threshold"] * 100) % 10 == 0:
            ax.annotate(f"{r['threshold']:.1f}", (x, y), fontsize=7)
    ax.set(xlabel="FPIR (log)", ylabel="FNIR (log)", title="DET (labels: threshold)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
