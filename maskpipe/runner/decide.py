"""Stage 1 of a run, on the driver: who this run is, what the output folder holds, the plan.

* :func:`locate_input` lists the input files; :func:`identify` gives the run's identity
  (:class:`RunIdentity`: config hash, input fingerprint, pseudonym key id).
* :func:`finished` is the no-op check (no lock, writes nothing).
* :func:`decide` (called under the run lock) compares the identity with what the folder holds
  (refuse, clear or resume), plans the input once and finds the shards it can reuse. Its
  :class:`Decision` carries everything execute and commit need, so nothing is read twice.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from maskpipe import __version__
from maskpipe.config import PipelineConfig, infer_format
from maskpipe.errors import InputError, OutputError
from maskpipe.io.plan import Plan, Unit, input_fingerprint, list_input_files, plan_input
from maskpipe.io.store import META, OutputStore
from maskpipe.process import check_members
from maskpipe.runner.resume import clear, reusable_shards, verify_manifest
from maskpipe.sink import SinkSpec
from maskpipe.stats import CounterSchema


@dataclass(frozen=True)
class RunIdentity:
    """What makes two runs the same run (docs/operations.md, "Reruns").

    Attributes:
        config_hash: every output-affecting setting (:meth:`PipelineConfig.output_hash`).
        input_fp: the input files' names and sizes.
        key_id: the pseudonym key's non-reversible id (None without pseudonyms). Not part of
            the config hash (the key is not in the YAML), but part of the run: shards written
            under another key are never reused and never mixed with this key's.
    """

    config_hash: str
    input_fp: str
    key_id: str | None

    @property
    def run_id(self) -> str:
        """The id stamped on every shard record of this run."""
        blob = f"{self.config_hash}:{self.input_fp}:{self.key_id or '-'}"
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def state(self, name: str) -> dict:
        """The body of ``.maskpipe/run.json``: whose shards this folder is receiving."""
        return {"config_hash": self.config_hash, "input": self.input_fp, "key_id": self.key_id,
                "maskpipe_version": __version__, "name": name}


@dataclass
class Decision:
    """What decide hands to execute and commit.

    Attributes:
        cfg: the validated config.
        store: the output folder (locked by this run).
        identity: the run's identity.
        plan: the input plan (made once).
        spec: the sink spec: shard size, counters, run id, shards reused.
        reused: shard -> record of shards an earlier run of this identity published and that
            still match (commit merges them without reading them again).
        units: read units left to process (empty: everything is reused).
        endpoint: S3 endpoint override.
    """

    cfg: PipelineConfig
    store: OutputStore
    identity: RunIdentity
    plan: Plan
    spec: SinkSpec
    reused: dict[int, dict]
    units: list[Unit]
    endpoint: str | None = None


def locate_input(cfg: PipelineConfig) -> tuple[str, list[str]]:
    """(format, sorted input files). Raises InputError when the format is unknown or no file matches."""
    fmt = cfg.input.format or infer_format(cfg.input.path)
    if fmt is None:
        raise InputError(f"input.format: cannot tell the format of {cfg.input.path}; set input.format")
    return fmt, list_input_files(cfg.input.path, fmt, cfg.execution.s3_endpoint)


def identify(cfg: PipelineConfig, fmt: str, files: list[str]) -> RunIdentity:
    """The run's identity; reads the pseudonym key (never keeps it) when pseudonyms are used."""
    key_id = None
    if cfg.privacy is not None:
        from maskpipe.privacy import key_id as _key_id

        key_id = _key_id(cfg.privacy)
    input_fp = input_fingerprint(files, fmt, cfg.input.path, cfg.execution.s3_endpoint)
    return RunIdentity(cfg.output_hash(), input_fp, key_id)


def _prior_key(manifest: dict | None, state: dict | None) -> tuple[bool, str | None]:
    """(known, key id) of the run the folder holds: the manifest's, else the run record's."""
    if manifest is not None and "key_id" in manifest:
        return True, manifest["key_id"]
    if state is not None and "key_id" in state:
        return True, state["key_id"]
    return False, None


def finished(store: OutputStore, identity: RunIdentity, verify: bool = False) -> tuple[dict, dict] | None:
    """The finished-output check, done without the lock and without writing anything.

    A manifest and a run record of this identity (config hash, input, key id), stats.json, and
    every listed shard present with its recorded size (with ``verify``: its recorded sha256):
    nothing to do, returns (manifest, stats). Anything less falls through to a locked run, which
    refuses another run's output or repairs what is missing.
    """
    manifest = store.read_json("manifest.json")
    if not manifest or manifest.get("config_hash") != identity.config_hash:
        return None
    state = store.read_json(f"{META}/run.json") or {}
    if state.get("config_hash") != identity.config_hash or state.get("input") != identity.input_fp:
        return None
    if manifest.get("key_id") != identity.key_id or state.get("key_id") != identity.key_id:
        return None  # another key: the locked path refuses it
    stats = store.read_json("stats.json")
    if stats is None:
        return None
    for s in manifest.get("shards", []):
        if store.size(s["path"]) != s["bytes"]:
            return None
    if verify and not verify_manifest(store, manifest):
        return None
    if store.lock_holder() is not None:
        return None  # a run is writing here: the locked path reports it
    return manifest, stats


