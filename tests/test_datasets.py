"""Datasets read from their canonical files: sizes, values, orientation and splits against the
facts in shared/data/README.md and independent readers (np.loadtxt, gzip + IDX, scipy.io.loadmat);
pinned fingerprints; DataError on bad input; and the download path over a loopback HTTP server."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from vae_lib.datasets import DATASETS, FILES, load_dataset
from vae_lib.errors import DataError

SPLITS = {  # README: split sizes
    "static_mnist": (50_000, 10_000, 10_000),
    "dynamic_mnist": (50_000, 10_000, 10_000),
    "fashion_mnist": (50_000, 10_000, 10_000),
    "caltech101_silhouettes": (4100, 2264, 2307),
    "frey_faces": (1565, 200, 200),
}
SHAPES = {"static_mnist": (28, 28), "dynamic_mnist": (28, 28), "fashion_mnist": (28, 28),
          "caltech101_silhouettes": (28, 28), "frey_faces": (28, 20)}
BINARY = {"static_mnist", "fashion_mnist", "caltech101_silhouettes"}  # every split 0/1
BERNOULLI = BINARY | {"dynamic_mnist"}  # binary pixels in the model (dynamic: train binarized per step)

# sha256 of the loaded arrays: np.packbits of the 0/1 pixels (binary sets) or the uint8 grey level
# k of k/255 (Frey), row-major. Computed once from the canonical files; a change in a parser, in the
# fixed splits, or in numpy's random streams (Fashion's split and binarization) changes them.
FINGERPRINTS = {
    ("static_mnist", "train"): "727146c35424b019f3e350e1e69faa05644a0abaf787e3f4e1a9632220a13906",
    ("static_mnist", "valid"): "a256ac44ae26be720fad8616a05ed6ecfd1619930d9a208379bb2a4405df5b6d",
    ("static_mnist", "test"): "9fcd8da6f0fdf09b2ba30fe63a0bb784042a0de82563172530229b983e294ff2",
    ("fashion_mnist", "train"): "b77705350f049096fcc1b9f71624185a102c76d14b4ec8be6993f51b29ce2af1",
    ("fashion_mnist", "valid"): "00b9e3ba6380e4ed6f7fced0fce5df5aabd53b115f7490eece78ebf8793d3484",
    ("fashion_mnist", "test"): "2ece5f06ccb8617cfcf2173ed08ec8b544b1ed0d4e38c5172c7defddf0ca9850",
    ("caltech101_silhouettes", "train"): "15b51923d1f5dc0a9372922c926823293014c9edaa56ad37717a1510fe8dde87",
    ("caltech101_silhouettes", "valid"): "6d9452f7bb8e95d48e556f436c49fbedf44505c50b20b3750ebe710ff81453dc",
    ("caltech101_silhouettes", "test"): "66237cf83b2a99b7f6c3e5dfe2dfeb3900f7bf7dd82a73187e1c6c323bf9c0d2",
    ("frey_faces", "train"): "29239497a3dd01eb4fd6895554002688a5b339dda3116ff5906eb0517fb1d0be",
    ("frey_faces", "valid"): "cc6276752ceac2d34cd8425c966b72da02fdc5b1df1b771a13194a70fe78ae86",
    ("frey_faces", "test"): "6bf7488774bd0ab5707658f0da9a1c02d1e1875b97824474b86f4388ba0bb07d",
    ("dynamic_mnist", "train"): "c80ceb24eedca80f31cfca280b8fb911cbb41b9990f998bebd40e26b1ab6d0f8",
    ("dynamic_mnist", "valid"): "5aef150babd7fd51fcc896d3f36b9dfa2e5010ee02d85250fedd1c2c5454a262",
    ("dynamic_mnist", "test"): "c0ac8eea7860cb9c958ad315fdc2b79603ad39f34307386fbf772032b677ee55",
}


def _fingerprint(array, binary):
    raw = np.packbits(array.astype(np.uint8), axis=None) if binary else np.rint(
        array.astype(np.float64) * 255).astype(np.uint8)
    return hashlib.sha256(raw.tobytes()).hexdigest()


def _rows(array):
    """Set of the rows' bytes."""
    return {row.tobytes() for row in np.ascontiguousarray(array)}


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DATASETS)
def test_split_sizes_shapes_and_values(datasets, name):
    """README facts: split sizes, image shape, float32 in [0, 1], binary sets exactly 0/1."""
    ds = datasets[name]
    assert ds.name == name
    assert ds.image_shape == SHAPES[name]
    assert ds.input_dim == SHAPES[name][0] * SHAPES[name][1]
    for split, n in zip(("train", "valid", "test"), SPLITS[name]):
        x = getattr(ds, split)
        assert x.shape == (n, ds.input_dim), split
        assert x.dtype == np.float32
        assert np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0
        if name in BINARY or (name == "dynamic_mnist" and split != "train"):
            assert np.all((x == 0) | (x == 1)), split
    assert ds.likelihood == ("bernoulli" if name in BERNOULLI else "discretized_logistic")
    assert ds.dynamic_binarization == (name == "dynamic_mnist")


