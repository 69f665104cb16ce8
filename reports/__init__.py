"""Evidence reports of campaigns, rebuilt from what a run stored (`changeline report RUN`)."""
