"""Settings tables of the READMEs (top level and each service), generated from the settings classes.

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


def _documents() -> list[tuple[Path, str, type[BaseSettings]]]:
    """(file, block name, settings class): the top-level README holds every table, each service's its own."""
    from lfr_alert.settings import AlertSettings
    from lfr_console.settings import ConsoleSettings
    from lfr_deployments.settings import DeploymentsSettings
    from lfr_detect.settings import DetectSettings
    from lfr_embed.settings import EmbedSettings
    from lfr_ingest.settings import IngestSettings
    from lfr_match.settings import MatchSettings
    from lfr_platform.settings import PlatformSettings

    services = {
        "ingest": IngestSettings,
        "detect": DetectSettings,
        "embed": EmbedSettings,
        "match": MatchSettings,
        "alert": AlertSettings,
        "deployments": DeploymentsSettings,
        "console": ConsoleSettings,
    }
    docs = [(ROOT / "README.md", "platform", PlatformSettings)]
    docs += [(ROOT / "README.md", name, cls) for name, cls in services.items()]
    docs += [(ROOT / "services" / name / "README.md", "", cls) for name, cls in services.items()]
    return docs


def table(cls: type[BaseSettings]) -> str:
    prefix = cls.model_config.get("env_prefix", "")
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        shown = "" if default is None else f"`{default}`"
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {field.description or ''} |")
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
