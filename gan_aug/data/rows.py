"""Prepared sets larger than memory: their images read from disk where they lie, row by row.

A prepared set is one uncompressed .npz (np.savez stores its members as they are), so the `images` member is a
plain .npy inside the zip file and can be memory-mapped in place: no second format, the same file, the same
fingerprint and split. Above MEMORY_MAP_ABOVE bytes of images (or GAN_AUG_MEMORY_MAP_ABOVE_MB), load_prepared
maps it instead of reading it, prepare decodes into a file instead of an array, and the training loops gather
each batch's rows from disk (ImageRows) instead of holding a split in memory. Below it nothing changes.
"""

import os
import struct
import zipfile

import numpy as np
from tqdm import tqdm

from gan_aug.errors import UserError

MEMORY_MAP_ABOVE = 4 << 30  # bytes of images: ISIC 2020 at 256 px (6.5 GB) is mapped, HAM10000 at 256 px is not
HASH_CHUNK = 64 << 20  # bytes read at a time when hashing or copying images on disk (read, not mapped)
LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip local file header: signature ... name length, extra length


def memory_map_above():
    """The image bytes above which sets are memory-mapped: GAN_AUG_MEMORY_MAP_ABOVE_MB when set (0: always)."""
    value = os.environ.get("GAN_AUG_MEMORY_MAP_ABOVE_MB")
    if value is None:
        return MEMORY_MAP_ABOVE
    try:
        return max(0, int(float(value) * (1 << 20)))
    except ValueError:
        raise UserError(f"GAN_AUG_MEMORY_MAP_ABOVE_MB={value!r} is not a number of megabytes") from None


