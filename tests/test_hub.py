"""Judges by Hub repo id through the real huggingface_hub client over real HTTP.

A Hub-compatible server (PyPI ``olah`` 0.5.4, offline mode, ``mirrors-path`` of git repos) runs on
127.0.0.1 and serves repos this module builds: a tiny ORIGINAL-format LLaVA judge (two commits with
different weights), its CLIP tower (named by Hub id in ``mm_vision_tower``), a LoRA adapter repo and broken
repos. Client runs happen in subprocesses so that ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` are read fresh.
olah quirks (DESIGN 6): a missing repo or branch is answered with 401, which the client reads as "repo not
found"; the Hub's own "revision not found" is checked by mapping the client's exception directly.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

pytest.importorskip("olah")
pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.filterwarnings("ignore::FutureWarning")]

ORG = "tiny-org"


def _git_commit(repo: Path, message: str) -> str:
    run = dict(cwd=repo, check=True, capture_output=True, text=True)
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main"], **run)
    subprocess.run(["git", "add", "-A"], **run)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message], **run)
    return subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()


def _replace_tree(repo: Path, source: Path) -> None:
    for item in repo.iterdir():
        if item.name != ".git":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    for item in source.iterdir():
        shutil.copytree(item, repo / item.name) if item.is_dir() else shutil.copy2(item, repo / item.name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_adapter(base_src: Path, work: Path, sha: str) -> Path:
    """A peft LoRA adapter (non-zero B) for the converted base, naming the base by repo id + commit."""
    import peft
    from transformers import LlavaForConditionalGeneration

    from evalalign_metric.convert import convert_llava_checkpoint

    native = convert_llava_checkpoint(base_src, work / "base-native", vision_tower=base_src.parent / "clip-tower")
    model = LlavaForConditionalGeneration.from_pretrained(native, dtype=torch.float32)
    config = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(3)
    lora = peft.get_peft_model(model, config)
    out = work / "adapter"
    lora.save_pretrained(out)
    data = json.loads((out / "adapter_config.json").read_text())
    data.update(base_model_name_or_path=f"{ORG}/judge", revision=sha)
    (out / "adapter_config.json").write_text(json.dumps(data))
    (out / "README.md").unlink(missing_ok=True)
    return out


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from evalalign_metric.convert.testing import build_clip_tower, build_original_llava

    root = tmp_path_factory.mktemp("hub")
    mirror = root / "mirror" / "models" / ORG
    shas = {}
    tower = build_clip_tower(mirror / "clip-tower", seed=1)
    shas["tower"] = _git_commit(tower, "tower")
    builds = {seed: build_original_llava(root / f"build-{seed}", seed=seed, tower_name=f"{ORG}/clip-tower")
              for seed in (0, 5)}
    for seed in builds:  # the build's own tower must equal the served one: rebuild it with seed 1
        shutil.rmtree(builds[seed].parent / "clip-tower")
        shutil.copytree(tower, builds[seed].parent / "clip-tower", ignore=shutil.ignore_patterns(".git"))
    judge = mirror / "judge"
    judge.mkdir()
    _replace_tree(judge, builds[0])
    shas["old"] = _git_commit(judge, "first weights")
    _replace_tree(judge, builds[5])
    shas["new"] = _git_commit(judge, "second weights")
    adapter_repo = mirror / "judge-lora"
    shutil.copytree(_make_adapter(builds[5], root, shas["new"]), adapter_repo)
    shas["adapter"] = _git_commit(adapter_repo, "lora")
    broken = {"pickle-only": "pickle", "no-config": "noconfig", "bert": "bert"}
    for name, kind in broken.items():
        repo = mirror / name
        repo.mkdir()
        if kind == "pickle":
            shutil.copy2(builds[0] / "config.json", repo / "config.json")
            torch.save(load_file(str(builds[0] / "model.safetensors")), repo / "pytorch_model.bin")
        elif kind == "noconfig":
            (repo / "README.md").write_text("nothing here\n")
        else:
            (repo / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
            save_file({"w": torch.zeros(2)}, str(repo / "model.safetensors"))
        _git_commit(repo, kind)
    port = _free_port()
    config = root / "olah.toml"
    config.write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{root / "olah-repos"}"\n'
        f'mirrors-path = ["{root / "mirror"}"]\n[accessibility]\noffline = true\n'
    )
    log = open(root / "olah.log", "w")
    server = subprocess.Popen([sys.executable, "-c", "from olah.server import cli; cli()", "-c", str(config)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=root)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/api/models/{ORG}/judge/revision/main", timeout=2)
            break
        except Exception:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.skip(f"olah did not start: {(root / 'olah.log').read_text()[-500:]}")
            time.sleep(0.3)
    state = {"root": root, "endpoint": endpoint, "shas": shas, "builds": builds, "server": server,
             "hf_home": root / "hf-home"}
    yield state
    if server.poll() is None:
        server.terminate()
        server.wait(10)
    log.close()


_CLIENT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch
from PIL import Image
action, args = sys.argv[1], json.loads(sys.argv[2])
out = {}
if action == "score":
    from evalalign_metric import EvalAlignScore
    from evalalign_metric.hub import resolve_model
    from evalalign_metric.official import alignment_prompts
    entry = alignment_prompts()[0]
    metric = EvalAlignScore(model=args["model"], revision=args.get("revision"), device="cpu", dtype="float32")
    images = [Image.new("RGB", (20, 14), (200, 30, 30)), Image.new("RGB", (16, 16), (20, 90, 220))]
    metric.update(images, [entry["prompt"]] * 2, elements=[entry["result_info"]] * 2)
    out["scores"] = {k: float(v) for k, v in metric.compute().items()}
    out["path"] = str(resolve_model(args["model"], revision=args.get("revision")))
elif action == "errors":
    from evalalign_metric.hub import resolve_model
    for ref, kwargs in args["cases"]:
        try:
            resolve_model(ref, **kwargs)
            out[ref + json.dumps(kwargs)] = ["ok", ""]
        except Exception as exc:
            out[ref + json.dumps(kwargs)] = [type(exc).__name__, str(exc)]
print("RESULT" + json.dumps(out))
"""


