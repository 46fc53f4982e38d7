"""Allow `python -m monitor`."""

from monitor.cli.commands import main

if __name__ == "__main__":
    main()
