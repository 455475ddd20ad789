"""The paper's datasets, read from their canonical original files.

Files come from a data directory (the ``data_dir`` argument or ``$VAE_DATA_DIR``, laid out as
``<dataset>/<file>``) or, when none is given, are downloaded from their canonical URLs into a user
cache with pooch. The sha256 pinned below is checked on every load, whichever way the file came, so
a corrupt, truncated or substituted file is never parsed. Parsing is fast enough (well under a
second per dataset, staticMNIST's 110 MB of text included) that no parsed cache is kept, and so none
can ever go stale.

All images are returned as float32 rows in [0, 1]: binary sets as 0/1, Frey Faces as k/255, and
dynamic MNIST's training images as grey levels k/255 (binarized afresh at every training step; its
validation and test images are binarized once, with a fixed seed).
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import DataError, check_choice

# Fixed seeds, so every user gets the same splits and the same bits.
FASHION_SPLIT_SEED = 20180409  # 50000 train / 10000 valid out of the 60000 training images
FASHION_BINARIZE_SEED = 20180410  # one Bernoulli(pixel/255) draw per pixel, train and test
FREY_SPLIT_SEED = 20180411  # 1565 / 200 / 200; the paper's code shuffled without a seed
DYNAMIC_MNIST_BINARIZE_SEED = 20180413  # validation and test bits, the same for every user

# The static-MNIST test file has no labels, but it is the MNIST test set sorted by digit:
# each of its images is a Bernoulli draw of the grey MNIST test image whose label its position
# implies. These are MNIST's test class counts (tests/test_datasets.py checks both facts against
# the original MNIST files).
STATIC_MNIST_TEST_DIGIT_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


def static_mnist_test_digits() -> np.ndarray:
    """The digit of each static-MNIST test image, in file order."""
    return np.repeat(np.arange(10), STATIC_MNIST_TEST_DIGIT_COUNTS)


@dataclass(frozen=True)
class SourceFile:
    relpath: str  # inside the data directory, e.g. "static_mnist/binarized_mnist_train.amat"
    url: str
    sha256: str
    size: int
    mirrors: tuple[str, ...] = ()  # other URLs of the same bytes (the sha256 is checked all the same)

    @property
    def name(self) -> str:
        return Path(self.relpath).name


@dataclass
class Dataset:
    """Train/valid/test images of one dataset as float32 arrays of shape (N, D)."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, int]
    likelihood: str  # "bernoulli" (binary pixels) or "discretized_logistic" (8-bit grey levels)
    pseudo_init: tuple[float, float]  # mean and std of the VampPrior's initial pseudo-inputs
    sources: dict[str, str] = field(default_factory=dict)  # file -> sha256 actually read
    dynamic_binarization: bool = False  # train holds grey levels, binarized afresh at every step

    @property
    def input_dim(self) -> int:
        return int(np.prod(self.image_shape))

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.train)}, valid={len(self.valid)}, "
                f"test={len(self.test)}, image_shape={self.image_shape}, likelihood={self.likelihood!r})")


