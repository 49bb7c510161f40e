"""The file-based loaders on small files written here in each real format, their
errors on missing and corrupt files, ``--download`` against a local HTTP server and the
md5s it checks, and the real files of ``../shared/data`` when that folder exists."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from dann_serve import data
from dann_serve.data import DatasetError, download, mnist
from dann_serve.data.download import Remote, download_datasets, fetch
from harness.server_process import free_port

COUNT = 10


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(6)


@pytest.fixture()
def digits28(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """COUNT MNIST-like images: random grey inside a black frame, so that their background
    (and the padding) is black; pixel (0, 0) is 255, to follow through the padding."""
    images = rng.integers(0, 200, size=(COUNT, 28, 28), dtype=np.uint8)
    images[:, :3] = images[:, -3:] = images[:, :, :3] = images[:, :, -3:] = 0
    images[:, 0, 0] = 255
    return images, np.arange(COUNT, dtype=np.uint8) % 10


# -- MNIST --------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim  # unsigned bytes, ndim dimensions: 2051 or 2049
    return struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture()
def write_idx(data_dir: Path) -> Callable[..., Path]:
    """``write_idx(stem, payload, gz)``: an IDX file (array or raw bytes) in ``mnist/``."""

    def write(stem: str, payload: np.ndarray | bytes, gz: bool = True) -> Path:
        folder = data_dir / "mnist"
        folder.mkdir(parents=True, exist_ok=True)
        data = payload if isinstance(payload, bytes) else idx_bytes(payload)
        path = folder / (f"{stem}.gz" if gz else stem)
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    return write


@pytest.fixture()
def mnist_test_files(write_idx, digits28) -> dict[str, Path]:
    images, labels = digits28
    return {
        "images": write_idx("t10k-images-idx3-ubyte", images),
        "labels": write_idx("t10k-labels-idx1-ubyte", labels),
    }


def assert_mnist_layout(split: data.Split, images: np.ndarray, labels: np.ndarray) -> None:
    assert split.images.shape == (len(images), 32, 32, 3)
    assert split.images.dtype == np.uint8 and split.labels.dtype == np.int64
    np.testing.assert_array_equal(split.labels, labels)
    # Pixel (0, 0) lands at (2, 2) after the 2-pixel pad, in all three channels.
    assert (split.images[:, 2, 2] == 255).all()
    np.testing.assert_array_equal(split.images[:, 2:30, 2:30, 1], images)
    assert split.images[:, :2].max() == 0 and split.images[:, :, 30:].max() == 0


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_mnist_full_idx_files(write_idx, digits28, data_dir: Path, gz: bool) -> None:
    images, labels = digits28
    for part, (x, y) in {"train": (images, labels), "t10k": (images[:4], labels[:4])}.items():
        write_idx(f"{part}-images-idx3-ubyte", x, gz)
        write_idx(f"{part}-labels-idx1-ubyte", y, gz)
    domain = data.load("mnist", data_dir)
    assert_mnist_layout(domain.train, images, labels)
    assert_mnist_layout(domain.test, images[:4], labels[:4])
    assert domain.note == ""


def test_mnist_npz(data_dir: Path, digits28) -> None:
    images, labels = digits28
    (data_dir / "mnist").mkdir(parents=True)
    np.savez(
        data_dir / "mnist" / "mnist.npz",
        x_train=images,
        y_train=labels,
        x_test=images[:3],
        y_test=labels[:3],
    )
    domain = data.load("mnist", data_dir)
    assert_mnist_layout(domain.train, images, labels)
    assert_mnist_layout(domain.test, images[:3], labels[:3])


def test_mnist_test_files_alone_split_by_index(
    mnist_test_files, digits28, data_dir: Path, monkeypatch
) -> None:
    monkeypatch.setattr(mnist, "ADAPTATION_SIZE", 6)
    images, labels = digits28
    domain = data.load("mnist", data_dir)
    assert_mnist_layout(domain.train, images[:6], labels[:6])
    assert_mnist_layout(domain.test, images[6:], labels[6:])
    assert "split by index" in domain.note


def _truncate_gzip(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-20])


IDX_FAULTS = {
    # name: (file to damage, damage, message)
    "bad magic": (
        "images",
        lambda p: p.write_bytes(
            gzip.compress(struct.pack(">4i", 2049, COUNT, 28, 28) + bytes(COUNT * 784))
        ),
        "bad magic number 2049",
    ),
    "truncated": (
        "images",
        lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-100])),
        "truncated IDX file",
    ),
    "too long": (
        "labels",
        lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b"\0")),
        "IDX file too long",
    ),
    "header only": (
        "labels",
        lambda p: p.write_bytes(gzip.compress(b"\0\0\x08")),
        "shorter than its 8-byte header",
    ),
    "broken gzip": ("images", _truncate_gzip, "not a complete gzip file"),
    "wrong size": (
        "images",
        lambda p: p.write_bytes(gzip.compress(idx_bytes(np.zeros((COUNT, 27, 27), np.uint8)))),
        "images are 27x27, expected 28x28",
    ),
    "count mismatch": (
        "labels",
        lambda p: p.write_bytes(gzip.compress(idx_bytes(np.zeros(COUNT - 1, np.uint8)))),
        f"{COUNT - 1} labels for the {COUNT} images",
    ),
    "label out of range": (
        "labels",
        lambda p: p.write_bytes(gzip.compress(idx_bytes(np.full(COUNT, 12, np.uint8)))),
        "label 12 at index 0 is out of range 0-9",
    ),
}


@pytest.mark.parametrize("fault", IDX_FAULTS)
def test_mnist_corrupt_files_name_file_and_problem(
    mnist_test_files, data_dir: Path, monkeypatch, fault: str
) -> None:
    monkeypatch.setattr(mnist, "ADAPTATION_SIZE", 6)
    which, damage, message = IDX_FAULTS[fault]
    damage(mnist_test_files[which])
    with pytest.raises(DatasetError, match=re.escape(message)) as error:
        data.load("mnist", data_dir)
    assert str(mnist_test_files[which]) in str(error.value)


def test_mnist_missing_names_every_file_and_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as error:
        data.load("mnist", tmp_path / "nowhere")
    message = str(error.value)
    for name in (*mnist.TRAIN_FILES, *mnist.TEST_FILES, "mnist.npz"):
        assert name in message
    assert str(tmp_path / "nowhere" / "mnist") in message
    assert "--download" in message and "\n" not in message


def test_mnist_half_of_the_train_files_is_an_error(
    mnist_test_files, write_idx, digits28, data_dir: Path
) -> None:
    write_idx("train-images-idx3-ubyte", digits28[0])
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte"):
        data.load("mnist", data_dir)


def test_mnist_npz_without_an_array(data_dir: Path, digits28) -> None:
    (data_dir / "mnist").mkdir(parents=True)
    np.savez(data_dir / "mnist" / "mnist.npz", x_train=digits28[0])
    with pytest.raises(DatasetError, match=r"mnist\.npz: has no array y_train, x_test, y_test"):
        data.load("mnist", data_dir)


# -- SVHN and SynNumbers --------------------------------------------------------------------


@pytest.fixture()
def matlab_arrays(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """X in MATLAB's [32, 32, 3, N] and y in 1..10 (10 = digit 0), as SVHN ships them."""
    images = rng.integers(0, 256, size=(32, 32, 3, COUNT), dtype=np.uint8)
    labels = (np.arange(COUNT) % 10 + 1).reshape(-1, 1).astype(np.uint8)
    return images, labels


