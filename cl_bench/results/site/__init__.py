"""The static leaderboard site (``clbench leaderboard`` writes it beside the CSVs)."""

from cl_bench.results.site.build import check_site_folder, write_site

__all__ = ["check_site_folder", "write_site"]
