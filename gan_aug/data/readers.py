"""The registry of source readers: name -> read(config) -> SourceRecords."""

from gan_aug.data import ham10000, imagefolder, isic_csv, medmnist_npz, toy

READERS = {}


def register(name, read):
    assert name not in READERS, f"reader {name} registered twice"
    assert callable(read)
    READERS[name] = read


register("ham10000", ham10000.read)
register("isic-csv", isic_csv.read)
register("medmnist-npz", medmnist_npz.read)
register("imagefolder", imagefolder.read)
register("toy", toy.read)
