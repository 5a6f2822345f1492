"""Built-in dataset plugins decode tiny files in their real formats and refuse bad ones by name.

No TensorFlow here: plugins and the validation scan are numpy (and Pillow) only.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from plugins import registry
from plugins.datasets import arrays, cifar10, fashion_mnist, idx, image_folder, mnist
from plugins.datasets.api import DataError, RemoteFile, with_defaults
from plugins.errors import TfpipeError
from tasks.download import ChecksumMismatch
from tasks.image.download import DownloadImageDataset, dataset_label
from tasks.image.validate import scan
from tests.conftest import make_image_set, write_idx_folder

FASHION = Path("/usr/share/datasets/fashion-mnist")


def collect(dataset, split, rows=7):
    xs, ys = zip(*dataset.splits[split].batches(rows))
    return np.concatenate(xs), np.concatenate(ys)


# ----- arrays ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["idx-gz", "idx-plain", "npz-folder", "npz-file"])
def test_arrays_reads_idx_or_npz_in_place(tmp_path, layout):
    data = make_image_set(num_train=33, num_test=7)
    if layout.startswith("idx"):
        path = write_idx_folder(tmp_path / "mine", data)
        if layout == "idx-plain":
            for gz in path.glob("*.gz"):
                gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
                gz.unlink()
    else:
        (tmp_path / "mine").mkdir()
        path = tmp_path / "mine" / "digits.npz"
        np.savez(path, **{**data, "y_train": data["y_train"].astype(np.int64)})
        path = path.parent if layout == "npz-folder" else path
    options = with_defaults("arrays", arrays.DEFAULTS, {"path": str(path)})
    files = arrays.user_files(options)
    assert arrays.counts(options) == {"train": 33, "test": 7}  # headers only
    dataset = arrays.open_dataset(files, options)
    assert dataset.shape == (12, 12, 1)
    x, y = collect(dataset, "train")
    assert np.array_equal(x[..., 0], data["x_train"]) and np.array_equal(y, data["y_train"])
    facts = scan(dataset, "arrays")
    assert facts["counts"] == {"train": 33, "test": 7} and facts["num_classes"] == 4
    assert facts["class_names"] == ["0", "1", "2", "3"]


def test_arrays_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="needs the path option"):
        arrays.user_files(with_defaults("arrays", arrays.DEFAULTS, {}))
    with pytest.raises(DataError, match="no option 'pth'"):
        with_defaults("arrays", arrays.DEFAULTS, {"pth": "x"})
    with pytest.raises(DataError, match="holds neither the four IDX files"):
        arrays.user_files({"path": str(tmp_path)})

    data = make_image_set(num_train=20, num_test=5)
    data["y_train"] = data["y_train"][:-1]
    folder = write_idx_folder(tmp_path / "short", data)
    with pytest.raises(DataError,
                       match=r"20 images in .*train-images.* but 19 labels in .*train-labels"):
        arrays.open_dataset(arrays.user_files({"path": str(folder)}), {})

    data = make_image_set(num_train=20, num_test=5)
    data["x_test"] = np.zeros((5, 10, 10), dtype=np.uint8)
    folder = write_idx_folder(tmp_path / "shapes", data)
    with pytest.raises(DataError, match=r"train images are \(12, 12, 1\) but test images are "
                                        r"\(10, 10, 1\) \(.*t10k-images"):
        arrays.open_dataset(arrays.user_files({"path": str(folder)}), {})

    data = make_image_set(num_train=20, num_test=5)
    np.savez(tmp_path / "floats.npz", **{**data, "x_train": data["x_train"] / 255.0})
    with pytest.raises(DataError, match=r"floats.npz \(array x_train\): images must be uint8"):
        arrays.open_dataset({"npz": tmp_path / "floats.npz"}, {})

    data = make_image_set(num_train=20, num_test=5)
    np.savez(tmp_path / "negative.npz", **{**data, "y_test": data["y_test"].astype(np.int8) - 3})
    with pytest.raises(DataError, match=r"negative.npz \(array y_test\): label -3 is negative"):
        scan(arrays.open_dataset({"npz": tmp_path / "negative.npz"}, {}), "arrays")


def test_a_label_only_the_test_set_has_is_counted_not_refused(tmp_path):
    data = make_image_set(num_train=40, num_test=10, num_classes=4)
    data["y_test"][:3] = 6  # classes 0-3 in training; 6 only in the test set; 4 and 5 nowhere
    facts = scan(arrays.open_dataset(arrays.user_files({"path": str(write_idx_folder(
        tmp_path / "mine", data))}), {}), "arrays")
    assert facts["num_classes"] == 7 and facts["test_only_labels"] == {"6": 3}
    assert facts["notes"] == ["2 class(es) have no sample in either split: 4, 5"]

    complete = scan(arrays.open_dataset(arrays.user_files({"path": str(write_idx_folder(
        tmp_path / "complete", make_image_set(num_train=40, num_test=10)))}), {}), "arrays")
    assert complete["test_only_labels"] == {} and complete["notes"] == []


# ----- mnist / fashion_mnist -------------------------------------------------------------------

def mnist_like(num_train=40, num_test=10, classes=10, extra_label=None):
    data = make_image_set(num_train=num_train, num_test=num_test, num_classes=2, size=28)
    data["y_train"] = (np.arange(num_train) % classes).astype(np.uint8)
    data["y_test"] = (np.arange(num_test) % classes).astype(np.uint8)
    if extra_label is not None:
        data["y_train"][-1] = extra_label
    return data


def test_mnist_npz_in_a_mirror_folder(tmp_path):
    data = mnist_like()
    np.savez(tmp_path / "mnist.npz", **data)
    files = mnist.locate(tmp_path, {})
    assert files == {"npz": tmp_path / "mnist.npz"}
    facts = scan(mnist.open_dataset(files, {}), "mnist")
    assert facts["counts"] == {"train": 40, "test": 10} and facts["shape"] == [28, 28, 1]
    assert facts["class_names"] == [str(d) for d in range(10)]
    assert mnist.REMOTE[0].name == "mnist.npz" and mnist.REMOTE[0].sha256


def test_mnist_with_a_label_10_or_images_of_another_size_is_refused_naming_the_file(tmp_path):
    data = mnist_like()
    data["y_test"][3] = 10
    np.savez(tmp_path / "mnist.npz", **data)
    dataset = mnist.open_dataset(mnist.locate(tmp_path, {}), {})
    with pytest.raises(DataError, match=r"mnist.npz \(array y_test\): label 10 is outside mnist's "
                                        r"classes 0-9"):
        scan(dataset, "mnist")

    folder = write_idx_folder(tmp_path / "four", mnist_like(classes=4))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: holds 4 of mnist's 10 classes"):
        scan(mnist.open_dataset(mnist.locate(folder, {}), {}), "mnist")

    colour = mnist_like()
    colour["x_train"] = np.repeat(colour["x_train"][..., None], 3, axis=3)
    (tmp_path / "colour").mkdir()
    np.savez(tmp_path / "colour" / "mnist.npz", **colour)
    with pytest.raises(DataError, match=r"mnist.npz \(array x_train\): mnist images are 28x28 with "
                                        r"1 channel\(s\), this file holds \(28, 28, 3\)"):
        mnist.open_dataset(mnist.locate(tmp_path / "colour", {}), {})


def test_fashion_mnist_with_four_classes_and_a_label_12_is_refused_naming_the_file(tmp_path):
    folder = write_idx_folder(tmp_path / "fashion_mnist", mnist_like(classes=4, extra_label=12))
    dataset = fashion_mnist.open_dataset(fashion_mnist.locate(folder, {}), {})
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: label 12 is outside "
                                        r"fashion_mnist's classes 0-9"):
        scan(dataset, "fashion_mnist")
    folder = write_idx_folder(tmp_path / "four", mnist_like(classes=4))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: holds 4 of fashion_mnist's "
                                        r"10 classes \(labels 0, 1, 2, 3\)"):
        scan(fashion_mnist.open_dataset(fashion_mnist.locate(folder, {}), {}), "fashion_mnist")


def test_fashion_mnist_of_another_image_size_is_refused(tmp_path):
    folder = write_idx_folder(tmp_path / "small", make_image_set(num_classes=4, size=12))
    with pytest.raises(DataError,
                       match=r"train-images-idx3-ubyte.gz: fashion_mnist images are 28x28"):
        fashion_mnist.open_dataset(fashion_mnist.locate(folder, {}), {})


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_copy_is_found_and_validated_by_decoding():
    files = fashion_mnist.locate(FASHION, {})
    assert files is not None and files["train_images"].parent == FASHION
    assert idx.read_header(files["train_images"]) == (60000, 28, 28)
    facts = scan(fashion_mnist.open_dataset(files, {}), "fashion_mnist", rows=10000)
    assert facts["counts"] == {"train": 60000, "test": 10000} and facts["num_classes"] == 10
    assert facts["class_names"][0] == "T-shirt/top" and facts["class_names"][9] == "Ankle boot"


# ----- cifar10 ---------------------------------------------------------------------------------

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
               b"ship", b"truck"]


def make_cifar_tarball(path: Path, per_batch: int = 4, test: int = 6, seed: int = 0,
                       skip: tuple[str, ...] = (), names: list[bytes] = CIFAR_NAMES,
                       classes: int = 10) -> dict[str, np.ndarray]:
    """A tiny cifar-10-python.tar.gz: the real member names and pickle layout (Python 2 style
    dicts with bytes keys), `per_batch` images in each of data_batch_1..5, labels cycling
    through `classes`."""
    rng = np.random.default_rng(seed)
    made = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        def add(name, value):
            if name in skip:
                return
            blob = pickle.dumps(value, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))

        add("batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch})
        batches = [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test)]
        for number, (name, count) in enumerate(batches):
            data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
            labels = [(number * count + i) % classes for i in range(count)]  # every class appears
            made[name] = (data, labels)
            add(name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                       b"filenames": [f"{i}.png".encode() for i in range(count)]})
    return made


def test_cifar10_tarball_decodes_batch_by_batch_to_hwc(tmp_path):
    made = make_cifar_tarball(tmp_path / "cifar10" / cifar10.ARCHIVE)
    files = cifar10.locate(tmp_path / "cifar10", {})
    dataset = cifar10.open_dataset(files, {})
    assert dataset.shape == (32, 32, 3) and dataset.class_names[:2] == ["airplane", "automobile"]
    sizes = [len(y) for _, y in dataset.splits["train"].batches(3)]
    assert sizes == [3, 1] * 5  # batch by batch: a chunk never spans two pickled batches
    x, y = collect(dataset, "train", rows=100)
    first, labels = made["data_batch_1"]
    assert y[:4].tolist() == labels
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major.
    assert x[0, 0, 1, 0] == first[0, 1] and x[0, 0, 1, 1] == first[0, 1024 + 1]
    assert x[0, 2, 5, 2] == first[0, 2048 + 2 * 32 + 5]
    facts = scan(dataset, "cifar10")
    assert facts["counts"] == {"train": 20, "test": 6} and facts["num_classes"] == 10


def test_cifar10_with_other_classes_or_a_label_10_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "a" / cifar10.ARCHIVE
    make_cifar_tarball(path, names=[*CIFAR_NAMES, b"unicorn", b"dragon", b"yeti"])
    with pytest.raises(DataError, match=rf"{path} \(member cifar-10-batches-py/batches.meta\): "
                                        r"names 13 classes .*CIFAR-10 has 10: airplane, "):
        cifar10.open_dataset(cifar10.locate(tmp_path / "a", {}), {})

    make_cifar_tarball(tmp_path / "b" / cifar10.ARCHIVE, classes=11)
    dataset = cifar10.open_dataset(cifar10.locate(tmp_path / "b", {}), {})
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz \(data_batch_1, .*\): label 10 is "
                                        r"outside cifar10's classes 0-9"):
        scan(dataset, "cifar10")


def test_cifar10_missing_member_or_foreign_pickle_is_refused(tmp_path):
    make_cifar_tarball(tmp_path / "a" / cifar10.ARCHIVE, skip=("data_batch_3",))
    with pytest.raises(DataError, match=r"lacks cifar-10-batches-py/data_batch_3"):
        cifar10.open_dataset(cifar10.locate(tmp_path / "a", {}), {})

    path = tmp_path / "b" / cifar10.ARCHIVE
    make_cifar_tarball(path)
    evil = pickle.dumps({b"data": Path("/etc/passwd"), b"labels": []}, protocol=2)
    rebuilt = tmp_path / "b" / "rebuilt.tar.gz"
    with tarfile.open(path) as source, tarfile.open(rebuilt, "w:gz") as target:
        for member in source.getmembers():
            blob = source.extractfile(member).read()
            if member.name.endswith("test_batch"):
                blob, member.size = evil, len(evil)
            target.addfile(member, io.BytesIO(blob))
    rebuilt.replace(path)
    dataset = cifar10.open_dataset(cifar10.locate(tmp_path / "b", {}), {})
    with pytest.raises(DataError, match=r"test_batch\): the pickle asks for pathlib"):
        list(dataset.splits["test"].batches(10))


def test_cifar10_mirror_copy_with_a_wrong_checksum_is_refused(tmp_path):
    mirror = tmp_path / "mirror"
    make_cifar_tarball(mirror / "cifar10" / cifar10.ARCHIVE)
    task = DownloadImageDataset(workspace=str(tmp_path / "ws"), dataset="cifar10",
                                dataset_options={}, mirror=str(mirror))
    assert task.source().kind == "local"
    with pytest.raises(ChecksumMismatch, match=r"cifar-10-python.tar.gz: size \d+ bytes, expected "
                                               r"170498071 for dataset cifar10"):
        task.run()
    assert not (task.folder() / "manifest.json").exists()


def test_cifar10_mirror_copy_is_checked_against_the_pin_then_copied_and_decoded(tmp_path,
                                                                               monkeypatch):
    mirror = tmp_path / "mirror"
    archive = mirror / "cifar10" / cifar10.ARCHIVE
    make_cifar_tarball(archive)
    size, url = archive.stat().st_size, cifar10.REMOTE[0].urls

    def download(workspace):
        return DownloadImageDataset(workspace=str(tmp_path / workspace), dataset="cifar10",
                                    dataset_options={}, mirror=str(mirror))

    # Same size as pinned, other bytes: the sha256 decides.
    monkeypatch.setattr(cifar10, "REMOTE", (RemoteFile(cifar10.ARCHIVE, url, "0" * 64, size),))
    with pytest.raises(ChecksumMismatch, match=r"sha256 differs from the pinned 0{64} of dataset "
                                               r"cifar10"):
        download("ws1").run()

    real = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar10, "REMOTE", (RemoteFile(cifar10.ARCHIVE, url, real, size),))
    task = download("ws2")
    task.run()
    record = task.record()
    assert record["counts"] == {"train": 20, "test": 6} and record["class_names"][9] == "truck"
    assert record["files"] == {"archive": cifar10.ARCHIVE} and not record["in_place"]
    assert (task.folder() / cifar10.ARCHIVE).read_bytes() == archive.read_bytes()  # a copy
    assert task.data_files() == {"archive": task.folder() / cifar10.ARCHIVE}


# ----- image_folder ----------------------------------------------------------------------------

def draw(kind: str, size: int, seed: int):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 50, (size, size, 3), dtype=np.uint8))
    pen = ImageDraw.Draw(image)
    if kind == "circle":
        pen.ellipse([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(250, 250, 250))
    elif kind == "square":
        pen.rectangle([2, 2, size - 3, size - 3], outline=(250, 60, 60), width=3)
    else:
        for y in range(0, size, 4):
            pen.line([0, y, size, y], fill=(60, 250, 60), width=2)
    return image


def write_image_folder(root: Path, per_class: int = 4, size: int = 20,
                       classes=("circle", "square", "stripes")) -> Path:
    """One sub-folder per class; PNG and JPEG files (RGB, grayscale and palette modes)."""
    for number, kind in enumerate(classes):
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = draw(kind, size + i % 3, seed=100 * number + i)  # sizes differ: resized
            if i % 4 == 0:
                image.save(folder / f"{kind[0]}{i:02d}.png")
            elif i % 4 == 1:
                image.save(folder / f"{kind[0]}{i:02d}.jpg", quality=95)
            elif i % 4 == 2:
                image.convert("L").save(folder / f"{kind[0]}{i:02d}.JPEG")
            else:
                image.convert("P").save(folder / f"{kind[0]}{i:02d}.png")
    return root


def test_image_folder_decodes_png_and_jpeg_with_sorted_class_names(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=5)
    (root / "square" / "notes.txt").write_text("not an image")
    (root / "circle" / ".DS_Store").write_bytes(b"\0\1")
    options = with_defaults("image_folder", image_folder.DEFAULTS,
                            {"path": str(root), "image_size": [16, 24], "test_fraction": 0.4})
    files = image_folder.user_files(options)
    assert image_folder.counts(options) == {"train": 9, "test": 6}  # a listing, nothing decoded
    dataset = image_folder.open_dataset(files, options)
    assert dataset.shape == (16, 24, 3) and dataset.class_names == ["circle", "square", "stripes"]
    assert any("notes.txt" in note for note in dataset.notes)
    x, y = collect(dataset, "test", rows=4)
    assert x.shape == (6, 16, 24, 3) and x.dtype == np.uint8
    assert sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]
    circle = x[y == 0].mean(axis=(0, 3))
    assert circle[8, 12] > 200 and circle[0, 0] < 60  # a bright disc in the middle
    facts = scan(dataset, "image_folder")
    assert facts["counts"] == {"train": 9, "test": 6} and facts["class_names"][2] == "stripes"
    # The hold-out is seeded: the same seed gives the same split, another seed another one.
    again = image_folder._plan(options)[0]["test"]
    other = image_folder._plan({**options, "seed": 5})[0]["test"]
    assert again == image_folder._plan(options)[0]["test"] and other != again


def test_image_folder_grayscale_and_a_separate_test_folder(tmp_path):
    train = write_image_folder(tmp_path / "train", per_class=3)
    test = write_image_folder(tmp_path / "test", per_class=2, classes=("circle", "stripes"))
    options = with_defaults("image_folder", image_folder.DEFAULTS,
                            {"path": str(train), "test_path": str(test), "color": "grayscale",
                             "image_size": [8, 8]})
    dataset = image_folder.open_dataset(image_folder.user_files(options), options)
    assert dataset.shape == (8, 8, 1)
    _, y = collect(dataset, "test")
    assert y.tolist() == [0, 0, 2, 2]  # labels follow the training folder's classes
    assert scan(dataset, "image_folder")["counts"] == {"train": 9, "test": 4}


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    def options(root, **more):
        return with_defaults("image_folder", image_folder.DEFAULTS, {"path": str(root), **more})

    empty = write_image_folder(tmp_path / "empty")
    (empty / "zebra").mkdir()
    with pytest.raises(DataError,
                       match=rf"{empty / 'zebra'}: class folder 'zebra' holds no images"):
        image_folder.counts(options(empty))

    one = write_image_folder(tmp_path / "one", classes=("circle",))
    with pytest.raises(DataError, match=r"only one class \('circle'\)"):
        image_folder.counts(options(one))

    corrupt = write_image_folder(tmp_path / "corrupt")
    (corrupt / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    dataset = image_folder.open_dataset(image_folder.user_files(options(corrupt)), options(corrupt))
    with pytest.raises(DataError,
                       match=rf"{corrupt / 'square' / 'broken.png'}: not a readable image"):
        scan(dataset, "image_folder")

    with pytest.raises(DataError, match="no such folder"):
        image_folder.user_files(options(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="image_size must be"):
        image_folder.open_dataset({"train": corrupt}, options(corrupt, image_size=[0, 4]))


# ----- names and the registry ------------------------------------------------------------------

def test_dataset_labels_are_short_and_readable():
    assert dataset_label("mnist", {}) == "mnist"
    assert dataset_label("image_folder", {"path": "/data/flowers/"}) == "image_folder-flowers"
    assert dataset_label("arrays", {"path": "/data/my digits.npz"}) == "arrays-my_digits"


def test_builtin_datasets_are_plugins_of_the_image_kind():
    names = registry.DATASETS.names("image_classification")
    assert {"mnist", "fashion_mnist", "cifar10", "image_folder", "arrays"} <= set(names)
    with pytest.raises(TfpipeError,
                       match=r"no dataset named 'flowers' is installed; .*arrays, cifar10"):
        registry.DATASETS.get("flowers", "image_classification")


def test_plugins_stay_numpy_free_on_import(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom plugins import registry\n"
            "for n in ('mnist', 'fashion_mnist', 'cifar10', 'image_folder', 'arrays'):\n"
            "    registry.DATASETS.load(n, 'image_classification')\n"
            "heavy = ('numpy', 'PIL', 'tensorflow')\n"
            "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    assert json.loads(out.stdout) == []
