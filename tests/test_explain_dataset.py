"""helpers.explain_dataset: the maps of `explain` computed on Dask into a Zarr
store; a killed run resumes to the same store, a killed worker is survived, bad
input is refused before any work, and the command line."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import psutil
import pytest
import zarr
from conftest import READER_CACHE, assert_most_pixels_close

import helpers
from helpers.data import preprocess
from helpers.explain_dataset import local_cluster, model_hash
from helpers.explain_dataset.__main__ import main
from helpers.explain_dataset.store import IDENTITY

IG = dict(steps=16)  # fewer steps than the default: the same code, faster


@pytest.fixture(scope="module")
def trained():
    """The book's FashionMNIST CNN from the reader's model cache (trained once)."""
    with pytest.MonkeyPatch.context() as patch:
        if READER_CACHE is None:
            patch.delenv("XAI_BOOK_CACHE", raising=False)
        else:
            patch.setenv("XAI_BOOK_CACHE", READER_CACHE)
        return helpers.train_or_load("fashion_mnist", verbose=0)


@pytest.fixture(scope="module")
def test_set(fashion):
    """The first 250 FashionMNIST test images, preprocessed, and their labels."""
    (_, (x_test, y_test)), _ = fashion
    return preprocess(x_test[:250]), y_test[:250].astype(np.int64)


@pytest.fixture(scope="module")
def client():
    """An embedded cluster of two workers, shared by the tests of this module."""
    from distributed import Client

    with local_cluster(2) as cluster, Client(cluster) as opened:
        yield opened


def _done_files(out: Path) -> int:
    """Chunks marked done in the store at `out` (one file each; zarr writes atomically)."""
    return len(list((out / "done" / "c").glob("*")))


def _tf_threads() -> dict:
    """This process's TensorFlow inter-op threads (named tf_Compute) after one op,
    and the intra-op setting of its environment."""
    import tensorflow as tf

    tf.reduce_sum(tf.ones((64, 64))).numpy()
    names = [Path(f"/proc/self/task/{task}/comm").read_text().strip()
             for task in os.listdir("/proc/self/task")]
    return {"inter_op": names.count("tf_Compute"),
            "intra_op_env": os.environ.get("TF_NUM_INTRAOP_THREADS")}


def test_each_worker_runs_one_tensorflow_thread(client):
    found = client.run(_tf_threads)
    assert len(found) == 2
    assert all(each == {"inter_op": 1, "intra_op_env": "1"} for each in found.values()), found


@pytest.mark.parametrize("method, options", [("saliency", {}), ("integrated_gradients", IG),
                                             ("smoothgrad", dict(samples=4, seed=1))])
def test_the_same_maps_as_explain(trained, test_set, client, tmp_path, method, options):
    inputs = test_set[0].copy()
    # Darker pixels in the last chunk only: the pixel range (IG's black baseline)
    # must be the whole set's, as in one explain() call, not each chunk's own.
    inputs[-10:] -= 0.5
    out = tmp_path / "maps.zarr"
    run = helpers.explain_dataset(trained.model, inputs, method, out=out, client=client,
                                  chunk=60, progress=False, **options)
    reference = helpers.explain(trained.model, inputs, method, progress=False, **options)
    assert (run.n, run.chunk, run.computed, run.resumed, run.images) == (250, 60, 5, 0, 250)
    assert run.maps.shape == (250, 28, 28) and run.maps.chunks == (60, 28, 28)
    maps = run.maps[:]
    # The workers run one TensorFlow thread, this process two: other round-off.
    assert_most_pixels_close(maps, reference.maps, rtol=1e-5,
                             atol=1e-6 * np.abs(reference.maps).max())
    np.testing.assert_array_equal(run.targets[:], reference.targets)
    assert run.store["done"][:].all() and run.images_per_second > 0
    assert run.store.attrs["method"] == method and run.store.attrs["pixel_range"] == [-0.5, 1.0]
    if method == "integrated_gradients":  # wrong variant: the first chunk's own range
        alone = helpers.explain(trained.model, inputs[:60], method, **options).maps
        assert np.abs(alone - maps[:60]).max() > 1e-3 * np.abs(maps[:60]).max()
    again = helpers.explain_dataset(trained.path, inputs, method, out=out, client=client,
                                    progress=False, **options)
    assert (again.computed, again.resumed, again.images, again.chunk) == (0, 5, 0, 60)
    np.testing.assert_array_equal(again.maps[:], maps)


def test_a_killed_run_resumes_to_the_same_store(trained, test_set, client, tmp_path):
    inputs, n, chunk = test_set[0][:240], 240, 20
    out = tmp_path / "killed.zarr"
    command = [sys.executable, "-m", "helpers.explain_dataset", "--dataset", "fashion_mnist",
               "--method", "integrated_gradients", "--option", f"steps={IG['steps']}",
               "--model", trained.path, "--limit", str(n), "--chunk", str(chunk),
               "--workers", "1", "--quiet", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and _done_files(out) >= 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no chunk done in 120 s"
        time.sleep(0.02)
    workers = psutil.Process(process.pid).children(recursive=True)
    os.kill(process.pid, signal.SIGKILL)
    _, stderr = process.communicate()
    # The client dies: its workers follow, nothing is left running.
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive
    done = zarr.open_group(out, mode="r")["done"][:]
    at_kill = int(done.sum())
    assert 2 <= at_kill < n // chunk, done
    written = {i: (out / "maps" / "c" / str(i) / "0" / "0").stat().st_mtime_ns
               for i in np.flatnonzero(done)}

    rerun = helpers.explain_dataset(trained.path, inputs, "integrated_gradients", out=out,
                                    client=client, progress=False, **IG)
    assert (rerun.resumed, rerun.computed) == (at_kill, n // chunk - at_kill)
    assert rerun.images == n - at_kill * chunk
    assert {i: (out / "maps" / "c" / str(i) / "0" / "0").stat().st_mtime_ns
            for i in written} == written  # nothing recomputed
    whole = helpers.explain_dataset(trained.path, inputs, "integrated_gradients",
                                    out=tmp_path / "whole.zarr", chunk=chunk, client=client,
                                    progress=False, **IG)
    for name in ("maps", "targets", "done"):
        np.testing.assert_array_equal(rerun.store[name][:], whole.store[name][:])
    assert ({k: rerun.store.attrs[k] for k in IDENTITY}
            == {k: whole.store.attrs[k] for k in IDENTITY})
    assert "found in sys.modules" not in stderr
    print(f"\nkilled after {at_kill} of {n // chunk} chunks; the rerun computed "
          f"{rerun.computed} in {rerun.seconds:.1f} s")


def test_a_worker_killed_mid_run_is_survived(trained, test_set, client, tmp_path):
    inputs, out = test_set[0][:120], tmp_path / "survived.zarr"
    pids = client.run(os.getpid)
    killed = {}

    def kill_a_busy_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out.exists() and _done_files(out)):
            time.sleep(0.01)
        busy = {address: [key for key in keys if str(key).startswith("explain_dataset-")]
                for address, keys in client.processing().items()}
        address = max(busy, key=lambda each: len(busy[each]))
        killed.update(done=_done_files(out), tasks=len(busy[address]), pid=pids[address])
        os.kill(pids[address], signal.SIGKILL)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    run = helpers.explain_dataset(trained.model, inputs, "integrated_gradients", out=out,
                                  client=client, chunk=10, progress=False, **IG)
    killer.join()
    assert 1 <= killed["done"] < 12 and killed["tasks"] >= 1 and run.computed == 12, killed
    assert killed["pid"] not in client.run(os.getpid).values()  # it did die
    reference = helpers.explain(trained.model, inputs, "integrated_gradients", **IG)
    np.testing.assert_allclose(run.maps[:], reference.maps, rtol=1e-5,
                               atol=1e-6 * np.abs(reference.maps).max())
    print(f"\nkilled a worker holding {killed['tasks']} chunk task(s) after {killed['done']} of 12 "
          f"chunks; the run completed in {run.seconds:.1f} s")
    client.wait_for_workers(2, timeout=120)  # its nanny restarts it


def test_inputs_read_chunk_by_chunk_from_zarr(trained, test_set, client, tmp_path):
    inputs = zarr.create_array(tmp_path / "inputs.zarr", data=test_set[0][:40],
                               chunks=(7, 28, 28, 1))
    out = tmp_path / "maps.zarr"
    run = helpers.explain_dataset(trained.model, inputs, "saliency", out=out, client=client,
                                  chunk=16, progress=False)
    reference = helpers.explain(trained.model, test_set[0][:40], "saliency").maps
    np.testing.assert_allclose(run.maps[:], reference, rtol=1e-5,
                               atol=1e-6 * np.abs(reference).max())
    # The same images as a NumPy array are the same inputs: the store is complete.
    again = helpers.explain_dataset(trained.model, test_set[0][:40], "saliency", out=out,
                                    client=client, progress=False)
    assert (run.computed, again.computed, again.resumed) == (3, 0, 3)


BAD = {  # keyword changes -> what the error names
    "method": (dict(method="nope"), "method must be one of"),
    "option": (dict(foo=1), r"options \['foo'\] are not taken"),
    "option value": (dict(steps=0), "steps must be an integer >= 1"),
    "targets length": (dict(targets=np.zeros(5, np.int64)), "targets must be 40 class"),
    "targets range": (dict(targets=np.full(40, 10)), r"targets must be in \[0, 10\)"),
    "targets dtype": (dict(targets=np.zeros(40)), "targets must be 40 class indices"),
    "input shape": (dict(inputs=np.zeros((40, 32, 32, 1), np.float32)),
                    r"inputs must be a non-empty batch of shape \(n, 28, 28, 1\)"),
    "input dtype": (dict(inputs=np.zeros((40, 28, 28, 1), np.uint8)), "floating point"),
    "input NaN": (dict(inputs=np.full((40, 28, 28, 1), np.nan, np.float32)), "finite"),
    "chunk 0": (dict(chunk=0), "chunk must be a positive integer"),
    "chunk float": (dict(chunk=2.5), "chunk must be a positive integer"),
    "batch_size": (dict(batch_size=-1), "batch_size must be a positive integer"),
    "workers and client": (dict(workers=2), "workers sets the size"),
    "client": (dict(client=42), "client must be None"),
    "model": (dict(model="model.h5"), "model must be a keras.Model or the path"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_refused_before_any_work(trained, test_set, client, tmp_path, case):
    changes, message = BAD[case]
    call = dict(model=trained.model, inputs=test_set[0][:40], method="integrated_gradients",
                out=tmp_path / "maps.zarr", client=client, progress=False, **IG)
    call.update(changes)
    with pytest.raises(ValueError, match=message):
        helpers.explain_dataset(**call)
    assert list(tmp_path.iterdir()) == []  # no store, not even a temporary one


def test_a_store_of_another_run_is_refused(trained, test_set, client, tmp_path):
    inputs, out = test_set[0][:40], tmp_path / "maps.zarr"
    first = helpers.explain_dataset(trained.model, inputs, "saliency", out=out, client=client,
                                    chunk=20, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(ValueError, match=r"written by another run \(method: \"saliency\" "
                                         r"there, \"integrated_gradients\" here.*delete it"):
        helpers.explain_dataset(trained.model, inputs, "integrated_gradients", out=out,
                                client=client, progress=False)
    with pytest.raises(ValueError, match=r"another run \(inputs: "):
        helpers.explain_dataset(trained.model, test_set[0][40:80], "saliency", out=out,
                                client=client, progress=False)
    with pytest.raises(ValueError, match=r"another run \(chunk: 20 there, 10 here"):
        helpers.explain_dataset(trained.model, inputs, "saliency", out=out, client=client,
                                chunk=10, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert first.store["done"][:].all()
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="is not a store of explain_dataset"):
        helpers.explain_dataset(trained.model, inputs, "saliency", out=tmp_path / "other",
                                client=client, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        helpers.explain_dataset(trained.model, inputs, "saliency", out=tmp_path / "file",
                                client=client, progress=False)


def test_the_command_line(trained, test_set, client, tmp_path, capsys, reader_cache):
    out = tmp_path / "cli.zarr"
    address = client.scheduler.address
    assert main(["--method", "saliency", "--out", str(out), "--limit", "50", "--targets",
                 "labels", "--scheduler", address, "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"explained 50 fashion_mnist images by saliency: 1 chunks computed "
                        r"\(50 images\), 0 resumed, in [\d.]+ s \([\d.]+ images/s\) -> "
                        + re.escape(str(out)), line), line
    store = zarr.open_group(out, mode="r")
    inputs, labels = test_set[0][:50], test_set[1][:50]
    np.testing.assert_array_equal(store["targets"][:], labels)
    reference = helpers.explain(trained.model, inputs, "saliency", labels).maps
    assert_most_pixels_close(store["maps"][:], reference, rtol=1e-5,
                             atol=1e-6 * np.abs(reference).max())
    assert store.attrs["model"] == model_hash(trained.model)
    assert main(["--method", "saliency", "--out", str(out), "--limit", "50", "--targets",
                 "labels", "--scheduler", address, "--quiet"]) == 0
    assert "0 chunks computed (0 images), 1 resumed" in capsys.readouterr().out
    assert main(["--method", "saliency", "--out", str(tmp_path / "x.zarr"),
                 "--scheduler", address, "--workers", "2"]) == 2
    assert "workers sets the size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--method", "saliency", "--out", "x.zarr", "--option", "steps"])


def test_a_model_and_its_saved_file_have_the_same_hash(small_model):
    """A freshly trained model and its .keras file are one model to the store
    (Keras names their weights differently), and another weight is another model."""
    assert not small_model.loaded  # trained in this session, not read from its file
    loaded = keras.saving.load_model(small_model.path)
    assert model_hash(loaded) == model_hash(small_model.model)
    changed = keras.models.clone_model(loaded)
    changed.set_weights([w + (i == 0) for i, w in enumerate(loaded.get_weights())])
    assert model_hash(changed) != model_hash(loaded)
