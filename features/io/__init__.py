"""The input's edge of the features layer: files, folders and processes.

Finding the tables of a source (`sources`), reading CSV files safely (`source_files`), reading
a table's rows into DuckDB and naming their lines (`rows`), and the run's work folder with its
process checks (`work_folder`) live here and nowhere else in features/. This package imports
nothing of features/ but the input contract and SQL quoting; `features.validation` uses it,
and the checks and feature families work from what it hands on: a `Source` (a SQL relation)
and a DuckDB connection.
"""
