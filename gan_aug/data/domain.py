"""Domain facts in one table, the way MedMNIST's INFO drives its datasets: the lesion classes (HAM10000's
diagnosis codes plus ISIC 2019's additions), their long names, which are malignant, their HAM10000
counts, and which ISIC ground-truth column maps to each. Every reader, task and report reads this table.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class LesionClass:
    name: str  # the short name every reader maps to (HAM10000's dx code)
    long_name: str
    malignant: bool  # the binary and two-stage tasks' positive group
    ham10000_count: Optional[int]  # images in HAM10000 (SOURCE.md); None: not a HAM10000 class
    isic_columns: tuple  # ISIC ground-truth CSV columns of this class (2019 renamed AKIEC to AK)


CLASSES = (
    LesionClass("akiec", "Actinic keratosis / intraepithelial carcinoma", True, 327, ("AKIEC", "AK")),
    LesionClass("bcc", "Basal cell carcinoma", True, 514, ("BCC",)),
    LesionClass("bkl", "Benign keratosis-like lesion", False, 1099, ("BKL",)),
    LesionClass("df", "Dermatofibroma", False, 115, ("DF",)),
    LesionClass("mel", "Melanoma", True, 1113, ("MEL",)),
    LesionClass("nv", "Melanocytic nevus", False, 6705, ("NV",)),
    LesionClass("vasc", "Vascular lesion", False, 142, ("VASC",)),
    LesionClass("scc", "Squamous cell carcinoma", True, None, ("SCC",)),
    LesionClass("unk", "None of the others", False, None, ("UNK",)),
)
BY_NAME = {c.name: c for c in CLASSES}

HAM_CLASSES = tuple(c.name for c in CLASSES if c.ham10000_count)  # DermaMNIST's label order too
HAM_COUNTS = {c.name: c.ham10000_count for c in CLASSES if c.ham10000_count}
MALIGNANT = frozenset(c.name for c in CLASSES if c.malignant)
ISIC_TO_HAM = {column: c.name for c in CLASSES for column in c.isic_columns}
MELANOMA = "mel"  # the class whose sensitivity at fixed specificity is reported

# Per-source defaults: the file each reader looks for under --root when no --csv is given.
DEFAULT_CSV = {"ham10000": "HAM10000_metadata.csv", "isic-csv": "*GroundTruth*.csv"}