def map_member(path, archive, name):
    """The .npy member `name` of the open zip `archive` at `path` as a read-only np.memmap, or None when it is
    compressed (np.savez_compressed) or at most memory_map_above() bytes: then it is read as usual."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or info.file_size <= memory_map_above():
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        signature, name_length, extra_length = LOCAL_HEADER.unpack(handle.read(LOCAL_HEADER.size))
        if signature != b"PK\x03\x04":
            raise ValueError(f"member {name} has no local header")
        handle.seek(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)
        reader = HEADER_READERS.get(np.lib.format.read_magic(handle))
        if reader is None:
            return None
        shape, fortran_order, dtype = reader(handle)
        offset = handle.tell()
    if fortran_order or dtype.hasobject:
        return None
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    mapped.rows_at = (str(path), offset)  # the base mapping only: numpy's views of it do not carry this
    return mapped


HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def is_mapped(images):
    """Whether `images` lie on disk (a mapped set, a view of one, prepare's decode buffer) rather than in memory."""
    return isinstance(images, (np.memmap, ImageRows, RowFile))


def read_rows(array, rows, out):
    """out[i] = array[rows[i]]. For a set on disk the rows are read from its file, not through the mapping: a
    mapped page counts towards the process's resident memory until the kernel drops it, so reading a set larger
    than memory through the mapping would push the process's size towards the machine's (harmless, but it hides
    what the process itself needs)."""
    location = getattr(array, "rows_at", None)
    if location is None:
        out[...] = array[rows]
        return
    path, offset = location
    row_bytes = int(np.prod(array.shape[1:])) * array.dtype.itemsize
    flat = out.reshape(len(out), -1).view(np.uint8)
    with open(path, "rb", buffering=0) as handle:
        for i in np.argsort(rows, kind="stable"):  # in file order: the disk reads ahead
            handle.seek(offset + int(rows[i]) * row_bytes)
            if handle.readinto(flat[i]) != row_bytes:
                raise UserError(f"{path} is shorter than its header says: prepare it again")


def hash_rows(digest, images):
    """digest.update(images' bytes); a mapped set is read in chunks of rows, never all at once."""
    if not is_mapped(images):
        digest.update(np.ascontiguousarray(images, dtype=np.uint8).data)
        return
    for rows in row_chunks(images, "fingerprint"):
        digest.update(rows_of(images, rows).data)


def row_chunks(images, desc):
    """Index arrays over the rows of images on disk, HASH_CHUNK bytes each, with a progress bar on a terminal
    (tqdm's disable=None: none in logs or tests): reading 26 GB takes minutes."""
    row_bytes = max(1, int(np.prod(images.shape[1:])) * images.dtype.itemsize)
    step = max(1, HASH_CHUNK // row_bytes)
    with tqdm(total=len(images) * row_bytes, desc=desc, unit="B", unit_scale=True, disable=None, leave=False) as bar:
        for start in range(0, len(images), step):
            rows = np.arange(start, min(start + step, len(images)))
            yield rows
            bar.update(len(rows) * row_bytes)


def rows_of(images, rows):
    """images[rows] as a new array, read row by row from disk for a mapped set."""
    return subset(images, rows)[:] if is_mapped(images) else images[rows]


class ImageRows:
    """Rows `index` of a (memory-mapped) (N, H, W, 3) uint8 array, read only when asked for: a subset of a
    large prepared set that behaves like the array `source[index]` would (len, shape, dtype, [int], [slice],
    [int array]) without copying it into memory."""

    def __init__(self, source, index):
        self.source, self.index = source, np.asarray(index, dtype=np.int64)
        self.shape = (len(self.index),) + tuple(source.shape[1:])
        self.dtype, self.ndim = source.dtype, source.ndim

    def __len__(self):
        return len(self.index)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        rows = self.index[key]
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
        read_rows(self.source, rows, out)
        return out

    def __array__(self, dtype=None, copy=None):  # np.asarray(rows): the whole subset, read now
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def subset(images, index):
    """images[index]: a copy for an array in memory, an ImageRows view (nothing read yet) for one on disk."""
    if isinstance(images, ImageRows):
        return ImageRows(images.source, images.index[index])
    if is_mapped(images):
        return ImageRows(images, np.arange(len(images))[index])
    return images[index]


class RowFile:
    """A zero-filled .npy file of uint8 rows, written and read row by row, never mapped: where
    prepare decodes a set larger than memory. Indexed like the array it holds: [int] = row, [int], [slice]."""

    def __init__(self, path, shape, offset=None):
        """A new zero-filled file at `path`; with `offset`, the rows of `shape` already at that offset of it."""
        self.path, self.shape, self.dtype, self.ndim = str(path), tuple(shape), np.dtype(np.uint8), len(shape)
        self.row_bytes = int(np.prod(self.shape[1:]))
        if offset is None:
            with open(path, "wb") as handle:
                np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False,
                                                              "shape": self.shape})
                offset = handle.tell()
                handle.truncate(offset + self.row_bytes * self.shape[0])  # sparse: zeros cost no disk yet
        self.rows_at = (self.path, offset)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        return subset(self, key)[:] if not isinstance(key, (int, np.integer)) else subset(self, [key])[0]

    def __setitem__(self, row, value):
        row = int(row)
        if not 0 <= row < len(self):
            raise IndexError(row)
        with open(self.path, "r+b", buffering=0) as handle:
            handle.seek(self.rows_at[1] + row * self.row_bytes)
            handle.write(np.ascontiguousarray(value, dtype=np.uint8).data)

    def head(self, rows):
        """The first `rows` rows (the file is not shortened)."""
        return RowFile(self.path, (rows,) + self.shape[1:], self.rows_at[1])


def save_npz(handle, arrays):
    """np.savez(handle, **arrays), byte for byte, with images on disk (is_mapped) copied a chunk of rows at a
    time instead of through memory."""
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                if not is_mapped(value):
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
                    continue
                header = {"descr": np.lib.format.dtype_to_descr(value.dtype), "fortran_order": False,
                          "shape": tuple(value.shape)}
                np.lib.format.write_array_header_1_0(member, header)
                for rows in row_chunks(value, f"write {key}"):
                    member.write(rows_of(value, rows).data)
