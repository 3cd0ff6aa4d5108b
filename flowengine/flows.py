"""The flows an engine knows: the current version of each by name, every version by hash.

A new session runs the *current* version of its flow; an existing session runs the
version it was created with, found by content hash (compiled once, cached), even after
``flows/`` has changed on disk. Versions a store has seen but this process has not
loaded are compiled from the canonical text the store keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .compiler import CompiledFlow, compile_flow
from .errors import FlowEngineError, FlowVersionConflict
from .registry import Registry, default_registry
from .spec import FlowSpec, load_flow, load_flows
from .store import FlowVersionRecord, Transaction


def ensure_unchanged(spec: FlowSpec, known: Iterable[tuple[str, str, str]]) -> None:
    """Refuse ``spec`` when a known (name, version, content hash) has its name and
    version but other content: a changed flow needs a new ``version:``."""
    for name, version, content_hash in known:
        if (name, version) == (spec.name, spec.version) and content_hash != spec.content_hash:
            raise FlowVersionConflict(spec.name, spec.version, content_hash, spec.content_hash)


def ensure_unchanged_in(tx: Transaction, spec: FlowSpec) -> None:
    """:func:`ensure_unchanged` against the versions a store holds."""
    ensure_unchanged(
        spec, ((v.name, v.version, v.content_hash) for v in tx.flow_versions(spec.name))
    )


def save_version_in(tx: Transaction, spec: FlowSpec, now: int) -> None:
    """Store ``spec`` as a flow version (insert if absent), after checking that the
    store holds no other content under its name and version."""
    ensure_unchanged_in(tx, spec)
    text = spec.source.text if spec.source else ""
    tx.save_flow_version(FlowVersionRecord(spec.name, spec.version, spec.content_hash, text, now))


class UnknownFlow(FlowEngineError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        super().__init__(f"unknown flow {name!r}; known flows: {', '.join(sorted(known))}")


class FlowRegistry:
    def __init__(self, flows: Iterable[FlowSpec] = (), registry: Registry | None = None) -> None:
        self.registry = registry or default_registry()
        self._current: dict[str, CompiledFlow] = {}
        self._by_hash: dict[str, CompiledFlow] = {}
        for spec in flows:
            self.add(spec)

    @classmethod
    def from_directory(
        cls, directory: str | Path = "flows", registry: Registry | None = None
    ) -> FlowRegistry:
        """Every ``*.yaml`` flow in ``directory``; all files' problems are reported together.

        Two files of one flow are refused: which would be current is not something a
        file name should decide (``deposit.v2.yaml`` sorts before ``deposit.yaml``), and
        a candidate version must not go live by being put next to the running one. Keep
        the version engines run in the directory; older versions stay in the store.
        """
        registry = registry or default_registry()
        specs = load_flows(sorted(Path(directory).glob("*.yaml")), registry=registry)
        seen: dict[str, FlowSpec] = {}
        for spec in specs:
            other = seen.setdefault(spec.name, spec)
            if other is not spec:
                raise FlowEngineError(
                    f"{directory} holds two files of flow '{spec.name}': {_where(other)} "
                    f"(version {other.version}) and {_where(spec)} (version {spec.version}); "
                    "keep the version engines should run there and put a candidate "
                    "elsewhere (older versions stay in the store)"
                )
        return cls(specs, registry)

    def add(self, spec: FlowSpec) -> CompiledFlow:
        """Make ``spec`` the current version of its flow."""
        ensure_unchanged(
            spec,
            ((c.spec.name, c.spec.version, c.spec.content_hash) for c in self._by_hash.values()),
        )
        compiled = compile_flow(spec, self.registry)
        self._current[spec.name] = compiled
        self._by_hash[spec.content_hash] = compiled
        return compiled

    def current(self, name: str) -> CompiledFlow:
        try:
            return self._current[name]
        except KeyError:
            raise UnknownFlow(name, self._current) from None

    def find(self, name: str) -> CompiledFlow | None:
        """The current version of ``name``, or None when this registry has no such flow."""
        return self._current.get(name)

    def by_hash(self, content_hash: str) -> CompiledFlow | None:
        return self._by_hash.get(content_hash)

    def load_version(self, content_hash: str, text: str, name: str) -> CompiledFlow:
        """Compile a stored version (not made current) and remember it by hash."""
        spec = load_flow(
            f"<stored flow {name} {content_hash[:12]}>", text=text, registry=self.registry
        )
        compiled = compile_flow(spec, self.registry)
        self._by_hash[content_hash] = compiled
        return compiled

    def names(self) -> list[str]:
        return sorted(self._current)


def _where(spec: FlowSpec) -> str:
    return spec.source.file if spec.source else "<text>"
