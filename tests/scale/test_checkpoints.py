"""Resume across retries (wrapper.checkpoints.resume): complete checkpoints only, local and S3 prefixes."""
import json
import shutil
import threading

import pytest

from payload.checkpoints import latest_checkpoint
from wrapper import exitcodes as ec
from wrapper.checkpoints.store import MANIFEST, LocalStore, S3Store, complete_checkpoints, resolve_prefix
from wrapper.checkpoints.sync import CheckpointSync
from wrapper.checkpoints.resume import local_dir, restore_latest, resume_checkpoint, start_sync
from wrapper.errors import ArgumentError, InputFileError
from wrapper.staging import StagingOptions


def upload(store, folder, model_config="tiny"):
    """Upload one checkpoint folder the way a job does, and wait for it."""
    sync = CheckpointSync(store, model_config, folder.parent.parent / "staging", keep=10)
    sync(folder)
    assert sync.close(30)
    assert sync.uploaded == [folder.name], sync.failed
    return sync


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_resume_takes_the_newest_complete_checkpoint_and_ignores_a_half_written_one(
        tmp_path, make_checkpoint, options):
    root = tmp_path / "shared" / "task-42"
    store = LocalStore(str(root))
    upload(store, make_checkpoint(1))
    newer = make_checkpoint(2, step=17)
    upload(store, newer)
    # A job killed while uploading epoch 3: its files are there, its manifest is not.
    half = make_checkpoint(3)
    (root / half.name).mkdir()
    shutil.copy(half / "model.npz", root / half.name / "model.npz")

    assert [c.name for c in complete_checkpoints(store)] == [newer.name, "ckpt-e0001-s0000000"]
    target = tmp_path / "retry" / "checkpoints"
    resumed = restore_latest(str(root), target, options, "tiny")
    assert (resumed.checkpoint, resumed.epoch, resumed.step) == (newer.name, 2, 17)
    assert resumed.message.startswith("resumed from epoch 2 (step 17) of checkpoint ckpt-e0002-s0000017")
    assert files_of(target / newer.name) == files_of(newer)
    # the payload's own finder picks exactly what was restored, and no download leftovers remain
    assert latest_checkpoint(target) == target / newer.name
    assert [p.name for p in target.iterdir()] == [newer.name]


def test_a_manifest_listing_missing_files_is_not_complete(tmp_path, make_checkpoint, options):
    store = LocalStore(str(tmp_path / "p"))
    folder = make_checkpoint(1)
    upload(store, folder)
    (tmp_path / "p" / folder.name / "optimizer.npz").unlink()
    assert complete_checkpoints(store) == []
    assert restore_latest(str(tmp_path / "p"), tmp_path / "c", options, "tiny") is None


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, make_checkpoint, options):
    root = tmp_path / "p"
    store = LocalStore(str(root))
    upload(store, make_checkpoint(1))
    newest = make_checkpoint(2)
    upload(store, newest)
    data = bytearray((root / newest.name / "model.npz").read_bytes())
    data[-10] ^= 0xFF
    (root / newest.name / "model.npz").write_bytes(bytes(data))

    resumed = restore_latest(str(root), tmp_path / "c", options, "tiny")
    assert resumed.checkpoint == "ckpt-e0001-s0000000"
    assert len(resumed.skipped) == 1 and "adler32" in resumed.skipped[0]
    assert resumed.to_report()["resumedFromEpoch"] == 1
    assert not (tmp_path / "c" / newest.name).exists()


def test_a_checkpoint_of_another_network_is_a_clear_input_error(tmp_path, make_checkpoint, options):
    store = LocalStore(str(tmp_path / "p"))
    upload(store, make_checkpoint(4, config="paper"), model_config="paper")
    with pytest.raises(InputFileError) as info:
        restore_latest(str(tmp_path / "p"), tmp_path / "c", options, "tiny")
    assert info.value.exit_code == ec.INPUT_FILE_ERROR and info.value.cause == "model-mismatch"
    assert "'paper' network" in info.value.message and "'tiny'" in info.value.message


