"""Plots: matplotlib on the Agg backend (/usr/bin/python3 with python3-matplotlib), saved as
PNG files or as base64 for self-contained HTML."""
import base64
import io


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path, dpi=110):
    """Lays out `fig` and writes it to `path` (a PNG)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    print("plot:", path)


def png_base64(fig, dpi=90):
    """The figure as a base64 PNG (for <img src="data:image/png;base64,...">); closes it."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()
