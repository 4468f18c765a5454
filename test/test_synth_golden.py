"""Golden scenes: ``render_indexed`` is byte-identical per (seed, index, family).

Integration tests' seeds (``seed`` in test/*.test, launch/demo.launch, the robustness suite)
were chosen on these exact images, so a change to the renderer that moves a single pixel or a
single RNG draw must be deliberate: update the digests below in the same commit and re-check
those seeds. The cases cover family None (the mixture draw and the size draw), every family, both
sizes and both branches (top-down / table level) of bright, closeup and cut. The digests are
those of this environment's numpy (requirements/runtime.txt) and OpenCV (Debian's python3-opencv,
4.6): an upgrade that changes them changes the scenes too, and is worth knowing about.
"""

import hashlib

import pytest

from cube_detect.synth import render_indexed

#: (seed, index, family, size, sha256 of image.tobytes(), sha256 of repr(boxes))
GOLDEN = [
    (0, 0, None, None,
     "c9fc03f5c39e0ff766df9380ab4136c8d72bd582dafaebde9b0116c9820a64cc",
     "7c8d65b54892cc4ff8b1440514f1bcb5e52066986258a9364b0cc81ef14fe175"),
    (1, 5, None, None,
     "ce732dace90e5351aa6fe98a09163988599d0cce486bee03dd4ed12f8567b8ec",
     "e3fa7890b08756c217d45ce25393705b0fbbb8dd52611b4ff1021afa042253a5"),
    (7, 123, None, None,
     "6854a952fb921552bb213cb00930ec7177d236dac1bde4ead4c81ac3348d5436",
     "326973f983b7c380de4976941c4f3e1718173c04b9b02e9ed287495b6fd05af3"),
    (21, 3, None, (640, 480),
     "47cdc046698baef7e0b26bd67a4dacd8a6b464d7343989b7d75c888fca2fb270",
     "c61b4ff0cb3a7f5777f93f656b4eaea26b514f65f85911a5399d1c9076a769ee"),
    (4242, 17, None, (752, 480),
     "d9350bea71e323c1a47ee88524c15a6649f8f0e5e1e780a77ebc60c5202d7bfa",
     "75c1bb536722d01c7c3647687ea0b8aad035f4d07ee234af6ea77eba78cc85c2"),
    (3, 7, 'topdown', (640, 480),
     "68879e410342801bd1966530122f7dc3a46b7e02622520d1a5a4b05ba665b854",
     "fd6177fa7694bb47f19fe276dd42ab7be54cc31af43a965721eea90593571d94"),
    (3, 7, 'table', (752, 480),
     "d5060a950137c5850a85178f1cb1ce28b5183fc646b815ad252efa6f25db447f",
     "79f147309f11fa79bac229d38637fd6eb97042d6cf22035661681027dd3885f3"),
    (5, 2, 'bright', (640, 480),
     "e05f2e4e8ac11e026321a37ce2b32a5bfb2073d803cafd6426b954577606d2e7",
     "ca05771d430421dbb377964bea4f68a5253c709b140797730f8056a9883a49bc"),
    (5, 0, 'bright', (752, 480),
     "90b9d6de7786e6eeb1a156b2078bd07e2a8b045c6d9a28e6ddbd1294f5ba9b2b",
     "5565474724eb010d06b63ab6ec588c20e56bdee22ff93ca56fb8c56e1ba3f2e2"),
    (5, 9, 'closeup', (752, 480),
     "60cd7896b516c85b23aacd704e3159468780a20580051e0c5ca081f1834901c8",
     "dd0503eabd76eb9b641ecbb4aaf33afa6969b0ead1146172a4ae381cf6435fef"),
    (11, 1, 'closeup', (640, 480),
     "5073266eefd3a2e2c07eaf6dd0b35c8da0332209ab52f80c3062b5cba25b9b3f",
     "665d543dcda1590caec09763a73bef244206a7e381062a5b1fc9db2b5b654657"),
    (11, 8, 'closeup', (752, 480),
     "9f34382a3488f8ce09b86241fadea567661d25a393f34fc84de02a6eaec791f1",
     "4105f1eda566df5995e4d0db4ef61eb9fc24263d6c9170dec8b07130749122b1"),
    (11, 4, 'cut', (640, 480),
     "a07853d0c15f08a4121ed6dbc7a5e3ece89d9ea98a153bd98d7275966bce5c47",
     "17e401c601dc41ee8ab90b680dbe6f480b2826877282652bd096b5bac874bb20"),
    (11, 3, 'cut', (752, 480),
     "930aa2b30418861100a3fc9bf353c60301f966af39e89c0124e662ae6dcea48a",
     "2679f62cf00e349b7d0c164f17545761953263f3efef0a86dc135966d2ea62ee"),
    (11, 8, 'rotated', (752, 480),
     "7b8ec42ce495126217cce3eee625e9e517041d7bdf1d587e9d4a1453248ec4ec",
     "ec8b7c744ec0662f3a0695741940cd75736bdaf8d9a72149790cb0e6feeaf2fd"),
    # The held-out family (real hands training never sees): the README compares its figures
    # across models and rounds, so its scenes must not move when training's hands change.
    (424242, 26, 'handwriting', None,
     "dbad877924d618028eaa2ad35543ffe9387109fb1c00b3cafba0165e17a64d20",
     "865bbdf6dfb24fef7c2bcbd49bf1a85c37979c5cb36eecc4273046c0e38985d9"),
    (3, 1, 'handwriting', (752, 480),
     "4cd7be3482461f3be31c9d0565c5344e385fe7f5c60fa1e96acecea75795cd3b",
     "55a41adb166ee4d84013de1b81b5e04787ae8a59990505653fdf3692f2a38d6d"),
]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _boxes_text(boxes) -> str:
    """The boxes as the goldens were taken: the repr of the label, corners and score (the VOC
    fields LabeledBox gained since, difficult, pose, truncated, extra, are not scene facts)."""
    return "[" + ", ".join(f"LabeledBox(label={b.label!r}, xmin={b.xmin!r}, ymin={b.ymin!r}, xmax={b.xmax!r}, "
                           f"ymax={b.ymax!r}, score={b.score!r})" for b in boxes) + "]"


@pytest.mark.parametrize("seed, index, family, size, image_sha, boxes_sha", GOLDEN,
                         ids=[f"{s}-{i}-{f}-{z}" for s, i, f, z, _, _ in GOLDEN])
def test_scene_is_byte_identical(seed, index, family, size, image_sha, boxes_sha):
    image, boxes = render_indexed(seed, index, size=size, family=family)
    assert _digest(_boxes_text(boxes).encode()) == boxes_sha, boxes
    assert _digest(image.tobytes()) == image_sha, (image.shape, image.dtype)
