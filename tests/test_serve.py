"""`evalalign serve` and its clients, against real servers on 127.0.0.1: remote == local, concurrency, every bad
input, the queue bound, the token, a server killed mid-run."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image

pytest.importorskip("aiohttp", reason="the serve extra is not installed")

from evalalign_metric import EvalAlignScore  # noqa: E402
from evalalign_metric.errors import InputError  # noqa: E402
from evalalign_metric.judge import OptionDistribution  # noqa: E402
from evalalign_metric.reward import EvalAlignReward  # noqa: E402
from evalalign_metric.runs.defaults import default_judge_path  # noqa: E402
from evalalign_metric.serve import RemoteJudge, RemoteReward, ServerUnavailableError  # noqa: E402
from evalalign_metric.serve.app import ServerThread  # noqa: E402
from evalalign_metric.serve.batcher import BatchingJudge, MicroBatcher  # noqa: E402
from evalalign_metric.serve.process import launch_server, stop_server  # noqa: E402
from evalalign_metric.serve.service import ScoringService  # noqa: E402
from evalalign_metric.serve.wire import encode_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a red cube", "two blue circles", "a green triangle left of a yellow square", "a cat on a mat"]


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """`evalalign serve --port 0 ARGS` in a subprocess, one torch thread, no token from the environment."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("EVALALIGN_SERVE_TOKEN", None)
    return launch_server(args, env=env, timeout=180)


@pytest.fixture(scope="module")
def server():
    proc, url = start_server("--max-image-pixels", "10000", "--max-body-mb", "1")
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def local_reward():
    return EvalAlignReward()  # the embedded judge, the server's default


def images_for(seed: int, n: int, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def same(a: list[float], b: list[float], tol: float = 0.0) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol for x, y in zip(a, b))


