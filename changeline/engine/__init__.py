"""The line's engine: atoms' contract, their runner and the pure decisions. Never imports Prefect."""
