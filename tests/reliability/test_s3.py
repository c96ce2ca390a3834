"""S3 for real, against a local moto server on 127.0.0.1 that the tests start themselves: s3://
input and output, the manifest, kill -9 and resume, the endpoint from the YAML or from
AWS_ENDPOINT_URL. Outputs must equal a local run's byte for byte. Marked ``slow``."""
from __future__ import annotations

import os

import pyarrow.fs as pafs
import pytest
import yaml

from tests.helpers import output_bytes as published
from tests.reliability.conftest import ROOT, cli_env, kill_tree, run_cli, start_cli, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3(moto_s3, tmp_path_factory):
    """Input uploaded to s3://mp-in/data and the local reference run of the same pipeline."""
    from gen_demo import generate

    base = tmp_path_factory.mktemp("s3")
    generate(str(base / "data"), rows=480, files=2, seed=9)
    fs = pafs.S3FileSystem(endpoint_override=moto_s3, allow_bucket_creation=True)
    for b in ("mp-in", "mp-out"):
        fs.create_dir(b)
    for name in sorted(os.listdir(base / "data")):
        pafs.copy_files(str(base / "data" / name), f"mp-in/data/{name}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=fs)

    def pipeline(inp: str, out: str, endpoint: str | None = None) -> str:
        cfg = {
            "name": "s", "seed": 2,
            "input": {"path": inp, "format": "parquet", "key": "ticket_id"},
            "masks": [{"kind": "mlm", "field": "body", "ratio": 0.2, "max_length": 96,
                       "tokenizer": os.path.join(ROOT, "pipelines/assets/tokenizer.json")},
                      {"kind": "features", "field": "features", "ratio": 0.25}],
            "output": {"path": out, "shard_samples": 20},
            "execution": {"batch_size": 10, "parallelism": 2, "progress": "off",
                          **({"s3_endpoint": endpoint} if endpoint else {})},
        }
        y = base / f"p{len(os.listdir(base))}.yaml"
        y.write_text(yaml.safe_dump(cfg))
        return str(y)

    ref = str(base / "ref")
    res = run_cli(["run", pipeline(str(base / "data"), ref)])
    assert res.returncode == 0, res.stderr
    return fs, pipeline, published(ref)


def _env(**extra):
    return cli_env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                   AWS_EC2_METADATA_DISABLED="true", **extra)


def _objects(fs, prefix: str) -> dict[str, bytes]:
    """Top-level objects under an S3 prefix (the published files)."""
    out = {}
    for info in fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as f:
                out[os.path.basename(info.path)] = f.read()
    return out


def _records(fs, prefix: str) -> int:
    sel = pafs.FileSelector(f"{prefix}/.maskpipe/shards", allow_not_found=True)
    return sum(1 for i in fs.get_file_info(sel) if i.path.endswith(".json"))


def test_s3_round_trip_with_kill_and_resume(s3, moto_s3):
    fs, pipeline, ref = s3
    y = pipeline("s3://mp-in/data", "s3://mp-out/run", endpoint=moto_s3)  # endpoint from the YAML
    p = start_cli(["run", y], env=_env())
    try:
        killed = wait_for(lambda: _records(fs, "mp-out/run") >= 3, p, every=0.05)
    finally:
        kill_tree(p)
    assert killed, "the run finished before it could be killed"
    assert "manifest.json" not in _objects(fs, "mp-out/run")
    for name, data in _objects(fs, "mp-out/run").items():  # nothing partial under a final name
        assert data == ref[name], name
    # the dead run's lock object is still there; its holder is a dead process on this host
    assert fs.get_file_info("mp-out/run/.maskpipe/lock").type == pafs.FileType.File
    res = run_cli(["run", y], env=_env())
    assert res.returncode == 0, res.stderr
    assert "reused" in res.stdout
    assert _objects(fs, "mp-out/run") == ref
    again = run_cli(["run", y], env=_env())
    assert again.returncode == 0 and "already complete" in again.stdout


def test_s3_input_with_endpoint_from_environment(s3, moto_s3, tmp_path):
    fs, pipeline, ref = s3
    out = str(tmp_path / "o")
    res = run_cli(["run", pipeline("s3://mp-in/data", out)], env=_env(AWS_ENDPOINT_URL=moto_s3))
    assert res.returncode == 0, res.stderr
    assert published(out) == ref
    bad = run_cli(["run", pipeline("s3://mp-in/missing", str(tmp_path / "o2"))], env=_env(AWS_ENDPOINT_URL=moto_s3))
    assert bad.returncode == 3 and "s3://mp-in/missing does not exist" in bad.stderr