@pytest.fixture(params=["svhn", "syn"])
def matlab_dir(request, data_dir: Path, matlab_arrays) -> tuple[str, Path]:
    folder = data_dir / request.param
    folder.mkdir(parents=True)
    images, labels = matlab_arrays
    for part in ("train", "test"):
        scipy.io.savemat(folder / f"{part}_32x32.mat", {"X": images, "y": labels})
    return request.param, folder


def test_matlab_layout_and_ten_means_zero(matlab_dir, data_dir: Path, matlab_arrays) -> None:
    name, _ = matlab_dir
    images, labels = matlab_arrays
    domain = data.load(name, data_dir)
    for split in (domain.train, domain.test):
        assert split.images.shape == (COUNT, 32, 32, 3) and split.images.dtype == np.uint8
        assert split.images.flags.c_contiguous
        assert split.labels.dtype == np.int64
        np.testing.assert_array_equal(split.labels, labels.ravel() % 10)
        assert split.labels[9] == 0  # stored as 10
        # X[row, column, channel, n] is image n's pixel (row, column, channel).
        assert split.images[3, 5, 7, 2] == images[5, 7, 2, 3]
        np.testing.assert_array_equal(split.images, np.moveaxis(images, -1, 0))


MAT_FAULTS = {
    "no X": (lambda X, y: {"images": X, "y": y}, "has no variable 'X'"),
    "no y": (lambda X, y: {"X": X}, "has no variable 'y'"),
    "wrong shape": (lambda X, y: {"X": X[:28], "y": y}, "X has shape [28, 32, 3, 10]"),
    "not uint8": (lambda X, y: {"X": X.astype(np.float64), "y": y}, "X is float64"),
    "label out of range": (lambda X, y: {"X": X, "y": y + 2}, "label 11 at index 8 is out"),
    "label count": (lambda X, y: {"X": X, "y": y[:5]}, "5 labels for 10 images"),
}


