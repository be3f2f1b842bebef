"""The History that ``Model.fit`` returns: the logged values per epoch, and a plot of the curves."""

from __future__ import annotations

import os
from typing import Optional, Sequence

from .. import _files
from .callbacks import Callback, Logs

__all__ = ["History"]


class History(Callback):
    """``history``: {"loss": [...], "accuracy": [...], "val_loss": [...], ...}, one value per epoch;
    ``epoch``: the epoch indices (from 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path: str | os.PathLike, metrics: Optional[Sequence[str]] = None,
             title: Optional[str] = None) -> str | os.PathLike:
        """Writes the training and validation curves to ``path`` (PNG), one subplot per metric (loss
        first), training solid and validation dashed: the chapter's view for spotting overfitting
        (validation worsening while training improves) and underfitting (both flat and poor).
        ``metrics``: the names to plot (default: every logged one). Returns the path."""
        from .._extras import require

        FigureCanvasAgg = require("matplotlib.backends.backend_agg", "plot").FigureCanvasAgg
        Figure = require("matplotlib.figure", "plot").Figure

        names = [k for k in self.history if not k.startswith("val_")]
        names += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in names]
        if metrics is not None:
            unknown = [m for m in metrics if m not in names]
            if unknown:
                raise ValueError(f"plot: not in the history: {', '.join(unknown)} (have {', '.join(names)})")
            names = list(metrics)
        if not names:
            raise ValueError("plot: the history is empty; fit the model first")
        names.sort(key=lambda n: n != "loss")
        fig = Figure(figsize=(4.5 * len(names), 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names):
            for key, style, label in ((name, "-", "training"), ("val_" + name, "--", "validation")):
                values = self.history.get(key)
                if values:
                    ax.plot([e + 1 for e in self.epoch[-len(values):]], values, style, marker="o", markersize=3,
                            label=label)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        _files.save_figure(fig, path)
        return path
