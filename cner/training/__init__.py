"""The one training loop shared by every task (`loop`) and the run directory it works in
(`runs`)."""