def _client(hub, action, args, *, offline=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(hub["hf_home"]), HF_ENDPOINT=hub["endpoint"], HF_HUB_OFFLINE="1" if offline else "0",
               HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error", HF_HUB_DISABLE_TELEMETRY="1")
    done = subprocess.run([sys.executable, "-c", _CLIENT, action, json.dumps(args)], capture_output=True,
                          text=True, env=env, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT"):])


def _projector(folder: Path) -> torch.Tensor:
    index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    name = "model.multi_modal_projector.linear_1.weight"
    return load_file(str(folder / index[name]))[name]


def test_pinned_older_revision_and_errors_over_http(hub):
    old = _client(hub, "score", {"model": f"{ORG}/judge", "revision": hub["shas"]["old"]})
    path = Path(old["path"])
    assert path.name == hub["shas"]["old"]
    original = load_file(str(hub["builds"][0] / "model.safetensors"))["model.mm_projector.0.weight"]
    assert torch.equal(_projector(path), original)
    cases = [
        [f"{ORG}/bert", {"local_files_only": True}],  # cold cache, offline
        [f"{ORG}/nope", {}],
        [f"{ORG}/judge", {"revision": "no-such-branch"}],  # olah: 401 -> read as "repo not found"
        [f"{ORG}/pickle-only", {}],
        [f"{ORG}/no-config", {}],
        [f"{ORG}/bert", {}],
        ["not a repo id", {}],
    ]
    got = list(_client(hub, "errors", {"cases": cases}).values())
    assert [g[0] for g in got] == ["OfflineCacheMissError", "RepoNotFoundError", "RepoNotFoundError",
                                   "HubFileMissingError", "HubFileMissingError", "UnsupportedModelError",
                                   "JudgeLoadError"]
    assert "allow_pickle=True" in got[3][1] and "HF_HUB_OFFLINE" in got[0][1]


def test_lora_adapter_repo_loads_onto_its_base(hub):
    result = _client(hub, "score", {"model": f"{ORG}/judge-lora"})
    path = Path(result["path"])
    assert path.parent.name == f"{ORG}--judge-lora" and path.name == hub["shas"]["adapter"]
    base = hub["hf_home"] / "evalalign" / "converted" / f"{ORG}--judge" / hub["shas"]["new"]
    adapter = load_file(str(hub["root"] / "mirror" / "models" / ORG / "judge-lora" / "adapter_model.safetensors"))
    config = json.loads((hub["root"] / "mirror" / "models" / ORG / "judge-lora" / "adapter_config.json").read_text())
    name = "model.language_model.layers.0.self_attn.q_proj"
    a = next(v for k, v in adapter.items() if name in k and "lora_A" in k)
    b = next(v for k, v in adapter.items() if name in k and "lora_B" in k)

    def weight(folder):
        index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"] \
            if (folder / "model.safetensors.index.json").is_file() else None
        files = [folder / index[name + ".weight"]] if index else [folder / "model.safetensors"]
        return load_file(str(files[0]))[name + ".weight"].float()

    want = weight(base) + (b.float() @ a.float()) * (config["lora_alpha"] / config["r"])
    torch.testing.assert_close(weight(path), want, atol=1e-3, rtol=1e-3)
    assert (weight(path) - weight(base)).abs().max() > 1e-3


def test_errors_say_what_to_do(hub, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    from evalalign_metric.hub import DiskFullError, DownloadInterruptedError, RevisionNotFoundError, resolve_model

    def raising(exc):
        def fake(*args, **kwargs):
            raise exc
        return fake

    monkeypatch.setattr(huggingface_hub, "snapshot_download", raising(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(DiskFullError, match="HF_HOME"):
        resolve_model(f"{ORG}/judge")
    interrupted = type("RemoteProtocolError", (Exception,), {})("peer closed connection")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", raising(interrupted))
    with pytest.raises(DownloadInterruptedError, match="resume"):
        resolve_model(f"{ORG}/judge")
    response = type("R", (), {"headers": {}, "status_code": 404, "request": None, "url": "u"})()
    try:
        hub_exc = hf_errors.RevisionNotFoundError("Revision Not Found", response=response)
    except TypeError:
        pytest.skip("huggingface_hub's error signature changed")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", raising(hub_exc))
    with pytest.raises(RevisionNotFoundError, match="branch, tag or full commit"):
        resolve_model(f"{ORG}/judge", revision="v9")


def test_repo_id_converts_once_scores_and_works_offline(hub):
    first = _client(hub, "score", {"model": f"{ORG}/judge"})
    path = Path(first["path"])
    assert path == hub["hf_home"] / "evalalign" / "converted" / f"{ORG}--judge" / hub["shas"]["new"]
    original = load_file(str(hub["builds"][5] / "model.safetensors"))["model.mm_projector.0.weight"]
    assert torch.equal(_projector(path), original)
    assert json.loads((path / "evalalign_judge.json").read_text())["chat_format"] == "vicuna_v1"
    assert any(v == v for v in first["scores"].values())  # NaN only for aspects no question applied to
    # the older pinned revision, fetched while the server is up (cached already if the test above ran)
    _client(hub, "score", {"model": f"{ORG}/judge", "revision": hub["shas"]["old"]})
    # Server stopped, offline: the same scores from the cache, nothing converted again.
    stamp = (path / "config.json").stat().st_mtime_ns
    hub["server"].terminate()
    hub["server"].wait(10)
    second = _client(hub, "score", {"model": f"{ORG}/judge"}, offline=True)
    assert json.dumps(second, sort_keys=True) == json.dumps(first, sort_keys=True)
    assert (path / "config.json").stat().st_mtime_ns == stamp
    cases = [[f"{ORG}/judge", {"revision": hub["shas"]["old"]}], [f"{ORG}/never-seen", {}]]
    offline = list(_client(hub, "errors", {"cases": cases}, offline=True).values())
    assert offline[0][0] == "ok"  # the pinned revision fetched earlier is served from the cache too
    assert offline[1][0] == "OfflineCacheMissError"