# ---------------------------------------------------------------------------------------------
# Canonical files (see shared/data/README.md for their provenance).
_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_LECUN_URL = "http://yann.lecun.com/exdb/mnist/"
# LeCun's host often refuses scripted downloads; torchvision's and TensorFlow's copies of the same files
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "https://storage.googleapis.com/cvdf-datasets/mnist/")
FILES: dict[str, dict[str, SourceFile]] = {
    "static_mnist": {
        split: SourceFile(f"static_mnist/binarized_mnist_{split}.amat",
                          f"{_MNIST_URL}binarized_mnist_{split}.amat", sha, size)
        for split, sha, size in [
            ("train", "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d", 78_400_000),
            ("valid", "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2", 15_680_000),
            ("test", "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c", 15_680_000),
        ]
    },
    "dynamic_mnist": {
        key: SourceFile(f"dynamic_mnist/{fname}", f"{_LECUN_URL}{fname}", sha, size,
                        tuple(f"{mirror}{fname}" for mirror in _MNIST_MIRRORS))
        for key, fname, sha, size in [
            ("train", "train-images-idx3-ubyte.gz",
             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9_912_422),
            ("test", "t10k-images-idx3-ubyte.gz",
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1_648_877),
        ]
    },
    "fashion_mnist": {
        key: SourceFile(f"fashion_mnist/{fname}", f"{_FASHION_URL}{fname}", sha, size)
        for key, fname, sha, size in [
            ("train", "train-images-idx3-ubyte.gz",
             "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26_421_880),
            ("test", "t10k-images-idx3-ubyte.gz",
             "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4_422_102),
        ]
    },
    "caltech101_silhouettes": {
        "all": SourceFile(
            "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat",
            "https://people.cs.umass.edu/~marlin/data/caltech101_silhouettes_28_split1.mat",
            "eb6735e8d84b1850fabc5590124aab1755e90c9fd28123585324398405e1e42a", 872_124),
    },
    "frey_faces": {
        "all": SourceFile(
            "frey_faces/frey_rawface.mat", "http://www.cs.nyu.edu/~roweis/data/frey_rawface.mat",
            "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64", 1_100_584),
    },
}
DATASETS = tuple(FILES)


def cache_dir() -> Path:
    """Where downloaded files are kept: ``$VAE_CACHE_DIR`` or the OS user cache."""
    import pooch

    return Path(os.environ.get("VAE_CACHE_DIR") or pooch.os_cache("vae_lib"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, source: SourceFile) -> None:
    """Raise DataError unless ``path`` has the pinned size and sha256 of ``source``."""
    size = path.stat().st_size
    what_to_do = (f"Delete it and fetch it again from {source.url} "
                  f"(or let vae_lib download it by not setting a data directory).")
    if size != source.size:
        raise DataError(f"{path} is {size:,} bytes, expected {source.size:,}: the file is truncated "
                        f"or is not the canonical {source.name}. {what_to_do}")
    found = sha256_of(path)
    if found != source.sha256:
        raise DataError(f"{path} has sha256 {found}, expected {source.sha256}: the file is corrupt "
                        f"or is not the canonical {source.name}. {what_to_do}")


def check_data_dir(data_dir: str | os.PathLike | None = None) -> None:
    """Raise DataError if a data directory is set (argument or ``$VAE_DATA_DIR``) and is not a
    folder: said once, before a grid of cells starts, rather than by each cell's kernel."""
    given = data_dir or os.environ.get("VAE_DATA_DIR")
    if given and not Path(given).expanduser().is_dir():
        where = "" if data_dir else " (VAE_DATA_DIR)"
        raise DataError(f"The data directory {given}{where} is not a folder. Point it at the folder "
                        f"that holds the datasets' folders (static_mnist/, dynamic_mnist/, ...), or unset "
                        f"it to download them into {cache_dir()}.")


def fetch(source: SourceFile, data_dir: str | os.PathLike | None = None) -> Path:
    """Return a verified local path for ``source``.

    With a data directory (argument or ``$VAE_DATA_DIR``) the file must be there; otherwise it is
    downloaded into :func:`cache_dir` from its canonical URL (then its mirrors), or from the base
    URLs in ``$VAE_DATA_MIRROR`` (laid out like the data directory) when that is set.
    """
    data_dir = data_dir or os.environ.get("VAE_DATA_DIR")
    if data_dir:
        path = Path(data_dir).expanduser() / source.relpath
        if not path.is_file():
            raise DataError(
                f"{source.name} is not in the data directory: expected {path} "
                f"(sha256 {source.sha256}). Put the file there from {source.url}, point "
                f"VAE_DATA_DIR (or data_dir) at the folder that holds '{Path(source.relpath).parent}/', "
                f"or unset it to download into {cache_dir()}.")
        verify(path, source)
        return path
    return _download(source)


def _urls(source: SourceFile) -> list[str]:
    """Where to download ``source`` from, in order: the base URLs in ``$VAE_DATA_MIRROR``
    (space-separated, each laid out like the data directory) when it is set, else the canonical URL
    and then the file's mirrors."""
    bases = os.environ.get("VAE_DATA_MIRROR", "").split()
    for base in bases:
        if base.split("://")[0] not in ("http", "https", "ftp"):
            raise DataError(f"VAE_DATA_MIRROR holds {base!r}, which is not an http(s) or ftp base URL. "
                            f"For files on this machine, set VAE_DATA_DIR to their folder instead.")
    return [f"{base.rstrip('/')}/{source.relpath}" for base in bases] or [source.url, *source.mirrors]


def _download(source: SourceFile) -> Path:
    import pooch

    folder = cache_dir() / Path(source.relpath).parent
    failures = []
    for url in _urls(source):
        # a timeout, so that a host that does not answer moves on to the next URL
        downloader = (pooch.HTTPDownloader(progressbar=_progressbar(), timeout=60)
                      if url.startswith("http") else None)
        try:
            # pooch checks the sha256 of a cached file and of every download (it keeps no file that
            # fails), and downloads again when a cached copy does not match.
            return Path(pooch.retrieve(url, known_hash=f"sha256:{source.sha256}", fname=source.name,
                                       path=folder, downloader=downloader,
                                       progressbar=_progressbar()))
        except ValueError as err:  # pooch's checksum mismatch
            failures.append(f"{url} does not have the pinned sha256 {source.sha256} ({err})")
        except Exception as err:  # network errors come from requests; keep the message, drop the trace
            failures.append(f"{url}: {type(err).__name__}: {err}")
    raise DataError(f"Could not download {source.name} into {folder}: " + "; ".join(failures)
                    + f". Try again later, or (offline) copy the file to <folder>/{source.relpath} "
                      f"and set VAE_DATA_DIR=<folder>.")


def _progressbar() -> bool:
    try:
        import tqdm  # noqa: F401  (pooch draws its bar with tqdm)
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------------------------------------
# Parsers of the original formats.
def parse_amat(path: Path, num_pixels: int = 784) -> np.ndarray:
    """Binarized MNIST text: one image a line, 784 '0'/'1' values separated by single spaces."""
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    line = 2 * num_pixels  # a value and its separator (space, or the newline at the end)
    if raw.size % line:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {line}-byte lines")
    rows = raw.reshape(-1, line)
    values, separators = rows[:, 0::2], rows[:, 1::2]
    if not (np.all(separators[:, :-1] == ord(" ")) and np.all(separators[:, -1] == ord("\n"))
            and np.all((values == ord("0")) | (values == ord("1")))):
        raise DataError(f"{path}: not in the .amat layout of 784 space-separated 0/1 values a line")
    return (values == ord("1")).astype(np.float32)


def parse_idx_images(path: Path) -> np.ndarray:
    """Gzipped IDX image file (magic 0x803) -> uint8 array (N, rows * cols)."""
    raw = gzip.decompress(path.read_bytes())
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != 0x803 or len(raw) != 16 + n * rows * cols:
        raise DataError(f"{path}: not an IDX image file (magic {magic:#x}, {len(raw)} bytes)")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)


def _loadmat(path: Path) -> dict:
    import scipy.io

    return scipy.io.loadmat(path)


# ---------------------------------------------------------------------------------------------
# One loader a dataset: files -> (train, valid, test) float32 in [0, 1].
def _load_static_mnist(paths: dict[str, Path]):
    return tuple(parse_amat(paths[s]) for s in ("train", "valid", "test"))


def _load_dynamic_mnist(paths: dict[str, Path]):
    """As the paper's code splits MNIST: train = the first 50,000 training digits, validation = the
    last 10,000, test = the 10,000 test digits. Training images stay grey; validation and test are
    binarized once (each pixel ~ Bernoulli(grey level)) with a fixed seed."""
    train_valid = parse_idx_images(paths["train"]).astype(np.float32) / np.float32(255)
    test = parse_idx_images(paths["test"]).astype(np.float32) / np.float32(255)
    rng = np.random.default_rng(DYNAMIC_MNIST_BINARIZE_SEED)
    valid, test = ((rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
                   for x in (train_valid[50_000:], test))
    return train_valid[:50_000], valid, test


def _load_fashion_mnist(paths: dict[str, Path]):
    train_valid = parse_idx_images(paths["train"])
    test = parse_idx_images(paths["test"])
    order = np.random.default_rng(FASHION_SPLIT_SEED).permutation(len(train_valid))
    train, valid = train_valid[order[:50_000]], train_valid[order[50_000:]]
    rng = np.random.default_rng(FASHION_BINARIZE_SEED)  # one draw, in a fixed order
    return tuple((rng.random(x.shape, dtype=np.float32) < x / np.float32(255)).astype(np.float32)
                 for x in (train, valid, test))


def _load_caltech(paths: dict[str, Path]):
    mat = _loadmat(paths["all"])

    def images(key):  # rows are column-major 28x28 with the object 0 and the background 1
        x = mat[key].reshape(-1, 28, 28).transpose(0, 2, 1).reshape(-1, 784)
        return (1 - x).astype(np.float32)

    return images("train_data"), images("val_data"), images("test_data")


def _load_frey(paths: dict[str, Path]):
    faces = _loadmat(paths["all"])["ff"].T.astype(np.float32) / 255  # (1965, 560), rows of 28x20
    faces = faces[np.random.default_rng(FREY_SPLIT_SEED).permutation(len(faces))]
    return faces[:1565], faces[1565:1765], faces[1765:]


@dataclass(frozen=True)
class _Spec:
    load: Callable
    image_shape: tuple[int, int]
    likelihood: str
    pseudo_init: tuple[float, float]  # the paper's: near-empty images for MNIST, mid-grey otherwise
    dynamic_binarization: bool = False


_SPECS = {
    "static_mnist": _Spec(_load_static_mnist, (28, 28), "bernoulli", (0.05, 0.01)),
    "dynamic_mnist": _Spec(_load_dynamic_mnist, (28, 28), "bernoulli", (0.05, 0.01),
                           dynamic_binarization=True),
    "fashion_mnist": _Spec(_load_fashion_mnist, (28, 28), "bernoulli", (0.05, 0.01)),
    "caltech101_silhouettes": _Spec(_load_caltech, (28, 28), "bernoulli", (0.5, 0.02)),
    "frey_faces": _Spec(_load_frey, (28, 20), "discretized_logistic", (0.5, 0.02)),
}


def check_name(name: str) -> str:
    return check_choice("dataset", name, DATASETS, error=DataError)


def likelihood_of(name: str) -> str:
    """The likelihood the models of dataset ``name`` use, without loading it."""
    return _SPECS[check_name(name)].likelihood


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load ``name`` (one of :data:`DATASETS`) with its fixed train/valid/test split."""
    spec = _SPECS[check_name(name)]
    paths = {key: fetch(src, data_dir) for key, src in FILES[name].items()}
    train, valid, test = spec.load(paths)
    return Dataset(name, train, valid, test, spec.image_shape, spec.likelihood, spec.pseudo_init,
                   sources={src.relpath: src.sha256 for src in FILES[name].values()},
                   dynamic_binarization=spec.dynamic_binarization)
