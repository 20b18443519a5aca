"""Dependencies run one way: the api calls the pipeline, which uses routing, parameters and adapters, which use
the transport; nothing below imports what is above it, and no two modules import each other (even through a
chain, a function-level import or a type-only import)."""

from __future__ import annotations

from tests.architecture.imports import cycles, graph

# Lower layers never import higher ones. Packages in one layer may not import each other either.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("service.canonical", "service.errors"),                        # the vocabulary every step shares
    ("service.telemetry", "service.prompts", "service.transport"),  # leaves: records, prompt text, bytes
    ("service.adapters",),                                          # payload schemas
    ("service.config",),                                            # the config file (knows schema names)
    ("service.pipeline", "service.tenancy"),                        # routing, attempts, streams; auth and limits
    ("service.runtime",),                                           # the typed application state
    ("service.api", "service.protocol"),                            # HTTP in and out
    ("service.app", "service.server", "service.cli_flags", "service.discover"),  # composition, processes, tools
    ("service.cli",),                                               # the command line
    ("service.__main__", "service"),                                # `python -m service`, the package itself
)
ISOLATED = "service.simulator"  # written from the reference, never from the gateway: imports only itself


def unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def rank(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit(module) in layer:
            return i
    raise AssertionError(f"{module} is in no layer of tests/architecture/test_imports.py: add its package")


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert found == [], "import cycles (each list imports itself through its members): " + repr(found)


def test_dependencies_run_one_way() -> None:
    wrong = []
    for source, targets in graph().items():
        for target in targets:
            if unit(source) == unit(target):
                continue
            if unit(source) == ISOLATED or unit(target) == ISOLATED:
                if unit(source) == ISOLATED or unit(source) not in ("service.cli", "service.app"):
                    wrong.append(f"{source} -> {target} (the simulator stands apart)")
                continue
            if rank(source) <= rank(target):
                wrong.append(f"{source} -> {target}")
    assert wrong == [], "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_the_graph_sees_every_kind_of_import() -> None:
    edges = graph()
    # module level, function level (lazy), and package-relative
    assert "service.pipeline.gateway" in edges["service.runtime"]
    assert "service.app" in edges["service.cli"]  # imported inside a function
    assert "service.adapters.base" in edges["service.adapters"]
    assert len(edges) > 60
