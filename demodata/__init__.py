"""Demo katakana data set: a synthetic, public stand-in for the course's private data.

Fifteen katakana (ア イ ウ エ オ カ キ ク ケ コ サ シ ス セ ソ, class ids 0-14) rendered from
Japanese fonts and distorted to look handwritten, in the course's exact format. Train and
test use disjoint font families. The committed compact form needs numpy only::

    from demodata import load, materialise
    images, onehot = load("test")      # float64 (14500, 1, 28, 28), int32 (14500, 15)
    paths = materialise(Path("1_data"))  # {"train_data": Path(".../train_data.npy"), ...}
"""

from demodata.store import CLASSES, FILE_NAMES, load, materialise, metadata

__all__ = ["CLASSES", "FILE_NAMES", "load", "materialise", "metadata"]
