"""Transforms: statistics of standardisation and of each augmentation, vectorised over the batch."""

import numpy as np
import pytest

from gradlearn.data import ColorJitter, Compose, DataError, GaussianNoise, RandomCrop, RandomHorizontalFlip, Standardize


def _batch(rng, n=64, c=3, h=10, w=12):
    return rng.random((n, c, h, w), dtype=np.float32)


def test_standardize_per_channel(rng):
    scale = np.array([1.0, 5.0, 0.1], dtype=np.float32).reshape(1, 3, 1, 1)
    shift = np.array([-2.0, 3.0, 10.0], dtype=np.float32).reshape(1, 3, 1, 1)
    train = rng.standard_normal((500, 3, 6, 6), dtype=np.float32) * scale + shift
    test = rng.standard_normal((100, 3, 6, 6), dtype=np.float32) * scale + shift + 1.0
    norm = Standardize.fit(train, per="channel", chunk=64)  # chunked accumulation
    reference = train.astype(np.float64)
    np.testing.assert_allclose(norm.mean.ravel(), reference.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(norm.std.ravel(), reference.std(axis=(0, 2, 3)), rtol=1e-6)
    out = norm(train)
    assert out.dtype == np.float32 and out.shape == train.shape
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3), dtype=np.float64), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3), dtype=np.float64), 1.0, rtol=1e-5)
    mean_before = norm.mean.copy()
    test_out, labels = norm(test, np.arange(100))
    np.testing.assert_array_equal(norm.mean, mean_before)  # applying never refits
    np.testing.assert_allclose(test_out, (test - norm.mean) / norm.std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(test_out.mean(axis=(0, 2, 3)), 1.0 / scale.ravel(), rtol=0.1)  # the shift survives
    np.testing.assert_array_equal(labels, np.arange(100))


def test_standardize_per_feature_and_constant_inputs(rng):
    x = rng.random((200, 5), dtype=np.float32)
    x[:, 2] = 0.25  # constant: std 0 -> 1, output 0
    norm = Standardize.fit(x, per="feature")
    assert norm.mean.shape == (1, 5)
    out = norm(x)
    np.testing.assert_allclose(out[:, 2], 0.0, atol=1e-7)
    np.testing.assert_allclose(np.delete(out, 2, axis=1).std(axis=0), 1.0, rtol=1e-5)
    everything = Standardize.fit(x, per="all")
    assert everything.mean.shape == (1, 1) and abs(float(everything(x).mean())) < 1e-5
    with pytest.raises(DataError, match="per must be"):
        Standardize.fit(x, per="pixel")


def test_standardize_by_hand_per_channel(rng):
    x = _batch(rng)
    norm = Standardize([0.5, 0.25, 0.0], [0.5, 0.5, 2.0])
    expected = (x - np.array([0.5, 0.25, 0.0], np.float32).reshape(1, 3, 1, 1)) / np.array([0.5, 0.5, 2.0], np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(norm(x), expected, rtol=1e-6)
    with pytest.raises(DataError, match="do not fit a batch"):
        Standardize.fit(x)(x[:, :2])


def test_random_crop_takes_windows_of_the_padded_image(rng):
    x = _batch(rng, n=50, c=2, h=8, w=9)
    crop = RandomCrop((6, 7), padding=2)
    out = crop(x, generator=np.random.default_rng(4))
    assert out.shape == (50, 2, 6, 7) and out.dtype == np.float32
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    replay = np.random.default_rng(4)
    top, left = replay.integers(0, 12 - 6 + 1, 50), replay.integers(0, 13 - 7 + 1, 50)
    for i in range(50):  # the reference, one image at a time
        np.testing.assert_array_equal(out[i], padded[i, :, top[i] : top[i] + 6, left[i] : left[i] + 7])
    assert np.array_equal(RandomCrop(8, padding=0)(x[:, :, :, :8], generator=np.random.default_rng(0)), x[:, :, :, :8])


def test_random_crop_position_statistics(rng):
    # One image of distinct pixel values: each crop's top-left value reveals its offset.
    image = np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5)
    x = np.repeat(image, 30000, axis=0)
    out = RandomCrop(3, padding=0)(x, generator=np.random.default_rng(1))
    corner = out[:, 0, 0, 0].astype(int) - 1
    top, left = corner // 5, corner % 5
    assert top.max() == 2 and left.max() == 2
    counts = np.bincount(top * 3 + left, minlength=9)
    expected = 30000 / 9
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts


def test_random_crop_errors():
    with pytest.raises(DataError, match=r"RandomCrop\(4, padding=0\): expected images \(N, C, H, W\), got shape \(3, 16\)"):
        RandomCrop(4)(np.zeros((3, 16), np.float32))
    with pytest.raises(DataError, match="larger than the padded image"):
        RandomCrop(12, padding=1)(np.zeros((3, 1, 8, 8), np.float32))


def test_horizontal_flip_statistics(rng):
    x = _batch(rng, n=10000, c=1, h=2, w=3)
    out = RandomHorizontalFlip(p=0.3)(x, generator=np.random.default_rng(0))
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped ^ kept)  # each image either mirrored or untouched
    assert abs(flipped.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / 10000)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])


