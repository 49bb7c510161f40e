"""Which model versions are served, loaded from disk and kept current by polling.

Like TensorFlow Serving, a model is a base directory whose integer-named
subdirectories are its versions; anything else (``.staging-*`` of an export in
progress, ``.retired-*``) is ignored, and a version is only considered once its
``saved_model.pb`` exists. A new version is loaded and warmed up completely before it
replaces the old one in a single reference swap, so requests in flight finish on the
version they started with and none fails during the change. A version that fails to
load is logged and left out; the version served before stays.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, prediction_log_pb2

from dann_client.contract import SERVING_DEFAULT
from dann_serve.serving import monitoring
from dann_serve.serving.loader import WARMUP_FILE, MetaGraphModel
from dann_serve.serving.memory import release_soon
from dann_serve.serving.model_config import (
    CONFIG_FILE,
    ConfigError,
    ModelSource,
    fingerprint,
    local_base,
    read_config,
    versions_on_disk,
)
from dann_serve.serving.signature import ServedSignature
from dann_serve.serving.status import ServingError, invalid, not_found
from dann_serve.serving.tensors import to_numpy

log = logging.getLogger("dann_serve.serving")

MAX_WARMUP_RECORDS = 1000  # TensorFlow Serving's own cap
State = get_model_status_pb2.ModelVersionStatus.State


@dataclass
class LoadedVersion:
    """One version in memory: its signatures and what on disk it was loaded from."""

    name: str
    version: int
    path: Path
    identity: int
    signatures: dict[str, ServedSignature]
    signature_defs: dict = field(repr=False)
    model: MetaGraphModel | None = field(default=None, repr=False)
    # Requests running on this version, and whether the registry has let go of it: the
    # session is closed when both say it is unused.
    _users: int = field(default=0, repr=False)
    _retired: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            close = self._retired and self._users == 0
        if close:
            self._close()

    def retire(self) -> None:
        """No longer served: close it now, or when its last request is done."""
        with self._lock:
            self._retired = True
            close = self._users == 0
        if close:
            self._close()

    def _close(self) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None
            self.signatures = {}

    def signature(self, key: str) -> ServedSignature:
        """The named signature (``serving_default`` if empty); FAILED_PRECONDITION if none."""
        key = key or SERVING_DEFAULT
        found = self.signatures.get(key)
        if found is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.'
            )
        monitoring.note_signature(key)  # the one place both front ends resolve a signature
        return found


def load_version(name: str, version: int, path: Path) -> LoadedVersion:
    """Load a SavedModel as TensorFlow Serving does, wrap its signatures, and replay
    its warm-up requests."""
    identity = fingerprint(path)
    with monitoring.saved_model_load(path):
        model = MetaGraphModel(path)
    definitions = model.signature_defs
    # TensorFlow 2 adds "__saved_model_init_op", which GetModelMetadata lists (as
    # TensorFlow Serving does) but which is no signature to predict with.
    signatures = {
        key: ServedSignature(key, definition, model)
        for key, definition in definitions.items()
        if not key.startswith("__")
    }
    loaded = LoadedVersion(name, version, path, identity, signatures, definitions, model)
    try:
        with monitoring.warmup(path):
            _warm_up(loaded)
    except BaseException:
        loaded.retire()
        raise
    return loaded


def _warm_up(loaded: LoadedVersion) -> None:
    """Run the recorded PredictRequests once, so the first real request is not the slow one."""
    records = loaded.path / WARMUP_FILE
    if not records.is_file():
        return
    for count, record in enumerate(tf.data.TFRecordDataset(str(records))):
        if count >= MAX_WARMUP_RECORDS:
            break
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if entry.WhichOneof("log_type") != "predict_log":
            continue
        request = entry.predict_log.request
        signature = loaded.signature(request.model_spec.signature_name)
        inputs = {name: to_numpy(tensor, name) for name, tensor in request.inputs.items()}
        signature.run(inputs, signature.output_names)


class ModelRegistry:
    """The served versions of every model, read from ``models.config`` or the tree."""

    def __init__(self, model_dir: Path, config_file: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.config_file = Path(config_file) if config_file else self.model_dir / CONFIG_FILE
        self._models: dict[str, dict[int, LoadedVersion]] = {}
        self._sources: dict[str, ModelSource] = {}
        self._states: dict[str, dict[int, tuple[int, str]]] = {}
        self._failed: dict[tuple[str, int], int] = {}
        self._strays: set[Path] = set()  # folders that are no version, already logged
        self._poll_lock = threading.Lock()
        self._loaded_since_trim = False
        self._lock = threading.Lock()  # the swap of _models against requests taking a version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what to serve ------------------------------------------------------------

    def read_sources(self) -> dict[str, ModelSource]:
        """The models to serve: those the config lists, else every model in the tree."""
        if self.config_file.is_file():
            try:
                config = read_config(self.config_file)
            except Exception as error:  # text_format raises its own ParseError
                raise ConfigError(f"{self.config_file}: {error}") from None
            if config.WhichOneof("config") is None:
                # An empty file is more likely a write caught halfway (``: > file``, an
                # editor's truncate-then-write) than a wish to unload every model.
                raise ConfigError(f"{self.config_file}: lists no model_config_list (empty?)")
            if config.WhichOneof("config") == "custom_model_config":
                raise ConfigError(f"{self.config_file}: custom_model_config is not supported")
            sources = {}
            for entry in config.model_config_list.config:
                if entry.model_platform not in ("", "tensorflow"):
                    log.warning("skipping model %s: platform %r", entry.name, entry.model_platform)
                    continue
                sources[entry.name] = ModelSource(
                    entry.name, local_base(entry.base_path, self.model_dir, self.config_file), entry
                )
            return sources
        if not self.model_dir.is_dir():
            return {}
        return {
            entry.name: ModelSource(entry.name, entry)
            for entry in sorted(self.model_dir.iterdir())
            if entry.is_dir() and not entry.name.startswith(".") and versions_on_disk(entry)
        }

    # -- loading ------------------------------------------------------------------

    def poll(self) -> None:
        """One pass: read the config, load what is new, then swap and drop what is gone.

        A config whose label names a version that is not served is refused whole, as
        TensorFlow Serving refuses it (ConfigError; what was served stays served): before
        anything is loaded where the disk or the version policy rules the version out,
        after loading where its load failed. So a label and the version it moves to are
        switched together, once that version is loaded and warm.
        """
        with self._poll_lock:
            sources = self.read_sources()
            current = self._models
            strays: set[Path] = set()
            found = {name: self._usable(source, strays) for name, source in sources.items()}
            for stray in sorted(strays - self._strays):
                log.warning("ignoring %s: not a version (versions are 1 to 2^63-1)", stray)
            self._strays = strays
            for name, source in sources.items():
                source.check_labels(source.wanted(list(found[name][1])))
            updated = {
                name: self._sync_model(source, *found[name], current.get(name, {}))
                for name, source in sources.items()
            }
            try:
                for name, source in sources.items():
                    source.check_labels(updated[name])
            except ConfigError:
                self._discard(updated, current)
                raise
            self._swap(sources, current, updated)

    def _swap(
        self,
        sources: dict[str, ModelSource],
        current: dict[str, dict[int, LoadedVersion]],
        updated: dict[str, dict[int, LoadedVersion]],
    ) -> None:
        """Serve ``updated`` in place of ``current``, then close what is no longer served."""
        for name, old in current.items():
            for version in set(old) - set(updated.get(name, {})):
                self._set_state(name, version, State.END, "")
                log.info("unloaded %s version %d", name, version)
        with self._lock:  # the swap: requests see the old or the new map, whole
            self._sources = sources
            self._models = updated
        kept = {id(loaded) for versions in updated.values() for loaded in versions.values()}
        before = [loaded for versions in current.values() for loaded in versions.values()]
        retired = [loaded for loaded in before if id(loaded) not in kept]
        for loaded in retired:
            loaded.retire()
        if retired or self._loaded_since_trim:
            self._loaded_since_trim = False
            # A graph is a web of Python objects in reference cycles, which only the
            # cyclic collector frees; then the heaps give the pages back.
            gc.collect()
            release_soon()

    def _discard(
        self,
        updated: dict[str, dict[int, LoadedVersion]],
        current: dict[str, dict[int, LoadedVersion]],
    ) -> None:
        """Undo a refused pass: close what it loaded; what was served stays served."""
        for name, versions in updated.items():
            old = current.get(name, {})
            for version, loaded in versions.items():
                if old.get(version) is not loaded:
                    loaded.retire()
                    state = State.AVAILABLE if version in old else State.END
                    self._set_state(name, version, state, "")

    def _usable(
        self, source: ModelSource, strays: set[Path]
    ) -> tuple[dict[int, Path], dict[int, tuple[Path, int]]]:
        """The model's versions on disk, and those of them worth loading (path and
        fingerprint): not the ones whose load failed, unless their files changed since."""
        on_disk = versions_on_disk(source.base, strays)
        usable = {}
        for version, path in on_disk.items():
            try:
                identity = fingerprint(path)
            except OSError:
                continue  # vanished while we looked
            if self._failed.get((source.name, version)) != identity:
                usable[version] = (path, identity)
        return on_disk, usable

    def _sync_model(
        self,
        source: ModelSource,
        on_disk: dict[int, Path],
        usable: dict[int, tuple[Path, int]],
        old: dict[int, LoadedVersion],
    ) -> dict[int, LoadedVersion]:
        if not on_disk and not old:
            log.debug("no versions of %s under %s yet", source.name, source.base)
        result = {}
        for version in source.wanted(list(usable)):
            path, identity = usable[version]
            previous = old.get(version)
            if previous is not None and previous.identity == identity:
                result[version] = previous
                continue
            self._set_state(source.name, version, State.LOADING, "")
            try:
                result[version] = load_version(source.name, version, path)
            except Exception as error:
                self._failed[(source.name, version)] = identity
                self._set_state(source.name, version, State.END, f"{type(error).__name__}: {error}")
                log.error(
                    "cannot load %s version %d from %s: %s", source.name, version, path, error
                )
                continue
            self._loaded_since_trim = True
            self._set_state(source.name, version, State.AVAILABLE, "")
            log.info("serving %s version %d from %s", source.name, version, path)
        if not result and old:
            # Nothing new could be loaded: keep serving what was there (availability first).
            return {v: loaded for v, loaded in old.items() if v in on_disk}
        return result

    def _set_state(self, name: str, version: int, state: int, error: str) -> None:
        self._states.setdefault(name, {})[version] = (state, error)
        monitoring.record_state(name, version, state)

    # -- polling thread -----------------------------------------------------------

    def start_polling(self, interval: float) -> None:
        """Poll in a daemon thread every ``interval`` seconds until ``stop``."""

        def loop() -> None:
            last_error = ""  # logged once, not at every poll until it changes
            while not self._stop.wait(interval):
                try:
                    self.poll()
                except Exception as error:  # a bad config mid-edit must not end the poller
                    if str(error) != last_error:
                        log.error("model poll failed, still serving what was loaded: %s", error)
                    last_error = str(error)
                    continue
                if last_error:
                    log.info("model poll succeeds again")
                last_error = ""

        self._thread = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._poll_lock, self._lock:
            models, self._models = self._models, {}
        for versions in models.values():
            for loaded in versions.values():
                loaded.retire()

    # -- lookups for requests -----------------------------------------------------

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def labels(self) -> dict[str, dict[str, int]]:
        """Each model to serve (loaded or not), by name, with its version labels."""
        return {name: source.labels for name, source in sorted(self._sources.items())}

    @contextmanager
    def using(
        self, name: str, version: int | None = None, label: str = ""
    ) -> Iterator[LoadedVersion]:
        """The version :meth:`get` finds, kept open until the block ends."""
        with self._lock:
            loaded = self.get(name, version, label)
            loaded.acquire()
        try:
            yield loaded
        finally:
            loaded.release()

    def get(self, name: str, version: int | None = None, label: str = "") -> LoadedVersion:
        """The version a ModelSpec names; NOT_FOUND as TF Serving words it."""
        versions = self._models.get(name)
        if label:
            source = self._sources.get(name)
            if source is None or label not in source.labels:
                raise invalid(f"Unrecognized servable version label: {label}")
            version = source.labels[label]
        if version is not None:
            if versions is None or version not in versions:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return versions[version]
        if not versions:
            raise not_found(f"Servable not found for request: Latest({name})")
        return versions[max(versions)]

    def status(self, name: str, version: int | None = None) -> list[tuple[int, int, str]]:
        """(version, state, error) of the model's versions, newest first; NOT_FOUND if none."""
        states = self._states.get(name, {})
        if name not in self._sources or not states:
            raise not_found(f"Could not find any versions of model {name}")
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            return [(version, *states[version])]
        return [(v, *states[v]) for v in sorted(states, reverse=True)]
