"""Settings tables of docs/configuration.md (the shared settings) and of each service's README,
generated from the settings classes.

python -m lfr_cli.settings_doc          # rewrite the tables between the markers
python -m lfr_cli.settings_doc --check  # exit 1 if a README is out of date (run by the tests)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic_settings import BaseSettings

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
ROOT = Path(__file__).resolve().parents[3]


def service_settings() -> dict[str, type[BaseSettings]]:
    """Each service of lfr_platform.settings.SERVICES and its settings class (lfr_<name>.settings)."""
    import importlib

    from lfr_platform.settings import SERVICES

    out = {}
    for name in SERVICES:
        module = importlib.import_module(f"lfr_{name}.settings")
        (cls,) = [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, BaseSettings) and c.__module__ == module.__name__
        ]
        out[name] = cls
    return out


def _documents() -> list[tuple[Path, str, type[BaseSettings]]]:
    """(file, block name, settings class): docs/configuration.md holds the shared ones, each service's
    README its own."""
    from lfr_platform.settings import ModelSettings, PlatformSettings, ToolSettings, WatchlistIndexSettings

    configuration = ROOT / "docs" / "configuration.md"
    docs = [(configuration, "platform", PlatformSettings)]
    docs += [(configuration, "watchlist", WatchlistIndexSettings), (configuration, "model", ModelSettings)]
    docs += [(configuration, "tools", ToolSettings)]
    docs += [(ROOT / "services" / name / "README.md", "", cls) for name, cls in service_settings().items()]
    return docs


def table(cls: type[BaseSettings]) -> str:
    prefix = cls.model_config.get("env_prefix", "")
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
        if isinstance(field.default_factory, type) and issubclass(field.default_factory, BaseSettings):
            continue  # a shared block: a table of its own
        default = field.default_factory() if field.default_factory else field.default
        shown = "" if default is None else f"`{default}`"
        variable = field.validation_alias if isinstance(field.validation_alias, str) else f"{prefix}{name.upper()}"
        rows.append(f"| `{variable}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


def _markers(block: str) -> tuple[str, str]:
    if not block:
        return BEGIN, END
    return f"<!-- settings:{block}:begin -->", f"<!-- settings:{block}:end -->"


def render(text: str, block: str, cls: type[BaseSettings]) -> str:
    begin, end = _markers(block)
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table(cls)}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    texts: dict[Path, str] = {}
    for path, block, cls in _documents():
        texts[path] = render(texts.get(path) or path.read_text(), block, cls)
    stale = [path for path, text in texts.items() if text != path.read_text()]
    if not args.check:
        for path in stale:
            path.write_text(texts[path])
    if args.check and stale:
        message = f"settings tables out of date (run `make docs`): {', '.join(map(str, stale))}"
        print(message, file=sys.stderr)  # noqa: T201 - a command-line check's verdict
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
