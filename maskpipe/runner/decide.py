"""Stage 1 of a run, on the driver: who this run is, what the output folder holds, the plan.

* :func:`locate_input` lists the input files; :func:`identify` gives the run's identity
  (:class:`RunIdentity`: config hash, input fingerprint, pseudonym key id).
* :func:`finished` is the no-op check (no lock, writes nothing); :func:`next_generation` its
  ``--incremental`` counterpart (which files the next generation takes; also read-only).
* :func:`decide` (called under the run lock) compares the identity with what the folder holds
  (refuse, clear or resume), plans the input once and finds the shards it can reuse. Its
  :class:`Decision` carries everything execute and commit need, so nothing is read twice.
"""
from __future__ import annotations

import hashlib
import dataclasses
from dataclasses import dataclass, field

from maskpipe import __version__
from maskpipe.config import PipelineConfig, infer_format
from maskpipe.errors import InputError, OutputError
from maskpipe.io.formats import FORMATS
from maskpipe.io.plan import Plan, Unit, input_fingerprint, list_input_files, plan_input
from maskpipe.io.store import META, OutputStore
from maskpipe.process import check_members
from maskpipe.runner.generations import (Generation, InputFile, InputListing, changed_file, drop_generation,
                                         load_generations, record_path, schema_of)
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

    def state(self, name: str, generation: int = 1) -> dict:
        """The body of ``.maskpipe/run.json``: whose shards this folder is receiving, and for
        which generation."""
        return {"config_hash": self.config_hash, "input": self.input_fp, "key_id": self.key_id,
                "maskpipe_version": __version__, "name": name, "generation": generation}


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
        generations: every generation of the output, the last being the one this run writes
            (a normal run: generation 1 alone). Its plan covers that generation's files only.
        published: the previous manifest's shard entries (earlier generations' shards; the
            commit takes their records as they are and checks them against these).
        later: new input files (display paths) left for the next generation: this run
            completes an interrupted generation with exactly the files it had taken.
    """

    cfg: PipelineConfig
    store: OutputStore
    identity: RunIdentity
    plan: Plan
    spec: SinkSpec
    reused: dict[int, dict]
    units: list[Unit]
    endpoint: str | None = None
    generations: list[Generation] = field(default_factory=list)
    published: list[dict] = field(default_factory=list)
    later: list[str] = field(default_factory=list)

    @property
    def generation(self) -> Generation:
        return self.generations[-1]


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
    if state.get("generation", 1) != manifest.get("generation", 1):
        return None  # a generation is being written: the locked path reports it
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


def _prior_problem(cfg: PipelineConfig, store: OutputStore, identity: RunIdentity,
                   incremental: bool = False) -> str | None:
    """Why this run may not continue the output folder (a one-line refusal), or None.

    ``incremental``: other input files are expected (they make the next generation); a plain
    run is also refused on an output built by ``--incremental`` runs unless it is a no-op."""
    manifest = store.read_json("manifest.json")
    state = store.read_json(f"{META}/run.json")
    if manifest is None and not store.list(f"{META}/shards"):
        state = None  # nothing was published under that run record: nothing to protect
    prior = (manifest or {}).get("config_hash") or (state or {}).get("config_hash")
    prior_input = (state or {}).get("input")
    known, prior_key = _prior_key(manifest, state)
    if prior and prior != identity.config_hash:
        return (f"output.path: {store.uri} holds a run with another config (hash {prior[:12]}); "
                "choose another output.path or pass --overwrite to replace it")
    if not incremental and manifest is not None:
        g = manifest.get("generation", 1)
        if g >= 2 or store.exists(record_path(g + 1)):
            what = f"generation {g}" + (f", generation {g + 1} unfinished" if store.exists(record_path(g + 1)) else "")
            return (f"output.path: {store.uri} was built by --incremental runs ({what}); rerun with --incremental "
                    "to continue it, or pass --overwrite to rebuild it as one run")
    if not incremental and prior and prior_input and prior_input != identity.input_fp:
        hint = "pass --incremental to add new input files as a new generation, " if manifest is not None else ""
        return (f"output.path: {store.uri} was written from other input files (names or sizes differ); "
                f"{hint}choose another output.path or pass --overwrite to rebuild it")
    if prior and known and prior_key != identity.key_id:
        env = cfg.privacy.key_env if cfg.privacy is not None else "the key variable"
        return (f"privacy.key_env: {store.uri} holds a run made with another pseudonym key (key id "
                f"{prior_key}; {env} now holds key id {identity.key_id}); set {env} to that run's "
                "key to resume it, or pass --overwrite to rebuild every shard with this key")
    return None


def _check_prior(cfg: PipelineConfig, store: OutputStore, identity: RunIdentity, overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, clear) an output that holds another run."""
    problem = _prior_problem(cfg, store, identity)
    if problem and not overwrite:
        raise OutputError(problem)
    if overwrite:
        manifest = store.read_json("manifest.json")
        state = store.read_json(f"{META}/run.json")
        if manifest or state:
            clear(store, cfg.name, manifest, state)