def _check_prior(cfg: PipelineConfig, store: OutputStore, identity: RunIdentity, overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, clear) an output that holds another run."""
    manifest = store.read_json("manifest.json")
    state = store.read_json(f"{META}/run.json")
    if manifest is None and not store.list(f"{META}/shards"):
        state = None  # nothing was published under that run record: nothing to protect
    prior = (manifest or {}).get("config_hash") or (state or {}).get("config_hash")
    prior_input = (state or {}).get("input")
    known, prior_key = _prior_key(manifest, state)
    if prior and prior != identity.config_hash:
        if not overwrite:
            raise OutputError(f"output.path: {store.uri} holds a run with another config (hash {prior[:12]}); "
                              "choose another output.path or pass --overwrite to replace it")
        clear(store, cfg.name, manifest, state)
    elif prior and prior_input and prior_input != identity.input_fp:
        if not overwrite:
            raise OutputError(f"output.path: {store.uri} was written from other input files (names or sizes "
                              "differ); choose another output.path or pass --overwrite to rebuild it")
        clear(store, cfg.name, manifest, state)
    elif prior and known and prior_key != identity.key_id:
        if not overwrite:
            env = cfg.privacy.key_env if cfg.privacy is not None else "the key variable"
            raise OutputError(f"privacy.key_env: {store.uri} holds a run made with another pseudonym key (key id "
                              f"{prior_key}; {env} now holds key id {identity.key_id}); set {env} to that run's "
                              "key to resume it, or pass --overwrite to rebuild every shard with this key")
        clear(store, cfg.name, manifest, state)
    elif overwrite and (manifest or state):
        clear(store, cfg.name, manifest, state)


def _effective_shard_samples(cfg: PipelineConfig, plan: Plan, store_endpoint: str | None) -> int:
    """``shard_bytes`` caps shards by estimated size: input bytes per row, from the input files
    (a deterministic function of the input), so planned shards stay near the cap."""
    if not cfg.output.shard_bytes or plan.n_rows == 0:
        return cfg.output.shard_samples
    from maskpipe.io.fs import filesystem

    fs, _ = filesystem(plan.display_files[0], store_endpoint)
    size = sum(i.size or 0 for i in fs.get_file_info(plan.files))
    per_row = max(1, size // plan.n_rows)
    return max(1, min(cfg.output.shard_samples, cfg.output.shard_bytes // per_row))


def _unit_done(u: Unit, spec: SinkSpec, done: set[int]) -> bool:
    """Every shard the unit's rows go to is reused: each epoch's copy of them (``epochs: K``)."""
    if u.n_rows == 0:
        return True
    first = u.row_start // spec.shard_samples
    last = (u.row_start + u.n_rows - 1) // spec.shard_samples
    per = spec.shards_per_epoch
    return all(e * per + j in done for e in range(spec.epochs) for j in range(first, last + 1))


def decide(cfg: PipelineConfig, store: OutputStore, fmt: str, files: list[str], identity: RunIdentity,
           overwrite: bool = False, verify: bool = False) -> Decision:
    """Everything the run will do, decided under the lock before any work starts.

    The input is planned once, with units cut at ``output.shard_samples``. With
    ``output.shard_bytes`` the shard size is then derived from that plan (rows and input bytes)
    and the plan's units are re-cut for it from what planning recorded (``Plan.recut``), without
    reading the input again.

    Raises:
        OutputError: the folder holds another run (config, input or key) and not ``overwrite``.
        InputError: the input cannot be planned, or two of the columns to write would become one
            tar member (:func:`maskpipe.process.check_members`).
    """
    endpoint = cfg.execution.s3_endpoint
    _check_prior(cfg, store, identity, overwrite)
    store.clean_tmp()
    plan = plan_input(cfg.input.path, fmt, cfg.output.shard_samples, endpoint, cfg.execution.on_error,
                      cfg.input.csv_delimiter, files=files, key=cfg.input.key)
    check_members(cfg, plan.schema)  # two columns as one tar member: refused before any work
    shard_samples = _effective_shard_samples(cfg, plan, endpoint)
    plan = plan.recut(shard_samples)  # units for the capped size, without reading the input again
    spec = SinkSpec(store.uri, endpoint, cfg.name, plan.n_rows, shard_samples, CounterSchema.of(cfg),
                    run_id=identity.run_id, epochs=cfg.epochs)
    # from here on shards may be published: record whose they are (before the first one)
    store.write_json(f"{META}/run.json", identity.state(cfg.name))
    reused = reusable_shards(store, spec, verify)
    spec.done = frozenset(reused)
    units = [u for u in plan.units if not _unit_done(u, spec, set(reused))]
    return Decision(cfg, store, identity, plan, spec, reused, units, endpoint)
