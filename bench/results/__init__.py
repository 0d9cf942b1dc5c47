"""Reading results: comparison of two run directories, CSV export and the report."""
