"""The version of vitcli, below everything so that any module can write it into the files it makes."""

__version__ = "0.1.0"
