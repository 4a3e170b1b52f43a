"""``python -m sopwatch``: the same entry point as the ``sopwatch`` script."""

from sopwatch.cli import main

if __name__ == "__main__":
    main()