def test_task_token_in_the_prefix():
    assert resolve_prefix("s3://b/dune/task-{taskid}", {"PanDA_TaskID": "4242"}) == "s3://b/dune/task-4242/"
    assert resolve_prefix("/shared/ckpt/", {}) == "/shared/ckpt/"
    with pytest.raises(ArgumentError) as info:
        resolve_prefix("s3://b/task-{taskid}/", {})
    assert info.value.exit_code == ec.ARG_ERROR and "PanDA_TaskID" in info.value.message


class GatedStore(LocalStore):
    """A local store whose first upload waits for the test: checkpoints queue behind it."""

    def __init__(self, root):
        super().__init__(root)
        self.entered, self.release = threading.Event(), threading.Event()

    def put(self, name, files):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        super().put(name, files)


def test_sync_uploads_in_the_background_keeps_the_newest_and_survives_payload_pruning(
        tmp_path, make_checkpoint, options):
    root = tmp_path / "p"
    store = GatedStore(str(root))
    sync = CheckpointSync(store, "tiny", options.workdir / ".checkpoint-upload")
    folders = [make_checkpoint(e) for e in (1, 2, 3)]
    sync(folders[0])
    shutil.rmtree(folders[0])   # the payload prunes its old checkpoints at once
    assert store.entered.wait(30)   # epoch 1 is being uploaded
    for folder in folders[1:]:
        sync(folder)
        shutil.rmtree(folder)
    store.release.set()
    assert sync.close(30)
    # epoch 2, queued behind a running upload, is skipped for the newest one
    assert sync.failed == [] and sync.uploaded == ["ckpt-e0001-s0000000", "ckpt-e0003-s0000000"]
    assert sorted(p.name for p in root.iterdir()) == sync.uploaded
    manifest = json.loads((root / "ckpt-e0003-s0000000" / MANIFEST).read_text())
    assert manifest["epoch"] == 3 and manifest["model_config"] == "tiny"
    assert {f["name"] for f in manifest["files"]} == {"model.npz", "optimizer.npz", "state.json"}
    assert not any((options.workdir / ".checkpoint-upload").iterdir())


def test_start_sync_uploads_under_the_prefix_and_is_none_without_one(tmp_path, make_checkpoint, options):
    assert start_sync(None, options.workdir, options, "tiny") is None
    sync = start_sync(str(tmp_path / "p"), options.workdir, options, "tiny")
    sync(make_checkpoint(1))
    assert sync.close(30) and sync.uploaded == ["ckpt-e0001-s0000000"]
    assert (tmp_path / "p" / "ckpt-e0001-s0000000" / MANIFEST).is_file()


def test_resume_checkpoint_one_liner_without_prefix_or_with_resume_off(tmp_path, make_checkpoint, options):
    assert resume_checkpoint(None, options.workdir, options, "tiny") is None
    store = LocalStore(str(tmp_path / "p"))
    upload(store, make_checkpoint(1))
    assert resume_checkpoint(str(tmp_path / "p"), options.workdir, options, "tiny", resume=False) is None
    resumed = resume_checkpoint(str(tmp_path / "p"), options.workdir, options, "tiny")
    assert latest_checkpoint(local_dir(options.workdir)).name == resumed.checkpoint


def test_s3_prefix_against_seaweedfs(tmp_path, make_checkpoint, s3env, bucket, options):
    prefix = f"s3://{bucket}/dune/task-{{taskid}}/"
    env = {"PanDA_TaskID": "77"}
    resolved = resolve_prefix(prefix, env)
    store = S3Store(resolved, options)
    first, second = make_checkpoint(1), make_checkpoint(2, step=5)
    upload(store, first)
    upload(store, second)
    client = s3env.client()
    # half-written: the files of a newer checkpoint without the manifest
    client.upload_file(str(second / "model.npz"), bucket, "dune/task-77/ckpt-e0009-s0000000/model.npz")

    listed = client.list_objects_v2(Bucket=bucket, Prefix="dune/task-77/")["Contents"]
    assert f"dune/task-77/{second.name}/{MANIFEST}" in {o["Key"] for o in listed}
    target = tmp_path / "retry"
    resumed = restore_latest(resolved, target, options, "tiny")
    assert resumed.checkpoint == second.name and resumed.location == f"s3://{bucket}/dune/task-77/{second.name}/"
    assert files_of(target / second.name) == files_of(second)


