"""Docs that must match the code."""

from lfr_cli.settings_doc import main as settings_doc


def test_every_service_readme_lists_its_settings_as_the_code_defines_them():
    assert settings_doc(["--check"]) == 0, "run `make docs`"
