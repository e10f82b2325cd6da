"""The min-distance rule only computes H3 grid distances for pairs closer than
`grid_steps_cut_m`; no pair of cells fewer steps apart may lie beyond it, or
a too-close witness would pass unflagged."""
import h3
import numpy as np
import pytest

from transforms import h3util

ORIGINS = [(0.0, 0.0), (37.77, -122.42), (52.52, 13.40), (-33.87, 151.21), (64.15, -21.94),
           (78.22, 15.65), (-77.85, 166.67), (1.29, 103.85)]


def _vertices(cell: str) -> np.ndarray:
    return np.array(h3.cell_to_boundary(cell))


def _farthest_m(origin: str, steps: int) -> float:
    """Largest distance between any vertex of `origin` and any vertex of a
    cell fewer than `steps` grid steps from it (cells contain every point
    between their vertices)."""
    a = _vertices(origin)
    worst = 0.0
    for c in h3.grid_disk(origin, steps - 1):
        b = _vertices(c)
        d = h3util.haversine_m(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1])
        worst = max(worst, float(d.max()))
    return worst


@pytest.mark.parametrize("res,steps", [(11, 8), (8, 8), (13, 3), (10, 20)])
def test_no_pair_fewer_steps_apart_lies_beyond_the_cut(res, steps):
    cut = h3util.grid_steps_cut_m(res, steps)
    origins = [h3.latlng_to_cell(lat, lng, res) for lat, lng in ORIGINS]
    origins += [h3.get_pentagons(res)[i] for i in (0, 5, 11)]  # where cells are most distorted
    worst = max(_farthest_m(o, steps) for o in origins)
    assert worst < cut, (res, steps, worst, cut)


def test_cut_is_tight_enough_to_matter():
    """The cut exists to skip work: at the default res 11 / 8 steps it stays
    within a few times the real extent (under 1.1 km), not the 5 km it replaced."""
    cut = h3util.grid_steps_cut_m(11, 8)
    real = _farthest_m(h3.latlng_to_cell(52.52, 13.40, 11), 8)
    assert real < cut < 1100
