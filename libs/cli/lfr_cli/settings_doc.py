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


def _documents() -> dict[Path, type[BaseSettings]]:
    from lfr_alert.settings import AlertSettings
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
    }
    return {
        ROOT / "README.md": PlatformSettings,
        **{ROOT / "services" / name / "README.md": cls for name, cls in services.items()},
    }


def table(cls: type[BaseSettings]) -> str:
    prefix = cls.model_config.get("env_prefix", "")
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        shown = "" if default is None else f"`{default}`"
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


def render(readme: Path, cls: type[BaseSettings]) -> str:
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table(cls)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for readme, cls in _documents().items():
        wanted = render(readme, cls)
        if wanted != readme.read_text():
            stale.append(str(readme))
            if not args.check:
                readme.write_text(wanted)
    if args.check and stale:
        print(f"settings tables out of date (run `make docs`): {', '.join(stale)}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