@pytest.mark.parametrize("fault", MAT_FAULTS)
def test_matlab_corrupt_files(matlab_dir, data_dir: Path, matlab_arrays, fault: str) -> None:
    name, folder = matlab_dir
    contents, message = MAT_FAULTS[fault]
    scipy.io.savemat(folder / "test_32x32.mat", contents(*matlab_arrays))
    with pytest.raises(DatasetError, match=re.escape(message)) as error:
        data.load(name, data_dir)
    assert str(error.value).startswith(f"{name}: {folder / 'test_32x32.mat'}: ")


def test_matlab_garbage_and_missing(matlab_dir, data_dir: Path) -> None:
    name, folder = matlab_dir
    (folder / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(50))
    with pytest.raises(DatasetError, match=r"train_32x32\.mat: not a readable MATLAB \.mat"):
        data.load(name, data_dir)
    (folder / "train_32x32.mat").unlink()
    with pytest.raises(
        DatasetError,
        match=re.escape(f"{name}: expected train_32x32.mat and test_32x32.mat in {folder}"),
    ):
        data.load(name, data_dir)


# -- MNIST-M ----------------------------------------------------------------------------------


@pytest.fixture()
def mnistm_dir(data_dir: Path, rng: np.random.Generator) -> tuple[Path, np.ndarray, np.ndarray]:
    """The original archive's layout: PNG folders beside ``<folder>_labels.txt`` lists."""
    root = data_dir / "mnistm"
    images = rng.integers(0, 256, size=(COUNT, 32, 32, 3), dtype=np.uint8)
    # One on a plain ground, off MNIST's layout (a bar the full height), which a user's
    # file would have framed: the data set keeps its own layout.
    images[0] = 0
    images[0, :, 10:14] = 255
    labels = (np.arange(COUNT) * 3) % 10
    for stem in ("mnist_m_train", "mnist_m_test"):
        (root / stem).mkdir(parents=True)
        lines = []
        # Listed in reverse file-name order: the list, not the folder, gives the order.
        for index in range(COUNT):
            name = f"{COUNT - index:08d}.png"
            Image.fromarray(images[index]).save(root / stem / name)
            lines.append(f"{name} {labels[index]}")
        (root / f"{stem}_labels.txt").write_text("\n".join(lines) + "\n\n")
    return root, images, labels