@dataclass
class NextGeneration:
    """What an ``--incremental`` run would write next (:func:`next_generation`; nothing written).

    Attributes:
        number: the generation to write (1 when nothing is published yet).
        earlier: the published generations.
        files: the input files it takes (empty: nothing new).
        first_shard: its first shard's index (after the last published one).
        shard_samples: rows per shard, fixed by generation 1 (None for generation 1 itself).
        resume: an unfinished record of this generation whose files are all still as it took
            them: the generation is completed with exactly those files.
        stale: an unfinished record whose files changed or went: its shards are dropped.
        later: new files left for the generation after (a resumed one is finished first).
        published: the manifest's shard entries.
    """

    number: int
    earlier: list[Generation]
    files: list[InputFile]
    first_shard: int
    shard_samples: int | None
    resume: Generation | None = None
    stale: Generation | None = None
    later: list[InputFile] = field(default_factory=list)
    published: list[dict] = field(default_factory=list)

    @property
    def noop(self) -> bool:
        return not self.files and self.stale is None


def next_generation(cfg: PipelineConfig, store: OutputStore, listing: InputListing, identity: RunIdentity,
                    verify: bool = False) -> NextGeneration:
    """The next generation of an ``--incremental`` run, read-only (the no-op check, the dry
    run, and :func:`decide` under the lock use it).

    Raises:
        OutputError: another config or key; an output written before generations existed; the
            bookkeeping missing; a published shard missing or (``verify``) changed.
        InputError: a file an earlier generation took is gone or changed.
    """
    problem = _prior_problem(cfg, store, identity, incremental=True)
    if problem:
        raise OutputError(problem)
    manifest = store.read_json("manifest.json")
    if manifest is not None and "generations" not in manifest:
        raise OutputError(f"output.path: {store.uri} was written by a maskpipe without generations; pass "
                          "--overwrite once to rebuild it, then --incremental runs continue it")
    earlier = load_generations(store, manifest) if manifest is not None else []
    problem = changed_file(earlier, listing)
    if problem:
        raise InputError(f"input.path: {problem}; restore the file, or pass --overwrite to rebuild every "
                         "generation from the current input")
    for g in earlier:   # messages and quarantine.jsonl name the files where they are now
        for f in g.files:
            f["display"] = listing.by_name[f["name"]].display
    published = list((manifest or {}).get("shards", []))
    for s in published:
        if store.size(s["path"]) != s["bytes"]:
            raise OutputError(f"{store.uri}/{s['path']}: a published shard is missing or has another size; "
                              "restore it, or pass --overwrite to rebuild the output")
    if verify and not verify_manifest(store, {"shards": published}):
        raise OutputError(f"{store.uri}: a published shard no longer matches its sha256 in manifest.json; "
                          "restore it, or pass --overwrite to rebuild the output")
    taken = {f["name"] for g in earlier for f in g.files}
    new = [f for f in listing.files if f.name not in taken]
    first_shard = earlier[-1].first_shard + earlier[-1].n_shards if earlier else 0
    nxt = NextGeneration(len(earlier) + 1, earlier, new, first_shard,
                         earlier[0].shard_samples if earlier else None, published=published)
    rec = store.read_json(record_path(nxt.number))
    if rec:
        pending = Generation.from_record(rec)
        names = {f.name for f in new}
        same = pending.first_shard == first_shard and all(
            f["name"] in names and listing.by_name[f["name"]].bytes == f["bytes"] for f in pending.files)
        if same:
            files = [listing.by_name[f["name"]] for f in pending.files]
            same = listing.fingerprints(files) == [f["fingerprint"] for f in pending.files]
        if same:
            nxt.resume, nxt.files = pending, files
            nxt.later = [f for f in new if f.name not in {p["name"] for p in pending.files}]
        else:
            nxt.stale = pending
    return nxt


def _identity_of(identity: RunIdentity, paths: list[str], cfg: PipelineConfig, fmt: str) -> RunIdentity:
    """``identity`` for the input files ``paths`` (every generation's, this one's included)."""
    fp = input_fingerprint(sorted(paths), fmt, cfg.input.path, cfg.execution.s3_endpoint)
    return RunIdentity(identity.config_hash, fp, identity.key_id)


