"""Synthetic scenes: photos of hand-written paper cubes, with their boxes, in scene families.

Families (:data:`FAMILIES`; training draws them from :data:`MIXTURE`):

- ``topdown`` (30 %): the dim top-down cells of docs/DOMAIN.md (see :mod:`.families`);
- ``table`` (14 %): a camera at the cubes' height: 1-4 (mostly 3-4) cubes standing in a row on
  a wood or laminate table (grain, seams, a sheen, mirrored faces on glossy tops, contact and
  cast shadows, a hand's shadow), a thin band of their tops showing, a room behind (wall,
  window, curtains, posters and frames, furniture, cables); faces ~90-150 px; colour mostly;
- ``bright`` (14 %): light backgrounds that barely contrast with white-to-light-grey faces
  (white/grey tables, paper sheets, light wood, light rooms), even light; top-down or table level;
- ``closeup`` (14 %): one or two faces of 220-340 px (up to ~70 % of the frame height), top-down
  or table level, sometimes cut by the border;
- ``cut`` (14 %): the group pushed across one border (sometimes two), the outermost face
  35-95 % in frame or exactly touching the border; top-down or table level;
- ``rotated`` (14 %): top-down, faces turned in-plane up to +-60 deg (mostly 15-60 deg), the
  row turned with them when the camera is.

The cut-face rule (every family but topdown, which keeps ``MIN_VISIBLE``): a face at least
``LABEL_VISIBLE`` (35 %) in frame is labelled with the box of its visible part (what a labelImg
user draws); a face between ``SLIVER_VISIBLE`` (12 %) and 35 % in frame is never produced;
a sliver under 12 % stays, blank and unlabelled. A labelled face with less than ``INK_VISIBLE``
(30 %) of its digit's ink in frame is VOC ``difficult``: nobody can read its digit, so evaluation
counts it neither as a hit nor as a miss and training ignores its region (the image is the same).

Image ``i`` of seed ``s`` depends only on ``(s, i)``: ``np.random.default_rng([s, i])``, whose
first draw picks the family (:func:`pick_family`); with a family given, on ``(s, i, family)``:
``np.random.default_rng([s, i, FAMILIES.index(family) + 1])``. Integration tests' seeds depend
on these exact images: test/test_synth_golden.py pins them byte for byte.
Rendering works on one float32 luminance plane and low-resolution maps (light, colour,
folds) so that a 640x480 scene takes a few milliseconds on one core.

Modules, each depending only on those before it:

- :mod:`.noise`: noise bank, scratch buffers, smooth noise, anti-aliased polygons, splines;
- :mod:`.strokes`: digits and marks (handwriting, Hershey fonts) and the face texture;
- :mod:`.geometry`: the projected cube, layouts, the cut-face rule, face boxes, drawing a cube;
- :mod:`.backgrounds`: backgrounds, rooms, border objects, the light map, the camera model;
- :mod:`.families`: the two scene builders, the family registry ``FAMILY_SCENES`` (a new
  family is one ``@scene_family`` function and one line in ``MIXTURE``), ``render_scene``,
  ``render_indexed``;
- :mod:`.writer`: ``write_dataset`` and the ``python -m cube_detect synth`` command.
"""

from cube_detect.synth.families import (
    EVALUATION_FAMILIES,
    FAMILIES,
    HELDOUT_FAMILY,
    MIXTURE,
    SIZES,
    parse_families,
    pick_family,
    render_indexed,
    render_scene,
)
from cube_detect.synth.geometry import INK_VISIBLE, LABEL_VISIBLE, MIN_VISIBLE, SLIVER_VISIBLE
from cube_detect.synth.handwriting import DIGIT_SOURCES
from cube_detect.synth.writer import add_arguments, init_worker, run, write_dataset

__all__ = [
    "DIGIT_SOURCES", "EVALUATION_FAMILIES", "FAMILIES", "HELDOUT_FAMILY", "INK_VISIBLE", "LABEL_VISIBLE",
    "MIN_VISIBLE", "MIXTURE", "SIZES", "SLIVER_VISIBLE", "add_arguments", "init_worker", "parse_families",
    "pick_family", "render_indexed", "render_scene", "run", "write_dataset",
]
