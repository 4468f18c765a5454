"""One box type and the arm's order rule, shared by every stage (no TensorFlow, no ROS).

``BBox`` is pycoral's ``detect.BBox`` shape: an axis-aligned box in pixels, ``(xmin, ymin,
xmax, ymax)``, a named tuple (so JSON, unpacking and indexing keep working) with the few
operations the stages need: size, centre, scale, clip and IoU.

``sort_left_to_right`` is the order in which the arm takes the cubes: by box centre along the
row's axis. The detector node, the simulated camera's truth and the sequence metric all use it.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, NamedTuple, Sequence, Tuple, TypeVar

T = TypeVar("T")
AXES = ("x", "y")


class BBox(NamedTuple):
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def center(self) -> Tuple[float, float]:
        return (self.xmin + self.xmax) / 2.0, (self.ymin + self.ymax) / 2.0

    def scale(self, factor: float) -> BBox:
        """The same box in pixels ``factor`` times larger (model pixels <-> image pixels)."""
        return BBox(self.xmin * factor, self.ymin * factor, self.xmax * factor, self.ymax * factor)

    def clip(self, width: float, height: float) -> BBox:
        """The part of the box inside a ``width`` x ``height`` image."""
        return BBox(min(max(self.xmin, 0.0), width), min(max(self.ymin, 0.0), height),
                    min(max(self.xmax, 0.0), width), min(max(self.ymax, 0.0), height))

    def iou(self, other: Sequence[float]) -> float:
        """Intersection over union with another box (any 4-sequence xmin, ymin, xmax, ymax)."""
        o = BBox(*other)
        iw = min(self.xmax, o.xmax) - max(self.xmin, o.xmin)
        ih = min(self.ymax, o.ymax) - max(self.ymin, o.ymin)
        if iw <= 0 or ih <= 0:
            return 0.0
        inter = iw * ih
        return inter / (self.area + o.area - inter)


def row_axis(boxes: Iterable[Sequence[float]]) -> str:
    """``"x"`` when the faces spread more horizontally than vertically, else ``"y"``: the
    ``sort_axis`` a user sets for that camera mounting."""
    centres = [BBox(*b).center() for b in boxes]
    if len(centres) < 2:
        return "x"
    spread_x = max(c[0] for c in centres) - min(c[0] for c in centres)
    spread_y = max(c[1] for c in centres) - min(c[1] for c in centres)
    return "y" if spread_y > spread_x else "x"


def sort_left_to_right(items: Iterable[T], axis: str = "x",
                       box: Callable[[T], Sequence[float]] = lambda item: item.box) -> List[T]:  # type: ignore[attr-defined]
    """The arm's order: by box centre x, or y for a camera mounted sideways.

    ``box`` gives an item's box (default: its ``.box`` attribute, as on a ``Detection``)."""
    if axis not in AXES:
        raise ValueError(f"sort axis must be 'x' or 'y', got {axis!r}")
    i = AXES.index(axis)
    return sorted(items, key=lambda item: BBox(*box(item)).center()[i])