def test_mnistm_png_folders(mnistm_dir, data_dir: Path) -> None:
    _, images, labels = mnistm_dir
    domain = data.load("mnistm", data_dir)
    for split in (domain.train, domain.test):
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int64
        np.testing.assert_array_equal(split.images, images)  # 32x32 RGB passes through
        np.testing.assert_array_equal(split.labels, labels)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda root: (root / "mnist_m_test" / f"{COUNT:08d}.png").unlink(),
            "mnist_m_test/00000010.png: listed in mnist_m_test_labels.txt but no such file",
        ),
        (
            lambda root: (root / "mnist_m_test" / f"{COUNT:08d}.png").write_bytes(b"\x89PNG"),
            "00000010.png: listed in mnist_m_test_labels.txt but not an image file",
        ),
        (
            lambda root: (root / "mnist_m_test_labels.txt").write_text("a.png 3\nb.png 10\n"),
            "mnist_m_test_labels.txt: line 2: label 10 is out of range 0-9",
        ),
        (
            lambda root: (root / "mnist_m_test_labels.txt").write_text("a.png three\n"),
            "line 1: expected '<file name> <label>', got 'a.png three'",
        ),
        (
            lambda root: (root / "mnist_m_test_labels.txt").write_text("\n"),
            "mnist_m_test_labels.txt: the label list is empty",
        ),
        (
            lambda root: (root / "mnist_m_test_labels.txt").unlink(),
            "expected mnist_m_train/ and mnist_m_train_labels.txt and mnist_m_test/ and "
            "mnist_m_test_labels.txt in",
        ),
    ],
    ids=[
        "png missing",
        "png corrupt",
        "label out of range",
        "bad line",
        "empty list",
        "list missing",
    ],
)
def test_mnistm_errors(mnistm_dir, data_dir: Path, damage, message: str) -> None:
    damage(mnistm_dir[0])
    with pytest.raises(DatasetError, match=re.escape(message)):
        data.load("mnistm", data_dir)


# -- USPS -------------------------------------------------------------------------------------


def write_usps(path: Path, parts: dict[str, dict[str, np.ndarray]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as file:
        for part, arrays in parts.items():
            for key, value in arrays.items():
                file.create_dataset(f"{part}/{key}", data=value)
    return path


@pytest.fixture()
def usps_parts() -> dict[str, dict[str, np.ndarray]]:
    """Image 0: left half ink (1.0), right half background (0.0); image 1: all 0.5."""
    data = np.zeros((COUNT, 16, 16), np.float32)
    data[0, :, :8] = 1.0
    data[1] = 0.5
    rows = data.reshape(COUNT, 256)
    labels = np.arange(COUNT, dtype=np.int32) % 10
    return {
        "train": {"data": rows, "target": labels},
        "test": {"data": rows[:4], "target": labels[:4]},
    }


def test_usps_h5_framed_like_mnist(usps_parts, data_dir: Path) -> None:
    write_usps(data_dir / "usps" / "usps.h5", usps_parts)
    domain = data.load("usps", data_dir)
    assert domain.train.images.shape == (COUNT, 32, 32, 3)
    assert domain.test.images.shape == (4, 32, 32, 3)
    assert domain.train.images.dtype == np.uint8 and domain.train.labels.dtype == np.int64
    np.testing.assert_array_equal(domain.train.labels, usps_parts["train"]["target"])
    images = domain.train.images
    assert np.array_equal(images[..., 0], images[..., 2])  # grey
    # 16x16 -> a 20x20 box centred in 28x28 (MNIST's framing) -> padded by 2 to 32x32:
    # the box spans rows and columns 6-25, everything around it is background.
    inside = np.zeros((32, 32), bool)
    inside[6:26, 6:26] = True
    assert (images[:2, ~inside] == 0).all()
    assert (images[0, 6:26, 6:12] == 255).all() and (images[0, 6:26, 18:26] == 0).all()
    assert (images[1, 6:26, 6:26] == 128).all()  # 0.5 -> 127.5 -> 128
    assert images[2:].max() == 0  # dark background stays dark


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["test"].pop("target"), "has no dataset 'test/target'"),
        (
            lambda p: p["train"].update(data=p["train"]["data"][:, :200]),
            "train/data has shape [10, 200], expected [N, 256]",
        ),
        (
            lambda p: p["train"].update(data=p["train"]["data"] * 255),
            "train/data has values in [0, 255], expected [0, 1]",
        ),
        (
            lambda p: p["train"].update(target=p["train"]["target"] + 1),
            "label 10 at index 9 is out of range 0-9",
        ),
        (lambda p: p["test"].update(target=p["test"]["target"][:3]), "3 labels for 4 images"),
    ],
    ids=["missing dataset", "wrong shape", "not in [0, 1]", "label out of range", "counts"],
)
def test_usps_errors(usps_parts, data_dir: Path, change, message: str) -> None:
    change(usps_parts)
    path = write_usps(data_dir / "usps" / "usps.h5", usps_parts)
    with pytest.raises(DatasetError, match=re.escape(f"usps: {path}: ")) as error:
        data.load("usps", data_dir)
    assert message in str(error.value)


