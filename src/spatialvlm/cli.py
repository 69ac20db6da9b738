"""The `spatialvlm` command line. Thin: each command parses arguments and calls one library function.

Command groups live next to the code they drive (``<area>/commands.py`` with a ``register(app)`` function) and
are attached here, so this file stays small."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="spatialvlm: metric spatial QA from images and RGB-D frames; training and evaluation of spatial VLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# area modules that define `register(app)`; each adds its own commands
_AREAS = [
    "spatialvlm.pipeline.commands",
    "spatialvlm.render.commands",
    "spatialvlm.perception.commands",
    "spatialvlm.eval.commands",
    "spatialvlm.train.commands",
    "spatialvlm.reason.commands",
    "spatialvlm.viewer.commands",
]

for _name in _AREAS:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # an area not built yet; anything else is a real error
        if exc.name != _name:
            raise
        continue
    _mod.register(app)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
