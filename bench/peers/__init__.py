"""The tools an operator would otherwise use for the same upgrade, run by the campaign bench."""
