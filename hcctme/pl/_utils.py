"""What every plotting function shares (scanpy's convention): panels on a given ``ax``, then save / show / return.

Every ``hcctme.pl`` function takes ``ax`` (draw into an existing Axes; plots with several panels accept it
only when they draw one), ``show`` (call ``plt.show()`` and return None) and ``save`` (a path the figure is
written to), and returns the Axes, or a list of Axes for several panels, when ``show`` is False.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes


def panels(n_panels: int = 1, *, ax: Axes | None = None, ncols: int | None = None,
           figsize: tuple[float, float] | None = None, **subplots: Any) -> np.ndarray:
    """A grid of Axes (2-D array) for ``n_panels`` panels; ``ax`` is used when one panel is drawn."""
    import matplotlib.pyplot as plt

    if ax is not None:
        if n_panels != 1:
            raise ValueError(f"ax= takes one panel but this plot draws {n_panels}; leave ax=None")
        return np.array([[ax]])
    ncols = max(1, min(n_panels, ncols or n_panels))
    nrows = -(-n_panels // ncols)
    _, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=figsize, **subplots)
    for extra in axes.ravel()[n_panels:]:
        extra.set_visible(False)
    return axes


def finish(axes: Axes | list[Axes], *, show: bool | None, save: str | Path | None) -> Axes | list[Axes] | None:
    """Save the figure to ``save`` when given, call ``plt.show()`` when ``show``; return ``axes`` unless shown."""
    import matplotlib.pyplot as plt

    first = axes[0] if isinstance(axes, list) else axes
    if save:
        first.figure.savefig(save, bbox_inches="tight", dpi=150)
    if show:  # the caller gets no handle to close the figure: closed here, unless a window stays open (plt.ion)
        plt.show()
        if not plt.isinteractive():
            plt.close(first.figure)
        return None
    return axes


def _check_save(save: Any) -> None:
    """A figure file path: not a folder, in an existing folder, with an extension matplotlib writes."""
    from matplotlib.backend_bases import FigureCanvasBase

    from hcctme import _files

    if not isinstance(save, str | Path):
        raise TypeError(f"save must be a file path (str or Path) or None, got {save!r}")
    if str(save).endswith(("/", "\\")):  # a folder that may not exist yet
        raise ValueError(f"output {str(save)!r} is a folder; give a file name (e.g. 'figures/plot.png')")
    path = _files.check_writable(save)  # empty, an existing folder, an unwritable place
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in formats:
        raise ValueError(f"save={str(save)!r}: the file name needs an extension matplotlib writes, one of "
                         f"{sorted(formats)} (e.g. 'plot.png')")
    if not path.parent.exists():
        raise FileNotFoundError(f"save={str(save)!r}: the folder {str(path.parent)!r} does not exist; create it first")


def common_arguments(plot: Callable[..., Any]) -> Callable[..., Any]:
    """Check ``ax``, ``show`` and ``save`` before ``plot`` draws (they failed deep inside matplotlib or PIL)."""
    @functools.wraps(plot)
    def checked(*args: Any, **kwargs: Any) -> Any:
        ax, show, save = kwargs.get("ax"), kwargs.get("show"), kwargs.get("save")
        if ax is not None and not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {ax!r}")
        if show is not None and not isinstance(show, bool | np.bool_):
            raise TypeError(f"show must be True, False or None, got {show!r}")
        if save is not None:
            _check_save(save)
        return plot(*args, **kwargs)

    return checked
