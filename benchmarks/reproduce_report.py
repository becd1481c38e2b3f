"""The tables of ``reproduce_paper``: what they hold, the paper's numbers, and ours beside
them as Markdown and as plots (``results/table1.png``, ``results/table6.png``).

Table 1 crosses the training searches with the test-time searches; Table 6 (OOD) trains at
pattern density 0.5 and tests each model at 0.5, 0.75 and 1.0. A row of ours holds the mean
over seeds in ``value`` and its standard deviation in ``std`` (``reproduce_paper._row``).
"""

from __future__ import annotations

from pathlib import Path

TABLE1_METHODS = ("mean", "grad:1", "grad:1:unrolled", "sample:5")
TABLE1_SEARCHES = ("mean", "grad:1", "grad:5", "grad:20", "grad:100", "sample:250")
OOD_METHODS = ("mean", "grad:1")
OOD_SEARCHES = ("mean", "grad:10", "grad:100")
OOD_TEST_DENSITIES = (0.5, 0.75, 1.0)
OOD_TRAIN_DENSITY = 0.5

# The paper's numbers (lpn-facts.md section 7.1 and 7.4): top-1 %, mean (std) over 3 seeds.
PAPER_TABLE1 = {
    "mean": {
        "mean": (3.2, 2.7),
        "grad:1": (3.6, 3.0),
        "grad:5": (18.8, 14.4),
        "grad:20": (52.5, 25.0),
        "grad:100": (67.5, 20.0),
        "sample:250": (3.2, 2.7),
    },
    "grad:1": {
        "mean": (8.6, 4.4),
        "grad:1": (44.6, 10.9),
        "grad:5": (85.4, 7.6),
        "grad:20": (98.4, 1.4),
        "grad:100": (99.5, 0.5),
        "sample:250": (10.2, 5.3),
    },
    "grad:1:unrolled": {
        "mean": (0.6, 0.1),
        "grad:1": (13.7, 3.0),
        "grad:5": (60.2, 7.5),
        "grad:20": (88.9, 6.0),
        "grad:100": (94.1, 3.8),
        "sample:250": (0.7, 0.2),
    },
    "sample:5": {
        "mean": (6.1, 4.4),
        "grad:1": (8.2, 6.5),
        "grad:5": (27.7, 21.6),
        "grad:20": (56.3, 27.5),
        "grad:100": (72.2, 21.2),
        "sample:250": (6.1, 4.4),
    },
}
PAPER_TABLE6 = {
    "mean": {
        0.5: {"mean": (30.2, 15.7), "grad:10": (72.8, 29.5), "grad:100": (82.2, 21.3)},
        0.75: {"mean": (7.6, 5.6), "grad:10": (51.3, 35.7), "grad:100": (62.8, 38.3)},
        1.0: {"mean": (0.3, 0.5), "grad:10": (18.8, 14.5), "grad:100": (41.1, 29.6)},
    },
    "grad:1": {
        0.5: {"mean": (26.6, 7.4), "grad:10": (98.0, 0.6), "grad:100": (99.2, 0.6)},
        0.75: {"mean": (7.4, 4.4), "grad:10": (93.1, 4.3), "grad:100": (97.7, 2.2)},
        1.0: {"mean": (0.0, 0.0), "grad:10": (59.9, 11.6), "grad:100": (88.0, 5.3)},
    },
}


def _mean_std(row: dict) -> tuple[float, float]:
    """A row's mean over seeds and its standard deviation (as ``reproduce_paper._row`` wrote
    them)."""
    return row["value"], row["std"]