@pytest.mark.parametrize("name", DATASETS)
def test_fingerprints_are_pinned(datasets, name):
    ds = datasets[name]
    for split in ("train", "valid", "test"):
        binary = name in BINARY or (name == "dynamic_mnist" and split != "train")
        assert _fingerprint(getattr(ds, split), binary) == FINGERPRINTS[name, split], split


@pytest.mark.parametrize("name", ["fashion_mnist", "dynamic_mnist"])
def test_loading_twice_gives_identical_arrays(data_dir, datasets, name):
    """Fashion's split and binarization, and dynamic MNIST's fixed validation and test bits, come
    from fixed seeds: a second load is bit-identical."""
    again = load_dataset(name, data_dir)
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(again, split), getattr(datasets[name], split))


def _idx_images(path):
    """Independent IDX reader: gzip, a 16-byte header, then uint8 pixels."""
    raw = gzip.decompress(Path(path).read_bytes())
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)


def test_dynamic_mnist_splits_and_fixed_binarization(data_dir, datasets):
    """Train = the first 50,000 training digits as grey levels k/255; validation = the last 10,000,
    test = the 10,000 test digits, each pixel a Bernoulli(k/255) draw: black pixels stay 0, white
    ones 1, and the share of ones matches the grey levels' mean within 5 standard errors."""
    ds = datasets["dynamic_mnist"]
    raw_train = _idx_images(data_dir / "dynamic_mnist/train-images-idx3-ubyte.gz")
    raw_test = _idx_images(data_dir / "dynamic_mnist/t10k-images-idx3-ubyte.gz")
    assert raw_train.shape == (60_000, 784) and raw_test.shape == (10_000, 784)
    np.testing.assert_array_equal(ds.train, raw_train[:50_000].astype(np.float32) / np.float32(255))
    for bits, grey in ((ds.valid, raw_train[50_000:]), (ds.test, raw_test)):
        p = grey / 255.0
        assert np.all(bits[grey == 0] == 0) and np.all(bits[grey == 255] == 1)
        se = np.sqrt((p * (1 - p)).sum()) / p.size
        assert abs(bits.mean() - p.mean()) < 5 * se


def test_static_mnist_matches_loadtxt_and_splits_are_disjoint(data_dir, datasets):
    """Reference: np.loadtxt of each .amat file (rows kept in file order). The canonical splits have
    no image in common (and no duplicates within a split)."""
    ds = datasets["static_mnist"]
    for split in ("train", "valid", "test"):
        ref = np.loadtxt(data_dir / f"static_mnist/binarized_mnist_{split}.amat", dtype=np.uint8)
        np.testing.assert_array_equal(getattr(ds, split), ref.astype(np.float32))
    rows = [_rows(np.packbits(getattr(ds, s).astype(np.uint8), axis=1)) for s in ("train", "valid", "test")]
    assert [len(r) for r in rows] == list(SPLITS["static_mnist"])
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])


