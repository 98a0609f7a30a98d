"""Pictures as PNG files: learning curves, a DKT student's knowledge state, a confusion matrix.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never through ``pyplot``:
no display is needed and importing this module changes no global matplotlib state. Every ``plot_*`` function
returns the arrays it drew, so tests can check the picture's numbers rather than its pixels.
"""

from kt.plots.confusion import plot_confusion
from kt.plots.curves import plot_curves
from kt.plots.knowledge_state import load_dkt, plot_knowledge_state, student_sequence

__all__ = ["load_dkt", "plot_confusion", "plot_curves", "plot_knowledge_state", "student_sequence"]
