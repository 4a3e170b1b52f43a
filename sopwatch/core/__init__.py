"""The pure core: no files, no network, no clock. Everything here takes ``now`` as an argument."""
