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
    ham10000_count: Optional[int]  # images in HAM10000 (Tschandl et al. 2018); None: not a HAM10000 class
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
    # ISIC 2016 and 2020 give only this verdict: with these names the binary and two-stage tasks work on them.
    LesionClass("benign", "Benign (ISIC 2016/2020 ground truth)", False, None, ()),
    LesionClass("malignant", "Malignant (ISIC 2016/2020 ground truth)", True, None, ()),
)
BY_NAME = {c.name: c for c in CLASSES}

HAM_CLASSES = tuple(c.name for c in CLASSES if c.ham10000_count)  # DermaMNIST's label order too
HAM_COUNTS = {c.name: c.ham10000_count for c in CLASSES if c.ham10000_count}
MALIGNANT = frozenset(c.name for c in CLASSES if c.malignant)
ISIC_TO_HAM = {column: c.name for c in CLASSES for column in c.isic_columns}
MELANOMA = "mel"  # the class whose sensitivity at fixed specificity is reported

# Per-source defaults: the file each reader looks for under --root when no --csv is given.
DEFAULT_CSV = {"ham10000": "HAM10000_metadata.csv", "isic-csv": "*GroundTruth*.csv",
               "fitzpatrick17k": "fitzpatrick17k.csv", "ddi": "ddi_metadata.csv", "pad-ufes-20": "metadata.csv"}

# The skin-type axis (Fitzpatrick I-VI): the sets that carry it record one type (Fitzpatrick17k, PAD-UFES-20) or a
# band of two (DDI: 12, 34, 56). A subgroup axis of evaluate and compare, not a model input.
FITZPATRICK = ("I", "II", "III", "IV", "V", "VI")
SKIN_TYPE_BANDS = {"12": "I-II", "34": "III-IV", "56": "V-VI"}
# PAD-UFES-20's diagnoses by the HAM10000/ISIC class they are (seborrheic keratosis is among the benign keratosis-like
# lesions, Bowen's disease an intraepithelial carcinoma).
PAD_UFES_CLASSES = {"ACK": "akiec", "BCC": "bcc", "MEL": "mel", "NEV": "nv", "SCC": "scc", "SEK": "bkl",
                    "BOD": "akiec"}

# ISIC 2017 Part 3 gives two yes/no labels; an image with neither is a nevus. Seborrheic keratoses are among
# HAM10000's benign keratosis-like lesions, so a HAM10000 model is evaluated on ISIC 2017 by name.
ISIC2017_LABELS = {"melanoma": "mel", "seborrheic_keratosis": "bkl"}
NO_LABEL_CLASS = "nv"  # the class of ISIC 2017's images that carry neither label; not a label of the multilabel task
BINARY_CLASSES = ("benign", "malignant")  # ISIC 2016 and 2020, in that order (target 0, 1)

# The columns of per-image tables (ISIC ground truth and metadata of 2016-2020, HAM10000, a user's CSV), each
# under the names the years used, the first found winning.
IMAGE_ID_COLUMNS = ("image", "image_id", "image_name", "isic_id", "file")
METADATA_COLUMNS = {"age": ("age_approx", "age_approximate", "age"), "sex": ("sex",),
                    "site": ("anatom_site_general", "anatom_site_general_challenge", "localization", "site", "region"),
                    "skin_type": ("fitzpatrick_scale", "fitzpatrick", "fitspatrick", "skin_type", "skin_tone")}
# A patient's images go to one split (several lesions of one person look alike), else a lesion's.
GROUP_COLUMNS = ("patient_id", "patient", "lesion_id", "group")
