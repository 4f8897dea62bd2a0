"""Read CSV and Excel files as a person sees them and stream them as `SourceRow`s.

This package is the I/O edge and the only place that imports pandas. Everything a person would
call "the same file" reads the same: every cell is text (`00123` stays `00123`), numbers Excel
stored come out as the digits Excel shows (its number format included), values are trimmed,
blank rows are skipped but still take up their row number, and row numbers are the ones a
person sees in Excel or LibreOffice (header = the header's row; for CSV the record's ordinal,
so a quoted multi-line cell is one row, as LibreOffice shows it after import).

Modules, one concern each:
  formats    which files are read, and `FileInfo`
  sniff      text files: encoding and delimiter
  csvfile    text files: header and rows in chunks
  workbook   workbooks: sheets, header and rows
  xlsxparts  what calamine does not say about .xlsx cells (errors, number formats, hidden rows)
  xlsparts   the same for .xls (number formats, hidden rows), through xlrd
  odsparts   the same for .ods (displayed digits, hidden rows)
  cells      workbook cells → text; number formats
  header     which row is the header
  layout     header → columns and fields
  rows       cells → `SourceRow`
  totals     rows that are totals, not data
  reader     `Loader`: files and folders, in order
"""

from importer.loader.cells import ERROR_LITERALS, column_letter, excel_cell_text
from importer.loader.formats import EXTENSIONS, FileFormat, FileInfo
from importer.loader.reader import Loader

__all__ = [
    "ERROR_LITERALS",
    "EXTENSIONS",
    "FileFormat",
    "FileInfo",
    "Loader",
    "column_letter",
    "excel_cell_text",
]
