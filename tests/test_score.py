"""score: metric correctness against direct computations, per-class KID, memorization, Inception paths."""

import json

import numpy as np
import pytest
import torch
from conftest import write_prepared
from scipy import linalg

from gan_aug.errors import UserError
from gan_aug.metrics import fidelity, memorization


def reference_frechet(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    b = rng.normal(loc=0.3, scale=1.2, size=(300, 16))
    assert fidelity.frechet_distance(a, b) == pytest.approx(reference_frechet(a, b), rel=1e-6)


@pytest.mark.slow
def test_self_zero_shift_large():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 8))
    same = fidelity.set_scores(a, a)
    shifted = fidelity.set_scores(a + 1.0, a)
    assert abs(same[fidelity.FD]) < 1e-6 and same[fidelity.PRECISION] == 1.0 and same[fidelity.RECALL] == 1.0
    assert shifted[fidelity.FD] == pytest.approx(8.0, rel=1e-6)  # |mean shift|^2, same covariance
    assert abs(same[fidelity.KID]) < 0.05 * shifted[fidelity.KID]


def test_kid_with_twenty_images_per_class():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
    near, near_std = fidelity.kernel_distance(a, b, subset_size=1000, subsets=50)
    far, _ = fidelity.kernel_distance(a + 2, b, subset_size=1000, subsets=50)
    assert np.isfinite(near) and np.isfinite(near_std) and far > near + 1


def test_memorization_flags_copies():
    rng = np.random.default_rng(3)
    train = rng.integers(0, 256, (200, 8, 8, 3), dtype=np.uint8)
    val = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    novel = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    copies = np.concatenate([novel[:30], train[:10]])  # a quarter copied from training patients
    clean, _, _ = memorization.audit(*(memorization.pixels(x) for x in (novel, train, val)), "pixels")
    leaky, dist, nn_idx = memorization.audit(*(memorization.pixels(x) for x in (copies, train, val)), "pixels")
    assert clean["flagged"] <= 1
    assert leaky["flagged"] >= 10 and (nn_idx[30:] == np.arange(10)).all() and (dist[30:] < 1e-2).all()


@pytest.fixture
def inception_file(tmp_path, monkeypatch):
    """A file shaped like torch-fidelity's Inception-v3 weights (random values: the path is tested, not the numbers)."""
    from torch_fidelity import feature_extractor_inceptionv3 as inc

    with monkeypatch.context() as patch:  # build the network without loading (or downloading) any weights
        patch.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        patch.setattr(inc, "load_state_dict_from_url", lambda *a, **k: None)
        net = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_offline_inception_fails_with_instructions(torch_home, tmp_path, no_network):
    with pytest.raises(UserError, match=r"cannot get the Inception weights for FID \(network blocked.*"
                                        r"download https://github.com/toshas/torch-fidelity/.*put it at .*torch_home.*"
                                        r"or pass --fid-weights PATH"):
        fidelity.extract_features(np.zeros((2, 16, 16, 3), np.uint8), "inception")
    with pytest.raises(UserError, match="Inception weights not found"):
        fidelity.extract_features(np.zeros((2, 16, 16, 3), np.uint8), "inception", tmp_path / "nope.pth")
    with pytest.raises(UserError, match="no Inception weights at"):  # metrics_features auto never downloads
        fidelity.resolve_inception_weights(None, download=False)


