"""The W+ layout of the 256 px generators: 14 rows of 512 dims, one row per styled layer
input (rosinality's order: conv 4 px, ToRGB 4 px + up-conv 8 px, conv 8 px, ...), and the
coarse / middle / fine groups of rows that style mixing uses.

    N_LATENT, W_DIM          14, 512: a code is (N, N_LATENT, W_DIM)
    layer_resolutions()      per row, the resolutions (px) of the layers it styles
    channel_labels()         per row, a short label: "0: 4px", "1: 4px rgb + 8px up", ...
    GROUPS, group_of(row)    coarse 0-3, middle 4-7, fine 8-13
"""

from __future__ import annotations

N_LATENT = 14  # rows of a W+ code: one style per generator layer input (256 px)
W_DIM = 512  # dims of each row
GROUPS = {"coarse": tuple(range(0, 4)), "middle": tuple(range(4, 8)), "fine": tuple(range(8, 14))}
GROUP_NOTES = {
    "coarse": "4-8 px layers: pose, head shape, overall layout",
    "middle": "16-32 px layers: facial features, expression, hair style",
    "fine": "64-256 px layers: colour, skin texture, fine detail",
}


def layer_resolutions(n_latent: int = N_LATENT) -> list[tuple[int, ...]]:
    """Per W+ row, the resolutions (px) of the layers it styles (rosinality layout)."""
    out = []
    for i in range(n_latent):
        if i == 0:
            out.append((4,))
        elif i % 2 == 1:  # ToRGB at r and (except the last) the up-conv to 2r
            r = 4 * 2 ** ((i - 1) // 2)
            out.append((r, 2 * r) if i < n_latent - 1 else (r,))
        else:  # second conv at r
            out.append((4 * 2 ** (i // 2),))
    return out


def channel_labels(n_latent: int = N_LATENT, long: bool = False) -> list[str]:
    """One label per W+ row: "0: 4px", "1: 4px rgb + 8px up", "2: 8px", ..., "13: 256px rgb".

    long=True names the layers in full ("conv 4 px", "ToRGB 4 px, up-conv 8 px", ...).
    """
    labels = []
    for i, res in enumerate(layer_resolutions(n_latent)):
        if i == 0:
            s = "conv 4 px" if long else "4px"
        elif i % 2 == 1:
            if long:
                s = f"ToRGB {res[0]} px" + (f", up-conv {res[1]} px" if len(res) > 1 else "")
            else:
                s = f"{res[0]}px rgb" + (f" + {res[1]}px up" if len(res) > 1 else "")
        else:
            s = f"conv {res[0]} px" if long else f"{res[0]}px"
        labels.append(f"{i}: {s}")
    return labels


def group_of(i: int) -> str:
    return next(g for g, rows in GROUPS.items() if i in rows)
