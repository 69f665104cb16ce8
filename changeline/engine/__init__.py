"""The line's engine, plain Python that never imports Prefect: the per-NE loop (`run.run_plan`),
the campaign scheduler (`campaign.Campaign`), the one result type (`outcomes`), the atoms'
contract and runner (`atom`, `runner`) and the pure decisions (`decisions`)."""
