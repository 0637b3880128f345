"""The loss curve beside the adapter: every logged loss term against the optimizer step."""

from __future__ import annotations

from pathlib import Path


def plot_loss_curve(log_history: list[dict], path: Path, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in log_history if "loss" in r and "step" in r]
    if not rows:
        return None
    keys = ["loss"] + sorted({k for r in rows for k in r if k.startswith("loss_")})
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if k in r]
        label = "total" if k == "loss" else k[5:]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                lw=2.2 if k == "loss" else 1.4, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (token mean)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