def test_usps_not_hdf5_and_missing(data_dir: Path) -> None:
    path = data_dir / "usps" / "usps.h5"
    with pytest.raises(DatasetError, match=re.escape(f"expected usps.h5 in {path.parent}")):
        data.load("usps", data_dir)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(DatasetError, match=r"usps\.h5: not a readable HDF5 file"):
        data.load("usps", data_dir)


def test_default_data_dir_is_the_environment_variable(usps_parts, tmp_path, monkeypatch) -> None:
    write_usps(tmp_path / "elsewhere" / "usps" / "usps.h5", usps_parts)
    monkeypatch.setenv("DANN_DATA_DIR", str(tmp_path / "elsewhere"))
    assert len(data.load("usps").train) == COUNT
    monkeypatch.delenv("DANN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "cache" / "dann-serve"))):
        data.load("usps")


@pytest.mark.usefixtures("homeless")
def test_without_a_home_directory_a_data_set_asks_for_data_dir() -> None:
    with pytest.raises(DatasetError, match=r"no home directory.*--data-dir or set \$DANN_DATA_DIR"):
        data.load("usps")


# -- downloads ----------------------------------------------------------------------------------


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` (path -> bytes) with Range support; ``cut`` paths send only
    their first half once and then drop the connection, as a broken network would."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        range_header = self.headers.get("Range")
        self.server.requests.append((self.path, range_header))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(range_header.removeprefix("bytes=").rstrip("-")) if range_header else 0
        if start >= len(body) and start:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path in self.server.cut:
            self.server.cut.discard(self.path)
            self.wfile.write(body[start : start + len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[FileServer]:
    server = FileServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _remote(server: FileServer, path: str, body: bytes) -> Remote:
    server.files[path] = body
    return Remote(server.url(path), hashlib.md5(body).hexdigest())


def test_fetch_resumes_a_half_written_part(server: FileServer, tmp_path: Path) -> None:
    body = bytes(range(256)) * 1000
    remote = _remote(server, "/files/data.bin", body)
    destination = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(body[:100_000])
    assert fetch(remote, destination, progress=False) == destination
    assert destination.read_bytes() == body
    assert not (tmp_path / "data.bin.part").exists()
    assert server.requests == [("/files/data.bin", "bytes=100000-")]


def test_a_broken_download_keeps_its_part_and_the_next_run_resumes(
    server: FileServer, tmp_path: Path
) -> None:
    body = np.random.default_rng(0).bytes(300_000)
    remote = _remote(server, "/data.bin", body)
    server.cut.add("/data.bin")
    destination = tmp_path / "data.bin"
    with pytest.raises(DatasetError, match=r"broke off at 150,000 bytes .*; run again to resume"):
        fetch(remote, destination, progress=False)
    assert (tmp_path / "data.bin.part").stat().st_size == 150_000
    fetch(remote, destination, progress=False)
    assert destination.read_bytes() == body
    assert server.requests[-1] == ("/data.bin", "bytes=150000-")


def test_checksum_mismatch_deletes_the_download(server: FileServer, tmp_path: Path) -> None:
    remote = Remote(_remote(server, "/bad.bin", b"x" * 5000).url, "0" * 32)
    with pytest.raises(
        DatasetError,
        match=r"bad.bin: checksum mismatch \(md5 [0-9a-f]{32}, "
        f"expected {'0' * 32}\\); deleted",
    ):
        fetch(remote, tmp_path / "bad.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_url_fails_at_once(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/mnist/t10k-images-idx3-ubyte.gz"  # nobody listens
    started = time.monotonic()
    with pytest.raises(DatasetError) as error:
        download_datasets(
            ["mnist"],
            tmp_path,
            progress=False,
            timeout=2,
            remotes={"mnist": (Remote(url, "0" * 32),)},
        )
    assert time.monotonic() - started < 2
    message = str(error.value)
    assert f"cannot reach {url}" in message and str(tmp_path / "mnist") in message
    assert "\n" not in message and not list((tmp_path / "mnist").iterdir())


def _mnist_remotes(server: FileServer, digits28) -> tuple[Remote, ...]:
    """The four MNIST files, served as gzipped IDX from ``digits28``."""
    images, labels = digits28
    arrays = dict(zip((*mnist.TRAIN_FILES, *mnist.TEST_FILES), (images, labels) * 2, strict=True))
    return tuple(
        _remote(server, f"/mnist/{stem}.gz", gzip.compress(idx_bytes(array)))
        for stem, array in arrays.items()
    )


def test_download_then_load_mnist(server: FileServer, data_dir: Path, digits28) -> None:
    images, labels = digits28
    remotes = {"mnist": _mnist_remotes(server, digits28)}
    written = download_datasets(["mnist", "digits"], data_dir, progress=False, remotes=remotes)
    assert sorted(path.name for path in written) == sorted(r.filename for r in remotes["mnist"])
    assert_mnist_layout(data.load("mnist", data_dir).train, images, labels)
    # Files already in place are checked, not fetched again.
    server.requests.clear()
    assert download_datasets(["mnist"], data_dir, progress=False, remotes=remotes) == []
    assert server.requests == []


def test_a_variant_downloads_the_files_of_its_base(
    server: FileServer, data_dir: Path, digits28
) -> None:
    """``--target mnist-texture --download`` fetches MNIST, which it is made from."""
    remotes = {"mnist": _mnist_remotes(server, digits28)}
    written = download_datasets(["mnist-texture"], data_dir, progress=False, remotes=remotes)
    assert sorted(path.name for path in written) == sorted(r.filename for r in remotes["mnist"])


def test_official_remotes_name_the_files_the_loaders_read() -> None:
    assert {r.filename for r in download.REMOTES["mnist"]} == {
        f"{stem}.gz" for stem in (*mnist.TRAIN_FILES, *mnist.TEST_FILES)
    }
    assert {r.filename for r in download.REMOTES["svhn"]} == {"train_32x32.mat", "test_32x32.mat"}


# The md5s published for the official files: torchvision lists all six (MNIST.resources,
# SVHN.split_list); ../shared/data/README.md lists the two t10k files it holds, and the
# next test but one hashes those files' own bytes.
PUBLISHED_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
}


def test_official_md5s_are_the_published_ones() -> None:
    expected = {r.filename: r.md5 for remotes in download.REMOTES.values() for r in remotes}
    assert expected == PUBLISHED_MD5


def test_official_md5s_are_those_of_the_real_files(shared_data, tmp_path: Path) -> None:
    """The md5 the download expects of each official file ../shared/data holds is that
    file's md5, and the download takes those files as already in place."""
    folder = shared_data("mnist") / "mnist"
    real = {
        remote: folder / remote.filename
        for remote in download.REMOTES["mnist"]
        if (folder / remote.filename).is_file()
    }
    assert len(real) >= 2, sorted(p.name for p in folder.iterdir())
    for remote, path in real.items():
        assert remote.md5 == hashlib.md5(path.read_bytes()).hexdigest(), path
    (tmp_path / "mnist").mkdir()
    for path in real.values():
        (tmp_path / "mnist" / path.name).symlink_to(path)
    # Only files that are there are asked for, so nothing is fetched; a wrong md5 for
    # one of them raises ("already there but its md5 is ...").
    remotes = {"mnist": tuple(real)}
    assert download_datasets(["mnist"], tmp_path, progress=False, remotes=remotes) == []


@pytest.mark.parametrize(
    "size", [0, 1, download.CHUNK - 1, download.CHUNK, 5 * download.CHUNK // 2]
)
def test_the_md5_of_a_file_is_that_of_all_its_bytes(tmp_path: Path, size: int) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(np.random.default_rng(size).bytes(size))
    assert download.md5_of(path) == hashlib.md5(path.read_bytes()).hexdigest()


# -- the command line ---------------------------------------------------------------------------


def test_cli_missing_data_is_one_line(tmp_path: Path) -> None:
    from dann_serve.cli import main

    result = CliRunner().invoke(
        main,
        [
            "train",
            "--source",
            "mnist",
            "--data-dir",
            "/nonexistent",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
    )
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("dann-serve: error: mnist: expected train-images-idx3-ubyte[.gz]")
    assert "/nonexistent/mnist (no such directory)" in line
    assert not (tmp_path / "run").exists()  # nothing half-made to clean up before a retry


def test_cli_download_offline_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from dann_serve.cli import main

    url = f"http://127.0.0.1:{free_port()}/test_32x32.mat"
    monkeypatch.setattr(download, "REMOTES", {"svhn": (Remote(url, "0" * 32),)})
    options = ["--source", "svhn", "--download", "--quiet", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(main, ["compare", *options, "--out", str(tmp_path)])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"dann-serve: error: svhn: cannot reach {url}")


# -- the real files of ../shared/data -------------------------------------------------------------


def test_real_mnist_test_images_split_disjointly_by_index(shared_data) -> None:
    folder = shared_data("mnist", "t10k-images-idx3-ubyte.gz")
    domain = data.load("mnist", folder)
    assert len(domain.train) == mnist.ADAPTATION_SIZE == 5000 and len(domain.test) == 5000
    assert domain.train.images.shape == (5000, 32, 32, 3) and domain.note
    labels = np.concatenate([domain.train.labels, domain.test.labels])
    assert set(np.unique(labels)) == set(range(10))
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == 10_000
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # By index: the evaluation part starts where the adaptation part ends.
    raw = mnist.read_idx(folder / "mnist" / "t10k-images-idx3-ubyte.gz", mnist.IMAGES_MAGIC)
    np.testing.assert_array_equal(domain.train.images[-1, 2:30, 2:30, 0], raw[4999])
    np.testing.assert_array_equal(domain.test.images[0, 2:30, 2:30, 0], raw[5000])


def test_real_usps(shared_data) -> None:
    domain = data.load("usps", shared_data("usps", "usps.h5"))
    assert domain.train.images.shape == (7291, 32, 32, 3)
    assert domain.test.images.shape == (2007, 32, 32, 3)
    assert domain.train.images.dtype == np.uint8
    for split in (domain.train, domain.test):
        assert set(np.unique(split.labels)) == set(range(10))
        # Dark background: most pixels are near black, the ink is the minority.
        assert np.median(split.images) < 16 and (split.images < 64).mean() > 0.6
