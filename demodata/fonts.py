"""The "writers" of the demo data set: Japanese fonts from Debian packages, and their split.

The real course data was drawn by hand by a few people and is private. We stand in for each
person with a font. Fonts that are visibly the same design (IPA Gothic and Takao Gothic, the
many YOzFont weights of one face) form a *family*, and the train/test split is made per
family, so no design seen in training comes back in the test set: a model must generalise
across writers, as it must on the real test set.

Only regeneration needs these files; loading and materialising the committed data does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_TT = "/usr/share/fonts/truetype"
_OT = "/usr/share/fonts/opentype"


@dataclass(frozen=True)
class Writer:
    """One font file standing in for one person's handwriting."""

    name: str
    family: str
    path: str
    package: str
    # Face index inside a .ttc collection (0 is the Japanese face in Noto CJK).
    index: int = 0


def _w(name: str, family: str, path: str, package: str, index: int = 0) -> Writer:
    return Writer(name=name, family=family, path=path, package=package, index=index)


WRITERS: tuple[Writer, ...] = (
    # Handwriting-like designs.
    _w("seto", "seto", f"{_TT}/seto/setofont.ttf", "fonts-seto"),
    _w("klee-regular", "klee", f"{_TT}/klee/KleeOne-Regular.ttf", "fonts-klee"),
    _w("klee-semibold", "klee", f"{_TT}/klee/KleeOne-SemiBold.ttf", "fonts-klee"),
    _w("kiloji", "kiloji", f"{_TT}/kiloji/kiloji.ttf", "fonts-kiloji"),
    _w("kiloji-b", "kiloji", f"{_TT}/kiloji/kiloji_b.ttf", "fonts-kiloji"),
    _w("kiloji-d", "kiloji", f"{_TT}/kiloji/kiloji_d.ttf", "fonts-kiloji"),
    _w("kiloji-p", "kiloji", f"{_TT}/kiloji/kiloji_p.ttf", "fonts-kiloji"),
    _w(
        "aoyagi-soseki",
        "aoyagi-soseki",
        f"{_TT}/aoyagi-soseki/aoyagi-soseki.ttf",
        "fonts-aoyagi-soseki",
    ),
    _w(
        "yusei-magic",
        "yusei-magic",
        f"{_TT}/yusei-magic/YuseiMagic-Regular.ttf",
        "fonts-yusei-magic",
    ),
    _w("yoz-a", "yoz-a", f"{_TT}/yozvox-yozfont/YOzRA_.ttf", "fonts-yozvox-yozfont"),
    _w("yoz-a-bold", "yoz-a", f"{_TT}/yozvox-yozfont/YOzBA_.ttf", "fonts-yozvox-yozfont"),
    _w("yoz-a-italic", "yoz-a", f"{_TT}/yozvox-yozfont/YOzRA_i.ttf", "fonts-yozvox-yozfont"),
    _w("yoz-c", "yoz-c", f"{_TT}/yozvox-yozfont/YOzRC_.ttf", "fonts-yozvox-yozfont"),
    _w("yoz-c-bold", "yoz-c", f"{_TT}/yozvox-yozfont/YOzBC_.ttf", "fonts-yozvox-yozfont"),
    # YOzFont E, N and S share their katakana almost stroke for stroke: one family.
    _w("yoz-e", "yoz-ens", f"{_TT}/yozvox-yozfont/YOzRE_.ttf", "fonts-yozvox-yozfont"),
    _w("yoz-n", "yoz-ens", f"{_TT}/yozvox-yozfont/YOzRN_.ttf", "fonts-yozvox-yozfont"),
    _w("yoz-s-bold", "yoz-ens", f"{_TT}/yozvox-yozfont/YOzBS_.ttf", "fonts-yozvox-yozfont"),
    _w("yoz-sp", "yoz-ens", f"{_TT}/yozvox-yozfont/YOzRSP.ttf", "fonts-yozvox-yozfont"),
    # Print designs: they add variety once distorted, as neat handwriting does.
    _w("ipa-gothic", "gothic-ipa", f"{_OT}/ipafont-gothic/ipag.ttf", "fonts-ipafont-gothic"),
    _w("takao-gothic", "gothic-ipa", f"{_TT}/takao-gothic/TakaoGothic.ttf", "fonts-takao-gothic"),
    _w("ipa-mincho", "mincho-ipa", f"{_OT}/ipafont-mincho/ipam.ttf", "fonts-ipafont-mincho"),
    _w("takao-mincho", "mincho-ipa", f"{_TT}/takao-mincho/TakaoMincho.ttf", "fonts-takao-mincho"),
    _w("noto-sans", "noto-sans", f"{_OT}/noto/NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),
    _w("noto-sans-bold", "noto-sans", f"{_OT}/noto/NotoSansCJK-Bold.ttc", "fonts-noto-cjk"),
    _w("noto-serif", "noto-serif", f"{_OT}/noto/NotoSerifCJK-Regular.ttc", "fonts-noto-cjk"),
    _w("noto-serif-bold", "noto-serif", f"{_OT}/noto/NotoSerifCJK-Bold.ttc", "fonts-noto-cjk"),
    _w("vl-gothic", "vl-gothic", f"{_TT}/vlgothic/VL-Gothic-Regular.ttf", "fonts-vlgothic"),
)

# Held out for the test set. Each has a cousin in training (Klee ~ kiloji/seto pens,
# YOzFont C ~ YOzFont A, Noto Serif ~ IPA Mincho, VL Gothic ~ IPA/Noto Gothic), so the
# gap is one of writers, not of scripts: a good model scores high, but not 100 %.
TEST_FAMILIES: frozenset[str] = frozenset({"klee", "yoz-c", "noto-serif", "vl-gothic"})


def writers_for(split: str) -> tuple[Writer, ...]:
    """The writers of one split ("train" or "test"), in catalogue order."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    held_out = split == "test"
    return tuple(w for w in WRITERS if (w.family in TEST_FAMILIES) == held_out)


def missing_fonts(writers: tuple[Writer, ...] = WRITERS) -> list[Writer]:
    """Writers whose font file is not installed (regeneration needs every one)."""
    return [w for w in writers if not Path(w.path).is_file()]
