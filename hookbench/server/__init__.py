"""Reference tensor-hook server: the contract in hook-api.md, with its dangerous quirks fixed compatibly."""
