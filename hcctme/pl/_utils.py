"""What every plotting function does last: save and/or show the figure, then return it."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def finish(fig: Figure, *, show: bool | None, save: str | Path | None) -> Figure:
    """Save ``fig`` to ``save`` when given, call ``plt.show()`` when ``show``; return ``fig``."""
    import matplotlib.pyplot as plt

    if save:
        fig.savefig(save, bbox_inches="tight", dpi=150)
    if show:
        plt.show()
    return fig
