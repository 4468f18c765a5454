"""bench/cell_proxy.py's simulated cells (the fine-tunes are `python -m bench.cell_proxy`'s job):
one cell's faces come from its own few held-out glyphs, its test photos are reviewed."""

from bench import cell_proxy  # the repository root is on pytest.ini's pythonpath
from cube_detect.synth import FAMILIES, handwriting
from cube_detect.voc import read_voc


def test_a_cell_writes_its_few_held_out_hands_only(monkeypatch, tmp_path):
    pool = cell_proxy.cell_pool(3)
    assert {k: len(v) for k, v in pool.items()} == cell_proxy.GLYPHS_PER_CELL
    held = {id(g) for label in pool for g in sum(handwriting.glyphs(label, "heldout"), [])}
    assert all(id(g) in held for glyphs in pool.values() for g in glyphs)
    other_cell = cell_proxy.cell_pool(4)
    assert [id(g) for g in pool["two"]] != [id(g) for g in other_cell["two"]]
    assert [id(g) for g in cell_proxy.cell_pool(3)["two"]] == [id(g) for g in pool["two"]]  # a function of the cell

    drawn = []
    original_glyphs = handwriting.glyphs
    real_draw = handwriting.draw_glyph

    def recording(canvas, rng, glyph, *args):
        drawn.append(id(glyph))
        return real_draw(canvas, rng, glyph, *args)

    monkeypatch.setattr(handwriting, "draw_glyph", recording)
    out = cell_proxy.write_cell(tmp_path / "cell3", 3)
    mine = {id(g) for glyphs in pool.values() for g in glyphs}
    faces = 0
    for folder, count, reviewed in ((out / "cell" / "train", 19, False), (out / "cell" / "test", 13, True),
                                    (out / "judge" / "test", 13, False)):
        xmls = sorted(folder.glob("*.xml"))
        assert len(xmls) == len(list(folder.glob("*.png"))) == count, folder
        annotations = [read_voc(x) for x in xmls]
        assert all(a.verified == reviewed for a in annotations), folder
        assert all((a.width, a.height) == (640, 480) for a in annotations)
        faces += sum(len(a.boxes) for a in annotations)
    assert faces and len(drawn) >= faces and set(drawn) <= mine  # every labelled face is one of the cell's cubes
    assert cell_proxy.cell_family(3) == FAMILIES[2] and cell_proxy.cell_family(7) == FAMILIES[0]
    assert handwriting.glyphs is original_glyphs  # the cell's pool was patched in for the cell only