def test_s3_store_that_cannot_be_reached_fails_with_a_cause(tmp_path, s3env, bucket):
    from tests.support.seaweed import free_ports

    dead = StagingOptions(workdir=tmp_path, s3_endpoint=f"http://127.0.0.1:{free_ports(1)[0]}",
                          s3_path_style=True, retries=0, timeout_s=2.0)
    with pytest.raises(InputFileError) as info:
        restore_latest(f"s3://{bucket}/x/", tmp_path / "c", dead, "tiny")
    assert info.value.cause == "connection" and "cannot be listed" in info.value.message
    assert s3env.secret_key not in info.value.message


def test_failed_uploads_are_counted_not_raised(tmp_path, make_checkpoint, s3env, bucket, options,
                                               monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-of-this-store")
    store = S3Store(f"s3://{bucket}/p/", options)
    sync = CheckpointSync(store, "tiny", tmp_path / "staging")
    sync(make_checkpoint(1))
    assert sync.close(60)
    assert sync.uploaded == [] and sync.failed == ["ckpt-e0001-s0000000"]
    assert sync.to_report()["failed"] == ["ckpt-e0001-s0000000"]


def test_a_retried_training_resumes_from_the_checkpoint_its_first_attempt_uploaded(
        tmp_path, s3env, bucket, options):
    """Attempt 1 trains one epoch and uploads its checkpoints to S3 while training; attempt 2 (a new
    job directory) resumes from them and trains the second epoch only."""
    from payload import api
    from payload.simulate import simulate_events

    events = simulate_events(5, 9, path=tmp_path / "events.h5")
    prefix = f"s3://{bucket}/dune/task-{{taskid}}/"
    env = {"PanDA_TaskID": "31"}

    def attempt(workdir, epochs):
        workdir.mkdir()
        job_options = StagingOptions(workdir=workdir, s3_path_style=True, retries=1, timeout_s=10.0)
        resumed = resume_checkpoint(resolve_prefix(prefix, env), workdir, job_options, "tiny")
        sync = start_sync(resolve_prefix(prefix, env), workdir, job_options, "tiny")
        config = api.TrainConfig(model_config="tiny", batch_size=2, epochs=epochs, validation_split=0.2,
                                 loss="cce", checkpoint_dir=local_dir(workdir), checkpoint_every_s=3600)
        result = api.train([events], workdir / "model.keras", config, on_checkpoint=sync)
        assert sync.close(60) and sync.failed == []
        return resumed, result, sync

    resumed, first, sync = attempt(tmp_path / "attempt1", epochs=1)
    assert resumed is None and first.resumed_from_epoch is None
    assert sync.uploaded == ["ckpt-e0001-s0000000"]

    resumed, second, _ = attempt(tmp_path / "attempt2", epochs=2)
    assert resumed.checkpoint == "ckpt-e0001-s0000000" and resumed.epoch == 1
    assert resumed.location == f"s3://{bucket}/dune/task-31/ckpt-e0001-s0000000/"
    assert second.resumed_from_epoch == 1
    assert len(second.history["loss"]) == 2 and second.history["loss"][0] == first.history["loss"][0]


def test_a_checkpoint_that_cannot_be_staged_is_counted_and_training_goes_on(tmp_path, make_checkpoint):
    staging = tmp_path / "staging"
    staging.write_text("a file where the staging folder should be")
    sync = CheckpointSync(LocalStore(str(tmp_path / "p")), "tiny", staging)
    sync(make_checkpoint(1))             # must not raise into the training loop
    assert sync.close(10)
    assert sync.failed == ["ckpt-e0001-s0000000"] and sync.uploaded == []