def _keep_types(plan: Plan, earlier: list[Generation]) -> Plan:
    """The plan of a later generation, reading with the earlier generations' column types.

    Its files must unify to exactly those types: a new column or a wider type would have
    changed the samples of the published shards in a run over all the files.
    """
    before = schema_of(earlier[0].schema)
    impl = FORMATS[plan.fmt]
    for i, fp in enumerate(plan.file_plans):
        if fp is None or fp.schema is None:
            continue
        if before is None:
            merged = fp.schema
        else:
            merged = impl.unify([(0, before), (1, fp.schema)], ["the earlier generations' files", plan.display_files[i]])
        if before is None or not merged.equals(before, check_metadata=False):
            from maskpipe.io.schema import column_label

            old = {} if before is None else {f.name: f.type for f in before}
            diff = [f for f in merged if old.get(f.name) != f.type]
            what = (f"{column_label(diff[0].name)} is {diff[0].type} here" if diff else "its columns differ") + (
                f", {old[diff[0].name]} before" if diff and diff[0].name in old else ", absent before" if diff else "")
            raise InputError(f"{plan.display_files[i]}: its column types differ from the earlier generations' "
                             f"({what}); make the new files match them, or pass --overwrite to rebuild every "
                             "generation together")
    return dataclasses.replace(plan, schema=before)


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
           overwrite: bool = False, verify: bool = False, incremental: bool = False,
           listing: InputListing | None = None) -> Decision | None:
    """Everything the run will do, decided under the lock before any work starts.

    The input is planned once, with units cut at ``output.shard_samples``. With
    ``output.shard_bytes`` the shard size is then derived from that plan (rows and input bytes)
    and the plan's units are re-cut for it from what planning recorded (``Plan.recut``), without
    reading the input again.

    With ``incremental`` (and not ``overwrite``) only the files of the next generation are
    planned (:func:`next_generation`), their rows numbered from its first shard, with the shard
    size and column types of generation 1. Returns None when there is nothing new.

    Raises:
        OutputError: the folder holds another run (config, input or key) and not ``overwrite``.
        InputError: the input cannot be planned, or two of the columns to write would become one
            tar member (:func:`maskpipe.process.check_members`).
        InputError: (incremental) an earlier generation's file changed, or the new files' column
            types differ from the earlier ones'.
    """
    endpoint = cfg.execution.s3_endpoint
    listing = listing or InputListing(cfg.input.path, files, endpoint)
    earlier: list[Generation] = []
    published: list[dict] = []
    first_shard, shard_samples, number, later = 0, None, 1, []
    if incremental and not overwrite:
        nxt = next_generation(cfg, store, listing, identity, verify)
        if nxt.number == 1 and nxt.resume is None:
            state = store.read_json(f"{META}/run.json")
            if state or store.list(f"{META}/shards"):
                clear(store, cfg.name, None, state)  # an unfinished first run of other files: never published
        elif nxt.stale is not None:
            drop_generation(store, cfg.name, nxt.stale)
        earlier, published, first_shard = nxt.earlier, nxt.published, nxt.first_shard
        shard_samples, number = nxt.shard_samples, nxt.number
        taken = [listing.by_name[f["name"]].path for g in earlier for f in g.files]
        if not nxt.files:
            if nxt.stale is not None:  # back to the published generation's record
                store.write_json(f"{META}/run.json",
                                 _identity_of(identity, taken, cfg, fmt).state(cfg.name, len(earlier)))
            return None
        files = sorted(f.path for f in nxt.files)
        identity = _identity_of(identity, taken + files, cfg, fmt)
        later = [f.display for f in nxt.later]
    else:
        _check_prior(cfg, store, identity, overwrite)
    store.clean_tmp()
    plan = plan_input(cfg.input.path, fmt, shard_samples or cfg.output.shard_samples, endpoint,
                      cfg.execution.on_error, cfg.input.csv_delimiter, files=files, key=cfg.input.key,
                      first_row=first_shard * (shard_samples or 0))
    check_members(cfg, plan.schema)  # two columns as one tar member: refused before any work
    if shard_samples is None:
        shard_samples = _effective_shard_samples(cfg, plan, endpoint)
        plan = plan.recut(shard_samples)  # units for the capped size, without reading the input again
    else:
        plan = _keep_types(plan, earlier)
    spec = SinkSpec(store.uri, endpoint, cfg.name, plan.first_row + plan.n_rows, shard_samples, CounterSchema.of(cfg),
                    run_id=identity.run_id, epochs=cfg.epochs)
    this = Generation.of_plan(number, first_shard, plan, listing)
    # from here on shards may be published: record whose they are (before the first one)
    store.write_json(f"{META}/run.json", identity.state(cfg.name, number))
    store.write_json(record_path(number), this.to_record())
    reused = reusable_shards(store, spec, verify, first=first_shard)
    spec.done = frozenset(range(first_shard)) | frozenset(reused)
    units = [u for u in plan.units if not _unit_done(u, spec, set(reused))]
    return Decision(cfg, store, identity, plan, spec, reused, units, endpoint, earlier + [this], published, later)
