"""``python -m memkit.server serve|keys ...`` (the same commands as ``memkit serve|keys``)."""

from memkit.server.cli import _standalone

if __name__ == "__main__":
    _standalone(prog_name="python -m memkit.server")
