"""sopwatch: keeps S&OP decisions moving between planning cycles."""

__version__ = "0.1.0"
