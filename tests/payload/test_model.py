"""The FC-DenseNet: the paper's size, logits out, every Keras backend, model files."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from payload.errors import ModelFileError
from payload.model import PixelPosition, build_model, config_name_of, get_config
from payload.modelfile import load_model, save_model
from payload.precision import dtype_policy

ROOT = Path(__file__).resolve().parents[2]


def test_paper_config_has_the_papers_9_4_million_parameters():
    model = build_model("paper")
    assert abs(model.count_params() - 9.4e6) / 9.4e6 < 0.05
    # 103 layers in the paper's count: first conv, 2×(4+5+7+10+12)+15 dense layers, 5 TD, 5 TU, last conv
    convs = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    assert len(convs) == 103


def test_paper_config_is_the_one_in_the_design():
    paper = get_config("paper")
    assert (paper.blocks, paper.bottleneck, paper.growth, paper.first_filters) == ((4, 5, 7, 10, 12), 15, 16, 48)
    assert (paper.dropout, paper.l2) == (0.2, 1e-4)


def test_models_map_images_to_float32_logits_per_pixel():
    model = build_model("tiny")
    images = np.random.default_rng(0).random((2, 320, 320, 1), np.float32)
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    assert logits.shape == (2, 320, 320, 3) and logits.dtype == np.float32
    # logits, not probabilities: a softmax head would sum to one everywhere
    assert not np.allclose(logits.sum(-1), 1.0)
    assert config_name_of(model) == "tiny"
    assert build_model("small").count_params() > 10 * build_model("tiny").count_params()


def test_mixed_precision_computes_in_bfloat16_and_still_returns_float32_logits():
    with dtype_policy("mixed_bfloat16"):
        model = build_model("tiny")
    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored after the block
    assert model.get_layer("down0_l0_conv").compute_dtype == "bfloat16"
    logits = model(np.ones((1, 320, 320, 1), np.float32), training=False)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


def test_pixel_position_appends_row_and_column_scaled_to_one():
    images = np.random.default_rng(2).random((2, 320, 320, 1), np.float32)
    out = keras.ops.convert_to_numpy(PixelPosition()(images))
    assert out.shape == (2, 320, 320, 3)
    np.testing.assert_array_equal(out[..., 0], images[..., 0])
    np.testing.assert_allclose(out[1, :, 7, 1], np.arange(320) / 319, atol=1e-6)   # tick (row)
    np.testing.assert_allclose(out[0, 5, :, 2], np.arange(320) / 319, atol=1e-6)   # wire (column)
    assert "pixel_position" in [l.name for l in build_model("tiny").layers]
    assert "pixel_position" not in [l.name for l in build_model("paper").layers]  # the paper as published


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_position_grid_is_exact_in_every_precision(precision):
    # bfloat16 has 128 values in [0.5, 1): computed or stored in it, the 160 positions of an
    # event's far half would collide in pairs; the first convolution must read them in float32 too
    with dtype_policy(precision):
        model = build_model("tiny", crops=True)
    grid = keras.Model(model.inputs, model.get_layer("pixel_position").output)
    images = np.zeros((2, 320, 320, 1), np.float32)
    out = keras.ops.convert_to_numpy(grid([images, np.zeros((2, 2), np.float32)]))
    expected = np.arange(320, dtype=np.float32) / np.float32(319)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :, 0, 1], expected)     # tick (row), every value exact
    np.testing.assert_array_equal(out[1, 0, :, 2], expected)     # wire (column)
    assert len(np.unique(out[0, :, 0, 1])) == 320
    layer = model.get_layer("pixel_position")
    crop = keras.ops.convert_to_numpy(layer(images[:1, :64, :64], np.array([[256, 250]], np.float32)))
    np.testing.assert_array_equal(crop[0, :, 0, 1], expected[256:320])    # a crop at the far edge
    np.testing.assert_array_equal(crop[0, 0, :, 2], expected[250:314])
    assert model.get_layer("first_conv").compute_dtype == "float32"
    assert model.get_layer("down0_l0_conv").compute_dtype == ("float32" if precision == "float32"
                                                              else precision.split("_")[1])


def test_unknown_config_and_precision_names_are_refused():
    with pytest.raises(ValueError, match="paper, small, tiny"):
        get_config("huge")
    with pytest.raises(ValueError, match="mixed_float16"):
        with dtype_policy("float8"):
            pass


# ---------------------------------------------------------------------------------------------
# Every backend computes the same function from the same file

FORWARD = """
import json, sys
import numpy as np, keras
from payload.modelfile import load_model
model = load_model(sys.argv[1], "tiny")
images = np.load(sys.argv[2])
logits = keras.ops.convert_to_numpy(model(images, training=False))
print(json.dumps({"backend": keras.backend.backend(), "logits": logits[:, ::40, ::40].tolist()}))
"""


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    keras.utils.set_random_seed(5)
    model = build_model("tiny")
    path = save_model(model, directory / "tiny.keras")
    images = np.random.default_rng(1).random((2, 320, 320, 1), np.float32)
    np.save(directory / "images.npy", images)
    expected = keras.ops.convert_to_numpy(model(images, training=False))[:, ::40, ::40]
    return path, directory / "images.npy", expected


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_forward_pass_on_each_backend_gives_the_same_logits(backend, tiny_model_file):
    model_path, images_path, expected = tiny_model_file
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", FORWARD, str(model_path), str(images_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    np.testing.assert_allclose(np.array(result["logits"]), expected, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Model files


def test_saved_model_loads_into_its_config_under_any_name(tmp_path):
    with dtype_policy("mixed_bfloat16"):
        model = build_model("tiny")
    path = save_model(model, tmp_path / "dune.model.v1")  # an LFN, no .keras suffix
    assert zipfile.is_zipfile(path) and not list(tmp_path.glob(".*"))
    loaded = load_model(path, "tiny")
    assert loaded.get_layer("down0_l0_conv").compute_dtype == "float32"  # saved as float32
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_weighted_loss_model_is_saved_with_calibrated_logits(tmp_path):
    # A loss weighting class c by w_c drives the softmax towards w_c·p_c (normalised); the saved
    # network must give back p_c, i.e. softmax(logits − log w).
    keras.utils.set_random_seed(4)
    model = build_model("tiny")
    weights = (0.07, 12.0, 1.0)
    loaded = load_model(save_model(model, tmp_path / "m.keras", class_weights=weights), "tiny")
    images = np.random.default_rng(3).random((1, 320, 320, 1), np.float32)
    trained = keras.ops.convert_to_numpy(keras.ops.softmax(model(images, training=False)))
    saved = keras.ops.convert_to_numpy(keras.ops.softmax(loaded(images, training=False)))
    expected = trained / np.asarray(weights)
    np.testing.assert_allclose(saved, expected / expected.sum(-1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_loading_a_model_of_another_config_names_file_and_configs(tmp_path):
    path = save_model(build_model("tiny"), tmp_path / "tiny.keras")
    with pytest.raises(ModelFileError, match="tiny.keras holds the 'tiny' network, but the 'small'") as err:
        load_model(path, "small")
    assert err.value.path == str(path)


def test_a_foreign_keras_model_is_refused(tmp_path):
    inputs = keras.Input((320, 320, 1))
    foreign = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs), name="unet")
    foreign.save(tmp_path / "unet.keras")
    with pytest.raises(ModelFileError, match="foreign model"):
        load_model(tmp_path / "unet.keras", "tiny")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_damaged_model_files_raise_model_file_error_naming_the_file(tmp_path, damage):
    path = save_model(build_model("tiny"), tmp_path / "m.keras")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x89HDF\r\n" + os.urandom(4000))
    else:
        path.unlink()
    with pytest.raises(ModelFileError, match=str(path)):
        load_model(path, "tiny")


def test_a_zip_that_is_not_a_keras_model_is_refused(tmp_path):
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{not json")
    with pytest.raises(ModelFileError, match="cannot be read"):
        load_model(path, "tiny")

