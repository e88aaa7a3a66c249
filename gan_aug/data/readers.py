"""The registry of source readers: name -> read(config) -> SourceRecords; read_source adds the per-image CSVs."""

from gan_aug.data import ham10000, imagefolder, isic_csv, medmnist_npz, skin_tone_sets, toy
from gan_aug.data.tables import attach_table

READERS = {}


def register(name, read):
    assert name not in READERS, f"reader {name} registered twice"
    assert callable(read)
    READERS[name] = read


def read_source(config):
    """The records of config.source, with the metadata and groups of config.metadata_csv (any source: ISIC's
    metadata files, a user's CSV) and the groups of config.groups_csv, which win."""
    records = READERS[config.source](config)
    if config.metadata_csv:
        records = attach_table(records, config.metadata_csv)
    if config.groups_csv:
        records = attach_table(records, config.groups_csv, metadata=False, what="groups CSV")
    return records


register("ham10000", ham10000.read)
register("isic-csv", isic_csv.read)
register("medmnist-npz", medmnist_npz.read)
register("imagefolder", imagefolder.read)
register("toy", toy.read)
register("fitzpatrick17k", skin_tone_sets.read_fitzpatrick17k)
register("ddi", skin_tone_sets.read_ddi)
register("pad-ufes-20", skin_tone_sets.read_pad_ufes)