def test_static_mnist_test_file_is_mnist_test_set_sorted_by_digit(data_dir, datasets):
    """Reference: the original MNIST test images and labels. Each static-MNIST test image is most
    likely (as a Bernoulli draw of grey levels) under a different grey MNIST test image whose
    label is the digit its position implies; the label counts are the ones the library states."""
    from vae_lib.datasets import STATIC_MNIST_TEST_DIGIT_COUNTS, static_mnist_test_digits

    labels = np.frombuffer(gzip.decompress(
        (data_dir / "dynamic_mnist/t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
    assert tuple(np.bincount(labels)) == STATIC_MNIST_TEST_DIGIT_COUNTS
    grey = np.clip(_idx_images(data_dir / "dynamic_mnist/t10k-images-idx3-ubyte.gz") / 255.0,
                   1e-3, 1 - 1e-3).astype(np.float32)
    bits = datasets["static_mnist"].test
    match = np.concatenate([np.argmax(b @ np.log(grey).T + (1 - b) @ np.log1p(-grey).T, axis=1)
                            for b in np.array_split(bits, 10)])
    digits = static_mnist_test_digits()
    np.testing.assert_array_equal(labels[match], digits)
    assert len(np.unique(match)) > 9900  # MNIST's test set has a few near-duplicate digits


def _read_idx(path):
    raw = gzip.decompress(Path(path).read_bytes())
    assert int.from_bytes(raw[:4], "big") == 0x803
    n, r, c = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw[16:], np.uint8).reshape(n, r * c)


@pytest.fixture(scope="module")
def fashion_raw(data_dir):
    return (_read_idx(data_dir / "fashion_mnist/train-images-idx3-ubyte.gz"),
            _read_idx(data_dir / "fashion_mnist/t10k-images-idx3-ubyte.gz"))


def test_fashion_binarization_is_bernoulli_of_grey_level(datasets, fashion_raw):
    """Each pixel is one Bernoulli(grey/255) draw: the test split (kept in file order) has 0 where the
    original is 0 and 1 where it is 255, and the mean of the binary pixels equals the mean grey
    level / 255 over ~47M (train+valid) and ~8M (test) pixels, within 5 SE. A threshold at 0.5
    would be off by far more."""
    ds = datasets["fashion_mnist"]
    raw_train, raw_test = fashion_raw
    assert raw_train.shape == (60_000, 784) and raw_test.shape == (10_000, 784)
    test = ds.test.astype(bool)
    assert not np.any(test & (raw_test == 0))
    assert np.all(test | (raw_test != 255))
    for binary, raw in [(np.concatenate([ds.train, ds.valid]), raw_train), (ds.test, raw_test)]:
        p = raw.astype(np.float64) / 255
        se = np.sqrt((p * (1 - p)).sum()) / p.size
        assert abs(binary.mean(dtype=np.float64) - p.mean()) < 5 * se
        assert abs((raw > 127).mean() - p.mean()) > 50 * se  # the check can tell thresholding apart


def test_fashion_train_and_valid_come_from_distinct_training_images(datasets, fashion_raw):
    """A sample of 1000 train and 1000 valid images: the original training image under which each is
    most likely (Bernoulli(grey/255) per pixel) is one it could have come from (no 1 where the
    original is 0, no 0 where it is 255), and the originals matched by train and by valid are
    disjoint. (Fashion-MNIST has near-duplicates, so the match need not be unique.)"""
    ds = datasets["fashion_mnist"]
    p = np.clip(fashion_raw[0].astype(np.float32) / 255, 1e-6, 1 - 1e-6)
    log_p, log_q = np.log(p).T, np.log1p(-p).T  # (784, 60000)
    rng = np.random.default_rng(0)
    matched = {}
    for split in ("train", "valid"):
        images = getattr(ds, split)
        b = images[rng.choice(len(images), 1000, replace=False)]
        best = np.concatenate([(c @ log_p + (1 - c) @ log_q).argmax(1)  # (250, 60000) at a time
                               for c in np.split(b, 4)])
        originals = fashion_raw[0][best]
        assert not np.any((b == 1) & (originals == 0)), f"a {split} image matches no original"
        assert not np.any((b == 0) & (originals == 255)), f"a {split} image matches no original"
        matched[split] = set(best.tolist())
    assert not matched["train"] & matched["valid"]


def test_caltech_orientation_and_polarity(data_dir, datasets):
    """Reference: scipy.io.loadmat of the .mat, each row reshape(28, 28, order='F') (column-major,
    README) and 1 - x (objects 1, background 0); the borders are then mostly background."""
    mat = scipy.io.loadmat(data_dir / "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat")
    ds = datasets["caltech101_silhouettes"]
    for split, key in [("train", "train_data"), ("valid", "val_data"), ("test", "test_data")]:
        ref = np.stack([1 - row.reshape(28, 28, order="F") for row in mat[key].astype(np.float32)])
        np.testing.assert_array_equal(getattr(ds, split).reshape(-1, 28, 28), ref)
    images = ds.train.reshape(-1, 28, 28)
    assert images[:, [0, -1], :].mean() < 0.1 and images[:, 12:16, 12:16].mean() > 0.8


def test_frey_orientation_range_and_split(data_dir, datasets):
    """Reference: scipy.io.loadmat 'ff' (560 x 1965 uint8), faces ff.T.reshape(-1, 28, 20) (README).
    Values are k/255 with min 8 and max 238 overall; the three splits together are a permutation
    of all 1965 faces (so they are disjoint up to duplicate faces)."""
    ff = scipy.io.loadmat(data_dir / "frey_faces/frey_rawface.mat")["ff"]
    assert ff.shape == (560, 1965) and ff.dtype == np.uint8
    faces = ff.T.reshape(-1, 28, 20)
    ds = datasets["frey_faces"]
    together = np.concatenate([ds.train, ds.valid, ds.test])
    k = np.rint(together * 255)
    np.testing.assert_array_equal(together, (k / 255).astype(np.float32))
    assert k.min() == 8 and k.max() == 238
    got = k.astype(np.uint8).reshape(-1, 28, 20)
    order_got = np.lexsort(got.reshape(len(got), -1).T)
    order_ref = np.lexsort(faces.reshape(len(faces), -1).T)
    np.testing.assert_array_equal(got[order_got], faces[order_ref])
    assert not np.array_equal(got, faces)  # shuffled, as the paper's split


# ---------------------------------------------------------------------------------------------
# Bad input.
def test_unknown_dataset_name():
    with pytest.raises(DataError) as err:
        load_dataset("mnist", "/nonexistent")
    message = str(err.value)
    assert "'mnist'" in message and all(name in message for name in DATASETS)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("frey_faces", tmp_path)
    message = str(err.value)
    assert "frey_rawface.mat" in message
    assert str(tmp_path / "frey_faces" / "frey_rawface.mat") in message
    assert FILES["frey_faces"]["all"].sha256 in message


def _copy_layout(data_dir, tmp_path, relpath):
    target = tmp_path / relpath
    target.parent.mkdir(parents=True)
    shutil.copyfile(data_dir / relpath, target)
    return target


@pytest.mark.parametrize("name", ["frey_faces", "caltech101_silhouettes"])
def test_truncated_file(data_dir, tmp_path, name):
    source = FILES[name]["all"]
    target = _copy_layout(data_dir, tmp_path, source.relpath)
    with open(target, "r+b") as f:
        f.truncate(source.size // 2)
    with pytest.raises(DataError) as err:
        load_dataset(name, tmp_path)
    message = str(err.value)
    assert str(target) in message
    assert f"{source.size // 2:,} bytes" in message and f"expected {source.size:,}" in message


@pytest.mark.parametrize("name", ["frey_faces", "caltech101_silhouettes"])
def test_right_size_wrong_content(data_dir, tmp_path, name):
    source = FILES[name]["all"]
    target = _copy_layout(data_dir, tmp_path, source.relpath)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        load_dataset(name, tmp_path)
    message = str(err.value)
    assert str(target) in message and "sha256" in message
    assert f"expected {source.sha256}" in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_a_data_directory_is_checked_as_the_loader_reads_it(tmp_path, monkeypatch):
    """check_data_dir (the main job's check before its grid) accepts what fetch would read, a
    folder given with ~ or relative to the working folder, from the argument or $VAE_DATA_DIR, and
    refuses a path that is missing or is a file, naming it; with no data directory it checks nothing."""
    from vae_lib.datasets import check_data_dir

    (tmp_path / "data").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    for fine in ("~/data", "data", str(tmp_path / "data"), None):
        check_data_dir(fine)
    for bad in ("~/missing", "a_file"):
        with pytest.raises(DataError, match=f"The data directory {bad} is not a folder"):
            check_data_dir(bad)
        monkeypatch.setenv("VAE_DATA_DIR", bad)
        with pytest.raises(DataError, match=fr"{bad} \(VAE_DATA_DIR\) is not a folder"):
            check_data_dir()
        monkeypatch.setenv("VAE_DATA_DIR", "data")
        check_data_dir()


def test_data_dir_from_environment(data_dir, tmp_path, monkeypatch):
    """Without a data_dir argument, $VAE_DATA_DIR is used (and a wrong one names the file)."""
    monkeypatch.setenv("VAE_DATA_DIR", str(data_dir))
    assert len(load_dataset("frey_faces").train) == 1565
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="frey_rawface.mat"):
        load_dataset("frey_faces")


# ---------------------------------------------------------------------------------------------
# Download over loopback only.
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server on 127.0.0.1 serving ``folder``."""
    servers = []

    def start(folder):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def download_env(monkeypatch, tmp_path):
    """No data directory, a fresh cache in tmp_path, and no proxy for loopback."""
    monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    cache = tmp_path / "cache"
    monkeypatch.setenv("VAE_CACHE_DIR", str(cache))
    return cache


def test_download_from_mirror_into_cache(data_dir, datasets, serve, download_env, monkeypatch):
    """Frey Faces from a loopback mirror of the data folder: the file lands in the cache with the
    pinned sha256, the arrays equal those read from the data folder, and a second load works from
    the cache alone (the mirror then refuses connections)."""
    base = serve(data_dir)
    monkeypatch.setenv("VAE_DATA_MIRROR", base)
    ds = load_dataset("frey_faces")
    cached = download_env / "frey_faces" / "frey_rawface.mat"
    assert cached.is_file()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == FILES["frey_faces"]["all"].sha256
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(ds, split), getattr(datasets["frey_faces"], split))
    monkeypatch.setenv("VAE_DATA_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    np.testing.assert_array_equal(load_dataset("frey_faces").train, ds.train)


def test_download_with_wrong_sha256(serve, download_env, monkeypatch, tmp_path, data_dir):
    """A mirror serving a corrupted copy: DataError about the pinned sha256, naming the URL; the
    bad file is not left in the cache."""
    bad_root = tmp_path / "bad_mirror"
    target = _copy_layout(data_dir, bad_root, FILES["frey_faces"]["all"].relpath)
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    base = serve(bad_root)
    monkeypatch.setenv("VAE_DATA_MIRROR", base)
    with pytest.raises(DataError) as err:
        load_dataset("frey_faces")
    message = str(err.value)
    url = f"{base}/frey_faces/frey_rawface.mat"
    assert url in message and "sha256" in message and FILES["frey_faces"]["all"].sha256 in message
    assert not (download_env / "frey_faces" / "frey_rawface.mat").exists()


def test_corrupt_cached_copy_is_downloaded_again(data_dir, serve, download_env, monkeypatch):
    """A damaged file already in the cache does not pass: it is replaced by a verified download."""
    source = FILES["frey_faces"]["all"]
    cached = download_env / source.relpath
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\0" * source.size)
    monkeypatch.setenv("VAE_DATA_MIRROR", serve(data_dir))
    ds = load_dataset("frey_faces")
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == source.sha256
    assert len(ds.train) == 1565


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_moves_on_to_the_next_url_and_refuses_a_local_path_as_mirror(data_dir, serve, tmp_path,
                                                                              download_env, monkeypatch):
    """Several mirrors: one that refuses connections and one with a corrupted copy are passed over
    for one that serves the file; a file:// "mirror" is refused with what to do instead."""
    bad_root = tmp_path / "bad_mirror"
    target = _copy_layout(data_dir, bad_root, FILES["frey_faces"]["all"].relpath)
    target.write_bytes(b"\0" * target.stat().st_size)
    bases = [f"http://127.0.0.1:{_closed_port()}", serve(bad_root), serve(data_dir)]
    monkeypatch.setenv("VAE_DATA_MIRROR", " ".join(bases))
    assert len(load_dataset("frey_faces").train) == 1565
    monkeypatch.setenv("VAE_DATA_MIRROR", f"file://{data_dir}")
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "empty_cache"))
    with pytest.raises(DataError, match="not an http.* VAE_DATA_DIR"):
        load_dataset("frey_faces")


def test_dynamic_mnist_has_mirrors_of_the_same_files():
    """LeCun's host refuses many scripted downloads: each file has further URLs of the same name."""
    for source in FILES["dynamic_mnist"].values():
        assert source.url.startswith("http://yann.lecun.com/") and len(source.mirrors) == 2
        assert all(m.endswith("/" + source.name) and m.startswith("https://") for m in source.mirrors)


def test_download_from_unreachable_mirror(download_env, monkeypatch):
    """Connection refused on loopback: DataError that names the URL it tried."""
    base = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("VAE_DATA_MIRROR", base)
    with pytest.raises(DataError) as err:
        load_dataset("frey_faces")
    assert f"{base}/frey_faces/frey_rawface.mat" in str(err.value)