def test_inception_path_with_local_weights(inception_file, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    features = fidelity.extract_features(images, "inception", inception_file, batch_size=3)
    assert features.shape == (3, 2048) and torch.isfinite(features).all()
    torch.save({"not": object()}, tmp_path / "pickle.pth")
    with pytest.raises(UserError, match="not a plain state-dict"):
        fidelity.resolve_inception_weights(tmp_path / "pickle.pth")


def small_scored_pair(tmp_path):
    """A tiny prepared set and a synthetic set whose provenance says it was trained on its train split."""
    from gan_aug.data.prepared import load_prepared
    from gan_aug.data.synthetic import write_synthetic_folder

    prepared = load_prepared(write_prepared(tmp_path / "tiny.npz", 16, per_split=(3, 1, 0)))
    images = {c: prepared.images[prepared.labels == i][:1] for i, c in enumerate(prepared.class_names)}
    rows = [{"file": f"{c}/{i}.png", "class": c} for c, batch in images.items() for i in range(len(batch))]
    provenance = {"class_names": list(prepared.class_names), "image_size": 16,
                  "gan_data": {"fingerprint": prepared.fingerprint, "split": "train"}}
    write_synthetic_folder(tmp_path / "syn", images, rows, provenance, force=False)
    return prepared.path, tmp_path / "syn"


@pytest.mark.slow
def test_score_with_inception_online_cache_or_offline(inception_file, torch_home, tmp_path, run_cli, no_network,
                                                     monkeypatch):
    """Offline and with nothing cached: one line. With the file in torch's cache (where a download puts it) or
    given by --fid-weights: scores.json records the weights' sha256 and the resize behind the numbers."""
    from gan_aug.data.synthetic import sha256_file

    # 2048-d Fréchet distances take ~15 s each on a busy CPU; their math is tested above, the weights path here.
    monkeypatch.setattr(fidelity, "frechet_distance", lambda a, b: 0.0)
    data, syn = small_scored_pair(tmp_path)
    args = ["score", "--data", data, "--synthetic", syn, "--features", "inception", "--no-cas", "--no-memorization",
            "--set", "embed_per_source=0"]
    result = run_cli(*args, "--out", tmp_path / "a.json")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "--fid-weights PATH" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "a.json").exists()
    cached = torch_home / "hub" / "checkpoints" / fidelity.INCEPTION_FILE
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(inception_file.read_bytes())
    for out, extra in (("b.json", []), ("c.json", ["--fid-weights", inception_file])):
        result = run_cli(*args, *extra, "--out", tmp_path / out)
        assert result.exit_code == 0, result.output
        source = json.loads((tmp_path / out).read_text())["feature_source"]
        assert source["weights_sha256"] == sha256_file(inception_file) and source["extractor"] == "inception-v3-compat"
        assert source["resize"].startswith("16 px, bilinear to 299x299 px")
        # the test's weights are not torch-fidelity's file: the record and the printed table say so
        assert source["official_weights"] is False and "is not torch-fidelity's Inception file" in result.output
    monkeypatch.setattr(fidelity, "INCEPTION_SHA256_PREFIX", sha256_file(inception_file)[:8])
    result = run_cli(*args, "--fid-weights", inception_file, "--out", tmp_path / "d.json")
    assert result.exit_code == 0 and "warning" not in result.output


@pytest.mark.slow
def test_cas_tells_a_faithful_generator_from_a_label_blind_one(tmp_path):
    """CAS of a 'generator' that returns the real train images with their labels beats the same images with
    shuffled labels (chance): the score measures whether synthetic labels carry the class."""
    from gan_aug.config import build_config
    from gan_aug.data.config import PrepareConfig
    from gan_aug.data.prepare import prepare
    from gan_aug.data.prepared import load_prepared
    from gan_aug.metrics.score import classification_accuracy_score

    data = tmp_path / "toy.npz"
    prepare(build_config(PrepareConfig, None, {"out": str(data), "source": "toy", "size": 16, "toy_count": 400,
                                               "workers": 1}), progress=False)
    prepared = load_prepared(data)
    train = prepared.indices("train")
    shuffled = np.random.default_rng(0).permutation(prepared.labels[train])
    faithful = classification_accuracy_score(prepared, prepared.images[train], prepared.labels[train], 15, 0)
    blind = classification_accuracy_score(prepared, prepared.images[train], shuffled, 15, 0)
    assert faithful["bma"] > blind["bma"] + 0.2


@pytest.mark.slow
def test_score_command_end_to_end(toy16, toy_gan, tmp_path, run_cli, two_threads):
    clf = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", toy16, "--out", clf, "--epochs", 1, "--set", "batch_size=32").exit_code == 0
    syn = tmp_path / "syn"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 70, "--out", syn, "--distribution", "uniform").exit_code == 0
    out = tmp_path / "scores" / "scores.json"
    result = run_cli("score", "--data", toy16, "--synthetic", syn, "--features", f"lesion:{clf}/best.pt",
                     "--out", out, "--set", "cas_epochs=1", "--set", "embed_per_source=20", "--set", "threads=1")
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    scores = json.loads(out.read_text())
    assert set(scores["per_class"]) == {"all", "akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert scores["per_class"]["df"]["n_synthetic"] == 10 and np.isfinite(scores["per_class"]["df"]["kid"])
    assert scores["cas"]["epochs"] == 1 and set(scores["memorization"]) == {"pixels", "features"}
    assert (out.parent / "scores_closest_pairs.png").is_file()
    assert (out.parent / "scores_tb" / "projector_config.pbtxt").is_file()
