from lfr_embed.app import build
from lfr_embed.settings import EmbedSettings
from lfr_platform.runtime import main

if __name__ == "__main__":
    raise SystemExit(main("embed", build, EmbedSettings))
