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


def fmr_tail(out: dict, path: Path, min_faces: int) -> None:
    """Left: the overall false match rate, empirical (k/n and its Wilson bound) and fitted (GPD and its
    95% band beyond u). Right: each group of min_faces or more, empirical (dots) and fitted (lines)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    overall = out["curves"]["all"]
    for ax, curves in ((left, {"all": overall}), (right, out["curves"])):
        for i, (name, c) in enumerate(curves.items()):
            if c["faces"] < min_faces or (ax is right and name == "all"):
                continue
            colour = plt.cm.tab20(i % 20)
            shown = [(t, k / n) for t, k, n in c["points"] if k > 0]
            band = c["tail"]["band"]
            label = f"{name} ({c['tail']['method']})"
            ax.semilogy([t for t, _ in shown], [r for _, r in shown], ".", ms=3, color=colour, label=label)
            ax.semilogy([b[0] for b in band], [max(b[1], 1e-14) for b in band], "-", lw=0.9, color=colour)
            if ax is left:
                ax.fill_between(
                    [b[0] for b in band],
                    [max(b[2], 1e-14) for b in band],
                    [max(b[3], 1e-14) for b in band],
                    alpha=0.2,
                    color=colour,
                    label="95% band (Wilson rate x profile likelihood)",
                )
                ax.semilogy(
                    [p[0] for p in c["points"]], c["conservative"], "--", lw=0.9, color="k", label="conservative"
                )
                ax.axvline(c["tail"]["u"], color="grey", lw=0.6, label=f"u = {c['tail']['u']:.3f}")
        ax.set(xlabel="threshold", ylabel="false match rate per pair (log)", ylim=(1e-12, 1e-1))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    left.set_title(f"All pairs ({out['pairs']:,}): empirical and GPD tail")
    right.set_title("Per group of the probe: empirical (dots), fitted (lines)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
