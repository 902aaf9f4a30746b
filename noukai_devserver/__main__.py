"""`python -m noukai_devserver` and the `noukai-dev` console script."""

from __future__ import annotations


def main() -> None:
    """Entry point; imports the server lazily so a missing extra gives a clear message."""
    try:
        from ._cli import main as cli_main
    except ImportError as exc:
        raise SystemExit(
            f"noukai-dev needs the devserver extra: pip install 'noukai[devserver]' ({exc})"
        ) from None
    cli_main()


if __name__ == "__main__":
    main()