def test_color_jitter_brightness(rng):
    x = _batch(rng, n=2000) * 0.4 + 0.05  # in [0.05, 0.45]: factors up to 1.5 never clip
    out = ColorJitter(brightness=0.5)(x, generator=np.random.default_rng(0))
    ratio = out / x
    factor = ratio[:, :1, :1, :1]
    np.testing.assert_allclose(ratio, np.broadcast_to(factor, ratio.shape), rtol=1e-5)  # one factor per image
    assert factor.min() >= 0.5 - 1e-6 and factor.max() <= 1.5 + 1e-6
    assert factor.min() < 0.55 and factor.max() > 1.45  # the whole range is used
    assert out.dtype == np.float32
    assert np.all(ColorJitter(brightness=3.0)(x * 2, generator=np.random.default_rng(0)) <= 1.0)


def test_color_jitter_contrast_and_saturation(rng):
    x = _batch(rng, n=500, c=3) * 0.5 + 0.25
    weights = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)
    gray = lambda im: np.sum(im * weights, axis=1)  # noqa: E731
    contrast = ColorJitter(contrast=0.5)(x, generator=np.random.default_rng(0))
    # contrast keeps each image's mean grey level and scales deviations from it
    np.testing.assert_allclose(gray(contrast).mean(axis=(1, 2)), gray(x).mean(axis=(1, 2)), rtol=1e-5)
    deviation_ratio = gray(contrast).std(axis=(1, 2)) / gray(x).std(axis=(1, 2))
    assert deviation_ratio.min() >= 0.5 - 1e-5 and deviation_ratio.max() <= 1.5 + 1e-5
    saturation = ColorJitter(saturation=0.5)(x, generator=np.random.default_rng(0))
    # saturation keeps each pixel's grey level and moves the colours towards or away from it
    np.testing.assert_allclose(gray(saturation), gray(x), rtol=1e-5)
    assert not np.allclose(saturation, x)
    one_channel = x[:, :1]
    np.testing.assert_allclose(ColorJitter(saturation=0.9)(one_channel), one_channel, rtol=1e-6)


def test_gaussian_noise_statistics(rng):
    x = _batch(rng, n=100, c=1, h=32, w=32)
    out = GaussianNoise(0.2)(x, generator=np.random.default_rng(0))
    noise = (out - x).astype(np.float64)
    n = noise.size
    assert out.dtype == np.float32
    assert abs(noise.mean()) < 5 * 0.2 / np.sqrt(n)
    assert abs(noise.std() - 0.2) < 5 * 0.2 / np.sqrt(2 * n)
    with pytest.raises(DataError, match="std must be non-negative"):
        GaussianNoise(-1.0)


def test_compose_is_sequential_and_reproducible(rng):
    x = _batch(rng)
    y = np.arange(len(x))
    pipeline = Compose([RandomCrop(8, padding=1), RandomHorizontalFlip(), GaussianNoise(0.1)])
    out, labels = pipeline(x, y, generator=np.random.default_rng(9))
    g = np.random.default_rng(9)
    expected = GaussianNoise(0.1)(RandomHorizontalFlip()(RandomCrop(8, padding=1)(x, generator=g), generator=g), generator=g)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(labels, y)
    again = pipeline(x, generator=np.random.default_rng(9))
    np.testing.assert_array_equal(again, out)
    assert pipeline.random and not Compose([Standardize(0.0, 1.0)]).random
    assert "RandomCrop(8, padding=1)" in repr(pipeline)


def test_own_generator_advances_between_calls(rng):
    x = _batch(rng)
    noise = GaussianNoise(0.1, generator=3)
    assert not np.array_equal(noise(x), noise(x))


def test_inputs_are_never_modified(rng):
    x = _batch(rng)
    original = x.copy()
    for t in (Standardize.fit(x), RandomCrop(8, padding=2), RandomHorizontalFlip(1.0), ColorJitter(0.5, 0.5, 0.5), GaussianNoise(0.1)):
        out = t(x)
        np.testing.assert_array_equal(x, original)
        assert not np.shares_memory(out, x)