def _cell(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def table1_markdown(rows: list[dict], methods, searches) -> str:
    """Ours beside the paper's, one line per training method and source."""
    by_variant = {r["variant"]: r for r in rows}
    head = "| training | source | " + " | ".join(searches) + " |"
    lines = [head, "|---|---|" + "---|" * len(searches)]
    for method in methods:
        ours = []
        for search in searches:
            stat = by_variant.get(f"train={method}/infer={search}")
            ours.append(_cell(stat["value"], stat["std"]) if stat else "-")
        paper = [f"{m:.1f} ± {s:.1f}" for m, s in (PAPER_TABLE1[method][x] for x in searches)]
        lines.append(f"| {method} | ours | " + " | ".join(ours) + " |")
        lines.append(f"| {method} | paper | " + " | ".join(paper) + " |")
    return "\n".join(lines)


def table6_markdown(rows: list[dict], methods) -> str:
    by_variant = {r["variant"]: r for r in rows}
    cols = [(d, s) for d in OOD_TEST_DENSITIES for s in OOD_SEARCHES]
    head = "| training | source | " + " | ".join(f"d{d:g} {s}" for d, s in cols) + " |"
    lines = [head, "|---|---|" + "---|" * len(cols)]
    for method in methods:
        ours = []
        for density, search in cols:
            stat = by_variant.get(f"train={method}/test_density={density:g}/infer={search}")
            ours.append(_cell(stat["value"], stat["std"]) if stat else "-")
        paper = [f"{m:.1f} ± {s:.1f}" for m, s in (PAPER_TABLE6[method][d][x] for d, x in cols)]
        lines.append(f"| {method} | ours | " + " | ".join(ours) + " |")
        lines.append(f"| {method} | paper | " + " | ".join(paper) + " |")
    return "\n".join(lines)


def plot_table1(rows: list[dict], methods, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_variant = {r["variant"]: r for r in rows}
    searches = [s for s in TABLE1_SEARCHES if s != "sample:250"]
    xs = range(len(searches))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for i, method in enumerate(methods):
        color = f"C{i}"
        means, stds = zip(
            *(_mean_std(by_variant[f"train={method}/infer={s}"]) for s in searches),
            strict=True,
        )
        axes[0].errorbar(
            xs,
            [100 * m for m in means],
            yerr=[100 * s for s in stds],
            marker="o",
            capsize=3,
            color=color,
            label=f"{method} training",
        )
        paper = [PAPER_TABLE1[method][s] for s in searches]
        axes[1].errorbar(
            xs,
            [m for m, _ in paper],
            yerr=[s for _, s in paper],
            marker="s",
            capsize=3,
            color=color,
            linestyle="--",
            label=f"{method} training",
        )
    for ax, title in zip(axes, ("ours (CPU variant)", "paper (Table 1)"), strict=True):
        ax.set_xticks(
            list(xs), [s.replace("grad:", "Grad ").replace("mean", "Grad 0") for s in searches]
        )
        ax.set_xlabel("test-time inference")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 exact match (%), mean ± std over seeds")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_table6(rows: list[dict], methods, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_variant = {r["variant"]: r for r in rows}
    fig, axes = plt.subplots(1, len(OOD_SEARCHES), figsize=(12, 3.8), sharey=True)
    for ax, search in zip(axes, OOD_SEARCHES, strict=True):
        for i, method in enumerate(methods):
            key = "train={}/test_density={:g}/infer={}"
            ours = [
                _mean_std(by_variant[key.format(method, d, search)]) for d in OOD_TEST_DENSITIES
            ]
            ax.errorbar(
                OOD_TEST_DENSITIES,
                [100 * m for m, _ in ours],
                yerr=[100 * s for _, s in ours],
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=f"{method} training (ours)",
            )
            paper = [PAPER_TABLE6[method][d][search][0] for d in OOD_TEST_DENSITIES]
            ax.plot(
                OOD_TEST_DENSITIES,
                paper,
                linestyle="--",
                marker="s",
                color=f"C{i}",
                alpha=0.6,
                label=f"{method} training (paper)",
            )
        ax.set_title(search.replace("grad:", "Grad ").replace("mean", "Grad 0"))
        ax.set_xlabel("test pattern density (trained at 0.5)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 exact match (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
