"""The learning curves of every model fitted for a version, as one PNG beside it
(`training/learning_curves.png`): training and validation loss per epoch (per tree for
gradient-boosted trees), with the model that was kept marked."""

from __future__ import annotations

from pathlib import Path


def plot(fits: list, chosen: str, path: Path) -> Path | None:
    curves = [f for f in fits if f.history.get("loss")]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for ax, fit in zip(axes[0], curves):
        h = fit.history
        x = h.get("iteration") or list(range(1, len(h["loss"]) + 1))
        ax.plot(x, h["loss"], label="training")
        if h.get("val_loss"):
            ax.plot(x, h["val_loss"], label="validation")
        kept = " (kept)" if fit.kind == chosen else ""
        ax.set_title(f"{fit.kind}{kept}: validation {fit.score:.4g}")
        ax.set_xlabel("trees" if fit.kind == "gbt" else "epoch")
        ax.set_ylabel("loss")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