def post(url: str, body, *, raw: bytes | None = None, headers=None, method: str = "POST"):
    """(status, JSON body, headers) of one request, errors included."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def png(image: Image.Image) -> str:
    return encode_image(image)


def gif(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="GIF")
    return base64.b64encode(buffer.getvalue()).decode()


def test_health_names_the_judge(server):
    status, health, _ = post(server + "/health", None, method="GET")
    judge = health["judge"]
    assert status == 200 and health["status"] == "ok"
    assert Path(judge["model"]) == default_judge_path("evalalign")
    assert len(judge["fingerprint"]) == 64 and judge["served_protocol"]["name"] == "evalalign"
    assert judge["dtype"] == "float32" and judge["engine"]["name"] == "PrefixEngine"


def test_remote_reward_equals_local_exactly(server, local_reward):
    images = images_for(0, 4)
    remote = RemoteReward(server, timeout=120)
    for weights in (None, {"alignment": 2.0, "faithfulness/common": 1.0}):
        local = EvalAlignReward(judge=local_reward.judge, weights=weights)
        remote = RemoteReward(server, weights=weights, timeout=120)
        ours, info = remote(images.float() / 255.0, PROMPTS)
        theirs, local_info = local(images, PROMPTS)
        assert ours == theirs
        assert info["aspects"].keys() == local_info["aspects"].keys()
        assert all(same(info["aspects"][k], local_info["aspects"][k]) for k in info["aspects"])
        assert info["judge"]["fingerprint"]


def test_remote_judge_equals_local_for_the_metric_and_imatch(server, local_reward):
    """EvalAlignScore(model=URL) (the DDP-rank path) and an iMatch reward over RemoteJudge equal the local ones."""
    images = images_for(1, 3)
    remote = EvalAlignScore(model=server)
    local = EvalAlignScore(judge=local_reward.judge)
    for metric in (remote, local):
        metric.update(images, PROMPTS[:3])
    a, b = remote.compute(), local.compute()
    assert a.keys() == b.keys() and all(same([float(a[k])], [float(b[k])]) for k in a)
    meta = [{"elements": ["cube (object)", "red (color)"]}, {"elements": ["circle (shape)", "two (counting)"]},
            {"elements": ["triangle (shape)"]}]
    remote_imatch = EvalAlignReward(protocol="imatch", judge=RemoteJudge(server), aspects=["imatch/overall"])
    local_imatch = EvalAlignReward(protocol="imatch", judge=local_reward.judge, aspects=["imatch/overall"])
    ours, info = remote_imatch(images, PROMPTS[:3], meta)
    theirs, local_info = local_imatch(images, PROMPTS[:3], meta)
    assert ours == theirs and info["elements"] == local_info["elements"]
    assert list(info["elements"][0]) == ["cube (object)", "red (color)"]


def test_concurrent_clients_all_answered_correctly(server, local_reward):
    """8 clients x 10 requests at once; each answer is the local reward of its own images (micro-batching changes
    only the floating-point summation order, as batching does in the engine)."""
    jobs = [(c, r) for c in range(8) for r in range(10)]
    inputs = {job: (images_for(100 + 10 * job[0] + job[1], 1 + (job[1] % 3)), [PROMPTS[(job[0] + job[1]) % 4]])
              for job in jobs}
    inputs = {job: (imgs, prompts * len(imgs)) for job, (imgs, prompts) in inputs.items()}
    expected = {job: local_reward(imgs, prompts)[0] for job, (imgs, prompts) in inputs.items()}

    def client(c):
        remote = RemoteReward(server, timeout=120)
        return {(c, r): remote(*inputs[(c, r)])[0] for r in range(10)}

    with ThreadPoolExecutor(8) as pool:
        answers = {k: v for part in pool.map(client, range(8)) for k, v in part.items()}
    assert answers.keys() == expected.keys()
    for job in jobs:
        assert same(answers[job], expected[job], tol=1e-6), job


def _good_body():
    return {"prompts": ["a red cube"], "images": [png(Image.new("RGB", (32, 32), "red"))]}


@pytest.mark.parametrize("route, body, status, field, message", [
    ("/score", {"images": [png(Image.new("RGB", (32, 32)))]}, 400, "prompts", "no 'prompts' field"),
    ("/score", {"prompts": ["a cat"]}, 400, "images", "no 'images' field"),
    ("/score", {"prompts": "a cat", "images": []}, 400, "prompts", "must be a JSON list"),
    ("/score", {"prompts": ["a cat", "a dog"], "images": [png(Image.new("RGB", (32, 32)))]}, 400, "images",
     r"images \(1\) and prompts \(2\)"),
    ("/score", {"prompts": [""], "images": [png(Image.new("RGB", (32, 32)))]}, 400, "prompts[0]", "non-empty"),
    ("/score", {"prompts": ["a cat"], "images": ["@@@"]}, 400, "images[0]", "not valid base64"),
    ("/score", {"prompts": ["a cat"], "images": [base64.b64encode(b"GIF89a not really").decode()]}, 400,
     "images[0]", "not a PNG or JPEG"),
    ("/score", {"prompts": ["a cat"], "images": [gif(Image.new("RGB", (32, 32)))]}, 400, "images[0]",
     r"is a GIF image; expected one of \('PNG', 'JPEG'\)"),
    ("/score", {"prompts": ["a cat"], "images": [png(Image.new("RGB", (32, 32)))[:60]]}, 400, "images[0]",
     "not a PNG or JPEG"),
    ("/score", {"prompts": ["a cat"], "images": [png(Image.new("RGB", (128, 128)))]}, 413, "images[0]",
     "over the server's limit of 10000 pixels"),
    ("/score", {"prompts": ["a cat"], "images": [png(Image.new("RGB", (1, 1)))]}, 400, "images[0]",
     "the judge needs at least"),
    ("/score", {"prompts": ["a cat"], "images": [7]}, 400, "images[0]", "must be a base64 string"),
    ("/score", {**_good_body(), "elements": [{"Colour": "cube: red;"}, None]}, 400, "elements",
     r"elements \(2\) and prompts \(1\)"),
    ("/score", {**_good_body(), "elements": [{"Object": 5}]}, 400, None, "elements"),
    ("/score", {**_good_body(), "weights": {"alignment/Colour": 1}}, 400, "weights", "reward key"),
    ("/score", {**_good_body(), "scoring": "mean"}, 400, "scoring", "'expectation' or 'argmax'"),
    ("/score", ["not", "an", "object"], 400, "body", "must be a JSON object"),
    ("/answer", {"images": [png(Image.new("RGB", (32, 32)))], "questions": [[["no labels", []]]]}, 400,
     "questions[0][0]", "must be \\[question text"),
    ("/answer", {"images": [png(Image.new("RGB", (32, 32)))], "questions": []}, 400, "questions",
     r"images \(1\) and questions \(0\)"),
    ("/answer", {"images": [png(Image.new("RGB", (32, 32)))], "questions": [[["no image token", ["0", "1"]]]]},
     400, None, "must contain '<image>'"),
])
def test_bad_input_is_a_4xx_naming_the_field(server, route, body, status, field, message):
    got, answer, _ = post(server + route, body)
    assert got == status, answer
    assert answer["field"] == field and re.search(message, answer["error"]), answer
    ok, good, _ = post(server + "/score", _good_body())  # the server keeps serving
    assert ok == 200 and 0.0 <= good["scores"][0] <= 1.0


def test_bad_json_oversize_body_wrong_route_and_method(server):
    status, answer, _ = post(server + "/score", None, raw=b"{not json")
    assert status == 400 and answer["field"] == "body" and "not valid JSON" in answer["error"]
    status, answer, _ = post(server + "/score", None, raw=b"x" * (2 * 2**20))
    assert status == 413 and answer["field"] == "body" and "limit" in answer["error"]
    assert post(server + "/nothing", {})[0] == 404
    assert post(server + "/score", None, method="GET")[0] == 405
    with pytest.raises(InputError, match=r"refused the request \(400\).*field prompts\[0\]"):
        RemoteReward(server)(torch.zeros(1, 3, 32, 32), [" "])
    assert post(server + "/score", _good_body())[0] == 200


class GatedJudge:
    """Answers every question with its first option, but only once ``gate`` is set: a server whose work can be
    held in flight on purpose."""

    identity = {"model": "gated"}
    min_image_size = 1
    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self):
        self.gate = threading.Event()
        self.calls = []

    def answer(self, images, questions):
        self.gate.wait(timeout=60)
        self.calls.append(len(images))
        return [[OptionDistribution(tuple(labels), torch.log(torch.eye(len(labels))[0])) for _, labels in asked]
                for asked in questions]


def test_micro_batcher_merges_what_queued_while_busy():
    judge = GatedJudge()
    batcher = MicroBatcher(judge, max_batch_images=3)
    asked = [("<image>\nq", ("0", "1"))]
    image = Image.new("RGB", (8, 8))
    first = batcher.submit([image], [asked])
    while batcher._jobs:  # the worker took the first job and waits on the gate
        time.sleep(0.01)
    later = [batcher.submit([image] * n, [asked] * n) for n in (1, 2, 2)]
    judge.gate.set()
    assert [len(f.result(timeout=60)) for f in [first, *later]] == [1, 1, 2, 2]
    assert judge.calls == [1, 3, 2]  # 1 alone, then 1 + 2 merged (3 images), then the last 2
    assert BatchingJudge(batcher).answer([image], [asked])[0][0].labels == ("0", "1")
    batcher.close()


def test_queue_full_is_503_with_retry_after_and_the_client_retries(monkeypatch):
    from evalalign_metric.serve import client

    judge = GatedJudge()
    service = ScoringService(judge, "evalalign", max_queue_images=2)
    slept = []

    class Clock:  # the client's only use of time: its back-off; the first one opens the gate
        @staticmethod
        def sleep(seconds):
            slept.append(seconds)
            judge.gate.set()
            time.sleep(seconds)

    monkeypatch.setattr(client, "time", Clock)
    with ServerThread(service) as url:
        body = {"prompts": ["a red cube", "a cat"], "images": [png(Image.new("RGB", (16, 16)))] * 2}
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(post, url + "/score", body)
            while service.batcher.in_flight < 2:
                time.sleep(0.01)
            status, answer, headers = post(url + "/score", {"prompts": ["a"], "images": body["images"][:1]})
            assert status == 503 and headers["Retry-After"] == "1" and "queue is full" in answer["error"]
            status, answer, _ = post(url + "/score", {"prompts": ["a"] * 3, "images": body["images"] * 2})
            assert status == 413 and answer["field"] == "images" and "at most 2" in answer["error"]
            remote = RemoteReward(url, retries=5, backoff=0.05, timeout=60)
            scores, _ = remote([Image.new("RGB", (16, 16))], ["a red cube"])
            assert held.result(timeout=60)[0] == 200
        assert slept == [1.0]  # one 503, the Retry-After honoured, then answered
        assert len(scores) == 1 and 0.0 <= scores[0] <= 1.0
        assert service.batcher.stats["jobs"] == 2


def test_bearer_token(monkeypatch):
    judge = GatedJudge()
    judge.gate.set()
    with ServerThread(ScoringService(judge, "evalalign"), token="s3cret") as url:
        assert post(url + "/health", None, method="GET")[0] == 200  # health needs no token
        status, answer, headers = post(url + "/score", _good_body())
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer" and answer["field"] == "Authorization"
        assert post(url + "/score", _good_body(), headers={"Authorization": "Bearer wrong"})[0] == 401
        assert post(url + "/score", _good_body(), headers={"Authorization": "Bearer s3cret"})[0] == 200
        with pytest.raises(ServerUnavailableError, match="401.*EVALALIGN_SERVE_TOKEN"):
            RemoteReward(url)([Image.new("RGB", (16, 16))], ["a red cube"])
        monkeypatch.setenv("EVALALIGN_SERVE_TOKEN", "s3cret")
        assert len(RemoteReward(url)([Image.new("RGB", (16, 16))], ["a red cube"])[0]) == 1


def test_server_killed_mid_run_client_retries_then_fails_clearly(tmp_path):
    proc, url = start_server("--model", os.fspath(default_judge_path("evalalign")))
    remote = RemoteReward(url, retries=3, backoff=0.1, timeout=60)
    answered, failure = [], []

    def trainer():
        try:
            for step in range(10_000):
                answered.append(remote(images_for(step, 2), PROMPTS[:2])[0])
        except Exception as exc:  # noqa: B902 - the failure is what this test checks
            failure.append((exc, time.monotonic()))

    thread = threading.Thread(target=trainer, daemon=True)
    thread.start()
    try:
        while len(answered) < 3 and thread.is_alive():
            time.sleep(0.05)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        thread.join(timeout=60)
        assert not thread.is_alive(), "the client hung after the server died"
    finally:
        stop_server(proc)
    [(exc, failed_at)] = failure
    assert isinstance(exc, ServerUnavailableError) and len(answered) >= 3
    assert re.search(r"did not answer after 4 attempt\(s\).*is `evalalign serve` running", str(exc)), str(exc)
    assert failed_at - killed_at >= 0.1 + 0.2 + 0.4  # it backed off between its attempts before giving up
    with pytest.raises(ServerUnavailableError, match="did not answer after 1 attempt"):
        RemoteJudge(url, retries=0)


def test_a_missing_server_fails_clearly():
    with pytest.raises(ServerUnavailableError, match=r"http://127\.0\.0\.1:9 did not answer after 2 attempt"):
        RemoteJudge("http://127.0.0.1:9", retries=1, backoff=0.01)
    with pytest.raises(InputError, match="must start with http"):
        RemoteReward("127.0.0.1:8000")


def _ddp_rank(rank: int, world: int, port: int, url: str, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        metric = EvalAlignScore(model=url)  # every rank asks the one served judge
        shard = slice(0, 3) if rank == 0 else slice(3, 5)
        metric.update(images_for(7, 5)[shard], (PROMPTS + ["three stars"])[shard])
        out = {k: float(v) for k, v in metric.compute().items()}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(out))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    os._exit(0)


@pytest.mark.subprocess
def test_ddp_ranks_share_one_served_judge(tiny_judge_path, tmp_path):
    """Two gloo ranks, each with EvalAlignScore(model=URL) on its shard: compute() equals one local process."""
    import socket

    import torch.multiprocessing as mp

    from evalalign_metric.judge import load_judge

    judge = load_judge(tiny_judge_path)
    service = ScoringService(judge, "evalalign")
    with ServerThread(service) as url, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        mp.spawn(_ddp_rank, args=(2, port, url, str(tmp_path)), nprocs=2, join=True)
        assert service.batcher.stats["images"] == 5
    local = EvalAlignScore(judge=judge)
    local.update(images_for(7, 5), PROMPTS + ["three stars"])
    expected = {k: float(v) for k, v in local.compute().items()}
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got.keys() == expected.keys()
        assert all(same([got[k]], [v], tol=1e-5) for k, v in expected.items()), rank


def test_remote_judge_carries_the_greedy_reading(server, local_reward):
    from evalalign_metric.protocol import load_protocol

    asked = [[(a.template, a.labels) for a in load_protocol("evalalign").aspects if a.dimension == "faithfulness"]]
    images = [Image.new("RGB", (32, 24), (200, 40, 30))]
    [remote] = RemoteJudge(server).answer(images, asked)
    [local] = local_reward.judge.answer(images, asked)
    assert all(d.greedy_index is not None for d in remote)
    assert [d.greedy_label for d in remote] == [d.greedy_label for d in local]


def test_a_server_that_cannot_start_is_a_clear_error(tmp_path):
    # the child exits at once (no such judge): launch_server says so instead of waiting out its timeout
    with pytest.raises(ServerUnavailableError, match=r"did not start listening .*\(exit code 2\)"):
        start_server("--model", os.fspath(tmp_path / "no-such-judge"))
